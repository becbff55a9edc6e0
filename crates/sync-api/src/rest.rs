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
use sync_domain::engine::WireBytes;
use sync_domain::engine::{PolicyUpdate, ResolveRequest};
use sync_domain::protocol::{PartialSyncRequest, PullRequest, PushRequest};
use sync_protocol::{AnomaliesQuery, ConflictRiskQuery, DeliveriesQuery, OptimalTimeQuery, WebhookRequest};
// The query and body types of the REST routes are wire types too (sync-protocol).
use sync_domain::store::{Principal, SyncEventKind};
use sync_metrics::Operation;
pub use sync_protocol::{ConflictsQuery, DeviceQuery, PullQuery, SnapshotRequest};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

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
        .route(paths::ANOMALIES, get(anomalies))
        .route(paths::CONFLICT_RISK, get(conflict_risk))
        .route(paths::WEBHOOKS, get(webhooks))
        .route(paths::WEBHOOK, get(webhook).put(put_webhook).delete(delete_webhook))
        .route(paths::WEBHOOK_DELIVERIES, get(webhook_deliveries))
        .route(paths::GRAPHQL, post(crate::graphql::handler))
        .route(crate::live::paths::STREAM, get(crate::live::sse))
        .route(crate::live::paths::WS, get(crate::live::ws))
        .route(crate::graphql::WS_PATH, get(crate::graphql::ws_handler))
        .route_layer(middleware::from_fn_with_state(api.clone(), track));
    let router = Router::new()
        .merge(sync_routes)
        .merge(crate::console::routes())
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::READYZ, get(readyz))
        .route(paths::METRICS, get(metrics))
        .route(paths::OPENAPI, get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let router = crate::cors::layer(router, api.cors_allowed_origins());
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
    /// The operation of this caller with `request`.
    pub(crate) fn into_operation(self, request: OperationRequest) -> SyncOperation {
        self.operation(request)
    }

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
        metrics.set_principal(&principal);
        if let Some(device_id) = query_device_id(parts.uri.query()) {
            metrics.note_device(&device_id);
        }
        api.admit(&principal, authorization.unwrap_or_default())?;
        let idempotency_key =
            header_str(&parts.headers, "idempotency-key", "invalid_idempotency_key")?.map(str::to_owned);
        let network_quality =
            header_str(&parts.headers, "x-network-quality", "invalid_network_quality")?.map(str::to_owned);
        metrics.note_network(network_quality.as_deref());
        Ok(Caller {
            principal,
            idempotency_key,
            network_quality,
            accept_gzip: accepts_gzip(&parts.headers),
            metrics,
        })
    }
}

/// The `device_id` of a query string, if it has one.
fn query_device_id(query: Option<&str>) -> Option<String> {
    #[derive(Deserialize)]
    struct DeviceOnly {
        device_id: Option<String>,
    }
    serde_urlencoded::from_str::<DeviceOnly>(query?).ok()?.device_id
}

/// The top-level `device_id` of a JSON object, read up to the first thing wrong with the rest
/// (a syntax error, a wrong type, the end of a body cut at the size limit): which device a
/// refused request came from.
pub fn device_id_in(json: &[u8]) -> Option<String> {
    use serde::Deserializer as _;
    use serde::de::{IgnoredAny, MapAccess, Visitor};

    struct Scan<'a>(&'a mut Option<String>);
    impl<'de> Visitor<'de> for Scan<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "device_id" {
                    *self.0 = Some(map.next_value::<String>()?);
                    return Ok(());
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut found = None;
    let _ = serde_json::Deserializer::from_slice(json).deserialize_map(Scan(&mut found));
    found
}

/// When a request's body must have arrived: a request extension set by the server that accepted
/// the connection (its body read timeout, counted from the end of the headers). Past it,
/// [`read_body`] gives up with 408 `request_timeout`. Without it a body may take any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// Reads a request body: at most `max_body_bytes` on the wire and after decoding its
/// `Content-Encoding` (gzip; anything else is 415), and before the request's [`BodyDeadline`]
/// if it has one (408 otherwise). Its sizes, and on a refusal the device it names, are noted in
/// the request's [`RequestMetrics`].
pub async fn read_body(api: &SyncApi, request: Request) -> Result<Vec<u8>> {
    let limit = api.engine().config().max_body_bytes;
    let (parts, body) = request.into_parts();
    let metrics = parts.extensions.get::<RequestMetrics>().cloned().unwrap_or_default();
    let content_encoding = header_str(&parts.headers, "content-encoding", "invalid_content_encoding")?;
    // Refuse an unknown coding before reading a byte of the body.
    let encoding = Encoding::from_content_encoding(content_encoding)?;
    let read = read_bounded(body, limit);
    let read = match parts.extensions.get::<BodyDeadline>() {
        Some(BodyDeadline(deadline)) => match tokio::time::timeout_at(*deadline, read).await {
            Ok(read) => read,
            Err(_) => {
                return Err(ApiError::RequestTimeout("the request body did not arrive in time".to_owned()));
            }
        },
        None => read.await,
    };
    let raw = match read {
        Ok(raw) => raw,
        Err(BodyError::TooLarge(prefix)) => {
            if encoding == Encoding::Identity
                && let Some(device_id) = device_id_in(&prefix)
            {
                metrics.note_device(&device_id);
            }
            metrics.note_body(WireBytes { raw: prefix.len() as u64, sent: prefix.len() as u64 });
            return Err(ApiError::PayloadTooLarge(format!("the request body exceeds {limit} bytes")));
        }
        Err(BodyError::Read(e)) => {
            return Err(ApiError::bad_request(
                "malformed_body",
                format!("could not read the request body: {e}"),
            ));
        }
    };
    let sent = raw.len() as u64;
    metrics.note_body(WireBytes { raw: sent, sent });
    let decoded = sync_bandwidth::decompress(&raw, encoding, limit)?;
    metrics.note_body(WireBytes { raw: decoded.len() as u64, sent });
    Ok(decoded.into_owned())
}

enum BodyError {
    /// Over the limit: the first `limit` bytes.
    TooLarge(Vec<u8>),
    Read(axum::Error),
}

/// Reads at most `limit` bytes of `body`, keeping what was read when it is longer.
async fn read_bounded(body: axum::body::Body, limit: usize) -> std::result::Result<Vec<u8>, BodyError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else { continue };
        if buf.len() + data.len() > limit {
            buf.extend_from_slice(&data[..limit - buf.len()]);
            return Err(BodyError::TooLarge(buf));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Parses a request body into `T`, naming the offending field of a refusal.
///
/// Every body of the protocol is a JSON object (or `null` where a body is optional): a
/// top-level array is refused, although serde would read a struct from one. A number with a
/// zero fraction (`3.0`) is an integer to JSON Schema, and so to the OpenAPI document: where
/// an integer field refuses one, the body is read again with such numbers as integers.
///
/// A body with more than [`MAX_JSON_TOKENS`] structural characters is refused (413) before it
/// is parsed; serde_json's recursion limit (128) refuses deeper nesting (400).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::bad_request("invalid_request", "the request body must be a JSON object"));
    }
    if json_tokens_exceed(bytes, MAX_JSON_TOKENS) {
        return Err(ApiError::PayloadTooLarge(format!(
            "the request body holds more than {MAX_JSON_TOKENS} JSON values and members"
        )));
    }
    let first = match parse_exact(bytes) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Err(first);
    };
    if !integral_floats_to_integers(&mut value) {
        return Err(first);
    }
    serde_path_to_error::deserialize(value).map_err(|_| first)
}

/// Most structural characters (`{`, `[`, `,` and `:` outside strings) a JSON body may hold:
/// roughly one per array element and two per object member. A parsed value costs 50 to 200
/// bytes of memory, so without a bound 8 MiB of `[0,0,0,…]` (4 million values) or of
/// `{"a":0,"b":0,…}` would take hundreds of MiB for one request; with it, a body's values take
/// some tens of MiB at most. A push of 500 changes may still hold about 500 values per change.
pub const MAX_JSON_TOKENS: usize = 1 << 18;

/// Whether `bytes` holds more than `limit` structural characters outside strings (a scan that
/// allocates nothing; the JSON need not be valid).
fn json_tokens_exceed(bytes: &[u8], limit: usize) -> bool {
    let mut count = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b'{' | b'[' | b',' | b':') {
            count += 1;
            if count > limit {
                return true;
            }
        }
    }
    false
}

fn parse_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| json_error(&e))?;
    deserializer.end().map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// Turns every exact float with a zero fraction into that integer; whether any was.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) => match n.as_f64() {
            // Only where the float is exact (|f| ≤ 2^53): a larger one may be a rounded integer
            // out of range, which must stay refused.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= 2f64.powi(53) => {
                #[allow(clippy::cast_possible_truncation)]
                let integer = f as i64;
                *value = Value::from(integer);
                true
            }
            _ => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |any, v| integral_floats_to_integers(v) | any),
        Value::Object(map) => map.values_mut().fold(false, |any, v| integral_floats_to_integers(v) | any),
        _ => false,
    }
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
        let metrics = request.extensions().get::<RequestMetrics>().cloned().unwrap_or_default();
        let bytes = read_body(api, request).await?;
        parse_json(&bytes).map(JsonBody).inspect_err(|_| {
            if let Some(device_id) = device_id_in(&bytes) {
                metrics.note_device(&device_id);
            }
        })
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
pub(crate) fn json_response(status: StatusCode, body: EncodedBody) -> Response {
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
    let output = api.execute(caller.operation(request)).await?;
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
    if q.limit == Some(0) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be at least 1"));
    }
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
    let document = crate::openapi::document_json_for(&api);
    json_response(StatusCode::OK, EncodedBody { bytes: document.into_bytes(), content_encoding: None })
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_characters_are_counted_outside_strings_only() {
        assert!(!json_tokens_exceed(br#"{"a":[1,2]}"#, 4));
        assert!(json_tokens_exceed(br#"{"a":[1,2,3]}"#, 4));
        // Inside strings, escaped quotes included, nothing counts.
        assert!(!json_tokens_exceed(br#"{"a":"[,,,:\"{{{,"}"#, 2));
        assert!(!json_tokens_exceed(br#"{"a\\":"b"}"#, 2));
    }

    #[test]
    fn a_very_wide_body_is_413_before_parsing() {
        let mut wide = b"{\"device_id\":\"d\",\"changes\":[".to_vec();
        wide.extend(std::iter::repeat_n(b"0,".as_slice(), MAX_JSON_TOKENS).flatten());
        wide.extend_from_slice(b"0]}");
        let refused = parse_json::<PushRequest>(&wide).err().map(|e| e.status());
        assert_eq!(refused, Some(StatusCode::PAYLOAD_TOO_LARGE));
        let deep = format!(
            "{{\"device_id\":\"d\",\"changes\":[{{\"domain\":\"task\",\"data\":{}{}}}]}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let refused = parse_json::<PushRequest>(deep.as_bytes()).err().map(|e| e.code());
        assert_eq!(refused, Some("invalid_json"));
    }
}
