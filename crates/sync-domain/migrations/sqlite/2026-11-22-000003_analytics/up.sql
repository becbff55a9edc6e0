-- Analytics: device health, one sync event per push or pull, snapshots, alerts (SQLite).

CREATE TABLE device_health (
    tenant_id             TEXT    NOT NULL,
    device_id             TEXT    NOT NULL,
    user_id               TEXT    NOT NULL,
    total_syncs           INTEGER NOT NULL,
    failed_syncs_count    INTEGER NOT NULL,
    avg_sync_duration_ms  REAL    NOT NULL,
    conflicts_encountered INTEGER NOT NULL,
    last_sync_at          INTEGER,
    network_type          TEXT,
    clock_skew_ms         INTEGER NOT NULL,
    health_score          REAL    NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX device_health_tenant_score ON device_health (tenant_id, health_score);

CREATE TABLE sync_events (
    tenant_id     TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    device_id     TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('push', 'pull', 'partial', 'resolve')),
    success       INTEGER NOT NULL CHECK (success IN (0, 1)),
    duration_ms   REAL    NOT NULL,
    changes       INTEGER NOT NULL,
    conflicts     INTEGER NOT NULL,
    auto_resolved INTEGER NOT NULL,
    manual        INTEGER NOT NULL,
    bytes_raw     INTEGER NOT NULL,
    bytes_sent    INTEGER NOT NULL,
    domains       TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX sync_events_tenant_at ON sync_events (tenant_id, at);

CREATE TABLE snapshots (
    tenant_id    TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    window_hours INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX snapshots_tenant_created ON snapshots (tenant_id, created_at);

CREATE TABLE alerts (
    tenant_id   TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    snapshot_id TEXT,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    value       REAL    NOT NULL,
    threshold   REAL    NOT NULL,
    message     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX alerts_tenant_created ON alerts (tenant_id, created_at);
