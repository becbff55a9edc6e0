-- Token lifecycle (`sync-server token list|revoke`): every token gets an id that can be shown
-- and revoked without the token itself, the time it was revoked, and the time it was last used
-- (written at most once a minute per token, not on every request). SQLite cannot add a NOT NULL
-- column without a default: every insert sets `id`, and the unique index keeps it unique.
ALTER TABLE api_tokens ADD COLUMN id TEXT;
UPDATE api_tokens SET id = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
    || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1)
    || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX api_tokens_id ON api_tokens (id);
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
