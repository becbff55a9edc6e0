//! The real server over HTTP: push, pull, conflict, idempotent replay, GraphQL parity, gzip
//! both ways, 401/403/413/415/422, and graceful shutdown on SIGTERM.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_domain::testing::TestDb;

use crate::{Server, create_token};

fn uuid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn tasks(device: &str, ids: std::ops::RangeInclusive<u32>) -> Value {
    let changes: Vec<Value> = ids
        .map(|n| json!({"domain": "task", "mobile_id": uuid(n), "base_version": 0, "op": "upsert",
                         "data": {"title": format!("Inspect pump {n} in the north building"), "status": "ASSIGNED"},
                         "modified_at": "2026-11-22T09:58:00Z"}))
        .collect();
    json!({"device_id": device, "changes": changes})
}

async fn scenario(db: &TestDb) {
    let url = db.url();
    let device = create_token(url, "acme", "u1", "device");
    let device2 = create_token(url, "acme", "u2", "device");
    let admin = create_token(url, "acme", "boss", "admin");
    let server = Server::start(url, &[("SYNC_MAX_BODY_BYTES", "65536")]);
    let http = reqwest::Client::builder().gzip(false).build().unwrap();
    let push = |token: &str, key: &str, body: &Value| {
        http.post(server.url("/api/v1/sync/push"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(body)
    };

    // Probes.
    assert_eq!(http.get(server.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(http.get(server.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);

    // Push, replay, reuse.
    let body = tasks("d1", 1..=3);
    let first = push(&device, "k1", &body).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first = first.bytes().await.unwrap();
    let replay = push(&device, "k1", &body).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(first, replay);
    let reused = push(&device, "k1", &tasks("d1", 4..=4)).send().await.unwrap();
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = reused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "idempotency_key_reused");

    // The same push over GraphQL with the same key: the same content.
    let gql: Value = http
        .post(server.url("/graphql"))
        .bearer_auth(&device)
        .json(&json!({"query": "mutation($k: String!, $i: PushRequest!) { push(idempotencyKey: $k, input: $i) { \
                                results { mobile_id domain outcome version \
                                  record { domain mobile_id version deleted data base_version patch modified_at \
                                           server_modified_at modified_by_device priority bu conflict_risk } \
                                  conflict { id strategy winner details } error { code message } } cursor } }",
                      "variables": {"k": "k1", "i": body}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Every field selected: the REST body, where it leaves out what GraphQL says is null.
    fn without_nulls(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), without_nulls(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
            other => other.clone(),
        }
    }
    assert_eq!(without_nulls(&gql["data"]["push"]), serde_json::from_slice::<Value>(&first).unwrap());

    // Gzip both ways.
    let big = serde_json::to_vec(&tasks("d1", 10..=60)).unwrap();
    let r = http
        .post(server.url("/api/v1/sync/push"))
        .bearer_auth(&device)
        .header("idempotency-key", "gz")
        .header("content-encoding", "gzip")
        .header("accept-encoding", "gzip")
        .header("content-type", "application/json")
        .body(gzip(&big))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let pulled = http
        .get(server.url("/api/v1/sync/pull?limit=1000&device_id=d2"))
        .bearer_auth(&device2)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(pulled.headers()["content-encoding"], "gzip");
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&pulled.bytes().await.unwrap()[..]),
        &mut text,
    )
    .unwrap();
    let page: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(page["changes"].as_array().unwrap().len(), 54);

    // A conflict, resolved by hand.
    let set = http
        .put(server.url("/api/v1/sync/policies/task"))
        .bearer_auth(&admin)
        .json(&json!({"policy": "most_recent_wins", "auto_resolve": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let mut stale = tasks("d2", 1..=1);
    stale["changes"][0]["data"]["title"] = json!("Pump replaced");
    let r: Value = push(&device2, "c1", &stale).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "manual_required", "{r}");
    let id = r["results"][0]["conflict"]["id"].as_str().unwrap().to_owned();
    let pending: Value = http
        .get(server.url("/api/v1/sync/conflicts?status=pending"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let resolved = http
        .post(server.url(&format!("/api/v1/sync/conflicts/{id}/resolve")))
        .bearer_auth(&admin)
        .json(&json!({"choose": "client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status(), StatusCode::OK);
    let resolved: Value = resolved.json().await.unwrap();
    assert_eq!(resolved["record"]["data"]["title"], "Pump replaced");
    let dashboard = http.get(server.url("/api/sync/dashboard/")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(dashboard.status(), StatusCode::OK);

    // Error classes.
    let r = http.get(server.url("/api/v1/sync/pull")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http.get(server.url("/api/sync/dashboard/")).bearer_auth(&device).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let huge = json!({"device_id": "d1", "changes": [], "pad": "x".repeat(70_000)});
    let r = push(&device, "huge", &huge).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = push(&device, "br", &body).header("content-encoding", "br").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let metrics = http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("sync_operations_total"), "{metrics}");

    // SIGTERM: a clean exit.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_end_to_end() {
    scenario(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_end_to_end() {
    let Some(db) = TestDb::postgres() else { return };
    scenario(&db).await;
}
