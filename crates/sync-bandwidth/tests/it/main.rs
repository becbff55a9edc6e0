//! Integration tests of sync-bandwidth: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod compress;
mod conformance;
mod delta;
mod json_strategy;
mod priority;
