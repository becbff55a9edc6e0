ALTER TABLE api_tokens DROP COLUMN last_used_at;
ALTER TABLE api_tokens DROP COLUMN revoked_at;
DROP INDEX api_tokens_id;
ALTER TABLE api_tokens DROP COLUMN id;
