-- Every version keeps the business unit its record was in, so that a delta pull of a user
-- limited to units starts only from a version that user could have received: a record may move
-- between units, and a patch from a version of another unit would rest on data the user never
-- got. Versions written before this migration take their record's current unit, which is right
-- for every record that never moved. Keep in step with migrations/sqlite.
ALTER TABLE record_versions ADD COLUMN bu TEXT;
UPDATE record_versions AS v
SET bu = r.bu
FROM records AS r
WHERE r.tenant_id = v.tenant_id
  AND r.domain = v.domain
  AND r.mobile_id = v.mobile_id
  AND r.bu IS NOT NULL;
