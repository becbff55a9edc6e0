//! The bad-input table: every row is refused with a 4xx and the protocol's error body, and
//! nothing is stored.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::*;

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn case(name: &'static str, body: Vec<u8>, status: StatusCode, code: &'static str) -> Case {
    Case { name, headers: vec![("idempotency-key", format!("key-{name}"))], body, status, code }
}

fn json_bytes(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

fn small_bodies() -> sync_domain::SyncConfig {
    sync_domain::SyncConfig { max_body_bytes: 64 * 1024, ..sync_domain::SyncConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_are_refused_and_store_nothing_sqlite() {
    bad_pushes(TestApp::with_config(small_bodies())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_are_refused_and_store_nothing_postgres() {
    let Some(db) = sync_domain::testing::TestDb::postgres() else { return };
    bad_pushes(TestApp::on(db, small_bodies())).await;
}

async fn bad_pushes(app: TestApp) {
    let good = task_push("d1", &[1], "Check pump");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        json_bytes(v)
    };
    // 1 MiB of zeros compresses to about 1 KiB: a bomb for a 64 KiB limit.
    let bomb = gzip(&vec![b' '; 1024 * 1024]);
    let mut corrupt = gzip(&json_bytes(good.clone()));
    let mid = corrupt.len() / 2;
    corrupt.truncate(mid);
    let huge_title = "x".repeat(70 * 1024);

    let cases = vec![
        case("malformed", b"{\"device_id\": ".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        case("not-json", b"hello".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        case("empty", Vec::new(), StatusCode::BAD_REQUEST, "invalid_json"),
        case(
            "trailing",
            [json_bytes(good.clone()), b"x".to_vec()].concat(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        case(
            "wrong-type",
            with(&|v| v["changes"] = json!("many")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "wrong-version-type",
            with(&|v| v["changes"][0]["base_version"] = json!("one")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case("unknown-field", with(&|v| v["extra"] = json!(1)), StatusCode::BAD_REQUEST, "invalid_request"),
        case(
            "unknown-change-field",
            with(&|v| v["changes"][0]["colour"] = json!("red")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "missing-field",
            with(&|v| {
                v.as_object_mut().unwrap().remove("device_id");
            }),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "invalid-uuid",
            with(&|v| v["changes"][0]["mobile_id"] = json!("not-a-uuid")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "invalid-op",
            with(&|v| v["changes"][0]["op"] = json!("explode")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "invalid-time",
            with(&|v| v["changes"][0]["modified_at"] = json!("yesterday")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "nul-in-bu",
            with(&|v| v["changes"][0]["bu"] = json!("north\u{0}")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "nul-in-data",
            with(&|v| v["changes"][0]["data"]["title"] = json!("a\u{0}b")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "nul-in-domain",
            with(&|v| v["changes"][0]["domain"] = json!("task\u{0}")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "empty-device",
            with(&|v| v["device_id"] = json!("")),
            StatusCode::BAD_REQUEST,
            "invalid_device_id",
        ),
        case(
            "huge-body",
            with(&|v| v["changes"][0]["data"]["title"] = json!(huge_title)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        Case {
            name: "gzip-bomb",
            headers: vec![("idempotency-key", "bomb".into()), ("content-encoding", "gzip".into())],
            body: bomb,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
        },
        Case {
            name: "corrupt-gzip",
            headers: vec![("idempotency-key", "corrupt".into()), ("content-encoding", "gzip".into())],
            body: corrupt,
            status: StatusCode::BAD_REQUEST,
            code: "malformed_body",
        },
        Case {
            name: "unknown-encoding",
            headers: vec![("idempotency-key", "br".into()), ("content-encoding", "br".into())],
            body: json_bytes(good.clone()),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_encoding",
        },
        Case {
            name: "no-key",
            headers: vec![],
            body: json_bytes(good.clone()),
            status: StatusCode::BAD_REQUEST,
            code: "missing_idempotency_key",
        },
        Case {
            name: "bad-key",
            headers: vec![("idempotency-key", "has space".into())],
            body: json_bytes(good.clone()),
            status: StatusCode::BAD_REQUEST,
            code: "invalid_idempotency_key",
        },
    ];

    for case in cases {
        let mut req =
            app.req().method(axum::http::Method::POST).path("/api/v1/sync/push").bearer(&app.device);
        for (name, value) in &case.headers {
            req = req.header(name, value);
        }
        let r = req.raw(case.body).send().await;
        assert_eq!(r.status, case.status, "{}: {}", case.name, r.text());
        assert_eq!(r.error_code(), case.code, "{}", case.name);
    }
    assert!(app.stored().await.is_empty(), "a refused push stored something");

    // Wrong values inside well-formed changes are per-change `invalid` outcomes, still storing nothing.
    let mut invalid = good.clone();
    invalid["changes"][0]["data"] = json!({"title": "", "status": "ASSIGNED"});
    let r = app.push(&app.device, "bad-data", invalid).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["results"][0]["outcome"], "invalid");
    assert!(app.stored().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_and_other_bodies_sqlite() {
    bad_queries(TestApp::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_and_other_bodies_postgres() {
    let Some(app) = TestApp::on_backend(sync_domain::Backend::Postgres) else { return };
    bad_queries(app).await;
}

async fn bad_queries(app: TestApp) {
    let cases = [
        ("/api/v1/sync/pull?limit=lots", StatusCode::BAD_REQUEST),
        ("/api/v1/sync/pull?limit=0", StatusCode::BAD_REQUEST),
        ("/api/v1/sync/pull?limit=-1", StatusCode::BAD_REQUEST),
        ("/api/v1/sync/pull?delta=maybe", StatusCode::BAD_REQUEST),
        ("/api/v1/sync/pull?colour=red", StatusCode::BAD_REQUEST),
        ("/api/v1/sync/pull?cursor=c1.x", StatusCode::BAD_REQUEST),
        ("/api/v1/sync/queue-status", StatusCode::BAD_REQUEST),
        ("/api/v1/sync/conflicts?limit=0", StatusCode::FORBIDDEN),
    ];
    for (path, status) in cases {
        let r = app.get(path, &app.device).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        r.error_code();
    }
    let r = app.get("/api/v1/sync/conflicts?limit=100000", &app.admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // NUL characters, which PostgreSQL cannot store, are refused up front on every backend.
    for path in [
        "/api/v1/sync/conflicts?status=%00",
        "/api/v1/sync/pull?domains=task,%00",
        "/api/v1/sync/pull?device_id=d%00",
        "/api/sync/device-health/?device_id=%00",
    ] {
        let r = app.get(path, &app.admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text());
        r.error_code();
    }
    let r = app.post("/api/v1/sync/conflicts/%00/resolve", &app.admin, json!({"choose": "client"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = app
        .req()
        .method(axum::http::Method::PUT)
        .path("/api/v1/sync/policies/task%00")
        .bearer(&app.admin)
        .json(&json!({"policy": "manual", "auto_resolve": false}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = app
        .graphql(
            &app.admin,
            r#"mutation { resolveConflict(id: "a\u0000", input: {choose: client}) { status } }"#,
            json!({}),
        )
        .await
        .json();
    assert_eq!(r["errors"][0]["extensions"]["status"], 400, "{r}");

    let posts = [
        ("/api/v1/sync/partial", json!({"device_id": "d1", "priority": "urgent"})),
        ("/api/v1/sync/partial", json!({"device_id": "d1", "bogus": 1})),
        ("/api/v1/sync/conflicts/00000000-0000-4000-8000-000000000001/resolve", json!({"choose": "nobody"})),
        ("/api/sync/snapshot/create/", json!({"time_window_hours": "one"})),
        ("/api/sync/snapshot/create/", json!({"time_window_hours": 0})),
    ];
    for (path, body) in posts {
        let r = app.post(path, &app.admin, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} {body}: {}", r.text());
        r.error_code();
    }
    // Ids of nothing (or of another tenant) are 404, whatever their shape.
    for id in ["00000000-0000-4000-8000-000000000001", "not-a-uuid"] {
        let r = app
            .post(&format!("/api/v1/sync/conflicts/{id}/resolve"), &app.admin, json!({"choose": "client"}))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text());
    }
    let r = app
        .req()
        .method(axum::http::Method::PUT)
        .path("/api/v1/sync/policies/task")
        .bearer(&app.admin)
        .json(&json!({"policy": "coin_flip"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(app.stored().await.is_empty());
}

#[tokio::test]
async fn another_tenants_records_are_not_found_or_invisible() {
    let app = TestApp::new();
    app.push(&app.device, "k", task_push("d1", &[1], "Ours")).await;
    // The other tenant pulls nothing of ours, and its push with our ids creates its own records.
    let theirs = app.get("/api/v1/sync/pull", &app.other_device).await.json();
    assert_eq!(theirs["changes"].as_array().unwrap().len(), 0);
    let r = app.push(&app.other_device, "k", task_push("x1", &[1], "Theirs")).await;
    assert_eq!(r.json()["results"][0]["outcome"], "applied");
    assert_eq!(r.json()["results"][0]["version"], 1);
    let ours = app.stored().await;
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["data"]["title"], "Ours");
}
