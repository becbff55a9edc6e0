//! Push: outcomes, idempotency, validation, workflows, patches, atomicity.

use std::sync::Arc;

use serde_json::json;
use sync_domain::{Database, Error, protocol::PushRequest};

use super::*;

async fn applies_new_records_and_versions_changes(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    let r = push(
        &engine,
        &me,
        "d1",
        "k1",
        vec![
            upsert("task", id(1), 0, task("Check pump", "ASSIGNED"), 0),
            upsert("journal", id(2), 0, json!({"title": "Day 1", "mood": 3}), 0),
        ],
    )
    .await;
    assert_eq!(outcomes(&r), ["applied", "applied"]);
    assert_eq!(r.results[0].version, Some(1));
    let r =
        push(&engine, &me, "d1", "k2", vec![upsert("task", id(1), 1, task("Check pump", "INPROGRESS"), 1)])
            .await;
    assert_eq!(outcomes(&r), ["applied"]);
    assert_eq!(r.results[0].version, Some(2));
    // Repeating the stored state is not a change.
    let r =
        push(&engine, &me, "d1", "k3", vec![upsert("task", id(1), 2, task("Check pump", "INPROGRESS"), 2)])
            .await;
    assert_eq!(outcomes(&r), ["applied"]);
    assert_eq!(r.results[0].version, Some(2));
}

async fn replays_a_key_and_refuses_it_for_another_body(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    let request = PushRequest {
        device_id: "d1".into(),
        client_time: None,
        changes: vec![upsert("task", id(1), 0, task("A", "ASSIGNED"), 0)],
    };
    let first = engine.push(&me, "key-1", request.clone(), None).await.unwrap();
    assert!(!first.replayed);
    let again = engine.push(&me, "key-1", request.clone(), None).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.body, first.body, "replay is byte for byte");
    let (records, _) = pull_all(&engine, &me, None, false).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].version, 1, "the replay wrote nothing");
    // A retry says when it was sent: a fresh client_time is still the same request.
    let mut retry = request.clone();
    retry.client_time = Some(time::OffsetDateTime::now_utc());
    let retried = engine.push(&me, "key-1", retry, None).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.body, first.body);

    let mut other = request.clone();
    other.changes[0].data = Some(task("B", "ASSIGNED"));
    let err = engine.push(&me, "key-1", other, None).await.unwrap_err();
    assert!(matches!(err, Error::IdempotencyKeyReused), "{err:?}");
    assert_eq!(err.http_status(), 422);
    // The same key from another device is another key.
    let mut elsewhere = request;
    elsewhere.device_id = "d2".into();
    assert!(!engine.push(&me, "key-1", elsewhere, None).await.unwrap().replayed);
}

async fn one_bad_item_never_blocks_the_others(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    push(
        &engine,
        &me,
        "d1",
        "k0",
        vec![upsert("ticket", id(9), 0, json!({"title": "Leak", "status": "NEW"}), 0)],
    )
    .await;
    // NEW → OPEN → CANCELLED, legal offline; CANCELLED is terminal.
    push(
        &engine,
        &me,
        "d1",
        "k0b",
        vec![upsert("ticket", id(9), 1, json!({"title": "Leak", "status": "CANCELLED"}), 0)],
    )
    .await;
    let r = push(
        &engine,
        &me,
        "d1",
        "k1",
        vec![
            upsert("task", id(1), 0, task("", "ASSIGNED"), 0),
            upsert("task", id(2), 0, task("Fine", "COMPLETED"), 0),
            upsert("ticket", id(9), 2, json!({"title": "Leak", "status": "OPEN"}), 1),
            upsert("nope", id(3), 0, json!({}), 0),
            upsert(
                "attendance",
                id(4),
                0,
                json!({"status": "PENDING", "location": {"lat": 91, "lng": 0}}),
                0,
            ),
            upsert("voice_note", id(5), 0, json!({"title": "Memo", "duration_ms": -5}), 0),
            upsert("task", id(6), 0, task("Good", "ASSIGNED"), 0),
        ],
    )
    .await;
    assert_eq!(outcomes(&r), ["invalid", "invalid", "invalid", "invalid", "invalid", "invalid", "applied"]);
    let code = |i: usize| r.results[i].error.as_ref().unwrap().code.clone();
    let message = |i: usize| r.results[i].error.as_ref().unwrap().message.clone();
    assert_eq!((code(0), message(0)), ("validation".into(), "data.title: must not be empty".into()));
    assert_eq!(code(1), "invalid_transition", "a new task starts ASSIGNED");
    assert_eq!(
        (code(2), message(2)),
        ("invalid_transition".into(), "ticket: CANCELLED cannot reach OPEN through legal steps".into())
    );
    assert_eq!(code(3), "unknown_domain");
    assert_eq!(message(4), "data.location.lat: must be between -90 and 90");
    assert!(message(5).starts_with("data.duration_ms:"), "{}", message(5));
}

async fn offline_moves_follow_the_reachability_rule(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    push(&engine, &me, "d1", "k1", vec![upsert("task", id(1), 0, task("T", "ASSIGNED"), 0)]).await;
    // Offline, the technician started and finished: legal through INPROGRESS.
    let r = push(&engine, &me, "d1", "k2", vec![upsert("task", id(1), 1, task("T", "COMPLETED"), 1)]).await;
    assert_eq!(outcomes(&r), ["applied"]);
}

async fn patches_apply_to_their_base_version(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    let other = device("acme", "bob");
    push(
        &engine,
        &me,
        "d1",
        "k1",
        vec![upsert("task", id(1), 0, json!({"title": "T", "status": "ASSIGNED", "description": "a"}), 0)],
    )
    .await;
    push(
        &engine,
        &other,
        "d2",
        "k1",
        vec![upsert("task", id(1), 1, json!({"title": "T2", "status": "ASSIGNED", "description": "a"}), 5)],
    )
    .await;
    // ann patches version 1 (old base): the patch applies to version 1, then field-level
    // resolution (most_recent_wins for task) decides against version 2.
    let r = push(
        &engine,
        &me,
        "d1",
        "k2",
        vec![patch("task", id(1), 1, json!([{"op": "replace", "path": "/description", "value": "b"}]), 9)],
    )
    .await;
    assert_eq!(outcomes(&r), ["client_won"]);
    let (records, _) = pull_all(&engine, &me, None, false).await;
    assert_eq!(records[0].data, Some(json!({"title": "T", "status": "ASSIGNED", "description": "b"})));
    assert_eq!(records[0].version, 3);
    // A patch that fails is invalid and changes nothing.
    let r = push(
        &engine,
        &me,
        "d1",
        "k3",
        vec![patch("task", id(1), 3, json!([{"op": "remove", "path": "/nope"}]), 10)],
    )
    .await;
    assert_eq!(r.results[0].error.as_ref().unwrap().code, "invalid_patch");
    // A patch of a record the server never saw.
    let r = push(&engine, &me, "d1", "k4", vec![patch("task", id(2), 1, json!([]), 10)]).await;
    assert_eq!(r.results[0].error.as_ref().unwrap().code, "not_found");
}

async fn several_changes_to_one_record_in_one_push(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    let r = push(
        &engine,
        &me,
        "d1",
        "k1",
        vec![
            upsert("task", id(1), 0, task("T", "ASSIGNED"), 0),
            patch("task", id(1), 1, json!([{"op": "replace", "path": "/status", "value": "INPROGRESS"}]), 1),
            delete("task", id(1), 2, 2),
        ],
    )
    .await;
    assert_eq!(outcomes(&r), ["applied", "applied", "applied"]);
    assert_eq!(r.results.iter().map(|r| r.version.unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    let (records, _) = pull_all(&engine, &me, None, false).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].deleted);
    assert_eq!(records[0].version, 3);
}

async fn a_failing_push_leaves_nothing_and_its_retry_succeeds(db: Database) {
    let healthy = engine(db);
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = Arc::clone(&fail);
    let faulty = healthy.clone().with_fault(Arc::new(move |_: &PushRequest| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Err(Error::Internal("injected failure after the records were written".into()))
        } else {
            Ok(())
        }
    }));
    let me = device("acme", "ann");
    let request = PushRequest {
        device_id: "d1".into(),
        client_time: None,
        changes: vec![
            upsert("task", id(1), 0, task("A", "ASSIGNED"), 0),
            upsert("task", id(2), 0, task("B", "ASSIGNED"), 0),
        ],
    };
    assert!(faulty.push(&me, "k1", request.clone(), None).await.is_err());
    let (records, cursor) = pull_all(&healthy, &me, None, false).await;
    assert!(records.is_empty(), "nothing of the failed push is visible");
    assert_eq!(cursor, "c1.0", "no sequence number was consumed");
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let reply = faulty.push(&me, "k1", request, None).await.unwrap();
    assert!(!reply.replayed, "the failed attempt stored no idempotency record");
    assert_eq!(pull_all(&healthy, &me, None, false).await.0.len(), 2);
}

async fn another_tenants_record_behaves_as_absent(db: Database) {
    let engine = engine(db);
    let acme = device("acme", "ann");
    let evil = device("evil", "eve");
    push(&engine, &acme, "d1", "k1", vec![upsert("task", id(1), 0, task("Secret", "ASSIGNED"), 0)]).await;
    // Eve writes the same id in her tenant: a new record there, acme's is untouched.
    let r =
        push(&engine, &evil, "d9", "k1", vec![upsert("task", id(1), 1, task("Mine", "ASSIGNED"), 0)]).await;
    assert_eq!(outcomes(&r), ["applied"]);
    assert_eq!(r.results[0].version, Some(1));
    let (acme_records, _) = pull_all(&engine, &acme, None, false).await;
    assert_eq!(acme_records[0].data, Some(task("Secret", "ASSIGNED")));
    let (evil_records, _) = pull_all(&engine, &evil, None, false).await;
    assert_eq!(evil_records.len(), 1);
    assert_eq!(evil_records[0].data, Some(task("Mine", "ASSIGNED")));
}

async fn units_scope_writes_and_reads(db: Database) {
    let engine = engine(db);
    let boss = device("acme", "boss");
    let north = Principal { units: Some(vec!["north".into()]), ..device("acme", "nina") };
    let mut south_task = upsert("task", id(1), 0, task("South", "ASSIGNED"), 0);
    south_task.bu = Some("south".into());
    let mut north_task = upsert("task", id(2), 0, task("North", "ASSIGNED"), 0);
    north_task.bu = Some("north".into());
    let everyone = upsert("task", id(4), 0, task("Tenant-wide", "ASSIGNED"), 0);
    push(&engine, &boss, "d0", "k1", vec![south_task, north_task, everyone]).await;
    let (seen, _) = pull_all(&engine, &north, None, false).await;
    assert_eq!(
        seen.iter().map(|r| r.mobile_id).collect::<Vec<_>>(),
        [id(2), id(4)],
        "her unit and the whole tenant's"
    );
    let r =
        push(&engine, &north, "d1", "k1", vec![upsert("task", id(1), 1, task("Mine now", "ASSIGNED"), 1)])
            .await;
    assert_eq!(r.results[0].error.as_ref().unwrap().code, "forbidden_unit");
    // A record she creates without a unit lands in her only unit.
    let r =
        push(&engine, &north, "d1", "k2", vec![upsert("task", id(3), 0, task("New", "ASSIGNED"), 1)]).await;
    assert_eq!(outcomes(&r), ["applied"]);
    let (seen, _) = pull_all(&engine, &north, None, false).await;
    assert_eq!(seen.iter().find(|r| r.mobile_id == id(3)).unwrap().bu.as_deref(), Some("north"));
}

async fn push_limits_and_bad_keys_are_refused(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    let many = (0..501).map(|i| upsert("task", id(i), 0, task("T", "ASSIGNED"), 0)).collect();
    let err = engine
        .push(&me, "k", PushRequest { device_id: "d".into(), client_time: None, changes: many }, None)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), 413);
    let empty = PushRequest { device_id: "d".into(), client_time: None, changes: vec![] };
    for key in ["", "has space", &"x".repeat(256)] {
        assert_eq!(
            engine.push(&me, key, empty.clone(), None).await.unwrap_err().code(),
            "invalid_idempotency_key"
        );
    }
    let err =
        engine.push(&me, "k", PushRequest { device_id: String::new(), ..empty }, None).await.unwrap_err();
    assert_eq!(err.code(), "invalid_device_id");
}

async fn clock_skew_is_corrected_and_recorded(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    // The device's clock is an hour behind the server's.
    let now = OffsetDateTime::now_utc();
    let request = PushRequest {
        device_id: "d1".into(),
        client_time: Some(now - time::Duration::hours(1)),
        changes: vec![upsert("task", id(1), 0, task("T", "ASSIGNED"), 0)],
    };
    engine.push(&me, "k1", request, None).await.unwrap();
    let (records, _) = pull_all(&engine, &me, None, false).await;
    let shift = records[0].modified_at - at(0);
    assert!((shift - time::Duration::hours(1)).abs() < time::Duration::seconds(5), "{shift}");
    let health = engine.device_health(&me, "d1").await.unwrap();
    assert!((health.clock_skew_ms - 3_600_000).abs() < 5_000, "{}", health.clock_skew_ms);
}

sync_domain::backend_tests!(
    applies_new_records_and_versions_changes,
    replays_a_key_and_refuses_it_for_another_body,
    one_bad_item_never_blocks_the_others,
    offline_moves_follow_the_reachability_rule,
    patches_apply_to_their_base_version,
    several_changes_to_one_record_in_one_push,
    a_failing_push_leaves_nothing_and_its_retry_succeeds,
    another_tenants_record_behaves_as_absent,
    units_scope_writes_and_reads,
    push_limits_and_bad_keys_are_refused,
    clock_skew_is_corrected_and_recorded,
);
