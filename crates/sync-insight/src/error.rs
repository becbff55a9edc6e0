//! The crate's error type: what a caller's input can get wrong.
//!
//! Policy: functions reject malformed input (a failure count above its sync count, buckets out
//! of order, a non-finite number) with an error naming the field, and never panic; thin data
//! is not an error but an answer ("not enough history", basis `rule`).

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InsightError {
    #[error("{field} must be a finite number, got {value}")]
    NotFinite { field: &'static str, value: f64 },
    #[error("{field} is out of range: {value}")]
    OutOfRange { field: &'static str, value: f64 },
    #[error("bucket at {at} has {part} {count} above its {whole} {total}")]
    CountAboveTotal { at: String, part: &'static str, count: u64, whole: &'static str, total: u64 },
    #[error("buckets must be in time order without duplicates (at {at})")]
    Unordered { at: String },
    #[error("the bucket width must be between 1 minute and 1 hour and divide an hour, got {minutes} minutes")]
    BucketWidth { minutes: i64 },
    #[error("an evaluated window needs at least one bucket")]
    EmptyWindow,
    #[error(
        "training needs at least {needed} examples with both outcomes, got {positives} positive and {negatives} negative"
    )]
    TooFewExamples { needed: usize, positives: usize, negatives: usize },
    #[error("the model expects {expected} features, the example has {got}")]
    FeatureCount { expected: usize, got: usize },
}
