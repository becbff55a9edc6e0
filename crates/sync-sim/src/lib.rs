//! Simulated device fleets for syncforge, over the real protocol.
//!
//! - [`Device`]: a phone running sync-client's sans-IO core (replica, outbox, idempotency
//!   keys, coalescing, deltas, resyncs) over sync-client's HTTP `Remote`, with the
//!   simulation's workload, offline periods and network faults in between.
//! - [`SyncClient`]: sync-client's `Remote` with each exchange timed, for the benchmark and
//!   the fault scenarios, which drive the protocol by hand.
//! - [`db`]: the server's database as the simulator needs it: fresh ones for the servers it
//!   starts, and the history and conflict log the invariants judge.
//! - [`NetworkProfile`]: latency, jitter, lost requests and responses, duplicates, reordered
//!   retries, offline periods; per device, with a skewed clock.
//! - [`Scenario`] presets (`basic_sync`, `high_conflict`, `network_issues`, `offline_burst`,
//!   `initial_sync`), [`run`] them against a server, and read the [`Report`] with the
//!   [`invariants`]' verdicts.
//! - [`bench`]: the end-to-end benchmark behind `cargo xtask bench`; [`charts`]: its SVG
//!   charts and the simulator's HTML report.
#![doc = include_str!("../README.md")]

pub mod bench;
pub mod charts;
pub mod client;
pub mod db;
pub mod device;
pub mod error;
pub mod faults;
pub mod hostile;
pub mod invariants;
pub mod live_bench;
pub mod network;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod server;
pub mod soak;
pub mod sse;
pub mod stats;
pub mod token;
pub mod workload;

pub use client::{Reply, SyncClient, Traffic};
pub use device::Device;
pub use error::{Error, Result};
pub use network::NetworkProfile;
pub use report::Report;
pub use runner::{RunOptions, Target, run};
pub use scenario::{Scenario, ScenarioKind};
pub use token::TokenIssuer;
