//! Test-database harness (feature `testing`): an isolated, migrated database per test.
//!
//! - [`TestDb::sqlite`]: a fresh file in a temporary directory, deleted on drop.
//! - [`TestDb::postgres`]: a fresh schema in the database of `SYNC_TEST_DATABASE_URL`
//!   (default `postgres://postgres@127.0.0.1:5432/postgres`), selected through the URL's
//!   `options=-c search_path=…` so that [`TestDb::url`] works anywhere (a server started by a
//!   test, the CLI), and dropped on drop. When PostgreSQL cannot be reached it returns `None`
//!   after printing `skipping: PostgreSQL unreachable`, unless `CI=true` or
//!   `SYNC_REQUIRE_POSTGRES=1`: then a missing database is a failure and it panics.
//! - [`backend_tests!`](crate::backend_tests) writes each test once and runs it on both.
//!
//! Failing to set up a test database is a test failure, so this module panics instead of
//! returning errors.
#![allow(clippy::expect_used)]

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::db::{Backend, ConnectOptions, Database, quote_ident};

/// The PostgreSQL server tests use when `SYNC_TEST_DATABASE_URL` is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Test schemas are named `sft_<unix seconds>_<random>`; ones older than this are left-overs
/// of killed runs and are dropped when a process first asks for a PostgreSQL database.
const STALE_SCHEMA_AGE: Duration = Duration::from_secs(6 * 3600);

/// An isolated, migrated database that is removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    db: Option<Database>,
    url: String,
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
        schema: String,
    },
}

fn test_options() -> ConnectOptions {
    ConnectOptions { max_connections: Some(6), min_idle: 0, ..ConnectOptions::default() }
}

impl TestDb {
    /// A migrated SQLite database in a temporary file.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("sync.db").display());
        let db = Database::connect(&url, test_options()).expect("open the test SQLite database");
        db.migrate().expect("migrate the test SQLite database");
        TestDb { db: Some(db), url, cleanup: Cleanup::Sqlite { _dir: dir } }
    }

    /// A migrated PostgreSQL schema of its own, or `None` (after printing why) when PostgreSQL
    /// is unreachable and not required (see the module docs).
    pub fn postgres() -> Option<TestDb> {
        let admin_url = postgres_url();
        let mut admin = match admin_connection(&admin_url) {
            Ok(conn) => conn,
            Err(reason) => {
                if postgres_required() {
                    panic!(
                        "PostgreSQL is required (CI=true or SYNC_REQUIRE_POSTGRES=1) but unreachable at \
                         {admin_url}: {reason}"
                    );
                }
                eprintln!("skipping: PostgreSQL unreachable ({reason})");
                return None;
            }
        };
        static SWEPT: OnceLock<()> = OnceLock::new();
        SWEPT.get_or_init(|| drop_stale_schemas(&mut admin));

        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let schema = format!("sft_{now}_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE SCHEMA {}", quote_ident(&schema)))
            .expect("create the test schema");
        let url = with_search_path(&admin_url, &schema);
        let cleanup = Cleanup::Postgres { admin_url, schema };
        let db = Database::connect(&url, test_options()).expect("connect to the test schema");
        let test_db = TestDb { db: Some(db), url, cleanup };
        test_db.database().migrate().expect("migrate the test schema");
        Some(test_db)
    }

    /// A test database of the given backend (`None`: PostgreSQL skipped, see
    /// [`TestDb::postgres`]).
    pub fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::sqlite()),
            Backend::Postgres => TestDb::postgres(),
        }
    }

    /// The handle (clone it freely; the database lives as long as this `TestDb`).
    pub fn database(&self) -> &Database {
        self.db.as_ref().expect("the database lives until drop")
    }

    /// A URL that reaches this database (for PostgreSQL it selects the test schema).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.database().backend()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Close our pool first so that no connection of ours is inside the schema.
        drop(self.db.take());
        if let Cleanup::Postgres { admin_url, schema } = &self.cleanup {
            match admin_connection(admin_url) {
                Ok(mut admin) => {
                    if let Err(e) = admin.batch_execute(&format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
                        quote_ident(schema)
                    )) {
                        eprintln!("warning: could not drop test schema {schema}: {e}");
                    }
                }
                Err(e) => eprintln!("warning: could not drop test schema {schema}: {e}"),
            }
        }
    }
}

/// Whether the tests of `backend` run: `SYNC_TEST_BACKENDS` is `sqlite`, `postgres` or `all`
/// (the default), as `cargo xtask test <backend>` sets it.
pub fn backend_selected(backend: Backend) -> bool {
    match std::env::var("SYNC_TEST_BACKENDS").unwrap_or_default().to_ascii_lowercase().as_str() {
        "sqlite" => backend == Backend::Sqlite,
        "postgres" => backend == Backend::Postgres,
        _ => true,
    }
}

/// `SYNC_TEST_DATABASE_URL`, or [`DEFAULT_POSTGRES_URL`].
pub fn postgres_url() -> String {
    std::env::var("SYNC_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// Whether a missing PostgreSQL fails the tests (`CI=true` or `SYNC_REQUIRE_POSTGRES=1`).
pub fn postgres_required() -> bool {
    let set = |name: &str, value: &str| std::env::var(name).is_ok_and(|v| v.eq_ignore_ascii_case(value));
    set("CI", "true") || set("SYNC_REQUIRE_POSTGRES", "1")
}

fn admin_connection(url: &str) -> Result<PgConnection, String> {
    // Remember an unreachable server so that every later test skips at once.
    static UNREACHABLE: OnceLock<String> = OnceLock::new();
    if let Some(reason) = UNREACHABLE.get() {
        return Err(reason.clone());
    }
    let url = if url.contains("connect_timeout=") {
        url.to_owned()
    } else {
        format!("{url}{}connect_timeout=3", if url.contains('?') { '&' } else { '?' })
    };
    PgConnection::establish(&url).map_err(|e| {
        let first_line = e.to_string().lines().next().unwrap_or_default().trim().to_owned();
        UNREACHABLE.get_or_init(|| first_line).clone()
    })
}

/// The URL with `options=-c search_path=<schema>` added (libpq applies it to every session).
fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    // Schema names are [a-z0-9_]: only the space and '=' need escaping.
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

fn drop_stale_schemas(admin: &mut PgConnection) {
    #[derive(QueryableByName)]
    struct Schema {
        #[diesel(sql_type = diesel::sql_types::Text)]
        nspname: String,
    }
    let Ok(schemas) = diesel::sql_query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sft\\_%'")
        .load::<Schema>(admin)
    else {
        return;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for Schema { nspname } in schemas {
        let created = nspname.split('_').nth(1).and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > STALE_SCHEMA_AGE.as_secs()) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&nspname)));
        }
    }
}

/// Runs `test` on a fresh SQLite database, then on a fresh PostgreSQL schema (unless skipped,
/// see [`TestDb::postgres`]).
pub async fn for_each_backend<F, Fut>(mut test: F)
where
    F: FnMut(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    if backend_selected(Backend::Sqlite) {
        let sqlite = TestDb::sqlite();
        test(sqlite.database().clone()).await;
        drop(sqlite);
    }
    if !backend_selected(Backend::Postgres) {
        return;
    }
    if let Some(postgres) = TestDb::postgres() {
        test(postgres.database().clone()).await;
    }
}

/// Generates, for each named `async fn NAME(db: Database)` in scope, the tests
/// `sqlite::NAME` and `postgres::NAME`, each on a fresh [`TestDb`] (multi-threaded tokio
/// runtime). The PostgreSQL ones skip when PostgreSQL is unreachable and not required.
///
/// ```
/// use sync_domain::Database;
///
/// async fn allocates_in_order(db: Database) {
///     let first = db.write_tx(|c| sync_domain::store::allocate_seqs(c, "t", 3)).await.unwrap();
///     assert_eq!(first, 1);
/// }
///
/// sync_domain::backend_tests!(allocates_in_order);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::testing::backend_selected($crate::Backend::Sqlite) {
                        return;
                    }
                    let test_db = $crate::testing::TestDb::sqlite();
                    super::$name(test_db.database().clone()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::testing::backend_selected($crate::Backend::Postgres) {
                        return;
                    }
                    let Some(test_db) = $crate::testing::TestDb::postgres() else { return };
                    super::$name(test_db.database().clone()).await;
                }
            )+
        }
    };
}
