//! The database of a server the simulator starts or judges, read and written with plain SQL.
//!
//! The simulator talks to servers over HTTP; it touches their database only to make a fresh
//! one for a server it starts (a file in a temporary directory on SQLite, `CREATE DATABASE`
//! on PostgreSQL; the server's own `serve` runs the migrations), to judge a run (the history
//! and the conflict log of a tenant, SQLite's integrity check), to cut a server's PostgreSQL
//! connections, and for the benchmark's raw baseline. It does so through diesel with rows
//! declared here, never through the server's crates: the few columns read and written here are
//! the only part of the schema the simulator relies on.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{PgConnection, SqliteConnection};

use crate::error::{Error, Result};

/// The PostgreSQL server used when `SYNC_TEST_DATABASE_URL` is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Fresh PostgreSQL databases are named `sim_<unix seconds>_<random>`; ones older than this
/// are left-overs of killed runs and are dropped when a process first makes one.
const STALE_DATABASE_AGE: Duration = Duration::from_secs(6 * 3600);

/// The two database backends of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(Error::Config(format!("unknown database backend {s:?} (sqlite or postgres)"))),
        }
    }
}

/// `SYNC_TEST_DATABASE_URL` (the PostgreSQL server the tests use), or [`DEFAULT_POSTGRES_URL`].
pub fn postgres_url() -> String {
    std::env::var("SYNC_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// How to reach a server's database: cheap to clone; each use opens a connection of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// `sqlite://PATH` or `postgres://…`, as the server is given it.
    url: String,
    target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

/// A connection of either backend.
enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Runs `$body` with `$c` bound to the typed connection, whichever the backend.
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Sqlite($c) => $body,
            Conn::Postgres($c) => $body,
        }
    };
}

/// One version of a record in the server's history.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct VersionRow {
    #[diesel(sql_type = Text)]
    pub domain: String,
    #[diesel(sql_type = Text)]
    pub mobile_id: String,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    /// The record's data as JSON text.
    #[diesel(sql_type = Text)]
    pub data: String,
    #[diesel(sql_type = Bool)]
    pub deleted: bool,
}

/// One entry of the server's conflict log.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct ConflictRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub domain: String,
    #[diesel(sql_type = Text)]
    pub mobile_id: String,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// One new record of the raw baseline: written to `records` at version 1 (a new record has no
/// superseded version for `record_versions`).
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub tenant_id: String,
    pub domain: String,
    pub mobile_id: String,
    pub data: String,
    /// Microseconds since the epoch (the server's time columns).
    pub at: i64,
    pub seq: i64,
}

impl Database {
    /// The database at `url`: `sqlite://PATH` (or `sqlite:PATH`) or `postgres://…`.
    pub fn at(url: &str) -> Result<Database> {
        let target = if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() || path.contains(":memory:") {
                return Err(Error::Config(format!("{url:?}: an in-memory database cannot be shared")));
            }
            Target::Sqlite(PathBuf::from(path))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Target::Postgres(url.to_owned())
        } else {
            return Err(Error::Config(format!("expected sqlite://PATH or postgres://…, got {url:?}")));
        };
        Ok(Database { url: url.to_owned(), target })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        match self.target {
            Target::Sqlite(_) => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
        }
    }

    fn connect(&self) -> Result<Conn> {
        let failed = |source| Error::Connect { url: self.url.clone(), source };
        Ok(match &self.target {
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy()).map_err(failed)?;
                // The server's own settings, so that the raw baseline writes as it does.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                )
                .map_err(query_failed)?;
                Conn::Sqlite(conn)
            }
            Target::Postgres(url) => Conn::Postgres(PgConnection::establish(url).map_err(failed)?),
        })
    }

    /// Runs `f` on a connection of its own on tokio's blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || f(&mut db.connect()?))
            .await
            .map_err(|e| Error::Server(format!("a database task failed: {e}")))?
    }

    /// Every version of every record of `tenant` the server keeps: the superseded ones in
    /// `record_versions` and the current ones in `records`.
    pub async fn history(&self, tenant: &str) -> Result<Vec<VersionRow>> {
        let tenant = tenant.to_owned();
        self.run(move |conn| {
            let query = diesel::sql_query(
                "SELECT domain, mobile_id, version, data, deleted FROM record_versions \
                 WHERE tenant_id = $1 \
                 UNION ALL SELECT domain, mobile_id, version, data, deleted FROM records \
                 WHERE tenant_id = $1 ORDER BY domain, mobile_id, version",
            )
            .bind::<Text, _>(tenant);
            with_conn!(conn, c => query.load(c)).map_err(query_failed)
        })
        .await
    }

    /// Every entry of `tenant`'s conflict log.
    pub async fn conflicts(&self, tenant: &str) -> Result<Vec<ConflictRow>> {
        let tenant = tenant.to_owned();
        self.run(move |conn| {
            let query = diesel::sql_query("SELECT id, domain, mobile_id FROM conflicts WHERE tenant_id = $1")
                .bind::<Text, _>(tenant);
            with_conn!(conn, c => query.load(c)).map_err(query_failed)
        })
        .await
    }

    /// SQLite's `PRAGMA integrity_check`: `["ok"]` for a sound file.
    pub async fn integrity_check(&self) -> Result<Vec<String>> {
        self.run(|conn| match conn {
            Conn::Sqlite(c) => {
                let lines: Vec<Line> =
                    diesel::sql_query("SELECT integrity_check AS line FROM pragma_integrity_check()")
                        .load(c)
                        .map_err(query_failed)?;
                Ok(lines.into_iter().map(|l| l.line).collect())
            }
            Conn::Postgres(_) => Err(Error::Config("integrity_check is SQLite's".into())),
        })
        .await
    }

    /// PostgreSQL connections named `name` (`application_name`) open now.
    pub async fn connections_named(&self, name: &str) -> Result<u64> {
        let name = name.to_owned();
        self.run(move |conn| match conn {
            Conn::Postgres(c) => {
                let count: Count = diesel::sql_query(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind::<Text, _>(name)
                .get_result(c)?;
                Ok(u64::try_from(count.n).unwrap_or(0))
            }
            Conn::Sqlite(_) => Ok(0),
        })
        .await
    }

    /// Refreshes the planner's statistics (`ANALYZE`).
    pub async fn analyze(&self) -> Result<()> {
        self.run(|conn| with_conn!(conn, c => c.batch_execute("ANALYZE")).map_err(query_failed)).await
    }

    /// The benchmark's raw baseline: each batch of new records upserted into `records` with one
    /// multi-row statement, in one write transaction, as a push does, and nothing else (a new
    /// record supersedes no version, so nothing goes to `record_versions`). Returns the time
    /// the writes took.
    pub async fn raw_upsert(&self, batches: Vec<Vec<RawRecord>>) -> Result<Duration> {
        self.run(move |conn| {
            let started = Instant::now();
            for batch in &batches {
                let records = raw_statement(batch);
                match conn {
                    Conn::Sqlite(c) => c.immediate_transaction(|c| diesel::sql_query(&records).execute(c)),
                    Conn::Postgres(c) => c.transaction(|c| diesel::sql_query(&records).execute(c)),
                }
                .map_err(query_failed)?;
            }
            Ok(started.elapsed())
        })
        .await
    }
}

/// The raw baseline's statement for one batch. The values are generated by the
/// benchmark (UUIDs, digits and JSON without quotes of its own); they are quoted all the same.
fn raw_statement(batch: &[RawRecord]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut records = String::from(
        "INSERT INTO records (tenant_id, domain, mobile_id, version, data, deleted, modified_at, \
         server_modified_at, modified_by_device, bu, priority, seq) VALUES ",
    );
    for (i, r) in batch.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let (t, d, m, data) = (quote(&r.tenant_id), quote(&r.domain), quote(&r.mobile_id), quote(&r.data));
        records.push_str(&format!(
            "{sep}({t}, {d}, {m}, 1, {data}, FALSE, {at}, {at}, 'raw', NULL, 'medium', {seq})",
            at = r.at,
            seq = r.seq
        ));
    }
    records.push_str(
        " ON CONFLICT (tenant_id, domain, mobile_id) DO UPDATE SET version = excluded.version, \
         data = excluded.data, deleted = excluded.deleted, modified_at = excluded.modified_at, \
         server_modified_at = excluded.server_modified_at, \
         modified_by_device = excluded.modified_by_device, bu = excluded.bu, \
         priority = excluded.priority, seq = excluded.seq",
    );
    records
}

fn query_failed(e: diesel::result::Error) -> Error {
    Error::Database(e)
}

/// A database made for one server and removed when dropped: a file in a temporary directory
/// (SQLite), or a database of its own on the PostgreSQL server of [`postgres_url`]. It is
/// empty: the server's `serve` migrates it at start.
#[derive(Debug)]
pub struct FreshDatabase {
    database: Database,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    /// Held for its `Drop`, which deletes the directory.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl FreshDatabase {
    /// A new, empty database of `backend`.
    pub fn new(backend: Backend) -> Result<FreshDatabase> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()
                    .map_err(|source| Error::Io { path: "a temporary directory".into(), source })?;
                let database = Database::at(&format!("sqlite://{}", dir.path().join("sync.db").display()))?;
                Ok(FreshDatabase { database, cleanup: Cleanup::Sqlite { _dir: dir } })
            }
            Backend::Postgres => {
                let admin_url = postgres_url();
                let mut admin = admin_connection(&admin_url)?;
                static SWEPT: OnceLock<()> = OnceLock::new();
                SWEPT.get_or_init(|| drop_stale_databases(&mut admin));
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let name = format!("sim_{now}_{}", uuid::Uuid::new_v4().simple());
                admin.batch_execute(&format!("CREATE DATABASE {name}")).map_err(query_failed)?;
                let database = Database::at(&with_database_name(&admin_url, &name)?)?;
                Ok(FreshDatabase { database, cleanup: Cleanup::Postgres { admin_url, name } })
            }
        }
    }

    pub fn database(&self) -> &Database {
        &self.database
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let dropped = admin_connection(admin_url).and_then(|mut admin| {
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .map_err(query_failed)
            });
            if let Err(e) = dropped {
                eprintln!("warning: could not drop database {name}: {e}");
            }
        }
    }
}

/// A connection to the PostgreSQL server's administrative database.
fn admin_connection(url: &str) -> Result<PgConnection> {
    let url = if url.contains("connect_timeout=") {
        url.to_owned()
    } else {
        format!("{url}{}connect_timeout=5", if url.contains('?') { '&' } else { '?' })
    };
    PgConnection::establish(&url).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().trim().to_owned();
        Error::Server(format!("PostgreSQL is not reachable (see SYNC_TEST_DATABASE_URL): {first}"))
    })
}

/// `url` with its database name replaced by `name`.
fn with_database_name(url: &str, name: &str) -> Result<String> {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end =
        base.find("://").map(|i| i + 3).ok_or_else(|| Error::Config(format!("bad URL {url:?}")))?;
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// Drops `sim_*` databases older than [`STALE_DATABASE_AGE`] (left by killed runs).
fn drop_stale_databases(admin: &mut PgConnection) {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        datname: String,
    }
    let Ok(names) =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'sim\\_%'").load::<Name>(admin)
    else {
        return;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for Name { datname } in names {
        let made = datname.split('_').nth(1).and_then(|s| s.parse::<u64>().ok());
        if made.is_some_and(|made| now.saturating_sub(made) > STALE_DATABASE_AGE.as_secs())
            && datname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"));
        }
    }
}

/// Terminates every PostgreSQL backend whose `application_name` is `name` (on the server of
/// [`postgres_url`]); returns how many.
pub async fn terminate_backends(name: &str) -> Result<usize> {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        // A connection of its own, not named like the server's.
        let mut conn = admin_connection(&postgres_url())?;
        let count: Count = diesel::sql_query(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind::<Text, _>(name)
        .get_result(&mut conn)
        .map_err(|e| Error::Server(format!("pg_terminate_backend failed: {e}")))?;
        Ok(usize::try_from(count.n).unwrap_or(0))
    })
    .await
    .map_err(|e| Error::Server(format!("the terminating task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let at = |url: &str| Database::at(url).map(|d| d.backend());
        assert_eq!(at("sqlite:///tmp/x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(at("postgres://u@h/db?x=1").ok(), Some(Backend::Postgres));
        assert!(at("sqlite::memory:").is_err() && at("mysql://x").is_err());
        assert_eq!(
            with_database_name("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "sim_1").ok(),
            Some("postgres://postgres@127.0.0.1:5432/sim_1?sslmode=disable".to_owned())
        );
        assert_eq!(with_database_name("postgres://h", "d").ok(), Some("postgres://h/d".to_owned()));
    }

    #[test]
    fn the_raw_statement_quotes_and_lists_every_row() {
        let row = |seq| RawRecord {
            tenant_id: "t'1".into(),
            domain: "task".into(),
            mobile_id: format!("m{seq}"),
            data: "{}".into(),
            at: 7,
            seq,
        };
        let records = raw_statement(&[row(1), row(2)]);
        assert!(records.contains("('t''1', 'task', 'm1', 1, '{}', FALSE, 7, 7, 'raw', NULL, 'medium', 1), "));
        assert!(
            records.contains("('t''1', 'task', 'm2', 1, '{}', FALSE, 7, 7, 'raw', NULL, 'medium', 2) ON")
        );
        assert!(records.ends_with("seq = excluded.seq"));
    }
}
