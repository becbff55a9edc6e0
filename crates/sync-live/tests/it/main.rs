//! sync-live through its public API, on SQLite and PostgreSQL: streams deliver exactly what
//! pulls would, reconnects by cursor lose and repeat nothing, reads coalesce, limits hold, and
//! on PostgreSQL a second node hears commits through LISTEN/NOTIFY even when that connection is
//! killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use sync_domain::engine::Identity;

use serde_json::json;
use sync_domain::protocol::{Change, Cursor, Op, PullRequest, PushRequest};
use sync_domain::store::{Principal, Role};
use sync_domain::{Backend, Database, SyncConfig, SyncEngine, domains::DomainRegistry};
use sync_live::{CloseReason, Live, LiveConfig, LiveEvent, Next, ReadKey, StreamRequest, Subscription};
use time::OffsetDateTime;
use uuid::Uuid;

fn engine(db: Database) -> SyncEngine {
    db.migrate().unwrap();
    SyncEngine::new(db, SyncConfig::default(), DomainRegistry::builtin())
}

fn principal(tenant: &str, role: Role, units: Option<&[&str]>) -> Principal {
    Principal {
        tenant: tenant.into(),
        user: format!("{tenant}-user"),
        role,
        units: units.map(|u| u.iter().map(|s| (*s).to_owned()).collect()),
    }
}

fn writer(tenant: &str) -> Principal {
    principal(tenant, Role::Device, None)
}

fn change(domain: &str, n: u128, bu: Option<&str>) -> Change {
    let data = match domain {
        "task" => json!({"title": format!("task {n}"), "status": "ASSIGNED"}),
        _ => json!({"title": format!("{domain} {n}")}),
    };
    Change {
        domain: domain.into(),
        mobile_id: Uuid::from_u128(n),
        base_version: 0,
        op: Op::Upsert,
        data: Some(data),
        patch: None,
        modified_at: OffsetDateTime::now_utc(),
        priority: None,
        bu: bu.map(str::to_owned),
    }
}

async fn push(engine: &SyncEngine, who: &Principal, changes: Vec<Change>) {
    let request = PushRequest { device_id: "writer".into(), client_time: None, changes };
    engine.push(who, &Uuid::new_v4().to_string(), request, None).await.unwrap();
}

/// Everything pulls with these filters return, as (domain, mobile_id, version) in order.
async fn pull_all(
    engine: &SyncEngine,
    who: &Principal,
    domains: Option<Vec<String>>,
) -> Vec<(String, Uuid, i64)> {
    let mut cursor = None;
    let mut out = Vec::new();
    loop {
        let request = PullRequest {
            cursor: cursor.clone(),
            limit: Some(7),
            domains: domains.clone(),
            ..PullRequest::default()
        };
        let reply = engine.pull(who, request, &Identity).await.unwrap();
        out.extend(
            reply.response().unwrap().changes.iter().map(|c| (c.domain.clone(), c.mobile_id, c.version)),
        );
        cursor = Some(reply.cursor.clone());
        if !reply.has_more {
            return out;
        }
    }
}

fn request(who: &Principal, cursor: Option<String>, domains: Option<Vec<String>>) -> StreamRequest {
    StreamRequest {
        principal: who.clone(),
        cursor,
        domains,
        delta: false,
        device_id: None,
        token_key: format!("{}-{}", who.tenant, Uuid::new_v4()),
    }
}

/// Takes `changes` batches until `want` records arrived; returns them and the last cursor.
async fn take(sub: &mut Subscription, want: usize) -> (Vec<(String, Uuid, i64)>, Option<String>) {
    let mut got = Vec::new();
    let mut cursor = None;
    while got.len() < want {
        let next = tokio::time::timeout(Duration::from_secs(20), sub.next()).await.expect("an event in time");
        match next {
            Next::Event(LiveEvent::Changes(reply)) => {
                got.extend(
                    reply
                        .response()
                        .unwrap()
                        .changes
                        .iter()
                        .map(|c| (c.domain.clone(), c.mobile_id, c.version)),
                );
                cursor = Some(reply.cursor.clone());
            }
            Next::Event(LiveEvent::Heartbeat) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    (got, cursor)
}

fn config() -> LiveConfig {
    LiveConfig { page_size: 5, ..LiveConfig::default() }
}

async fn stream_delivers_what_pulls_would(db: Database) {
    let live = Live::new(engine(db), config());
    let engine = live.engine().clone();
    let acme = writer("acme");
    // Some history before the subscription: the backlog comes first, in pages.
    push(&engine, &acme, vec![change("task", 1, Some("north")), change("journal", 2, Some("south"))]).await;
    push(&engine, &writer("other"), vec![change("task", 900, Some("north"))]).await;

    let north_tasks = principal("acme", Role::Device, Some(&["north"]));
    let domains = Some(vec!["task".to_owned()]);
    let mut sub = live.subscribe(request(&north_tasks, None, domains.clone())).unwrap();
    let everyone = principal("acme", Role::Device, None);
    let mut all = live.subscribe(request(&everyone, None, None)).unwrap();

    // Concurrent pushes of several writers, across units, domains and tenants.
    let mut writers = Vec::new();
    for w in 0..4u128 {
        let engine = engine.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..6u128 {
                let n = 1000 + w * 100 + i;
                let bu = if i % 2 == 0 { "north" } else { "south" };
                let domain = if i % 3 == 0 { "journal" } else { "task" };
                push(&engine, &writer("acme"), vec![change(domain, n, Some(bu))]).await;
                push(&engine, &writer("other"), vec![change("task", n, Some("north"))]).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let expected = pull_all(&engine, &north_tasks, domains.clone()).await;
    let (got, _) = take(&mut sub, expected.len()).await;
    assert_eq!(got, expected, "the filtered stream is exactly the pulls, in order");
    assert!(got.iter().all(|(d, n, _)| d == "task" && n.as_u128() != 900));

    let expected_all = pull_all(&engine, &everyone, None).await;
    let (got_all, _) = take(&mut all, expected_all.len()).await;
    assert_eq!(got_all, expected_all);
    let keys: BTreeSet<_> = got_all.iter().map(|(d, n, _)| (d.clone(), *n)).collect();
    assert_eq!(keys.len(), got_all.len(), "no duplicates");
    assert!(!keys.iter().any(|(_, n)| n.as_u128() == 900), "never another tenant's change");
}

async fn reconnect_by_cursor_loses_and_repeats_nothing(db: Database) {
    let live = Live::new(engine(db), config());
    let engine = live.engine().clone();
    let acme = writer("acme");
    let reader = principal("acme", Role::Device, None);
    let mut seen: Vec<(String, Uuid, i64)> = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0..4u128 {
        let mut sub = live.subscribe(request(&reader, cursor.clone(), None)).unwrap();
        let pusher = {
            let engine = engine.clone();
            let acme = acme.clone();
            tokio::spawn(async move {
                for i in 0..5u128 {
                    push(&engine, &acme, vec![change("task", round * 10 + i, None)]).await;
                }
            })
        };
        let (got, last) = take(&mut sub, 5).await;
        seen.extend(got);
        cursor = last;
        pusher.await.unwrap();
        drop(sub);
    }
    // Whatever committed after the last batch taken comes on the next connection.
    let mut sub = live.subscribe(request(&reader, cursor.clone(), None)).unwrap();
    let total = pull_all(&engine, &reader, None).await;
    if seen.len() < total.len() {
        let (got, _) = take(&mut sub, total.len() - seen.len()).await;
        seen.extend(got);
    }
    assert_eq!(seen, total, "every change once, in order, across reconnects");
}

async fn a_purged_cursor_gets_resync_required(db: Database) {
    let live = Live::new(engine(db), config());
    let engine = live.engine().clone();
    let acme = writer("acme");
    for i in 0..4 {
        push(&engine, &acme, vec![change("task", i, None)]).await;
        push(
            &engine,
            &acme,
            vec![change("task", i, None)]
                .into_iter()
                .map(|mut c| {
                    c.base_version = 1;
                    c.data = Some(json!({"title": "again", "status": "INPROGRESS"}));
                    c
                })
                .collect(),
        )
        .await;
    }
    // A device at the head lets the purge remove everything below it.
    let head = engine
        .pull(&acme, PullRequest { device_id: Some("d1".into()), ..PullRequest::default() }, &Identity)
        .await
        .unwrap();
    engine.remember_cursor(&acme, "d1", &head.cursor).await.unwrap();
    let report = engine.purge("acme").await.unwrap();
    assert!(report.below_seq > 1);
    let mut sub = live.subscribe(request(&acme, Some(Cursor(1).to_string()), None)).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), sub.next()).await.unwrap();
    assert!(matches!(next, Next::Event(LiveEvent::ResyncRequired)), "{next:?}");
    assert!(matches!(sub.next().await, Next::End));
    // A bad cursor is refused before a stream starts.
    let err = live.subscribe(request(&acme, Some("not-a-cursor".into()), None)).unwrap_err();
    assert!(err.to_string().contains("not a cursor"), "{err}");
    let err = live.subscribe(request(&acme, None, Some(vec!["nope".into()]))).unwrap_err();
    assert!(err.to_string().contains("unknown domain"), "{err}");
}

async fn identical_reads_coalesce(db: Database) {
    let live = Live::new(engine(db), config());
    push(live.engine(), &writer("acme"), vec![change("task", 1, None)]).await;
    let who = principal("acme", Role::Device, None);
    let before = live.hub().stats().reads.load(std::sync::atomic::Ordering::Relaxed);
    let reads = (0..1000).map(|_| {
        let key = ReadKey::new(&who, None, false, None, 50, 7);
        let reader = live.reader().clone();
        let who = who.clone();
        async move { reader.read(&who, key).await.unwrap() }
    });
    let replies = futures_util::future::join_all(reads).await;
    let after = live.hub().stats().reads.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(after - before, 1, "1,000 identical readers, one query");
    assert!(replies.iter().all(|r| Arc::ptr_eq(r, &replies[0])));
    // An older generation may use a newer read.
    let key = ReadKey::new(&who, None, false, None, 50, 3);
    live.reader().read(&who, key).await.unwrap();
    assert_eq!(live.hub().stats().reads.load(std::sync::atomic::Ordering::Relaxed), after);
    assert_eq!(replies[0].changes, 1);
    // Another generation (a later wake-up) reads again.
    let key = ReadKey::new(&who, None, false, None, 50, 8);
    live.reader().read(&who, key).await.unwrap();
    assert_eq!(live.hub().stats().reads.load(std::sync::atomic::Ordering::Relaxed) - after, 1);
}

async fn limits_and_manners(db: Database) {
    let live = Live::new(
        engine(db),
        LiveConfig { max_live_connections: 3, max_streams_per_token: 2, subscriber_buffer: 2, ..config() },
    );
    // Connection slots.
    let slots: Vec<_> = (0..3).map(|_| live.hub().try_connect().unwrap()).collect();
    match live.hub().try_connect() {
        Err(sync_live::LiveError::TooManyConnections { retry_after }) => {
            assert!((1..=10).contains(&retry_after))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(slots);
    assert!(live.hub().try_connect().is_ok());

    // A third stream of one token closes its oldest.
    let who = writer("acme");
    let mut one = request(&who, None, None);
    one.token_key = "token-a".into();
    let mut first = live.subscribe(one.clone()).unwrap();
    let _second = live.subscribe(one.clone()).unwrap();
    let _third = live.subscribe(one).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), first.next()).await.unwrap();
    assert!(matches!(next, Next::Closed(CloseReason::Replaced)), "{next:?}");

    // A subscriber that takes nothing is disconnected once its buffer is full; others go on.
    let mut slow = live.subscribe(request(&who, None, None)).unwrap();
    let mut fast = live.subscribe(request(&who, None, None)).unwrap();
    for i in 0..6 {
        push(live.engine(), &who, vec![change("task", i, None)]).await;
        let _ = take(&mut fast, 1).await;
    }
    let next = tokio::time::timeout(Duration::from_secs(10), slow.next()).await.unwrap();
    assert!(matches!(next, Next::Closed(CloseReason::Slow)), "{next:?}");
    assert!(live.hub().stats().slow_disconnects.load(std::sync::atomic::Ordering::Relaxed) >= 1);

    // Shutdown tells every stream to reconnect.
    live.shutdown();
    let next = loop {
        match tokio::time::timeout(Duration::from_secs(10), fast.next()).await.unwrap() {
            Next::Event(_) => continue,
            other => break other,
        }
    };
    assert!(matches!(next, Next::Closed(CloseReason::Shutdown)), "{next:?}");
}

async fn admins_hear_of_conflicts(db: Database) {
    let live = Live::new(engine(db), config());
    let engine = live.engine().clone();
    let admin = principal("acme", Role::Admin, None);
    engine
        .set_policy(
            &admin,
            "task",
            sync_domain::engine::PolicyUpdate {
                policy: "manual".parse().unwrap(),
                auto_resolve: false,
                notify_on_conflict: false,
            },
        )
        .await
        .unwrap();
    let mut stream = live.subscribe(request(&admin, None, Some(vec!["journal".into()]))).unwrap();
    let acme = writer("acme");
    push(&engine, &acme, vec![change("task", 1, None)]).await;
    let mut edit = change("task", 1, None);
    edit.data = Some(json!({"title": "edited", "status": "INPROGRESS"}));
    push(&engine, &acme, vec![edit.clone()]).await; // base 0 against version 1: a conflict
    let conflict = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap() {
            Next::Event(LiveEvent::Conflict(c)) => break c,
            Next::Event(LiveEvent::Heartbeat | LiveEvent::Changes(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(conflict.result.as_str(), "manual_required");
    assert_eq!(conflict.mobile_id, Uuid::from_u128(1).to_string());
    // A device stream never carries admin events.
    let mut device = live.subscribe(request(&acme, None, Some(vec!["journal".into()]))).unwrap();
    push(&engine, &acme, vec![edit]).await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), device.next()).await;
    assert!(quiet.is_err(), "a device heard {quiet:?}");
}

/// The outcome of each change of a push.
async fn push_outcomes(engine: &SyncEngine, who: &Principal, changes: Vec<Change>) -> Vec<String> {
    let request = PushRequest { device_id: "writer".into(), client_time: None, changes };
    let reply = engine.push(who, &Uuid::new_v4().to_string(), request, None).await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    body["results"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap().to_owned()).collect()
}

/// With the hub attached, a push reads the tenant's policies from the node's cache (one
/// statement fewer once the cache is warm), and a policy change applies to the very next push.
async fn policies_are_cached_and_a_change_applies_at_once(db: Database) {
    let live = Live::new(engine(db.clone()), config());
    let cached = live.engine().clone();
    let acme = writer("acme");
    let admin = principal("acme", Role::Admin, None);
    let statements = |n: u128| {
        let (engine, acme, db) = (cached.clone(), acme.clone(), db.clone());
        async move {
            let before = db.statements();
            push(&engine, &acme, vec![change("journal", n, None)]).await;
            db.statements() - before
        }
    };
    let journal = sync_domain::engine::PolicyUpdate {
        policy: "client_wins".parse().unwrap(),
        auto_resolve: true,
        notify_on_conflict: false,
    };
    cached.set_policy(&admin, "journal", journal).await.unwrap(); // the cache is now stale
    let cold = statements(10).await;
    let warm = statements(11).await;
    assert_eq!(
        warm + 1,
        cold,
        "one policy read fewer per push once cached ({warm} against {cold} statements)"
    );

    push(&cached, &acme, vec![change("task", 1, None)]).await;

    for (policy, outcome) in
        [("manual", "manual_required"), ("client_wins", "client_won"), ("server_wins", "server_won")]
    {
        let mut edit = change("task", 1, None);
        edit.data = Some(json!({"title": format!("edited under {policy}"), "status": "INPROGRESS"}));
        let update = sync_domain::engine::PolicyUpdate {
            policy: policy.parse().unwrap(),
            auto_resolve: policy != "manual",
            notify_on_conflict: false,
        };
        cached.set_policy(&admin, "task", update).await.unwrap();
        // base 0 against the stored version: a conflict, resolved by the policy just set.
        assert_eq!(push_outcomes(&cached, &acme, vec![edit.clone()]).await, [outcome], "policy {policy}");
    }
}

sync_domain::backend_tests!(
    stream_delivers_what_pulls_would,
    reconnect_by_cursor_loses_and_repeats_nothing,
    a_purged_cursor_gets_resync_required,
    identical_reads_coalesce,
    limits_and_manners,
    admins_hear_of_conflicts,
    policies_are_cached_and_a_change_applies_at_once,
);

/// Two nodes on one PostgreSQL: a commit through A reaches B's subscriber through NOTIFY, and
/// killing B's LISTEN connection (pg_terminate_backend) loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_hear_each_other_even_when_listen_dies() {
    if !sync_domain::testing::backend_selected(Backend::Postgres) {
        return;
    }
    let Some(test_db) = sync_domain::testing::TestDb::postgres() else { return };
    let db_a = test_db.database().clone();
    let db_b = Database::connect(test_db.url(), sync_domain::ConnectOptions::default()).unwrap();
    let node_a = Live::new(engine(db_a.clone()), config());
    let node_b = Live::new(engine(db_b), config());
    node_b.start_listener();
    let pid = wait_for(|| node_b.hub().listener_pid()).await;
    assert!(!node_b.hub().caches_coherent() || node_b.hub().listening());

    let acme = writer("acme");
    let mut sub = node_b.subscribe(request(&acme, None, None)).unwrap();
    push(node_a.engine(), &acme, vec![change("task", 1, None)]).await;
    let (got, _) = take(&mut sub, 1).await;
    assert_eq!(got[0].1, Uuid::from_u128(1));

    // Kill B's LISTEN connection while A keeps pushing.
    let pusher = {
        let engine = node_a.engine().clone();
        tokio::spawn(async move {
            for i in 2..=30u128 {
                push(&engine, &writer("acme"), vec![change("task", i, None)]).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    db_a.run(move |conn| {
        use diesel::RunQueryDsl;
        let sync_domain::DbConnection::Pg(c) = conn else { unreachable!() };
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})")).execute(c).unwrap();
        Ok(())
    })
    .await
    .unwrap();
    pusher.await.unwrap();
    let (got, _) = take(&mut sub, 29).await;
    let mut seen: BTreeMap<u128, i64> = BTreeMap::new();
    for (_, n, v) in got {
        assert!(seen.insert(n.as_u128(), v).is_none(), "duplicate {n}");
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (2..=30).collect::<Vec<_>>());
    // It came back, with a new backend.
    let again = wait_for(|| node_b.hub().listener_pid().filter(|p| *p != pid)).await;
    assert_ne!(again, pid);
    assert!(node_b.hub().stats().listens.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    node_b.shutdown();
}

async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached in 10 s");
}
