-- Token lifecycle (`sync-server token list|revoke`): every token gets an id that can be shown
-- and revoked without the token itself, the time it was revoked, and the time it was last used
-- (written at most once a minute per token, not on every request).
ALTER TABLE api_tokens ADD COLUMN id TEXT;
UPDATE api_tokens SET id = gen_random_uuid()::text;
ALTER TABLE api_tokens ALTER COLUMN id SET NOT NULL;
CREATE UNIQUE INDEX api_tokens_id ON api_tokens (id);
ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
