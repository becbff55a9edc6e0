//! Two real `serve` processes on one PostgreSQL: a push through node A reaches a live stream
//! on node B (LISTEN/NOTIFY), and a policy change or token revocation made through A holds on
//! B's next request.

use std::time::Duration;

use serde_json::{Value, json};
use sync_domain::testing::TestDb;

use crate::{Server, create_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_through_one_node_reaches_a_stream_on_another() {
    if !sync_domain::testing::backend_selected(sync_domain::Backend::Postgres) {
        return;
    }
    let Some(db) = TestDb::postgres() else { return };
    let url = db.url();
    let device = create_token(url, "acme", "u1", "device");
    let admin = create_token(url, "acme", "boss", "admin");
    let doomed = create_token(url, "acme", "u2", "device");
    let a = Server::start(url, &[]);
    let b = Server::start(url, &[]);
    let http = reqwest::Client::new();

    // A stream on B, then a push through A.
    let mut stream = http
        .get(b.url("/api/v1/sync/stream"))
        .bearer_auth(&device)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let body = json!({"device_id": "d1", "changes": [{"domain": "task",
        "mobile_id": "00000000-0000-4000-8000-000000000001", "base_version": 0, "op": "upsert",
        "data": {"title": "across nodes", "status": "ASSIGNED"}, "modified_at": "2026-11-22T09:58:00Z"}]});
    let pushed = http
        .post(a.url("/api/v1/sync/push"))
        .bearer_auth(&device)
        .header("idempotency-key", "k1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200);
    let mut text = String::new();
    while !text.contains("across nodes") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), stream.chunk())
            .await
            .expect("B's stream receives A's push")
            .unwrap()
            .expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: changes"), "{text}");

    // A long-poll waiting on B is answered by a push through A.
    let cursor = {
        let r: Value = http
            .get(b.url("/api/v1/sync/pull"))
            .bearer_auth(&device)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["cursor"].as_str().unwrap().to_owned()
    };
    let waiting = tokio::spawn(
        http.get(b.url(&format!("/api/v1/sync/pull?wait=30&cursor={cursor}"))).bearer_auth(&device).send(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = body.clone();
    second["changes"][0]["mobile_id"] = json!("00000000-0000-4000-8000-000000000002");
    let pushed = http
        .post(a.url("/api/v1/sync/push"))
        .bearer_auth(&device)
        .header("idempotency-key", "k2")
        .json(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200);
    let answered: Value = waiting.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(answered["changes"][0]["mobile_id"], "00000000-0000-4000-8000-000000000002");

    // B's cached policy: a stale edit through B is resolved by the default (most recent wins
    // for tasks) and warms B's policy cache.
    let push_through_b = |n: u32, key: String| {
        let (http, url, device) = (http.clone(), b.url("/api/v1/sync/push"), device.clone());
        async move {
            let id = format!("00000000-0000-4000-8000-{n:012}");
            let change = |title: &str, at: &str| {
                json!({"device_id": "d9", "changes": [{"domain": "task", "mobile_id": id, "base_version": 0,
                    "op": "upsert", "data": {"title": title, "status": "ASSIGNED"}, "modified_at": at}]})
            };
            // The second is based on nothing and older: a conflict the stored state wins unless
            // the policy is client_wins.
            let edits = [change("first", "2026-11-22T09:58:00Z"), change("stale", "2026-11-22T09:00:00Z")];
            for (step, body) in edits.into_iter().enumerate() {
                let r: Value = http
                    .post(&url)
                    .bearer_auth(&device)
                    .header("idempotency-key", format!("{key}-{step}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if step == 1 {
                    return r["results"][0]["outcome"].as_str().unwrap().to_owned();
                }
            }
            unreachable!()
        }
    };
    let before = push_through_b(100, "warm".into()).await;
    assert_ne!(before, "client_won", "tasks are not client_wins by default");

    // A policy set through A is in force on B's next request.
    let put = http
        .put(a.url("/api/v1/sync/policies/task"))
        .bearer_auth(&admin)
        .json(&json!({"policy": "client_wins"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let policies: Value = http
        .get(b.url("/api/v1/sync/policies"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = policies.as_array().unwrap().iter().find(|p| p["domain"] == "task").unwrap().clone();
    assert_eq!(task["policy"], "client_wins");
    // And B's pushes resolve by it: its policy cache was cleared by A's NOTIFY (within
    // milliseconds; a push that raced with the notification may still use the old policy).
    let changed_at = std::time::Instant::now();
    for n in 101.. {
        if push_through_b(n, format!("after-{n}")).await == "client_won" {
            break;
        }
        assert!(changed_at.elapsed() < Duration::from_secs(2), "B still resolves by the old policy");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A revoked token is refused by B at once.
    let ok = http.get(b.url("/api/v1/sync/pull")).bearer_auth(&doomed).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let database = db.database().clone();
    let revoked = database.write_tx_sync(|c| sync_domain::store::revoke_token(c, &doomed, 0)).unwrap();
    assert!(revoked);
    // B caches token look-ups while its LISTEN connection is up; the revocation's NOTIFY
    // (sent when the revoking transaction commits) clears them. B hears it within
    // milliseconds, but may serve a request that raced with it.
    let revoked_at = std::time::Instant::now();
    loop {
        let status = http.get(b.url("/api/v1/sync/pull")).bearer_auth(&doomed).send().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(revoked_at.elapsed() < Duration::from_secs(2), "B still accepts a revoked token");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    drop(stream);
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}
