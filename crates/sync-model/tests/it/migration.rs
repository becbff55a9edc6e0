//! The migration template: columns, indexes, tenant-led indexes, identifier checks.

use sync_model::migration::{Backend, MigrationOptions, sync_migration};

#[test]
fn postgres_template_adds_every_sync_column_and_index() {
    let sql = sync_migration(&MigrationOptions::new("jobneed", Backend::Postgres)).unwrap();
    for column in [
        "mobile_id UUID",
        "version BIGINT",
        "sync_status VARCHAR(20)",
        "modified_at TIMESTAMPTZ",
        "deleted BOOLEAN",
        "priority VARCHAR(6)",
    ] {
        assert!(sql.up.contains(&format!("ALTER TABLE jobneed ADD COLUMN {column}")), "{column}: {}", sql.up);
    }
    assert!(sql.up.contains("CREATE UNIQUE INDEX jobneed_mobile_id_uniq ON jobneed (mobile_id);"));
    assert!(!sql.up.contains("conflict_count"));
    assert!(sql.down.starts_with("DROP INDEX IF EXISTS jobneed_server_modified_idx;"));
    assert!(sql.down.contains("ALTER TABLE jobneed DROP COLUMN mobile_id;"));
}

#[test]
fn conflict_columns_and_tenant_lead_are_optional() {
    let mut options = MigrationOptions::new("ticket", Backend::Sqlite);
    options.with_conflicts = true;
    options.tenant_column = Some("client_id".into());
    let sql = sync_migration(&options).unwrap();
    assert!(sql.up.contains("ALTER TABLE ticket ADD COLUMN conflict_count INTEGER NOT NULL DEFAULT 0;"));
    assert!(sql.up.contains("ALTER TABLE ticket ADD COLUMN conflict_data TEXT;"));
    assert!(sql.up.contains("CREATE UNIQUE INDEX ticket_mobile_id_uniq ON ticket (client_id, mobile_id);"));
    assert!(sql.down.contains("ALTER TABLE ticket DROP COLUMN conflict_data;"));
}

#[test]
fn identifiers_are_checked() {
    assert!(sync_migration(&MigrationOptions::new("jobs; DROP TABLE x", Backend::Sqlite)).is_err());
    assert!(sync_migration(&MigrationOptions::new("1jobs", Backend::Sqlite)).is_err());
    assert_eq!("PostgreSQL".parse::<Backend>(), Ok(Backend::Postgres));
    assert!("oracle".parse::<Backend>().is_err());
}
