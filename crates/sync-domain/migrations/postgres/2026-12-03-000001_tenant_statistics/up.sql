-- No planner statistics for `tenant_id`.
--
-- Every tenant-owned table leads its primary key and each index with `tenant_id`. With
-- statistics, PostgreSQL estimates a tenant that was small (or absent) at the last ANALYZE at
-- about one row, and then any index that starts with `tenant_id` looks as cheap as the primary
-- key: a push's look-up of 100 records by key read every row of a tenant that had grown to
-- 400,000 records since (1.2 s instead of 2 ms). A sync server's plans must not depend on which
-- tenants were big when the table was last analysed. Without statistics the planner takes a
-- fixed share of the table for any one tenant and picks indexes by the other conditions: the
-- primary key for look-ups by key, `(tenant_id, seq)` for pulls.
--
-- Changing the column to its own type drops the statistics already gathered (ANALYZE leaves
-- them in place once a column's target is 0); it rewrites nothing and rebuilds no index.
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT c.table_name
        FROM information_schema.columns AS c
        JOIN information_schema.tables AS tb
          ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
        WHERE c.table_schema = current_schema()
          AND c.column_name = 'tenant_id'
          AND tb.table_type = 'BASE TABLE'
    LOOP
        EXECUTE format(
            'ALTER TABLE %I ALTER COLUMN tenant_id SET STATISTICS 0, ALTER COLUMN tenant_id TYPE text',
            t
        );
    END LOOP;
END
$$;
