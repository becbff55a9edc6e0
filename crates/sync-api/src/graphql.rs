//! The GraphQL adapter (`POST /graphql`): the protocol's operations as queries and mutations
//! over the same operation interface as REST.
//!
//! Payloads and results are the protocol's JSON documents, carried as the `JSON` scalar: the
//! push result is the engine's stored response parsed as it is, so a push answers with the
//! same content on both transports and an idempotency key replays across them. The caller is
//! authenticated before the document is executed (401 without a valid token, as on REST);
//! an operation's own failures are GraphQL errors whose `extensions` carry the protocol's
//! `code` and the HTTP `status` REST would have answered with.
//!
//! The `changes` subscription (PROTOCOL.md section 11) runs over the `graphql-transport-ws`
//! protocol at `/graphql/ws` (and the older `graphql-ws` one): the socket is authenticated by
//! its `Authorization` header or by the `connection_init` payload (`{"Authorization": "Bearer
//! …"}` or `{"token": "…"}`), and each subscription follows a cursor through `sync-live`, as
//! server-sent events do, yielding the same pull responses.

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use async_graphql::{Context, Data, ErrorExtensions, Json, Object, Schema, Subscription};
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::http::HeaderMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sync_domain::protocol::{GraphqlRequest, PartialSyncRequest, PullRequest, PushRequest};
use sync_domain::store::Principal;
use sync_live::{CloseReason, LiveEvent, Next, StreamRequest};

use crate::error::ApiError;
use crate::operation::{OperationRequest, SyncApi, SyncOperation, Transport};
use crate::rest::{self, Caller};

/// The GraphQL schema type.
pub type SyncSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted (the schema is flat; this only stops abuse).
const MAX_DEPTH: usize = 16;
/// Most fields per query.
const MAX_COMPLEXITY: usize = 256;
/// Longest query document, in bytes. The depth and complexity limits apply to the parsed
/// document, and parsing costs hundreds of bytes of memory per field: 8 MiB of `{a a a …}`
/// would take over a GiB and seconds of CPU before being refused. Large inputs go in
/// `variables` (JSON, bounded as every body is).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Builds the schema (no data attached: each request carries its caller).
pub fn schema() -> SyncSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, for documentation and the snapshot test.
pub fn sdl() -> String {
    schema().sdl()
}

/// Per-request context: the API, the caller and its headers.
struct RequestContext {
    api: SyncApi,
    caller: Caller,
}

/// The GraphQL error of an [`ApiError`]: its message, with `code`, `status` and `details`
/// in `extensions`.
fn gql_error(e: ApiError) -> async_graphql::Error {
    {
        let status = e.status().as_u16();
        let body = e.body();
        async_graphql::Error::new(body.error.message).extend_with(|_, ext| {
            ext.set("code", body.error.code.clone());
            ext.set("status", status);
            if !body.error.details.is_null()
                && let Ok(details) = async_graphql::Value::from_json(body.error.details.clone())
            {
                ext.set("details", details);
            }
        })
    }
}

trait OrGql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> OrGql<T> for Result<T, ApiError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(gql_error)
    }
}

fn input<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::Internal(e.to_string()))?;
    rest::parse_json(&bytes)
}

/// Parses the input of a push or partial sync; a refused one is a failed sync of the device
/// it names, as on REST.
async fn sync_input<T: DeserializeOwned>(
    ctx: &Context<'_>,
    value: Value,
    kind: sync_domain::store::SyncEventKind,
) -> async_graphql::Result<T> {
    let device_id = value.get("device_id").and_then(Value::as_str).map(str::to_owned);
    match input(value) {
        Ok(parsed) => Ok(parsed),
        Err(refused) => {
            if let Ok(rc) = ctx.data::<RequestContext>() {
                let metrics = &rc.caller.metrics;
                if let Some(device_id) = device_id {
                    metrics.note_device(&device_id);
                }
                rc.api.record_refusal(metrics, kind, metrics.elapsed()).await;
            }
            Err(gql_error(refused))
        }
    }
}

async fn execute(
    ctx: &Context<'_>,
    request: OperationRequest,
    idempotency_key: Option<String>,
) -> async_graphql::Result<Json<Value>> {
    let rc = ctx.data::<RequestContext>()?;
    let caller = rc.caller.clone();
    let operation = SyncOperation {
        principal: caller.principal,
        idempotency_key: idempotency_key.or(caller.idempotency_key),
        network_quality: caller.network_quality,
        // The engine's pull body is not used here; the whole GraphQL response is encoded once.
        accept_gzip: false,
        transport: Transport::Graphql,
        request,
        metrics: caller.metrics,
    };
    let output = rc.api.execute(operation).await.gql()?;
    Ok(Json(output.to_json().gql()?))
}

/// Queries.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Changes after `cursor` (PROTOCOL.md section 5).
    #[allow(clippy::too_many_arguments)]
    async fn pull(
        &self,
        ctx: &Context<'_>,
        cursor: Option<String>,
        limit: Option<u32>,
        domains: Option<Vec<String>>,
        delta: Option<bool>,
        device_id: Option<String>,
        network_quality: Option<String>,
        hints: Option<bool>,
    ) -> async_graphql::Result<Json<Value>> {
        if limit == Some(0) {
            return Err(gql_error(ApiError::bad_request("invalid_limit", "limit must be at least 1")));
        }
        let request = PullRequest {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit,
            domains,
            delta: delta.unwrap_or(false),
            device_id,
            network_quality,
            hints: hints.unwrap_or(false),
        };
        execute(ctx, OperationRequest::Pull(request), None).await
    }

    /// The device's download queue.
    async fn queue_status(&self, ctx: &Context<'_>, device_id: String) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::QueueStatus { device_id }, None).await
    }

    /// Whether to sync now; with `deviceId`, also that device's next window (PROTOCOL.md
    /// section 12).
    async fn optimal_time(
        &self,
        ctx: &Context<'_>,
        device_id: Option<String>,
    ) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::OptimalTime { device_id }, None).await
    }

    /// A device's health (own device, or any device of the tenant for an admin).
    async fn device_health(
        &self,
        ctx: &Context<'_>,
        device_id: String,
    ) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::DeviceHealth { device_id }, None).await
    }

    /// The analytics dashboard (admin).
    async fn dashboard(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::Dashboard, None).await
    }

    /// The effective conflict policy of every domain.
    async fn policies(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::Policies, None).await
    }

    /// Logged conflicts, newest first (admin).
    async fn conflicts(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        limit: Option<i64>,
    ) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::Conflicts { status, limit }, None).await
    }
}

/// Mutations.
#[derive(Debug, Clone, Copy, Default)]
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// A push (PROTOCOL.md section 3); `input` is the REST body. Shares idempotency with REST.
    async fn push(
        &self,
        ctx: &Context<'_>,
        idempotency_key: String,
        input: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let request: PushRequest = sync_input(ctx, input.0, sync_domain::store::SyncEventKind::Push).await?;
        execute(ctx, OperationRequest::Push(request), Some(idempotency_key)).await
    }

    /// The most urgent pending items, without moving the cursor.
    async fn partial_sync(
        &self,
        ctx: &Context<'_>,
        input: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let request: PartialSyncRequest =
            sync_input(ctx, input.0, sync_domain::store::SyncEventKind::Partial).await?;
        execute(ctx, OperationRequest::PartialSync(request), None).await
    }

    /// Overrides a domain's conflict policy (admin); `input` is the REST body.
    async fn set_policy(
        &self,
        ctx: &Context<'_>,
        domain: String,
        input: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let update = self::input(input.0).gql()?;
        execute(ctx, OperationRequest::SetPolicy { domain, update }, None).await
    }

    /// Resolves a manual conflict (admin); `input` is `{"choose": …, "data": …}`.
    async fn resolve_conflict(
        &self,
        ctx: &Context<'_>,
        id: String,
        input: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let request = self::input(input.0).gql()?;
        execute(ctx, OperationRequest::ResolveConflict { id, request }, None).await
    }

    /// Creates an analytics snapshot of the last `time_window_hours` (admin).
    async fn create_snapshot(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1)] time_window_hours: i64,
    ) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::CreateSnapshot { time_window_hours }, None).await
    }
}

/// `POST /graphql`: authenticates, reads the body by the REST rules (size, encoding), runs the
/// document.
pub(crate) async fn handler(State(api): State<SyncApi>, caller: Caller, request: Request) -> Response {
    match run(api, caller, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// The executable request of a GraphQL-over-HTTP body, read strictly as the OpenAPI document
/// states it (`query` required, `operationName`, `variables` and `extensions` optional or null,
/// nothing else).
fn graphql_request(body: GraphqlRequest) -> Result<async_graphql::Request, ApiError> {
    if body.query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the GraphQL query exceeds {MAX_QUERY_BYTES} bytes (pass large inputs as variables)"
        )));
    }
    let mut gql = async_graphql::Request::new(body.query);
    if let Some(name) = body.operation_name {
        gql = gql.operation_name(name);
    }
    if let Some(variables) = body.variables {
        gql = gql.variables(async_graphql::Variables::from_json(Value::Object(variables)));
    }
    for (name, value) in body.extensions.unwrap_or_default() {
        let value = async_graphql::Value::from_json(value)
            .map_err(|e| ApiError::bad_request("invalid_request", format!("extensions.{name}: {e}")))?;
        gql.extensions.0.insert(name, value);
    }
    Ok(gql)
}

async fn run(api: SyncApi, caller: Caller, request: Request) -> Result<Response, ApiError> {
    let accept_gzip = caller.accept_gzip;
    let bytes = rest::read_body(&api, request).await?;
    let gql = graphql_request(rest::parse_json(&bytes)?)?;
    let schema = api.graphql_schema().clone();
    let gql = gql.data(RequestContext { api: api.clone(), caller });
    let response = schema.execute(gql).await;
    let body = api.encode_json(&response, accept_gzip)?;
    let mut http = (StatusCode::OK, body.bytes).into_response();
    http.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(encoding) = body.content_encoding {
        http.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    Ok(http)
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

/// The context of a subscription socket: the API and who opened it.
struct SubscriberContext {
    api: SyncApi,
    principal: Principal,
    /// The key its streams are counted under per token.
    token_key: String,
}

/// Subscriptions.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriptionRoot;

/// The GraphQL error that ends a subscription, with the protocol's code.
fn stream_error(code: &str, message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
}

#[Subscription]
impl SubscriptionRoot {
    /// The changes after `cursor` the caller may see, as pull responses (PROTOCOL.md section
    /// 11): the backlog in pages, then each batch as it commits. A cursor older than the purged
    /// history ends the subscription with the error `resync_required`; a server restart or a
    /// subscriber too slow to keep up ends it with `restarting` or `too_slow` (resubscribe
    /// with the last cursor).
    async fn changes(
        &self,
        ctx: &Context<'_>,
        cursor: Option<String>,
        domains: Option<Vec<String>>,
        delta: Option<bool>,
        device_id: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Json<Value>>> + use<>> {
        let sc = ctx.data::<SubscriberContext>()?;
        let request = StreamRequest {
            principal: sc.principal.clone(),
            cursor: cursor.filter(|c| !c.is_empty()),
            domains,
            delta: delta.unwrap_or(false),
            device_id,
            token_key: sc.token_key.clone(),
        };
        let subscription =
            sc.api.live().subscribe(request).map_err(|e| gql_error(crate::live::api_error(e)))?;
        Ok(futures_util::stream::unfold(Some(subscription), |state| async move {
            let mut subscription = state?;
            loop {
                let item = match subscription.next().await {
                    Next::Event(LiveEvent::Changes(reply)) => match reply.response() {
                        Ok(response) => match serde_json::to_value(&response) {
                            Ok(value) => return Some((Ok(Json(value)), Some(subscription))),
                            Err(e) => Err(stream_error("internal", e.to_string())),
                        },
                        Err(e) => Err(stream_error("internal", e.to_string())),
                    },
                    // Admin events and heartbeats are the other transports' (the protocol
                    // pings keep this socket alive).
                    Next::Event(LiveEvent::Heartbeat | LiveEvent::Conflict(_) | LiveEvent::Alert(_)) => {
                        continue;
                    }
                    Next::Event(LiveEvent::ResyncRequired) => {
                        Err(gql_error(ApiError::Engine(sync_domain::Error::ResyncRequired)))
                    }
                    Next::Closed(CloseReason::Replaced) | Next::End => return None,
                    Next::Closed(reason) => {
                        let (code, message) = crate::live::close_reason_parts(&reason);
                        Err(stream_error(code, message))
                    }
                };
                return Some((item, None));
            }
        }))
    }
}

/// The path of the subscription socket.
pub const WS_PATH: &str = "/graphql/ws";

/// graphql-transport-ws's close code for a refused `connection_init`.
const FORBIDDEN: u16 = 4403;

/// The credential of a `connection_init` payload: `{"Authorization": "Bearer …"}` (any case)
/// or `{"token": "…"}`.
fn init_authorization(payload: &Value) -> Option<String> {
    let object = payload.as_object()?;
    if let Some(token) = object.get("token").and_then(Value::as_str) {
        return Some(format!("Bearer {token}"));
    }
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
        .map(str::to_owned)
}

/// `GET /graphql/ws`: the subscription socket (`graphql-transport-ws` or `graphql-ws`).
pub(crate) async fn ws_handler(
    State(api): State<SyncApi>,
    headers: HeaderMap,
    protocol: Option<GraphqlProtocol>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(GraphqlProtocol(protocol)) = protocol else {
        return ApiError::bad_request(
            "invalid_protocol",
            "Sec-WebSocket-Protocol must offer graphql-transport-ws (or graphql-ws)",
        )
        .into_response();
    };
    let slot = match crate::live::connect(&api) {
        Ok(slot) => slot,
        Err(response) => return *response,
    };
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).max_message_size(crate::live::MAX_WS_MESSAGE).on_upgrade(
        move |socket| async move {
            let (mut sink, stream) = socket.split();
            let input = stream
                .take_while(|message| {
                    std::future::ready(matches!(message, Ok(m) if !matches!(m, Message::Close(_))))
                })
                .filter_map(|message| {
                    std::future::ready(match message {
                        Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
                        Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                        _ => None,
                    })
                });
            let init_api = api.clone();
            // graphql-transport-ws closes a refused `connection_init` with 4403 Forbidden
            // (async-graphql says 1002, its code for any protocol error).
            let refused = Arc::new(AtomicBool::new(false));
            let init_refused = refused.clone();
            let schema = api.graphql_schema().clone();
            let mut shutdown = api.live().hub().shutdown_signal();
            let mut outgoing = async_graphql::http::WebSocket::new(schema, input, protocol)
                .on_connection_init(move |payload| async move {
                    let authorization = header.or_else(|| init_authorization(&payload));
                    let principal = init_api.authenticate(authorization.as_deref()).await.map_err(|e| {
                        init_refused.store(true, Ordering::Release);
                        async_graphql::Error::new(e.to_string())
                    })?;
                    let credential =
                        authorization.as_deref().map(crate::live::bearer_credential).unwrap_or_default();
                    let token_key = crate::live::token_key(&principal, &credential);
                    let mut data = Data::default();
                    data.insert(SubscriberContext { api: init_api, principal, token_key });
                    Ok(data)
                });
            loop {
                let message = tokio::select! {
                    message = outgoing.next() => message,
                    () = sync_live::hub::until_set(&mut shutdown) => Some(WsMessage::Close(
                        crate::live::close::RESTART,
                        "the server is restarting; reconnect with your cursor".into(),
                    )),
                };
                let (frame, last) = match message {
                    Some(WsMessage::Text(text)) => (Message::Text(text.into()), false),
                    Some(WsMessage::Close(code, reason)) => {
                        let code = if refused.load(Ordering::Acquire) { FORBIDDEN } else { code };
                        (Message::Close(Some(CloseFrame { code, reason: reason.into() })), true)
                    }
                    None => break,
                };
                if sink.send(frame).await.is_err() || last {
                    break;
                }
            }
            drop(slot);
        },
    )
}

/// The subscription protocol a client offered in `Sec-WebSocket-Protocol`.
pub(crate) struct GraphqlProtocol(WebSocketProtocols);

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for GraphqlProtocol {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| value.to_str().ok())
            .and_then(|protocols| {
                protocols.split(',').find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
            })
            .map(GraphqlProtocol))
    }
}
