//! The REST adapter: axum routes of PROTOCOL.md, each parsing its input into a
//! [`SyncOperation`](crate::SyncOperation) and writing [`SyncApi::execute`]'s output.
//!
//! Input is read by the shared extractors of [`crate::http`] rather than axum's
//! `Json`/`Query`, so that every refusal (size, encoding, syntax, unknown field) carries the
//! protocol's error body.

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use sync_domain::engine::{PolicyUpdate, ResolveRequest};
use sync_domain::protocol::{PartialSyncRequest, PullRequest, PushRequest};
// The query and body types of the REST routes are wire types too (sync-protocol).
use sync_protocol::{AnomaliesQuery, ConflictRiskQuery, DeliveriesQuery, OptimalTimeQuery, WebhookRequest};
pub use sync_protocol::{ConflictsQuery, DeviceQuery, PullQuery, SnapshotRequest};

use crate::error::{ApiError, Result};
use crate::http::{Caller, JsonBody, QueryParams, device_id_in, json_response, parse_json, read_body};
use crate::operation::{EncodedBody, OperationOutput, OperationRequest, RequestMetrics, SyncApi, Transport};

/// Paths of PROTOCOL.md.
pub mod paths {
    pub const PUSH: &str = "/api/v1/sync/push";
    pub const PULL: &str = "/api/v1/sync/pull";
    pub const QUEUE_STATUS: &str = "/api/v1/sync/queue-status";
    pub const PARTIAL: &str = "/api/v1/sync/partial";
    pub const OPTIMAL_TIME: &str = "/api/v1/sync/optimal-time";
    pub const POLICIES: &str = "/api/v1/sync/policies";
    pub const POLICY: &str = "/api/v1/sync/policies/{domain}";
    pub const CONFLICTS: &str = "/api/v1/sync/conflicts";
    pub const RESOLVE: &str = "/api/v1/sync/conflicts/{id}/resolve";
    pub const DASHBOARD: &str = "/api/sync/dashboard/";
    pub const SNAPSHOT_CREATE: &str = "/api/sync/snapshot/create/";
    pub const DEVICE_HEALTH: &str = "/api/sync/device-health/";
    pub const ANOMALIES: &str = "/api/v1/sync/anomalies";
    pub const CONFLICT_RISK: &str = "/api/v1/sync/conflict-risk";
    pub const WEBHOOKS: &str = "/api/v1/sync/webhooks";
    pub const WEBHOOK: &str = "/api/v1/sync/webhooks/{name}";
    pub const WEBHOOK_DELIVERIES: &str = "/api/v1/sync/webhooks/{name}/deliveries";
    pub const GRAPHQL: &str = "/graphql";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
    pub const OPENAPI: &str = "/api/openapi.json";
}

/// The REST routes of the sync API (the router adds the metrics layer, probes and the rest).
pub(crate) fn routes() -> Router<SyncApi> {
    Router::new()
        .route(paths::PUSH, post(push))
        .route(paths::PULL, get(pull))
        .route(paths::QUEUE_STATUS, get(queue_status))
        .route(paths::PARTIAL, post(partial))
        .route(paths::OPTIMAL_TIME, get(optimal_time))
        .route(paths::POLICIES, get(policies))
        .route(paths::POLICY, put(set_policy))
        .route(paths::CONFLICTS, get(conflicts))
        .route(paths::RESOLVE, post(resolve))
        .route(paths::DASHBOARD, get(dashboard))
        .route(paths::DASHBOARD.trim_end_matches('/'), get(dashboard))
        .route(paths::SNAPSHOT_CREATE, post(snapshot_create))
        .route(paths::SNAPSHOT_CREATE.trim_end_matches('/'), post(snapshot_create))
        .route(paths::DEVICE_HEALTH, get(device_health))
        .route(paths::DEVICE_HEALTH.trim_end_matches('/'), get(device_health))
        .route(paths::ANOMALIES, get(anomalies))
        .route(paths::CONFLICT_RISK, get(conflict_risk))
        .route(paths::WEBHOOKS, get(webhooks))
        .route(paths::WEBHOOK, get(webhook).put(put_webhook).delete(delete_webhook))
        .route(paths::WEBHOOK_DELIVERIES, get(webhook_deliveries))
}

/// Runs an operation and writes its output.
async fn run(api: &SyncApi, caller: Caller, request: OperationRequest) -> Result<Response> {
    let accept_gzip = caller.accept_gzip;
    let output = api.execute(caller.into_operation(Transport::Rest, request)).await?;
    let (status, body) = match output {
        OperationOutput::Push(reply) => {
            let mut response =
                json_response(StatusCode::OK, api.encode_bytes(reply.body.into_bytes(), accept_gzip)?);
            if reply.replayed {
                response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            return Ok(response);
        }
        OperationOutput::Pull(reply) => {
            (StatusCode::OK, EncodedBody { bytes: reply.body, content_encoding: reply.content_encoding })
        }
        OperationOutput::Deleted => return Ok(StatusCode::NO_CONTENT.into_response()),
        OperationOutput::SnapshotCreated(created) => {
            (StatusCode::CREATED, api.encode_json(&created, accept_gzip)?)
        }
        other => (StatusCode::OK, api.encode_json(&other.to_json()?, accept_gzip)?),
    };
    Ok(json_response(status, body))
}

/// The caller, or its refusal. A refused push or partial sync (over its budget) still has its
/// body read, bounded as always, to learn which device it came from.
async fn caller_or_refusal(
    api: &SyncApi,
    caller: std::result::Result<Caller, ApiError>,
    request: Request,
) -> Result<(Caller, Request)> {
    match caller {
        Ok(caller) => Ok((caller, request)),
        Err(refusal @ ApiError::RateLimited { .. }) => {
            let metrics = request.extensions().get::<RequestMetrics>().cloned().unwrap_or_default();
            if let Ok(bytes) = read_body(api, request).await
                && let Some(device_id) = device_id_in(&bytes)
            {
                metrics.note_device(&device_id);
            }
            Err(refusal)
        }
        Err(refusal) => Err(refusal),
    }
}

async fn push(
    State(api): State<SyncApi>,
    caller: std::result::Result<Caller, ApiError>,
    request: Request,
) -> Result<Response> {
    let (caller, request) = caller_or_refusal(&api, caller, request).await?;
    let JsonBody(body) = JsonBody::<PushRequest>::from_request(request, &api).await?;
    if caller.idempotency_key.is_none() {
        return Err(ApiError::bad_request("missing_idempotency_key", "push needs an Idempotency-Key header"));
    }
    run(&api, caller, OperationRequest::Push(body)).await
}

async fn pull(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<PullQuery>,
) -> Result<Response> {
    let domains = crate::live::split_domains(q.domains);
    let request = PullRequest {
        cursor: q.cursor.filter(|c| !c.is_empty()),
        limit: q.limit,
        domains,
        delta: q.delta.unwrap_or(false),
        device_id: q.device_id,
        network_quality: None,
        hints: q.hints.unwrap_or(false),
    };
    if let Some(wait) = q.wait {
        return crate::live::long_poll(&api, caller, request, wait).await;
    }
    run(&api, caller, OperationRequest::Pull(request)).await
}

async fn queue_status(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<DeviceQuery>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::QueueStatus { device_id: q.device_id }).await
}

async fn partial(
    State(api): State<SyncApi>,
    caller: std::result::Result<Caller, ApiError>,
    request: Request,
) -> Result<Response> {
    let (caller, request) = caller_or_refusal(&api, caller, request).await?;
    let JsonBody(body) = JsonBody::<PartialSyncRequest>::from_request(request, &api).await?;
    run(&api, caller, OperationRequest::PartialSync(body)).await
}

async fn optimal_time(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<OptimalTimeQuery>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::OptimalTime { device_id: q.device_id }).await
}

async fn anomalies(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<AnomaliesQuery>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::Anomalies { since: q.since, limit: q.limit }).await
}

async fn conflict_risk(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<ConflictRiskQuery>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::ConflictRisk { domain: q.domain, limit: q.limit }).await
}

async fn webhooks(State(api): State<SyncApi>, caller: Caller) -> Result<Response> {
    run(&api, caller, OperationRequest::Webhooks).await
}

async fn webhook(State(api): State<SyncApi>, Path(name): Path<String>, caller: Caller) -> Result<Response> {
    run(&api, caller, OperationRequest::Webhook { name }).await
}

async fn put_webhook(
    State(api): State<SyncApi>,
    Path(name): Path<String>,
    caller: Caller,
    JsonBody(request): JsonBody<WebhookRequest>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::PutWebhook { name, request }).await
}

async fn delete_webhook(
    State(api): State<SyncApi>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Response> {
    run(&api, caller, OperationRequest::DeleteWebhook { name }).await
}

async fn webhook_deliveries(
    State(api): State<SyncApi>,
    Path(name): Path<String>,
    caller: Caller,
    QueryParams(q): QueryParams<DeliveriesQuery>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::WebhookDeliveries { name, limit: q.limit }).await
}

async fn policies(State(api): State<SyncApi>, caller: Caller) -> Result<Response> {
    run(&api, caller, OperationRequest::Policies).await
}

async fn set_policy(
    State(api): State<SyncApi>,
    Path(domain): Path<String>,
    caller: Caller,
    JsonBody(update): JsonBody<PolicyUpdate>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::SetPolicy { domain, update }).await
}

async fn conflicts(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<ConflictsQuery>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::Conflicts { status: q.status, limit: q.limit }).await
}

async fn resolve(
    State(api): State<SyncApi>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(request): JsonBody<ResolveRequest>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::ResolveConflict { id, request }).await
}

async fn dashboard(State(api): State<SyncApi>, caller: Caller) -> Result<Response> {
    run(&api, caller, OperationRequest::Dashboard).await
}

async fn snapshot_create(State(api): State<SyncApi>, caller: Caller, request: Request) -> Result<Response> {
    // An empty body means the defaults.
    let bytes = read_body(&api, request).await?;
    // An empty body, or `null`, means the defaults.
    let body: SnapshotRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        SnapshotRequest::default()
    } else {
        parse_json::<Option<SnapshotRequest>>(&bytes)?.unwrap_or_default()
    };
    run(&api, caller, OperationRequest::CreateSnapshot { time_window_hours: body.time_window_hours }).await
}

async fn device_health(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<DeviceQuery>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::DeviceHealth { device_id: q.device_id }).await
}
