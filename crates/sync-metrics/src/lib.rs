//! Sync operation metrics, device health, snapshot maths and alert rules. Sans-IO.
#![doc = include_str!("../README.md")]

mod alert;
mod error;
mod health;
mod histogram;
mod operation;
mod prometheus;
mod recorder;
mod snapshot;

pub use alert::{Alert, AlertRule, AlertRules, Severity};
pub use error::MetricsError;
pub use health::{DeviceHealth, DeviceSync, HealthRules, Problem, count_below};
pub use operation::{Operation, SyncKind};
pub use prometheus::{PROMETHEUS_CONTENT_TYPE, escape_label_value};
pub use recorder::{
    OVERFLOW_LABEL, OpTimer, RecorderConfig, Sample, SeriesHandle, SeriesSnapshot, SyncRecorder, Usage,
};
pub use snapshot::{ConflictHotspot, DomainCounts, Snapshot, SyncEvent, conflict_hotspots, percentile};
