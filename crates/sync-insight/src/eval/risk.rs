//! Conflict-risk evaluation: records with planted hot spots whose conflicts follow from
//! concurrent editing, and the model's holdout AUC against the past-conflicts baseline.
//!
//! The world: a conflict needs two devices editing the same record between their syncs, so its
//! chance grows with the other editors, the edit rate and how recently the server changed the
//! record, and differs by domain (a journal has one author). Past conflicts reflect the record's
//! *past* hotness, which drifts: some hot records cool down and some new ones heat up.

use serde::{Deserialize, Serialize};

use super::EvalConfig;
use crate::stats::SplitMix64;
use crate::{Example, InsightError, Model, RecordActivity, TrainConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskReport {
    pub examples: usize,
    pub holdout_examples: usize,
    /// Share of examples that conflicted.
    pub positive_share: f64,
    pub holdout_auc: f64,
    /// "Count of past conflicts of this record" on the same holdout.
    pub baseline_auc: f64,
}

const DOMAINS: [(&str, f64); 4] = [("task", 1.0), ("ticket", 1.5), ("work_order", 1.2), ("journal", 0.15)];

/// One record's activity and whether it conflicted in the next 24 hours.
fn example(rng: &mut SplitMix64) -> Example {
    let (domain, domain_factor) = DOMAINS[rng.below(DOMAINS.len() as u64) as usize];
    let unit_size = 2 + rng.below(59) as u32;
    // Hotness: most records are quiet, a few are hot.
    let hot = (1.2 * rng.normal() - 1.0).exp();
    let share = (hot / (1.0 + hot)).min(0.9);
    let editors_pool = unit_size.min(8);
    let distinct_devices = (0..editors_pool).filter(|_| rng.chance(share * 0.6)).count() as u32;
    let window_hours = 24.0;
    let edits = rng.poisson(f64::from(distinct_devices) * (0.5 + 3.0 * hot).min(30.0)) as u32;
    let rate = f64::from(edits) / window_hours;
    let hours_since = if edits == 0 && rng.chance(0.5) {
        None
    } else {
        Some(-(1.0 - rng.uniform()).ln() * 24.0 / (1.0 + rate * 4.0))
    };
    let hour = rng.below(24) as u8;
    let busy = if (8..18).contains(&hour) { 1.3 } else { 0.7 };
    let others = f64::from(distinct_devices.saturating_sub(1));
    let recency = hours_since.map_or(0.0, |h| (-h / 6.0).exp());
    let size = (f64::from(unit_size) / 20.0).sqrt();
    let lambda = 0.02 * domain_factor * busy * size * (others * rate * 6.0 * (0.5 + recency) + 0.3 * rate);
    let conflicted = rng.chance(1.0 - (-lambda).exp());
    // The past reflects a drifted hotness.
    let past_hot = hot * (0.9 * rng.normal()).exp();
    let past_conflicts = rng.poisson(0.6 * domain_factor * past_hot) as u32;
    Example {
        activity: RecordActivity {
            domain: domain.to_owned(),
            distinct_devices,
            edits,
            window_hours,
            hours_since_server_change: hours_since,
            unit_size,
            hour,
            past_conflicts,
        },
        conflicted,
    }
}

/// Examples from the seeded world (also used by the tests of the model).
pub fn examples(seed: u64, n: usize) -> Vec<Example> {
    let mut rng = SplitMix64::new(seed ^ 0xC0F1_1C75);
    (0..n).map(|_| example(&mut rng)).collect()
}

pub(super) fn evaluate(config: &EvalConfig) -> Result<RiskReport, InsightError> {
    let data = examples(config.seed, config.records);
    let positives = data.iter().filter(|e| e.conflicted).count();
    let model = Model::train(&data, &TrainConfig { seed: config.seed, ..TrainConfig::default() })?;
    Ok(RiskReport {
        examples: model.examples,
        holdout_examples: model.holdout_examples,
        positive_share: positives as f64 / data.len().max(1) as f64,
        holdout_auc: model.holdout_auc.unwrap_or(0.5),
        baseline_auc: model.baseline_auc.unwrap_or(0.5),
    })
}
