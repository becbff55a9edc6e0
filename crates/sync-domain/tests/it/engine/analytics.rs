//! Analytics: device health from real syncs, snapshots, alerts, the dashboard.

use serde_json::json;
use sync_domain::Database;
use sync_domain::engine::Identity;
use sync_domain::engine::{FailedSync, WireBytes};
use sync_domain::store::SyncEventKind;

use super::*;

async fn syncs_feed_health_snapshots_and_the_dashboard(db: Database) {
    let engine = engine(db);
    let ann = device("acme", "ann");
    let bob = device("acme", "bob");
    push(&engine, &ann, "d-ann", "k1", vec![upsert("task", id(1), 0, task("T", "ASSIGNED"), 0)]).await;
    push(&engine, &bob, "d-bob", "k1", vec![upsert("task", id(1), 1, task("Bob", "ASSIGNED"), 5)]).await;
    push(
        &engine,
        &ann,
        "d-ann",
        "k2",
        vec![
            upsert("task", id(1), 1, task("Ann", "ASSIGNED"), 9),
            upsert("journal", id(2), 0, json!({"title": "J"}), 9),
        ],
    )
    .await;
    engine
        .pull(
            &ann,
            sync_domain::protocol::PullRequest { device_id: Some("d-ann".into()), ..Default::default() },
            &Identity,
        )
        .await
        .unwrap();

    // A refused push (its key reused for another request) is a failed sync of the device,
    // recorded although its transaction rolled back.
    let reused = sync_domain::protocol::PushRequest {
        device_id: "d-ann".into(),
        client_time: None,
        changes: vec![upsert("journal", id(3), 0, json!({"title": "other"}), 10)],
    };
    assert_eq!(engine.push(&ann, "k2", reused, None).await.unwrap_err().http_status(), 422);

    let health = engine.device_health(&ann, "d-ann").await.unwrap();
    assert_eq!((health.total_syncs, health.failed_syncs_count, health.conflicts_encountered), (4, 1, 1));
    // 60 × 3/4 + 20 (just synced) + (20 − 20 × 1/4).
    assert!((health.health_score - 80.0).abs() < 0.1, "{}", health.health_score);
    assert_eq!(engine.device_health(&bob, "d-ann").await.unwrap_err().http_status(), 403);
    assert_eq!(engine.device_health(&admin("acme"), "d-ann").await.unwrap().device_id, "d-ann");
    assert_eq!(engine.device_health(&admin("evil"), "d-ann").await.unwrap_err().http_status(), 404);

    let boss = admin("acme");
    assert_eq!(engine.snapshot_for(&ann, 1).await.unwrap_err().http_status(), 403);
    let created = engine.snapshot_for(&boss, 1).await.unwrap();
    assert_eq!(created.status, "created");
    let dashboard = engine.dashboard(&boss).await.unwrap();
    let latest = dashboard.latest_snapshot.unwrap();
    assert_eq!(latest.snapshot_id, created.snapshot_id);
    let s = &latest.snapshot;
    assert_eq!((s.total_sync_requests, s.successful_syncs, s.failed_syncs), (5, 4, 1));
    assert!((s.success_rate_pct - 80.0).abs() < 1e-6, "{}", s.success_rate_pct);
    assert_eq!(s.total_conflicts, 1);
    assert_eq!(s.unique_devices, 2);
    assert_eq!(s.unique_users, 2);
    // 1 conflict among 4 pushed changes and 2 pulled records.
    assert!((s.conflict_rate_pct - 100.0 / 6.0).abs() < 1e-6, "{}", s.conflict_rate_pct);
    assert_eq!(dashboard.trend_7days.len(), 1);
    assert_eq!(dashboard.conflict_hotspots.len(), 1);
    assert_eq!(
        (dashboard.conflict_hotspots[0].domain.as_str(), dashboard.conflict_hotspots[0].conflict_count),
        ("task", 1)
    );
    assert!(dashboard.unhealthy_devices.is_empty());
    // A conflict rate above 10 % and a success rate below 90 % raise alerts on the snapshot.
    assert!(dashboard.alerts.iter().any(|a| a.rule == "high_conflict_rate"), "{:?}", dashboard.alerts);
    assert!(dashboard.alerts.iter().any(|a| a.rule == "low_success_rate"), "{:?}", dashboard.alerts);
    assert_eq!(engine.dashboard(&ann).await.unwrap_err().http_status(), 403);
    assert!(engine.check_device_health(70.0).await.unwrap().is_empty());
    let report = engine.conflict_report(7).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!((report[0].domain.as_str(), report[0].conflict_count), ("task", 1));
}

/// Every refused or failed push, pull and partial sync of an authenticated device counts:
/// in `failed_syncs`, in the device's health and in the `low_success_rate` alert.
async fn refused_syncs_are_failed_syncs_of_their_device(db: Database) {
    let engine = engine(db);
    let ann = device("acme", "ann");
    let boss = admin("acme");
    push(&engine, &ann, "d-ann", "k1", vec![upsert("task", id(1), 0, task("T", "ASSIGNED"), 0)]).await;
    let healthy = engine.device_health(&ann, "d-ann").await.unwrap().health_score;

    // Too many changes (413), a bad key (400), a pull with a cursor the server never made
    // (400), a partial sync asking for nothing (400), and one the API refused before the
    // engine saw it (rate limited: recorded by the API through `record_failed_sync`).
    let many: Vec<_> =
        (0..501).map(|n| upsert("journal", id(100 + n), 0, json!({"title": "x"}), 1)).collect();
    let too_large = PushRequest { device_id: "d-ann".into(), client_time: None, changes: many };
    assert_eq!(engine.push(&ann, "k2", too_large, None).await.unwrap_err().http_status(), 413);
    let bad_key = PushRequest { device_id: "d-ann".into(), client_time: None, changes: vec![] };
    assert_eq!(engine.push(&ann, "bad key", bad_key, None).await.unwrap_err().http_status(), 400);
    let bad_cursor = PullRequest {
        cursor: Some("garbage".into()),
        device_id: Some("d-ann".into()),
        ..PullRequest::default()
    };
    assert_eq!(engine.pull(&ann, bad_cursor, &Identity).await.unwrap_err().http_status(), 400);
    let nothing = sync_domain::protocol::PartialSyncRequest {
        device_id: "d-ann".into(),
        priority: sync_model::Priority::High,
        max_items: Some(0),
        network_quality: None,
    };
    assert_eq!(engine.partial_sync(&ann, nothing).await.unwrap_err().http_status(), 400);
    let limited = FailedSync {
        device_id: "d-ann".into(),
        kind: SyncEventKind::Push,
        duration: std::time::Duration::from_millis(2),
        wire: WireBytes { raw: 300, sent: 120 },
        network: Some("poor".into()),
    };
    engine.record_failed_sync(&ann, limited).await.unwrap();
    // A request that names no valid device is nobody's failure.
    let nameless = FailedSync { device_id: String::new(), ..dummy_failure() };
    engine.record_failed_sync(&ann, nameless).await.unwrap();

    let health = engine.device_health(&ann, "d-ann").await.unwrap();
    assert_eq!((health.total_syncs, health.failed_syncs_count), (6, 5));
    assert_eq!(health.network_type.as_deref(), Some("poor"));
    assert!(health.health_score < healthy - 40.0, "{healthy} → {}", health.health_score);

    boss_snapshot_shows(&engine, &boss, (6, 1, 5)).await;
    let dashboard = engine.dashboard(&boss).await.unwrap();
    assert!(dashboard.alerts.iter().any(|a| a.rule == "low_success_rate"), "{:?}", dashboard.alerts);

    // The failed events carry what arrived: the rate-limited push's bytes, and nothing else.
    let events = engine
        .database()
        .run(|conn| sync_domain::store::list_sync_events(conn, "acme", 0, None))
        .await
        .unwrap();
    let failed: Vec<_> = events.iter().filter(|e| !e.success).collect();
    assert_eq!(failed.len(), 5);
    assert!(failed.iter().all(|e| e.device_id == "d-ann" && e.user_id == "ann" && e.changes == 0));
    let kinds: Vec<_> = failed.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            SyncEventKind::Push,
            SyncEventKind::Push,
            SyncEventKind::Pull,
            SyncEventKind::Partial,
            SyncEventKind::Push
        ]
    );
    assert_eq!((failed[4].bytes_raw, failed[4].bytes_sent), (300, 120));
}

fn dummy_failure() -> FailedSync {
    FailedSync {
        device_id: "d".into(),
        kind: SyncEventKind::Pull,
        duration: std::time::Duration::ZERO,
        wire: WireBytes::default(),
        network: None,
    }
}

async fn boss_snapshot_shows(engine: &SyncEngine, boss: &Principal, (total, ok, failed): (u64, u64, u64)) {
    engine.snapshot_for(boss, 1).await.unwrap();
    let s = engine.dashboard(boss).await.unwrap().latest_snapshot.unwrap().snapshot;
    assert_eq!((s.total_sync_requests, s.successful_syncs, s.failed_syncs), (total, ok, failed));
}

/// A partial sync is a sync of its device; pulls measure the device's time per item, which
/// queue-status then uses instead of the 150 ms fallback.
async fn partial_syncs_count_and_queue_estimates_follow_measured_time(db: Database) {
    let engine = engine(db);
    let ann = device("acme", "ann");
    let bob = device("acme", "bob");
    let boss = admin("acme");
    let changes: Vec<_> = (0..30).map(|n| upsert("task", id(n), 0, task("T", "ASSIGNED"), 0)).collect();
    push(&engine, &bob, "d-bob", "k1", changes).await;

    // Never measured: the protocol's fallback of 150 ms per item.
    let status = engine.queue_status(&ann, "d-ann").await.unwrap();
    assert_eq!(status.pending_items, 30);
    assert!((status.estimated_sync_time_sec - 30.0 * 0.150).abs() < 1e-9, "{status:?}");

    let partial = sync_domain::protocol::PartialSyncRequest {
        device_id: "d-ann".into(),
        priority: sync_model::Priority::Low,
        max_items: Some(5),
        network_quality: Some("good".into()),
    };
    let response = engine.partial_sync(&ann, partial).await.unwrap();
    assert_eq!(response.synced_items.len(), 5);
    let after_partial = measured(&engine, "d-ann").await;
    assert!(after_partial.is_some_and(|ms| ms > 0.0 && ms < 150.0), "{after_partial:?}");

    let pull = PullRequest { device_id: Some("d-ann".into()), limit: Some(10), ..PullRequest::default() };
    let page = engine.pull(&ann, pull, &Gzip).await.unwrap();
    assert_eq!(page.changes, 10);
    let ms = measured(&engine, "d-ann").await.unwrap();
    assert_ne!(Some(ms), after_partial, "the pull was folded into the average");

    let status = engine.queue_status(&ann, "d-ann").await.unwrap();
    assert_eq!(status.pending_items, 20);
    let expected = (20.0 * ms / 1000.0 * 1000.0).round() / 1000.0;
    assert!((status.estimated_sync_time_sec - expected).abs() < 1e-9, "{status:?} vs {ms} ms per item");

    let health = engine.device_health(&ann, "d-ann").await.unwrap();
    assert_eq!((health.total_syncs, health.failed_syncs_count), (2, 0));
    assert_eq!(health.network_type.as_deref(), Some("good"));
    boss_snapshot_shows(&engine, &boss, (3, 3, 0)).await;

    // The pull's bytes are the body as sent, and raw the JSON before compression.
    let events = engine
        .database()
        .run(|conn| sync_domain::store::list_sync_events(conn, "acme", 0, None))
        .await
        .unwrap();
    let pulled = events.iter().find(|e| e.kind == SyncEventKind::Pull).unwrap();
    assert_eq!(pulled.bytes_sent, page.body.len() as i64);
    assert_eq!(pulled.bytes_raw, page.json_len as i64);
    assert_eq!(pulled.changes, 10);
    let partial = events.iter().find(|e| e.kind == SyncEventKind::Partial).unwrap();
    assert_eq!((partial.changes, partial.success), (5, true));
}

async fn measured(engine: &SyncEngine, device: &str) -> Option<f64> {
    let device = device.to_owned();
    engine
        .database()
        .run(move |conn| sync_domain::store::get_device(conn, "acme", &device))
        .await
        .unwrap()
        .and_then(|d| d.avg_ms_per_item)
}

/// A push counts the bytes the transport says arrived.
async fn pushes_count_the_bytes_on_the_wire(db: Database) {
    let engine = engine(db);
    let ann = device("acme", "ann");
    let request = PushRequest {
        device_id: "d-ann".into(),
        client_time: None,
        changes: vec![upsert("task", id(1), 0, task("T", "ASSIGNED"), 0)],
    };
    let wire = WireBytes { raw: 4096, sent: 1024 };
    engine.push_from_wire(&ann, "k1", request, None, wire).await.unwrap();
    let events = engine
        .database()
        .run(|conn| sync_domain::store::list_sync_events(conn, "acme", 0, None))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].bytes_raw, events[0].bytes_sent, events[0].success), (4096, 1024, true));
}

sync_domain::backend_tests!(
    syncs_feed_health_snapshots_and_the_dashboard,
    refused_syncs_are_failed_syncs_of_their_device,
    partial_syncs_count_and_queue_estimates_follow_measured_time,
    pushes_count_the_bytes_on_the_wire,
);

/// Gzip by the protocol's default rules, as the API encodes a pull for a client that accepts it.
struct Gzip;

impl sync_domain::engine::BodyEncoding for Gzip {
    fn encode(&self, json: Vec<u8>) -> sync_domain::Result<(Vec<u8>, Option<&'static str>)> {
        let compressed = sync_bandwidth::CompressionConfig::default()
            .compress_as(json, sync_bandwidth::Encoding::Gzip)
            .map_err(|e| sync_domain::Error::Internal(e.to_string()))?;
        let encoding = compressed.content_encoding();
        Ok((compressed.body, encoding))
    }
}
