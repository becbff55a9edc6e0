DELETE FROM sqlite_stat1
WHERE tbl IN ('records', 'record_versions')
  AND idx IN ('sqlite_autoindex_records_1', 'records_tenant_seq', 'records_tenant_bu_seq',
              'sqlite_autoindex_record_versions_1', 'record_versions_tenant_seq');
