//! Integration tests of sync-metrics: health score, snapshot maths, alerts, the recorder and its
//! Prometheus exposition, with property tests for their laws.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod health;
mod prometheus;
mod recorder;
mod snapshot;
