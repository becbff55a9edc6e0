//! A `sync-server` process for a simulation or a benchmark: on a fresh SQLite file or a fresh
//! PostgreSQL schema, with a JWT secret for the fleet's tokens, and its CPU time and peak
//! memory read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sync_domain::testing::TestDb;
use sync_domain::{Backend, Database};

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
    base_url: String,
    jwt_secret: String,
    backend: Backend,
    /// Keeps the fresh database alive (and removes it afterwards); shared by the nodes of one
    /// database.
    db: Arc<TestDb>,
    binary: PathBuf,
}

/// Live-stream settings of every server the simulator and the benchmark start: heartbeats
/// often enough to check their timing in seconds, and room for the idle-connections case.
const LIVE_ENV: [(&str, &str); 2] =
    [("SYNC_LIVE_HEARTBEAT_SECS", "5"), ("SYNC_LIVE_MAX_LIVE_CONNECTIONS", "20000")];

impl ServerProcess {
    /// Starts `binary serve` on a fresh database of `backend` and waits until it is ready.
    pub async fn start(binary: &Path, backend: Backend) -> Result<ServerProcess> {
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres().ok_or_else(|| {
                Error::Server("PostgreSQL is not reachable (see SYNC_TEST_DATABASE_URL)".into())
            })?,
        };
        let jwt_secret = uuid::Uuid::new_v4().simple().to_string();
        Self::spawn(binary.to_owned(), backend, Arc::new(db), jwt_secret).await
    }

    /// Starts another node on this server's database (PostgreSQL: several `serve` processes
    /// share one database), with the same JWT secret.
    pub async fn another_node(&self) -> Result<ServerProcess> {
        Self::spawn(self.binary.clone(), self.backend, self.db.clone(), self.jwt_secret.clone()).await
    }

    async fn spawn(
        binary: PathBuf,
        backend: Backend,
        db: Arc<TestDb>,
        jwt_secret: String,
    ) -> Result<ServerProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::Server(format!("no free port: {e}")))?
            .port();
        let child = Command::new(&binary)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database", db.url()])
            .env("SYNC_JWT_SECRET", &jwt_secret)
            .env("SYNC_LOG", "warn")
            // The benchmark measures the engine, not the per-token budget of a phone.
            .env("SYNC_RATE_LIMIT_PER_MINUTE", "0")
            .env("SYNC_MAX_CONCURRENT_PUSHES_PER_TENANT", "0")
            .envs(LIVE_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Server(format!("cannot start {}: {e}", binary.display())))?;
        let mut server = ServerProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            jwt_secret,
            backend,
            db,
            binary,
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

    /// The server's process id (for more of `/proc` than the figures here).
    pub fn pid(&self) -> u32 {
        self.child.id()
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
