//! Anomaly detection over bucketed sync-event series: a robust hour-of-week baseline with
//! shrinkage toward neighbouring hours, and a decision that weighs both how unusual a value
//! is and how many events it rests on.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::InsightError;
use crate::stats::{
    binomial_upper_tail, first_significant, median_sd, normal_tail, poisson_lower_tail, poisson_upper_tail,
    weighted_median_sd,
};

/// Hours in a week: the baseline keeps one slot per hour of the week.
const SLOTS: usize = 168;

/// One bucket of a series: what happened in `[start, start + bucket width)`.
///
/// Buckets the caller leaves out count as buckets with no syncs at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Pushes and pulls started in the bucket.
    pub syncs: u64,
    /// Of those, the ones that failed.
    pub failures: u64,
    /// Changes synced (the denominator of the conflict rate, as in the snapshot).
    pub changes: u64,
    /// Conflicts among those changes.
    pub conflicts: u64,
    /// The bucket's p95 sync duration, when it had syncs.
    pub p95_duration_ms: Option<f64>,
}

impl Bucket {
    /// An empty bucket starting at `start`.
    pub fn empty(start: OffsetDateTime) -> Self {
        Self { start, syncs: 0, failures: 0, changes: 0, conflicts: 0, p95_duration_ms: None }
    }

    fn validate(&self) -> Result<(), InsightError> {
        let at = || self.start.to_string();
        if self.failures > self.syncs {
            return Err(InsightError::CountAboveTotal {
                at: at(),
                part: "failures",
                count: self.failures,
                whole: "syncs",
                total: self.syncs,
            });
        }
        if self.conflicts > self.changes {
            return Err(InsightError::CountAboveTotal {
                at: at(),
                part: "conflicts",
                count: self.conflicts,
                whole: "changes",
                total: self.changes,
            });
        }
        if let Some(p95) = self.p95_duration_ms {
            if !p95.is_finite() {
                return Err(InsightError::NotFinite { field: "p95_duration_ms", value: p95 });
            }
            if p95 < 0.0 {
                return Err(InsightError::OutOfRange { field: "p95_duration_ms", value: p95 });
            }
        }
        Ok(())
    }
}

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Syncs in the window (alarms when far above or far below the usual).
    SyncVolume,
    /// Failed syncs per sync, as a fraction 0..=1 (alarms when above).
    FailureRate,
    /// Conflicts per synced change, as a fraction 0..=1 (alarms when above).
    ConflictRate,
    /// The p95 sync duration in milliseconds (alarms when above).
    P95Duration,
}

impl Metric {
    pub const ALL: [Metric; 4] =
        [Metric::SyncVolume, Metric::FailureRate, Metric::ConflictRate, Metric::P95Duration];

    /// The wire name (`sync_volume`, …), also the suffix of the dashboard rule `anomaly_<metric>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::SyncVolume => "sync_volume",
            Metric::FailureRate => "failure_rate",
            Metric::ConflictRate => "conflict_rate",
            Metric::P95Duration => "p95_duration",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Metric::SyncVolume => "sync volume",
            Metric::FailureRate => "failure rate",
            Metric::ConflictRate => "conflict rate",
            Metric::P95Duration => "p95 sync duration",
        }
    }
}

/// Whose series it is: the tenant's (both empty), a domain's or a device's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl Scope {
    pub fn tenant() -> Self {
        Self::default()
    }

    pub fn domain(domain: impl Into<String>) -> Self {
        Self { device_id: None, domain: Some(domain.into()) }
    }

    pub fn device(device_id: impl Into<String>) -> Self {
        Self { device_id: Some(device_id.into()), domain: None }
    }
}

/// How loudly an anomaly should be announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One anomaly: the fields of PROTOCOL.md section 12's anomaly object, without the id the
/// store gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub metric: Metric,
    pub scope: Scope,
    /// The window's value: syncs, a fraction 0..=1 or milliseconds.
    pub observed: f64,
    /// What this hour of the week usually shows.
    pub expected: f64,
    /// The range within which no alarm is raised: the usual range widened by how little the
    /// window's counts can tell (a 1-of-2 failure does not leave it).
    pub band: [f64; 2],
    /// How many robust standard deviations the observation lies from the expected value
    /// (negative below it); independent of the window's counts.
    pub score: f64,
    pub severity: Severity,
    #[serde(with = "time::serde::rfc3339")]
    pub window_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub window_end: OffsetDateTime,
    /// One line an operator understands.
    pub explanation: String,
}

/// The detector's knobs. The defaults are the ones the evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorConfig {
    /// The width of a bucket in minutes; divides 60.
    pub bucket_minutes: u32,
    /// The detector stays silent until the history spans this many days...
    pub min_history_days: u32,
    /// ...and holds at least this many syncs.
    pub min_history_syncs: u64,
    /// The usual range is the expected value ± this many robust standard deviations.
    pub band_z: f64,
    /// How many standard errors of the window's own counts must separate the observation from
    /// the usual range (Wilson for rates, Poisson for volume).
    pub sampling_z: f64,
    /// Score (robust z) from which an anomaly is a warning, and from which it is critical.
    pub warning_score: f64,
    pub critical_score: f64,
    /// The weight, in hour-of-week instances, of the neighbouring hours when a slot is thin.
    pub prior_strength: f64,
    /// The robust spread is at least this fraction of the expected value.
    pub relative_floor: f64,
    /// ...and at least this many percentage points for rates (0.005 = 0.5 points).
    pub rate_floor: f64,
    /// A window needs this many syncs before its p95 duration is judged.
    pub min_syncs_for_p95: u64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            bucket_minutes: 5,
            min_history_days: 7,
            min_history_syncs: 200,
            band_z: 3.5,
            sampling_z: 3.0,
            warning_score: 6.0,
            critical_score: 10.0,
            prior_strength: 2.0,
            relative_floor: 0.15,
            rate_floor: 0.005,
            min_syncs_for_p95: 10,
        }
    }
}

impl DetectorConfig {
    fn validate(&self) -> Result<Duration, InsightError> {
        let minutes = i64::from(self.bucket_minutes);
        if minutes == 0 || 60 % minutes != 0 {
            return Err(InsightError::BucketWidth { minutes });
        }
        for (field, value) in [
            ("band_z", self.band_z),
            ("sampling_z", self.sampling_z),
            ("warning_score", self.warning_score),
            ("critical_score", self.critical_score),
            ("prior_strength", self.prior_strength),
            ("relative_floor", self.relative_floor),
            ("rate_floor", self.rate_floor),
        ] {
            if !value.is_finite() {
                return Err(InsightError::NotFinite { field, value });
            }
            if value < 0.0 {
                return Err(InsightError::OutOfRange { field, value });
            }
        }
        Ok(Duration::minutes(minutes))
    }
}

/// A robust centre and spread for one slot and metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub center: f64,
    pub spread: f64,
}

/// The fitted baseline of one series: for each hour of the week, each metric's usual level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    config: DetectorConfig,
    history_days: f64,
    history_syncs: u64,
    /// Per-bucket syncs, per slot.
    volume: Vec<Option<Level>>,
    failure_rate: Vec<Level>,
    conflict_rate: Vec<Level>,
    p95: Vec<Option<Level>>,
}

/// Which hour of the week a moment falls in (Monday 00:00 is slot 0), in its own offset.
fn slot_of(at: OffsetDateTime) -> usize {
    usize::from(at.weekday().number_days_from_monday()) * 24 + usize::from(at.hour())
}

/// Where in its hour the middle of a bucket starting at `at` falls, in 0..1.
fn fraction_of(at: OffsetDateTime, width: Duration) -> f64 {
    (f64::from(at.minute()) + f64::from(at.second()) / 60.0 + width.as_seconds_f64() / 120.0) / 60.0
}

/// Per-bucket values with the point of the hour they stand for: (fraction 0..1, value).
type Placed = Gathered<(f64, f64)>;

/// Values gathered per slot, before they are turned into levels.
struct Gathered<T> {
    per_slot: Vec<Vec<T>>,
}

impl<T: Clone> Gathered<T> {
    fn new() -> Self {
        Self { per_slot: vec![Vec::new(); SLOTS] }
    }

    /// The values of a set of slots.
    fn of(&self, slots: impl IntoIterator<Item = usize>) -> Vec<T> {
        slots.into_iter().flat_map(|s| self.per_slot[s].iter().cloned()).collect()
    }
}

/// Each slot's level, shrunk toward the pools it borrows strength from, nearest first: the
/// hours either side on the same day of the week; the same hour on every day; the whole week.
/// `estimate` gives a pool's level and its size in hour-of-week instances; each pool is
/// estimated once.
fn pooled_levels(estimate: impl Fn(&[usize]) -> Option<(Level, f64)>, k: f64) -> Vec<Option<Level>> {
    let week = estimate(&(0..SLOTS).collect::<Vec<_>>());
    let by_hour: Vec<Option<(Level, f64)>> =
        (0..24).map(|hour| estimate(&(0..7).map(|d| d * 24 + hour).collect::<Vec<_>>())).collect();
    (0..SLOTS)
        .map(|slot| {
            let own = estimate(&[slot]);
            let near = estimate(&[(slot + SLOTS - 1) % SLOTS, slot, (slot + 1) % SLOTS]);
            shrink([own, near, by_hour[slot % 24], week], k)
        })
        .collect()
}

/// The pooled rate of `(rate, count)` instances with each instance's rate capped at three times
/// the pooled rate (or 5 points above it): robust to the incidents in history, yet unbiased for
/// thin hours where a median of mostly-zero rates would say 0. Depends on rates and relative
/// counts only, so scaling every count leaves it unchanged.
fn winsorised_ratio(instances: &[(f64, f64)]) -> f64 {
    let total: f64 = instances.iter().map(|i| i.1).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let pooled = instances.iter().map(|(r, n)| r * n).sum::<f64>() / total;
    let cap = (3.0 * pooled).max(pooled + 0.05);
    instances.iter().map(|(r, n)| r.min(cap) * n).sum::<f64>() / total
}

/// A pool's median of per-bucket values, its size in hour instances.
fn per_bucket_estimate(
    g: &Gathered<(f64, f64)>,
    per_hour: f64,
) -> impl Fn(&[usize]) -> Option<(Level, f64)> + '_ {
    move |slots: &[usize]| {
        let values: Vec<f64> = g.of(slots.iter().copied()).iter().map(|v| v.1).collect();
        let (center, spread) = median_sd(&values)?;
        Some((Level { center, spread }, values.len() as f64 / per_hour))
    }
}

/// The usual level at a point of an hour: linear between the centres of neighbouring hours
/// (each taken at its half hour), so a morning ramp is a slope rather than noise.
fn center_at(levels: &[Option<Level>], slot: usize, fraction: f64) -> Option<f64> {
    let own = levels.get(slot).copied().flatten()?.center;
    let neighbour = |s: usize| levels.get(s % SLOTS).copied().flatten().map_or(own, |l| l.center);
    Some(if fraction < 0.5 {
        let before = neighbour(slot + SLOTS - 1);
        before + (own - before) * (fraction + 0.5)
    } else {
        own + (neighbour(slot + 1) - own) * (fraction - 0.5)
    })
}

/// Per-bucket levels: centres per slot, then spreads from each bucket's distance to the
/// interpolated centre at its point of the hour (a ramp within an hour is not spread).
fn smooth_levels(g: &Placed, per_hour: f64, k: f64) -> Vec<Option<Level>> {
    let centers = pooled_levels(per_bucket_estimate(g, per_hour), k);
    let mut residuals: Gathered<f64> = Gathered::new();
    for (slot, values) in g.per_slot.iter().enumerate() {
        for &(fraction, x) in values {
            if let Some(c) = center_at(&centers, slot, fraction) {
                residuals.per_slot[slot].push(x - c);
            }
        }
    }
    let spreads = pooled_levels(
        |slots: &[usize]| {
            let v = residuals.of(slots.iter().copied());
            let (_, spread) = median_sd(&v)?;
            Some((Level { center: 0.0, spread }, v.len() as f64 / per_hour))
        },
        k,
    );
    centers
        .iter()
        .zip(spreads)
        .map(|(c, s)| c.map(|c| Level { center: c.center, spread: s.map_or(c.spread, |s| s.spread) }))
        .collect()
}

/// Shrinks the levels of nested pools, innermost first, toward the next outer one:
/// `(n·own + k·outer) / (n + k)` with n the pool's size in hour-of-week instances.
fn shrink(levels: [Option<(Level, f64)>; 4], k: f64) -> Option<Level> {
    let mut acc: Option<Level> = None;
    for entry in levels.iter().rev() {
        acc = match (entry, acc) {
            (Some((own, n)), Some(outer)) => {
                let w = n / (n + k);
                Some(Level {
                    center: w * own.center + (1.0 - w) * outer.center,
                    spread: w * own.spread + (1.0 - w) * outer.spread,
                })
            }
            (Some((own, _)), None) => Some(*own),
            (None, outer) => outer,
        };
    }
    acc
}

/// A concrete hour of history, summed, for the rate baselines.
#[derive(Debug, Clone, Copy)]
struct HourTotals {
    syncs: u64,
    failures: u64,
    changes: u64,
    conflicts: u64,
}

impl Baseline {
    /// Fits the baseline on `history` (in time order; the window to judge must not be in it).
    pub fn fit(history: &[Bucket], config: &DetectorConfig) -> Result<Self, InsightError> {
        let width = config.validate()?;
        for pair in history.windows(2) {
            if pair[1].start <= pair[0].start {
                return Err(InsightError::Unordered { at: pair[1].start.to_string() });
            }
        }
        for bucket in history {
            bucket.validate()?;
        }
        let (Some(first), Some(last)) = (history.first(), history.last()) else {
            return Ok(Self::empty(config.clone()));
        };
        let span = (last.start + width) - first.start;
        let history_days = span.as_seconds_f64() / 86_400.0;
        let history_syncs = history.iter().map(|b| b.syncs).sum();
        let per_hour = f64::from(60 / config.bucket_minutes);

        let (volume, p95) = Self::gather_buckets(history, width);
        let hours = Self::gather_hours(history);
        let k = config.prior_strength;
        let zero = Level { center: 0.0, spread: 0.0 };
        let rate = |part: fn(&HourTotals) -> (u64, u64)| {
            let hours = &hours;
            move |slots: &[usize]| {
                let instances: Vec<(f64, f64)> = hours
                    .of(slots.iter().copied())
                    .iter()
                    .map(part)
                    .filter(|&(_, n)| n > 0)
                    .map(|(k, n)| (k as f64 / n as f64, n as f64))
                    .collect();
                let (_, spread) = weighted_median_sd(&instances)?;
                Some((Level { center: winsorised_ratio(&instances), spread }, instances.len() as f64))
            }
        };
        let unwrap = |v: Vec<Option<Level>>| v.into_iter().map(|l| l.unwrap_or(zero)).collect();
        Ok(Self {
            config: config.clone(),
            history_days,
            history_syncs,
            volume: smooth_levels(&volume, per_hour, k),
            failure_rate: unwrap(pooled_levels(rate(|h| (h.failures, h.syncs)), k)),
            conflict_rate: unwrap(pooled_levels(rate(|h| (h.conflicts, h.changes)), k)),
            p95: smooth_levels(&p95, per_hour, k),
        })
    }

    fn empty(config: DetectorConfig) -> Self {
        Self {
            config,
            history_days: 0.0,
            history_syncs: 0,
            volume: Vec::new(),
            failure_rate: Vec::new(),
            conflict_rate: Vec::new(),
            p95: Vec::new(),
        }
    }

    /// Per-bucket volumes on a dense timeline (missing buckets are zero) and p95 durations,
    /// each with the point of the hour its bucket's middle falls at.
    fn gather_buckets(history: &[Bucket], width: Duration) -> (Placed, Placed) {
        let mut volume = Gathered::new();
        let mut p95 = Gathered::new();
        let mut next = history.first().map(|b| b.start);
        for bucket in history {
            // Fill the gap before this bucket with empty buckets.
            while let Some(at) = next {
                if at + width > bucket.start {
                    break;
                }
                volume.per_slot[slot_of(at)].push((fraction_of(at, width), 0.0));
                next = Some(at + width);
            }
            let (slot, fraction) = (slot_of(bucket.start), fraction_of(bucket.start, width));
            volume.per_slot[slot].push((fraction, bucket.syncs as f64));
            if let (Some(d), true) = (bucket.p95_duration_ms, bucket.syncs > 0) {
                p95.per_slot[slot].push((fraction, d));
            }
            next = Some(bucket.start + width);
        }
        (volume, p95)
    }

    /// Totals per concrete clock hour, grouped by hour-of-week slot.
    fn gather_hours(history: &[Bucket]) -> Gathered<HourTotals> {
        let mut hours = Gathered::new();
        let mut current: Option<(OffsetDateTime, HourTotals)> = None;
        for bucket in history {
            let hour = bucket.start.replace_minute(0).unwrap_or(bucket.start);
            let hour = hour.replace_second(0).unwrap_or(hour).replace_nanosecond(0).unwrap_or(hour);
            match &mut current {
                Some((h, totals)) if *h == hour => {
                    totals.syncs += bucket.syncs;
                    totals.failures += bucket.failures;
                    totals.changes += bucket.changes;
                    totals.conflicts += bucket.conflicts;
                }
                _ => {
                    if let Some((h, totals)) = current.take() {
                        hours.per_slot[slot_of(h)].push(totals);
                    }
                    let totals = HourTotals {
                        syncs: bucket.syncs,
                        failures: bucket.failures,
                        changes: bucket.changes,
                        conflicts: bucket.conflicts,
                    };
                    current = Some((hour, totals));
                }
            }
        }
        if let Some((h, totals)) = current {
            hours.per_slot[slot_of(h)].push(totals);
        }
        hours
    }

    /// Whether the history is long and full enough for the detector to speak.
    pub fn is_ready(&self) -> bool {
        self.history_days + 1e-9 >= f64::from(self.config.min_history_days)
            && self.history_syncs >= self.config.min_history_syncs
            && self.volume.len() == SLOTS
    }

    /// Days of history the baseline was fitted on.
    pub fn history_days(&self) -> f64 {
        self.history_days
    }

    /// The usual per-bucket level of `metric` in the hour of the week of `at`, if fitted.
    pub fn level(&self, metric: Metric, at: OffsetDateTime) -> Option<Level> {
        let slot = slot_of(at);
        match metric {
            Metric::SyncVolume => self.volume.get(slot).copied().flatten(),
            Metric::FailureRate => self.failure_rate.get(slot).copied(),
            Metric::ConflictRate => self.conflict_rate.get(slot).copied(),
            Metric::P95Duration => self.p95.get(slot).copied().flatten(),
        }
    }

    /// Judges a window of consecutive buckets (typically the last 15 minutes) and returns its
    /// anomalies, most severe first. Silent (empty) until [`Baseline::is_ready`].
    pub fn evaluate(&self, window: &[Bucket], scope: &Scope) -> Result<Vec<Anomaly>, InsightError> {
        let width = self.config.validate()?;
        let (Some(first), Some(last)) = (window.first(), window.last()) else {
            return Err(InsightError::EmptyWindow);
        };
        for pair in window.windows(2) {
            if pair[1].start <= pair[0].start {
                return Err(InsightError::Unordered { at: pair[1].start.to_string() });
            }
        }
        for bucket in window {
            bucket.validate()?;
        }
        if !self.is_ready() {
            return Ok(Vec::new());
        }
        let w = Window::new(first.start, last.start + width, width, window);
        let mut found: Vec<Anomaly> = [
            self.judge_volume(&w),
            self.judge_rate(&w, Metric::FailureRate),
            self.judge_rate(&w, Metric::ConflictRate),
            self.judge_p95(&w),
        ]
        .into_iter()
        .flatten()
        .map(|j| j.into_anomaly(&w, scope, &self.config))
        .collect();
        found.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.score.abs().total_cmp(&a.score.abs())));
        Ok(found)
    }

    fn judge_volume(&self, w: &Window<'_>) -> Option<Judgement> {
        let c = &self.config;
        let levels: Vec<Level> =
            w.slots.iter().filter_map(|&s| self.volume.get(s).copied().flatten()).collect();
        let expected: f64 =
            w.slots.iter().zip(&w.fractions).filter_map(|(&s, &f)| center_at(&self.volume, s, f)).sum();
        // Bucket noise adds up as independent; level shifts are carried by the relative floor.
        let spread = levels.iter().map(|l| l.spread * l.spread).sum::<f64>().sqrt();
        let spread = spread.max(c.relative_floor * expected).max(1.0);
        let observed = w.syncs as f64;
        let high = expected + c.band_z * spread;
        let low = (expected - c.band_z * spread).max(0.0);
        // Exact Poisson tests against each end of the usual range: the band holds the counts
        // that are not significantly outside it.
        let alpha = normal_tail(c.sampling_z);
        let top = (high + 12.0 * high.sqrt() + 20.0).ceil() as u64;
        let band_high = first_significant(high.floor() as u64, top, |x| poisson_upper_tail(x, high) < alpha)
            .map_or(top as f64, |x| x as f64 - 1.0);
        let band_low = if low > 0.0 {
            // The largest count significantly below `low`, plus one.
            let below = |x: u64| poisson_lower_tail(x, low) < alpha;
            match first_significant(0, low.ceil() as u64, |x| !below(x)) {
                Some(x) => x as f64,
                None => 0.0,
            }
        } else {
            0.0
        };
        let alarm = observed > band_high || (band_low > 0.0 && observed < band_low);
        alarm.then(|| Judgement {
            metric: Metric::SyncVolume,
            observed,
            expected,
            band: [band_low, band_high],
            score: (observed - expected) / spread,
            detail: format!(" in {} min", w.minutes()),
        })
    }

    fn judge_rate(&self, w: &Window<'_>, metric: Metric) -> Option<Judgement> {
        let c = &self.config;
        let (part, total, slots_levels, unit) = match metric {
            Metric::FailureRate => (w.failures, w.syncs, &self.failure_rate, "syncs"),
            _ => (w.conflicts, w.changes, &self.conflict_rate, "changes"),
        };
        if total == 0 {
            return None;
        }
        // The window's buckets weighted by how many events each holds.
        let (mut expected, mut spread, mut weight) = (0.0, 0.0, 0.0);
        for (i, &slot) in w.slots.iter().enumerate() {
            let level = slots_levels.get(slot)?;
            let n = w.weight(i, metric).max(1e-9);
            expected += n * level.center;
            spread += n * level.spread;
            weight += n;
        }
        let expected = expected / weight;
        let spread = (spread / weight).max(c.relative_floor * expected).max(c.rate_floor);
        let n = total as f64;
        let observed = part as f64 / n;
        let high = (expected + c.band_z * spread).min(1.0);
        // An exact binomial test against the top of the usual range: the band holds the rates
        // whose count is not significantly above it (a 1-of-2 failure stays inside).
        let alpha = normal_tail(c.sampling_z);
        let band_high = first_significant((n * high).floor() as u64, total, |k| {
            binomial_upper_tail(k, total, high) < alpha
        })
        .map_or(1.0, |k| (k as f64 - 1.0) / n);
        let band_low = (expected - c.band_z * spread).max(0.0);
        (observed > band_high).then(|| Judgement {
            metric,
            observed,
            expected,
            band: [band_low, band_high],
            score: (observed - expected) / spread,
            detail: format!(" ({part} of {total} {unit})"),
        })
    }

    fn judge_p95(&self, w: &Window<'_>) -> Option<Judgement> {
        let c = &self.config;
        let (sum, syncs) = w.buckets.iter().fold((0.0, 0u64), |(s, n), b| match b.p95_duration_ms {
            Some(d) if b.syncs > 0 => (s + d * b.syncs as f64, n + b.syncs),
            _ => (s, n),
        });
        if syncs < c.min_syncs_for_p95.max(1) {
            return None;
        }
        let levels: Vec<Level> = w.slots.iter().filter_map(|&s| self.p95.get(s).copied().flatten()).collect();
        if levels.is_empty() {
            return None;
        }
        let centers: Vec<f64> =
            w.slots.iter().zip(&w.fractions).filter_map(|(&s, &f)| center_at(&self.p95, s, f)).collect();
        let expected = centers.iter().sum::<f64>() / centers.len().max(1) as f64;
        let spread = levels.iter().map(|l| l.spread).sum::<f64>() / levels.len() as f64;
        let spread = spread.max(c.relative_floor * expected).max(1.0);
        let observed = sum / syncs as f64;
        let band = [(expected - c.band_z * spread).max(0.0), expected + c.band_z * spread];
        (observed > band[1]).then(|| Judgement {
            metric: Metric::P95Duration,
            observed,
            expected,
            band,
            score: (observed - expected) / spread,
            detail: format!(" over {}", plural(syncs, "sync")),
        })
    }
}

/// The window being judged, its totals and the slot of each of its bucket positions.
struct Window<'a> {
    start: OffsetDateTime,
    end: OffsetDateTime,
    buckets: &'a [Bucket],
    /// The hour-of-week slot of each bucket position from start to end (missing buckets too).
    slots: Vec<usize>,
    /// Where in its hour the middle of each position falls.
    fractions: Vec<f64>,
    /// Per position: (syncs, changes) observed there.
    counts: Vec<(u64, u64)>,
    syncs: u64,
    failures: u64,
    changes: u64,
    conflicts: u64,
}

impl<'a> Window<'a> {
    fn new(start: OffsetDateTime, end: OffsetDateTime, width: Duration, buckets: &'a [Bucket]) -> Self {
        let mut slots = Vec::new();
        let mut fractions = Vec::new();
        let mut counts = Vec::new();
        let mut at = start;
        let mut it = buckets.iter().peekable();
        while at < end {
            let mut here = (0, 0);
            while let Some(b) = it.next_if(|b| b.start < at + width) {
                here.0 += b.syncs;
                here.1 += b.changes;
            }
            slots.push(slot_of(at));
            fractions.push(fraction_of(at, width));
            counts.push(here);
            at += width;
        }
        let sum = |f: fn(&Bucket) -> u64| buckets.iter().map(f).sum::<u64>();
        Self {
            start,
            end,
            buckets,
            slots,
            fractions,
            counts,
            syncs: sum(|b| b.syncs),
            failures: sum(|b| b.failures),
            changes: sum(|b| b.changes),
            conflicts: sum(|b| b.conflicts),
        }
    }

    fn weight(&self, position: usize, metric: Metric) -> f64 {
        let (syncs, changes) = self.counts.get(position).copied().unwrap_or((0, 0));
        match metric {
            Metric::ConflictRate => changes as f64,
            _ => syncs as f64,
        }
    }

    fn minutes(&self) -> i64 {
        (self.end - self.start).whole_minutes()
    }
}

/// An alarm before it is dressed as an [`Anomaly`].
struct Judgement {
    metric: Metric,
    observed: f64,
    expected: f64,
    band: [f64; 2],
    score: f64,
    detail: String,
}

impl Judgement {
    fn into_anomaly(self, w: &Window<'_>, scope: &Scope, config: &DetectorConfig) -> Anomaly {
        let magnitude = self.score.abs();
        let severity = if magnitude >= config.critical_score {
            Severity::Critical
        } else if magnitude >= config.warning_score {
            Severity::Warning
        } else {
            Severity::Info
        };
        let fmt = |v: f64| format_value(self.metric, v);
        let explanation = format!(
            "{}{} {}{} against a usual {} for {}s {:02}:00",
            self.metric.label(),
            scope_label(scope),
            fmt(self.observed),
            self.detail,
            format_range(self.metric, self.band),
            w.start.weekday(),
            w.start.hour(),
        );
        Anomaly {
            metric: self.metric,
            scope: scope.clone(),
            observed: self.observed,
            expected: self.expected,
            band: self.band,
            score: self.score,
            severity,
            window_start: w.start,
            window_end: w.end,
            explanation,
        }
    }
}

fn scope_label(scope: &Scope) -> String {
    match (&scope.domain, &scope.device_id) {
        (Some(d), Some(dev)) => format!(" of {d} on device {dev}"),
        (Some(d), None) => format!(" of {d}"),
        (None, Some(dev)) => format!(" of device {dev}"),
        (None, None) => String::new(),
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// A value with its unit: "38 %", "4.2 s", "120".
fn format_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::SyncVolume => format!("{v:.0}"),
        Metric::FailureRate | Metric::ConflictRate => format!("{} %", percent(v)),
        Metric::P95Duration if v >= 1000.0 => format!("{:.1} s", v / 1000.0),
        Metric::P95Duration => format!("{v:.0} ms"),
    }
}

/// The band in words with one unit for both ends: "3.0–6.1 %", "0.8–1.4 s", "150–260".
fn format_range(metric: Metric, [low, high]: [f64; 2]) -> String {
    match metric {
        Metric::FailureRate | Metric::ConflictRate => format!("{}–{} %", percent(low), percent(high)),
        Metric::P95Duration if high >= 1000.0 => format!("{:.1}–{:.1} s", low / 1000.0, high / 1000.0),
        Metric::P95Duration => format!("{low:.0}–{high:.0} ms"),
        Metric::SyncVolume => format!("{low:.0}–{high:.0}"),
    }
}

fn percent(v: f64) -> String {
    let pct = v * 100.0;
    if pct < 10.0 { format!("{pct:.1}") } else { format!("{pct:.0}") }
}

/// Fits a baseline on `history` and judges `window` in one call.
pub fn detect(
    history: &[Bucket],
    window: &[Bucket],
    scope: &Scope,
    config: &DetectorConfig,
) -> Result<Vec<Anomaly>, InsightError> {
    Baseline::fit(history, config)?.evaluate(window, scope)
}
