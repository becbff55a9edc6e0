-- Analytics: device health, one sync event per push or pull, snapshots, alerts (PostgreSQL).

CREATE TABLE device_health (
    tenant_id             TEXT             NOT NULL,
    device_id             TEXT             NOT NULL,
    user_id               TEXT             NOT NULL,
    total_syncs           BIGINT           NOT NULL,
    failed_syncs_count    BIGINT           NOT NULL,
    avg_sync_duration_ms  DOUBLE PRECISION NOT NULL,
    conflicts_encountered BIGINT           NOT NULL,
    last_sync_at          BIGINT,
    network_type          TEXT,
    clock_skew_ms         BIGINT           NOT NULL,
    health_score          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
);
CREATE INDEX device_health_tenant_score ON device_health (tenant_id, health_score);

CREATE TABLE sync_events (
    tenant_id     TEXT             NOT NULL,
    id            TEXT             NOT NULL,
    at            BIGINT           NOT NULL,
    device_id     TEXT             NOT NULL,
    user_id       TEXT             NOT NULL,
    kind          TEXT             NOT NULL CHECK (kind IN ('push', 'pull', 'partial', 'resolve')),
    success       BOOLEAN          NOT NULL,
    duration_ms   DOUBLE PRECISION NOT NULL,
    changes       BIGINT           NOT NULL,
    conflicts     BIGINT           NOT NULL,
    auto_resolved BIGINT           NOT NULL,
    manual        BIGINT           NOT NULL,
    bytes_raw     BIGINT           NOT NULL,
    bytes_sent    BIGINT           NOT NULL,
    domains       TEXT             NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX sync_events_tenant_at ON sync_events (tenant_id, at);

CREATE TABLE snapshots (
    tenant_id    TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    window_hours BIGINT NOT NULL,
    body         TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX snapshots_tenant_created ON snapshots (tenant_id, created_at);

CREATE TABLE alerts (
    tenant_id   TEXT             NOT NULL,
    id          TEXT             NOT NULL,
    snapshot_id TEXT,
    rule        TEXT             NOT NULL,
    severity    TEXT             NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    threshold   DOUBLE PRECISION NOT NULL,
    message     TEXT             NOT NULL,
    created_at  BIGINT           NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alerts_tenant_created ON alerts (tenant_id, created_at);
