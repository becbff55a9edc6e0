//! The crate's error type: what a configuration or a name can get wrong.
//!
//! Policy: recording never fails (a metrics call must not be able to break the operation it
//! measures); only building a recorder from a configuration, validating rules and parsing
//! names return errors.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("unknown sync operation `{0}` (expected push, pull, partial or resolve)")]
    UnknownOperation(String),
    #[error("unknown sync kind `{0}` (expected push or pull)")]
    UnknownSyncKind(String),
    #[error("histogram bucket bounds must be finite, positive and strictly increasing: {0:?}")]
    InvalidBuckets(Vec<f64>),
    #[error("max_series must be at least 1")]
    ZeroMaxSeries,
    #[error("{field} must be a finite number, got {value}")]
    NotFinite { field: &'static str, value: f64 },
}
