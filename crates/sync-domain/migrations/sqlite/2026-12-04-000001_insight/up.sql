-- Fleet insight (PROTOCOL.md section 12): anomalies, conflict-risk models and scores, sync
-- windows, webhooks and their delivery log (SQLite). Keep in step with migrations/postgres.

CREATE TABLE anomalies (
    tenant_id     TEXT             NOT NULL,
    id            TEXT             NOT NULL,
    metric        TEXT             NOT NULL CHECK (metric IN ('sync_volume', 'failure_rate', 'conflict_rate', 'p95_duration')),
    scope_device  TEXT,
    scope_domain  TEXT,
    observed      REAL NOT NULL,
    expected      REAL NOT NULL,
    band_low      REAL NOT NULL,
    band_high     REAL NOT NULL,
    score         REAL NOT NULL,
    severity      TEXT             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    window_start  INTEGER           NOT NULL,
    window_end    INTEGER           NOT NULL,
    explanation   TEXT             NOT NULL,
    created_at    INTEGER           NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX anomalies_tenant_created ON anomalies (tenant_id, created_at);

CREATE TABLE risk_models (
    tenant_id      TEXT             NOT NULL PRIMARY KEY,
    trained_at     INTEGER           NOT NULL,
    examples       INTEGER           NOT NULL,
    holdout_auc    REAL,
    baseline_auc   REAL,
    model          TEXT             NOT NULL
) STRICT;

CREATE TABLE risk_scores (
    tenant_id  TEXT             NOT NULL,
    domain     TEXT             NOT NULL,
    mobile_id  TEXT             NOT NULL,
    risk       REAL NOT NULL CHECK (risk >= 0 AND risk <= 1),
    reasons    TEXT             NOT NULL,
    scored_at  INTEGER           NOT NULL,
    PRIMARY KEY (tenant_id, domain, mobile_id)
) STRICT;
CREATE INDEX risk_scores_tenant_risk ON risk_scores (tenant_id, risk);

CREATE TABLE sync_windows (
    tenant_id   TEXT             NOT NULL,
    device_id   TEXT             NOT NULL,
    hour        INTEGER           NOT NULL CHECK (hour >= 0 AND hour < 24),
    minutes     INTEGER           NOT NULL,
    confidence  REAL NOT NULL,
    basis       TEXT             NOT NULL CHECK (basis IN ('device_history', 'fleet', 'rule')),
    planned_at  INTEGER           NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
) STRICT;

CREATE TABLE webhooks (
    tenant_id    TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    url          TEXT   NOT NULL,
    secret       TEXT   NOT NULL,
    events       TEXT   NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    queued_until INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) STRICT;

CREATE TABLE webhook_deliveries (
    tenant_id     TEXT   NOT NULL,
    id            TEXT   NOT NULL,
    webhook       TEXT   NOT NULL,
    event         TEXT   NOT NULL CHECK (event IN ('alert', 'anomaly', 'conflict')),
    event_id      TEXT   NOT NULL,
    body          TEXT   NOT NULL,
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    state         TEXT   NOT NULL CHECK (state IN ('pending', 'delivered', 'retrying', 'failed')),
    first_at      INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    attempted_at  INTEGER,
    status_code   INTEGER,
    error         TEXT,
    next_retry_at INTEGER,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX webhook_deliveries_tenant_hook ON webhook_deliveries (tenant_id, webhook, event_id);
CREATE INDEX webhook_deliveries_tenant_state_due ON webhook_deliveries (tenant_id, state, due_at);

