-- Planner statistics for the record tables. SQLite's counterpart seeds statistics for a new
-- database; PostgreSQL's autovacuum gathers its own, by default after a tenth of a table has
-- changed. The record tables only grow, and their `seq` columns climb past the last histogram,
-- so they are analysed after every 2 % instead.
ALTER TABLE records SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE record_versions SET (autovacuum_analyze_scale_factor = 0.02);
