//! Snapshot maths: example windows, the empty window, and the laws of the numbers.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sync_metrics::{ConflictHotspot, DomainCounts, Snapshot, SyncEvent, SyncKind, percentile};
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

fn event(device: &str, success: bool, duration_ms: f64) -> SyncEvent {
    SyncEvent {
        at: T0,
        tenant: "acme".into(),
        device: device.into(),
        user: format!("user-of-{device}"),
        kind: SyncKind::Push,
        success,
        duration_ms,
        changes: 0,
        conflicts: 0,
        auto_resolved: 0,
        manual: 0,
        domains: BTreeMap::new(),
        bytes_raw: 0,
        bytes_sent: 0,
    }
}

fn counts(changes: u64, conflicts: u64) -> DomainCounts {
    DomainCounts { changes, conflicts }
}

#[test]
fn an_empty_window_is_well_defined_and_quiet() {
    let snapshot = Snapshot::from_events(&[]);
    assert_eq!(snapshot, Snapshot::default());
    assert_eq!(snapshot.total_sync_requests, 0);
    assert_eq!(snapshot.success_rate_pct, 100.0);
    assert_eq!(snapshot.conflict_rate_pct, 0.0);
    assert_eq!(snapshot.bandwidth_efficiency_pct, 0.0);
    assert_eq!(snapshot.avg_sync_duration_ms, 0.0);
    assert_eq!(snapshot.p95_sync_duration_ms, 0.0);
    assert!(snapshot.domain_breakdown.is_empty());
}

#[test]
fn a_window_adds_up() {
    let mut events = Vec::new();
    // Device a: 3 pushes of task changes, one failed, one with 2 conflicts (1 auto, 1 manual).
    let mut e = event("a", true, 100.0);
    e.changes = 10;
    e.domains.insert("task".into(), counts(10, 0));
    e.bytes_raw = 10_000;
    e.bytes_sent = 2_500;
    events.push(e);
    let mut e = event("a", false, 900.0);
    e.bytes_raw = 1_000;
    e.bytes_sent = 1_000;
    events.push(e);
    let mut e = event("a", true, 200.0);
    e.changes = 8;
    e.conflicts = 2;
    e.auto_resolved = 1;
    e.manual = 1;
    e.domains.insert("task".into(), counts(5, 1));
    e.domains.insert("ticket".into(), counts(3, 1));
    e.bytes_raw = 4_000;
    e.bytes_sent = 500;
    events.push(e);
    // Device b (another user): one pull of 2 tickets.
    let mut e = event("b", true, 300.0);
    e.kind = SyncKind::Pull;
    e.changes = 2;
    e.domains.insert("ticket".into(), counts(2, 0));
    e.bytes_raw = 5_000;
    e.bytes_sent = 6_000; // Compression can lose on a tiny body: saved is counted net.
    events.push(e);

    let s = Snapshot::from_events(&events);
    assert_eq!((s.total_sync_requests, s.successful_syncs, s.failed_syncs), (4, 3, 1));
    assert_eq!(s.success_rate_pct, 75.0);
    assert_eq!(s.avg_sync_duration_ms, 375.0);
    assert_eq!(s.p95_sync_duration_ms, 900.0);
    assert_eq!((s.total_conflicts, s.auto_resolved_conflicts, s.manual_conflicts), (2, 1, 1));
    assert_eq!(s.conflict_rate_pct, 10.0); // 2 conflicts per 20 changes
    assert_eq!(s.total_bytes_synced, 10_000);
    assert_eq!(s.bytes_saved, 10_000); // 20 000 raw − 10 000 sent
    assert_eq!(s.bandwidth_efficiency_pct, 50.0);
    assert_eq!((s.unique_devices, s.unique_users), (2, 2));
    assert_eq!(s.domain_breakdown["task"], counts(15, 1));
    assert_eq!(s.domain_breakdown["ticket"], counts(5, 1));
    assert_eq!(
        s.conflict_hotspots(5),
        [
            ConflictHotspot { domain: "task".into(), conflict_count: 1 },
            ConflictHotspot { domain: "ticket".into(), conflict_count: 1 }
        ]
    );
}

#[test]
fn the_conflict_rate_is_not_the_seeds_always_100() {
    // The seeds divided conflicts by conflicts; one conflict in 100 changes is 1 %.
    let mut e = event("a", true, 10.0);
    e.changes = 100;
    e.conflicts = 1;
    assert_eq!(Snapshot::from_events([&e]).conflict_rate_pct, 1.0);
}

#[test]
fn more_conflicts_than_changes_caps_at_100() {
    let mut e = event("a", true, 10.0);
    e.changes = 1;
    e.conflicts = 3;
    assert_eq!(Snapshot::from_events([&e]).conflict_rate_pct, 100.0);
}

#[test]
fn the_same_device_id_in_two_tenants_is_two_devices() {
    let a = event("d1", true, 1.0);
    let b = SyncEvent { tenant: "globex".into(), ..a.clone() };
    let c = a.clone();
    let s = Snapshot::from_events([&a, &b, &c]);
    assert_eq!((s.unique_devices, s.unique_users), (2, 2));
}

#[test]
fn a_window_is_half_open() {
    let events: Vec<SyncEvent> = (0..5)
        .map(|h| SyncEvent { at: T0 + time::Duration::hours(h), ..event("a", true, h as f64) })
        .collect();
    let s = Snapshot::from_window(&events, T0 + time::Duration::hours(1), T0 + time::Duration::hours(3));
    assert_eq!(s.total_sync_requests, 2);
    assert_eq!(s.avg_sync_duration_ms, 1.5);
}

#[test]
fn p95_is_nearest_rank() {
    let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&mut values, 0.95), Some(95.0));
    let mut values: Vec<f64> = (1..=20).map(f64::from).collect();
    assert_eq!(percentile(&mut values, 0.95), Some(19.0));
    assert_eq!(percentile(&mut [7.0], 0.95), Some(7.0));
    assert_eq!(percentile(&mut [], 0.95), None);
}

#[test]
fn hotspots_are_ordered_and_limited() {
    let breakdown: BTreeMap<String, DomainCounts> = [
        ("a", counts(9, 1)),
        ("b", counts(9, 7)),
        ("c", counts(9, 0)),
        ("d", counts(9, 7)),
        ("e", counts(9, 2)),
    ]
    .into_iter()
    .map(|(d, c)| (d.to_owned(), c))
    .collect();
    let names: Vec<String> =
        sync_metrics::conflict_hotspots(&breakdown, 3).into_iter().map(|h| h.domain).collect();
    assert_eq!(names, ["b", "d", "e"]);
}

#[test]
fn snapshot_serde_has_the_protocol_field_names() {
    let json = serde_json::to_value(Snapshot::default()).unwrap();
    let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = [
        "total_sync_requests",
        "successful_syncs",
        "failed_syncs",
        "avg_sync_duration_ms",
        "p95_sync_duration_ms",
        "total_conflicts",
        "auto_resolved_conflicts",
        "manual_conflicts",
        "conflict_rate_pct",
        "success_rate_pct",
        "total_bytes_synced",
        "bytes_saved",
        "bandwidth_efficiency_pct",
        "unique_devices",
        "unique_users",
        "domain_breakdown",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
}

#[test]
fn sync_event_round_trips_through_json() {
    let mut e = event("a", true, 12.5);
    e.domains.insert("task".into(), counts(3, 1));
    let json = serde_json::to_string(&e).unwrap();
    assert!(json.contains(r#""at":"2026-11-22T10:00:00Z""#));
    assert!(json.contains(r#""kind":"push""#));
    assert_eq!(serde_json::from_str::<SyncEvent>(&json).unwrap(), e);
}

fn arb_event() -> impl Strategy<Value = SyncEvent> {
    (
        0u8..4,
        0u8..4,
        any::<bool>(),
        any::<bool>(),
        0.0f64..60_000.0,
        prop::collection::btree_map("[a-c]", (0u64..50, 0u64..10), 0..3),
        0u64..1_000_000,
        0u64..1_000_000,
        0u64..5,
    )
        .prop_map(
            |(device, user, push, success, duration_ms, domains, bytes_raw, bytes_sent, manual)| {
                let domains: BTreeMap<String, DomainCounts> = domains
                    .into_iter()
                    .map(|(d, (changes, conflicts))| (d, counts(changes, conflicts.min(changes))))
                    .collect();
                let changes = domains.values().map(|c| c.changes).sum();
                let conflicts: u64 = domains.values().map(|c| c.conflicts).sum();
                let manual = manual.min(conflicts);
                SyncEvent {
                    at: T0,
                    tenant: "acme".into(),
                    device: format!("d{device}"),
                    user: format!("u{user}"),
                    kind: if push { SyncKind::Push } else { SyncKind::Pull },
                    success,
                    duration_ms,
                    changes,
                    conflicts,
                    auto_resolved: conflicts - manual,
                    manual,
                    domains,
                    bytes_raw,
                    bytes_sent,
                }
            },
        )
}

proptest! {
    #[test]
    fn percentages_are_within_range_and_consistent(events in prop::collection::vec(arb_event(), 0..60)) {
        let s = Snapshot::from_events(&events);
        for pct in [s.success_rate_pct, s.conflict_rate_pct, s.bandwidth_efficiency_pct] {
            prop_assert!((0.0..=100.0).contains(&pct), "{pct}");
        }
        prop_assert_eq!(s.total_sync_requests, events.len() as u64);
        prop_assert_eq!(s.successful_syncs + s.failed_syncs, s.total_sync_requests);
        prop_assert_eq!(s.successful_syncs, events.iter().filter(|e| e.success).count() as u64);
        if s.total_sync_requests > 0 {
            let rate = 100.0 * s.successful_syncs as f64 / s.total_sync_requests as f64;
            prop_assert!((s.success_rate_pct - rate).abs() < 1e-9);
        }
        let changes: u64 = events.iter().map(|e| e.changes).sum();
        if changes > 0 {
            let rate = 100.0 * s.total_conflicts as f64 / changes as f64;
            prop_assert!((s.conflict_rate_pct - rate).abs() < 1e-9);
        } else {
            prop_assert_eq!(s.conflict_rate_pct, 0.0);
        }
        prop_assert_eq!(s.auto_resolved_conflicts + s.manual_conflicts, s.total_conflicts);
        let raw: u64 = events.iter().map(|e| e.bytes_raw).sum();
        prop_assert_eq!(s.bytes_saved, raw.saturating_sub(s.total_bytes_synced));
        prop_assert!(s.bytes_saved <= raw);
        let breakdown_changes: u64 = s.domain_breakdown.values().map(|c| c.changes).sum();
        let breakdown_conflicts: u64 = s.domain_breakdown.values().map(|c| c.conflicts).sum();
        prop_assert_eq!(breakdown_changes, changes);
        prop_assert_eq!(breakdown_conflicts, s.total_conflicts);
        prop_assert!(s.unique_devices <= s.total_sync_requests.min(4));
        prop_assert!(s.unique_users <= s.total_sync_requests.min(4));
    }

    #[test]
    fn p95_is_an_element_of_the_window(events in prop::collection::vec(arb_event(), 1..60)) {
        let s = Snapshot::from_events(&events);
        prop_assert!(events.iter().any(|e| e.duration_ms == s.p95_sync_duration_ms));
        // Nearest rank: at least 95 % of the window is at or below it, and less than 95 % below it.
        let n = events.len() as f64;
        let at_or_below = events.iter().filter(|e| e.duration_ms <= s.p95_sync_duration_ms).count() as f64;
        let below = events.iter().filter(|e| e.duration_ms < s.p95_sync_duration_ms).count() as f64;
        prop_assert!(at_or_below >= 0.95 * n);
        prop_assert!(below < 0.95 * n);
        let min = events.iter().map(|e| e.duration_ms).fold(f64::INFINITY, f64::min);
        let max = events.iter().map(|e| e.duration_ms).fold(0.0, f64::max);
        prop_assert!(s.avg_sync_duration_ms >= min - 1e-6 && s.avg_sync_duration_ms <= max + 1e-6);
    }

    #[test]
    fn the_order_of_events_does_not_matter(mut events in prop::collection::vec(arb_event(), 0..30)) {
        let s = Snapshot::from_events(&events);
        events.reverse();
        let r = Snapshot::from_events(&events);
        prop_assert_eq!(s.p95_sync_duration_ms, r.p95_sync_duration_ms);
        prop_assert_eq!(s.domain_breakdown, r.domain_breakdown);
        prop_assert_eq!(s.total_bytes_synced, r.total_bytes_synced);
    }
}
