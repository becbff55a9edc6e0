//! The seeded evaluation: synthetic fleets with planted patterns (daily and weekly rhythm,
//! incidents, hot records, devices with regular connectivity) and what the detectors, the
//! model and the planner make of them. Deterministic from the seed; `cargo xtask insight-eval`
//! is meant to call [`run`] and write the report to docs/.

mod anomalies;
pub mod queue;
mod risk;
mod windows;

use serde::{Deserialize, Serialize};

pub use anomalies::AnomalyReport;
pub use risk::{RiskReport, examples as risk_examples};
pub use windows::{QUEUE_UTILISATION, QueueFigures, WindowReport};

/// The size and seed of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    pub seed: u64,
    /// Anomalies: tenants, units (groups of devices with their own series) per tenant, weeks
    /// of clean history before the judged days, judged days, incidents per tenant.
    pub tenants: usize,
    pub units_per_tenant: usize,
    pub history_weeks: usize,
    pub judged_days: usize,
    pub incidents_per_tenant: usize,
    /// Conflict risk: records observed, each an example.
    pub records: usize,
    /// Sync windows: devices in the fleet.
    pub devices: usize,
}

impl EvalConfig {
    /// The size CI runs (seconds in a debug build).
    pub fn quick(seed: u64) -> Self {
        Self {
            seed,
            tenants: 3,
            units_per_tenant: 3,
            history_weeks: 3,
            judged_days: 5,
            incidents_per_tenant: 8,
            records: 4_000,
            devices: 300,
        }
    }

    /// The size reported in the docs.
    pub fn full(seed: u64) -> Self {
        Self {
            seed,
            tenants: 12,
            units_per_tenant: 4,
            history_weeks: 4,
            judged_days: 14,
            incidents_per_tenant: 20,
            records: 40_000,
            devices: 2_000,
        }
    }
}

/// Everything measured, with the targets of issue 18 beside the figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub config: EvalConfig,
    pub anomalies: AnomalyReport,
    pub risk: RiskReport,
    pub windows: WindowReport,
}

impl EvalReport {
    /// The targets, each with whether this run met it.
    pub fn targets(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("anomaly recall within 15 minutes >= 0.9", self.anomalies.recall >= 0.9),
            ("false alarms per tenant-day <= 1", self.anomalies.false_alarms_per_tenant_day <= 1.0),
            ("conflict-risk holdout AUC >= 0.80", self.risk.holdout_auc >= 0.80),
            ("conflict-risk AUC above the baseline", self.risk.holdout_auc > self.risk.baseline_auc),
            ("peak-hour p99 queue wait reduction >= 30 %", self.windows.wait_p99_reduction >= 0.30),
        ]
    }

    /// A plain-text table of the figures, for docs/ and the terminal.
    pub fn render(&self) -> String {
        let a = &self.anomalies;
        let r = &self.risk;
        let w = &self.windows;
        let mut out = String::new();
        out.push_str(&format!("seed {}\n", self.config.seed));
        out.push_str(&format!(
            "anomalies: {} incidents in active hours, {} found within 15 min (recall {:.3}); \
             quiet-hour incidents {} found of {} (recall {:.3}); median delay {} min\n",
            a.incidents,
            a.detected,
            a.recall,
            a.quiet_detected,
            a.quiet_incidents,
            a.quiet_recall,
            a.median_delay_minutes
        ));
        for (kind, planted, found) in &a.by_kind {
            out.push_str(&format!("  {kind}: {found} of {planted}\n"));
        }
        for miss in &a.missed {
            out.push_str(&format!("  missed: {miss}\n"));
        }
        out.push_str(&format!(
            "  false alarms: {} over {} tenant-days = {:.2} per tenant-day ({} series-metric checks)\n",
            a.false_alarms, a.tenant_days, a.false_alarms_per_tenant_day, a.checks
        ));
        out.push_str(&format!(
            "conflict risk: {} examples ({} held out, {:.1} % positive), holdout AUC {:.3} vs baseline {:.3} (margin {:+.3})\n",
            r.examples,
            r.holdout_examples,
            r.positive_share * 100.0,
            r.holdout_auc,
            r.baseline_auc,
            r.holdout_auc - r.baseline_auc
        ));
        out.push_str(&format!(
            "sync windows: {} devices, peak {:.1} -> {:.1} syncs/hour ({:.1} % lower) at the same daily volume {:.0}; \
             advice in a connected hour {:.1} %; basis device_history {} / fleet {} / rule {}\n",
            w.devices,
            w.peak_without_advice,
            w.peak_with_advice,
            w.peak_reduction * 100.0,
            w.daily_volume,
            w.advice_in_connected_hour * 100.0,
            w.basis_device_history,
            w.basis_fleet,
            w.basis_rule
        ));
        out.push_str(&format!(
            "  server queue: one FIFO queue, 1 s steps, {} days after the advice, capacity {:.3} syncs/s \
             (the unadvised busiest hour at {:.0} % utilisation); the peak-load figure above is information\n",
            w.queue_days,
            w.queue_capacity_per_s,
            QUEUE_UTILISATION * 100.0
        ));
        for (name, q) in [("without advice", &w.queue_without_advice), ("with advice", &w.queue_with_advice)]
        {
            out.push_str(&format!(
                "    {name}: {} syncs; peak hour {:02}:00 ({:.0} syncs/day): p99 wait {:.1} s, \
                 queue depth p99 {:.1} / max {:.1}; worst hour {:02}:00 p99 wait {:.1} s\n",
                q.syncs,
                q.peak_hour,
                q.peak_hour_syncs,
                q.wait_p99_s,
                q.depth_p99,
                q.depth_max,
                q.worst_hour,
                q.worst_hour_wait_p99_s
            ));
        }
        out.push_str(&format!(
            "    peak-hour p99 wait {:.1} % lower, p99 queue depth {:.1} % lower\n",
            w.wait_p99_reduction * 100.0,
            w.depth_p99_reduction * 100.0
        ));
        for (target, met) in self.targets() {
            out.push_str(&format!("  [{}] {target}\n", if met { "met" } else { "MISSED" }));
        }
        out
    }
}

/// Runs the three evaluations.
pub fn run(config: &EvalConfig) -> Result<EvalReport, crate::InsightError> {
    Ok(EvalReport {
        config: config.clone(),
        anomalies: anomalies::evaluate(config)?,
        risk: risk::evaluate(config)?,
        windows: windows::evaluate(config)?,
    })
}
