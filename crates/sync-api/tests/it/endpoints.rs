//! Every endpoint through `Router::oneshot`, and every error class.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sync_domain::SyncConfig;

use crate::common::*;

#[tokio::test]
async fn probes_metrics_and_documents_need_no_token() {
    let app = TestApp::new();
    let r = app.req().path("/healthz").send().await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.req().path("/readyz").send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "ready");
    let r = app.req().path("/api/openapi.json").send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["openapi"], "3.1.0");

    app.push(&app.device, "k1", task_push("d1", &[1], "Check pump")).await;
    let r = app.req().path("/metrics").send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text();
    assert!(
        text.contains(r#"sync_operations_succeeded_total{tenant="acme",domain="task",operation="push"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn push_then_pull_then_replay() {
    let app = TestApp::new();
    let body = task_push("d1", &[1, 2], "Check pump");
    let first = app.push(&app.device, "key-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let results = first.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r["outcome"], "applied");
        assert_eq!(r["version"], 1);
    }

    // The same key and body: the stored response, byte for byte.
    let replay = app.push(&app.device, "key-1", body.clone()).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body, first.body);
    // The same key, another body: 422.
    let reused = app.push(&app.device, "key-1", task_push("d1", &[3], "Other")).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.error_code(), "idempotency_key_reused");

    let pulled = app.get("/api/v1/sync/pull?device_id=d2&domains=task", &app.device2).await;
    assert_eq!(pulled.status, StatusCode::OK, "{}", pulled.text());
    let page = pulled.json();
    assert_eq!(page["changes"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], false);
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let again = app.get(&format!("/api/v1/sync/pull?cursor={cursor}"), &app.device2).await;
    assert_eq!(again.json()["changes"].as_array().unwrap().len(), 0);

    // Queue status of the device that pulled: nothing pending.
    let q = app.get("/api/v1/sync/queue-status?device_id=d2", &app.device2).await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.text());
    assert_eq!(q.json()["pending_items"], 0);
    assert_eq!(q.json()["queue_healthy"], true);
}

#[tokio::test]
async fn gzip_both_ways() {
    let app = TestApp::new();
    let ids: Vec<u32> = (1..=40).collect();
    let body = serde_json::to_vec(&task_push("d1", &ids, "Check the pump in the basement")).unwrap();
    let r = app
        .req()
        .method(Method::POST)
        .path("/api/v1/sync/push")
        .bearer(&app.device)
        .header("idempotency-key", "gz")
        .header("content-encoding", "gzip")
        .header("accept-encoding", "gzip")
        .raw(gzip(&body))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 40);

    let pulled = app
        .req()
        .path("/api/v1/sync/pull?limit=100")
        .bearer(&app.device)
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert_eq!(pulled.status, StatusCode::OK);
    assert_eq!(pulled.headers["content-encoding"], "gzip");
    assert_eq!(pulled.json()["changes"].as_array().unwrap().len(), 40);

    // Small responses stay identity.
    let small = app
        .req()
        .path("/api/v1/sync/optimal-time")
        .bearer(&app.device)
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert!(small.headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn queue_partial_and_optimal_time() {
    let app = TestApp::new();
    let mut body = task_push("d1", &[1, 2, 3], "Check pump");
    body["changes"][1]["priority"] = json!("high");
    assert_eq!(app.push(&app.device, "k", body).await.status, StatusCode::OK);

    let q = app.get("/api/v1/sync/queue-status?device_id=d9", &app.device).await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.text());
    assert_eq!(q.json()["pending_items"], 3);
    assert_eq!(q.json()["high_priority"], 1);

    let p = app
        .post(
            "/api/v1/sync/partial",
            &app.device,
            json!({"device_id": "d9", "priority": "high", "max_items": 10}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text());
    let items = p.json()["synced_items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["mobile_id"], uuid(2));

    let o = app.get("/api/v1/sync/optimal-time", &app.device).await;
    assert_eq!(o.status, StatusCode::OK);
    let o = o.json();
    assert_eq!(o["recommendation"], "sync_now");
    assert_eq!(o["server_load"], "low");
}

/// Two devices edit one ticket; the admin switches tickets to manual and resolves.
#[tokio::test]
async fn conflicts_policies_and_resolution() {
    let app = TestApp::new();
    let ticket = |key_title: &str, base: i64| {
        json!({"device_id": "d1", "changes": [{"domain": "ticket", "mobile_id": uuid(7), "base_version": base,
            "op": "upsert", "data": {"title": key_title, "status": "NEW"}, "modified_at": "2026-11-22T09:00:00Z"}]})
    };
    assert_eq!(app.push(&app.device, "t1", ticket("Leak", 0)).await.status, StatusCode::OK);

    // Policies: a device may read them, only an admin may change them.
    assert_eq!(app.get("/api/v1/sync/policies", &app.device).await.status, StatusCode::OK);
    let r = app
        .req()
        .method(Method::PUT)
        .path("/api/v1/sync/policies/ticket")
        .bearer(&app.device)
        .json(&json!({"policy": "manual"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "forbidden");
    let r = app.get("/api/v1/sync/policies", &app.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 6);
    let r = app
        .req()
        .method(Method::PUT)
        .path("/api/v1/sync/policies/ticket")
        .bearer(&app.admin)
        .json(&json!({"policy": "field_merge", "auto_resolve": false, "notify_on_conflict": false}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["policy"], "manual");
    assert_eq!(r.json()["configured_policy"], "field_merge");
    let r = app
        .req()
        .method(Method::PUT)
        .path("/api/v1/sync/policies/spaceship")
        .bearer(&app.admin)
        .json(&json!({"policy": "manual"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let mut edit = ticket("Leak in hall", 0);
    edit["device_id"] = json!("d2");
    let r = app.push(&app.device2, "t2", edit).await;
    assert_eq!(r.status, StatusCode::OK);
    let result = r.json()["results"][0].clone();
    assert_eq!(result["outcome"], "manual_required", "{result}");
    let conflict_id = result["conflict"]["id"].as_str().unwrap().to_owned();

    let r = app.get("/api/v1/sync/conflicts?status=pending", &app.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/v1/sync/conflicts", &app.device).await.status, StatusCode::FORBIDDEN);
    // Another tenant's admin sees nothing and cannot resolve it.
    assert_eq!(app.get("/api/v1/sync/conflicts", &app.other_admin).await.json().as_array().unwrap().len(), 0);
    let path = format!("/api/v1/sync/conflicts/{conflict_id}/resolve");
    let r = app.post(&path, &app.other_admin, json!({"choose": "client"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());

    let r = app.post(&path, &app.admin, json!({"choose": "client"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let resolved = r.json();
    assert_eq!(resolved["version"], 2);
    assert_eq!(resolved["record"]["data"]["title"], "Leak in hall");
    // Resolving twice is refused.
    let again = app.post(&path, &app.admin, json!({"choose": "server"})).await;
    assert!(again.status.is_client_error(), "{}", again.text());
    again.error_code();
}

#[tokio::test]
async fn analytics_endpoints() {
    let app = TestApp::new();
    app.push(&app.device, "k", task_push("d1", &[1], "Check pump")).await;
    let r = app.post("/api/sync/snapshot/create/", &app.admin, json!({"time_window_hours": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["status"], "created");
    let r = app.post("/api/sync/snapshot/create/", &app.device, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = app.get("/api/sync/dashboard/", &app.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let dashboard = r.json();
    for key in ["latest_snapshot", "trend_7days", "unhealthy_devices", "conflict_hotspots", "alerts"] {
        assert!(dashboard.get(key).is_some(), "{key}: {dashboard}");
    }
    assert_eq!(dashboard["latest_snapshot"]["total_sync_requests"], 1);
    assert_eq!(app.get("/api/sync/dashboard/", &app.device).await.status, StatusCode::FORBIDDEN);

    let r = app.get("/api/sync/device-health/?device_id=d1", &app.device).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["total_syncs"], 1);
    let r = app.get("/api/sync/device-health/?device_id=d1", &app.admin).await;
    assert_eq!(r.status, StatusCode::OK);
    // Another user's device: forbidden; another tenant: not found.
    let r = app.get("/api/sync/device-health/?device_id=d1", &app.device2).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = app.get("/api/sync/device-health/?device_id=d1", &app.other_admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
}

#[tokio::test]
async fn authentication() {
    let app = TestApp::new();
    let r = app.req().path("/api/v1/sync/pull").send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "unauthorized");
    for header in ["Bearer nope", "Basic abc", "Bearer", "Bearer sf_0000"] {
        let r = app.req().path("/api/v1/sync/pull").header("authorization", header).send().await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{header}");
        r.error_code();
    }
    // GraphQL needs a token too.
    let r = app
        .req()
        .method(Method::POST)
        .path("/graphql")
        .json(&json!({"query": "{ optimalTime { recommendation } }"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn jwts_signed_with_the_secret_are_accepted() {
    let app = TestApp::new();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let admin = jwt(&json!({"tenant": "acme", "sub": "jwt-admin", "role": "admin", "exp": exp}), JWT_SECRET);
    let r = app.get("/api/v1/sync/policies", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let device = jwt(
        &json!({"tenant": "acme", "sub": "jwt-dev", "role": "device", "units": ["north"], "exp": exp}),
        JWT_SECRET,
    );
    assert_eq!(app.get("/api/sync/dashboard/", &device).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/sync/pull", &device).await.status, StatusCode::OK);

    let forged = jwt(&json!({"tenant": "acme", "sub": "x", "role": "admin", "exp": exp}), "wrong");
    assert_eq!(app.get("/api/v1/sync/pull", &forged).await.status, StatusCode::UNAUTHORIZED);
    let expired = jwt(&json!({"tenant": "acme", "sub": "x", "role": "admin", "exp": exp - 7200}), JWT_SECRET);
    assert_eq!(app.get("/api/v1/sync/pull", &expired).await.status, StatusCode::UNAUTHORIZED);
    let bad_role = jwt(&json!({"tenant": "acme", "sub": "x", "role": "root", "exp": exp}), JWT_SECRET);
    assert_eq!(app.get("/api/v1/sync/pull", &bad_role).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn units_scope_what_a_device_sees() {
    let app = TestApp::new();
    let north = token(app.db.database(), "acme", "n1", sync_domain::store::Role::Device);
    // A device limited to unit north (via JWT) sees only north's records.
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let scoped = jwt(
        &json!({"tenant": "acme", "sub": "n2", "role": "device", "units": ["north"], "exp": exp}),
        JWT_SECRET,
    );
    let mut body = task_push("d1", &[1, 2], "Check pump");
    body["changes"][0]["bu"] = json!("north");
    body["changes"][1]["bu"] = json!("south");
    assert_eq!(app.push(&north, "k", body).await.status, StatusCode::OK);
    let page = app.get("/api/v1/sync/pull", &scoped).await.json();
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{page}");
    assert_eq!(changes[0]["bu"], "north");
}

#[tokio::test]
async fn routing_errors_have_the_error_body() {
    let app = TestApp::new();
    let r = app.get("/api/v1/sync/nothing", &app.device).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "not_found");
    let r = app.req().method(Method::DELETE).path("/api/v1/sync/push").bearer(&app.device).send().await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn change_count_limit_is_413() {
    let app = TestApp::with_config(SyncConfig { max_push_changes: 3, ..SyncConfig::default() });
    let r = app.push(&app.device, "k", task_push("d1", &[1, 2, 3, 4], "x")).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "payload_too_large");
    assert!(app.stored().await.is_empty());
}

#[tokio::test]
async fn garbage_cursor_is_400() {
    let app = TestApp::new();
    app.push(&app.device, "k", task_push("d1", &[1], "x")).await;
    // A cursor the server never issued. (410 `resync_required` for a purged cursor is the
    // engine's, mapped by `ApiError::from`; the engine's tests cover when it happens.)
    let r = app.get("/api/v1/sync/pull?cursor=garbage", &app.device).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    r.error_code();
}

#[tokio::test]
async fn unreachable_database_is_503_with_retry_after() {
    use sync_domain::{ConnectOptions, Database};
    let db = Database::connect(
        "postgres://nobody@127.0.0.1:1/none",
        ConnectOptions {
            check_on_connect: false,
            connection_timeout: std::time::Duration::from_millis(300),
            ..ConnectOptions::default()
        },
    )
    .unwrap();
    let engine = sync_domain::SyncEngine::new(
        db,
        SyncConfig::default(),
        sync_domain::domains::DomainRegistry::builtin(),
    );
    let router = sync_api::router(sync_api::SyncApi::new(engine, sync_api::ApiOptions::default()));
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .uri("/api/v1/sync/pull")
        .header("authorization", "Bearer sf_abc")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let request = axum::http::Request::builder().uri("/readyz").body(axum::body::Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// The operation interface without any transport: what both adapters call.
#[tokio::test]
async fn the_operation_interface_runs_without_a_transport() {
    use sync_api::{OperationOutput, OperationRequest, SyncOperation, Transport};
    let app = TestApp::new();
    let principal = app.api.authenticate(Some(&format!("Bearer {}", app.device))).await.unwrap();
    assert_eq!((principal.tenant.as_str(), principal.user.as_str()), ("acme", "u1"));
    let request: sync_domain::protocol::PushRequest =
        serde_json::from_value(task_push("d1", &[1], "x")).unwrap();
    let mut op =
        SyncOperation::new(principal.clone(), Transport::Graphql, OperationRequest::Push(request.clone()));
    // Push needs its key, whatever the transport.
    let err = app.api.execute(op.clone()).await.unwrap_err();
    assert_eq!(err.code(), "missing_idempotency_key");
    op.idempotency_key = Some("direct".into());
    let OperationOutput::Push(reply) = app.api.execute(op).await.unwrap() else { panic!("not a push") };
    assert!(!reply.replayed);
    // REST replays it.
    let r = app.push(&app.device, "direct", task_push("d1", &[1], "x")).await;
    assert_eq!(r.body, reply.body.as_bytes());
    let err = app
        .api
        .execute(SyncOperation::new(principal, Transport::Rest, OperationRequest::Dashboard))
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn refused_requests_count_as_failures() {
    let app = TestApp::new();
    app.req().method(Method::POST).path("/api/v1/sync/push").send().await;
    let r = app.push(&app.device, "k", json!({"device_id": 1})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let anonymous = app.api.recorder().get("_anonymous", "all", sync_metrics::Operation::Push).unwrap();
    assert_eq!((anonymous.successes, anonymous.failures), (0, 1));
    let acme = app.api.recorder().get("acme", "all", sync_metrics::Operation::Push).unwrap();
    assert_eq!(acme.failures, 1);
}
