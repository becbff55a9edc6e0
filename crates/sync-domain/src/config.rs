//! `SyncConfig`: every threshold, limit and retention the engine obeys, with the protocol's
//! defaults, so that no configuration file is needed.

use serde::{Deserialize, Serialize};
pub use sync_bandwidth::BatchSizes;

/// Thresholds, limits and retention. Field names follow the seeds' `SYNC_CONFIG` where it had
/// them; durations carry their unit in the name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    // Analytics.
    pub analytics_snapshot_interval_hours: u32,
    pub device_health_threshold: f64,
    pub alert_min_success_rate_pct: f64,
    pub alert_max_conflict_rate_pct: f64,
    pub alert_critical_health: f64,
    pub alert_max_critical_devices: u32,

    // Queue management.
    pub queue_healthy_threshold: i64,
    pub high_priority_threshold: i64,
    pub default_ms_per_item: f64,
    pub load_medium_above: i64,
    pub load_high_above: i64,
    /// First and last UTC hour of the peak (both included: 9 and 17 mean 09:00 to 17:59).
    pub peak_hours_start: u8,
    pub peak_hours_end: u8,

    // Bandwidth.
    pub compression_threshold_bytes: usize,
    pub min_compression_ratio: f64,
    pub compression_level: u32,
    pub batch_sizes: BatchSizes,
    pub max_pull_limit: u32,

    // Limits.
    pub max_push_changes: usize,
    pub max_body_bytes: usize,
    pub max_clock_skew_ms: i64,

    // Retention.
    pub idempotency_ttl_hours: i64,
    /// Devices seen within this many days are active: tombstones and past versions are
    /// kept until every active device has pulled past them.
    pub device_retention_days: i64,

    // Fleet insight (PROTOCOL.md section 12).
    /// A pull with `hints=true` marks records whose conflict risk is at least this (0..=1).
    pub conflict_risk_threshold: f64,
    /// Days of sync events the anomaly baselines are fitted on.
    pub anomaly_history_days: i64,
    /// Failed webhook deliveries are retried for this many hours after the first attempt.
    pub webhook_retry_hours: i64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            analytics_snapshot_interval_hours: 1,
            device_health_threshold: 70.0,
            alert_min_success_rate_pct: 90.0,
            alert_max_conflict_rate_pct: 10.0,
            alert_critical_health: 50.0,
            alert_max_critical_devices: 10,
            queue_healthy_threshold: 100,
            high_priority_threshold: 20,
            default_ms_per_item: 150.0,
            load_medium_above: 500,
            load_high_above: 1000,
            peak_hours_start: 9,
            peak_hours_end: 17,
            compression_threshold_bytes: 1024,
            min_compression_ratio: 0.8,
            compression_level: 6,
            batch_sizes: BatchSizes::default(),
            max_pull_limit: 1000,
            max_push_changes: 500,
            max_body_bytes: 8 * 1024 * 1024,
            max_clock_skew_ms: 2000,
            idempotency_ttl_hours: 24,
            device_retention_days: 30,
            conflict_risk_threshold: 0.5,
            anomaly_history_days: 28,
            webhook_retry_hours: 24,
        }
    }
}

impl SyncConfig {
    /// Whether `hour` (0..=23, UTC) is a peak hour.
    pub fn is_peak_hour(&self, hour: u8) -> bool {
        if self.peak_hours_start <= self.peak_hours_end {
            (self.peak_hours_start..=self.peak_hours_end).contains(&hour)
        } else {
            // A peak that wraps past midnight, e.g. 22 to 5.
            hour >= self.peak_hours_start || hour <= self.peak_hours_end
        }
    }

    /// Problems that make the configuration unusable, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.min_compression_ratio) {
            problems.push("min_compression_ratio must be between 0 and 1".to_owned());
        }
        if self.compression_level > 9 {
            problems.push("compression_level must be 0 to 9".to_owned());
        }
        if self.peak_hours_start > 23 || self.peak_hours_end > 23 {
            problems.push("peak_hours_start and peak_hours_end must be hours 0 to 23".to_owned());
        }
        if self.max_push_changes == 0 || self.max_body_bytes == 0 || self.max_pull_limit == 0 {
            problems.push("max_push_changes, max_body_bytes and max_pull_limit must be positive".to_owned());
        }
        let b = &self.batch_sizes;
        if [b.excellent, b.good, b.fair, b.poor, b.unknown, b.absent].contains(&0) {
            problems.push("batch_sizes must all be positive".to_owned());
        }
        if self.idempotency_ttl_hours <= 0 || self.device_retention_days <= 0 {
            problems.push("retention periods must be positive".to_owned());
        }
        if !(0.0..=1.0).contains(&self.conflict_risk_threshold) {
            problems.push("conflict_risk_threshold must be between 0 and 1".to_owned());
        }
        if !(7..=366).contains(&self.anomaly_history_days) {
            problems.push("anomaly_history_days must be 7 to 366 (the detector needs a week)".to_owned());
        }
        if !(1..=24 * 7).contains(&self.webhook_retry_hours) {
            problems.push("webhook_retry_hours must be 1 to 168".to_owned());
        }
        problems
    }
}
