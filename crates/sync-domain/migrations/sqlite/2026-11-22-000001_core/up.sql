-- Core sync tables (SQLite). Keep in step with migrations/postgres.
-- STRICT tables, so SQLite enforces the column types. Booleans are INTEGER 0/1.
-- Portable types: ids TEXT, JSON TEXT, times INTEGER microseconds since the Unix epoch (UTC).
-- Every tenant-owned table leads its primary key and every index with tenant_id, so the schema
-- can be distributed by tenant_id (Citus) unchanged. Exceptions: tenants (keyed by the tenant
-- id itself) and api_tokens (a small global lookup table: a Citus reference table).

CREATE TABLE tenants (
    id         TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The per-tenant change sequence (see the crate README, "No skipped changes"). On SQLite every
-- write transaction is BEGIN IMMEDIATE, so writers are serialised and commit in sequence order.
CREATE TABLE change_counters (
    tenant_id TEXT    NOT NULL PRIMARY KEY,
    last_seq  INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
) STRICT, WITHOUT ROWID;

CREATE TABLE users (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    id         TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('device', 'admin')),
    units      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;

-- Looked up by hash before the tenant is known: a global table (Citus reference table).
-- Role and units are copied from the token's creation so that a lookup needs no join.
CREATE TABLE api_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('device', 'admin')),
    units      TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked    INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT, WITHOUT ROWID;
CREATE INDEX api_tokens_tenant_user ON api_tokens (tenant_id, user_id);

CREATE TABLE devices (
    tenant_id       TEXT    NOT NULL,
    device_id       TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    cursor_seq      INTEGER,
    last_seen_at    INTEGER NOT NULL,
    avg_ms_per_item REAL,
    PRIMARY KEY (tenant_id, device_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX devices_tenant_seen ON devices (tenant_id, last_seen_at);

CREATE TABLE records (
    tenant_id          TEXT    NOT NULL,
    domain             TEXT    NOT NULL,
    mobile_id          TEXT    NOT NULL,
    version            INTEGER NOT NULL CHECK (version >= 1),
    data               TEXT    NOT NULL,
    deleted            INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    modified_at        INTEGER NOT NULL,
    server_modified_at INTEGER NOT NULL,
    modified_by_device TEXT    NOT NULL,
    bu                 TEXT,
    priority           TEXT    NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
    seq                INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, domain, mobile_id)
) STRICT;
CREATE UNIQUE INDEX records_tenant_seq ON records (tenant_id, seq);
CREATE INDEX records_tenant_bu_seq ON records (tenant_id, bu, seq);

CREATE TABLE record_versions (
    tenant_id          TEXT    NOT NULL,
    domain             TEXT    NOT NULL,
    mobile_id          TEXT    NOT NULL,
    version            INTEGER NOT NULL CHECK (version >= 1),
    data               TEXT    NOT NULL,
    deleted            INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    modified_at        INTEGER NOT NULL,
    server_modified_at INTEGER NOT NULL,
    modified_by_device TEXT    NOT NULL,
    seq                INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, domain, mobile_id, version)
) STRICT;
CREATE INDEX record_versions_tenant_seq ON record_versions (tenant_id, seq);

CREATE TABLE idempotency_keys (
    tenant_id    TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    device_id    TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    response     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id, device_id, key)
) STRICT;
CREATE INDEX idempotency_keys_tenant_created ON idempotency_keys (tenant_id, created_at);

CREATE TABLE purge_marks (
    tenant_id        TEXT    NOT NULL PRIMARY KEY,
    purged_below_seq INTEGER NOT NULL,
    purged_at        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
