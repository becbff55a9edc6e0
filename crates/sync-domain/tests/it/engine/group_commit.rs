//! Group commit's law: pushes that share a transaction (each in its own savepoint) give
//! exactly what the same pushes give one at a time in queue order — the same outcomes,
//! versions and response bytes (up to server timestamps and conflict ids), the same stored
//! records and conflicts — with concurrent pushes to the same records, replayed and reused
//! idempotency keys, and pushes that fail after writing among them.

use std::{future::Future, pin::Pin, sync::Arc, task::Poll};

use proptest::prelude::*;
use serde_json::{Value, json};
use sync_domain::{
    Backend, ConnectOptions, Error, SyncEngine,
    protocol::{Change, PushRequest},
    store::Principal,
    testing::TestDb,
};

use super::*;

const DEVICES: [&str; 3] = ["a", "b", "faulty"];
const DOMAINS: [&str; 3] = ["task", "journal", "nope"];

#[derive(Debug, Clone)]
struct Step {
    device: usize,
    key: u8,
    changes: Vec<(u8, usize, u8, i64)>,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let change = (0_u8..4, 0_usize..3, 0_u8..4, 0_i64..4);
    let step = (0_usize..3, 0_u8..3, prop::collection::vec(change, 1..4))
        .prop_map(|(device, key, changes)| Step { device, key, changes });
    prop::collection::vec(step, 3..14)
}

fn request(step: &Step, minute: i64) -> PushRequest {
    let changes = step
        .changes
        .iter()
        .map(|&(record, domain, kind, base)| {
            let (domain, mobile_id) = (DOMAINS[domain], id(u128::from(record) + 1));
            let title = format!("{} {record} {minute}", DEVICES[step.device]);
            match kind {
                0 | 1 => upsert(domain, mobile_id, base, task(&title, "ASSIGNED"), minute),
                2 => patch(
                    domain,
                    mobile_id,
                    base,
                    json!([{"op": "replace", "path": "/title", "value": title}]),
                    minute,
                ),
                _ => delete(domain, mobile_id, base, minute),
            }
        })
        .collect::<Vec<Change>>();
    PushRequest { device_id: DEVICES[step.device].into(), client_time: None, changes }
}

/// An engine whose pushes from device `faulty` fail after writing their records.
fn faulty_engine(db: sync_domain::Database) -> SyncEngine {
    engine(db).with_fault(Arc::new(|request: &PushRequest| {
        if request.device_id == "faulty" {
            Err(Error::Internal("injected failure after the records were written".into()))
        } else {
            Ok(())
        }
    }))
}

/// A push's answer with what differs between two runs by nature removed: the server's
/// clock and the conflicts' random ids.
fn comparable(
    result: &sync_domain::Result<sync_domain::engine::PushReply>,
) -> Result<(Value, bool), &'static str> {
    match result {
        Err(error) => Err(error.code()),
        Ok(reply) => {
            let mut body: Value = serde_json::from_str(&reply.body).unwrap();
            for result in body["results"].as_array_mut().unwrap() {
                if let Some(record) = result.get_mut("record").and_then(Value::as_object_mut) {
                    record.remove("server_modified_at");
                }
                if let Some(conflict) = result.get_mut("conflict").and_then(Value::as_object_mut) {
                    conflict.remove("id");
                }
            }
            Ok((body, reply.replayed))
        }
    }
}

/// Everything the pushes left in the tenant: records and conflicts, without the server's
/// clock and random ids.
async fn stored(engine: &SyncEngine) -> (Vec<Value>, Vec<Value>) {
    let boss = admin("acme");
    let (records, _) = pull_all(engine, &boss, None, false).await;
    let records = records
        .into_iter()
        .map(|r| {
            let mut r = serde_json::to_value(r).unwrap();
            r.as_object_mut().unwrap().remove("server_modified_at");
            r
        })
        .collect();
    let mut conflicts: Vec<Value> = engine
        .conflicts(&boss, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            json!([
                c.domain,
                c.mobile_id,
                c.server_version,
                c.client_base_version,
                c.client_version,
                c.strategy,
                c.result,
                c.winner,
                c.status,
                c.details,
                c.device_id,
                c.client_state,
                c.server_state
            ])
        })
        .collect();
    conflicts.sort_by_key(Value::to_string);
    (records, conflicts)
}

async fn run(backend: Backend, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let Some(grouped_db) = TestDb::new(backend) else { return Ok(()) };
    let Some(sequential_db) = TestDb::new(backend) else { return Ok(()) };
    // Group commit on (PostgreSQL's default is off), and the reference: off, a transaction of
    // its own per push.
    let options = |max_group| ConnectOptions {
        max_group: Some(max_group),
        max_connections: Some(3),
        min_idle: 0,
        ..ConnectOptions::default()
    };
    let db = sync_domain::Database::connect(grouped_db.url(), options(32)).unwrap();
    let grouped = faulty_engine(db.clone());
    let sequential = faulty_engine(sync_domain::Database::connect(sequential_db.url(), options(1)).unwrap());
    let who: Principal = device("acme", "ann");
    let requests: Vec<(String, PushRequest)> = steps
        .iter()
        .zip(0..)
        .map(|(step, minute)| (format!("{}-k{}", DEVICES[step.device], step.key), request(step, minute)))
        .collect();

    // One at a time.
    let mut expected = Vec::new();
    for (key, request) in &requests {
        expected.push(comparable(&sequential.push(&who, key, request.clone(), None).await));
    }

    // Together: a first writer holds the tenant's lane until every push is queued behind it,
    // so the pushes commit in groups (in queue order, which is the order below: each push
    // queues before its future first yields).
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let blocker = db.write_grouped("acme", move |_| {
        hold.recv().map_err(|e| Error::Internal(e.to_string()))?;
        Ok(())
    });
    let before = db.group_stats();
    let pushes = join_in_order(
        requests.iter().map(|(key, request)| grouped.push(&who, key, request.clone(), None)).collect(),
    );
    let releaser = async move {
        tokio::task::yield_now().await;
        release.send(()).unwrap();
    };
    let (blocked, results, ()) = tokio::join!(blocker, pushes, releaser);
    blocked.unwrap();
    let after = db.group_stats();
    prop_assert!(
        after.writers - before.writers > after.groups - before.groups,
        "the pushes shared transactions: {before:?} -> {after:?}"
    );

    let actual: Vec<_> = results.iter().map(comparable).collect();
    prop_assert_eq!(actual, expected);
    prop_assert_eq!(stored(&grouped).await, stored(&sequential).await);
    Ok(())
}

/// Runs `futures` concurrently in one task, polling them in order (so each reaches its first
/// wait in that order), and returns their outputs in order.
async fn join_in_order<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn check(backend: Backend) {
    if !sync_domain::testing::backend_selected(backend) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = ProptestConfig { cases: 24, ..ProptestConfig::default() };
    proptest!(config, |(steps in steps())| {
        runtime.block_on(run(backend, steps))?;
    });
}

#[test]
fn grouped_pushes_equal_sequential_pushes_sqlite() {
    check(Backend::Sqlite);
}

#[test]
fn grouped_pushes_equal_sequential_pushes_postgres() {
    check(Backend::Postgres);
}
