//! Every outcome counted (refused pushes in analytics), rate limits (429 with `Retry-After`,
//! the concurrent-push ceiling, `/metrics`), CORS, the manual policy and the one error mapping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sync_api::{ApiError, ApiOptions, LimitsConfig, Rate};
use sync_domain::testing::TestDb;
use sync_domain::{Backend, SyncConfig};

use crate::common::{TestApp, task_push};

fn limited(backend: Backend, limits: LimitsConfig, config: SyncConfig) -> Option<TestApp> {
    TestDb::new(backend)
        .map(|db| TestApp::with_options(db, config, ApiOptions { limits, ..ApiOptions::default() }))
}

/// A push refused for bad data, for its size and for its rate shows up in `failed_syncs`,
/// lowers the device's health score and raises `low_success_rate`.
async fn refused_pushes_are_failed_syncs(backend: Backend) {
    let limits = LimitsConfig {
        tenants: [("acme".to_owned(), Rate { per_minute: 1, burst: 4 })].into(),
        ..LimitsConfig::default()
    };
    let config = SyncConfig { max_body_bytes: 4096, ..SyncConfig::default() };
    let Some(app) = limited(backend, limits, config) else { return };

    assert_eq!(app.get("/api/v1/sync/policies", &app.device).await.status, StatusCode::OK);
    let r = app.push(&app.device, "k1", task_push("d1", &[1], "Check pump")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let healthy = health(&app, "d1").await;
    assert_eq!(healthy["failed_syncs_count"], 0);

    // Bad data: a wrong type after the device id.
    let r = app.push(&app.device, "k2", json!({"device_id": "d1", "changes": "none"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // Too large: a body over max_body_bytes, its device id first.
    let text = format!(
        r#"{{"device_id":"d1","changes":[{{"domain":"task","mobile_id":"{}","base_version":0,"op":"upsert","data":{{"title":"{}","status":"ASSIGNED"}},"modified_at":"2026-11-22T09:58:00Z"}}]}}"#,
        crate::common::uuid(2),
        "x".repeat(5000)
    );
    let r = app
        .req()
        .method(Method::POST)
        .path("/api/v1/sync/push")
        .bearer(&app.device)
        .header("idempotency-key", "k3")
        .raw(text.into_bytes())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    // Rate limited: the device token's burst of 4 is spent (a read and 3 pushes).
    let r = app.push(&app.device, "k4", task_push("d1", &[4], "Late")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.error_code(), "rate_limited");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    // The admin's token has a budget of its own (4 requests: these reads and the snapshot).
    let unhealthy = health(&app, "d1").await;
    assert_eq!(
        (unhealthy["total_syncs"].as_i64(), unhealthy["failed_syncs_count"].as_i64()),
        (Some(4), Some(3))
    );
    let (before, after) =
        (healthy["health_score"].as_f64().unwrap(), unhealthy["health_score"].as_f64().unwrap());
    assert!(after <= before - 40.0, "{before} → {after}");

    let r = app.post("/api/sync/snapshot/create/", &app.admin, json!({"time_window_hours": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let dashboard = app.get("/api/sync/dashboard/", &app.admin).await.json();
    let snapshot = &dashboard["latest_snapshot"];
    assert_eq!(
        (snapshot["total_sync_requests"].as_u64(), snapshot["failed_syncs"].as_u64()),
        (Some(4), Some(3)),
        "{snapshot}"
    );
    let rules: Vec<&str> =
        dashboard["alerts"].as_array().unwrap().iter().filter_map(|a| a["rule"].as_str()).collect();
    assert!(rules.contains(&"low_success_rate"), "{rules:?}");

    // Counted in /metrics too.
    let metrics = app.get("/metrics", &app.admin).await.text();
    assert!(
        metrics.contains(r#"sync_rate_limited_total{tenant="acme",reason="token_budget"} "#),
        "{metrics}"
    );
}

async fn health(app: &TestApp, device: &str) -> Value {
    let r = app.get(&format!("/api/sync/device-health/?device_id={device}"), &app.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_pushes_are_failed_syncs_sqlite() {
    refused_pushes_are_failed_syncs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_pushes_are_failed_syncs_postgres() {
    refused_pushes_are_failed_syncs(Backend::Postgres).await;
}

#[tokio::test]
async fn the_burst_then_429_with_retry_after() {
    let limits = LimitsConfig { rate_limit_per_minute: 60, rate_limit_burst: 3, ..LimitsConfig::default() };
    let app = limited(Backend::Sqlite, limits, SyncConfig::default()).unwrap();
    for _ in 0..3 {
        let r = app.get("/api/v1/sync/policies", &app.device).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let r = app.get("/api/v1/sync/policies", &app.device).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.error_code(), "rate_limited");
    // One request a second: the next is at most a second away.
    assert_eq!(r.headers["retry-after"], "1");
    // Budgets are per token.
    assert_eq!(app.get("/api/v1/sync/policies", &app.device2).await.status, StatusCode::OK);
    // Probes are not budgeted.
    assert_eq!(app.req().path("/healthz").send().await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrent_push_ceiling_gives_429() {
    use sync_domain::domains::DomainRegistry;
    use tower::ServiceExt;

    let db = TestDb::sqlite();
    let database = db.database().clone();
    database.migrate().unwrap();
    // The first push waits inside its transaction until it is released.
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new((entered_tx, release_rx)));
    let engine =
        sync_domain::SyncEngine::new(database.clone(), SyncConfig::default(), DomainRegistry::builtin())
            .with_fault(Arc::new(move |_| {
                let gate = gate.lock().unwrap();
                let _ = gate.0.send(());
                let _ = gate.1.recv_timeout(Duration::from_secs(30));
                Ok(())
            }));
    let limits = LimitsConfig { max_concurrent_pushes_per_tenant: 1, ..LimitsConfig::unlimited() };
    let api = sync_api::SyncApi::new(engine, ApiOptions { limits, ..ApiOptions::default() });
    let router = sync_api::router(api);
    let token = crate::common::token(&database, "acme", "u1", sync_domain::store::Role::Device);
    let push = |key: &str, ids: &[u32]| {
        axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/sync/push")
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", key)
            .body(axum::body::Body::from(serde_json::to_vec(&task_push("d1", ids, "T")).unwrap()))
            .unwrap()
    };
    let first = tokio::spawn(router.clone().oneshot(push("k1", &[1])));
    tokio::task::spawn_blocking(move || entered_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the first push is in progress");
    let second = router.clone().oneshot(push("k2", &[2])).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "1");
    release_tx.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    // The place is free again (this push waits for nobody: the gate is gone).
    drop(release_tx);
    let third = router.clone().oneshot(push("k3", &[3])).await.unwrap();
    assert_eq!(third.status(), StatusCode::OK);
    let metrics = router
        .oneshot(axum::http::Request::builder().uri("/metrics").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let text = axum::body::to_bytes(metrics.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains(r#"sync_rate_limited_total{tenant="acme",reason="concurrent_pushes"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn manual_alone_is_accepted_without_auto_resolve() {
    let app = TestApp::new();
    for body in [
        json!({"policy": "manual"}),
        json!({"policy": "manual", "auto_resolve": true, "notify_on_conflict": true}),
    ] {
        let r = app
            .req()
            .method(Method::PUT)
            .path("/api/v1/sync/policies/task")
            .bearer(&app.admin)
            .json(&body)
            .send()
            .await;
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text());
        let view = r.json();
        assert_eq!((view["policy"].as_str(), view["auto_resolve"].as_bool()), (Some("manual"), Some(false)));
    }
    let listed = app.get("/api/v1/sync/policies", &app.admin).await.json();
    let task = listed.as_array().unwrap().iter().find(|p| p["domain"] == "task").unwrap().clone();
    assert_eq!(
        (task["policy"].as_str(), task["auto_resolve"].as_bool(), task["notify_on_conflict"].as_bool()),
        (Some("manual"), Some(false), Some(true)),
        "{task}"
    );
}

fn cors_app() -> TestApp {
    let options = ApiOptions {
        limits: LimitsConfig::unlimited(),
        cors_allowed_origins: vec!["https://app.example.com".into(), "http://localhost:3000/".into()],
        ..ApiOptions::default()
    };
    TestApp::with_options(TestDb::sqlite(), SyncConfig::default(), options)
}

fn list(value: Option<&axum::http::HeaderValue>) -> Vec<String> {
    value
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered() {
    let app = cors_app();
    for origin in ["https://app.example.com", "http://localhost:3000"] {
        let r = app
            .req()
            .method(Method::OPTIONS)
            .path("/api/v1/sync/push")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, idempotency-key, content-type")
            .send()
            .await;
        assert!(r.status.is_success(), "{}", r.status);
        assert_eq!(r.headers["access-control-allow-origin"], origin);
        let methods = list(r.headers.get("access-control-allow-methods"));
        for method in ["get", "post", "put", "delete"] {
            assert!(methods.contains(&method.to_owned()), "{methods:?}");
        }
        let headers = list(r.headers.get("access-control-allow-headers"));
        for header in [
            "authorization",
            "idempotency-key",
            "content-type",
            "content-encoding",
            "x-network-quality",
            "last-event-id",
        ] {
            assert!(headers.contains(&header.to_owned()), "{headers:?}");
        }
    }
    // An actual request from it exposes the protocol's response headers.
    let r = app
        .req()
        .path("/api/v1/sync/policies")
        .bearer(&app.device)
        .header("origin", "https://app.example.com")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["access-control-allow-origin"], "https://app.example.com");
    let exposed = list(r.headers.get("access-control-expose-headers"));
    for header in ["retry-after", "idempotent-replayed", "content-encoding"] {
        assert!(exposed.contains(&header.to_owned()), "{exposed:?}");
    }
}

#[tokio::test]
async fn another_origin_gets_no_cors_headers() {
    let app = cors_app();
    let preflight = app
        .req()
        .method(Method::OPTIONS)
        .path("/api/v1/sync/push")
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await;
    let plain = app
        .req()
        .path("/api/v1/sync/policies")
        .bearer(&app.device)
        .header("origin", "https://evil.example.com")
        .send()
        .await;
    assert_eq!(plain.status, StatusCode::OK);
    let no_origin = app.req().path("/api/v1/sync/policies").bearer(&app.device).send().await;
    for r in [&preflight, &plain, &no_origin] {
        let cors: Vec<_> = r.headers.keys().filter(|k| k.as_str().starts_with("access-control-")).collect();
        assert!(cors.is_empty(), "{cors:?}");
    }
    // Without any origin configured, a preflight is just an unknown method.
    let app = TestApp::new();
    let r = app
        .req()
        .method(Method::OPTIONS)
        .path("/api/v1/sync/push")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers.keys().all(|k| !k.as_str().starts_with("access-control-")));
}

/// The API answers an engine error with the code and status the engine carries, which are
/// the protocol's; a 5xx does not leak its cause.
#[test]
fn engine_errors_keep_their_protocol_status() {
    use sync_domain::Error as E;
    let cases: Vec<(E, u16, &str)> = vec![
        (E::BadRequest { code: "invalid_cursor", message: "m".into() }, 400, "invalid_cursor"),
        (E::Forbidden("m".into()), 403, "forbidden"),
        (E::NotFound("m".into()), 404, "not_found"),
        (E::Conflict("m".into()), 409, "conflict"),
        (E::ResyncRequired, 410, "resync_required"),
        (E::PayloadTooLarge("m".into()), 413, "payload_too_large"),
        (E::IdempotencyKeyReused, 422, "idempotency_key_reused"),
        (E::Unprocessable { code: "invalid_policy", message: "m".into() }, 422, "invalid_policy"),
        (E::Unavailable("secret cause".into()), 503, "unavailable"),
        (E::WriteConflict("secret cause".into()), 503, "unavailable"),
        (E::InvalidArgument("secret cause".into()), 500, "internal"),
        (E::Corrupt("secret cause".into()), 500, "internal"),
        (E::Internal("secret cause".into()), 500, "internal"),
        (E::TaskFailed("secret cause".into()), 500, "internal"),
        (E::Migration("secret cause".into()), 500, "internal"),
        (E::InvalidUrl("secret cause".into()), 500, "internal"),
    ];
    for (error, status, code) in cases {
        assert_eq!((error.http_status(), error.code()), (status, code), "{error:?}");
        let api = ApiError::from(error);
        assert_eq!((api.status().as_u16(), api.code()), (status, code), "{api:?}");
        let body = api.body();
        assert_eq!(body.error.code, code);
        assert!(!body.error.message.contains("secret"), "{}", body.error.message);
        let response = axum::response::IntoResponse::into_response(api);
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers().contains_key("retry-after"), status == 503);
    }
}

#[tokio::test]
async fn a_refused_graphql_push_is_a_failed_sync_of_its_device() {
    let app = TestApp::new();
    let r = app
        .graphql(
            &app.device,
            crate::parity::PUSH,
            json!({"key": "g-1", "input": {"device_id": "g1", "changes": "none"}}),
        )
        .await
        .json();
    assert_eq!(r["errors"][0]["extensions"]["status"], 400, "{r}");
    let h = health(&app, "g1").await;
    assert_eq!((h["total_syncs"].as_i64(), h["failed_syncs_count"].as_i64()), (Some(1), Some(1)), "{h}");
}
