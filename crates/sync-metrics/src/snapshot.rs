//! Snapshot maths: what a window of sync events adds up to (protocol section 7).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::SyncKind;
use crate::health::sanitize_ms;
use crate::histogram::nearest_rank;

/// Changes and conflicts of one domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainCounts {
    pub changes: u64,
    pub conflicts: u64,
}

impl DomainCounts {
    fn add(&mut self, other: DomainCounts) {
        self.changes = self.changes.saturating_add(other.changes);
        self.conflicts = self.conflicts.saturating_add(other.conflicts);
    }
}

/// One push or pull by one device, as the engine logs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub tenant: String,
    pub device: String,
    pub user: String,
    pub kind: SyncKind,
    pub success: bool,
    pub duration_ms: f64,
    /// Records synced.
    pub changes: u64,
    pub conflicts: u64,
    pub auto_resolved: u64,
    pub manual: u64,
    /// Changes and conflicts per domain.
    #[serde(default)]
    pub domains: BTreeMap<String, DomainCounts>,
    /// What would have been sent uncompressed and as full records.
    pub bytes_raw: u64,
    /// What went on the wire.
    pub bytes_sent: u64,
}

/// What a window of sync events adds up to; field names as protocol section 7 lists them.
///
/// Rates of an empty denominator are chosen so that an empty window raises no alert:
/// `success_rate_pct` is 100 with no requests (none failed), `conflict_rate_pct` is 0 with no
/// changes, `bandwidth_efficiency_pct` is 0 with nothing to send, the durations are 0. The counts
/// (`total_sync_requests` = 0) say that the window was empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct Snapshot {
    pub total_sync_requests: u64,
    pub successful_syncs: u64,
    pub failed_syncs: u64,
    /// Mean over every request of the window, successful or not.
    pub avg_sync_duration_ms: f64,
    /// Nearest-rank 95th percentile: the duration of one request of the window.
    pub p95_sync_duration_ms: f64,
    pub total_conflicts: u64,
    pub auto_resolved_conflicts: u64,
    pub manual_conflicts: u64,
    /// Conflicts per synced change, in % (capped at 100 should the input hold more conflicts
    /// than changes).
    pub conflict_rate_pct: f64,
    pub success_rate_pct: f64,
    /// Bytes that went on the wire.
    pub total_bytes_synced: u64,
    /// Bytes that compression and deltas saved: raw bytes − bytes sent, not below 0.
    pub bytes_saved: u64,
    /// `bytes_saved` over the raw bytes, in %.
    pub bandwidth_efficiency_pct: f64,
    pub unique_devices: u64,
    pub unique_users: u64,
    /// By domain name.
    pub domain_breakdown: BTreeMap<String, DomainCounts>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::from_events(std::iter::empty::<&SyncEvent>())
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { (100.0 * part as f64 / whole as f64).clamp(0.0, 100.0) }
}

impl Snapshot {
    /// The snapshot of the events of `[from, to)`.
    pub fn from_window<'a>(
        events: impl IntoIterator<Item = &'a SyncEvent>,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Self {
        Self::from_events(events.into_iter().filter(|event| from <= event.at && event.at < to))
    }

    /// The snapshot of these events, whatever their times.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a SyncEvent>) -> Self {
        let mut total = 0u64;
        let mut successful = 0u64;
        let mut durations = Vec::new();
        let mut changes = 0u64;
        let mut conflicts = 0u64;
        let mut auto_resolved = 0u64;
        let mut manual = 0u64;
        let mut bytes_raw = 0u64;
        let mut bytes_sent = 0u64;
        // Per tenant: ids are only unique within their tenant.
        let mut devices = BTreeSet::new();
        let mut users = BTreeSet::new();
        let mut domain_breakdown: BTreeMap<String, DomainCounts> = BTreeMap::new();

        for event in events {
            total += 1;
            successful += u64::from(event.success);
            durations.push(sanitize_ms(event.duration_ms));
            changes = changes.saturating_add(event.changes);
            conflicts = conflicts.saturating_add(event.conflicts);
            auto_resolved = auto_resolved.saturating_add(event.auto_resolved);
            manual = manual.saturating_add(event.manual);
            bytes_raw = bytes_raw.saturating_add(event.bytes_raw);
            bytes_sent = bytes_sent.saturating_add(event.bytes_sent);
            devices.insert((event.tenant.as_str(), event.device.as_str()));
            users.insert((event.tenant.as_str(), event.user.as_str()));
            for (domain, counts) in &event.domains {
                domain_breakdown.entry(domain.clone()).or_default().add(*counts);
            }
        }

        let avg =
            if durations.is_empty() { 0.0 } else { durations.iter().sum::<f64>() / durations.len() as f64 };
        let bytes_saved = bytes_raw.saturating_sub(bytes_sent);
        Snapshot {
            total_sync_requests: total,
            successful_syncs: successful,
            failed_syncs: total - successful,
            avg_sync_duration_ms: avg,
            p95_sync_duration_ms: percentile(&mut durations, 0.95).unwrap_or(0.0),
            total_conflicts: conflicts,
            auto_resolved_conflicts: auto_resolved,
            manual_conflicts: manual,
            conflict_rate_pct: pct(conflicts, changes),
            success_rate_pct: if total == 0 { 100.0 } else { pct(successful, total) },
            total_bytes_synced: bytes_sent,
            bytes_saved,
            bandwidth_efficiency_pct: pct(bytes_saved, bytes_raw),
            unique_devices: devices.len() as u64,
            unique_users: users.len() as u64,
            domain_breakdown,
        }
    }

    /// The domains with the most conflicts, most first (ties by name), at most `limit`, leaving
    /// out domains without conflicts (the dashboard's `conflict_hotspots`).
    pub fn conflict_hotspots(&self, limit: usize) -> Vec<ConflictHotspot> {
        conflict_hotspots(&self.domain_breakdown, limit)
    }
}

/// Nearest-rank percentile (`q` in 0..=1): an element of `values`, `None` if it is empty.
/// Sorts `values` in place.
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let rank = nearest_rank(q, values.len() as u64);
    usize::try_from(rank - 1).ok().and_then(|i| values.get(i)).copied()
}

/// A domain and its conflicts, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct ConflictHotspot {
    pub domain: String,
    pub conflict_count: u64,
}

/// The top `limit` domains by conflicts of a breakdown (or of several summed), most first.
pub fn conflict_hotspots(breakdown: &BTreeMap<String, DomainCounts>, limit: usize) -> Vec<ConflictHotspot> {
    let mut hotspots: Vec<ConflictHotspot> = breakdown
        .iter()
        .filter(|(_, counts)| counts.conflicts > 0)
        .map(|(domain, counts)| ConflictHotspot { domain: domain.clone(), conflict_count: counts.conflicts })
        .collect();
    hotspots.sort_by(|a, b| b.conflict_count.cmp(&a.conflict_count).then_with(|| a.domain.cmp(&b.domain)));
    hotspots.truncate(limit);
    hotspots
}
