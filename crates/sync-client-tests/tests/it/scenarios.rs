//! The scenarios, each on both backends.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sync_api::LimitsConfig;
use sync_client::core::{self, Step};
use sync_client::{Event, LiveMode, Origin, Outcome, Remote, SyncStatus};
use sync_domain::store::Role;
use sync_domain::{Database, SyncConfig};
use sync_protocol::PushRequest;
use uuid::Uuid;

use crate::common::{Server, Task, quick_options};

fn find(stored: &[Value], id: Uuid) -> &Value {
    stored.iter().find(|r| r["mobile_id"] == id.to_string()).unwrap_or_else(|| panic!("{id} not stored"))
}

async fn offline_edits_then_sync(db: Database) {
    let server = Server::start(db).await;
    let admin = server.token("boss", Role::Admin);
    let a = server.device("ann", "phone-a");
    let mut events = a.client.events();

    // Offline: nothing has been sent yet, and the app sees its edits at once.
    let mut pump = Task::new("Check pump");
    pump.description = Some("Pressure drops every few minutes; check the seals. ".repeat(60));
    a.client.put(&pump).unwrap();
    let filter = Task::new("Replace filter");
    a.client.put(&filter).unwrap();
    a.client
        .patch::<Task>(
            pump.meta.mobile_id,
            json!([{"op": "replace", "path": "/status", "value": "INPROGRESS"}]),
        )
        .unwrap();
    let wrong = Task::new("Wrong one");
    a.client.put(&wrong).unwrap();
    a.client.delete::<Task>(wrong.meta.mobile_id).unwrap();
    let held: Task = a.client.get(pump.meta.mobile_id).unwrap().unwrap();
    assert_eq!((held.status.as_str(), held.meta.version), ("INPROGRESS", 0));
    assert_eq!(held.meta.sync_status, SyncStatus::PendingSync);
    assert_eq!(a.client.query::<Task>().unwrap().len(), 2);
    assert!(a.client.get::<Task>(wrong.meta.mobile_id).unwrap().is_none());
    let mut local = 0;
    while let Ok(event) = events.try_recv() {
        local += usize::from(matches!(event, Event::Changed { origin: Origin::Local, .. }));
    }
    assert_eq!(local, 5);

    let report = a.client.sync().await.unwrap();
    // The two creations edited before any sync went first, each in a batch of its own (a task
    // must start ASSIGNED); then the rest in one batch.
    assert_eq!((report.batches, report.pushed), (3, 5), "{report:?}");
    assert!(a.client.notices().unwrap().is_empty(), "{:?}", a.client.notices());

    let stored = server.stored(&admin).await;
    let pump_stored = find(&stored, pump.meta.mobile_id);
    assert_eq!(pump_stored["version"], 2, "created ASSIGNED, then started");
    assert_eq!(pump_stored["data"]["status"], "INPROGRESS");
    assert_eq!(
        pump_stored["data"]["description"].as_str().unwrap().len(),
        pump.description.as_ref().unwrap().len()
    );
    assert!(
        stored.iter().all(|r| r["mobile_id"] != wrong.meta.mobile_id.to_string() || r["deleted"] == true)
    );
    let held: Task = a.client.get(pump.meta.mobile_id).unwrap().unwrap();
    assert_eq!((held.meta.version, held.meta.sync_status), (2, SyncStatus::Synced));

    // Another technician's phone gets the same records.
    let b = server.device("bob", "phone-b");
    b.client.sync().await.unwrap();
    let mut seen: Vec<Task> = b.client.query().unwrap();
    seen.sort_by(|x, y| x.title.cmp(&y.title));
    assert_eq!(seen.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(), ["Check pump", "Replace filter"]);
    assert_eq!(seen[0].description, pump.description);
}

async fn crash_between_sending_and_storing_the_answer(db: Database) {
    let server = Server::start(db).await;
    let admin = server.token("boss", Role::Admin);
    let mut a = server.device("ann", "phone-a");
    let task = Task::new("Survives a crash");
    a.client.put(&task).unwrap();

    // What the driver does, up to the crash: the batch and its key are stored, the push is
    // sent and applied, and the process dies before it stores the answer.
    let mut formed = None;
    a.client
        .store()
        .step(|r| {
            let (step, batch) = core::next_batch(r, 10)?.unwrap();
            formed = Some(batch);
            Ok::<Step, _>(step)
        })
        .unwrap();
    let batch = formed.unwrap();
    let request =
        PushRequest { device_id: "phone-a".into(), client_time: None, changes: batch.changes.clone() };
    let first = Remote::new(&server.url, &a.token).unwrap().push(&batch.key, &request).await.unwrap();
    assert_eq!(first.results[0].outcome, Outcome::Applied);
    a.restart();

    let report = a.client.sync().await.unwrap();
    assert_eq!((report.batches, report.pushed), (1, 1), "the stored batch went again: {report:?}");
    let stored = server.stored(&admin).await;
    assert_eq!(find(&stored, task.meta.mobile_id)["version"], 1, "applied once: {stored:?}");
    let held: Task = a.client.get(task.meta.mobile_id).unwrap().unwrap();
    assert_eq!((held.meta.version, held.meta.sync_status), (1, SyncStatus::Synced));
    assert!(a.client.store().snapshot().unwrap().batches.is_empty());
    // Nothing else is pending: a further sync sends nothing.
    assert_eq!(a.client.sync().await.unwrap().batches, 0);
}

/// Both devices hold version 1 of a record; B changes it and syncs, then A (offline, based on
/// version 1) changes it and syncs. Returns A's notice for the record.
async fn conflict(
    server: &Server,
    a: &sync_client::Client,
    b: &sync_client::Client,
    domain: &str,
    start: Value,
    b_data: Value,
    a_data: Value,
) -> (Uuid, sync_client::Notice) {
    let id = Uuid::new_v4();
    b.put_json(domain, id, start).unwrap();
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    assert_eq!(a.get_json(domain, id).unwrap().unwrap().version, 1);
    b.put_json(domain, id, b_data).unwrap();
    b.sync().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.put_json(domain, id, a_data).unwrap();
    a.sync().await.unwrap();
    let notices = a.notices().unwrap();
    let notice = notices.into_iter().rev().find(|n| n.id.mobile_id == id).expect("a notice for the conflict");
    let _ = server;
    (id, notice)
}

async fn conflicts_by_each_policy(db: Database) {
    let server = Server::start(db).await;
    let admin = server.token("boss", Role::Admin);
    let a = server.device("ann", "phone-a");
    let b = server.device("bob", "phone-b");
    let (a, b) = (&a.client, &b.client);

    // client_wins (journal's default).
    let (id, n) = conflict(
        &server,
        a,
        b,
        "journal",
        json!({"title": "J"}),
        json!({"title": "B"}),
        json!({"title": "A"}),
    )
    .await;
    assert_eq!(n.outcome, Outcome::ClientWon);
    assert_eq!(n.conflict.as_ref().unwrap().strategy.as_str(), "client_wins");
    assert_eq!(a.get_json("journal", id).unwrap().unwrap().data["title"], "A");

    // server_wins (attendance's default): A's state gives way to the server's.
    let (id, n) = conflict(
        &server,
        a,
        b,
        "attendance",
        json!({"status": "PENDING"}),
        json!({"status": "VERIFIED"}),
        json!({"status": "REJECTED"}),
    )
    .await;
    assert_eq!(n.outcome, Outcome::ServerWon);
    let held = a.get_json("attendance", id).unwrap().unwrap();
    assert_eq!((held.data["status"].as_str(), held.status), (Some("VERIFIED"), SyncStatus::Synced));

    // most_recent_wins (task's default): A edited last.
    let (id, n) = conflict(
        &server,
        a,
        b,
        "task",
        json!({"title": "T", "status": "ASSIGNED"}),
        json!({"title": "T by B", "status": "ASSIGNED"}),
        json!({"title": "T by A", "status": "ASSIGNED"}),
    )
    .await;
    assert_eq!(
        (n.outcome, n.conflict.as_ref().unwrap().strategy.as_str()),
        (Outcome::ClientWon, "most_recent_wins")
    );
    assert_eq!(a.get_json("task", id).unwrap().unwrap().data["title"], "T by A");

    // preserve_escalation (ticket's default): B's escalation and A's title both stand.
    let (id, n) = conflict(
        &server,
        a,
        b,
        "ticket",
        json!({"title": "Leak", "status": "NEW"}),
        json!({"title": "Leak", "status": "OPEN", "escalation_level": 2}),
        json!({"title": "Leak in hall B", "status": "NEW"}),
    )
    .await;
    assert_eq!(n.outcome, Outcome::Merged);
    let held = a.get_json("ticket", id).unwrap().unwrap();
    assert_eq!(held.data["title"], "Leak in hall B");
    assert_eq!(held.data["escalation_level"], 2);

    // field_merge, set by the admin for work orders.
    server
        .admin_request(
            &admin,
            reqwest::Method::PUT,
            "/api/v1/sync/policies/work_order",
            json!({"policy": "field_merge"}),
        )
        .await;
    let (id, n) = conflict(
        &server,
        a,
        b,
        "work_order",
        json!({"title": "WO", "vendor": "Acme"}),
        json!({"title": "WO", "vendor": "Bolt"}),
        json!({"title": "WO 2", "vendor": "Acme"}),
    )
    .await;
    assert_eq!((n.outcome, n.conflict.as_ref().unwrap().strategy.as_str()), (Outcome::Merged, "field_merge"));
    let held = a.get_json("work_order", id).unwrap().unwrap();
    assert_eq!((held.data["title"].as_str(), held.data["vendor"].as_str()), (Some("WO 2"), Some("Bolt")));

    // manual: the server's state stays until an admin chooses; then the device gets it.
    server
        .admin_request(
            &admin,
            reqwest::Method::PUT,
            "/api/v1/sync/policies/voice_note",
            json!({"policy": "manual"}),
        )
        .await;
    let (id, n) = conflict(
        &server,
        a,
        b,
        "voice_note",
        json!({"title": "Memo"}),
        json!({"title": "Memo by B"}),
        json!({"title": "Memo by A"}),
    )
    .await;
    assert_eq!(n.outcome, Outcome::ManualRequired);
    assert_eq!(n.wanted.as_ref().unwrap()["title"], "Memo by A");
    let held = a.get_json("voice_note", id).unwrap().unwrap();
    assert_eq!((held.data["title"].as_str(), held.status), (Some("Memo by B"), SyncStatus::Conflict));
    let conflict_id = n.conflict.unwrap().id;
    server
        .admin_request(
            &admin,
            reqwest::Method::POST,
            &format!("/api/v1/sync/conflicts/{conflict_id}/resolve"),
            json!({"choose": "client"}),
        )
        .await;
    a.sync().await.unwrap();
    let held = a.get_json("voice_note", id).unwrap().unwrap();
    assert_eq!(
        (held.data["title"].as_str(), held.status, held.version),
        (Some("Memo by A"), SyncStatus::Synced, 3)
    );
}

async fn delta_pull(db: Database) {
    let server = Server::start(db).await;
    let a = server.device("ann", "phone-a");
    let b = server.device("bob", "phone-b");
    let mut task = Task::new("Big task");
    task.description = Some("A long description that a delta does not resend. ".repeat(100));
    b.client.put(&task).unwrap();
    b.client.sync().await.unwrap();
    a.client.sync().await.unwrap();
    for status in ["INPROGRESS", "STANDBY", "INPROGRESS"] {
        b.client
            .patch::<Task>(
                task.meta.mobile_id,
                json!([{"op": "replace", "path": "/status", "value": status}]),
            )
            .unwrap();
        b.client.sync().await.unwrap();
    }
    let report = a.client.sync().await.unwrap();
    assert_eq!((report.pulled, report.deltas, report.delta_fallbacks), (1, 1, 0), "{report:?}");
    let held: Task = a.client.get(task.meta.mobile_id).unwrap().unwrap();
    let on_b: Task = b.client.get(task.meta.mobile_id).unwrap().unwrap();
    assert_eq!((held.status.as_str(), held.meta.version), ("INPROGRESS", 4));
    assert_eq!(held.description, on_b.description);
}

async fn resync_required(db: Database) {
    let server = Server::start(db).await;
    let a = server.device("ann", "phone-a");
    let b = server.device("bob", "phone-b");
    let (keep, gone) = (Uuid::new_v4(), Uuid::new_v4());
    a.client.put_json("journal", keep, json!({"title": "keep"})).unwrap();
    a.client.put_json("journal", gone, json!({"title": "gone"})).unwrap();
    a.client.sync().await.unwrap();
    b.client.sync().await.unwrap();
    b.client.delete_json("journal", gone).unwrap();
    b.client.sync().await.unwrap();
    // A later change, so that the tombstone lies below every device's remembered cursor.
    b.client.put_json("journal", Uuid::new_v4(), json!({"title": "later"})).unwrap();
    b.client.sync().await.unwrap();
    // A pulls to the end, but the answer is lost: the server remembers a cursor that A does
    // not hold, and purges the tombstone below it.
    let cursor = a.client.store().meta().unwrap().cursor;
    let params = sync_client::http::PullParams {
        cursor,
        device_id: Some("phone-a".into()),
        ..sync_client::http::PullParams::default()
    };
    Remote::new(&server.url, &a.token).unwrap().pull(&params).await.unwrap();
    let purged = server.engine.purge("acme").await.unwrap();
    assert_eq!(purged.tombstones, 1, "{purged:?}");

    let mut events = a.client.events();
    let report = a.client.sync().await.unwrap();
    assert_eq!(report.resyncs, 1, "{report:?}");
    assert!(a.client.get_json("journal", gone).unwrap().is_none(), "the purged delete reached the device");
    assert_eq!(a.client.get_json("journal", keep).unwrap().unwrap().data["title"], "keep");
    assert_eq!(a.client.query_json("journal").unwrap().len(), 2);
    let mut resync_started = false;
    while let Ok(event) = events.try_recv() {
        resync_started |= event == Event::ResyncStarted;
    }
    assert!(resync_started);
}

async fn rate_limited(db: Database) {
    // One request at once and one a second: the pull after the push is refused with 429.
    let limits = LimitsConfig { rate_limit_per_minute: 60, rate_limit_burst: 1, ..LimitsConfig::default() };
    let server = Server::with(db, SyncConfig::default(), limits).await;
    let a = server.device("ann", "phone-a");
    a.client.put(&Task::new("Throttled")).unwrap();
    let started = Instant::now();
    let report = a.client.sync().await.unwrap();
    assert!(report.retries >= 1, "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!((report.pushed, report.pulled), (1, 1), "{report:?}");
}

async fn live_updates_by_the_best_transport_offered(db: Database) {
    let server = Server::start(db).await;
    let a = server.device("ann", "phone-a");
    // The server offers the event stream (PROTOCOL.md section 11).
    assert_eq!(a.client.live_mode().await.unwrap(), LiveMode::Stream);
    follow_and_check(&server, a, None).await;
}

async fn live_updates_by_long_poll(db: Database) {
    let server = Server::start(db).await;
    let a = server.device("ann", "phone-a");
    follow_and_check(&server, a, Some(LiveMode::LongPoll)).await;
}

/// While A follows, B's change reaches A, and A's edit reaches the server without `sync()`.
async fn follow_and_check(server: &Server, mut a: crate::common::Device, mode: Option<LiveMode>) {
    a.with_options(sync_client::Options { live_mode: mode, long_poll_wait: 20, ..quick_options() });
    let b = server.device("bob", "phone-b");
    let mut events = a.client.events();
    let follower = a.client.clone();
    let follow = tokio::spawn(async move { follower.follow().await });

    let theirs = Task::new("From Bob");
    b.client.put(&theirs).unwrap();
    b.client.sync().await.unwrap();
    let id = theirs.meta.mobile_id;
    let arrived = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Changed { id: changed, origin: Origin::Server }) = events.recv().await
                && changed.mobile_id == id
            {
                return;
            }
        }
    })
    .await;
    assert!(arrived.is_ok(), "B's task did not reach A");

    // A local edit is pushed without a call to sync().
    let mine = Task::new("From Ann");
    a.client.put(&mine).unwrap();
    let pushed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if a.client.get::<Task>(mine.meta.mobile_id).unwrap().is_some_and(|t| t.meta.version == 1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(pushed.is_ok(), "A's edit was not pushed");
    follow.abort();
}

sync_domain::backend_tests!(
    offline_edits_then_sync,
    crash_between_sending_and_storing_the_answer,
    conflicts_by_each_policy,
    delta_pull,
    resync_required,
    rate_limited,
    live_updates_by_the_best_transport_offered,
    live_updates_by_long_poll,
);
