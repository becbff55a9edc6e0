//! The console's figures: per-minute activity, the device list and a device's recent syncs,
//! counted from real pushes and pulls.

use sync_domain::Database;
use sync_domain::engine::Identity;
use sync_domain::protocol::PullRequest;

use super::*;

async fn activity_counts_the_recorded_syncs(db: Database) {
    let engine = engine(db);
    let boss = admin("acme");
    let empty = engine.activity(&boss, 60).await.unwrap();
    assert_eq!((empty.active_devices_15m, empty.summary.syncs, empty.buckets.len()), (0, 0, 60));

    let ann = device("acme", "ann");
    let bob = device("acme", "bob");
    push(&engine, &ann, "d-ann", "k1", vec![upsert("task", id(1), 0, task("T", "ASSIGNED"), 0)]).await;
    push(&engine, &bob, "d-bob", "k1", vec![upsert("task", id(1), 1, task("Bob", "ASSIGNED"), 5)]).await;
    // Ann edits the version Bob changed: one conflict.
    push(&engine, &ann, "d-ann", "k2", vec![upsert("task", id(1), 1, task("Ann", "ASSIGNED"), 9)]).await;
    engine
        .pull(&ann, PullRequest { device_id: Some("d-ann".into()), ..Default::default() }, &Identity)
        .await
        .unwrap();
    // Another tenant's syncs are not counted.
    let eve = device("evil", "eve");
    push(&engine, &eve, "d-eve", "k1", vec![upsert("task", id(1), 0, task("E", "ASSIGNED"), 0)]).await;

    let activity = engine.activity(&boss, 60).await.unwrap();
    assert_eq!(activity.minutes, 60);
    assert_eq!(activity.buckets.len(), 60);
    assert_eq!(activity.active_devices_15m, 2);
    let s = &activity.summary;
    assert_eq!((s.syncs, s.failed, s.conflicts, s.devices), (4, 0, 1, 2));
    assert!((s.syncs_per_minute - 4.0 / 60.0).abs() < 1e-9);
    assert!((s.success_rate_pct - 100.0).abs() < 1e-9, "{}", s.success_rate_pct);
    assert!(s.changes >= 3 && s.conflict_rate_pct > 0.0);
    assert!(s.p95_sync_duration_ms > 0.0);
    // The buckets add up to the summary, and the syncs are in the last minutes.
    assert_eq!(activity.buckets.iter().map(|b| b.syncs).sum::<u64>(), 4);
    assert_eq!(activity.buckets.iter().map(|b| b.failed).sum::<u64>(), 0);
    assert_eq!(activity.buckets.iter().map(|b| b.conflicts).sum::<u64>(), 1);
    assert!(activity.buckets.last().unwrap().syncs + activity.buckets[58].syncs == 4);
    assert!(activity.buckets.first().unwrap().success_rate_pct.is_none());
    assert!(activity.buckets.windows(2).all(|w| w[1].start - w[0].start == time::Duration::MINUTE));

    assert_eq!(engine.activity(&ann, 60).await.unwrap_err().http_status(), 403);
    assert_eq!(engine.activity(&boss, 0).await.unwrap_err().http_status(), 400);
    assert_eq!(engine.activity(&boss, 1441).await.unwrap_err().http_status(), 400);
    assert_eq!(engine.activity(&boss, 1440).await.unwrap().buckets.len(), 1440);
}

async fn devices_are_listed_worst_first_with_their_syncs(db: Database) {
    let engine = engine(db);
    let boss = admin("acme");
    assert!(engine.device_list(&boss, None).await.unwrap().devices.is_empty());
    let ann = device("acme", "ann");
    let bob = device("acme", "bob");
    push(&engine, &ann, "d-ann", "k1", vec![upsert("task", id(1), 0, task("T", "ASSIGNED"), 0)]).await;
    push(&engine, &bob, "d-bob", "k1", vec![upsert("task", id(1), 1, task("Bob", "ASSIGNED"), 5)]).await;
    // Ann's second push meets Bob's change: her health falls below Bob's.
    push(&engine, &ann, "d-ann", "k2", vec![upsert("task", id(1), 1, task("Ann", "ASSIGNED"), 9)]).await;
    let eve = device("evil", "eve");
    push(&engine, &eve, "d-eve", "k1", vec![upsert("task", id(1), 0, task("E", "ASSIGNED"), 0)]).await;

    let list = engine.device_list(&boss, None).await.unwrap();
    assert_eq!(list.health_threshold, 70.0);
    let ids: Vec<_> = list.devices.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, ["d-ann", "d-bob"], "the device with conflicts first, no other tenant's");
    assert!(list.devices[0].health_score < list.devices[1].health_score);
    assert_eq!(engine.device_list(&boss, Some(1)).await.unwrap().devices.len(), 1);
    assert_eq!(engine.device_list(&boss, Some(0)).await.unwrap_err().http_status(), 400);
    assert_eq!(engine.device_list(&ann, None).await.unwrap_err().http_status(), 403);

    let syncs = engine.device_syncs(&boss, "d-ann", None).await.unwrap();
    assert_eq!(syncs.syncs.len(), 2);
    assert!(syncs.syncs.iter().all(|s| s.kind == "push" && s.success && s.changes == 1));
    assert!(syncs.syncs[0].at >= syncs.syncs[1].at, "newest first");
    assert_eq!((syncs.syncs[0].conflicts, syncs.syncs[1].conflicts), (1, 0));
    let bob_syncs = engine.device_syncs(&boss, "d-bob", Some(5)).await.unwrap();
    assert_eq!(bob_syncs.syncs.len(), 1);
    assert_eq!(engine.device_syncs(&boss, "d-ann", Some(1)).await.unwrap().syncs.len(), 1);
    // Another tenant's device has no history here.
    assert!(engine.device_syncs(&boss, "d-eve", None).await.unwrap().syncs.is_empty());
    assert_eq!(engine.device_syncs(&boss, "", None).await.unwrap_err().http_status(), 400);
    assert_eq!(engine.device_syncs(&boss, "d-ann", Some(201)).await.unwrap_err().http_status(), 400);
    assert_eq!(engine.device_syncs(&ann, "d-ann", None).await.unwrap_err().http_status(), 403);
}

sync_domain::backend_tests!(
    activity_counts_the_recorded_syncs,
    devices_are_listed_worst_first_with_their_syncs
);
