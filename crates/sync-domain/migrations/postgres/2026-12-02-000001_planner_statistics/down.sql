ALTER TABLE records RESET (autovacuum_analyze_scale_factor);
ALTER TABLE record_versions RESET (autovacuum_analyze_scale_factor);
