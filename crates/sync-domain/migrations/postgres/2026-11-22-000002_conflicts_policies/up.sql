-- Conflict log (with pending manual conflicts) and per-tenant policy overrides (PostgreSQL).

CREATE TABLE conflicts (
    tenant_id           TEXT   NOT NULL,
    id                  TEXT   NOT NULL,
    domain              TEXT   NOT NULL,
    mobile_id           TEXT   NOT NULL,
    server_version      BIGINT NOT NULL,
    client_base_version BIGINT NOT NULL,
    client_version      BIGINT,
    strategy            TEXT   NOT NULL,
    result              TEXT   NOT NULL CHECK (result IN ('resolved', 'manual_required', 'failed')),
    winner              TEXT   NOT NULL CHECK (winner IN ('client', 'server', 'merged', 'none')),
    details             TEXT   NOT NULL,
    device_id           TEXT   NOT NULL,
    user_id             TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    status              TEXT   NOT NULL CHECK (status IN ('pending', 'resolved', 'auto')),
    client_state        TEXT,
    server_state        TEXT,
    resolved_at         BIGINT,
    resolved_by         TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX conflicts_tenant_status_created ON conflicts (tenant_id, status, created_at);
CREATE INDEX conflicts_tenant_created ON conflicts (tenant_id, created_at);

CREATE TABLE tenant_policies (
    tenant_id          TEXT    NOT NULL,
    domain             TEXT    NOT NULL,
    policy             TEXT    NOT NULL,
    auto_resolve       BOOLEAN NOT NULL,
    notify_on_conflict BOOLEAN NOT NULL,
    updated_at         BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, domain)
);
