//! Analytics: device health from real syncs, snapshots, alerts, the dashboard.

use serde_json::json;
use sync_domain::Database;

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
            false,
        )
        .await
        .unwrap();

    let health = engine.device_health(&ann, "d-ann").await.unwrap();
    assert_eq!((health.total_syncs, health.failed_syncs_count, health.conflicts_encountered), (3, 0, 1));
    assert!(health.health_score > 90.0 && health.health_score <= 100.0, "{}", health.health_score);
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
    assert_eq!((s.total_sync_requests, s.successful_syncs, s.failed_syncs), (4, 4, 0));
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
    // A conflict rate above 10 % raises an alert on the snapshot.
    assert!(dashboard.alerts.iter().any(|a| a.rule == "high_conflict_rate"), "{:?}", dashboard.alerts);
    assert_eq!(engine.dashboard(&ann).await.unwrap_err().http_status(), 403);
    assert!(engine.check_device_health(70.0).await.unwrap().is_empty());
    let report = engine.conflict_report(7).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!((report[0].domain.as_str(), report[0].conflict_count), ("task", 1));
}

sync_domain::backend_tests!(syncs_feed_health_snapshots_and_the_dashboard);
