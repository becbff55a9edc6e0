//! Fleet insight maths: anomaly detection, conflict risk and sync windows. Pure: no IO.
#![doc = include_str!("../README.md")]

mod anomaly;
mod error;
pub mod eval;
mod risk;
mod stats;
mod window;

pub use anomaly::{Anomaly, Baseline, Bucket, DetectorConfig, Level, Metric, Scope, Severity, detect};
pub use error::InsightError;
pub use risk::{Example, Model, Prediction, Reason, RecordActivity, TrainConfig, baseline_score};
pub use stats::{auc, wilson_interval};
pub use window::{
    Basis, DeviceHistory, Network, SyncAttempt, TimeWindow, WindowAdvice, WindowConfig, next_window,
    plan_windows,
};
