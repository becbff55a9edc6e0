-- Core sync tables (PostgreSQL). Keep in step with migrations/sqlite.
-- Portable types: ids TEXT, JSON TEXT, times BIGINT microseconds since the Unix epoch (UTC).
-- Every tenant-owned table leads its primary key and every index with tenant_id, so the schema
-- can be distributed by tenant_id (Citus) unchanged. Exceptions: tenants (keyed by the tenant
-- id itself) and api_tokens (a small global lookup table: a Citus reference table).

CREATE TABLE tenants (
    id         TEXT   NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- The per-tenant change sequence (see the crate README, "No skipped changes"). Writers take numbers
-- with an upsert-increment ... RETURNING late in their transaction; the row lock, held to commit,
-- makes one tenant's sequence numbers commit in order.
-- fillfactor leaves room on the page for HOT updates of this very hot row.
CREATE TABLE change_counters (
    tenant_id TEXT   NOT NULL PRIMARY KEY,
    last_seq  BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
) WITH (fillfactor = 50);

CREATE TABLE users (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id),
    id         TEXT   NOT NULL,
    role       TEXT   NOT NULL CHECK (role IN ('device', 'admin')),
    units      TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Looked up by hash before the tenant is known: a global table (Citus reference table).
-- Role and units are copied from the token's creation so that a lookup needs no join.
CREATE TABLE api_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('device', 'admin')),
    units      TEXT,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX api_tokens_tenant_user ON api_tokens (tenant_id, user_id);

CREATE TABLE devices (
    tenant_id       TEXT             NOT NULL,
    device_id       TEXT             NOT NULL,
    user_id         TEXT             NOT NULL,
    cursor_seq      BIGINT,
    last_seen_at    BIGINT           NOT NULL,
    avg_ms_per_item DOUBLE PRECISION,
    PRIMARY KEY (tenant_id, device_id)
);
CREATE INDEX devices_tenant_seen ON devices (tenant_id, last_seen_at);

CREATE TABLE records (
    tenant_id          TEXT    NOT NULL,
    domain             TEXT    NOT NULL,
    mobile_id          TEXT    NOT NULL,
    version            BIGINT  NOT NULL CHECK (version >= 1),
    data               TEXT    NOT NULL,
    deleted            BOOLEAN NOT NULL,
    modified_at        BIGINT  NOT NULL,
    server_modified_at BIGINT  NOT NULL,
    modified_by_device TEXT    NOT NULL,
    bu                 TEXT,
    priority           TEXT    NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
    seq                BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, domain, mobile_id)
);
CREATE UNIQUE INDEX records_tenant_seq ON records (tenant_id, seq);
CREATE INDEX records_tenant_bu_seq ON records (tenant_id, bu, seq);

CREATE TABLE record_versions (
    tenant_id          TEXT    NOT NULL,
    domain             TEXT    NOT NULL,
    mobile_id          TEXT    NOT NULL,
    version            BIGINT  NOT NULL CHECK (version >= 1),
    data               TEXT    NOT NULL,
    deleted            BOOLEAN NOT NULL,
    modified_at        BIGINT  NOT NULL,
    server_modified_at BIGINT  NOT NULL,
    modified_by_device TEXT    NOT NULL,
    seq                BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, domain, mobile_id, version)
);
CREATE INDEX record_versions_tenant_seq ON record_versions (tenant_id, seq);

CREATE TABLE idempotency_keys (
    tenant_id    TEXT   NOT NULL,
    user_id      TEXT   NOT NULL,
    device_id    TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    request_hash TEXT   NOT NULL,
    response     TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, device_id, key)
);
CREATE INDEX idempotency_keys_tenant_created ON idempotency_keys (tenant_id, created_at);

CREATE TABLE purge_marks (
    tenant_id        TEXT   NOT NULL PRIMARY KEY,
    purged_below_seq BIGINT NOT NULL,
    purged_at        BIGINT NOT NULL
);
