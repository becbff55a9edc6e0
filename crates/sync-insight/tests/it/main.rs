//! Integration tests of sync-insight through its public API: the detectors' laws, the model's
//! laws, the window planner's laws, the server queue's laws and the evaluation's targets at the
//! CI size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anomaly;
mod eval;
mod queue;
mod risk;
mod window;
