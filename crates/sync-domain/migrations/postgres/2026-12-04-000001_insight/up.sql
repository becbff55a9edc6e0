-- Fleet insight (PROTOCOL.md section 12): anomalies, conflict-risk models and scores, sync
-- windows, webhooks and their delivery log (PostgreSQL). Keep in step with migrations/sqlite.
-- Like every tenant-owned table, each keeps no planner statistics on tenant_id (see migration
-- tenant_statistics).

CREATE TABLE anomalies (
    tenant_id     TEXT             NOT NULL,
    id            TEXT             NOT NULL,
    metric        TEXT             NOT NULL CHECK (metric IN ('sync_volume', 'failure_rate', 'conflict_rate', 'p95_duration')),
    scope_device  TEXT,
    scope_domain  TEXT,
    observed      DOUBLE PRECISION NOT NULL,
    expected      DOUBLE PRECISION NOT NULL,
    band_low      DOUBLE PRECISION NOT NULL,
    band_high     DOUBLE PRECISION NOT NULL,
    score         DOUBLE PRECISION NOT NULL,
    severity      TEXT             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    window_start  BIGINT           NOT NULL,
    window_end    BIGINT           NOT NULL,
    explanation   TEXT             NOT NULL,
    created_at    BIGINT           NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX anomalies_tenant_created ON anomalies (tenant_id, created_at);

CREATE TABLE risk_models (
    tenant_id      TEXT             NOT NULL PRIMARY KEY,
    trained_at     BIGINT           NOT NULL,
    examples       BIGINT           NOT NULL,
    holdout_auc    DOUBLE PRECISION,
    baseline_auc   DOUBLE PRECISION,
    model          TEXT             NOT NULL
);

CREATE TABLE risk_scores (
    tenant_id  TEXT             NOT NULL,
    domain     TEXT             NOT NULL,
    mobile_id  TEXT             NOT NULL,
    risk       DOUBLE PRECISION NOT NULL CHECK (risk >= 0 AND risk <= 1),
    reasons    TEXT             NOT NULL,
    scored_at  BIGINT           NOT NULL,
    PRIMARY KEY (tenant_id, domain, mobile_id)
);
CREATE INDEX risk_scores_tenant_risk ON risk_scores (tenant_id, risk);

CREATE TABLE sync_windows (
    tenant_id   TEXT             NOT NULL,
    device_id   TEXT             NOT NULL,
    hour        BIGINT           NOT NULL CHECK (hour >= 0 AND hour < 24),
    minutes     BIGINT           NOT NULL,
    confidence  DOUBLE PRECISION NOT NULL,
    basis       TEXT             NOT NULL CHECK (basis IN ('device_history', 'fleet', 'rule')),
    planned_at  BIGINT           NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
);

CREATE TABLE webhooks (
    tenant_id    TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    url          TEXT   NOT NULL,
    secret       TEXT   NOT NULL,
    events       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    queued_until BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE webhook_deliveries (
    tenant_id     TEXT   NOT NULL,
    id            TEXT   NOT NULL,
    webhook       TEXT   NOT NULL,
    event         TEXT   NOT NULL CHECK (event IN ('alert', 'anomaly', 'conflict')),
    event_id      TEXT   NOT NULL,
    body          TEXT   NOT NULL,
    attempt       BIGINT NOT NULL CHECK (attempt >= 1),
    state         TEXT   NOT NULL CHECK (state IN ('pending', 'delivered', 'retrying', 'failed')),
    first_at      BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    attempted_at  BIGINT,
    status_code   BIGINT,
    error         TEXT,
    next_retry_at BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_deliveries_tenant_hook ON webhook_deliveries (tenant_id, webhook, event_id);
CREATE INDEX webhook_deliveries_tenant_state_due ON webhook_deliveries (tenant_id, state, due_at);

ALTER TABLE anomalies ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE risk_models ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE risk_scores ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE sync_windows ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE webhooks ALTER COLUMN tenant_id SET STATISTICS 0;
ALTER TABLE webhook_deliveries ALTER COLUMN tenant_id SET STATISTICS 0;
