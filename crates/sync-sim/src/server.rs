//! A `sync-server` process for a simulation, a benchmark or a fault scenario: on a fresh SQLite
//! file or a fresh PostgreSQL database (or a database the caller prepared; `serve` migrates it), with a JWT secret for
//! the fleet's tokens, its CPU time and peak memory read from `/proc`, and a crash and restart
//! on demand.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::{Backend, Database, FreshDatabase};
use crate::error::{Error, Result};
use crate::runner::Target;
use crate::token::TokenIssuer;

/// How long a server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Linux reports process times in these ticks per second (`USER_HZ`, fixed by the ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// A running server process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    port: u16,
    base_url: String,
    jwt_secret: String,
    backend: Backend,
    /// The database the server is started on (shared by the nodes of one database).
    db: Arc<ServerDb>,
    binary: PathBuf,
    /// Variables set for this server on top of the common ones.
    env: Vec<(String, String)>,
}

/// The database of a server: a fresh one (removed when the last server on it is dropped), or
/// one the caller prepared (a SQLite file on a small filesystem, say).
#[derive(Debug)]
pub struct ServerDb {
    /// The URL the server is given (it may name the server's connections).
    url: String,
    /// The same database for the simulator's own connections.
    database: Database,
    /// Keeps a fresh database alive, and removes it afterwards.
    _fresh: Option<FreshDatabase>,
}

impl ServerDb {
    /// A fresh, empty database of `backend` (the server migrates it when it starts).
    pub fn fresh(backend: Backend) -> Result<ServerDb> {
        let fresh = FreshDatabase::new(backend)?;
        Ok(ServerDb {
            url: fresh.database().url().to_owned(),
            database: fresh.database().clone(),
            _fresh: Some(fresh),
        })
    }

    /// The database at `database`'s URL, as it is.
    pub fn at(database: Database) -> ServerDb {
        ServerDb { url: database.url().to_owned(), database, _fresh: None }
    }

    /// A fresh database of `backend` whose server names its PostgreSQL connections
    /// `<prefix>-<random>` (`application_name`), so that they can be found in
    /// `pg_stat_activity`; and that name. On SQLite the name is made but not used.
    pub fn fresh_named(backend: Backend, prefix: &str) -> Result<(ServerDb, String)> {
        let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut db = ServerDb::fresh(backend)?;
        if backend == Backend::Postgres {
            let sep = if db.url.contains('?') { '&' } else { '?' };
            db.url = format!("{}{sep}application_name={name}", db.url);
        }
        Ok((db, name))
    }

    /// The URL the server is started with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same database, for the invariants.
    pub fn database(&self) -> &Database {
        &self.database
    }
}

/// Live-stream settings of every server the simulator and the benchmark start: heartbeats
/// often enough to check their timing in seconds, and room for the idle-connections case.
const LIVE_ENV: [(&str, &str); 2] =
    [("SYNC_LIVE_HEARTBEAT_SECS", "5"), ("SYNC_LIVE_MAX_LIVE_CONNECTIONS", "20000")];

impl ServerProcess {
    /// Starts `binary serve` on a fresh database of `backend` and waits until it is ready.
    pub async fn start(binary: &Path, backend: Backend) -> Result<ServerProcess> {
        Self::start_with(binary, backend, &[]).await
    }

    /// [`start`](Self::start) with more environment variables for the server.
    pub async fn start_with(binary: &Path, backend: Backend, env: &[(&str, &str)]) -> Result<ServerProcess> {
        Self::start_on(binary, ServerDb::fresh(backend)?, env).await
    }

    /// Starts `binary serve` on `db` with more environment variables and waits until it is
    /// ready.
    pub async fn start_on(binary: &Path, db: ServerDb, env: &[(&str, &str)]) -> Result<ServerProcess> {
        let jwt_secret = uuid::Uuid::new_v4().simple().to_string();
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let backend = db.database().backend();
        Self::spawn(binary.to_owned(), backend, Arc::new(db), jwt_secret, free_port()?, env).await
    }

    /// Starts another node on this server's database (PostgreSQL: several `serve` processes
    /// share one database), with the same JWT secret.
    pub async fn another_node(&self) -> Result<ServerProcess> {
        Self::spawn(
            self.binary.clone(),
            self.backend,
            self.db.clone(),
            self.jwt_secret.clone(),
            free_port()?,
            self.env.clone(),
        )
        .await
    }

    /// Kills the server with SIGKILL (no chance to finish anything), waits `down_for`, then
    /// starts it again on the same port and database and waits until it is ready. Returns
    /// how long it took from the restart to ready.
    pub async fn crash_and_restart(&mut self, down_for: Duration) -> Result<Duration> {
        self.kill();
        tokio::time::sleep(down_for).await;
        let started = Instant::now();
        self.child = Self::command(&self.binary, self.port, self.db.url(), &self.jwt_secret, &self.env)?;
        self.wait_ready().await?;
        Ok(started.elapsed())
    }

    fn command(
        binary: &Path,
        port: u16,
        database_url: &str,
        jwt_secret: &str,
        env: &[(String, String)],
    ) -> Result<Child> {
        Command::new(binary)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database", database_url])
            .env("SYNC_JWT_SECRET", jwt_secret)
            .env("SYNC_LOG", "warn")
            // The benchmark measures the engine, not the per-token budget of a phone.
            .env("SYNC_RATE_LIMIT_PER_MINUTE", "0")
            .env("SYNC_MAX_CONCURRENT_PUSHES_PER_TENANT", "0")
            .envs(LIVE_ENV)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Server(format!("cannot start {}: {e}", binary.display())))
    }

    async fn spawn(
        binary: PathBuf,
        backend: Backend,
        db: Arc<ServerDb>,
        jwt_secret: String,
        port: u16,
        env: Vec<(String, String)>,
    ) -> Result<ServerProcess> {
        let child = Self::command(&binary, port, db.url(), &jwt_secret, &env)?;
        let mut server = ServerProcess {
            child,
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            jwt_secret,
            backend,
            db,
            binary,
            env,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Seconds between the live streams' heartbeats of the servers started here.
    pub fn heartbeat_secs() -> u64 {
        LIVE_ENV[0].1.parse().unwrap_or(15)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Server(format!("the server exited before it was ready ({status})")));
            }
            let ready = http.get(format!("{}/readyz", self.base_url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::Server(format!("not ready after {READY_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where to send requests.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The server's database (for the invariants and the raw baseline).
    pub fn database(&self) -> &Database {
        self.db.database()
    }

    /// A target for [`crate::run`], with database access.
    pub fn target(&self) -> Target {
        Target {
            base_url: self.base_url.clone(),
            other_nodes: Vec::new(),
            issuer: TokenIssuer::new(&self.jwt_secret),
            database: Some(self.database().clone()),
        }
    }

    /// CPU seconds (user + system) the server has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        stat_cpu_seconds(&stat).map(|(_, seconds)| seconds)
    }

    /// CPU seconds (user + system) used so far by the database's own processes: every
    /// `postgres` process of the machine on PostgreSQL (backends, WAL writer, checkpointer),
    /// `None` on SQLite, whose work is inside the server's process.
    pub fn database_cpu_seconds(&self) -> Option<f64> {
        if self.backend() != Backend::Postgres {
            return None;
        }
        let total = std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter_map(|stat| {
                let (command, seconds) = stat_cpu_seconds(&stat)?;
                (command == "postgres").then_some(seconds)
            })
            .sum();
        Some(total)
    }

    /// The server's peak resident memory since start or the last [`reset_peak_rss`](Self::reset_peak_rss).
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// The server's resident memory now.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Starts a new peak-memory measurement (Linux `clear_refs`); false when not possible.
    pub fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").is_ok()
    }

    /// The server's process id (changes with every restart).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free local port.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Server(format!("no free port: {e}")))
}

/// A `/proc/PID/stat` line's command name and its CPU seconds (user + system).
fn stat_cpu_seconds(stat: &str) -> Option<(&str, f64)> {
    // The command name (which may hold spaces) is in parentheses; the fields after the last
    // ')' are numbered from the state, so utime and stime are the 12th and 13th of them.
    let (head, rest) = stat.rsplit_once(')')?;
    let command = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((command, (utime + stime) / TICKS_PER_SEC))
}
