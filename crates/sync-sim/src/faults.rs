//! Fault scenarios: a 32-device push load while the server is killed, its database restarted
//! or its storage filled, and hostile clients; then the simulator's invariants and the fault's
//! own. `sync-sim faults --scenario crash|db-restart|disk-full|hostile`.
//!
//! - **crash**: the server is killed with SIGKILL at random moments and started again on the
//!   same database and port; devices retry with their idempotency keys. The fleet's
//!   invariants then say whether every acknowledged change is in the history exactly once
//!   (`acknowledged_in_history`, `no_duplicate_versions`: a half-applied push leaves versions
//!   no device was told of) and whether cursors skipped anything (`converged`).
//! - **db-restart** (PostgreSQL): the server's database connections are terminated
//!   (`pg_terminate_backend`, the server's connections named by `application_name`), or with
//!   `--restart-cluster` the whole cluster is stopped and started. Every answer must be a 503
//!   with `Retry-After`, never a 500 (the `protocol` invariant), `/readyz` must say 503 while
//!   the database is down, and the server must recover by itself.
//! - **disk-full** (SQLite): the database lives on a small tmpfs that a filler file fills now
//!   and then; writes must get 503 with `Retry-After`, the file must pass `PRAGMA
//!   integrity_check`, and the server must recover when the space returns.
//! - **hostile**: slow, silent, oversized and abusive clients beside a well-behaved device
//!   ([`crate::hostile`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::db::{Backend, Database};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::invariants::Invariant;
use crate::report::Report;
use crate::runner::{RunOptions, Target};
use crate::scenario::{Scenario, ScenarioKind};
use crate::server::{ServerDb, ServerProcess};

/// Longest a server may take to be ready again after a fault ends.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// How long a `/readyz` probe waits for its answer (the server answers within about a second
/// even with the database away).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often `/readyz` is probed while a fault lasts.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// The fault scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Crash,
    DbRestart,
    DiskFull,
    Hostile,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] =
        [FaultKind::Crash, FaultKind::DbRestart, FaultKind::DiskFull, FaultKind::Hostile];

    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::DbRestart => "db-restart",
            FaultKind::DiskFull => "disk-full",
            FaultKind::Hostile => "hostile",
        }
    }

    /// Whether the scenario can run on `backend` (a database restart is PostgreSQL's, a full
    /// disk under a SQLite file is SQLite's).
    pub fn runs_on(self, backend: Backend) -> bool {
        match self {
            FaultKind::DbRestart => backend == Backend::Postgres,
            FaultKind::DiskFull => backend == Backend::Sqlite,
            FaultKind::Crash | FaultKind::Hostile => true,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::Config(format!("unknown fault scenario `{s}` (expected one of {})", names.join(", ")))
        })
    }
}

/// How to run a fault scenario.
#[derive(Debug, Clone)]
pub struct FaultOptions {
    pub kind: FaultKind,
    /// How long faults are injected under load (the fleet's drain comes after).
    pub duration: Duration,
    pub devices: usize,
    pub seed: u64,
    /// db-restart: stop and start the whole PostgreSQL cluster instead of terminating the
    /// server's connections (needs the right to run `pg_ctlcluster`; do not share the cluster
    /// with other work meanwhile).
    pub restart_cluster: bool,
}

impl FaultOptions {
    pub fn new(kind: FaultKind) -> Self {
        FaultOptions { kind, duration: Duration::from_secs(30), devices: 32, seed: 1, restart_cluster: false }
    }
}

/// One fault injected.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    /// Seconds after the scenario started.
    pub at_sec: f64,
    /// What was done.
    pub what: String,
    /// How long the fault lasted (the server down, the database away, the disk full), ms.
    pub lasted_ms: u64,
    /// From the end of the fault until the server was ready again, ms (`None`: it was not,
    /// within the bound).
    pub recovery_ms: Option<u64>,
}

/// `/readyz` answers while faults lasted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Probes {
    pub ready: u64,
    /// 503 with `Retry-After`.
    pub unavailable: u64,
    /// Any other status (a 500, or a 503 without `Retry-After`).
    pub other: u64,
    /// No answer within [`PROBE_TIMEOUT`] (the server kept running meanwhile: a hanging probe).
    pub unreachable: u64,
}

/// A fault scenario's report.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    pub scenario: FaultKind,
    pub backend: String,
    pub duration_sec: f64,
    pub faults: Vec<FaultEvent>,
    pub readyz: Probes,
    /// The fleet's own report (every scenario but hostile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Report>,
    /// What the hostile clients did and measured (the hostile scenario).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostile: Option<crate::hostile::HostileReport>,
    /// The fault's own invariants (the fleet's are in `fleet`, the hostile clients' in
    /// `hostile`).
    pub invariants: Vec<Invariant>,
    pub passed: bool,
}

impl FaultReport {
    /// Every invariant, the fleet's and the fault's.
    pub fn all_invariants(&self) -> impl Iterator<Item = &Invariant> {
        let fleet = self.fleet.iter().flat_map(|r| r.invariants.iter());
        let hostile = self.hostile.iter().flat_map(|h| h.invariants.iter());
        fleet.chain(hostile).chain(&self.invariants)
    }

    /// The report as a table for the terminal.
    pub fn to_table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let faults = if self.hostile.is_some() {
            String::new()
        } else {
            format!("{} fault(s) in ", self.faults.len())
        };
        let _ = writeln!(
            out,
            "fault scenario {} on {}: {faults}{:.0}s",
            self.scenario, self.backend, self.duration_sec
        );
        for event in &self.faults {
            let recovery = event.recovery_ms.map_or_else(|| "never".to_owned(), |ms| format!("{ms} ms"));
            let _ = writeln!(
                out,
                "  {:>6.1}s  {:<44} lasted {:>5} ms, ready again after {recovery}",
                event.at_sec, event.what, event.lasted_ms
            );
        }
        let p = &self.readyz;
        if p.ready + p.unavailable + p.other + p.unreachable > 0 {
            let _ = writeln!(
                out,
                "  /readyz during faults: {} ready, {} unavailable (503), {} other, {} unreachable",
                p.ready, p.unavailable, p.other, p.unreachable
            );
        }
        if let Some(fleet) = &self.fleet {
            let pushes = &fleet.pushes;
            let _ = writeln!(
                out,
                "  fleet: {} changes acknowledged; pushes {} tried, {} acknowledged, {} answered 503/429, {} failed to connect, {} other 5xx",
                fleet.changes.acknowledged,
                pushes.attempts,
                pushes.acknowledged,
                pushes.throttled,
                fleet.transport_errors,
                pushes.server_errors
            );
        }
        if let Some(h) = &self.hostile {
            let mib = |b: Option<u64>| {
                b.map_or_else(|| "?".to_owned(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
            };
            let _ = writeln!(
                out,
                "  memory: {} at rest, {} at most under attack, {} afterwards; {} hostile connections at once",
                mib(h.memory.rss_at_rest_bytes),
                mib(h.memory.rss_peak_during_attacks_bytes),
                mib(h.memory.rss_after_bytes),
                h.connections_held_peak
            );
            for (name, held) in
                [("slowloris", &h.slowloris), ("slow bodies", &h.slow_bodies), ("idle", &h.idle_connections)]
            {
                let _ = writeln!(
                    out,
                    "  {name}: {} connections, {} closed by the server, held p50 {:.1} s / max {:.1} s",
                    held.connections,
                    held.closed,
                    held.survived.p50_ms / 1000.0,
                    held.survived.max_ms / 1000.0
                );
            }
            let g = &h.good_client;
            let _ = writeln!(
                out,
                "  good device push p99: {:.1} ms alone, {:.1} ms under attack, {:.1} ms during the flood of {} changes",
                g.push_before.p99_ms,
                g.push_during_attacks.p99_ms,
                g.push_during_flood.p99_ms,
                h.flood.changes
            );
        }
        crate::invariants::write_table(&mut out, self.all_invariants());
        let _ = writeln!(out, "  {}", if self.passed { "PASSED" } else { "FAILED" });
        out
    }
}

/// Runs the fault scenario of `options` against servers of `binary` on `backend`.
pub async fn run(binary: &Path, backend: Backend, options: &FaultOptions) -> Result<FaultReport> {
    if !options.kind.runs_on(backend) {
        return Err(Error::Config(format!("the {} scenario does not run on {backend}", options.kind)));
    }
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut hostile = None;
    let (fleet, faults, readyz, invariants) = match options.kind {
        FaultKind::Hostile => {
            let server = ServerProcess::start(binary, backend).await?;
            hostile = Some(crate::hostile::run(&server, options.duration).await?);
            (None, Vec::new(), Probes::default(), Vec::new())
        }
        FaultKind::Crash => {
            let mut server = ServerProcess::start(binary, backend).await?;
            let target = server.target();
            let (fleet, injected) = tokio::join!(
                run_fleet(&target, backend, options),
                crash(&mut server, options.duration, &mut rng)
            );
            let (faults, readyz) = injected;
            let invariants = vec![recovered(&faults)];
            (Some(fleet?), faults, readyz, invariants)
        }
        FaultKind::DbRestart => {
            // The server's connections carry a name of their own, so that only they are cut.
            let (db, tag) = ServerDb::fresh_named(backend, "syncforge-faults")?;
            let server = ServerProcess::start_on(binary, db, &[]).await?;
            let target = server.target();
            let outage = Outage { server: &server, tag: &tag, restart_cluster: options.restart_cluster };
            let (fleet, injected) =
                tokio::join!(run_fleet(&target, backend, options), outage.run(options.duration, &mut rng));
            let (faults, readyz) = injected?;
            // Terminated connections come back within milliseconds: only a stopped cluster
            // must be seen by the probes.
            let outages = if options.restart_cluster { faults.len() } else { 0 };
            let invariants = vec![recovered(&faults), readyz_saw_outage(&readyz, outages)];
            (Some(fleet?), faults, readyz, invariants)
        }
        FaultKind::DiskFull => {
            let disk = SmallDisk::mount(DISK_BYTES)?;
            let url = format!("sqlite://{}", disk.dir.join("sync.db").display());
            // `serve` migrates the new file.
            let database = Database::at(&url)?;
            let server = ServerProcess::start_on(binary, ServerDb::at(database.clone()), &[]).await?;
            let target = server.target();
            let (fleet, injected) = tokio::join!(
                run_fleet(&target, backend, options),
                fill(&server, &disk, options.duration, &mut rng)
            );
            let (faults, readyz) = injected?;
            let mut invariants = vec![recovered(&faults), readyz_saw_outage(&readyz, 0)];
            invariants.push(integrity(&database).await);
            drop(server);
            drop(database);
            (Some(fleet?), faults, readyz, invariants)
        }
    };
    let passed = fleet.as_ref().is_none_or(|f: &Report| f.passed) && invariants.iter().all(|i| i.passed);
    Ok(FaultReport {
        scenario: options.kind,
        backend: backend.to_string(),
        duration_sec: started.elapsed().as_secs_f64(),
        faults,
        readyz,
        fleet,
        hostile,
        invariants,
        passed,
    })
}

/// The push load: `devices` devices editing and pushing as fast as they can, some pulling.
fn fleet_scenario(options: &FaultOptions) -> Scenario {
    let mut scenario = Scenario::preset(ScenarioKind::BasicSync);
    scenario.devices = options.devices;
    scenario.devices_per_unit = 8;
    scenario.duration = options.duration;
    scenario.edits_per_action = 10;
    scenario.think_time = (Duration::ZERO, Duration::from_millis(20));
    scenario.pull_probability = 0.3;
    scenario.conflict_probability = 0.1;
    scenario.seed = options.seed;
    scenario
}

async fn run_fleet(target: &Target, backend: Backend, options: &FaultOptions) -> Result<Report> {
    let scenario = fleet_scenario(options);
    let run_options = RunOptions { tenant: None, progress: false };
    let mut report = crate::run(&scenario, target, &run_options).await?;
    report.backend = Some(backend.to_string());
    Ok(report)
}

/// When faults happen: at random moments, 1 to 3 s apart, for a while.
struct Schedule {
    started: Instant,
    duration: Duration,
}

impl Schedule {
    fn new(duration: Duration) -> Self {
        Schedule { started: Instant::now(), duration }
    }

    /// Waits for the next fault's moment and returns it (seconds since the start), or `None`
    /// once the next one would fall after the end.
    async fn next(&self, rng: &mut StdRng) -> Option<f64> {
        let wait = Duration::from_millis(rng.random_range(1000..=3000));
        if self.started.elapsed() + wait >= self.duration {
            return None;
        }
        tokio::time::sleep(wait).await;
        Some(self.started.elapsed().as_secs_f64())
    }
}

/// The HTTP client of the `/readyz` probes.
fn probe_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| Error::Server(format!("cannot build an HTTP client: {e}")))
}

/// Kills the server with SIGKILL at random moments for `duration`, starting it again each
/// time after a short random time down.
async fn crash(
    server: &mut ServerProcess,
    duration: Duration,
    rng: &mut StdRng,
) -> (Vec<FaultEvent>, Probes) {
    let schedule = Schedule::new(duration);
    let mut events = Vec::new();
    while let Some(at_sec) = schedule.next(rng).await {
        let down = Duration::from_millis(rng.random_range(0..=500));
        let recovery = server.crash_and_restart(down).await;
        if let Err(e) = &recovery {
            eprintln!("the server did not come back after a crash: {e}");
        }
        events.push(FaultEvent {
            at_sec,
            what: format!("SIGKILL pid, restart after {} ms", down.as_millis()),
            lasted_ms: millis(down),
            recovery_ms: recovery.ok().map(millis),
        });
        if events.last().is_some_and(|e| e.recovery_ms.is_none()) {
            break;
        }
    }
    (events, Probes::default())
}

/// PostgreSQL going away under the server.
struct Outage<'a> {
    server: &'a ServerProcess,
    /// The `application_name` of the server's connections.
    tag: &'a str,
    restart_cluster: bool,
}

impl Outage<'_> {
    async fn run(&self, duration: Duration, rng: &mut StdRng) -> Result<(Vec<FaultEvent>, Probes)> {
        let schedule = Schedule::new(duration);
        let mut events = Vec::new();
        let mut probes = Probes::default();
        let http = probe_client()?;
        while let Some(at_sec) = schedule.next(rng).await {
            let (what, lasted) = if self.restart_cluster {
                let down = Duration::from_millis(rng.random_range(1000..=3000));
                pg_cluster("stop")?;
                let outage_started = Instant::now();
                while outage_started.elapsed() < down {
                    probe(&http, self.server, &mut probes).await;
                    tokio::time::sleep(PROBE_EVERY).await;
                }
                pg_cluster("start")?;
                ("PostgreSQL cluster stopped and started".to_owned(), outage_started.elapsed())
            } else {
                let cut = self.terminate().await?;
                (format!("pg_terminate_backend of {cut} server connection(s)"), Duration::ZERO)
            };
            let recovery = wait_ready(&http, self.server, &mut probes).await;
            events.push(FaultEvent {
                at_sec,
                what,
                lasted_ms: millis(lasted),
                recovery_ms: recovery.map(millis),
            });
        }
        Ok((events, probes))
    }

    /// Terminates every backend serving the server; returns how many.
    async fn terminate(&self) -> Result<usize> {
        crate::db::terminate_backends(self.tag).await
    }
}

/// `pg_ctlcluster <version> main <action>` for the machine's newest cluster.
fn pg_cluster(action: &str) -> Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")
        .map_err(|e| Error::Server(format!("no PostgreSQL cluster to {action} (/etc/postgresql: {e})")))?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .ok_or_else(|| Error::Server("no PostgreSQL cluster under /etc/postgresql".into()))?;
    let mut args = vec!["--skip-systemctl-redirect", version.as_str(), "main", action];
    if action == "stop" {
        args.extend(["-m", "fast"]);
    }
    let status = std::process::Command::new("pg_ctlcluster")
        .args(&args)
        .status()
        .map_err(|e| Error::Server(format!("cannot run pg_ctlcluster: {e}")))?;
    if !status.success() {
        return Err(Error::Server(format!("pg_ctlcluster {action} failed ({status})")));
    }
    Ok(())
}

/// One `/readyz` probe, counted.
async fn probe(http: &reqwest::Client, server: &ServerProcess, probes: &mut Probes) -> bool {
    match http.get(format!("{}/readyz", server.base_url())).send().await {
        Ok(response) if response.status().is_success() => {
            probes.ready += 1;
            true
        }
        Ok(response) if response.status() == 503 && response.headers().contains_key("retry-after") => {
            probes.unavailable += 1;
            false
        }
        Ok(_) => {
            probes.other += 1;
            false
        }
        Err(_) => {
            probes.unreachable += 1;
            false
        }
    }
}

/// Probes `/readyz` until it says ready; how long that took (`None`: not within the bound).
async fn wait_ready(http: &reqwest::Client, server: &ServerProcess, probes: &mut Probes) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < RECOVERY_BOUND {
        if probe(http, server, probes).await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    None
}

/// The size of the small filesystem under the SQLite file.
const DISK_BYTES: u64 = 512 * 1024 * 1024;

/// A tmpfs of a fixed size, mounted on a temporary directory and unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Result<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("syncforge-disk-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "syncforge-faults"])
            .arg(&dir)
            .status()
            .map_err(|e| Error::Server(format!("cannot run mount: {e}")))?;
        if !status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(Error::Config(format!(
                "cannot mount a {bytes}-byte tmpfs on {} ({status}); the disk-full scenario needs root \
                 (CAP_SYS_ADMIN)",
                dir.display()
            )));
        }
        Ok(SmallDisk { dir })
    }

    /// Fills the disk with a filler file until no byte is left; returns the file.
    fn fill(&self) -> Result<PathBuf> {
        use std::io::Write as _;
        let path = self.dir.join("filler");
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let mut file = std::fs::File::create(&path).map_err(io)?;
        let chunk = vec![0_u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(io(e)),
            }
        }
        // The last few bytes, so that not even a page is left.
        while file.write(&[0]).is_ok_and(|n| n == 1) {}
        Ok(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Fills the server's disk at random moments, for a random while, then frees it.
async fn fill(
    server: &ServerProcess,
    disk: &SmallDisk,
    duration: Duration,
    rng: &mut StdRng,
) -> Result<(Vec<FaultEvent>, Probes)> {
    let schedule = Schedule::new(duration);
    let mut events = Vec::new();
    let mut probes = Probes::default();
    let http = probe_client()?;
    while let Some(at_sec) = schedule.next(rng).await {
        let hold = Duration::from_millis(rng.random_range(1000..=2500));
        let filler = disk.fill()?;
        let full_since = Instant::now();
        while full_since.elapsed() < hold {
            probe(&http, server, &mut probes).await;
            tokio::time::sleep(PROBE_EVERY).await;
        }
        std::fs::remove_file(&filler)
            .map_err(|source| Error::Io { path: filler.display().to_string(), source })?;
        let lasted = full_since.elapsed();
        let recovery = wait_ready(&http, server, &mut probes).await;
        events.push(FaultEvent {
            at_sec,
            what: "disk filled to the last byte, then freed".into(),
            lasted_ms: millis(lasted),
            recovery_ms: recovery.map(millis),
        });
    }
    Ok((events, probes))
}

/// Every fault was followed by a ready server within the bound.
fn recovered(events: &[FaultEvent]) -> Invariant {
    let mut inv = Invariant::new("recovered_after_each_fault");
    for event in events {
        inv.checked += 1;
        if event.recovery_ms.is_none() {
            inv.fail(|| {
                format!("not ready within {RECOVERY_BOUND:?} after `{}` at {:.1}s", event.what, event.at_sec)
            });
        }
    }
    inv
}

/// `/readyz` answered every probe in time, only ever 200 or 503 with `Retry-After`, while
/// faults lasted, and (when `outages` > 0) said 503 during them.
fn readyz_saw_outage(probes: &Probes, outages: usize) -> Invariant {
    let mut inv = Invariant::new("readyz_reflects_outage");
    inv.checked = probes.ready + probes.unavailable + probes.other + probes.unreachable;
    if probes.other > 0 {
        inv.fail(|| format!("{} /readyz answer(s) were neither 200 nor 503 with Retry-After", probes.other));
    }
    if probes.unreachable > 0 {
        inv.fail(|| {
            format!("{} /readyz probe(s) got no answer within {PROBE_TIMEOUT:?}", probes.unreachable)
        });
    }
    if outages > 0 && probes.unavailable == 0 {
        inv.fail(|| format!("/readyz never answered 503 during {outages} database outage(s)"));
    }
    inv
}

/// SQLite's own check of the file after the faults.
async fn integrity(database: &Database) -> Invariant {
    let mut inv = Invariant::new("sqlite_integrity_check");
    inv.checked = 1;
    let result = database.integrity_check().await;
    match result {
        Ok(lines) if lines == ["ok"] => {}
        Ok(lines) => inv.fail(|| format!("PRAGMA integrity_check: {}", lines.join("; "))),
        Err(e) => inv.fail(|| format!("PRAGMA integrity_check could not run: {e}")),
    }
    inv
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
