//! The REST adapter: axum routes of PROTOCOL.md, each parsing its input into a
//! [`SyncOperation`] and writing [`SyncApi::execute`]'s output.
//!
//! Input is read by our own extractors rather than axum's `Json`/`Query`, so that every
//! refusal (size, encoding, syntax, unknown field) carries the protocol's error body.

use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sync_bandwidth::Encoding;
use sync_domain::engine::{PolicyUpdate, ResolveRequest};
use sync_domain::protocol::{PartialSyncRequest, PullRequest, PushRequest};
use sync_domain::store::Principal;
use sync_metrics::Operation;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, ErrorBody, Result};
use crate::operation::{
    EncodedBody, OperationOutput, OperationRequest, RequestMetrics, SyncApi, SyncOperation, Transport,
};

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
    pub const GRAPHQL: &str = "/graphql";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
    pub const OPENAPI: &str = "/api/openapi.json";
}

/// The whole HTTP surface: REST, GraphQL, probes, metrics and the OpenAPI document.
pub fn router(api: SyncApi) -> Router {
    let sync_routes = Router::new()
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
        .route(paths::GRAPHQL, post(crate::graphql::handler))
        .route_layer(middleware::from_fn_with_state(api.clone(), track));
    Router::new()
        .merge(sync_routes)
        .merge(crate::console::routes())
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::READYZ, get(readyz))
        .route(paths::METRICS, get(metrics))
        .route(paths::OPENAPI, get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(api)
}

/// The tower layer that records sync-metrics for every request: it gives the request a
/// [`RequestMetrics`] slot, which the operation interface fills, and records it once the
/// response is ready. A sync request refused before it reached the engine (401, 400, 413…)
/// counts as a failure of its operation.
async fn track(State(api): State<SyncApi>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let operation = request.extensions().get::<MatchedPath>().and_then(|p| operation_of_path(p.as_str()));
    let slot = RequestMetrics::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let success = response.status().is_success();
    slot.record(api.recorder(), started.elapsed(), operation.map(|op| (op, success)));
    response
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

/// The authenticated caller and the request's context headers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub idempotency_key: Option<String>,
    pub network_quality: Option<String>,
    pub accept_gzip: bool,
    pub metrics: RequestMetrics,
}

impl Caller {
    fn operation(self, request: OperationRequest) -> SyncOperation {
        SyncOperation {
            principal: self.principal,
            idempotency_key: self.idempotency_key,
            network_quality: self.network_quality,
            accept_gzip: self.accept_gzip,
            transport: Transport::Rest,
            request,
            metrics: self.metrics,
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str, code: &'static str) -> Result<Option<&'a str>> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ApiError::bad_request(code, format!("{name} must be visible ASCII"))))
        .transpose()
}

/// Whether `Accept-Encoding` allows gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    Encoding::negotiate(accept) == Encoding::Gzip
}

impl FromRequestParts<SyncApi> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &SyncApi) -> Result<Self> {
        let metrics = parts.extensions.get::<RequestMetrics>().cloned().unwrap_or_default();
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map_err(|_| ApiError::Unauthorized("invalid Authorization header".into())))
            .transpose()?;
        let principal = api.authenticate(authorization).await?;
        metrics.set_tenant(&principal.tenant);
        let idempotency_key =
            header_str(&parts.headers, "idempotency-key", "invalid_idempotency_key")?.map(str::to_owned);
        let network_quality =
            header_str(&parts.headers, "x-network-quality", "invalid_network_quality")?.map(str::to_owned);
        Ok(Caller {
            principal,
            idempotency_key,
            network_quality,
            accept_gzip: accepts_gzip(&parts.headers),
            metrics,
        })
    }
}

/// Reads a request body: at most `max_body_bytes` on the wire and after decoding its
/// `Content-Encoding` (gzip; anything else is 415).
pub async fn read_body(api: &SyncApi, request: Request) -> Result<Vec<u8>> {
    let limit = api.engine().config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let content_encoding = header_str(&parts.headers, "content-encoding", "invalid_content_encoding")?;
    // Refuse an unknown coding before reading a byte of the body.
    let encoding = Encoding::from_content_encoding(content_encoding)?;
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::PayloadTooLarge(format!("the request body exceeds {limit} bytes"))
        } else {
            ApiError::bad_request("malformed_body", format!("could not read the request body: {e}"))
        }
    })?;
    let decoded = sync_bandwidth::decompress(&raw, encoding, limit)?;
    Ok(decoded.into_owned())
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Parses JSON into `T`, naming the offending field of a refusal.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| json_error(&e))?;
    deserializer.end().map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON: {e}")))?;
    Ok(value)
}

fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_data() {
        ApiError::BadRequest {
            code: "invalid_request",
            message: if path == "." { inner.to_string() } else { format!("{path}: {inner}") },
            details: Some(serde_json::json!({ "path": path })),
        }
    } else {
        ApiError::bad_request("invalid_json", format!("invalid JSON: {inner}"))
    }
}

/// A JSON request body, decoded and bounded (see [`read_body`]).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SyncApi> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &SyncApi) -> Result<Self> {
        let bytes = read_body(api, request).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// Query parameters; unknown ones are refused.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query parameters: {e}")))
    }
}

/// Writes an encoded JSON body with its headers.
fn json_response(status: StatusCode, body: EncodedBody) -> Response {
    let mut response = (status, body.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(encoding) = body.content_encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Runs an operation and writes its output.
async fn run(api: &SyncApi, caller: Caller, request: OperationRequest) -> Result<Response> {
    let accept_gzip = caller.accept_gzip;
    let metrics = caller.metrics.clone();
    let output = api.execute(caller.operation(request)).await?;
    let (status, body) = match output {
        OperationOutput::Push(reply) => {
            let mut response =
                json_response(StatusCode::OK, api.encode_bytes(reply.body.into_bytes(), accept_gzip)?);
            if reply.replayed {
                response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            metrics.set_bytes_sent(response_len(&response));
            return Ok(response);
        }
        OperationOutput::Pull(reply) => {
            (StatusCode::OK, EncodedBody { bytes: reply.body, content_encoding: reply.content_encoding })
        }
        OperationOutput::SnapshotCreated(created) => {
            (StatusCode::CREATED, api.encode_json(&created, accept_gzip)?)
        }
        other => (StatusCode::OK, api.encode_json(&other.to_json()?, accept_gzip)?),
    };
    Ok(json_response(status, body))
}

fn response_len(response: &Response) -> usize {
    use axum::body::HttpBody;
    response.body().size_hint().exact().map_or(0, |n| n as usize)
}

async fn push(
    State(api): State<SyncApi>,
    caller: Caller,
    JsonBody(body): JsonBody<PushRequest>,
) -> Result<Response> {
    if caller.idempotency_key.is_none() {
        return Err(ApiError::bad_request("missing_idempotency_key", "push needs an Idempotency-Key header"));
    }
    run(&api, caller, OperationRequest::Push(body)).await
}

/// `GET /api/v1/sync/pull` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PullQuery {
    /// Opaque cursor from the previous pull; none: from the beginning.
    pub cursor: Option<String>,
    /// Page size (default by `X-Network-Quality`, at most 1000).
    pub limit: Option<u32>,
    /// Comma-separated domains.
    pub domains: Option<String>,
    /// Send patches where the device holds an older version.
    pub delta: Option<bool>,
    /// Remember this device's cursor.
    pub device_id: Option<String>,
}

async fn pull(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<PullQuery>,
) -> Result<Response> {
    if q.limit == Some(0) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be at least 1"));
    }
    let domains =
        q.domains.map(|d| d.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
    let request = PullRequest {
        cursor: q.cursor.filter(|c| !c.is_empty()),
        limit: q.limit,
        domains,
        delta: q.delta.unwrap_or(false),
        device_id: q.device_id,
        network_quality: None,
    };
    run(&api, caller, OperationRequest::Pull(request)).await
}

/// `?device_id=…`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    pub device_id: String,
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
    caller: Caller,
    JsonBody(body): JsonBody<PartialSyncRequest>,
) -> Result<Response> {
    run(&api, caller, OperationRequest::PartialSync(body)).await
}

async fn optimal_time(State(api): State<SyncApi>, caller: Caller) -> Result<Response> {
    run(&api, caller, OperationRequest::OptimalTime).await
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

/// `GET /api/v1/sync/conflicts` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictsQuery {
    /// `pending` or `resolved`; none: all.
    pub status: Option<String>,
    /// At most this many (1..=500, default 100).
    pub limit: Option<i64>,
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

/// `POST /api/sync/snapshot/create/` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// Hours back from now (default 1).
    #[serde(default = "one_hour")]
    pub time_window_hours: i64,
}

fn one_hour() -> i64 {
    1
}

async fn snapshot_create(State(api): State<SyncApi>, caller: Caller, request: Request) -> Result<Response> {
    // An empty body means the defaults.
    let bytes = read_body(&api, request).await?;
    let body: SnapshotRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        SnapshotRequest { time_window_hours: 1 }
    } else {
        parse_json(&bytes)?
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

async fn healthz() -> Response {
    json_response(
        StatusCode::OK,
        EncodedBody { bytes: br#"{"status":"ok"}"#.to_vec(), content_encoding: None },
    )
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
        return Ok(json_response(StatusCode::SERVICE_UNAVAILABLE, api.encode_json(&body, false)?));
    }
    let backend = api.engine().database().backend().as_str();
    Ok(json_response(
        StatusCode::OK,
        api.encode_json(&serde_json::json!({"status": "ready", "database": backend}), false)?,
    ))
}

async fn metrics(State(api): State<SyncApi>) -> Response {
    let text = api.recorder().render_prometheus();
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(sync_metrics::PROMETHEUS_CONTENT_TYPE));
    response
}

async fn openapi() -> Response {
    let document = crate::openapi::document_json();
    json_response(StatusCode::OK, EncodedBody { bytes: document.into_bytes(), content_encoding: None })
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
