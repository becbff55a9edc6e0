DROP TABLE tenant_policies;
DROP TABLE conflicts;
