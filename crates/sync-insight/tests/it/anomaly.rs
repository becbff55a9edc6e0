//! anomaly tests.
