//! Servers broken on purpose, to show that the invariants can fail: one acknowledges a change
//! it never stores, one never delivers a record to one device, one whose live streams stay
//! silent.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::{Value, json};
use sync_domain::testing::TestDb;
use sync_sim::ScenarioKind;

use super::*;

const LIMIT: usize = 64 * 1024 * 1024;

/// The JSON of a body, decompressed as its headers say.
async fn json_of(headers: &HeaderMap, body: Body) -> Value {
    let bytes = to_bytes(body, LIMIT).await.unwrap();
    let encoding = sync_bandwidth::Encoding::from_content_encoding(
        headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()),
    )
    .unwrap();
    serde_json::from_slice(&sync_bandwidth::decompress(&bytes, encoding, LIMIT).unwrap()).unwrap()
}

fn with_json(mut headers: HeaderMap, value: &Value) -> (HeaderMap, Body) {
    headers.remove(header::CONTENT_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    (headers, Body::from(Bytes::from(serde_json::to_vec(value).unwrap())))
}

/// Sends `request` on, asking for an uncompressed answer, and returns the answer's parts and JSON.
async fn forward(mut request: Request, next: Next) -> (axum::http::response::Parts, Value) {
    request.headers_mut().remove(header::ACCEPT_ENCODING);
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let value = json_of(&parts.headers, body).await;
    (parts, value)
}

fn respond(mut parts: axum::http::response::Parts, value: &Value) -> Response {
    let (headers, body) = with_json(parts.headers.clone(), value);
    parts.headers = headers;
    Response::from_parts(parts, body)
}

/// Drops the last change of the fifth push of two or more changes, and tells the device it
/// was applied.
async fn acknowledges_a_lost_change(db: TestDb) {
    let pushes = Arc::new(Mutex::new(0_u32));
    let url = serve(db.database(), move |router| {
        router.layer(middleware::from_fn(move |request: Request, next: Next| {
            let pushes = Arc::clone(&pushes);
            async move {
                if request.method() != Method::POST || request.uri().path() != "/api/v1/sync/push" {
                    return next.run(request).await;
                }
                let (mut parts, body) = request.into_parts();
                let mut push = json_of(&parts.headers, body).await;
                let changes = push["changes"].as_array_mut().unwrap();
                let lose = changes.len() >= 2 && {
                    let mut n = pushes.lock().unwrap();
                    *n += 1;
                    *n == 5
                };
                let lost = if lose { changes.pop() } else { None };
                let (headers, body) = with_json(parts.headers.clone(), &push);
                parts.headers = headers;
                let (parts, mut reply) = forward(Request::from_parts(parts, body), next).await;
                if let Some(lost) = lost
                    && parts.status.is_success()
                {
                    let version = lost["base_version"].as_i64().unwrap_or(0) + 1;
                    reply["results"].as_array_mut().unwrap().push(json!({
                        "mobile_id": lost["mobile_id"], "domain": lost["domain"],
                        "outcome": "applied", "version": version,
                    }));
                }
                respond(parts, &reply)
            }
        }))
    })
    .await;
    let report = run(&short(ScenarioKind::BasicSync), &target(url, &db, true)).await;
    assert!(!report.passed, "a lost change went unnoticed:\n{}", report.to_table());
    assert!(!invariant(&report, "acknowledged_in_history").passed, "{}", report.to_table());
}

/// Never delivers the first record of one device's first pull of two or more records to it.
async fn skips_a_record(db: TestDb) {
    let hidden: Arc<Mutex<Option<(String, Value)>>> = Arc::new(Mutex::new(None));
    let url = serve(db.database(), move |router| {
        router.layer(middleware::from_fn(move |request: Request, next: Next| {
            let hidden = Arc::clone(&hidden);
            async move {
                let query = request.uri().query().unwrap_or_default().to_owned();
                let device = query.split('&').find_map(|p| p.strip_prefix("device_id=")).map(str::to_owned);
                let (Some(device), true) = (device, request.uri().path() == "/api/v1/sync/pull") else {
                    return next.run(request).await;
                };
                let (parts, mut page) = forward(request, next).await;
                if parts.status.is_success() {
                    let changes = page["changes"].as_array_mut().unwrap();
                    let mut hidden = hidden.lock().unwrap();
                    if hidden.is_none() && changes.len() >= 2 {
                        *hidden = Some((device.clone(), changes[0]["mobile_id"].clone()));
                    }
                    if let Some((who, id)) = hidden.as_ref()
                        && *who == device
                    {
                        changes.retain(|c| c["mobile_id"] != *id);
                    }
                }
                respond(parts, &page)
            }
        }))
    })
    .await;
    let report = run(&short(ScenarioKind::BasicSync), &target(url, &db, true)).await;
    assert!(!report.passed, "a skipped record went unnoticed:\n{}", report.to_table());
    assert!(!invariant(&report, "converged").passed, "{}", report.to_table());
}

/// Live streams that open and never say anything: the live fleet's delivery check fails
/// although the final pulls would bring every device up to date.
async fn silent_live_streams(db: TestDb) {
    let url = serve(db.database(), |router| {
        router.layer(middleware::from_fn(|request: Request, next: Next| async move {
            if request.uri().path() != "/api/v1/sync/stream" {
                return next.run(request).await;
            }
            let silence = futures_util::stream::pending::<Result<Bytes, std::convert::Infallible>>();
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(silence))
                .unwrap()
        }))
    })
    .await;
    let mut scenario = short(ScenarioKind::LiveFleet);
    scenario.duration = Duration::from_millis(1000);
    scenario.live_delivery_timeout = Duration::from_secs(2);
    let report = run(&scenario, &target(url, &db, true)).await;
    assert!(!report.passed, "{}", report.to_table());
    let live = invariant(&report, "live_delivery");
    assert!(!live.passed && live.failure_count > 0, "{}", report.to_table());
    assert!(live.failures.iter().all(|f| f.contains("live stream did not bring")), "{}", report.to_table());
    // The final pulls still converge: only the live check sees the broken streams.
    assert!(invariant(&report, "converged").passed, "{}", report.to_table());
}

backend_tests!(acknowledges_a_lost_change, skips_a_record, silent_live_streams);
