//! The soak: a realistic mixed fleet for a long while (`sync-sim soak --duration 30m`), with
//! the server's memory, file descriptors, database connections and a probe device's latency
//! sampled throughout. They must stay flat: the report gives each one's slope (Theil–Sen,
//! after a warm-up) and its projected growth over the run, and invariants bound that growth.
//!
//! The fleet: polling devices on a good network (`basic_sync`), devices holding live streams
//! (`live_fleet`) and devices on a poor network (`network_issues`), each group in a tenant of
//! its own, with phone-like think times; all the fleets' own invariants hold as well.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::Backend;
use serde::Serialize;

use crate::client::SyncClient;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::invariants::Invariant;
use crate::network::NetworkProfile;
use crate::report::Report;
use crate::runner::{RunOptions, Target};
use crate::scenario::{Scenario, ScenarioKind};
use crate::server::{ServerDb, ServerProcess};
use crate::stats::{Latency, Progress};

/// Share of the run left out of the slopes: the server's caches and pools fill first.
const WARM_UP_SHARE: f64 = 0.2;

/// One sample of the server.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub at_sec: f64,
    pub rss_mib: f64,
    pub open_fds: u64,
    /// The server's PostgreSQL connections (`None` on SQLite).
    pub db_connections: Option<u64>,
    /// The probe device's push and pull latency since the last sample, p99 in ms.
    pub probe_p99_ms: f64,
}

/// How one figure moved over the run.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub name: &'static str,
    pub unit: &'static str,
    /// Mean after the warm-up.
    pub mean: f64,
    /// Theil–Sen slope after the warm-up, per hour.
    pub slope_per_hour: f64,
    /// The slope times the run's length after the warm-up: what it grew by.
    pub growth: f64,
    /// Most growth the invariant allows.
    pub allowed: f64,
}

/// The soak's report.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub backend: String,
    pub duration_sec: f64,
    pub samples: Vec<Sample>,
    pub trends: Vec<Trend>,
    pub fleets: Vec<Report>,
    pub invariants: Vec<Invariant>,
    pub passed: bool,
}

impl SoakReport {
    pub fn to_table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "soak on {}: {:.0}s, {} samples, fleets {}",
            self.backend,
            self.duration_sec,
            self.samples.len(),
            self.fleets
                .iter()
                .map(|f| format!("{} ({} devices)", f.scenario.kind, f.scenario.devices))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for t in &self.trends {
            let _ = writeln!(
                out,
                "  {:<16} mean {:>9.2} {:<5} slope {:>+9.3} {}/h  grew {:>+8.2} (allowed {:.2})",
                t.name, t.mean, t.unit, t.slope_per_hour, t.unit, t.growth, t.allowed
            );
        }
        for fleet in &self.fleets {
            let _ = writeln!(
                out,
                "  {:<16} {} changes acknowledged, push p99 {:.1} ms, pull p99 {:.1} ms",
                fleet.scenario.kind.as_str(),
                fleet.changes.acknowledged,
                fleet.push_latency.p99_ms,
                fleet.pull_latency.p99_ms
            );
        }
        let all = self.fleets.iter().flat_map(|f| f.invariants.iter()).chain(&self.invariants);
        crate::invariants::write_table(&mut out, all);
        let _ = writeln!(out, "  {}", if self.passed { "PASSED" } else { "FAILED" });
        out
    }
}

/// The three fleets, working for `duration` at a phone's pace.
fn fleets(duration: Duration, seed: u64) -> Vec<Scenario> {
    let pace = |mut s: Scenario, devices: usize| {
        s.devices = devices;
        s.devices_per_unit = 8;
        s.duration = duration;
        s.think_time = (Duration::from_millis(200), Duration::from_millis(1500));
        s.seed = seed;
        s
    };
    vec![
        pace(Scenario::preset(ScenarioKind::BasicSync), 24),
        pace(Scenario::preset(ScenarioKind::LiveFleet), 16),
        pace(Scenario::preset(ScenarioKind::NetworkIssues), 8),
    ]
}

/// Runs the soak on `backend` for `duration`, sampling every `every`.
pub async fn run(
    binary: &std::path::Path,
    backend: Backend,
    duration: Duration,
    every: Duration,
) -> Result<SoakReport> {
    let (db, tag) = ServerDb::fresh_named(backend, "syncforge-soak")?;
    let server = ServerProcess::start_on(binary, db, &[]).await?;
    let target = server.target();
    let started = Instant::now();
    let scenarios = fleets(duration, 1);
    let runs = futures_util::future::join_all(scenarios.iter().map(|scenario| {
        let target = target.clone();
        async move { crate::run(scenario, &target, &RunOptions::default()).await }
    }));
    let (fleets, samples) = tokio::join!(runs, sample(&server, &target, &tag, duration, every));
    let mut fleets = fleets.into_iter().collect::<Result<Vec<Report>>>()?;
    for fleet in &mut fleets {
        fleet.backend = Some(backend.to_string());
    }
    let samples = samples?;
    let trends = trends(&samples, backend);
    let invariants = vec![flat(&trends)];
    let passed = fleets.iter().all(|f| f.passed) && invariants.iter().all(|i| i.passed);
    Ok(SoakReport {
        backend: backend.to_string(),
        duration_sec: started.elapsed().as_secs_f64(),
        samples,
        trends,
        fleets,
        invariants,
        passed,
    })
}

/// Samples the server every `every` for `duration`, while a probe device pushes and pulls
/// about once a second.
async fn sample(
    server: &ServerProcess,
    target: &Target,
    tag: &str,
    duration: Duration,
    every: Duration,
) -> Result<Vec<Sample>> {
    let tenant = format!("soak-probe-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let client =
        SyncClient::new(&target.base_url, target.issuer.device(&tenant, "probe", Some(&["u0".to_owned()]))?)?;
    let behaviour = Scenario::preset(ScenarioKind::BasicSync).behaviour();
    let mut probe = Device::new(
        "probe".into(),
        "u0".into(),
        Arc::new(behaviour),
        client,
        NetworkProfile::perfect(),
        time::Duration::ZERO,
        7,
    );
    let progress = Progress::default();
    let started = Instant::now();
    let mut next_sample = started + every;
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        probe.edit();
        probe.push_once(&progress).await;
        probe.pull_to_end(true, Some(5), &progress).await;
        if Instant::now() >= next_sample {
            next_sample += every;
            let mut latencies = std::mem::take(&mut probe.stats.push_latencies_us);
            latencies.append(&mut probe.stats.pull_latencies_us);
            samples.push(Sample {
                at_sec: started.elapsed().as_secs_f64(),
                rss_mib: server.rss_bytes().map_or(0.0, |b| b as f64 / (1024.0 * 1024.0)),
                open_fds: open_fds(server.pid())?,
                db_connections: db_connections(server, tag).await?,
                probe_p99_ms: Latency::of(&latencies).p99_ms,
            });
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    Ok(samples)
}

fn open_fds(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io { path: dir, source })?;
    Ok(entries.count() as u64)
}

async fn db_connections(server: &ServerProcess, tag: &str) -> Result<Option<u64>> {
    if server.backend() != Backend::Postgres {
        return Ok(None);
    }
    let count = server.database().connections_named(tag).await?;
    Ok(Some(count))
}

/// The Theil–Sen slope of `points` (x in seconds), per second: the median of the slopes
/// between every pair of points. Unlike least squares, a burst of slow samples (another
/// process busy for a minute) does not tilt it; a steady leak does.
fn slope(points: &[(f64, f64)]) -> f64 {
    let mut slopes: Vec<f64> = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    if slopes.is_empty() {
        return 0.0;
    }
    slopes.sort_by(f64::total_cmp);
    let mid = slopes.len() / 2;
    if slopes.len() % 2 == 1 { slopes[mid] } else { (slopes[mid - 1] + slopes[mid]) / 2.0 }
}

fn trends(samples: &[Sample], backend: Backend) -> Vec<Trend> {
    let Some(last) = samples.last() else { return Vec::new() };
    let warm = last.at_sec * WARM_UP_SHARE;
    let kept: Vec<&Sample> = samples.iter().filter(|s| s.at_sec >= warm).collect();
    let span = kept.last().map_or(0.0, |s| s.at_sec) - kept.first().map_or(0.0, |s| s.at_sec);
    let trend = |name, unit, value: &dyn Fn(&Sample) -> f64, allowed: &dyn Fn(f64) -> f64| {
        let points: Vec<(f64, f64)> = kept.iter().map(|s| (s.at_sec, value(s))).collect();
        let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len().max(1) as f64;
        let per_sec = slope(&points);
        Trend {
            name,
            unit,
            mean,
            slope_per_hour: per_sec * 3600.0,
            growth: per_sec * span,
            allowed: allowed(mean),
        }
    };
    let mut out = vec![
        // Memory: at most 10 % of its level, plus 8 MiB of allocator noise.
        trend("server_rss", "MiB", &|s| s.rss_mib, &|mean| 0.1 * mean + 8.0),
        // Descriptors and connections: a leak of one per minute shows; pools may breathe.
        trend("open_fds", "fds", &|s| s.open_fds as f64, &|mean| 0.1 * mean + 4.0),
        trend("probe_p99", "ms", &|s| s.probe_p99_ms, &|mean| 0.5 * mean + 5.0),
    ];
    if backend == Backend::Postgres {
        out.push(trend("db_connections", "conns", &|s| s.db_connections.unwrap_or(0) as f64, &|mean| {
            0.1 * mean + 2.0
        }));
    }
    out
}

fn flat(trends: &[Trend]) -> Invariant {
    let mut inv = Invariant::new("resources_flat");
    for t in trends {
        inv.checked += 1;
        if t.growth > t.allowed {
            inv.fail(|| {
                format!(
                    "{} grew by {:.2} {} over the run (slope {:+.3}/h; allowed {:.2})",
                    t.name, t.growth, t.unit, t.slope_per_hour, t.allowed
                )
            });
        }
    }
    if trends.is_empty() {
        inv.fail(|| "no samples were taken".into());
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_is_its_gradient_and_a_burst_does_not_tilt_it() {
        let mut points: Vec<(f64, f64)> = (0..10).map(|x| (f64::from(x), 3.0 * f64::from(x) + 1.0)).collect();
        assert!((slope(&points) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
        // Two wild samples at the end.
        points[8].1 = 500.0;
        points[9].1 = 900.0;
        assert!((slope(&points) - 3.0).abs() < 1e-9, "{}", slope(&points));
    }

    #[test]
    fn a_leak_fails_flatness() {
        let samples: Vec<Sample> = (0..60)
            .map(|i| Sample {
                at_sec: f64::from(i) * 10.0,
                rss_mib: 100.0 + f64::from(i),
                open_fds: 50,
                db_connections: None,
                probe_p99_ms: 5.0,
            })
            .collect();
        let inv = flat(&trends(&samples, Backend::Sqlite));
        assert!(!inv.passed, "{inv:?}");
        assert_eq!(inv.failure_count, 1, "only memory grew: {inv:?}");
    }
}
