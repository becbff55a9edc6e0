//! Conflict risk: features of a record's recent activity, an L2-regularised logistic
//! regression trained deterministically by Newton's method, its held-out AUC, per-prediction
//! reasons, and the baseline it must beat (the record's count of past conflicts).

use serde::{Deserialize, Serialize};

use crate::InsightError;
use crate::stats::{SplitMix64, auc};

/// What the server knows about one record at the moment of prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordActivity {
    pub domain: String,
    /// Distinct devices that edited it within the recent window.
    pub distinct_devices: u32,
    /// Edits within the recent window.
    pub edits: u32,
    /// The length of the recent window in hours (the edit rate is edits per hour).
    pub window_hours: f64,
    /// Hours since the server last changed it; `None` when it never changed since creation.
    pub hours_since_server_change: Option<f64>,
    /// How many devices share its unit (the set of devices that sync it).
    pub unit_size: u32,
    /// The hour of the day (0..24) of the prediction.
    pub hour: u8,
    /// Conflicts recorded on it before the prediction.
    pub past_conflicts: u32,
}

impl RecordActivity {
    fn validate(&self) -> Result<(), InsightError> {
        if !self.window_hours.is_finite() {
            return Err(InsightError::NotFinite { field: "window_hours", value: self.window_hours });
        }
        if self.window_hours <= 0.0 {
            return Err(InsightError::OutOfRange { field: "window_hours", value: self.window_hours });
        }
        if let Some(h) = self.hours_since_server_change {
            if !h.is_finite() {
                return Err(InsightError::NotFinite { field: "hours_since_server_change", value: h });
            }
            if h < 0.0 {
                return Err(InsightError::OutOfRange { field: "hours_since_server_change", value: h });
            }
        }
        if self.hour >= 24 {
            return Err(InsightError::OutOfRange { field: "hour", value: f64::from(self.hour) });
        }
        Ok(())
    }

    fn edit_rate(&self) -> f64 {
        f64::from(self.edits) / self.window_hours
    }
}

/// A training example: the activity at prediction time, and whether the record conflicted in
/// the horizon that followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub activity: RecordActivity,
    pub conflicted: bool,
}

/// The numeric features, in model order (the domain indicators follow them).
const NUMERIC: [&str; 9] = [
    "distinct_devices",
    "concurrent_editors",
    "edit_rate",
    "contention",
    "recent_server_change",
    "unit_size",
    "hour_sin",
    "hour_cos",
    "past_conflicts",
];

/// How long "never changed on the server" counts as, for the recency feature.
const NEVER_HOURS: f64 = 24.0 * 365.0;

fn numeric_features(a: &RecordActivity) -> [f64; 9] {
    let others = f64::from(a.distinct_devices.saturating_sub(1));
    let rate = a.edit_rate();
    let since = a.hours_since_server_change.unwrap_or(NEVER_HOURS);
    let angle = f64::from(a.hour) / 24.0 * std::f64::consts::TAU;
    [
        f64::from(a.distinct_devices).ln_1p(),
        others.ln_1p(),
        rate.ln_1p(),
        (others * rate).ln_1p(),
        // Near 1 just after a server change, falling over a day.
        1.0 / (1.0 + since / 6.0),
        f64::from(a.unit_size).ln_1p(),
        angle.sin(),
        angle.cos(),
        f64::from(a.past_conflicts).ln_1p(),
    ]
}

/// Training knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The L2 penalty on the standardised weights (not on the intercept).
    pub l2: f64,
    /// The share of examples held out for the evaluation.
    pub holdout_fraction: f64,
    /// Seeds the holdout split; the same data and seed give the same model, bit for bit.
    pub seed: u64,
    pub max_iterations: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { l2: 1.0, holdout_fraction: 0.25, seed: 0x5eed, max_iterations: 50 }
    }
}

/// A trained model with its held-out evaluation. Serialisable, so the server can store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Feature names in weight order.
    pub features: Vec<String>,
    /// Domains seen in training, one indicator feature each.
    pub domains: Vec<String>,
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// Examples used: training plus holdout.
    pub examples: usize,
    pub holdout_examples: usize,
    /// AUC of the model on the holdout, `None` if the holdout lacks either outcome.
    pub holdout_auc: Option<f64>,
    /// AUC of "count of past conflicts" on the same holdout.
    pub baseline_auc: Option<f64>,
}

/// Why a record is risky: one feature's contribution to the log-odds against an average record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub feature: String,
    pub contribution: f64,
    pub explanation: String,
}

/// A risk in 0..=1 with its largest reasons (positive contributions, largest first, at most 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub risk: f64,
    pub reasons: Vec<Reason>,
}

/// The baseline scorer: the record's count of past conflicts.
pub fn baseline_score(activity: &RecordActivity) -> f64 {
    f64::from(activity.past_conflicts)
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Model {
    fn raw_features(domains: &[String], a: &RecordActivity) -> Vec<f64> {
        let mut x: Vec<f64> = numeric_features(a).to_vec();
        x.extend(domains.iter().map(|d| if *d == a.domain { 1.0 } else { 0.0 }));
        x
    }

    fn standardised(&self, a: &RecordActivity) -> Vec<f64> {
        Self::raw_features(&self.domains, a)
            .iter()
            .zip(self.means.iter().zip(&self.scales))
            .map(|(x, (m, s))| (x - m) / s)
            .collect()
    }

    /// The probability that the record conflicts, and why.
    pub fn predict(&self, activity: &RecordActivity) -> Result<Prediction, InsightError> {
        activity.validate()?;
        let z = self.standardised(activity);
        if z.len() != self.weights.len() {
            return Err(InsightError::FeatureCount { expected: self.weights.len(), got: z.len() });
        }
        let contributions: Vec<f64> = z.iter().zip(&self.weights).map(|(x, w)| x * w).collect();
        let risk = sigmoid(self.intercept + contributions.iter().sum::<f64>());
        let mut order: Vec<usize> = (0..contributions.len()).filter(|&i| contributions[i] > 0.0).collect();
        order.sort_by(|&a, &b| contributions[b].total_cmp(&contributions[a]).then(a.cmp(&b)));
        let reasons = order
            .into_iter()
            .filter_map(|i| {
                let feature = self.features.get(i)?;
                Some(Reason {
                    feature: feature.clone(),
                    contribution: contributions[i],
                    explanation: explain(feature, activity),
                })
            })
            .take(3)
            .collect();
        Ok(Prediction { risk: risk.clamp(0.0, 1.0), reasons })
    }

    /// Trains on a seeded split of `examples` and evaluates on the rest.
    pub fn train(examples: &[Example], config: &TrainConfig) -> Result<Self, InsightError> {
        for (field, value) in [("l2", config.l2), ("holdout_fraction", config.holdout_fraction)] {
            if !value.is_finite() {
                return Err(InsightError::NotFinite { field, value });
            }
        }
        if config.l2 < 0.0 {
            return Err(InsightError::OutOfRange { field: "l2", value: config.l2 });
        }
        if !(0.0..1.0).contains(&config.holdout_fraction) {
            return Err(InsightError::OutOfRange {
                field: "holdout_fraction",
                value: config.holdout_fraction,
            });
        }
        for e in examples {
            e.activity.validate()?;
        }
        let (train, holdout) = split(examples.len(), config.holdout_fraction, config.seed);
        let positives = train.iter().filter(|&&i| examples[i].conflicted).count();
        let negatives = train.len() - positives;
        if positives < 2 || negatives < 2 {
            return Err(InsightError::TooFewExamples { needed: 2, positives, negatives });
        }
        let mut domains: Vec<String> = train.iter().map(|&i| examples[i].activity.domain.clone()).collect();
        domains.sort();
        domains.dedup();
        let rows: Vec<Vec<f64>> =
            train.iter().map(|&i| Self::raw_features(&domains, &examples[i].activity)).collect();
        let (means, scales) = standardisation(&rows);
        let z: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r.iter().zip(means.iter().zip(&scales)).map(|(x, (m, s))| (x - m) / s).collect())
            .collect();
        let y: Vec<f64> = train.iter().map(|&i| f64::from(u8::from(examples[i].conflicted))).collect();
        let (intercept, weights) = newton(&z, &y, config.l2, config.max_iterations);
        let mut features: Vec<String> = NUMERIC.iter().map(|s| (*s).to_owned()).collect();
        features.extend(domains.iter().map(|d| format!("domain={d}")));
        let mut model = Self {
            features,
            domains,
            means,
            scales,
            weights,
            intercept,
            examples: examples.len(),
            holdout_examples: holdout.len(),
            holdout_auc: None,
            baseline_auc: None,
        };
        let labels: Vec<bool> = holdout.iter().map(|&i| examples[i].conflicted).collect();
        let scores: Vec<f64> = holdout
            .iter()
            .map(|&i| model.predict(&examples[i].activity).map(|p| p.risk))
            .collect::<Result<_, _>>()?;
        let base: Vec<f64> = holdout.iter().map(|&i| baseline_score(&examples[i].activity)).collect();
        model.holdout_auc = auc(&scores, &labels);
        model.baseline_auc = auc(&base, &labels);
        Ok(model)
    }
}

/// A seeded permutation of 0..n cut into (train, holdout), each in ascending order.
fn split(n: usize, holdout_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let cut = (n as f64 * holdout_fraction).round() as usize;
    let mut holdout = order[..cut].to_vec();
    let mut train = order[cut..].to_vec();
    holdout.sort_unstable();
    train.sort_unstable();
    (train, holdout)
}

fn standardisation(rows: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let d = rows.first().map_or(0, Vec::len);
    let n = rows.len().max(1) as f64;
    let means: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let scales = (0..d)
        .map(|j| {
            let var = rows.iter().map(|r| (r[j] - means[j]).powi(2)).sum::<f64>() / n;
            // A constant feature stays unscaled (its standardised value is 0 everywhere).
            if var > 1e-12 { var.sqrt() } else { 1.0 }
        })
        .collect();
    (means, scales)
}

/// Newton's method (IRLS) for L2-penalised logistic regression: a fixed sequence of exact
/// linear solves in a fixed order, so the result depends only on the data.
#[allow(clippy::needless_range_loop, reason = "matrix indices read clearer than iterator chains")]
fn newton(x: &[Vec<f64>], y: &[f64], l2: f64, max_iterations: u32) -> (f64, Vec<f64>) {
    let d = x.first().map_or(0, Vec::len) + 1; // the intercept is parameter 0
    let mut beta = vec![0.0; d];
    for _ in 0..max_iterations {
        let mut grad = vec![0.0; d];
        let mut hess = vec![vec![0.0; d]; d];
        for (row, &target) in x.iter().zip(y) {
            let eta = beta[0] + row.iter().zip(&beta[1..]).map(|(a, b)| a * b).sum::<f64>();
            let p = sigmoid(eta);
            let w = (p * (1.0 - p)).max(1e-10);
            let r = p - target;
            let full = |j: usize| if j == 0 { 1.0 } else { row[j - 1] };
            for j in 0..d {
                let xj = full(j);
                grad[j] += r * xj;
                for k in 0..=j {
                    hess[j][k] += w * xj * full(k);
                }
            }
        }
        for j in 1..d {
            grad[j] += l2 * beta[j];
            hess[j][j] += l2;
        }
        hess[0][0] += 1e-9; // keeps the system definite when one class is rare
        for j in 0..d {
            for k in 0..j {
                hess[k][j] = hess[j][k];
            }
        }
        let Some(step) = cholesky_solve(&hess, &grad) else { break };
        let mut largest: f64 = 0.0;
        for j in 0..d {
            beta[j] -= step[j];
            largest = largest.max(step[j].abs());
        }
        if largest < 1e-10 {
            break;
        }
    }
    let intercept = beta[0];
    (intercept, beta[1..].to_vec())
}

/// Solves `a x = b` for symmetric positive definite `a`; `None` if it is not.
fn cholesky_solve(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let v = a[i][i] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i][j] = v.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    let mut z = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i][k] * z[k]).sum();
        z[i] = (b[i] - s) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k][i] * x[k]).sum();
        x[i] = (z[i] - s) / l[i][i];
    }
    Some(x)
}

/// A reason in words an operator reads.
fn explain(feature: &str, a: &RecordActivity) -> String {
    let hours = a.window_hours;
    match feature {
        "distinct_devices" | "concurrent_editors" => {
            format!("{} devices edited it in the last {hours:.0} h", a.distinct_devices)
        }
        "edit_rate" => format!("{} edits in the last {hours:.0} h", a.edits),
        "contention" => {
            format!("{} devices editing it at {:.1} edits per hour", a.distinct_devices, a.edit_rate())
        }
        "recent_server_change" => match a.hours_since_server_change {
            Some(h) if h < 1.0 => format!("changed on the server {:.0} min ago", h * 60.0),
            Some(h) => format!("changed on the server {h:.0} h ago"),
            None => "never changed on the server".to_owned(),
        },
        "unit_size" => format!("its unit is shared by {} devices", a.unit_size),
        "hour_sin" | "hour_cos" => format!("{:02}:00 is a busy hour for conflicts", a.hour),
        "past_conflicts" => format!("{} past conflicts", a.past_conflicts),
        other => match other.strip_prefix("domain=") {
            Some(d) => format!("records of {d} conflict more often"),
            None => other.to_owned(),
        },
    }
}
