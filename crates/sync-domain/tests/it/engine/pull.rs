//! Pull: order, paging, cursors, deltas, tombstones, remembered cursors, purge.

use serde_json::{Value, json};
use sync_bandwidth as delta;
use sync_domain::engine::Identity;
use sync_domain::{Database, Error, protocol::PullRequest};

use super::*;

async fn pages_in_sequence_order_with_remaining(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    let changes =
        (1..=20).map(|i| upsert("journal", id(i), 0, json!({"title": format!("J{i}")}), 0)).collect();
    push(&engine, &me, "d1", "k1", changes).await;
    let first = engine
        .pull(&me, PullRequest { limit: Some(8), ..PullRequest::default() }, &Identity)
        .await
        .unwrap()
        .response()
        .unwrap();
    assert_eq!(first.changes.len(), 8);
    assert!(first.has_more);
    assert_eq!(first.remaining, 12);
    let ids: Vec<_> = first.changes.iter().map(|c| c.mobile_id).collect();
    assert_eq!(ids, (1..=8).map(id).collect::<Vec<_>>());
    let (rest, cursor) = pull_all(&engine, &me, Some(first.cursor.clone()), false).await;
    assert_eq!(rest.len(), 12);
    // Nothing new: the same cursor comes back with nothing.
    let again = engine
        .pull(&me, PullRequest { cursor: Some(cursor.clone()), ..PullRequest::default() }, &Identity)
        .await
        .unwrap()
        .response()
        .unwrap();
    assert!(again.changes.is_empty() && !again.has_more && again.remaining == 0);
    assert_eq!(again.cursor, cursor);
    // An edit moves the record to the end of the sequence.
    push(&engine, &me, "d1", "k2", vec![upsert("journal", id(3), 1, json!({"title": "J3 again"}), 1)]).await;
    let (after, _) = pull_all(&engine, &me, Some(cursor), false).await;
    assert_eq!(after.iter().map(|c| (c.mobile_id, c.version)).collect::<Vec<_>>(), [(id(3), 2)]);
}

async fn filters_by_domain_and_refuses_bad_parameters(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    push(
        &engine,
        &me,
        "d1",
        "k1",
        vec![
            upsert("journal", id(1), 0, json!({"title": "J"}), 0),
            upsert("task", id(2), 0, task("T", "ASSIGNED"), 0),
        ],
    )
    .await;
    let only = PullRequest { domains: Some(vec!["task".into()]), ..PullRequest::default() };
    let response = engine.pull(&me, only, &Identity).await.unwrap().response().unwrap();
    assert_eq!(response.changes.iter().map(|c| c.domain.as_str()).collect::<Vec<_>>(), ["task"]);
    let bad = |r: PullRequest| {
        let engine = engine.clone();
        let me = me.clone();
        async move { engine.pull(&me, r, &Identity).await.unwrap_err() }
    };
    assert_eq!(
        bad(PullRequest { cursor: Some("garbage".into()), ..PullRequest::default() }).await.code(),
        "invalid_cursor"
    );
    assert_eq!(bad(PullRequest { limit: Some(0), ..PullRequest::default() }).await.code(), "invalid_limit");
    assert_eq!(
        bad(PullRequest { domains: Some(vec!["nope".into()]), ..PullRequest::default() }).await.code(),
        "unknown_domain"
    );
}

async fn tombstones_are_pulled(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    push(&engine, &me, "d1", "k1", vec![upsert("journal", id(1), 0, json!({"title": "J"}), 0)]).await;
    let (_, cursor) = pull_all(&engine, &me, None, false).await;
    push(&engine, &me, "d1", "k2", vec![delete("journal", id(1), 1, 1)]).await;
    let (changes, _) = pull_all(&engine, &me, Some(cursor), false).await;
    assert_eq!(changes.len(), 1);
    assert!(changes[0].deleted);
    assert_eq!(changes[0].version, 2);
}

async fn delta_pulls_reproduce_the_latest_data(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    let big = |n: i64| json!({"title": "Big ticket", "status": "NEW", "description": "x".repeat(400), "escalation_level": n});
    push(
        &engine,
        &me,
        "d1",
        "k1",
        vec![upsert("ticket", id(1), 0, big(0), 0), upsert("ticket", id(2), 0, big(0), 0)],
    )
    .await;
    let (held, cursor) = pull_all(&engine, &me, None, true).await;
    push(&engine, &me, "d1", "k2", vec![upsert("ticket", id(1), 1, big(2), 1)]).await;
    push(&engine, &me, "d1", "k3", vec![upsert("ticket", id(1), 2, big(3), 2)]).await;
    push(&engine, &me, "d1", "k4", vec![upsert("journal", id(3), 0, json!({"title": "new"}), 2)]).await;
    let (changes, _) = pull_all(&engine, &me, Some(cursor), true).await;
    assert_eq!(changes.len(), 2);
    let ticket = &changes[0];
    assert_eq!(
        (ticket.version, ticket.base_version),
        (3, Some(1)),
        "a delta from the version held at the cursor"
    );
    assert!(ticket.data.is_none());
    let mut doc: Value = held.iter().find(|c| c.mobile_id == id(1)).unwrap().data.clone().unwrap();
    let patch = delta::JsonPatch::from_value(ticket.patch.clone().unwrap()).unwrap();
    delta::apply(&mut doc, &patch).unwrap();
    assert_eq!(doc, big(3));
    // A record the device never held comes in full.
    assert_eq!(changes[1].data, Some(json!({"title": "new"})));
}

async fn remembered_cursor_feeds_the_queue(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    let mut urgent = upsert("task", id(1), 0, task("Urgent", "ASSIGNED"), 0);
    urgent.priority = Some(sync_model::Priority::High);
    push(&engine, &me, "d1", "k1", vec![urgent, upsert("task", id(2), 0, task("Later", "ASSIGNED"), 0)])
        .await;
    let status = engine.queue_status(&me, "d1").await.unwrap();
    assert_eq!((status.pending_items, status.high_priority), (2, 1));
    assert!((status.estimated_sync_time_sec - 0.3).abs() < 1e-9, "150 ms per item until measured");
    assert!(status.queue_healthy);
    let partial = engine
        .partial_sync(
            &me,
            sync_domain::protocol::PartialSyncRequest {
                device_id: "d1".into(),
                priority: sync_model::Priority::High,
                max_items: Some(10),
                network_quality: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(partial.synced_items.iter().map(|r| r.mobile_id).collect::<Vec<_>>(), [id(1)]);
    assert_eq!(partial.remaining, 0);
    // Partial sync does not move the cursor; a pull with the device id does.
    assert_eq!(engine.queue_status(&me, "d1").await.unwrap().pending_items, 2);
    engine
        .pull(&me, PullRequest { device_id: Some("d1".into()), ..PullRequest::default() }, &Identity)
        .await
        .unwrap();
    assert_eq!(engine.queue_status(&me, "d1").await.unwrap().pending_items, 0);
    // Another user's device is not hers to read.
    let err = engine.queue_status(&device("acme", "bob"), "d1").await.unwrap_err();
    assert_eq!(err.http_status(), 403);
    let optimal = engine.optimal_time(&me, None).await.unwrap();
    assert_eq!((optimal.server_load.as_str(), optimal.queue_size), ("low", 0));
    assert_eq!(optimal.recommendation.as_str(), "sync_now");
}

async fn purge_then_resync_required(db: Database) {
    let engine = engine(db);
    let me = device("acme", "ann");
    push(&engine, &me, "d1", "k1", vec![upsert("journal", id(1), 0, json!({"title": "J"}), 0)]).await;
    let old_cursor = engine.pull(&me, PullRequest::default(), &Identity).await.unwrap().cursor;
    push(&engine, &me, "d1", "k2", vec![delete("journal", id(1), 1, 1)]).await;
    push(&engine, &me, "d1", "k3", vec![upsert("journal", id(2), 0, json!({"title": "K"}), 1)]).await;
    // The only active device pulls to the end; everything below its cursor may go.
    engine
        .pull(&me, PullRequest { device_id: Some("d1".into()), ..PullRequest::default() }, &Identity)
        .await
        .unwrap();
    let report = engine.purge("acme").await.unwrap();
    assert_eq!(report.tombstones, 1);
    let err = engine
        .pull(&me, PullRequest { cursor: Some(old_cursor), ..PullRequest::default() }, &Identity)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ResyncRequired), "{err:?}");
    assert_eq!(err.http_status(), 410);
    // Starting again without a cursor works, and the deleted record is simply gone.
    let (all, _) = pull_all(&engine, &me, None, false).await;
    assert_eq!(all.iter().map(|r| r.mobile_id).collect::<Vec<_>>(), [id(2)]);
}

sync_domain::backend_tests!(
    pages_in_sequence_order_with_remaining,
    filters_by_domain_and_refuses_bad_parameters,
    tombstones_are_pulled,
    delta_pulls_reproduce_the_latest_data,
    remembered_cursor_feeds_the_queue,
    purge_then_resync_required,
);
