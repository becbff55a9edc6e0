-- Planner statistics for the record tables of a database that has none yet.
--
-- Without statistics SQLite takes the `(tenant_id, seq)` indexes for lookups by key whenever a
-- statement has more than one `(tenant_id = ? AND domain = ? AND mobile_id IN (…)) OR …` branch,
-- or a `seq <= ?` bound: it then reads every row of the tenant instead of probing the primary
-- key. A new server has empty tables, so `ANALYZE` would record nothing. These rows describe the
-- shape the tables grow into (many records per tenant, unique ids, few versions per record), and
-- real statistics (`ANALYZE`, `PRAGMA optimize`) replace them. PostgreSQL keeps its own.
ANALYZE tenants; -- creates sqlite_stat1 if it does not exist

INSERT INTO sqlite_stat1 (tbl, idx, stat)
SELECT s.tbl, s.idx, s.stat
FROM (
    SELECT 'records' AS tbl, 'sqlite_autoindex_records_1' AS idx, '1000000 100000 20000 1' AS stat
    UNION ALL SELECT 'records', 'records_tenant_seq', '1000000 100000 1'
    UNION ALL SELECT 'records', 'records_tenant_bu_seq', '1000000 100000 10000 1'
    UNION ALL SELECT 'record_versions', 'sqlite_autoindex_record_versions_1', '2000000 200000 40000 2 1'
    UNION ALL SELECT 'record_versions', 'record_versions_tenant_seq', '2000000 200000 1'
) AS s
WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 AS t WHERE t.tbl = s.tbl);

ANALYZE sqlite_schema; -- reload the statistics
