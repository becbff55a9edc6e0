//! A run's report: a table for the terminal and JSON for machines.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::invariants::Invariant;
use crate::scenario::Scenario;
use crate::stats::{DeviceStats, Latency};

/// The initial sync of the fleet: records pulled from nothing, and how fast.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InitialSync {
    pub records: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
}

impl InitialSync {
    pub fn new(records: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        InitialSync { records, seconds, records_per_sec: rate(records, seconds) }
    }
}

/// Pushes of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct Pushes {
    pub attempts: u64,
    pub acknowledged: u64,
    /// Requests or responses the simulated network lost (then retried).
    pub lost: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub refused: u64,
    pub duplicates_sent: u64,
    pub retries_reordered: u64,
    pub replays_checked: u64,
}

/// Acknowledged changes by outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Changes {
    pub acknowledged: u64,
    pub applied: u64,
    pub client_won: u64,
    pub server_won: u64,
    pub merged: u64,
    pub manual_required: u64,
    pub invalid: u64,
    pub conflicts: u64,
    pub per_sec: f64,
}

/// Pulls of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct Pulls {
    pub requests: u64,
    pub lost: u64,
    pub records: u64,
    pub delta_records: u64,
    pub delta_fallbacks: u64,
    pub resyncs: u64,
    /// Live streams opened, and the batches they delivered.
    pub streams_opened: u64,
    pub stream_batches: u64,
}

/// Bytes on the wire against the JSON they carried.
#[derive(Debug, Clone, Serialize)]
pub struct Bytes {
    pub sent_wire: u64,
    pub sent_json: u64,
    pub received_wire: u64,
    pub received_json: u64,
    /// `1 - wire / json` over both directions, in %.
    pub saved_pct: f64,
}

/// Everything a run measured, and the invariants' verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub tenant: String,
    /// Set by whoever started the server (`sqlite`, `postgres`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    pub units: usize,
    /// Wall time of the working phase and the final drain.
    pub elapsed_sec: f64,
    /// Requests answered 200 among those that got an answer, in %.
    pub success_rate_pct: f64,
    /// Conflicts per acknowledged change, in %.
    pub conflict_rate_pct: f64,
    pub pushes: Pushes,
    pub changes: Changes,
    pub pulls: Pulls,
    pub push_latency: Latency,
    pub pull_latency: Latency,
    /// Requests that got no answer at all: connection refused or reset, a timeout (the server
    /// was down, or the simulated network lost them).
    pub transport_errors: u64,
    pub bytes: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_sync: Option<InitialSync>,
    pub invariants: Vec<Invariant>,
    pub passed: bool,
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { n as f64 / seconds } else { 0.0 }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 100.0 } else { 100.0 * part as f64 / whole as f64 }
}

impl Report {
    pub fn new(
        scenario: &Scenario,
        tenant: String,
        stats: &DeviceStats,
        elapsed: Duration,
        initial_sync: Option<InitialSync>,
        invariants: Vec<Invariant>,
    ) -> Self {
        let [applied, client_won, server_won, merged, manual_required, invalid] = stats.outcomes;
        let acknowledged = stats.changes_acknowledged();
        let t = &stats.traffic;
        let wire = t.sent_wire + t.received_wire;
        let json = t.sent_raw + t.received_raw;
        let passed = invariants.iter().all(|i| i.passed);
        Report {
            scenario: scenario.clone(),
            tenant,
            backend: None,
            units: scenario.units(),
            elapsed_sec: elapsed.as_secs_f64(),
            success_rate_pct: pct(stats.answered_ok, stats.answered),
            conflict_rate_pct: if acknowledged == 0 { 0.0 } else { pct(stats.conflicts, acknowledged) },
            pushes: Pushes {
                attempts: stats.push_attempts,
                acknowledged: stats.push_ok,
                lost: stats.push_lost,
                throttled: stats.throttled,
                server_errors: stats.server_errors,
                refused: stats.http_errors,
                duplicates_sent: stats.duplicates_sent,
                retries_reordered: stats.reorders,
                replays_checked: stats.replays_checked,
            },
            changes: Changes {
                acknowledged,
                applied,
                client_won,
                server_won,
                merged,
                manual_required,
                invalid,
                conflicts: stats.conflicts,
                per_sec: rate(acknowledged, elapsed.as_secs_f64()),
            },
            pulls: Pulls {
                requests: stats.pull_requests,
                lost: stats.pull_lost,
                records: stats.records_pulled,
                delta_records: stats.delta_records,
                delta_fallbacks: stats.delta_fallbacks,
                resyncs: stats.resyncs,
                streams_opened: stats.streams_opened,
                stream_batches: stats.stream_batches,
            },
            push_latency: Latency::of(&stats.push_latencies_us),
            pull_latency: Latency::of(&stats.pull_latencies_us),
            transport_errors: stats.transport_errors,
            bytes: Bytes {
                sent_wire: t.sent_wire,
                sent_json: t.sent_raw,
                received_wire: t.received_wire,
                received_json: t.received_raw,
                saved_pct: if json == 0 { 0.0 } else { 100.0 * (1.0 - wire as f64 / json as f64) },
            },
            initial_sync,
            invariants,
            passed,
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as a table for the terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let s = &self.scenario;
        let backend = self.backend.as_deref().map(|b| format!(" on {b}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "scenario {}{backend}: {} devices in {} units, {:.0}s (+ drain: {:.1}s in all), tenant {}",
            s.kind,
            s.devices,
            self.units,
            s.duration.as_secs_f64(),
            self.elapsed_sec,
            self.tenant
        );
        let row = |out: &mut String, k: &str, v: String| {
            let _ = writeln!(out, "  {k:<24} {v}");
        };
        row(&mut out, "success rate", format!("{:.1} %", self.success_rate_pct));
        row(
            &mut out,
            "conflict rate",
            format!("{:.1} % ({} conflicts)", self.conflict_rate_pct, self.changes.conflicts),
        );
        let c = &self.changes;
        row(&mut out, "changes acknowledged", format!("{} ({:.0}/s)", c.acknowledged, c.per_sec));
        row(
            &mut out,
            "  by outcome",
            format!(
                "applied {}, client_won {}, server_won {}, merged {}, manual {}, invalid {}",
                c.applied, c.client_won, c.server_won, c.merged, c.manual_required, c.invalid
            ),
        );
        let p = &self.pushes;
        row(
            &mut out,
            "pushes",
            format!(
                "{} tries, {} acknowledged, {} lost, {} twice, {} reordered, {} throttled, {} replays checked",
                p.attempts,
                p.acknowledged,
                p.lost,
                p.duplicates_sent,
                p.retries_reordered,
                p.throttled,
                p.replays_checked
            ),
        );
        let l = |x: &Latency| {
            format!(
                "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                x.p50_ms, x.p95_ms, x.p99_ms, x.max_ms
            )
        };
        row(&mut out, "push latency", l(&self.push_latency));
        row(&mut out, "pull latency", l(&self.pull_latency));
        let q = &self.pulls;
        row(
            &mut out,
            "pulls",
            format!(
                "{} requests, {} records ({} as deltas, {} refetched)",
                q.requests, q.records, q.delta_records, q.delta_fallbacks
            ),
        );
        if q.streams_opened > 0 {
            row(
                &mut out,
                "live streams",
                format!("{} opened, {} batches of changes delivered", q.streams_opened, q.stream_batches),
            );
        }
        if let Some(i) = &self.initial_sync {
            row(
                &mut out,
                "initial sync",
                format!("{} records in {:.2}s ({:.0} records/s)", i.records, i.seconds, i.records_per_sec),
            );
        }
        let b = &self.bytes;
        row(
            &mut out,
            "bytes on the wire",
            format!(
                "sent {} of {} JSON, received {} of {} JSON ({:.1} % saved)",
                b.sent_wire, b.sent_json, b.received_wire, b.received_json, b.saved_pct
            ),
        );
        let _ = writeln!(out, "invariants:");
        crate::invariants::write_table(&mut out, &self.invariants);
        let _ = writeln!(out, "result: {}", if self.passed { "PASS" } else { "FAIL" });
        out
    }
}
