-- History keeps only superseded versions: a record's current version lives in `records` alone,
-- so a new record is written once, not twice (docs/benchmarks.md, "History keeps superseded
-- versions only"). Readers of a version take the current one from `records` (store
-- `get_versions`, `versions_as_of`, `tenant_history`). Keep in step with migrations/postgres.
DELETE FROM record_versions
WHERE EXISTS (SELECT 1 FROM records r
              WHERE r.tenant_id = record_versions.tenant_id
                AND r.domain = record_versions.domain
                AND r.mobile_id = record_versions.mobile_id
                AND r.version = record_versions.version);
