//! Device health: the running record of a device's syncs, its score (protocol section 7) and
//! the rules that call a device unhealthy or problematic.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::MetricsError;

/// A finite, non-negative duration in milliseconds; anything else (NaN, infinities, negative
/// values from a clock that stepped back) counts as 0 so that the averages stay numbers.
pub(crate) fn sanitize_ms(ms: f64) -> f64 {
    if ms.is_finite() && ms > 0.0 { ms } else { 0.0 }
}

/// One sync of a device, as [`DeviceHealth::record_sync`] takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSync {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub success: bool,
    pub duration_ms: f64,
    /// Conflicts met in this sync (0 for most).
    pub conflicts: u64,
    /// The network the device reported, if any; kept as the device's latest.
    pub network_type: Option<String>,
    /// The clock skew applied to this sync (protocol 4.3), if measured; kept as the latest.
    pub clock_skew_ms: Option<i64>,
}

/// The health record of one device (protocol section 7, `GET /api/sync/device-health/`).
///
/// `health_score` is the score as of the last [`DeviceHealth::record_sync`] or
/// [`DeviceHealth::refresh`]; it decays with time since the last sync, so read
/// [`DeviceHealth::score_at`] for the score at another moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceHealth {
    pub total_syncs: u64,
    pub failed_syncs_count: u64,
    /// The mean duration over all syncs, successful or not.
    pub avg_sync_duration_ms: f64,
    /// Conflicts met over all syncs (a sync may meet several).
    pub conflicts_encountered: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sync_at: Option<OffsetDateTime>,
    pub network_type: Option<String>,
    pub clock_skew_ms: i64,
    pub health_score: f64,
}

impl Default for DeviceHealth {
    fn default() -> Self {
        Self {
            total_syncs: 0,
            failed_syncs_count: 0,
            avg_sync_duration_ms: 0.0,
            conflicts_encountered: 0,
            last_sync_at: None,
            network_type: None,
            clock_skew_ms: 0,
            health_score: 100.0,
        }
    }
}

impl DeviceHealth {
    /// A device that has not synced yet: score 100.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sync and recomputes `health_score` as of the latest sync time.
    pub fn record_sync(&mut self, sync: &DeviceSync) {
        self.total_syncs = self.total_syncs.saturating_add(1);
        if !sync.success {
            self.failed_syncs_count = self.failed_syncs_count.saturating_add(1);
        }
        // Incremental mean: stays exact enough without keeping a sum that could grow unbounded.
        let previous = sanitize_ms(self.avg_sync_duration_ms);
        let n = self.total_syncs as f64;
        self.avg_sync_duration_ms = previous + (sanitize_ms(sync.duration_ms) - previous) / n;
        self.conflicts_encountered = self.conflicts_encountered.saturating_add(sync.conflicts);
        // Syncs may be recorded out of order; the last sync is the latest one.
        if self.last_sync_at.is_none_or(|last| sync.at > last) {
            self.last_sync_at = Some(sync.at);
        }
        if let Some(network_type) = &sync.network_type {
            self.network_type = Some(network_type.clone());
        }
        if let Some(skew) = sync.clock_skew_ms {
            self.clock_skew_ms = skew;
        }
        let as_of = self.last_sync_at.unwrap_or(sync.at);
        self.refresh(as_of);
    }

    /// Sets `health_score` to the score at `now`.
    pub fn refresh(&mut self, now: OffsetDateTime) {
        self.health_score = self.score_at(now);
    }

    /// Hours from the last sync to `now`; 0 if `now` is before it, `None` if it never synced.
    pub fn hours_since_last_sync(&self, now: OffsetDateTime) -> Option<f64> {
        self.last_sync_at.map(|last| ((now - last).as_seconds_f64() / 3600.0).max(0.0))
    }

    /// `60 × (total − failed)/total + max(0, 20 − 20 × hours_since_last_sync/24)
    /// + max(0, 20 − 20 × conflicts/total)`, 100 with no syncs, within 0..=100.
    ///
    /// A record with syncs but no `last_sync_at` (inconsistent input) gets no recency points.
    pub fn score_at(&self, now: OffsetDateTime) -> f64 {
        if self.total_syncs == 0 {
            return 100.0;
        }
        let total = self.total_syncs as f64;
        let failed = self.failed_syncs_count.min(self.total_syncs) as f64;
        let success = 60.0 * (total - failed) / total;
        let recency =
            self.hours_since_last_sync(now).map_or(0.0, |hours| (20.0 - 20.0 * hours / 24.0).max(0.0));
        let conflicts = (20.0 - 20.0 * self.conflicts_encountered as f64 / total).max(0.0);
        let score = success + recency + conflicts;
        if score.is_nan() { 0.0 } else { score.clamp(0.0, 100.0) }
    }

    /// Successful syncs over all syncs, in %; `None` with no syncs.
    pub fn success_rate_pct(&self) -> Option<f64> {
        (self.total_syncs > 0).then(|| {
            let ok = self.total_syncs - self.failed_syncs_count.min(self.total_syncs);
            100.0 * ok as f64 / self.total_syncs as f64
        })
    }

    /// Score at `now` below `rules.unhealthy_below`.
    pub fn is_unhealthy(&self, now: OffsetDateTime, rules: &HealthRules) -> bool {
        self.score_at(now) < rules.unhealthy_below
    }

    /// Why the device is problematic; empty if it is not.
    pub fn problems(&self, rules: &HealthRules) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.failed_syncs_count > rules.max_failures {
            problems
                .push(Problem::TooManyFailures { failed: self.failed_syncs_count, max: rules.max_failures });
        }
        if let Some(rate) = self.success_rate_pct()
            && rate < rules.min_success_rate_pct
        {
            problems
                .push(Problem::LowSuccessRate { success_rate_pct: rate, min: rules.min_success_rate_pct });
        }
        let avg = sanitize_ms(self.avg_sync_duration_ms);
        if avg > rules.max_avg_duration_ms {
            problems.push(Problem::SlowSyncs { avg_sync_duration_ms: avg, max: rules.max_avg_duration_ms });
        }
        problems
    }

    pub fn is_problematic(&self, rules: &HealthRules) -> bool {
        !self.problems(rules).is_empty()
    }
}

/// Thresholds for calling a device unhealthy or problematic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthRules {
    /// A score below this is unhealthy (protocol: `device_health_threshold`, 70).
    pub unhealthy_below: f64,
    /// More failed syncs than this is problematic.
    pub max_failures: u64,
    /// A success rate below this (in %) is problematic.
    pub min_success_rate_pct: f64,
    /// An average sync duration above this is problematic.
    pub max_avg_duration_ms: f64,
}

impl Default for HealthRules {
    fn default() -> Self {
        Self {
            unhealthy_below: 70.0,
            max_failures: 5,
            min_success_rate_pct: 80.0,
            max_avg_duration_ms: 5000.0,
        }
    }
}

impl HealthRules {
    pub fn validate(&self) -> Result<(), MetricsError> {
        for (field, value) in [
            ("unhealthy_below", self.unhealthy_below),
            ("min_success_rate_pct", self.min_success_rate_pct),
            ("max_avg_duration_ms", self.max_avg_duration_ms),
        ] {
            if !value.is_finite() {
                return Err(MetricsError::NotFinite { field, value });
            }
        }
        Ok(())
    }
}

/// One reason a device is problematic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    TooManyFailures { failed: u64, max: u64 },
    LowSuccessRate { success_rate_pct: f64, min: f64 },
    SlowSyncs { avg_sync_duration_ms: f64, max: f64 },
}

/// How many of `devices` score below `level` at `now` (the input of the unhealthy-devices alert).
pub fn count_below<'a>(
    devices: impl IntoIterator<Item = &'a DeviceHealth>,
    now: OffsetDateTime,
    level: f64,
) -> u64 {
    devices.into_iter().filter(|device| device.score_at(now) < level).count() as u64
}
