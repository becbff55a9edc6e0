//! Alert rules evaluated on a snapshot and a count of unhealthy devices (protocol section 7).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{MetricsError, Snapshot};

/// Thresholds of the alert rules; the defaults are the protocol's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// `low_success_rate` fires when `success_rate_pct` is below this.
    pub min_success_rate_pct: f64,
    /// `high_conflict_rate` fires when `conflict_rate_pct` is above this.
    pub max_conflict_rate_pct: f64,
    /// Devices scoring below this count as unhealthy for `unhealthy_devices`.
    pub device_health_below: f64,
    /// `unhealthy_devices` fires when more devices than this score below `device_health_below`.
    pub max_unhealthy_devices: u64,
    /// The rate rules are evaluated only on a window with at least this many requests, so that
    /// a quiet hour with one failed request does not page anyone. The default, 1, evaluates
    /// every window that has any request.
    pub min_sync_requests: u64,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            min_success_rate_pct: 90.0,
            max_conflict_rate_pct: 10.0,
            device_health_below: 50.0,
            max_unhealthy_devices: 10,
            min_sync_requests: 1,
        }
    }
}

/// Which rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    LowSuccessRate,
    HighConflictRate,
    UnhealthyDevices,
}

impl AlertRule {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertRule::LowSuccessRate => "low_success_rate",
            AlertRule::HighConflictRate => "high_conflict_rate",
            AlertRule::UnhealthyDevices => "unhealthy_devices",
        }
    }

    /// Failed syncs lose data on devices until they retry: critical. Conflicts are resolved
    /// and unhealthy devices are a trend: warnings.
    pub const fn severity(self) -> Severity {
        match self {
            AlertRule::LowSuccessRate => Severity::Critical,
            AlertRule::HighConflictRate | AlertRule::UnhealthyDevices => Severity::Warning,
        }
    }
}

impl fmt::Display for AlertRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

/// A rule that fired, with the value that made it fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: AlertRule,
    pub value: f64,
    pub threshold: f64,
    pub severity: Severity,
    pub message: String,
}

impl Alert {
    fn new(rule: AlertRule, value: f64, threshold: f64, message: String) -> Self {
        Self { rule, value, threshold, severity: rule.severity(), message }
    }
}

impl AlertRules {
    pub fn validate(&self) -> Result<(), MetricsError> {
        for (field, value) in [
            ("min_success_rate_pct", self.min_success_rate_pct),
            ("max_conflict_rate_pct", self.max_conflict_rate_pct),
            ("device_health_below", self.device_health_below),
        ] {
            if !value.is_finite() {
                return Err(MetricsError::NotFinite { field, value });
            }
        }
        Ok(())
    }

    /// The alerts of a snapshot, given how many devices score below `device_health_below`
    /// (see [`crate::count_below`]); in the order success rate, conflict rate, devices.
    pub fn evaluate(&self, snapshot: &Snapshot, unhealthy_devices: u64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let enough =
            snapshot.total_sync_requests > 0 && snapshot.total_sync_requests >= self.min_sync_requests;
        if enough && snapshot.success_rate_pct < self.min_success_rate_pct {
            alerts.push(Alert::new(
                AlertRule::LowSuccessRate,
                snapshot.success_rate_pct,
                self.min_success_rate_pct,
                format!(
                    "sync success rate {:.1} % is below {} % ({} of {} requests failed)",
                    snapshot.success_rate_pct,
                    self.min_success_rate_pct,
                    snapshot.failed_syncs,
                    snapshot.total_sync_requests
                ),
            ));
        }
        if enough && snapshot.conflict_rate_pct > self.max_conflict_rate_pct {
            alerts.push(Alert::new(
                AlertRule::HighConflictRate,
                snapshot.conflict_rate_pct,
                self.max_conflict_rate_pct,
                format!(
                    "conflict rate {:.1} % is above {} % ({} conflicts)",
                    snapshot.conflict_rate_pct, self.max_conflict_rate_pct, snapshot.total_conflicts
                ),
            ));
        }
        if unhealthy_devices > self.max_unhealthy_devices {
            alerts.push(Alert::new(
                AlertRule::UnhealthyDevices,
                unhealthy_devices as f64,
                self.max_unhealthy_devices as f64,
                format!(
                    "{unhealthy_devices} devices have a health score below {}, more than {}",
                    self.device_health_below, self.max_unhealthy_devices
                ),
            ));
        }
        alerts
    }
}
