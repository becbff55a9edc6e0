//! Counters of one device, the fleet's live progress, and latency percentiles.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sync_protocol::Outcome;

use crate::client::Traffic;

/// What one device did and saw.
#[derive(Debug, Clone, Default)]
pub struct DeviceStats {
    /// Requests the server answered (any status), and those answered 200.
    pub answered: u64,
    pub answered_ok: u64,
    pub push_attempts: u64,
    pub push_ok: u64,
    /// Requests or responses the network lost.
    pub push_lost: u64,
    pub pull_requests: u64,
    pub pull_lost: u64,
    /// Answers with 429 or 503 (retried).
    pub throttled: u64,
    /// Other 5xx answers (retried, and reported as violations).
    pub server_errors: u64,
    /// Refused requests (4xx other than 429), reported as violations.
    pub http_errors: u64,
    /// No answer at all (connection errors).
    pub transport_errors: u64,
    pub duplicates_sent: u64,
    pub reorders: u64,
    pub offline_periods: u64,
    pub replays_checked: u64,
    pub resyncs: u64,
    /// Acknowledged changes by outcome, in [`OUTCOMES`] order.
    pub outcomes: [u64; 6],
    pub conflicts: u64,
    pub records_pulled: u64,
    pub delta_records: u64,
    pub delta_fallbacks: u64,
    /// Live streams opened, and the batches of changes they delivered.
    pub streams_opened: u64,
    pub stream_batches: u64,
    pub traffic: Traffic,
    pub push_latencies_us: Vec<u64>,
    pub pull_latencies_us: Vec<u64>,
}

/// Outcome words in the order of [`DeviceStats::outcomes`].
pub const OUTCOMES: [Outcome; 6] = [
    Outcome::Applied,
    Outcome::ClientWon,
    Outcome::ServerWon,
    Outcome::Merged,
    Outcome::ManualRequired,
    Outcome::Invalid,
];

impl DeviceStats {
    pub fn count_outcome(&mut self, outcome: Outcome, conflict: bool) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i] += 1;
        }
        self.conflicts += u64::from(conflict);
    }

    /// Adds another device's counters.
    pub fn merge(&mut self, other: &DeviceStats) {
        self.answered += other.answered;
        self.answered_ok += other.answered_ok;
        self.push_attempts += other.push_attempts;
        self.push_ok += other.push_ok;
        self.push_lost += other.push_lost;
        self.pull_requests += other.pull_requests;
        self.pull_lost += other.pull_lost;
        self.throttled += other.throttled;
        self.server_errors += other.server_errors;
        self.http_errors += other.http_errors;
        self.transport_errors += other.transport_errors;
        self.duplicates_sent += other.duplicates_sent;
        self.reorders += other.reorders;
        self.offline_periods += other.offline_periods;
        self.replays_checked += other.replays_checked;
        self.resyncs += other.resyncs;
        for (sum, n) in self.outcomes.iter_mut().zip(other.outcomes) {
            *sum += n;
        }
        self.conflicts += other.conflicts;
        self.records_pulled += other.records_pulled;
        self.delta_records += other.delta_records;
        self.delta_fallbacks += other.delta_fallbacks;
        self.streams_opened += other.streams_opened;
        self.stream_batches += other.stream_batches;
        self.traffic.add(other.traffic);
        self.push_latencies_us.extend_from_slice(&other.push_latencies_us);
        self.pull_latencies_us.extend_from_slice(&other.pull_latencies_us);
    }

    /// Counts a server's answer (or its absence).
    pub fn count_answer<T>(&mut self, result: &crate::error::Result<T>) {
        match result {
            Ok(_) => {
                self.answered += 1;
                self.answered_ok += 1;
            }
            Err(e) if e.http_status().is_some() => self.answered += 1,
            Err(_) => {}
        }
    }

    pub fn changes_acknowledged(&self) -> u64 {
        self.outcomes.iter().sum()
    }
}

/// Live counters of a whole fleet, for the progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    pub changes: AtomicU64,
    pub pulled: AtomicU64,
}

impl Progress {
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    pub fn pulled(&self) -> u64 {
        self.pulled.load(Ordering::Relaxed)
    }
}

/// Percentiles of a latency sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples_us` (microseconds).
    pub fn of(samples_us: &[u64]) -> Latency {
        if samples_us.is_empty() {
            return Latency::default();
        }
        let mut sorted = samples_us.to_vec();
        sorted.sort_unstable();
        let at = |p: f64| {
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
        };
        Latency {
            count: sorted.len(),
            p50_ms: at(50.0),
            p95_ms: at(95.0),
            p99_ms: at(99.0),
            max_ms: at(100.0),
        }
    }
}
