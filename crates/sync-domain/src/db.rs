//! The `Database` handle: one connection pool over SQLite or PostgreSQL, migrations, and the
//! transaction entry points (async ones run the blocking diesel work on tokio's blocking pool).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use diesel::connection::{
    AnsiTransactionManager, Connection, InstrumentationEvent, SimpleConnection, TransactionManager,
};
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use scheduled_thread_pool::ScheduledThreadPool;

use crate::error::{Error, Result};

mod group;

pub use group::GroupStats;

/// Migrations for SQLite (`migrations/sqlite`), embedded in the binary.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// Migrations for PostgreSQL (`migrations/postgres`), embedded in the binary.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Session-level advisory lock key that serialises `migrate` across nodes on PostgreSQL
/// (`'sync'` in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x7379_6e63;

/// A connection to either backend. Queries written once against this type run on both.
///
/// Diesel's `MultiBackend` has no `ON CONFLICT` support, so the few statements that need it
/// match on the variant with [`dispatch!`](crate::dispatch), which compiles the same diesel
/// expression once per backend.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// A SQLite connection (WAL, `synchronous=NORMAL`, busy timeout, foreign keys on).
    Sqlite(SqliteConnection),
    /// A PostgreSQL connection.
    Pg(PgConnection),
}

impl fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DbConnection::Sqlite(_) => "DbConnection::Sqlite",
            DbConnection::Pg(_) => "DbConnection::Pg",
        })
    }
}

impl DbConnection {
    /// Which backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Sqlite(_) => Backend::Sqlite,
            DbConnection::Pg(_) => Backend::Postgres,
        }
    }
}

/// Runs the same code against the concrete connection of either backend.
///
/// For the statements `MultiBackend` cannot express (`ON CONFLICT`, `RETURNING` on an upsert):
/// the body is compiled twice, once with `$c: &mut SqliteConnection` and once with
/// `$c: &mut PgConnection`.
///
/// ```
/// # fn f(conn: &mut sync_domain::DbConnection) -> diesel::QueryResult<usize> {
/// use diesel::prelude::*;
/// use sync_domain::schema::tenants;
/// sync_domain::dispatch!(conn, c => diesel::insert_into(tenants::table)
///     .values((tenants::id.eq("acme"), tenants::created_at.eq(0_i64)))
///     .on_conflict_do_nothing()
///     .execute(c))
/// # }
/// ```
#[macro_export]
macro_rules! dispatch {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::DbConnection::Sqlite($c) => $body,
            $crate::DbConnection::Pg($c) => $body,
        }
    };
}

/// The database product behind a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite (bundled), the zero-setup default.
    Sqlite,
    /// PostgreSQL, the production store.
    Postgres,
}

impl Backend {
    /// `"sqlite"` or `"postgres"`.
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

/// Pool and session settings for [`Database::connect`]. `Default` suits a server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Most connections in the pool (default 16 on PostgreSQL, 8 on SQLite, always 1 for
    /// `sqlite::memory:`, whose database lives in its one connection).
    pub max_connections: Option<u32>,
    /// Connections kept open while idle (default 1).
    pub min_idle: u32,
    /// How long to wait for a pooled connection before reporting [`Error::Unavailable`]
    /// (default 5 s). Also used as PostgreSQL's `connect_timeout` when the URL has none.
    pub connection_timeout: Duration,
    /// SQLite `busy_timeout` (default 5 s).
    pub busy_timeout: Duration,
    /// PostgreSQL schema to use (`SET search_path` on every new connection); `None` keeps the
    /// server's default. The test harness uses it to give every test its own schema.
    pub search_path: Option<String>,
    /// Check out one connection in `connect` so that an unreachable database fails there
    /// (default true). With false, `connect` never touches the database.
    pub check_on_connect: bool,
    /// Most writers that [`Database::write_grouped`] commits in one transaction; 1 turns group
    /// commit off (every writer gets a [`Database::write_tx`] of its own). Default: 32 on
    /// SQLite, 1 on PostgreSQL, where a group would run in one backend the pushes that
    /// otherwise overlap everything but their writes (docs/benchmarks.md, "Group commit").
    pub max_group: Option<usize>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: None,
            min_idle: 1,
            connection_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            search_path: None,
            check_on_connect: true,
            max_group: None,
        }
    }
}

/// What `ping` found: the database answered; are all embedded migrations applied?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// True when no embedded migration is pending.
    pub migrations_current: bool,
    /// Versions of the pending migrations (empty when current).
    pub pending: Vec<String>,
}

/// Pool occupancy, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections.
    pub connections: u32,
    /// Open connections not checked out.
    pub idle: u32,
    /// Pool size limit.
    pub max_size: u32,
}

/// A cheap-to-clone handle on the connection pool. See the crate docs for the transaction
/// model.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Option` only so that `Drop` can drop the pool before quiescing its workers.
    pool: Option<r2d2::Pool<Manager>>,
    /// The pool's worker threads (r2d2 opens every connection on them): dropping the last
    /// handle waits until none of them is inside libpq (see `Drop`).
    workers: Arc<ScheduledThreadPool>,
    /// How long `Drop` waits for the workers (a connection attempt in flight is bounded by
    /// the connection timeout).
    close_timeout: Duration,
    backend: Backend,
    /// Serialises SQLite writers inside this process, so they queue in FIFO order on a mutex
    /// instead of polling SQLite's busy handler (`BEGIN IMMEDIATE` still protects against
    /// other processes).
    sqlite_writer: Mutex<()>,
    /// Group commit's queues (see `group`).
    groups: group::Groups,
    /// The PostgreSQL URL and schema, for a dedicated connection of another driver (the live
    /// hub's LISTEN connection).
    postgres: Option<(String, Option<String>)>,
    /// Statements run on the pool's connections (see [`Database::statements`]).
    statements: Arc<AtomicU64>,
}

/// Worker threads shared by every pool of the process.
const POOL_WORKERS: usize = 3;

/// The pools' worker threads: one set for the process, never shut down, so that no worker
/// thread ever exits (and runs libpq's or OpenSSL's thread-exit cleanup) while the process
/// does. r2d2 would otherwise give each pool three threads of its own that nobody joins.
fn pool_workers() -> Arc<ScheduledThreadPool> {
    static WORKERS: OnceLock<Arc<ScheduledThreadPool>> = OnceLock::new();
    WORKERS
        .get_or_init(|| {
            Arc::new(
                ScheduledThreadPool::builder()
                    .num_threads(POOL_WORKERS)
                    .thread_name_pattern("sync-db-{}")
                    .build(),
            )
        })
        .clone()
}

impl Drop for Inner {
    /// Closes the pool and returns only once no worker thread is still using one of its
    /// connections.
    ///
    /// Why (the cause of `sync-server token create` and `conflict-report` ending by SIGSEGV on
    /// PostgreSQL in about 3 % of runs, after their output): r2d2 opens connections on its
    /// worker threads, in the background. Whenever a checkout leaves fewer than `min_idle`
    /// idle connections it starts a new one, so the last checkout of a short command started a
    /// TLS connection that was still in `PgConnection::establish` when the command finished;
    /// that worker then held the last reference to the pool and closed every pooled connection
    /// itself (`PQfinish`). r2d2 never joins its threads, so `main` returned and `exit` ran
    /// libpq's and OpenSSL's `atexit` cleanup while that thread was inside libpq/OpenSSL.
    ///
    /// So the last handle drops the pool (its idle connections close on this thread unless a
    /// worker still holds it), then parks every worker on a barrier job: a worker reaches it
    /// only after finishing its current job, including a connection attempt in flight and the
    /// pool's final drop. When this returns, none of the pool's connections exists and every
    /// worker is idle. (A pool dropped meanwhile by another thread waits its turn.)
    fn drop(&mut self) {
        static CLOSING: Mutex<()> = Mutex::new(());
        drop(self.pool.take());
        let _one_at_a_time = CLOSING.lock().unwrap_or_else(PoisonError::into_inner);
        let arrived = Arc::new((Mutex::new(0_usize), Condvar::new()));
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        for _ in 0..POOL_WORKERS {
            let (arrived, release) = (arrived.clone(), release.clone());
            self.workers.execute(move || {
                let (count, cond) = &*arrived;
                *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                cond.notify_all();
                // Hold this worker until all have arrived, so that each worker takes one job.
                let (released, cond) = &*release;
                let released = released.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = cond.wait_timeout_while(released, Duration::from_secs(60), |released| !*released);
            });
        }
        let (count, cond) = &*arrived;
        let count = count.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, timeout) = cond
            .wait_timeout_while(count, self.close_timeout, |count| *count < POOL_WORKERS)
            .unwrap_or_else(PoisonError::into_inner);
        if timeout.timed_out() {
            tracing::warn!(arrived = *count, "database pool workers still busy after the close timeout");
        }
        drop(count);
        let (released, cond) = &*release;
        *released.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cond.notify_all();
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.inner.backend)
            .field("pool", &self.pool_status())
            .finish()
    }
}

/// Longest [`Database::ping`] waits for a connection.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A SQLite file that exists must be writable (the server writes, and WAL mode needs its
/// `-shm` and `-wal` beside it): say so plainly rather than "unable to open database file"
/// after the pool's timeout.
fn writable(path: &str) -> Result<()> {
    match std::fs::OpenOptions::new().append(true).open(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::StorageFull(format!("the SQLite file {path} cannot be written: {e}")))
        }
        _ => Ok(()),
    }
}

/// How a transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxMode {
    /// SQLite `BEGIN IMMEDIATE`; PostgreSQL `READ COMMITTED` (required by the change counter).
    Write,
    /// SQLite deferred `BEGIN`; PostgreSQL `REPEATABLE READ, READ ONLY` (one snapshot).
    Read,
}

impl Database {
    /// Opens a pool on `sqlite://PATH`, `sqlite::memory:` or `postgres://…` (also
    /// `postgresql://…`). Does not run migrations: call [`Database::migrate`].
    pub fn connect(url: &str, opts: ConnectOptions) -> Result<Database> {
        let target = Target::parse(url, &opts)?;
        let backend = target.backend();
        if let Target::SqliteFile(path) = &target {
            writable(path)?;
        }
        let memory = matches!(target, Target::SqliteMemory);
        let max_size = if memory {
            1
        } else {
            opts.max_connections.unwrap_or(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
        }
        .max(1);
        let postgres = match &target {
            Target::Postgres(url) => Some((url.clone(), opts.search_path.clone())),
            _ => None,
        };
        let statements = Arc::new(AtomicU64::new(0));
        // Group commit pays on SQLite, not on PostgreSQL (docs/benchmarks.md). A tenant always
        // maps to one lane. SQLite has one writer, so one lane; PostgreSQL a quarter of the
        // pool, each lane committing (or, without group commit, admitting two writers) on its
        // own, which leaves most of the pool to readers.
        let max_group = opts.max_group.unwrap_or(match backend {
            Backend::Sqlite => 32,
            Backend::Postgres => 1,
        });
        let group_lanes = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => usize::try_from(max_size / 4).unwrap_or(1).max(1),
        };
        let manager = Manager {
            target,
            busy_timeout: opts.busy_timeout,
            search_path: opts.search_path,
            statements: statements.clone(),
        };
        let workers = pool_workers();
        let mut builder = r2d2::Pool::builder()
            .thread_pool(workers.clone())
            .max_size(max_size)
            .min_idle(Some(opts.min_idle.min(max_size)))
            .connection_timeout(opts.connection_timeout)
            .error_handler(Box::new(r2d2::NopErrorHandler));
        if memory {
            // The database dies with its only connection: never recycle it.
            builder = builder.idle_timeout(None).max_lifetime(None).min_idle(Some(1));
        }
        let pool = builder.build_unchecked(manager);
        let close_timeout = opts.connection_timeout + Duration::from_secs(1);
        let db = Database {
            inner: Arc::new(Inner {
                pool: Some(pool),
                workers,
                close_timeout,
                backend,
                sqlite_writer: Mutex::new(()),
                groups: group::Groups::new(group_lanes, max_group),
                postgres,
                statements,
            }),
        };
        if opts.check_on_connect {
            db.conn()?;
        }
        Ok(db)
    }

    /// Which backend this handle talks to.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Statements run on this database's pooled connections since it was opened (queries,
    /// transaction control and pool pings alike; connection setup excluded): what benchmarks
    /// and tests count database round trips with.
    pub fn statements(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// On PostgreSQL, the connection URL (with any `connect_timeout` added) and the schema set
    /// by [`ConnectOptions::search_path`], for a dedicated connection outside the pool (the
    /// live hub's LISTEN connection). `None` on SQLite.
    pub fn postgres_target(&self) -> Option<(&str, Option<&str>)> {
        self.inner.postgres.as_ref().map(|(url, schema)| (url.as_str(), schema.as_deref()))
    }

    /// Pool occupancy.
    pub fn pool_status(&self) -> PoolStatus {
        let Some(pool) = &self.inner.pool else { return PoolStatus { connections: 0, idle: 0, max_size: 0 } };
        let state = pool.state();
        PoolStatus { connections: state.connections, idle: state.idle_connections, max_size: pool.max_size() }
    }

    /// On SQLite, this process's turn to write (see `Inner::sqlite_writer`); nothing on
    /// PostgreSQL.
    fn sqlite_writer(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        // The mutex guards no data, so a panic elsewhere cannot leave anything inconsistent.
        match self.inner.backend {
            Backend::Sqlite => Some(self.inner.sqlite_writer.lock().unwrap_or_else(PoisonError::into_inner)),
            Backend::Postgres => None,
        }
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>> {
        Ok(self.pool()?.get()?)
    }

    fn pool(&self) -> Result<&r2d2::Pool<Manager>> {
        // The pool is only taken out by `Drop`, when no handle is left to call this.
        self.inner.pool.as_ref().ok_or_else(|| Error::Unavailable("database closed".into()))
    }

    /// Runs the pending embedded migrations of this backend and returns their versions.
    /// Blocking; on PostgreSQL an advisory lock makes concurrent callers (several nodes
    /// starting at once) take turns.
    pub fn migrate(&self) -> Result<Vec<String>> {
        let mut conn = self.conn()?;
        with_migration_lock(&mut conn, |conn| {
            let applied = match conn {
                DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
                DbConnection::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
            }
            .map_err(Error::Migration)?;
            Ok(applied.iter().map(ToString::to_string).collect())
        })
    }

    /// Reverts every applied migration (drops all tables and their data): for tests and
    /// tooling only. Returns the reverted versions, newest first.
    pub fn revert_all_migrations(&self) -> Result<Vec<String>> {
        let mut conn = self.conn()?;
        with_migration_lock(&mut conn, |conn| {
            let reverted = match conn {
                DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
                DbConnection::Pg(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
            }
            .map_err(Error::Migration)?;
            Ok(reverted.iter().map(ToString::to_string).collect())
        })
    }

    /// Checks that the database answers and reports whether migrations are current
    /// (for `/readyz`). An unreachable database is [`Error::Unavailable`].
    pub async fn ping(&self) -> Result<Readiness> {
        let db = self.clone();
        spawn(move || db.ping_sync()).await
    }

    /// Blocking [`Database::ping`].
    pub fn ping_sync(&self) -> Result<Readiness> {
        // A readiness probe must answer within its own timeout (a load balancer's is often a
        // second or two): with the database down the pool would retry for its whole
        // connection timeout.
        let pool = self.pool()?;
        let mut conn = pool.get_timeout(PING_TIMEOUT.min(pool.connection_timeout()))?;
        conn.ping().map_err(Error::from).map_err(|e| match e {
            Error::Database(e) => Error::Unavailable(e.to_string()),
            other => other,
        })?;
        let pending: Vec<String> = match &mut *conn {
            DbConnection::Sqlite(c) => c
                .pending_migrations(SQLITE_MIGRATIONS)
                .map(|pending| pending.iter().map(|m| m.name().version().to_string()).collect()),
            DbConnection::Pg(c) => c
                .pending_migrations(POSTGRES_MIGRATIONS)
                .map(|pending| pending.iter().map(|m| m.name().version().to_string()).collect()),
        }
        .map_err(Error::Migration)?;
        Ok(Readiness { migrations_current: pending.is_empty(), pending })
    }

    /// Runs `f` with a pooled connection on tokio's blocking pool, outside any transaction
    /// (each statement commits on its own). Needs a tokio runtime.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        spawn(move || db.run_sync(f)).await
    }

    /// Blocking [`Database::run`], for the CLI, tests and code already on a blocking thread.
    pub fn run_sync<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConnection) -> Result<T>,
    {
        let mut conn = self.conn()?;
        f(&mut conn)
    }

    /// Runs `f` in a write transaction on tokio's blocking pool: committed when `f` returns
    /// `Ok`, rolled back on `Err`.
    ///
    /// SQLite: writers of this process queue on a mutex, then `BEGIN IMMEDIATE` takes the
    /// write lock up front, so a transaction never fails upgrading a read lock
    /// (`SQLITE_BUSY`); other processes wait up to the busy timeout. PostgreSQL:
    /// `READ COMMITTED`, which the change counter relies on (a writer waiting for the
    /// counter row continues from the committed value instead of failing).
    pub async fn write_tx<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        spawn(move || db.write_tx_sync(f)).await
    }

    /// Blocking [`Database::write_tx`].
    pub fn write_tx_sync<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConnection) -> Result<T>,
    {
        // The mutex guards no data, so a panic elsewhere cannot leave anything inconsistent.
        let _writer = self.sqlite_writer();
        let mut conn = self.conn()?;
        transaction(&mut conn, TxMode::Write, f)
    }

    /// Runs `f` in a read-only transaction that sees one snapshot (PostgreSQL
    /// `REPEATABLE READ, READ ONLY`; SQLite a deferred transaction, whose WAL snapshot is
    /// fixed at its first read). For a pull that reads a page, counts the rest and looks up
    /// history consistently.
    pub async fn read_tx<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        spawn(move || db.read_tx_sync(f)).await
    }

    /// Blocking [`Database::read_tx`].
    pub fn read_tx_sync<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConnection) -> Result<T>,
    {
        let mut conn = self.conn()?;
        transaction(&mut conn, TxMode::Read, f)
    }
}

/// Runs `f` in a write transaction on a connection the caller already holds (same begin
/// semantics as [`Database::write_tx`], without the in-process SQLite writer mutex). Inside an
/// open transaction it becomes a savepoint.
pub fn write_transaction<T, F>(conn: &mut DbConnection, f: F) -> Result<T>
where
    F: FnOnce(&mut DbConnection) -> Result<T>,
{
    transaction(conn, TxMode::Write, f)
}

fn transaction<T, F>(conn: &mut DbConnection, mode: TxMode, f: F) -> Result<T>
where
    F: FnOnce(&mut DbConnection) -> Result<T>,
{
    begin(conn, mode)?;
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => match <DbConnection as Connection>::TransactionManager::rollback_transaction(conn) {
            // A broken transaction manager is most likely a consequence of `e`: report `e`.
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

fn begin(conn: &mut DbConnection, mode: TxMode) -> Result<()> {
    let nested = <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some();
    if nested {
        return Ok(<DbConnection as Connection>::TransactionManager::begin_transaction(conn)?);
    }
    let result = match (conn, mode) {
        (DbConnection::Sqlite(c), TxMode::Write) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        (DbConnection::Sqlite(c), TxMode::Read) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN"),
        (DbConnection::Pg(c), TxMode::Write) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN ISOLATION LEVEL READ COMMITTED")
        }
        (DbConnection::Pg(c), TxMode::Read) => AnsiTransactionManager::begin_transaction_sql(
            c,
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        ),
    };
    Ok(result?)
}

fn with_migration_lock<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T>,
) -> Result<T> {
    if let DbConnection::Pg(c) = conn {
        c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
        let result = f(conn);
        if let DbConnection::Pg(c) = conn {
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
        }
        result
    } else {
        f(conn)
    }
}

async fn spawn<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::TaskFailed(e.to_string()))?
}

/// Where the pool connects, parsed from the URL.
#[derive(Debug, Clone)]
enum Target {
    SqliteFile(String),
    SqliteMemory,
    Postgres(String),
}

impl Target {
    fn parse(url: &str, opts: &ConnectOptions) -> Result<Target> {
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(Target::SqliteMemory);
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(Error::InvalidUrl("sqlite URL without a path".into()));
            }
            return Ok(Target::SqliteFile(path.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut url = url.to_owned();
            if !url.contains("connect_timeout=") {
                let secs = opts.connection_timeout.as_secs().max(1);
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("connect_timeout={secs}"));
            }
            return Ok(Target::Postgres(url));
        }
        Err(Error::InvalidUrl(format!(
            "expected sqlite://PATH, sqlite::memory: or postgres://…, got {:?}",
            redact(url)
        )))
    }

    fn backend(&self) -> Backend {
        match self {
            Target::SqliteFile(_) | Target::SqliteMemory => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// r2d2 manager that opens the right variant and applies the session settings (diesel's
/// `ConnectionManager<DbConnection>` would try every variant in turn, and would happily open a
/// SQLite file named like a PostgreSQL URL when PostgreSQL is down).
#[derive(Debug)]
struct Manager {
    target: Target,
    busy_timeout: Duration,
    search_path: Option<String>,
    statements: Arc<AtomicU64>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        let mut conn = self.establish()?;
        // Counts every statement the connection runs from now on (one atomic add each).
        let statements = self.statements.clone();
        let count = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { .. } = event {
                statements.fetch_add(1, Ordering::Relaxed);
            }
        };
        match &mut conn {
            DbConnection::Pg(c) => c.set_instrumentation(count),
            DbConnection::Sqlite(c) => c.set_instrumentation(count),
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

impl Manager {
    fn establish(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        use diesel::r2d2::Error as E;
        match &self.target {
            Target::SqliteFile(path) => self.sqlite(path),
            Target::SqliteMemory => self.sqlite(":memory:"),
            Target::Postgres(url) => {
                let mut conn = PgConnection::establish(url).map_err(E::ConnectionError)?;
                // diesel prepares each statement once per connection; a generic plan that
                // PostgreSQL settles on while a table is still small (a sequential scan)
                // would then stay for the connection's life. Planning each execution costs
                // a fraction of a millisecond and keeps every lookup on its index.
                conn.batch_execute("SET plan_cache_mode = force_custom_plan").map_err(E::QueryError)?;
                if let Some(schema) = &self.search_path {
                    conn.batch_execute(&format!("SET search_path TO {}", quote_ident(schema)))
                        .map_err(E::QueryError)?;
                }
                Ok(DbConnection::Pg(conn))
            }
        }
    }

    fn sqlite(&self, path: &str) -> Result<DbConnection, diesel::r2d2::Error> {
        use diesel::r2d2::Error as E;
        let mut conn = SqliteConnection::establish(path).map_err(E::ConnectionError)?;
        // busy_timeout first: switching to WAL needs the write lock. Statement journals (every
        // multi-row upsert in a transaction needs one) stay in memory instead of a temporary
        // file, and each connection caches 16 MiB of pages instead of SQLite's 2 MiB: together
        // about a third more pushes per second in `cargo xtask bench`. The committing writer
        // copies the WAL back into the database (and syncs it) once it holds
        // `wal_autocheckpoint` pages, while every other writer waits: SQLite's 1,000 (4 MiB).
        // With group commit a commit writes hundreds to thousands of pages, so at 1,000 nearly
        // every commit copies its own pages, a short and even pause; 8,192 (32 MiB) gave up to
        // a fifth more pushes per second at saturation, but every few commits one long pause
        // that the pushes queued behind: a p99 four times as long at a steady 20,000 changes/s
        // (docs/benchmarks.md, "WAL checkpoint size and the push tail"). It also bounds what
        // `synchronous = NORMAL` can lose to a power cut: the commits since the last checkpoint.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; \
             PRAGMA wal_autocheckpoint = 1000;",
            self.busy_timeout.as_millis()
        ))
        .map_err(E::QueryError)?;
        Ok(DbConnection::Sqlite(conn))
    }
}

/// Quotes a PostgreSQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let opts = ConnectOptions::default();
        assert!(matches!(Target::parse("sqlite::memory:", &opts), Ok(Target::SqliteMemory)));
        let parsed = |url: &str| match Target::parse(url, &opts) {
            Ok(Target::SqliteFile(path)) => format!("file {path}"),
            Ok(Target::SqliteMemory) => "memory".to_owned(),
            Ok(Target::Postgres(url)) => format!("pg {url}"),
            Err(e) => format!("error {e}"),
        };
        assert_eq!(parsed("sqlite://sync.db"), "file sync.db");
        assert_eq!(parsed("sqlite:///tmp/x.db"), "file /tmp/x.db");
        assert_eq!(parsed("sqlite://:memory:"), "memory");
        assert_eq!(parsed("postgres://u@h/db"), "pg postgres://u@h/db?connect_timeout=5");
        assert_eq!(
            parsed("postgresql://h/db?sslmode=disable"),
            "pg postgresql://h/db?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(parsed("postgres://h/db?connect_timeout=1"), "pg postgres://h/db?connect_timeout=1");
        assert!(matches!(Target::parse("mysql://x", &opts), Err(Error::InvalidUrl(_))));
        assert!(matches!(Target::parse("sqlite://", &opts), Err(Error::InvalidUrl(_))));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("mysql://x"), "mysql://x");
    }
}
