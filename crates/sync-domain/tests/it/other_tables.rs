//! Idempotency keys, conflicts, policies, devices, device health, events, snapshots, alerts.

use sync_domain::Database;
use sync_domain::store::{
    self, AlertRow, ConflictQuery, ConflictRow, ConflictStatus, DeviceHealthRow, DeviceRow, IdempotencyRow,
    Policy, PolicyRow, Resolution, SnapshotRow, SyncEventKind, SyncEventRow, Winner,
};

const T: &str = "tenant-a";

fn idem(key: &str, at: i64) -> IdempotencyRow {
    IdempotencyRow {
        tenant_id: T.into(),
        user_id: "u".into(),
        device_id: "d".into(),
        key: key.into(),
        request_hash: "h1".into(),
        response: r#"{"results":[]}"#.into(),
        created_at: at,
    }
}

async fn idempotency_round_trip(db: Database) {
    let get = |key: &'static str| {
        let db = db.clone();
        async move { db.run(move |c| store::get_idempotency(c, T, "u", "d", key)).await.unwrap() }
    };
    assert_eq!(get("k1").await, None);
    assert!(db.write_tx(|c| store::put_idempotency(c, &idem("k1", 100))).await.unwrap());
    assert_eq!(get("k1").await, Some(idem("k1", 100)));
    // The first response stays.
    let mut other = idem("k1", 200);
    other.response = "changed".into();
    assert!(!db.write_tx(move |c| store::put_idempotency(c, &other)).await.unwrap());
    assert_eq!(get("k1").await.unwrap().response, idem("k1", 100).response);
    // Scoped by user and device.
    assert_eq!(db.run(|c| store::get_idempotency(c, T, "u", "other", "k1")).await.unwrap(), None);
    assert_eq!(db.run(|c| store::get_idempotency(c, "tenant-b", "u", "d", "k1")).await.unwrap(), None);

    db.write_tx(|c| store::put_idempotency(c, &idem("k2", 300))).await.unwrap();
    assert_eq!(
        db.write_tx(|c| store::purge_expired_idempotency(c, Some("tenant-b"), 1_000)).await.unwrap(),
        0
    );
    assert_eq!(db.write_tx(|c| store::purge_expired_idempotency(c, Some(T), 200)).await.unwrap(), 1);
    assert_eq!(get("k1").await, None);
    assert!(get("k2").await.is_some());
    assert_eq!(db.write_tx(|c| store::purge_expired_idempotency(c, None, 1_000)).await.unwrap(), 1);
}

fn conflict(id: &str, domain: &str, at: i64, status: ConflictStatus) -> ConflictRow {
    ConflictRow {
        tenant_id: T.into(),
        id: id.into(),
        domain: domain.into(),
        mobile_id: format!("m-{id}"),
        server_version: 3,
        client_base_version: 2,
        client_version: None,
        strategy: Policy::Manual,
        result: if status == ConflictStatus::Pending {
            Resolution::ManualRequired
        } else {
            Resolution::Resolved
        },
        winner: if status == ConflictStatus::Pending { Winner::None } else { Winner::Server },
        details: "{}".into(),
        device_id: "d".into(),
        user_id: "u".into(),
        created_at: at,
        status,
        client_state: Some(r#"{"title":"client"}"#.into()),
        server_state: Some(r#"{"title":"server"}"#.into()),
        resolved_at: None,
        resolved_by: None,
    }
}

async fn conflicts_log_list_and_resolve(db: Database) {
    let rows = [
        conflict("c1", "task", 10, ConflictStatus::Pending),
        conflict("c2", "ticket", 20, ConflictStatus::Auto),
        conflict("c3", "ticket", 30, ConflictStatus::Pending),
    ];
    let first = rows[0].clone();
    db.write_tx(move |c| {
        store::insert_conflict(c, &rows[0])?;
        store::insert_conflicts(c, &rows[1..])
    })
    .await
    .unwrap();
    let ids = |rows: Vec<ConflictRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = db.run(|c| store::list_conflicts(c, T, &ConflictQuery::default())).await.unwrap();
    assert_eq!(ids(all), ["c3", "c2", "c1"]);
    let pending = db
        .run(|c| {
            store::list_conflicts(
                c,
                T,
                &ConflictQuery { status: Some(ConflictStatus::Pending), ..Default::default() },
            )
        })
        .await
        .unwrap();
    assert_eq!(ids(pending), ["c3", "c1"]);
    let recent = db
        .run(|c| {
            store::list_conflicts(
                c,
                T,
                &ConflictQuery { since: Some(20), limit: Some(1), ..Default::default() },
            )
        })
        .await
        .unwrap();
    assert_eq!(ids(recent), ["c3"]);
    let tickets = db
        .run(|c| store::list_conflicts(c, T, &ConflictQuery { domain: Some("ticket"), ..Default::default() }))
        .await
        .unwrap();
    assert_eq!(ids(tickets), ["c3", "c2"]);
    assert_eq!(db.run(|c| store::get_conflict(c, T, "c1")).await.unwrap(), Some(first));
    assert_eq!(db.run(|c| store::get_conflict(c, "tenant-b", "c1")).await.unwrap(), None);

    let resolve = |id: &'static str| {
        let db = db.clone();
        async move {
            db.write_tx(move |c| {
                store::mark_conflict_resolved(c, T, id, "admin", 50, Some(4), Winner::Client)
            })
            .await
            .unwrap()
        }
    };
    assert!(resolve("c1").await);
    assert!(!resolve("c1").await, "already resolved");
    assert!(!resolve("c2").await, "auto conflicts are not pending");
    let c1 = db.run(|c| store::get_conflict(c, T, "c1")).await.unwrap().unwrap();
    assert_eq!(c1.status, ConflictStatus::Resolved);
    assert_eq!((c1.result, c1.winner, c1.client_version), (Resolution::Resolved, Winner::Client, Some(4)));
    assert_eq!((c1.resolved_at, c1.resolved_by.as_deref()), (Some(50), Some("admin")));

    let counts = db.run(|c| store::conflict_counts_by_domain(c, T, 0)).await.unwrap();
    assert_eq!(counts, [("ticket".to_owned(), 2), ("task".to_owned(), 1)]);
    let counts = db.run(|c| store::conflict_counts_by_domain(c, T, 25)).await.unwrap();
    assert_eq!(counts, [("ticket".to_owned(), 1)]);
}

async fn policies_upsert_and_list(db: Database) {
    let policy = |domain: &str, policy: &str, at: i64| PolicyRow {
        tenant_id: T.into(),
        domain: domain.into(),
        policy: policy.into(),
        auto_resolve: true,
        notify_on_conflict: false,
        updated_at: at,
    };
    let (p1, p2) = (policy("task", "client_wins", 1), policy("journal", "manual", 2));
    db.write_tx(move |c| {
        store::upsert_policy(c, &p1)?;
        store::upsert_policy(c, &p2)
    })
    .await
    .unwrap();
    let mut changed = policy("task", "server_wins", 3);
    changed.auto_resolve = false;
    let expected = changed.clone();
    db.write_tx(move |c| store::upsert_policy(c, &changed)).await.unwrap();
    let all = db.run(|c| store::get_policies(c, T)).await.unwrap();
    assert_eq!(all, [policy("journal", "manual", 2), expected.clone()]);
    assert_eq!(db.run(|c| store::get_policy(c, T, "task")).await.unwrap(), Some(expected));
    assert!(db.run(|c| store::get_policies(c, "tenant-b")).await.unwrap().is_empty());
    assert!(db.write_tx(|c| store::delete_policy(c, T, "task")).await.unwrap());
    assert!(!db.write_tx(|c| store::delete_policy(c, T, "task")).await.unwrap());
    assert_eq!(db.run(|c| store::get_policy(c, T, "task")).await.unwrap(), None);
}

async fn devices_and_cursors(db: Database) {
    let device = DeviceRow {
        tenant_id: T.into(),
        device_id: "d1".into(),
        user_id: "u".into(),
        cursor_seq: None,
        last_seen_at: 100,
        avg_ms_per_item: Some(12.5),
    };
    let d = device.clone();
    db.write_tx(move |c| store::upsert_device(c, &d)).await.unwrap();
    assert_eq!(db.run(|c| store::get_device(c, T, "d1")).await.unwrap(), Some(device.clone()));
    assert_eq!(db.run(|c| store::oldest_active_cursor(c, T, 0)).await.unwrap(), None, "no cursor yet");

    db.write_tx(|c| {
        store::set_device_cursor(c, T, "d1", "u", 40, 200)?;
        store::set_device_cursor(c, T, "d2", "u", 10, 50)?; // inactive since 100
        store::set_device_cursor(c, T, "d3", "v", 25, 300)?;
        store::set_device_cursor(c, "tenant-b", "d4", "u", 1, 300)
    })
    .await
    .unwrap();
    let d1 = db.run(|c| store::get_device(c, T, "d1")).await.unwrap().unwrap();
    assert_eq!((d1.cursor_seq, d1.last_seen_at, d1.avg_ms_per_item), (Some(40), 200, Some(12.5)));
    assert_eq!(db.run(|c| store::oldest_active_cursor(c, T, 100)).await.unwrap(), Some(25));
    assert_eq!(db.run(|c| store::oldest_active_cursor(c, T, 0)).await.unwrap(), Some(10));
    assert_eq!(db.run(|c| store::oldest_active_cursor(c, T, 1_000)).await.unwrap(), None);
    assert_eq!(db.run(|c| store::get_device(c, "tenant-b", "d1")).await.unwrap(), None);
}

fn health(device: &str, score: f64) -> DeviceHealthRow {
    DeviceHealthRow {
        tenant_id: T.into(),
        device_id: device.into(),
        user_id: "u".into(),
        total_syncs: 10,
        failed_syncs_count: 2,
        avg_sync_duration_ms: 120.5,
        conflicts_encountered: 1,
        last_sync_at: Some(1_000),
        network_type: Some("good".into()),
        clock_skew_ms: -3_000,
        health_score: score,
    }
}

async fn device_health_upsert_and_list(db: Database) {
    db.write_tx(|c| {
        store::upsert_device_health(c, &health("d1", 90.0))?;
        store::upsert_device_health(c, &health("d2", 40.0))?;
        store::upsert_device_health(c, &health("d3", 65.0))?;
        store::upsert_device_health(
            c,
            &DeviceHealthRow { tenant_id: "tenant-b".into(), ..health("d9", 10.0) },
        )
    })
    .await
    .unwrap();
    let mut updated = health("d1", 30.0);
    updated.total_syncs = 11;
    updated.network_type = None;
    let expected = updated.clone();
    db.write_tx(move |c| store::upsert_device_health(c, &updated)).await.unwrap();
    assert_eq!(db.run(|c| store::get_device_health(c, T, "d1")).await.unwrap(), Some(expected));
    let below: Vec<_> = db
        .run(|c| store::list_device_health_below(c, Some(T), 70.0))
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.device_id)
        .collect();
    assert_eq!(below, ["d1", "d2", "d3"]);
    let everywhere = db.run(|c| store::list_device_health_below(c, None, 50.0)).await.unwrap();
    assert_eq!(everywhere.iter().map(|h| h.device_id.as_str()).collect::<Vec<_>>(), ["d9", "d1", "d2"]);
}

async fn events_snapshots_and_alerts(db: Database) {
    let event = |id: &str, at: i64, kind: SyncEventKind| SyncEventRow {
        tenant_id: T.into(),
        id: id.into(),
        at,
        device_id: "d".into(),
        user_id: "u".into(),
        kind,
        success: kind != SyncEventKind::Pull,
        duration_ms: 12.5,
        changes: 3,
        conflicts: 1,
        auto_resolved: 1,
        manual: 0,
        bytes_raw: 1_000,
        bytes_sent: 400,
        domains: r#"{"task":3}"#.into(),
    };
    let (e1, e2, e3) = (
        event("e1", 10, SyncEventKind::Push),
        event("e2", 20, SyncEventKind::Pull),
        event("e3", 30, SyncEventKind::Resolve),
    );
    let expected = vec![e2.clone(), e3.clone()];
    db.write_tx(move |c| {
        store::insert_sync_event(c, &e3)?;
        store::insert_sync_event(c, &e1)?;
        store::insert_sync_event(c, &e2)
    })
    .await
    .unwrap();
    assert_eq!(db.run(|c| store::list_sync_events(c, T, 15, None)).await.unwrap(), expected);
    assert_eq!(db.run(|c| store::list_sync_events(c, T, 0, Some(20))).await.unwrap().len(), 1);
    assert!(db.run(|c| store::list_sync_events(c, "tenant-b", 0, None)).await.unwrap().is_empty());

    let snapshot = |id: &str, at: i64| SnapshotRow {
        tenant_id: T.into(),
        id: id.into(),
        created_at: at,
        window_hours: 1,
        body: format!(r#"{{"id":"{id}"}}"#),
    };
    assert_eq!(db.run(|c| store::latest_snapshot(c, T)).await.unwrap(), None);
    db.write_tx(move |c| {
        for s in [snapshot("s2", 200), snapshot("s1", 100), snapshot("s3", 300)] {
            store::insert_snapshot(c, &s)?;
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(db.run(|c| store::latest_snapshot(c, T)).await.unwrap(), Some(snapshot("s3", 300)));
    let since: Vec<_> =
        db.run(|c| store::list_snapshots(c, T, 150)).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(since, ["s2", "s3"]);

    let alert = |id: &str, at: i64| AlertRow {
        tenant_id: T.into(),
        id: id.into(),
        snapshot_id: Some("s3".into()),
        rule: "success_rate_below".into(),
        severity: "warning".into(),
        value: 85.0,
        threshold: 90.0,
        message: "success rate 85 % is below 90 %".into(),
        created_at: at,
    };
    let (a1, a2) = (alert("a1", 10), AlertRow { snapshot_id: None, ..alert("a2", 20) });
    let expected = vec![a2.clone(), a1.clone()];
    db.write_tx(move |c| {
        store::insert_alert(c, &a1)?;
        store::insert_alert(c, &a2)
    })
    .await
    .unwrap();
    assert_eq!(db.run(|c| store::list_alerts(c, T, 0, 10)).await.unwrap(), expected);
    assert_eq!(db.run(|c| store::list_alerts(c, T, 0, 1)).await.unwrap().len(), 1);
    assert!(db.run(|c| store::list_alerts(c, T, 15, 10)).await.unwrap().iter().all(|a| a.id == "a2"));
}

sync_domain::backend_tests!(
    idempotency_round_trip,
    conflicts_log_list_and_resolve,
    policies_upsert_and_list,
    devices_and_cursors,
    device_health_upsert_and_list,
    events_snapshots_and_alerts,
);
