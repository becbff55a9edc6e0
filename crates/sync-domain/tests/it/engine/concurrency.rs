//! No skipped changes under concurrency: writers push while pullers follow their cursors;
//! every acknowledged change is seen by every puller.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};
use sync_domain::engine::Identity;

use serde_json::json;
use sync_domain::{
    Database,
    protocol::{Outcome, PullRequest, PushResponse},
};
use tokio::sync::Mutex;

use super::*;

const WRITERS: usize = 6;
const PUSHES_PER_WRITER: usize = 25;
const PULLERS: usize = 3;

async fn every_acknowledged_change_reaches_every_puller(db: Database) {
    let engine = engine(db);
    // (mobile_id, version) of every acknowledged write.
    let acked = Arc::new(Mutex::new(BTreeSet::<(Uuid, i64)>::new()));
    let done = Arc::new(AtomicBool::new(false));

    let mut pullers = Vec::new();
    for p in 0..PULLERS {
        let engine = engine.clone();
        let done = Arc::clone(&done);
        pullers.push(tokio::spawn(async move {
            let who = device("acme", &format!("puller{p}"));
            let mut cursor: Option<String> = None;
            let mut seen = BTreeMap::<Uuid, i64>::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                loop {
                    let request =
                        PullRequest { cursor: cursor.clone(), limit: Some(13), ..PullRequest::default() };
                    let response = engine.pull(&who, request, &Identity).await.unwrap().response().unwrap();
                    for record in &response.changes {
                        let held = seen.entry(record.mobile_id).or_insert(0);
                        assert!(record.version > *held, "versions only move forward for a puller");
                        *held = record.version;
                    }
                    cursor = Some(response.cursor);
                    if !response.has_more {
                        break;
                    }
                }
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        }));
    }

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let engine = engine.clone();
        let acked = Arc::clone(&acked);
        writers.push(tokio::spawn(async move {
            let who = device("acme", &format!("writer{w}"));
            for i in 0..PUSHES_PER_WRITER {
                // Every change creates a record that is never written again, so a change a
                // puller skipped could not be masked by a later version of the same record.
                let changes: Vec<_> = (0..4u128)
                    .map(|r| {
                        let mobile_id = Uuid::from_u128(((w as u128) << 64) | ((i as u128) << 8) | r);
                        upsert("journal", mobile_id, 0, json!({"title": format!("w{w} #{i} r{r}")}), 0)
                    })
                    .collect();
                let request = sync_domain::protocol::PushRequest {
                    device_id: format!("w{w}"),
                    client_time: None,
                    changes,
                };
                let reply = engine.push(&who, &format!("w{w}-{i}"), request.clone(), None).await.unwrap();
                let response: PushResponse = serde_json::from_str(&reply.body).unwrap();
                let mut acked = acked.lock().await;
                for (change, result) in request.changes.iter().zip(&response.results) {
                    assert_eq!(result.outcome, Outcome::Applied);
                    acked.insert((change.mobile_id, result.version.unwrap()));
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);

    let acked = acked.lock().await;
    let latest: BTreeMap<Uuid, i64> = acked.iter().fold(BTreeMap::new(), |mut m, (id, v)| {
        let e = m.entry(*id).or_insert(0);
        *e = (*e).max(*v);
        m
    });
    assert_eq!(latest.len(), WRITERS * PUSHES_PER_WRITER * 4);
    for puller in pullers {
        let seen = puller.await.unwrap();
        assert_eq!(seen, latest, "a puller missed an acknowledged change");
    }
}

sync_domain::backend_tests!(every_acknowledged_change_reaches_every_puller);
