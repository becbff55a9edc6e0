//! The served OpenAPI document states what the server does: the statuses every authenticated
//! route answers, the error body's shape, and bounds that the server really enforces (one
//! past each documented bound is refused, the bound itself is not).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sync_api::ApiError;
use sync_domain::SyncConfig;

use crate::common::*;

async fn served(app: &TestApp) -> Value {
    let r = app.req().path("/api/openapi.json").send().await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_authenticated_route_states_401_429_and_503_with_retry_after() {
    let app = TestApp::new();
    let doc = served(&app).await;
    let public = ["/healthz", "/readyz", "/metrics", "/api/openapi.json"];
    let mut checked = 0;
    for (path, method, operation) in operations(&doc) {
        if public.contains(&path.as_str()) {
            assert_eq!(operation["security"], json!([{}]), "{method} {path} needs no token");
            continue;
        }
        let responses = &operation["responses"];
        for status in ["400", "401", "429", "503"] {
            assert_eq!(
                responses[status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
        for status in ["429", "503"] {
            assert!(responses[status]["headers"]["Retry-After"].is_object(), "{method} {path} {status}");
        }
        checked += 1;
    }
    assert!(checked >= 13, "only {checked} authenticated operations");
}

#[tokio::test]
async fn the_error_body_schema_says_details_is_an_object_or_null() {
    let app = TestApp::new();
    let doc = served(&app).await;
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(detail["properties"]["details"]["type"], json!(["object", "null"]));
    let required: Vec<&str> =
        detail["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(required.contains(&"details"), "{detail}");
    // And every error the API can make has such details.
    let errors = [
        ApiError::bad_request("invalid_json", "x"),
        ApiError::BadRequest {
            code: "invalid_request",
            message: "x".into(),
            details: Some(json!({"path": "a"})),
        },
        ApiError::Unauthorized("x".into()),
        ApiError::Forbidden("x".into()),
        ApiError::NotFound("x".into()),
        ApiError::MethodNotAllowed,
        ApiError::Engine(sync_domain::Error::Conflict("x".into())),
        ApiError::Engine(sync_domain::Error::ResyncRequired),
        ApiError::PayloadTooLarge("x".into()),
        ApiError::UnsupportedEncoding("x".into()),
        ApiError::Unprocessable { code: "validation", message: "x".into() },
        ApiError::Engine(sync_domain::Error::Unavailable("x".into())),
        ApiError::Internal("x".into()),
    ];
    for error in errors {
        let details = error.body().error.details;
        assert!(details.is_null() || details.is_object(), "{error:?}: {details}");
    }
}

#[tokio::test]
async fn the_served_document_names_this_servers_domains_and_push_limit() {
    let app = TestApp::with_config(SyncConfig { max_push_changes: 7, ..SyncConfig::default() });
    let doc = served(&app).await;
    let pull = &doc["paths"]["/api/v1/sync/pull"]["get"];
    let domains = pull["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "domains").unwrap();
    assert_eq!(domains["style"], "form");
    assert_eq!(domains["explode"], false);
    let names: Vec<&str> =
        domains["schema"]["items"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(names, ["attendance", "journal", "task", "ticket", "voice_note", "work_order"]);
    assert_eq!(doc["components"]["schemas"]["PushRequest"]["properties"]["changes"]["maxItems"], 7);

    // The stated limit is the one enforced.
    let ids: Vec<u32> = (1..=8).collect();
    let r = app.push(&app.device, "seven", task_push("d1", &ids[..7], "t")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = app.push(&app.device, "eight", task_push("d1", &ids, "t")).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

fn param<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()
}

#[tokio::test]
async fn documented_bounds_are_the_enforced_ones() {
    let app = TestApp::new();
    let doc = served(&app).await;
    let schemas = &doc["components"]["schemas"];

    // time_window_hours: the maximum is accepted, one more is 400.
    let window = &schemas["SnapshotRequest"]["properties"]["time_window_hours"];
    let max = window["maximum"].as_i64().unwrap();
    let r = app.post("/api/sync/snapshot/create/", &app.admin, json!({"time_window_hours": max})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = app.post("/api/sync/snapshot/create/", &app.admin, json!({"time_window_hours": max + 1})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(window["minimum"], 1);
    let r = app.post("/api/sync/snapshot/create/", &app.admin, json!({"time_window_hours": 0})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // The conflict list's limit.
    let limit = &param(&doc, "/api/v1/sync/conflicts", "get", "limit")["schema"];
    let max = limit["maximum"].as_i64().unwrap();
    let r = app.get(&format!("/api/v1/sync/conflicts?limit={max}"), &app.admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get(&format!("/api/v1/sync/conflicts?limit={}", max + 1), &app.admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // device_id: the documented maximum length is accepted, one more character is 400; empty is 400.
    let device_id = &schemas["PartialSyncRequest"]["properties"]["device_id"];
    let max = usize::try_from(device_id["maxLength"].as_u64().unwrap()).unwrap();
    assert_eq!(device_id["minLength"], 1);
    for (id, status) in [
        ("é".repeat(max), StatusCode::OK),
        ("é".repeat(max + 1), StatusCode::BAD_REQUEST),
        (String::new(), StatusCode::BAD_REQUEST),
    ] {
        let r = app.post("/api/v1/sync/partial", &app.device, json!({"device_id": id})).await;
        assert_eq!(r.status, status, "{} characters: {}", id.chars().count(), r.text());
    }

    // Idempotency-Key: 255 visible ASCII characters are accepted, 256 are not.
    let key = &param(&doc, "/api/v1/sync/push", "post", "Idempotency-Key")["schema"];
    let max = usize::try_from(key["maxLength"].as_u64().unwrap()).unwrap();
    let r = app.push(&app.device, &"k".repeat(max), task_push("d1", &[1], "t")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = app.push(&app.device, &"k".repeat(max + 1), task_push("d1", &[1], "t")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A cursor the pattern forbids is refused.
    for cursor in ["c1.+5", "c1.", "c1.1234567890123456789", "x"] {
        let r =
            app.get(&format!("/api/v1/sync/pull?cursor={}", cursor.replace('+', "%2B")), &app.device).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{cursor}");
    }
}

#[tokio::test]
async fn a_graphql_body_is_read_as_documented() {
    let app = TestApp::new();
    let doc = served(&app).await;
    let schema = &doc["components"]["schemas"]["GraphqlRequest"];
    assert_eq!(schema["required"], json!(["query"]));
    assert_eq!(schema["additionalProperties"], false);
    let ok = app
        .post(
            "/graphql",
            &app.device,
            json!({"query": "{ optimalTime { recommendation } }", "variables": null, "operationName": null}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert!(ok.json()["data"]["optimalTime"].is_object(), "{}", ok.text());
    for body in [json!({}), json!({"query": "{ optimalTime }", "extra": 1}), json!({"query": 5})] {
        let r = app.post("/graphql", &app.device, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn a_route_answers_405_with_allow() {
    let app = TestApp::new();
    let r = app.req().method(Method::DELETE).path("/api/v1/sync/push").bearer(&app.device).send().await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "POST");
    assert_eq!(r.error_code(), "method_not_allowed");
}
