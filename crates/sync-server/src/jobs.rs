//! The scheduled jobs (snapshots, device-health check and purge, conflict report), when they
//! run, and who runs them.
//!
//! When: aligned to the clock (UTC), each job's first run at its next boundary after start.
//! The snapshot runs every `analytics_snapshot_interval_hours` on the hour (hourly by default:
//! at the top of each hour), the device-health check and the purge daily at
//! `[jobs] health_check_at` ("02:00"), the conflict report weekly at `[jobs]
//! conflict_report_at` ("mon 03:00"; it covers the last 7 days, is logged one line per tenant
//! and domain, and is written as JSON to `[jobs] report_dir` when set). `[jobs] every_seconds`
//! (for tests and demonstrations) runs every job every N seconds instead.
//!
//! Fleet insight (PROTOCOL.md section 12): the anomaly job every `[jobs]
//! anomaly_every_minutes` (5), on the clock, judging the last full 15 minutes (its baselines
//! are kept in memory and refitted once a UTC day); the insight job every `[jobs]
//! insight_every_minutes` (60), training each tenant's conflict-risk model, scoring its active
//! records and planning its devices' sync windows; webhook deliveries every `[jobs]
//! webhook_every_seconds` (15), queueing new events and making the attempts that are due.
//!
//! Who: every node runs the scheduler, but a job only runs on the node that holds the leader
//! lock, so each runs once per cluster. On PostgreSQL the lock is a session advisory lock (per
//! schema) held on a dedicated connection: it is released when the node stops or its
//! connection drops, and another node takes it at its next attempt, within `LEADER_POLL`.
//! SQLite has one server per database file, so there this node is always the leader.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer};
use serde::Deserialize;
use sync_domain::{Database, DbConnection, SyncEngine};
use tokio::sync::watch;

use crate::error::CliError;

/// The advisory lock: class "sj" (syncjobs) and the hash of the current schema as the key, so
/// that deployments in different schemas of one database elect their leaders apart.
pub const ADVISORY_LOCK_CLASS: i32 = 0x736a;
/// How often a follower tries to become leader, and a leader checks its connection.
const LEADER_POLL: Duration = Duration::from_secs(5);
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
/// 1970-01-01 was a Thursday: Monday 00:00 UTC is 4 days after the epoch, modulo a week.
const FIRST_MONDAY: i64 = 4 * DAY;
/// Days the weekly conflict report covers.
const REPORT_DAYS: i64 = 7;

/// `[jobs]` of the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Daily device-health check and purge, `HH:MM` UTC.
    pub health_check_at: String,
    /// Weekly conflict report, `DAY HH:MM` UTC (`mon` … `sun`).
    pub conflict_report_at: String,
    /// Where `serve` writes each weekly conflict report (`conflict-report-<time>.json`);
    /// `None`: logged only.
    pub report_dir: Option<PathBuf>,
    /// Run every job every this many seconds instead (for tests and demonstrations).
    pub every_seconds: Option<u64>,
    /// The anomaly job's period in minutes (1 to 60, dividing an hour).
    pub anomaly_every_minutes: u32,
    /// The conflict-risk and sync-window job's period in minutes (1 to 1440).
    pub insight_every_minutes: u32,
    /// How often webhook deliveries are made, in seconds (1 to 3600).
    pub webhook_every_seconds: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            health_check_at: "02:00".into(),
            conflict_report_at: "mon 03:00".into(),
            report_dir: None,
            every_seconds: None,
            anomaly_every_minutes: 5,
            insight_every_minutes: 60,
            webhook_every_seconds: 15,
        }
    }
}

impl JobsConfig {
    /// Applies `SYNC_JOBS_HEALTH_CHECK_AT`, `SYNC_JOBS_CONFLICT_REPORT_AT`,
    /// `SYNC_JOBS_REPORT_DIR` and `SYNC_JOBS_EVERY_SECONDS`, then checks the result.
    pub fn resolve(mut self, env: &[(String, String)]) -> Result<JobsConfig, CliError> {
        for (name, value) in env {
            match name.as_str() {
                "SYNC_JOBS_HEALTH_CHECK_AT" => self.health_check_at = value.clone(),
                "SYNC_JOBS_CONFLICT_REPORT_AT" => self.conflict_report_at = value.clone(),
                "SYNC_JOBS_REPORT_DIR" => self.report_dir = Some(value.into()).filter(|_| !value.is_empty()),
                "SYNC_JOBS_EVERY_SECONDS" => {
                    self.every_seconds = Some(value.trim().parse().map_err(|_| {
                        CliError::Config(format!(
                            "SYNC_JOBS_EVERY_SECONDS: `{value}` is not a number of seconds"
                        ))
                    })?)
                }
                "SYNC_JOBS_ANOMALY_EVERY_MINUTES" => self.anomaly_every_minutes = number(name, value)?,
                "SYNC_JOBS_INSIGHT_EVERY_MINUTES" => self.insight_every_minutes = number(name, value)?,
                "SYNC_JOBS_WEBHOOK_EVERY_SECONDS" => self.webhook_every_seconds = number(name, value)?,
                _ => {}
            }
        }
        self.schedule(1)?;
        Ok(self)
    }

    /// When each job runs, with snapshots every `snapshot_hours`.
    pub fn schedule(&self, snapshot_hours: u32) -> Result<Schedule, CliError> {
        let health_at = time_of_day(&self.health_check_at).ok_or_else(|| {
            CliError::Config(format!("jobs.health_check_at: expected HH:MM, got `{}`", self.health_check_at))
        })?;
        let report_at = day_and_time(&self.conflict_report_at).ok_or_else(|| {
            CliError::Config(format!(
                "jobs.conflict_report_at: expected DAY HH:MM (mon … sun), got `{}`",
                self.conflict_report_at
            ))
        })?;
        if let Some(seconds) = self.every_seconds {
            let period = i64::try_from(seconds)
                .ok()
                .and_then(|s| s.checked_mul(1000))
                .filter(|p| (1000..=WEEK).contains(p));
            let period =
                period.ok_or_else(|| CliError::Config("jobs.every_seconds must be 1 to 604800".into()))?;
            let every = Every { period, offset: 0 };
            return Ok(Schedule {
                snapshot: every,
                health: every,
                report: every,
                anomalies: every,
                insight: every,
                webhooks: every,
            });
        }
        if self.anomaly_every_minutes == 0 || 60 % self.anomaly_every_minutes != 0 {
            return Err(CliError::Config("jobs.anomaly_every_minutes must divide an hour (1 to 60)".into()));
        }
        if !(1..=1440).contains(&self.insight_every_minutes) {
            return Err(CliError::Config("jobs.insight_every_minutes must be 1 to 1440".into()));
        }
        if !(1..=3600).contains(&self.webhook_every_seconds) {
            return Err(CliError::Config("jobs.webhook_every_seconds must be 1 to 3600".into()));
        }
        Ok(Schedule {
            snapshot: Every { period: i64::from(snapshot_hours.max(1)) * HOUR, offset: 0 },
            health: Every { period: DAY, offset: health_at },
            report: Every { period: WEEK, offset: FIRST_MONDAY + report_at },
            // A minute past each boundary, so that the last bucket's syncs have been recorded.
            anomalies: Every { period: i64::from(self.anomaly_every_minutes) * MINUTE, offset: 10_000 },
            insight: Every { period: i64::from(self.insight_every_minutes) * MINUTE, offset: 5 * MINUTE },
            webhooks: Every { period: i64::from(self.webhook_every_seconds) * 1000, offset: 0 },
        })
    }
}

fn number(name: &str, value: &str) -> Result<u32, CliError> {
    value.trim().parse().map_err(|_| CliError::Config(format!("{name}: `{value}` is not a whole number")))
}

/// `HH:MM` as milliseconds after midnight.
fn time_of_day(text: &str) -> Option<i64> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m) && text.trim().len() == 5).then_some(h * HOUR + m * MINUTE)
}

/// `DAY HH:MM` as milliseconds after Monday 00:00 (`mon`, `monday`, … `sun`).
fn day_and_time(text: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let (day, at) = text.trim().split_once(' ')?;
    let day = day.to_ascii_lowercase();
    let index = DAYS.iter().position(|full| day.len() >= 3 && full.starts_with(day.as_str()))?;
    Some(i64::try_from(index).ok()? * DAY + time_of_day(at.trim())?)
}

/// A periodic boundary: every `period` ms, at `offset` ms past multiples of `period` since
/// the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub period: i64,
    pub offset: i64,
}

impl Every {
    /// The first boundary strictly after `t` (ms since the epoch).
    pub fn next_after(self, t: i64) -> i64 {
        let offset = self.offset.rem_euclid(self.period);
        offset + ((t - offset).div_euclid(self.period) + 1) * self.period
    }
}

/// When each job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub snapshot: Every,
    pub health: Every,
    pub report: Every,
    pub anomalies: Every,
    pub insight: Every,
    pub webhooks: Every,
}

/// Whether this node may run the jobs now.
#[derive(Debug, Clone)]
pub struct Leadership {
    leader: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Leadership {
    /// Takes part in the election: on PostgreSQL a background thread holds (or keeps trying
    /// to take) the advisory lock; on SQLite this node is always the leader.
    pub fn start(db: &Database) -> Leadership {
        let leadership = Leadership {
            leader: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            thread: Arc::new(Mutex::new(None)),
        };
        if db.backend() == sync_domain::Backend::Sqlite {
            leadership.leader.store(true, Ordering::SeqCst);
            return leadership;
        }
        let (db, leader, stop) = (db.clone(), leadership.leader.clone(), leadership.stop.clone());
        let spawned = thread::Builder::new().name("sync-leader".into()).spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Err(e) = db.run_sync(|conn| hold_lock(conn, &leader, &stop)) {
                    tracing::warn!(error = %e, "leader lock connection lost; retrying");
                }
                leader.store(false, Ordering::SeqCst);
                sleep_unless_stopped(LEADER_POLL, &stop);
            }
        });
        match spawned {
            Ok(handle) => *leadership.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the leader-lock thread; scheduled jobs stay off on this node");
            }
        }
        leadership
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Releases the lock and waits for the thread (blocking): it unlocks, returns its
    /// connection and drops its database handle before this returns.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("the leader-lock thread panicked");
        }
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Holds the advisory lock on this connection until `stop`, trying to take it while another
/// node has it. Returns an error when the connection fails.
fn hold_lock(conn: &mut DbConnection, leader: &AtomicBool, stop: &AtomicBool) -> sync_domain::Result<()> {
    let DbConnection::Pg(pg) = conn else { return Ok(()) };
    loop {
        if stop.load(Ordering::SeqCst) {
            if leader.swap(false, Ordering::SeqCst) {
                let _ =
                    diesel::sql_query("SELECT pg_advisory_unlock($1, hashtext(current_schema())) AS locked")
                        .bind::<Integer, _>(ADVISORY_LOCK_CLASS)
                        .get_result::<Locked>(pg);
            }
            return Ok(());
        }
        if leader.load(Ordering::SeqCst) {
            // Still connected (and so still holding the lock)?
            diesel::sql_query("SELECT true AS locked").get_result::<Locked>(pg)?;
        } else {
            let Locked { locked } =
                diesel::sql_query("SELECT pg_try_advisory_lock($1, hashtext(current_schema())) AS locked")
                    .bind::<Integer, _>(ADVISORY_LOCK_CLASS)
                    .get_result::<Locked>(pg)?;
            if locked {
                tracing::info!("this node now runs the scheduled jobs");
            }
            leader.store(locked, Ordering::SeqCst);
        }
        sleep_unless_stopped(LEADER_POLL, stop);
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::SeqCst) {
        thread::sleep(step);
        slept += step;
    }
}

/// The jobs themselves, shared by the scheduler and the subcommands.
pub mod run {
    use super::*;

    /// Snapshots `tenant` (or every tenant for `None`); returns `(tenant, snapshot_id)`.
    pub async fn snapshots(
        engine: &SyncEngine,
        tenant: Option<&str>,
        window_hours: i64,
    ) -> sync_domain::Result<Vec<(String, String)>> {
        let tenants = match tenant {
            Some(t) => vec![t.to_owned()],
            None => engine.tenants().await?,
        };
        let mut created = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let snapshot = engine.create_snapshot(&tenant, window_hours).await?;
            created.push((tenant, snapshot.snapshot_id));
        }
        Ok(created)
    }

    /// The weekly conflict report of the last `REPORT_DAYS` days: one log line per tenant and
    /// domain and a total, and `conflict-report-<UTC time>.json` (the rows of
    /// `sync-server conflict-report --format json`, with the period) in `dir` when given.
    pub async fn conflict_report(engine: &SyncEngine, dir: Option<&std::path::Path>) {
        let rows = match engine.conflict_report(REPORT_DAYS).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "conflict report failed");
                return;
            }
        };
        for row in &rows {
            tracing::info!(tenant = %row.tenant, domain = %row.domain, conflicts = row.conflict_count, "conflict report");
        }
        let total: i64 = rows.iter().map(|r| r.conflict_count).sum();
        tracing::info!(days = REPORT_DAYS, rows = rows.len(), conflicts = total, "weekly conflict report");
        let Some(dir) = dir else { return };
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        let generated_at = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let stamp = generated_at.replace(':', "");
        let path = dir.join(format!("conflict-report-{stamp}.json"));
        let body = serde_json::json!({ "generated_at": generated_at, "days": REPORT_DAYS, "rows": rows });
        let written = serde_json::to_vec_pretty(&body)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, bytes)));
        match written {
            Ok(()) => tracing::info!(path = %path.display(), "conflict report written"),
            Err(e) => tracing::error!(error = %e, path = %path.display(), "cannot write the conflict report"),
        }
    }

    /// The anomaly job over every tenant.
    pub async fn anomalies(engine: &SyncEngine, baselines: &mut sync_domain::engine::AnomalyBaselines) {
        match engine.evaluate_anomalies(baselines, time::OffsetDateTime::now_utc()).await {
            Ok(run) => {
                for a in &run.raised {
                    tracing::warn!(metric = a.metric.as_str(), severity = a.severity.as_str(), explanation = %a.explanation, "anomaly");
                }
                tracing::info!(
                    tenants = run.tenants,
                    series = run.series,
                    raised = run.raised.len(),
                    continued = run.continued,
                    "anomaly check"
                );
            }
            Err(e) => tracing::error!(error = %e, "anomaly check failed"),
        }
    }

    /// The insight job over every tenant: the conflict-risk model and scores, then the sync
    /// windows. A tenant's failure is logged and the others go on.
    pub async fn insight(engine: &SyncEngine) {
        let tenants = match engine.tenants().await {
            Ok(t) => t,
            Err(e) => return tracing::error!(error = %e, "insight job failed"),
        };
        for tenant in tenants {
            let now = time::OffsetDateTime::now_utc();
            match engine.train_conflict_risk(&tenant, now).await {
                Ok(run) => tracing::info!(
                    tenant = %tenant, examples = run.examples, trained = run.trained, scored = run.scored,
                    holdout_auc = ?run.model.as_ref().and_then(|m| m.holdout_auc), "conflict-risk model"
                ),
                Err(e) => tracing::error!(tenant = %tenant, error = %e, "conflict-risk training failed"),
            }
            match engine.plan_sync_windows(&tenant, now).await {
                Ok(devices) => tracing::info!(tenant = %tenant, devices, "sync windows planned"),
                Err(e) => tracing::error!(tenant = %tenant, error = %e, "sync-window planning failed"),
            }
        }
    }

    /// Purges every tenant's history below its oldest active cursor; returns the rows removed.
    pub async fn purge(engine: &SyncEngine) -> sync_domain::Result<usize> {
        let mut removed = 0;
        for tenant in engine.tenants().await? {
            let report = engine.purge(&tenant).await?;
            removed += report.tombstones + report.versions + report.idempotency_keys;
        }
        Ok(removed)
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A job of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Snapshot,
    Health,
    Report,
    Anomalies,
    Insight,
    Webhooks,
}

/// Runs the jobs on `schedule` until `shutdown` turns true, each at its next boundary after
/// start and then at every boundary (a run that overran skips the boundaries it missed). Only
/// the leader runs them; the others skip those boundaries.
pub async fn schedule(
    engine: SyncEngine,
    leadership: Leadership,
    schedule: Schedule,
    report_dir: Option<PathBuf>,
    mut shutdown: watch::Receiver<bool>,
) {
    let snapshot_hours = i64::from(engine.config().analytics_snapshot_interval_hours.max(1));
    let start = now_ms();
    let mut jobs = [
        (Job::Snapshot, schedule.snapshot, schedule.snapshot.next_after(start)),
        (Job::Health, schedule.health, schedule.health.next_after(start)),
        (Job::Report, schedule.report, schedule.report.next_after(start)),
        (Job::Anomalies, schedule.anomalies, schedule.anomalies.next_after(start)),
        (Job::Insight, schedule.insight, schedule.insight.next_after(start)),
        (Job::Webhooks, schedule.webhooks, schedule.webhooks.next_after(start)),
    ];
    let mut baselines = sync_domain::engine::AnomalyBaselines::default();
    let webhook_client = match sync_api::webhooks::client() {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks stay undelivered");
            None
        }
    };
    loop {
        let soonest = jobs.iter().map(|(_, _, at)| *at).min().unwrap_or(start);
        let wait = Duration::from_millis(u64::try_from(soonest - now_ms()).unwrap_or(0));
        tokio::select! {
            _ = shutdown.changed() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let now = now_ms();
        for (job, every, at) in &mut jobs {
            if *at > now {
                continue;
            }
            *at = every.next_after(now.max(*at));
            if !leadership.is_leader() {
                continue;
            }
            match job {
                Job::Snapshot => match run::snapshots(&engine, None, snapshot_hours).await {
                    Ok(created) => tracing::info!(snapshots = created.len(), "scheduled snapshots created"),
                    Err(e) => tracing::error!(error = %e, "scheduled snapshot failed"),
                },
                Job::Health => {
                    match engine.check_device_health(engine.config().device_health_threshold).await {
                        Ok(unhealthy) if unhealthy.is_empty() => {
                            tracing::info!("device health check: all healthy")
                        }
                        Ok(unhealthy) => {
                            for (tenant, device) in &unhealthy {
                                tracing::warn!(tenant = %tenant, device = %device.device_id, score = device.health_score, "unhealthy device");
                            }
                            tracing::warn!(
                                devices = unhealthy.len(),
                                "device health check: unhealthy devices"
                            );
                        }
                        Err(e) => tracing::error!(error = %e, "device health check failed"),
                    }
                    match run::purge(&engine).await {
                        Ok(removed) => tracing::info!(removed, "purge done"),
                        Err(e) => tracing::error!(error = %e, "purge failed"),
                    }
                }
                Job::Report => run::conflict_report(&engine, report_dir.as_deref()).await,
                Job::Anomalies => run::anomalies(&engine, &mut baselines).await,
                Job::Insight => run::insight(&engine).await,
                Job::Webhooks => {
                    if let Some(client) = &webhook_client {
                        match sync_api::webhooks::deliver_due(&engine, client).await {
                            Ok(run) if run.attempted == 0 => {}
                            Ok(run) => tracing::info!(
                                attempted = run.attempted,
                                delivered = run.delivered,
                                retrying = run.retrying,
                                failed = run.failed,
                                "webhook deliveries"
                            ),
                            Err(e) => tracing::error!(error = %e, "webhook deliveries failed"),
                        }
                    }
                }
            }
        }
    }
    let stopping = leadership.clone();
    let _ = tokio::task::spawn_blocking(move || stopping.stop()).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    fn ms(t: time::OffsetDateTime) -> i64 {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
    }

    #[test]
    fn default_schedule_is_on_the_clock() {
        let schedule = JobsConfig::default().schedule(1).unwrap();
        // A Wednesday afternoon.
        let now = ms(datetime!(2026-12-02 14:37:12.5 UTC));
        assert_eq!(schedule.snapshot.next_after(now), ms(datetime!(2026-12-02 15:00 UTC)));
        assert_eq!(schedule.health.next_after(now), ms(datetime!(2026-12-03 02:00 UTC)));
        assert_eq!(schedule.report.next_after(now), ms(datetime!(2026-12-07 03:00 UTC)), "Monday 03:00");
        assert_eq!(
            schedule.anomalies.next_after(now),
            ms(datetime!(2026-12-02 14:40:10 UTC)),
            "every 5 minutes"
        );
        assert_eq!(schedule.insight.next_after(now), ms(datetime!(2026-12-02 15:05 UTC)));
        assert_eq!(schedule.webhooks.next_after(now), ms(datetime!(2026-12-02 14:37:15 UTC)));
        // Exactly on a boundary: the next one, not the same.
        let on = ms(datetime!(2026-12-02 15:00 UTC));
        assert_eq!(schedule.snapshot.next_after(on), ms(datetime!(2026-12-02 16:00 UTC)));

        let config = JobsConfig {
            health_check_at: "23:59".into(),
            conflict_report_at: "Sunday 00:30".into(),
            ..JobsConfig::default()
        };
        let schedule = config.schedule(6).unwrap();
        assert_eq!(schedule.snapshot.next_after(now), ms(datetime!(2026-12-02 18:00 UTC)));
        assert_eq!(schedule.health.next_after(now), ms(datetime!(2026-12-02 23:59 UTC)));
        assert_eq!(schedule.report.next_after(now), ms(datetime!(2026-12-06 00:30 UTC)));

        let every = JobsConfig { every_seconds: Some(2), ..JobsConfig::default() }.schedule(1).unwrap();
        assert_eq!(every.report.next_after(now), ms(datetime!(2026-12-02 14:37:14 UTC)));
        assert_eq!(every.snapshot, every.health);
    }

    #[test]
    fn bad_times_are_refused() {
        for (health, report) in [
            ("24:00", "mon 03:00"),
            ("2:00", "mon 03:00"),
            ("02:60", "mon 03:00"),
            ("02:00", "03:00"),
            ("02:00", "mo 03:00"),
            ("02:00", "funday 03:00"),
        ] {
            let config = JobsConfig {
                health_check_at: health.into(),
                conflict_report_at: report.into(),
                ..JobsConfig::default()
            };
            assert!(config.schedule(1).is_err(), "{health} / {report}");
        }
        assert!(JobsConfig { every_seconds: Some(0), ..JobsConfig::default() }.schedule(1).is_err());
        for bad in [0, 7, 61] {
            assert!(
                JobsConfig { anomaly_every_minutes: bad, ..JobsConfig::default() }.schedule(1).is_err(),
                "{bad}"
            );
        }
        assert!(JobsConfig { insight_every_minutes: 0, ..JobsConfig::default() }.schedule(1).is_err());
        assert!(JobsConfig { webhook_every_seconds: 0, ..JobsConfig::default() }.schedule(1).is_err());
        assert!(JobsConfig { every_seconds: Some(u64::MAX), ..JobsConfig::default() }.schedule(1).is_err());
    }

    proptest! {
        /// The next boundary is after `t`, at most one period later, and on the grid.
        #[test]
        fn next_after_is_the_next_grid_point(t in -4_000_000_000_000_i64..4_000_000_000_000, period in 1_i64..1_000_000_000, offset in -2_000_000_000_i64..2_000_000_000) {
            let every = Every { period, offset };
            let next = every.next_after(t);
            prop_assert!(next > t);
            prop_assert!(next <= t + period);
            prop_assert_eq!((next - offset).rem_euclid(period), 0);
        }
    }
}
