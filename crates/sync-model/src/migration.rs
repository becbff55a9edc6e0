//! SQL that adds the sync columns and indexes to an existing application table.
//!
//! The generated SQL is plain text for the operator to review and put into their own
//! migration tool; this module never runs it.

use std::{fmt, str::FromStr};

/// The database a migration is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" | "pg" => Ok(Self::Postgres),
            other => Err(format!("unknown backend `{other}` (expected sqlite or postgres)")),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationOptions {
    pub table: String,
    pub backend: Backend,
    /// Also add the conflict-tracking columns (`conflict_count`, `last_conflict_at`,
    /// `conflict_data`).
    pub with_conflicts: bool,
    /// A tenant column of the table to lead every index with, so the table can later be
    /// distributed by tenant.
    pub tenant_column: Option<String>,
}

impl MigrationOptions {
    pub fn new(table: impl Into<String>, backend: Backend) -> Self {
        Self { table: table.into(), backend, with_conflicts: false, tenant_column: None }
    }
}

/// The `up` and `down` SQL of one migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationSql {
    pub up: String,
    pub down: String,
}

impl fmt::Display for MigrationSql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "-- up.sql")?;
        f.write_str(&self.up)?;
        writeln!(f, "\n-- down.sql")?;
        f.write_str(&self.down)
    }
}

/// Errors in the options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    #[error("`{0}` is not a plain SQL identifier (letters, digits and _, not starting with a digit)")]
    BadIdentifier(String),
}

struct Column {
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const SYNC_COLUMNS: &[Column] = &[
    Column { name: "mobile_id", sqlite: "TEXT", postgres: "UUID" },
    Column { name: "version", sqlite: "INTEGER NOT NULL DEFAULT 0", postgres: "BIGINT NOT NULL DEFAULT 0" },
    Column {
        name: "sync_status",
        sqlite: "TEXT NOT NULL DEFAULT 'synced' CHECK (sync_status IN ('synced','pending_sync','sync_error','pending_delete','conflict'))",
        postgres: "VARCHAR(20) NOT NULL DEFAULT 'synced' CHECK (sync_status IN ('synced','pending_sync','sync_error','pending_delete','conflict'))",
    },
    Column { name: "modified_at", sqlite: "TEXT", postgres: "TIMESTAMPTZ" },
    Column { name: "server_modified_at", sqlite: "TEXT", postgres: "TIMESTAMPTZ" },
    Column { name: "modified_by_device", sqlite: "TEXT", postgres: "VARCHAR(255)" },
    Column {
        name: "deleted",
        sqlite: "INTEGER NOT NULL DEFAULT 0",
        postgres: "BOOLEAN NOT NULL DEFAULT FALSE",
    },
    Column { name: "bu", sqlite: "TEXT", postgres: "VARCHAR(255)" },
    Column {
        name: "priority",
        sqlite: "TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('high','medium','low'))",
        postgres: "VARCHAR(6) NOT NULL DEFAULT 'medium' CHECK (priority IN ('high','medium','low'))",
    },
];

const CONFLICT_COLUMNS: &[Column] = &[
    Column {
        name: "conflict_count",
        sqlite: "INTEGER NOT NULL DEFAULT 0",
        postgres: "INTEGER NOT NULL DEFAULT 0",
    },
    Column { name: "last_conflict_at", sqlite: "TEXT", postgres: "TIMESTAMPTZ" },
    Column { name: "conflict_data", sqlite: "TEXT", postgres: "JSONB" },
];

fn check_identifier(name: &str) -> Result<(), MigrationError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63;
    if ok { Ok(()) } else { Err(MigrationError::BadIdentifier(name.to_owned())) }
}

/// The SQL that adds the sync columns (and optionally the conflict-tracking columns) to
/// `options.table`, with a unique index on `mobile_id` and indexes for the sync queries
/// (records by status, records changed since a time), each led by the tenant column when
/// one is named.
pub fn sync_migration(options: &MigrationOptions) -> Result<MigrationSql, MigrationError> {
    let table = options.table.as_str();
    check_identifier(table)?;
    if let Some(tenant) = &options.tenant_column {
        check_identifier(tenant)?;
    }
    let lead = options.tenant_column.as_deref().map(|t| format!("{t}, ")).unwrap_or_default();
    let columns: Vec<&Column> =
        SYNC_COLUMNS.iter().chain(if options.with_conflicts { CONFLICT_COLUMNS } else { &[] }).collect();

    let mut up = String::new();
    for column in &columns {
        let ty = match options.backend {
            Backend::Sqlite => column.sqlite,
            Backend::Postgres => column.postgres,
        };
        up.push_str(&format!("ALTER TABLE {table} ADD COLUMN {} {ty};\n", column.name));
    }
    let indexes = [
        (format!("{table}_mobile_id_uniq"), true, format!("{lead}mobile_id")),
        (format!("{table}_sync_status_idx"), false, format!("{lead}sync_status")),
        (format!("{table}_server_modified_idx"), false, format!("{lead}server_modified_at")),
    ];
    for (name, unique, cols) in &indexes {
        let unique = if *unique { "UNIQUE " } else { "" };
        up.push_str(&format!("CREATE {unique}INDEX {name} ON {table} ({cols});\n"));
    }

    let mut down = String::new();
    for (name, _, _) in indexes.iter().rev() {
        down.push_str(&format!("DROP INDEX IF EXISTS {name};\n"));
    }
    for column in columns.iter().rev() {
        down.push_str(&format!("ALTER TABLE {table} DROP COLUMN {};\n", column.name));
    }
    Ok(MigrationSql { up, down })
}
