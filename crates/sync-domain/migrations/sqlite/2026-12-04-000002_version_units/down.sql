ALTER TABLE record_versions DROP COLUMN bu;
