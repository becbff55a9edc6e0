//! Anomaly evaluation: tenants of units with a daily and weekly rhythm, planted incidents, and
//! the detector run as the scheduled job would run it (refitted daily, judging the trailing
//! 15 minutes every 5 minutes).

use serde::{Deserialize, Serialize};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::EvalConfig;
use crate::stats::SplitMix64;
use crate::{Baseline, Bucket, DetectorConfig, InsightError, Metric, Scope};

const BUCKET_MINUTES: i64 = 5;
const PER_DAY: usize = 288;
/// The judged window: the trailing 15 minutes.
const WINDOW_BUCKETS: usize = 3;

/// What the anomaly evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyReport {
    /// Incidents planted while their unit is in use (activity at least 30 % of its weekday
    /// peak), and how many of those were found by a window ending within 15 minutes.
    pub incidents: usize,
    pub detected: usize,
    pub recall: f64,
    /// Incidents planted in quiet hours (nights, Sundays), reported apart: with a handful of
    /// syncs in 15 minutes, little can be seen.
    pub quiet_incidents: usize,
    pub quiet_detected: usize,
    pub quiet_recall: f64,
    /// (kind, planted, found) over all incidents.
    pub by_kind: Vec<(String, usize, usize)>,
    pub median_delay_minutes: i64,
    /// Alarm episodes (consecutive flagged windows of one series and metric) that no incident
    /// explains.
    pub false_alarms: usize,
    pub tenant_days: usize,
    pub false_alarms_per_tenant_day: f64,
    /// Windows judged × metrics.
    pub checks: usize,
    /// Each active-hour incident that was not found in time, in words.
    pub missed: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A unit's failure rate jumps.
    FailureJump,
    /// A unit's records start conflicting (hot records).
    ConflictSurge,
    /// A unit's syncs slow down.
    Slowdown,
    /// The whole tenant stops syncing (an outage in front of it).
    Outage,
}

impl Kind {
    fn metric(self) -> Metric {
        match self {
            Kind::FailureJump => Metric::FailureRate,
            Kind::ConflictSurge => Metric::ConflictRate,
            Kind::Slowdown => Metric::P95Duration,
            Kind::Outage => Metric::SyncVolume,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::FailureJump => "unit failure rate jump",
            Kind::ConflictSurge => "unit conflict surge",
            Kind::Slowdown => "unit slowdown",
            Kind::Outage => "tenant outage",
        }
    }
}

#[derive(Debug, Clone)]
struct Incident {
    kind: Kind,
    /// The unit, or `None` for the whole tenant.
    unit: Option<usize>,
    start: usize,
    len: usize,
    magnitude: f64,
    active: bool,
}

impl Incident {
    fn covers(&self, unit: usize, bucket: usize) -> bool {
        self.unit.is_none_or(|u| u == unit) && (self.start..self.start + self.len).contains(&bucket)
    }
}

/// A unit's steady character.
#[derive(Debug, Clone)]
struct Unit {
    devices: f64,
    failure_rate: f64,
    conflict_rate: f64,
    changes_per_sync: f64,
    p95_ms: f64,
}

/// The epoch of every synthetic fleet: a Monday.
fn epoch() -> OffsetDateTime {
    datetime!(2026-01-05 00:00 UTC)
}

fn at(bucket: usize) -> OffsetDateTime {
    epoch() + Duration::minutes(BUCKET_MINUTES * bucket as i64)
}

/// Activity relative to a weekday's peak: quiet nights, a morning ramp, a lunch dip, a quiet
/// Saturday and a quieter Sunday.
pub(crate) fn activity(t: OffsetDateTime) -> f64 {
    let h = f64::from(t.hour()) + f64::from(t.minute()) / 60.0;
    let daily = match h {
        h if h < 6.0 => 0.04,
        h if h < 8.0 => 0.04 + (h - 6.0) / 2.0 * 0.8,
        h if h < 12.0 => 1.0,
        h if h < 13.0 => 0.75,
        h if h < 17.0 => 1.0,
        h if h < 19.0 => 1.0 - (h - 17.0) / 2.0 * 0.7,
        h if h < 22.0 => 0.3 - (h - 19.0) / 3.0 * 0.2,
        _ => 0.06,
    };
    let weekly = match t.weekday().number_days_from_monday() {
        5 => 0.35,
        6 => 0.12,
        _ => 1.0,
    };
    daily * weekly
}

fn generate_units(rng: &mut SplitMix64, units: usize) -> Vec<Unit> {
    (0..units)
        .map(|_| Unit {
            devices: 40.0 + rng.below(121) as f64,
            failure_rate: 0.01 + 0.02 * rng.uniform(),
            conflict_rate: 0.02 + 0.03 * rng.uniform(),
            changes_per_sync: 2.0 + 2.0 * rng.uniform(),
            p95_ms: 600.0 + 600.0 * rng.uniform(),
        })
        .collect()
}

fn plant(
    rng: &mut SplitMix64,
    config: &EvalConfig,
    units: usize,
    first: usize,
    last: usize,
) -> Vec<Incident> {
    let mut planted: Vec<Incident> = Vec::new();
    for n in 0..config.incidents_per_tenant {
        let kind = [Kind::FailureJump, Kind::ConflictSurge, Kind::Slowdown, Kind::Outage][n % 4];
        let want_active = rng.chance(0.75);
        for _ in 0..200 {
            let start = first + rng.below((last - first) as u64) as usize;
            let active = activity(at(start)) >= 0.3;
            let len = 6 + rng.below(31) as usize; // 30 minutes to 3 hours
            // Apart from the tenant's other incidents by at least 4 hours either side.
            let clear = planted.iter().all(|p| start + len + 48 < p.start || p.start + p.len + 48 < start);
            if active == want_active && clear && start + len < last {
                let magnitude = match kind {
                    Kind::FailureJump => 0.12 + 0.23 * rng.uniform(),
                    Kind::ConflictSurge => 0.12 + 0.18 * rng.uniform(),
                    Kind::Slowdown => 2.5 + 1.5 * rng.uniform(),
                    Kind::Outage => 0.2 * rng.uniform(),
                };
                let unit = (kind != Kind::Outage).then(|| rng.below(units as u64) as usize);
                planted.push(Incident { kind, unit, start, len, magnitude, active });
                break;
            }
        }
    }
    planted
}

/// A unit's buckets from bucket 0 to `total`, incidents included.
fn simulate(
    rng: &mut SplitMix64,
    unit: &Unit,
    index: usize,
    total: usize,
    incidents: &[Incident],
) -> Vec<Bucket> {
    let mut out = Vec::with_capacity(total);
    let (mut day_level, mut day_fail, mut hour_level, mut hour_conflict) = (1.0, 1.0, 1.0, 1.0);
    for b in 0..total {
        if b % PER_DAY == 0 {
            day_level = (0.08 * rng.normal()).exp();
            day_fail = (0.2 * rng.normal()).exp();
        }
        if b % 12 == 0 {
            hour_level = (0.05 * rng.normal()).exp();
            hour_conflict = (0.15 * rng.normal()).exp();
        }
        let t = at(b);
        let a = activity(t);
        let mut mean_syncs = unit.devices * 4.0 / 12.0 * a * day_level * hour_level;
        let mut failure = unit.failure_rate * day_fail;
        let mut conflict = unit.conflict_rate * hour_conflict * (0.8 + 0.4 * a);
        let mut slow = 1.0;
        for i in incidents.iter().filter(|i| i.covers(index, b)) {
            match i.kind {
                Kind::FailureJump => failure = i.magnitude,
                Kind::ConflictSurge => conflict = i.magnitude,
                Kind::Slowdown => slow = i.magnitude,
                Kind::Outage => mean_syncs *= i.magnitude,
            }
        }
        let syncs = rng.poisson(mean_syncs);
        let failures = rng.binomial(syncs, failure.min(1.0));
        let changes = rng.poisson(syncs as f64 * unit.changes_per_sync);
        let conflicts = rng.binomial(changes, conflict.min(1.0));
        // A p95 of a few syncs is noisy; busier hours are a little slower.
        let noise = (0.08 + 0.4 / ((syncs as f64) + 1.0).sqrt()) * rng.normal();
        let p95 = (syncs > 0).then(|| unit.p95_ms * (1.0 + 0.3 * a) * slow * noise.exp());
        out.push(Bucket { start: t, syncs, failures, changes, conflicts, p95_duration_ms: p95 });
    }
    out
}

/// The tenant's series: the sum of its units', p95 weighted by syncs.
fn tenant_series(units: &[Vec<Bucket>]) -> Vec<Bucket> {
    let total = units.first().map_or(0, Vec::len);
    (0..total)
        .map(|b| {
            let mut sum = Bucket::empty(at(b));
            let mut weighted = 0.0;
            for u in units {
                let x = &u[b];
                sum.syncs += x.syncs;
                sum.failures += x.failures;
                sum.changes += x.changes;
                sum.conflicts += x.conflicts;
                weighted += x.p95_duration_ms.unwrap_or(0.0) * x.syncs as f64;
            }
            sum.p95_duration_ms = (sum.syncs > 0).then(|| weighted / sum.syncs as f64);
            sum
        })
        .collect()
}

/// One flagged window: series (units first, the tenant last), metric, the window's last bucket.
type Flag = (usize, Metric, usize);

pub(super) fn evaluate(config: &EvalConfig) -> Result<AnomalyReport, InsightError> {
    let detector = DetectorConfig::default();
    let history = config.history_weeks * 7 * PER_DAY;
    let total = history + config.judged_days * PER_DAY;
    let mut rng = SplitMix64::new(config.seed ^ 0xA11A_0000);
    let mut report = AnomalyReport {
        incidents: 0,
        detected: 0,
        recall: 0.0,
        quiet_incidents: 0,
        quiet_detected: 0,
        quiet_recall: 0.0,
        by_kind: Vec::new(),
        median_delay_minutes: 0,
        false_alarms: 0,
        tenant_days: config.tenants * config.judged_days,
        false_alarms_per_tenant_day: 0.0,
        checks: 0,
        missed: Vec::new(),
    };
    let mut delays = Vec::new();
    let mut kinds: Vec<(Kind, usize, usize)> = Vec::new();
    for _ in 0..config.tenants {
        let units = generate_units(&mut rng, config.units_per_tenant);
        let incidents = plant(&mut rng, config, units.len(), history, total);
        let mut series: Vec<Vec<Bucket>> =
            units.iter().enumerate().map(|(i, u)| simulate(&mut rng, u, i, total, &incidents)).collect();
        series.push(tenant_series(&series));
        let flags = judge(&series, history, total, &detector, &mut report.checks)?;
        let tenant = series.len() - 1;
        for incident in &incidents {
            let found = flags
                .iter()
                .filter(|&&(s, m, e)| {
                    m == incident.kind.metric()
                        && (s == tenant || incident.unit.is_none_or(|u| u == s))
                        && e >= incident.start
                        && e < incident.start + WINDOW_BUCKETS
                })
                .map(|&(_, _, e)| e)
                .min();
            if incident.active {
                report.incidents += 1;
            } else {
                report.quiet_incidents += 1;
            }
            match kinds.iter_mut().find(|k| k.0 == incident.kind) {
                Some(k) => k.1 += 1,
                None => kinds.push((incident.kind, 1, 0)),
            }
            if found.is_none() && incident.active {
                report.missed.push(describe(incident, &units));
            }
            if let Some(e) = found {
                delays.push((e + 1 - incident.start) as i64 * BUCKET_MINUTES);
                if incident.active {
                    report.detected += 1;
                } else {
                    report.quiet_detected += 1;
                }
                if let Some(k) = kinds.iter_mut().find(|k| k.0 == incident.kind) {
                    k.2 += 1;
                }
            }
        }
        report.false_alarms += false_episodes(&flags, &incidents, tenant);
    }
    report.recall = ratio(report.detected, report.incidents);
    report.quiet_recall = ratio(report.quiet_detected, report.quiet_incidents);
    report.false_alarms_per_tenant_day = ratio(report.false_alarms, report.tenant_days);
    delays.sort_unstable();
    report.median_delay_minutes = delays.get(delays.len() / 2).copied().unwrap_or(0);
    report.by_kind = kinds.into_iter().map(|(k, p, f)| (k.name().to_owned(), p, f)).collect();
    Ok(report)
}

fn describe(incident: &Incident, units: &[Unit]) -> String {
    let start = at(incident.start);
    let size = match incident.unit {
        Some(u) => format!("unit of {:.0} devices", units[u].devices),
        None => format!("tenant of {:.0} devices", units.iter().map(|u| u.devices).sum::<f64>()),
    };
    let magnitude = match incident.kind {
        Kind::FailureJump | Kind::ConflictSurge => format!("to {:.0} %", incident.magnitude * 100.0),
        Kind::Slowdown => format!("x{:.1}", incident.magnitude),
        Kind::Outage => format!("to {:.0} % of its volume", incident.magnitude * 100.0),
    };
    format!(
        "{} {magnitude}, {size}, {} {:02}:{:02} (activity {:.0} % of peak), {} min",
        incident.kind.name(),
        start.weekday(),
        start.hour(),
        start.minute(),
        activity(start) * 100.0,
        incident.len as i64 * BUCKET_MINUTES
    )
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Runs the detector over the judged days of every series: refitted at each midnight on the
/// weeks before, judging the trailing 15 minutes every 5 minutes.
fn judge(
    series: &[Vec<Bucket>],
    history: usize,
    total: usize,
    detector: &DetectorConfig,
    checks: &mut usize,
) -> Result<Vec<Flag>, InsightError> {
    let mut flags = Vec::new();
    for (s, buckets) in series.iter().enumerate() {
        let mut day = history;
        while day < total {
            let baseline = Baseline::fit(&buckets[day - history..day], detector)?;
            for e in day..(day + PER_DAY).min(total) {
                let window = &buckets[e + 1 - WINDOW_BUCKETS..=e];
                *checks += Metric::ALL.len();
                for anomaly in baseline.evaluate(window, &Scope::tenant())? {
                    flags.push((s, anomaly.metric, e));
                }
            }
            day += PER_DAY;
        }
    }
    Ok(flags)
}

/// Alarm episodes no incident explains. A flag is explained when an incident of its metric
/// touches its series (the tenant's series is touched by every incident) while its window
/// overlaps the incident.
fn false_episodes(flags: &[Flag], incidents: &[Incident], tenant: usize) -> usize {
    let mut unexplained: Vec<Flag> = flags
        .iter()
        .copied()
        .filter(|&(s, m, e)| {
            !incidents.iter().any(|i| {
                i.kind.metric() == m
                    && (s == tenant || i.unit.is_none_or(|u| u == s))
                    && e + 1 >= i.start
                    && e < i.start + i.len + WINDOW_BUCKETS
            })
        })
        .collect();
    unexplained.sort_by_key(|a| (a.0, a.1, a.2));
    let mut episodes = 0;
    let mut last: Option<Flag> = None;
    for f in unexplained {
        let continues = last.is_some_and(|l| l.0 == f.0 && l.1 == f.1 && f.2 <= l.2 + WINDOW_BUCKETS);
        if !continues {
            episodes += 1;
        }
        last = Some(f);
    }
    episodes
}
