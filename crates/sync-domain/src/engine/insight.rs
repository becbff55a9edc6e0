//! Fleet insight (PROTOCOL.md section 12) in the engine: the scheduled jobs that read the
//! recorded sync events and history, hand them to the pure `sync-insight` crate and store what
//! it finds (anomalies, which also become dashboard alerts; the conflict-risk model and each
//! active record's risk; each device's sync window), and the admin reads of them.
//!
//! The series are bucketed here (5-minute buckets of the `sync_events` table, UTC): the
//! tenant's, each domain's and each device's. A detector baseline is fitted once a day per
//! series on the weeks before (kept in memory by the caller, [`AnomalyBaselines`]); every run
//! judges the last full 15 minutes.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use sync_insight::{
    Anomaly, Baseline, Bucket, DetectorConfig, DeviceHistory, Example, Metric, Model, Network,
    RecordActivity, Scope, Severity, SyncAttempt, TrainConfig, WindowConfig, plan_windows,
};
use time::OffsetDateTime;

use super::{SyncEngine, admin::require_admin, push::check_device_id};
use crate::{
    Result,
    db::DbConnection,
    live::{CommitKind, Committed},
    micros,
    protocol::{
        AnomalyMetric, AnomalyScope, AnomalySeverity, AnomalyView, ConflictRisk, RiskModelView, RiskRecord,
        SyncWindow, WindowBasis,
    },
    store::{
        self, AlertRow, AnomalyRow, BasisName, EditLite, EventLite, MetricName, Principal, RecordKey,
        RiskModelRow, RiskScoreRow, SeverityName, SyncEventKind, SyncWindowRow,
    },
};

/// The width of a series bucket.
pub const BUCKET_MINUTES: i64 = 5;
/// The window each run judges: the last full 15 minutes.
pub const JUDGED_MINUTES: i64 = 15;
/// Flags of one series and metric less than this apart are one anomaly (its window is
/// extended rather than a new one raised).
pub const EPISODE_GAP_MINUTES: i64 = 15;
/// At most this many device series per tenant are watched (the devices with the most syncs in
/// the history), so that the baselines of a large fleet stay small in memory.
pub const MAX_DEVICE_SERIES: usize = 1000;
/// Days of sync history the window planner reads.
pub const WINDOW_HISTORY_DAYS: i64 = 14;
/// The recent window of the risk features, and the horizon of its labels.
pub const RISK_WINDOW_HOURS: i64 = 24;
/// Training examples are taken every 6 hours over this many days before the last horizon.
pub const RISK_TRAINING_DAYS: i64 = 7;
/// Past conflicts are counted over this many days.
pub const RISK_PAST_DAYS: i64 = 30;
/// At most this many training examples (a deterministic subsample beyond).
pub const MAX_RISK_EXAMPLES: usize = 60_000;
/// At most this many records' risks are kept per tenant (the highest).
pub const MAX_SCORED_RECORDS: usize = 10_000;
/// A unit's size is the devices that edited its records within this many days.
const UNIT_DAYS: i64 = 7;

const MINUTE_US: i64 = 60_000_000;
const HOUR_US: i64 = 60 * MINUTE_US;
const DAY_US: i64 = 24 * HOUR_US;

fn floor_to(t: i64, step: i64) -> i64 {
    t - t.rem_euclid(step)
}

/// Whose series: the tenant's, a domain's or a device's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeriesKey {
    Tenant,
    Domain(String),
    Device(String),
}

impl SeriesKey {
    fn scope(&self) -> Scope {
        match self {
            SeriesKey::Tenant => Scope::tenant(),
            SeriesKey::Domain(d) => Scope::domain(d.clone()),
            SeriesKey::Device(d) => Scope::device(d.clone()),
        }
    }
}

#[derive(Debug, Default)]
struct Acc {
    syncs: u64,
    failures: u64,
    changes: u64,
    conflicts: u64,
    durations: Vec<f64>,
}

impl Acc {
    fn add(&mut self, success: bool, duration_ms: f64, changes: u64, conflicts: u64) {
        self.syncs += 1;
        self.failures += u64::from(!success);
        self.changes = self.changes.saturating_add(changes);
        // A conflict is counted on a change; never more conflicts than changes.
        self.conflicts = self.conflicts.saturating_add(conflicts).min(self.changes);
        if duration_ms.is_finite() && duration_ms >= 0.0 {
            self.durations.push(duration_ms);
        }
    }

    fn bucket(mut self, start: OffsetDateTime) -> Bucket {
        self.durations.sort_by(f64::total_cmp);
        let p95 = (!self.durations.is_empty()).then(|| {
            let rank = ((self.durations.len() as f64) * 0.95).ceil() as usize;
            self.durations[rank.clamp(1, self.durations.len()) - 1]
        });
        Bucket {
            start,
            syncs: self.syncs,
            failures: self.failures,
            changes: self.changes,
            conflicts: self.conflicts,
            p95_duration_ms: p95,
        }
    }
}

/// The per-domain counts of an event's `domains` column.
fn domain_counts(text: &str) -> Vec<(String, u64, u64)> {
    let parsed: BTreeMap<String, Value> = serde_json::from_str(text).unwrap_or_default();
    let count = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    parsed.iter().map(|(d, v)| (d.clone(), count(v, "changes"), count(v, "conflicts"))).collect()
}

/// Buckets a tenant's device syncs (pushes, pulls, partial syncs; not an admin's resolutions)
/// into the tenant's, each domain's and each device's series, buckets in time order. A bucket
/// without syncs is left out (the detector reads it as zero syncs).
pub fn bucket_series(events: &[EventLite]) -> Result<BTreeMap<SeriesKey, Vec<Bucket>>> {
    let width = BUCKET_MINUTES * MINUTE_US;
    let mut acc: BTreeMap<SeriesKey, BTreeMap<i64, Acc>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind != SyncEventKind::Resolve) {
        let start = floor_to(e.at, width);
        let changes = u64::try_from(e.changes).unwrap_or(0);
        let conflicts = u64::try_from(e.conflicts).unwrap_or(0);
        acc.entry(SeriesKey::Tenant).or_default().entry(start).or_default().add(
            e.success,
            e.duration_ms,
            changes,
            conflicts,
        );
        acc.entry(SeriesKey::Device(e.device_id.clone())).or_default().entry(start).or_default().add(
            e.success,
            e.duration_ms,
            changes,
            conflicts,
        );
        for (domain, changes, conflicts) in domain_counts(&e.domains) {
            acc.entry(SeriesKey::Domain(domain)).or_default().entry(start).or_default().add(
                e.success,
                e.duration_ms,
                changes,
                conflicts,
            );
        }
    }
    acc.into_iter()
        .map(|(key, buckets)| {
            let series = buckets
                .into_iter()
                .map(|(start, a)| Ok(a.bucket(micros::stored(start)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok((key, series))
        })
        .collect()
}

/// The detector's configuration for the engine's 5-minute buckets.
pub fn detector_config() -> DetectorConfig {
    DetectorConfig { bucket_minutes: BUCKET_MINUTES as u32, ..DetectorConfig::default() }
}

/// The fitted baselines of each tenant's series, refitted once a UTC day. The scheduler keeps
/// one across runs; a new leader starts empty and fits on its first run.
#[derive(Debug, Default)]
pub struct AnomalyBaselines {
    tenants: HashMap<String, TenantBaselines>,
}

#[derive(Debug)]
struct TenantBaselines {
    /// The start (µs) of the day they were fitted for.
    day: i64,
    series: BTreeMap<SeriesKey, Baseline>,
}

impl AnomalyBaselines {
    /// How many series are watched (ready baselines), over every tenant.
    pub fn series(&self) -> usize {
        self.tenants.values().map(|t| t.series.len()).sum()
    }
}

/// Fits the ready baselines of `history`: the tenant's, every domain's and the most active
/// devices'.
fn fit_baselines(history: &BTreeMap<SeriesKey, Vec<Bucket>>) -> Result<BTreeMap<SeriesKey, Baseline>> {
    let config = detector_config();
    let mut devices: Vec<(&SeriesKey, u64)> = history
        .iter()
        .filter(|(k, _)| matches!(k, SeriesKey::Device(_)))
        .map(|(k, b)| (k, b.iter().map(|b| b.syncs).sum::<u64>()))
        .filter(|(_, syncs)| *syncs >= config.min_history_syncs)
        .collect();
    devices.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let watched: HashSet<&SeriesKey> = devices.iter().take(MAX_DEVICE_SERIES).map(|(k, _)| *k).collect();
    let mut fitted = BTreeMap::new();
    for (key, buckets) in history {
        if matches!(key, SeriesKey::Device(_)) && !watched.contains(key) {
            continue;
        }
        let baseline = Baseline::fit(buckets, &config)?;
        if baseline.is_ready() {
            fitted.insert(key.clone(), baseline);
        }
    }
    Ok(fitted)
}

/// The judged window of one series: a bucket for each slot of `[start, end)`, empty where no
/// sync happened (an outage is a drop to nothing).
fn judged_window(found: Option<&Vec<Bucket>>, start: i64, end: i64) -> Result<Vec<Bucket>> {
    let width = BUCKET_MINUTES * MINUTE_US;
    let mut by_start: HashMap<i64, &Bucket> = HashMap::new();
    for b in found.into_iter().flatten() {
        by_start.insert(micros::from_datetime(b.start), b);
    }
    let mut window = Vec::new();
    let mut at = start;
    while at < end {
        window.push(match by_start.get(&at) {
            Some(b) => (*b).clone(),
            None => Bucket::empty(micros::stored(at)?),
        });
        at += width;
    }
    Ok(window)
}

fn metric_name(metric: Metric) -> MetricName {
    match metric {
        Metric::SyncVolume => MetricName::SyncVolume,
        Metric::FailureRate => MetricName::FailureRate,
        Metric::ConflictRate => MetricName::ConflictRate,
        Metric::P95Duration => MetricName::P95Duration,
    }
}

fn severity_name(severity: Severity) -> SeverityName {
    match severity {
        Severity::Info => SeverityName::Info,
        Severity::Warning => SeverityName::Warning,
        Severity::Critical => SeverityName::Critical,
    }
}

/// An anomaly as the API lists it.
pub(crate) fn anomaly_view(row: &AnomalyRow) -> Result<AnomalyView> {
    Ok(AnomalyView {
        id: row.id.clone(),
        metric: match row.metric {
            MetricName::SyncVolume => AnomalyMetric::SyncVolume,
            MetricName::FailureRate => AnomalyMetric::FailureRate,
            MetricName::ConflictRate => AnomalyMetric::ConflictRate,
            MetricName::P95Duration => AnomalyMetric::P95Duration,
        },
        scope: AnomalyScope { device_id: row.scope_device.clone(), domain: row.scope_domain.clone() },
        observed: row.observed,
        expected: row.expected,
        band: [row.band_low, row.band_high],
        score: row.score,
        severity: match row.severity {
            SeverityName::Info => AnomalySeverity::Info,
            SeverityName::Warning => AnomalySeverity::Warning,
            SeverityName::Critical => AnomalySeverity::Critical,
        },
        window_start: micros::stored(row.window_start)?,
        window_end: micros::stored(row.window_end)?,
        explanation: row.explanation.clone(),
        created_at: micros::stored(row.created_at)?,
    })
}

/// What one run of the anomaly job did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnomalyRun {
    /// Tenants judged.
    pub tenants: usize,
    /// Series judged (ready baselines).
    pub series: usize,
    /// New anomalies (each also a dashboard alert).
    pub raised: Vec<AnomalyView>,
    /// Flags that continued an anomaly already raised.
    pub continued: usize,
}

impl SyncEngine {
    /// The anomaly job: judges the last full 15 minutes of every tenant's series against
    /// baselines fitted on the `anomaly_history_days` before today (refitted when the UTC day
    /// changes). New anomalies are stored with a dashboard alert each (rule
    /// `anomaly_<metric>`, the same id), which live admin streams and webhooks pick up.
    pub async fn evaluate_anomalies(
        &self,
        baselines: &mut AnomalyBaselines,
        now: OffsetDateTime,
    ) -> Result<AnomalyRun> {
        let mut run = AnomalyRun::default();
        let tenants = self.tenants().await?;
        baselines.tenants.retain(|t, _| tenants.contains(t));
        for tenant in tenants {
            let (series, raised, continued) = self.evaluate_tenant(&tenant, baselines, now).await?;
            run.tenants += 1;
            run.series += series;
            run.continued += continued;
            run.raised.extend(raised);
        }
        Ok(run)
    }

    async fn evaluate_tenant(
        &self,
        tenant: &str,
        baselines: &mut AnomalyBaselines,
        now: OffsetDateTime,
    ) -> Result<(usize, Vec<AnomalyView>, usize)> {
        let end = floor_to(micros::from_datetime(now), BUCKET_MINUTES * MINUTE_US);
        let start = end - JUDGED_MINUTES * MINUTE_US;
        let day = floor_to(end, DAY_US);
        if baselines.tenants.get(tenant).is_none_or(|b| b.day != day) {
            let from = day - self.config.anomaly_history_days * DAY_US;
            let owned = tenant.to_owned();
            let events = self.db.run(move |conn| store::events_between(conn, &owned, from, day)).await?;
            let series = fit_baselines(&bucket_series(&events)?)?;
            baselines.tenants.insert(tenant.to_owned(), TenantBaselines { day, series });
        }
        let Some(fitted) = baselines.tenants.get(tenant) else { return Ok((0, Vec::new(), 0)) };
        if fitted.series.is_empty() {
            return Ok((0, Vec::new(), 0));
        }
        let owned = tenant.to_owned();
        let events = self.db.run(move |conn| store::events_between(conn, &owned, start, end)).await?;
        let window = bucket_series(&events)?;
        let mut found: Vec<Anomaly> = Vec::new();
        for (key, baseline) in &fitted.series {
            let buckets = window.get(key);
            // A device that did not sync is not an anomaly (phones go offline); the tenant and
            // its domains are judged even when silent (an outage).
            if matches!(key, SeriesKey::Device(_)) && buckets.is_none() {
                continue;
            }
            let judged = judged_window(buckets, start, end)?;
            found.extend(
                baseline
                    .evaluate(&judged, &key.scope())?
                    .into_iter()
                    .filter(|a| !(matches!(key, SeriesKey::Device(_)) && a.metric == Metric::SyncVolume)),
            );
        }
        let series = fitted.series.len();
        if found.is_empty() {
            return Ok((series, Vec::new(), 0));
        }
        let engine = self.clone();
        let owned = tenant.to_owned();
        let (raised, continued) = self
            .retrying_write(move |conn| engine.store_anomalies(conn, &owned, &found, start, micros::now()))
            .await?;
        if !raised.is_empty() {
            self.publish(&[Committed::new(CommitKind::Alert, tenant, 0)]);
        }
        Ok((series, raised, continued))
    }

    /// Stores new anomalies with their alerts, or extends the open episode of the same series
    /// and metric. Returns the new ones and how many continued an episode.
    fn store_anomalies(
        &self,
        conn: &mut DbConnection,
        tenant: &str,
        found: &[Anomaly],
        window_start: i64,
        now: i64,
    ) -> Result<(Vec<AnomalyView>, usize)> {
        let open = store::open_anomalies(
            conn,
            tenant,
            window_start - DAY_US,
            window_start - EPISODE_GAP_MINUTES * MINUTE_US,
        )?;
        let mut raised = Vec::new();
        let mut continued = 0;
        for a in found {
            let metric = metric_name(a.metric);
            let row = AnomalyRow {
                tenant_id: tenant.to_owned(),
                id: uuid::Uuid::now_v7().to_string(),
                metric,
                scope_device: a.scope.device_id.clone(),
                scope_domain: a.scope.domain.clone(),
                observed: a.observed,
                expected: a.expected,
                band_low: a.band[0],
                band_high: a.band[1],
                score: a.score,
                severity: severity_name(a.severity),
                window_start: micros::from_datetime(a.window_start),
                window_end: micros::from_datetime(a.window_end),
                explanation: a.explanation.clone(),
                created_at: now,
            };
            let episode = open.iter().find(|o| {
                o.metric == metric && o.scope_device == row.scope_device && o.scope_domain == row.scope_domain
            });
            if let Some(episode) = episode {
                let worse = a.score.abs() > episode.score.abs();
                let updated = if worse {
                    AnomalyRow {
                        id: episode.id.clone(),
                        window_start: episode.window_start,
                        created_at: episode.created_at,
                        ..row
                    }
                } else {
                    AnomalyRow { window_end: row.window_end.max(episode.window_end), ..episode.clone() }
                };
                store::update_anomaly(conn, &updated)?;
                continued += 1;
                continue;
            }
            store::insert_alert(
                conn,
                &AlertRow {
                    tenant_id: tenant.to_owned(),
                    id: row.id.clone(),
                    snapshot_id: None,
                    rule: format!("anomaly_{}", a.metric.as_str()),
                    severity: row.severity.as_str().to_owned(),
                    value: a.observed,
                    threshold: if a.observed > a.band[1] { a.band[1] } else { a.band[0] },
                    message: a.explanation.clone(),
                    created_at: now,
                },
            )?;
            store::insert_anomaly(conn, &row)?;
            raised.push(anomaly_view(&row)?);
        }
        if !raised.is_empty() {
            self.notify_in_tx(conn, &Committed::new(CommitKind::Alert, tenant, 0))?;
        }
        Ok((raised, continued))
    }

    /// A tenant's anomalies found at or after `since` (default: the last 7 days), newest first
    /// (admin).
    pub async fn anomalies(
        &self,
        principal: &Principal,
        since: Option<OffsetDateTime>,
        limit: i64,
    ) -> Result<Vec<AnomalyView>> {
        require_admin(principal)?;
        let since = since.map_or_else(|| micros::now() - 7 * DAY_US, micros::from_datetime);
        let tenant = principal.tenant.clone();
        self.db
            .run(move |conn| {
                store::list_anomalies(conn, &tenant, since, limit)?.iter().map(anomaly_view).collect()
            })
            .await
    }
}

/// What the risk model reads of a tenant's history.
#[derive(Debug, Clone, Default)]
pub struct RiskHistory {
    /// Record versions (who changed what, when).
    pub edits: Vec<EditLite>,
    /// Conflicts logged (record and time).
    pub conflicts: Vec<(RecordKey, i64)>,
    /// The business unit of records changed recently.
    pub units: HashMap<RecordKey, String>,
}

/// The history indexed by record.
struct Indexed<'a> {
    edits: HashMap<&'a RecordKey, Vec<(i64, &'a str)>>,
    conflicts: HashMap<&'a RecordKey, Vec<i64>>,
    units: &'a HashMap<RecordKey, String>,
    all_edits: Vec<(i64, &'a str, Option<&'a str>)>,
}

impl<'a> Indexed<'a> {
    fn new(history: &'a RiskHistory) -> Self {
        let mut edits: HashMap<&RecordKey, Vec<(i64, &str)>> = HashMap::new();
        let mut all_edits = Vec::with_capacity(history.edits.len());
        for e in &history.edits {
            edits.entry(&e.key).or_default().push((e.at, e.device.as_str()));
            all_edits.push((e.at, e.device.as_str(), history.units.get(&e.key).map(String::as_str)));
        }
        for list in edits.values_mut() {
            list.sort_unstable();
        }
        all_edits.sort_unstable();
        let mut conflicts: HashMap<&RecordKey, Vec<i64>> = HashMap::new();
        for (key, at) in &history.conflicts {
            conflicts.entry(key).or_default().push(*at);
        }
        for list in conflicts.values_mut() {
            list.sort_unstable();
        }
        Indexed { edits, conflicts, units: &history.units, all_edits }
    }

    /// Devices that edited records of each unit (`None`: the whole tenant) within
    /// `UNIT_DAYS` before `t`.
    fn unit_sizes(&self, t: i64) -> HashMap<Option<&'a str>, u32> {
        let from = t - UNIT_DAYS * DAY_US;
        let mut devices: HashMap<Option<&str>, HashSet<&str>> = HashMap::new();
        for &(at, device, unit) in &self.all_edits {
            if at >= from && at < t {
                devices.entry(unit).or_default().insert(device);
                devices.entry(None).or_default().insert(device);
            }
        }
        devices.into_iter().map(|(u, d)| (u, u32::try_from(d.len()).unwrap_or(u32::MAX))).collect()
    }

    /// A record's activity at `t`, if it was edited within the recent window before it.
    fn activity(
        &self,
        key: &RecordKey,
        t: i64,
        sizes: &HashMap<Option<&str>, u32>,
    ) -> Result<Option<RecordActivity>> {
        let edits = self.edits.get(key).map(Vec::as_slice).unwrap_or_default();
        let from = t - RISK_WINDOW_HOURS * HOUR_US;
        let recent: Vec<&(i64, &str)> = edits.iter().filter(|(at, _)| *at >= from && *at < t).collect();
        if recent.is_empty() {
            return Ok(None);
        }
        let devices: HashSet<&str> = recent.iter().map(|(_, d)| *d).collect();
        let last = edits.iter().filter(|(at, _)| *at < t).map(|(at, _)| *at).max();
        let past_from = t - RISK_PAST_DAYS * DAY_US;
        let past =
            self.conflicts.get(key).map_or(0, |c| c.iter().filter(|&&at| at >= past_from && at < t).count());
        let unit = self.units.get(key).map(String::as_str);
        let unit_size = sizes.get(&unit).or_else(|| sizes.get(&None)).copied().unwrap_or(1);
        Ok(Some(RecordActivity {
            domain: key.domain.clone(),
            distinct_devices: u32::try_from(devices.len()).unwrap_or(u32::MAX),
            edits: u32::try_from(recent.len()).unwrap_or(u32::MAX),
            window_hours: RISK_WINDOW_HOURS as f64,
            hours_since_server_change: last.map(|l| (t - l).max(0) as f64 / HOUR_US as f64),
            unit_size: unit_size.max(1),
            hour: micros::stored(t)?.hour(),
            past_conflicts: u32::try_from(past).unwrap_or(u32::MAX),
        }))
    }

    fn conflicted_within(&self, key: &RecordKey, t: i64) -> bool {
        let until = t + RISK_WINDOW_HOURS * HOUR_US;
        self.conflicts.get(key).is_some_and(|c| c.iter().any(|&at| at >= t && at < until))
    }

    fn keys_edited_between(&self, from: i64, until: i64) -> Vec<&'a RecordKey> {
        let mut keys: Vec<&RecordKey> = self
            .edits
            .iter()
            .filter(|(_, e)| e.iter().any(|(at, _)| *at >= from && *at < until))
            .map(|(k, _)| *k)
            .collect();
        keys.sort();
        keys
    }
}

/// Training examples from a tenant's history: at every 6 hours `t` between `now − 24 h −
/// RISK_TRAINING_DAYS` and `now − 24 h`, each record edited in the 24 hours before `t`, with its
/// activity at `t` and whether it conflicted in the 24 hours after. Deterministic; at most
/// `MAX_RISK_EXAMPLES` (every n-th beyond).
pub fn risk_examples(history: &RiskHistory, now: i64) -> Result<Vec<Example>> {
    let index = Indexed::new(history);
    let last = now - RISK_WINDOW_HOURS * HOUR_US;
    let mut examples = Vec::new();
    let steps = RISK_TRAINING_DAYS * 4;
    for step in 0..=steps {
        let t = last - step * 6 * HOUR_US;
        let sizes = index.unit_sizes(t);
        for key in index.keys_edited_between(t - RISK_WINDOW_HOURS * HOUR_US, t) {
            if let Some(activity) = index.activity(key, t, &sizes)? {
                examples.push(Example { activity, conflicted: index.conflicted_within(key, t) });
            }
        }
    }
    if examples.len() > MAX_RISK_EXAMPLES {
        let every = examples.len().div_ceil(MAX_RISK_EXAMPLES);
        examples = examples.into_iter().step_by(every).collect();
    }
    Ok(examples)
}

/// Each record edited in the last 24 hours with its activity now.
pub fn current_activity(history: &RiskHistory, now: i64) -> Result<Vec<(RecordKey, RecordActivity)>> {
    let index = Indexed::new(history);
    let sizes = index.unit_sizes(now);
    let mut out = Vec::new();
    for key in index.keys_edited_between(now - RISK_WINDOW_HOURS * HOUR_US, now + 1) {
        if let Some(activity) = index.activity(key, now + 1, &sizes)? {
            out.push((key.clone(), activity));
        }
    }
    Ok(out)
}

/// What one training run did for a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRun {
    pub tenant: String,
    /// Examples built from the history.
    pub examples: usize,
    /// The model scored with (just trained, or the last one when there was too little to
    /// train on), if any.
    pub model: Option<RiskModelView>,
    /// Whether this run trained a new model.
    pub trained: bool,
    /// Records scored.
    pub scored: usize,
}

fn model_view(row: &RiskModelRow, model: &Model) -> Result<RiskModelView> {
    Ok(RiskModelView {
        trained_at: micros::stored(row.trained_at)?,
        examples: row.examples,
        holdout_examples: i64::try_from(model.holdout_examples).unwrap_or(i64::MAX),
        holdout_auc: row.holdout_auc,
        baseline_auc: row.baseline_auc,
    })
}

impl SyncEngine {
    /// Reads what the risk model learns from: versions and units of the last training span,
    /// conflicts of the last [`RISK_PAST_DAYS`] before it.
    async fn risk_history(&self, tenant: &str, now: i64) -> Result<RiskHistory> {
        let tenant = tenant.to_owned();
        let span = (RISK_TRAINING_DAYS + 2) * DAY_US + UNIT_DAYS * DAY_US;
        self.db
            .read_tx(move |conn| {
                Ok(RiskHistory {
                    edits: store::edits_since(conn, &tenant, now - span)?,
                    conflicts: store::conflicts_since(conn, &tenant, now - span - RISK_PAST_DAYS * DAY_US)?,
                    units: store::units_since(conn, &tenant, now - span)?,
                })
            })
            .await
    }

    /// The conflict-risk job for one tenant: trains the model on the history (a held-out
    /// quarter evaluates it; stored beside it), then scores every record edited in the last 24
    /// hours and keeps the riskiest `MAX_SCORED_RECORDS`. With too little history to train
    /// on, the last model (if any) scores.
    pub async fn train_conflict_risk(&self, tenant: &str, now: OffsetDateTime) -> Result<RiskRun> {
        let now_us = micros::from_datetime(now);
        let history = self.risk_history(tenant, now_us).await?;
        let examples = risk_examples(&history, now_us)?;
        let trained = match Model::train(&examples, &TrainConfig::default()) {
            Ok(model) => Some(model),
            Err(sync_insight::InsightError::TooFewExamples { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let owned = tenant.to_owned();
        let stored = match &trained {
            Some(model) => {
                let row = RiskModelRow {
                    tenant_id: owned.clone(),
                    trained_at: now_us,
                    examples: i64::try_from(model.examples).unwrap_or(i64::MAX),
                    holdout_auc: model.holdout_auc,
                    baseline_auc: model.baseline_auc,
                    model: serde_json::to_string(model)?,
                };
                let written = row.clone();
                self.retrying_write(move |conn| store::upsert_risk_model(conn, &written)).await?;
                Some((row, model.clone()))
            }
            None => {
                let row = self.db.run(move |conn| store::get_risk_model(conn, &owned)).await?;
                row.map(|row| serde_json::from_str::<Model>(&row.model).map(|m| (row, m))).transpose()?
            }
        };
        let Some((row, model)) = stored else {
            return Ok(RiskRun {
                tenant: tenant.to_owned(),
                examples: examples.len(),
                model: None,
                trained: false,
                scored: 0,
            });
        };
        let mut scores = Vec::new();
        for (key, activity) in current_activity(&history, now_us)? {
            // A domain the model has not seen simply gets no indicator.
            let prediction = model.predict(&activity)?;
            let reasons: Vec<String> = prediction.reasons.into_iter().map(|r| r.explanation).collect();
            scores.push(RiskScoreRow {
                tenant_id: tenant.to_owned(),
                domain: key.domain,
                mobile_id: key.mobile_id,
                risk: prediction.risk.clamp(0.0, 1.0),
                reasons: serde_json::to_string(&reasons)?,
                scored_at: now_us,
            });
        }
        scores.sort_by(|a, b| b.risk.total_cmp(&a.risk).then_with(|| a.mobile_id.cmp(&b.mobile_id)));
        scores.truncate(MAX_SCORED_RECORDS);
        let scored = scores.len();
        let owned = tenant.to_owned();
        self.retrying_write(move |conn| store::replace_risk_scores(conn, &owned, &scores)).await?;
        Ok(RiskRun {
            tenant: tenant.to_owned(),
            examples: examples.len(),
            model: Some(model_view(&row, &model)?),
            trained: trained.is_some(),
            scored,
        })
    }

    /// The tenant's model and its riskiest records (of `domain`), highest first (admin).
    pub async fn conflict_risk(
        &self,
        principal: &Principal,
        domain: Option<&str>,
        limit: i64,
    ) -> Result<ConflictRisk> {
        require_admin(principal)?;
        // A filter on a domain the server does not have names nothing there is: 404.
        if let Some(domain) = domain.filter(|d| self.domains.get(d).is_none()) {
            return Err(crate::Error::NotFound(format!("unknown domain `{domain}`")));
        }
        let tenant = principal.tenant.clone();
        let domain = domain.map(str::to_owned);
        self.db
            .read_tx(move |conn| {
                let model = match store::get_risk_model(conn, &tenant)? {
                    Some(row) => Some(model_view(&row, &serde_json::from_str::<Model>(&row.model)?)?),
                    None => None,
                };
                let records = store::top_risk_scores(conn, &tenant, domain.as_deref(), limit)?
                    .into_iter()
                    .map(|r| {
                        Ok(RiskRecord {
                            reasons: serde_json::from_str(&r.reasons)?,
                            scored_at: micros::stored(r.scored_at)?,
                            domain: r.domain,
                            mobile_id: r.mobile_id,
                            risk: r.risk,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ConflictRisk { model, records })
            })
            .await
    }
}

/// The planner's configuration with section 6's peak hours (the planner's end is exclusive).
fn window_config(config: &crate::SyncConfig) -> WindowConfig {
    WindowConfig {
        peak_start_hour: config.peak_hours_start.min(23),
        peak_end_hour: config.peak_hours_end.min(23) + 1,
        ..WindowConfig::default()
    }
}

/// Each device's sync attempts and the fleet's syncs per hour of the day (UTC) over `days`.
pub fn window_inputs(events: &[EventLite], days: i64) -> Result<(Vec<DeviceHistory>, [f64; 24])> {
    let mut devices: BTreeMap<&str, Vec<SyncAttempt>> = BTreeMap::new();
    let mut load = [0.0; 24];
    for e in events.iter().filter(|e| e.kind != SyncEventKind::Resolve) {
        let at = micros::stored(e.at)?;
        load[usize::from(at.hour())] += 1.0;
        devices.entry(&e.device_id).or_default().push(SyncAttempt {
            at,
            succeeded: e.success,
            duration_ms: if e.duration_ms.is_finite() { e.duration_ms.max(0.0) } else { 0.0 },
            // The sync events do not record the network kind.
            network: Network::Unknown,
        });
    }
    for l in &mut load {
        *l /= days.max(1) as f64;
    }
    let histories = devices
        .into_iter()
        .map(|(d, attempts)| DeviceHistory { device_id: d.to_owned(), attempts })
        .collect();
    Ok((histories, load))
}

fn basis_name(basis: sync_insight::Basis) -> BasisName {
    match basis {
        sync_insight::Basis::DeviceHistory => BasisName::DeviceHistory,
        sync_insight::Basis::Fleet => BasisName::Fleet,
        sync_insight::Basis::Rule => BasisName::Rule,
    }
}

impl SyncEngine {
    /// The window job for one tenant: plans every device seen in the last
    /// `WINDOW_HISTORY_DAYS` (and, as device `""`, a device with no history) over the fleet's
    /// load, and stores each one's hour. Returns the devices planned.
    pub async fn plan_sync_windows(&self, tenant: &str, now: OffsetDateTime) -> Result<usize> {
        let now_us = micros::from_datetime(now);
        let owned = tenant.to_owned();
        let events = self
            .db
            .run(move |conn| {
                store::events_between(conn, &owned, now_us - WINDOW_HISTORY_DAYS * DAY_US, now_us)
            })
            .await?;
        let (mut histories, load) = window_inputs(&events, WINDOW_HISTORY_DAYS)?;
        drop(events);
        histories.push(DeviceHistory { device_id: String::new(), attempts: Vec::new() });
        let advice = plan_windows(&histories, &load, now, &window_config(&self.config))?;
        let rows: Vec<SyncWindowRow> = advice
            .into_iter()
            .map(|a| SyncWindowRow {
                tenant_id: tenant.to_owned(),
                device_id: a.device_id,
                hour: i64::from(a.hour),
                minutes: i64::from(WindowConfig::default().window_minutes),
                confidence: a.confidence.clamp(0.0, 1.0),
                basis: basis_name(a.basis),
                planned_at: now_us,
            })
            .collect();
        let planned = rows.len().saturating_sub(1);
        let owned = tenant.to_owned();
        self.retrying_write(move |conn| store::replace_sync_windows(conn, &owned, &rows)).await?;
        Ok(planned)
    }

    /// Section 12's part of optimal-time: the device's planned hour as its next window, else
    /// the fleet's advice for a new device, else section 6's peak-hours rule.
    pub(super) fn window_advice(
        &self,
        conn: &mut DbConnection,
        tenant: &str,
        device_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(SyncWindow, f64, WindowBasis)> {
        if let Some(device) = device_id {
            check_device_id(device)?;
        }
        let planned = match device_id.map(|d| store::get_sync_window(conn, tenant, d)).transpose()?.flatten()
        {
            Some(row) => Some(row),
            None => store::get_sync_window(conn, tenant, "")?,
        };
        if let Some(row) = planned.filter(|r| r.basis != BasisName::Rule)
            && let (Ok(hour), Ok(minutes)) = (u8::try_from(row.hour), u32::try_from(row.minutes))
        {
            let w = sync_insight::next_window(now, hour.min(23), minutes.max(1));
            let basis = match row.basis {
                BasisName::DeviceHistory => WindowBasis::DeviceHistory,
                _ => WindowBasis::Fleet,
            };
            return Ok((SyncWindow { start: w.start, end: w.end }, row.confidence.clamp(0.0, 1.0), basis));
        }
        // The rule: now, unless in peak hours; then the first hour after them.
        let mut hour = now.hour();
        for _ in 0..24 {
            if !self.config.is_peak_hour(hour) {
                break;
            }
            hour = (hour + 1) % 24;
        }
        let w = sync_insight::next_window(now, hour, WindowConfig::default().window_minutes);
        Ok((SyncWindow { start: w.start, end: w.end }, 0.0, WindowBasis::Rule))
    }
}
