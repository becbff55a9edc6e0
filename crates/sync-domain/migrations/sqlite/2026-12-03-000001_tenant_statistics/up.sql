-- PostgreSQL's counterpart stops gathering statistics on `tenant_id`, so that a tenant's size
-- at the last ANALYZE cannot steer look-ups by key onto a scan of the tenant. The server never
-- runs ANALYZE on SQLite: its statistics are the seeded averages of `planner_statistics`, the
-- same for every tenant. Nothing to change here.
SELECT 1;
