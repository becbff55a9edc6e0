//! The whole HTTP surface in one axum router: the REST and GraphQL adapters, the live
//! transports, the console, probes, metrics and the OpenAPI document, behind the layer that
//! records every request in sync-metrics, CORS and tracing. Nothing depends on this module but
//! the crate's users.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sync_domain::store::SyncEventKind;
use sync_metrics::Operation;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::error::{ApiError, ErrorBody, Result};
use crate::http::json_response;
use crate::operation::{EncodedBody, RequestMetrics, SyncApi};
use crate::rest::{self, paths};
use crate::{console, cors, graphql, live, openapi};

/// The whole HTTP surface: REST, GraphQL, probes, metrics and the OpenAPI document.
pub fn router(api: SyncApi) -> Router {
    let sync_routes = Router::new()
        .merge(rest::routes())
        .route(paths::GRAPHQL, post(graphql::handler))
        .route(live::paths::STREAM, get(live::sse))
        .route(live::paths::WS, get(live::ws))
        .route(graphql::WS_PATH, get(graphql::ws_handler))
        .route_layer(middleware::from_fn_with_state(api.clone(), track));
    let router = Router::new()
        .merge(sync_routes)
        .merge(console::routes())
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::READYZ, get(readyz))
        .route(paths::METRICS, get(metrics))
        .route(paths::OPENAPI, get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let router = cors::layer(router, api.cors_allowed_origins());
    // A 5xx is logged once, with its cause, where it is made (`ApiError`: `warn` for a 503,
    // `error` for a 500); the trace layer's own failure line would repeat it at `error` for
    // every 503 of a database outage.
    let trace = TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG));
    router.layer(trace).with_state(api)
}

/// The tower layer that records sync-metrics for every request: it gives the request a
/// [`RequestMetrics`] slot, which the operation interface fills, and records it once the
/// response is ready. A sync request refused before it reached the engine (401, 400, 413,
/// 429…) counts as a failure of its operation; after authentication, a refused push, pull or
/// partial sync is also a failed sync of its device in analytics.
async fn track(State(api): State<SyncApi>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let operation = request.extensions().get::<MatchedPath>().and_then(|p| operation_of_path(p.as_str()));
    let slot = RequestMetrics::default();
    slot.mark_started(started);
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let success = response.status().is_success();
    if !success && let Some(kind) = operation.and_then(sync_kind_of) {
        api.record_refusal(&slot, kind, started.elapsed()).await;
    }
    slot.record(api.recorder(), started.elapsed(), operation.map(|op| (op, success)));
    response
}

fn sync_kind_of(operation: Operation) -> Option<SyncEventKind> {
    match operation {
        Operation::Push => Some(SyncEventKind::Push),
        Operation::Pull => Some(SyncEventKind::Pull),
        Operation::Partial => Some(SyncEventKind::Partial),
        _ => None,
    }
}

fn operation_of_path(path: &str) -> Option<Operation> {
    match path {
        paths::PUSH => Some(Operation::Push),
        paths::PULL => Some(Operation::Pull),
        paths::PARTIAL => Some(Operation::Partial),
        paths::RESOLVE => Some(Operation::Resolve),
        _ => None,
    }
}

async fn healthz(State(api): State<SyncApi>) -> Result<Response> {
    Ok(json_response(StatusCode::OK, api.encode_json(&sync_protocol::Liveness::ok(), false)?))
}

async fn readyz(State(api): State<SyncApi>) -> Result<Response> {
    let readiness = api.engine().database().ping().await?;
    if !readiness.migrations_current {
        let body = ErrorBody {
            error: crate::error::ErrorDetail {
                code: "migrations_pending".into(),
                message: "the database schema is not current; run `sync-server migrate`".into(),
                details: serde_json::json!({ "pending": readiness.pending }),
            },
        };
        let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, api.encode_json(&body, false)?);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::error::RETRY_AFTER_SECS));
        return Ok(response);
    }
    let backend = api.engine().database().backend().as_str();
    Ok(json_response(StatusCode::OK, api.encode_json(&sync_protocol::Readiness::ready(backend), false)?))
}

async fn metrics(State(api): State<SyncApi>) -> Response {
    let mut text = api.recorder().render_prometheus();
    text.push_str(&api.limiter().render_prometheus());
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(sync_metrics::PROMETHEUS_CONTENT_TYPE));
    response
}

async fn openapi(State(api): State<SyncApi>) -> Response {
    let document = openapi::document_json_for(&api);
    json_response(StatusCode::OK, EncodedBody { bytes: document.into_bytes(), content_encoding: None })
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
