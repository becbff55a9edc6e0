-- Every version keeps the business unit its record was in, so that a delta pull of a user
-- limited to units starts only from a version that user could have received: a record may move
-- between units, and a patch from a version of another unit would rest on data the user never
-- got. Versions written before this migration take their record's current unit, which is right
-- for every record that never moved. Keep in step with migrations/postgres.
ALTER TABLE record_versions ADD COLUMN bu TEXT;
UPDATE record_versions
SET bu = (SELECT r.bu FROM records r
          WHERE r.tenant_id = record_versions.tenant_id
            AND r.domain = record_versions.domain
            AND r.mobile_id = record_versions.mobile_id)
WHERE EXISTS (SELECT 1 FROM records r
              WHERE r.tenant_id = record_versions.tenant_id
                AND r.domain = record_versions.domain
                AND r.mobile_id = record_versions.mobile_id
                AND r.bu IS NOT NULL);
