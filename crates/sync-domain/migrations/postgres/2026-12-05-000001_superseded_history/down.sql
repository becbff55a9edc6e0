-- Every record's current version back into history (its row was written when the version was).
INSERT INTO record_versions (tenant_id, domain, mobile_id, version, data, deleted, modified_at,
                             server_modified_at, modified_by_device, seq, created_at, bu)
SELECT tenant_id, domain, mobile_id, version, data, deleted, modified_at, server_modified_at,
       modified_by_device, seq, server_modified_at, bu
FROM records;
