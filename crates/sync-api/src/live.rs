//! Live changes over HTTP (PROTOCOL.md section 11): long-poll (`pull?wait=S`), server-sent
//! events (`GET /api/v1/sync/stream`) and WebSocket (`GET /api/v1/sync/ws`).
//!
//! Every transport follows a cursor through `sync-live`, which reads with the pull path's own
//! filters; a notification only wakes a reader. Limits: `max_live_connections` per node (503
//! with a random `Retry-After`, WebSocket close 1013), `max_streams_per_token`, a bounded
//! buffer per subscriber (a slow one is told to reconnect), and graceful shutdown.

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sync_domain::protocol::{PullRequest, PullResponse};
use sync_domain::store::Principal;
use sync_live::{CloseReason, LiveError, LiveEvent, Next, ReadKey, StreamRequest, Subscription};
use tokio::time::Instant;

use crate::error::{ApiError, ErrorBody, ErrorDetail, Result};
use crate::http::{Caller, QueryParams};
use crate::operation::{OperationOutput, OperationRequest, SyncApi};

/// Paths of the live endpoints.
pub mod paths {
    pub const STREAM: &str = "/api/v1/sync/stream";
    pub const WS: &str = "/api/v1/sync/ws";
}

/// Longest `wait` of a long-poll, in seconds.
pub const MAX_WAIT_SECS: u32 = 60;
/// Largest WebSocket client message (bytes); a larger one closes with 1009.
pub const MAX_WS_MESSAGE: usize = 64 * 1024;
/// Largest message read off the socket at all (a larger one is refused by the WebSocket layer,
/// and the connection closes with 1009 too).
const WS_READ_LIMIT: usize = 1024 * 1024;

/// WebSocket close codes of the protocol.
pub mod close {
    /// Bad or missing credentials, or an unknown message.
    pub const POLICY: u16 = 1008;
    /// A message over 64 KiB.
    pub const TOO_BIG: u16 = 1009;
    /// The server is restarting: reconnect with your cursor.
    pub const RESTART: u16 = 1012;
    /// Over the connection limit, or too slow: retry later.
    pub const TRY_LATER: u16 = 1013;
    /// Nothing arrived for the idle timeout.
    pub const GOING_AWAY: u16 = 1001;
}

/// The API error of a live failure: the engine's own error keeps its code and status (a
/// read shared by several subscribers hands each a copy of its kind).
pub(crate) fn api_error(e: LiveError) -> ApiError {
    match e {
        LiveError::Engine(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(e) => ApiError::Engine(e),
            Err(shared) => ApiError::Engine(match &*shared {
                sync_domain::Error::BadRequest { code, message } => {
                    sync_domain::Error::BadRequest { code, message: message.clone() }
                }
                sync_domain::Error::ResyncRequired => sync_domain::Error::ResyncRequired,
                other if other.is_unavailable() => sync_domain::Error::Unavailable(other.to_string()),
                other => sync_domain::Error::Internal(other.to_string()),
            }),
        },
        LiveError::TooManyConnections { .. } | LiveError::Listen(_) | LiveError::ListenTask(_) => {
            ApiError::Engine(sync_domain::Error::Unavailable(e.to_string()))
        }
    }
}

/// 503 over the connection limit, with the hub's random `Retry-After`.
fn too_many(retry_after: u32) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: "too_many_connections".into(),
            message: "this node holds its maximum of live connections; retry later".into(),
            details: serde_json::Value::Null,
        },
    };
    let mut response =
        (StatusCode::SERVICE_UNAVAILABLE, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

pub(crate) fn connect(api: &SyncApi) -> std::result::Result<sync_live::ConnectionGuard, Box<Response>> {
    api.live().hub().try_connect().map_err(|e| {
        Box::new(match e {
            LiveError::TooManyConnections { retry_after } => too_many(retry_after),
            other => api_error(other).into_response(),
        })
    })
}

/// The key under which a credential's streams are counted (a hash; the credential itself is
/// not kept).
pub(crate) fn token_key(principal: &Principal, credential: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    credential.trim().hash(&mut hasher);
    format!("{}/{}/{:016x}", principal.tenant, principal.user, hasher.finish())
}

/// A comma-separated `domains` parameter as a list (blank entries dropped).
pub(crate) fn split_domains(domains: Option<String>) -> Option<Vec<String>> {
    domains.map(|d| d.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

// ---------------------------------------------------------------------------------------------
// Long-poll

/// `GET /api/v1/sync/pull?…&wait=S`: a pull that, when nothing is after the cursor, waits up to
/// `S` seconds for a change the caller may see.
pub(crate) async fn long_poll(
    api: &SyncApi,
    caller: Caller,
    request: PullRequest,
    wait: u32,
) -> Result<Response> {
    if !(1..=MAX_WAIT_SECS).contains(&wait) {
        return Err(ApiError::bad_request(
            "invalid_wait",
            format!("wait must be 1 to {MAX_WAIT_SECS} seconds"),
        ));
    }
    let _slot = match connect(api) {
        Ok(slot) => slot,
        Err(response) => return Ok(*response),
    };
    let live = api.live();
    let hub = live.hub();
    let deadline = Instant::now() + Duration::from_secs(u64::from(wait));
    let mut watch = hub.watch(&caller.principal.tenant);
    let mut shutdown = hub.shutdown_signal();
    watch.changes.borrow_and_update();
    let first = pull_once(api, &caller, &request).await?;
    if first.changes > 0 {
        return Ok(pull_response(first));
    }
    loop {
        tokio::select! {
            changed = watch.changes.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => break,
            () = sync_live::hub::until_set(&mut shutdown) => break,
        }
        // A cheap probe shared by every waiter of the same cursor and filters; only a caller
        // with something to get pulls for real.
        let generation = *watch.changes.borrow_and_update();
        let key = ReadKey::new(
            &caller.principal,
            request.domains.as_deref(),
            request.delta,
            request.cursor.as_deref(),
            1,
            generation,
        );
        match live.reader().read(&caller.principal, key).await {
            Ok(probe) if probe.changes == 0 => continue,
            Ok(_) => {}
            Err(e) if e.is_resync_required() => {}
            Err(e) => return Err(api_error(e)),
        }
        // Only one pull is counted per request.
        caller.metrics.take();
        let reply = pull_once(api, &caller, &request).await?;
        if reply.changes > 0 {
            return Ok(pull_response(reply));
        }
    }
    // Nothing came: the same cursor, no changes.
    let cursor = request.cursor.clone().unwrap_or(first.cursor);
    let response = PullResponse { changes: Vec::new(), cursor, has_more: false, remaining: 0 };
    let (body, json_len) = api.encode_measured(&response, caller.accept_gzip)?;
    Ok(pull_response(sync_domain::engine::PullReply {
        body: body.bytes,
        content_encoding: body.content_encoding,
        json_len,
        cursor: response.cursor,
        has_more: false,
        remaining: 0,
        changes: 0,
    }))
}

async fn pull_once(
    api: &SyncApi,
    caller: &Caller,
    request: &PullRequest,
) -> Result<sync_domain::engine::PullReply> {
    let op = caller
        .clone()
        .into_operation(crate::operation::Transport::Rest, OperationRequest::Pull(request.clone()));
    match api.execute(op).await? {
        OperationOutput::Pull(reply) => Ok(reply),
        _ => Err(ApiError::Internal("a pull answered with something else".into())),
    }
}

fn pull_response(reply: sync_domain::engine::PullReply) -> Response {
    crate::http::json_response(
        StatusCode::OK,
        crate::operation::EncodedBody { bytes: reply.body, content_encoding: reply.content_encoding },
    )
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

/// `GET /api/v1/sync/stream` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this cursor (a `Last-Event-ID` header wins over it); none: from the start.
    pub cursor: Option<String>,
    /// Comma-separated domains.
    pub domains: Option<String>,
    /// Send patches where the device holds an older version.
    pub delta: Option<bool>,
    /// Remember this device's cursor after each batch.
    pub device_id: Option<String>,
}

/// The bearer credential of a request, for counting streams per token.
fn credential(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(bearer_credential)
        .unwrap_or_default()
}

/// The credential of an `Authorization` value (`Bearer <credential>`), empty when there is none.
pub(crate) fn bearer_credential(authorization: &str) -> String {
    authorization.trim().split_once(' ').map(|(_, c)| c.trim().to_owned()).unwrap_or_default()
}

/// `GET /api/v1/sync/stream`: server-sent events of the changes after a cursor.
pub(crate) async fn sse(
    State(api): State<SyncApi>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<StreamQuery>,
) -> Result<Response> {
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request("invalid_cursor", "Last-Event-ID must be visible ASCII"))
        })
        .transpose()?
        .map(str::to_owned);
    let cursor = last_event_id.or(q.cursor).filter(|c| !c.is_empty());
    let slot = match connect(&api) {
        Ok(slot) => slot,
        Err(response) => return Ok(*response),
    };
    let request = StreamRequest {
        token_key: token_key(&caller.principal, &credential(&headers)),
        principal: caller.principal,
        cursor,
        domains: split_domains(q.domains),
        delta: q.delta.unwrap_or(false),
        device_id: q.device_id,
    };
    let subscription = api.live().subscribe(request).map_err(api_error)?;
    let events = futures_util::stream::unfold(Some((subscription, slot)), |state| async move {
        let (mut subscription, slot) = state?;
        let event = match subscription.next().await {
            Next::Event(event) => sse_event(event),
            Next::Closed(CloseReason::Replaced) | Next::End => return None,
            Next::Closed(reason) => {
                // Told to reconnect: this is the stream's last event.
                let event = Event::default().event("reconnect").data(close_reason(&reason));
                return Some((Ok::<_, Infallible>(event), None));
            }
        };
        let end = matches!(event.1, EventEnd::Last);
        Some((Ok(event.0), (!end).then_some((subscription, slot))))
    });
    let mut response = Sse::new(events).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

enum EventEnd {
    More,
    Last,
}

fn sse_event(event: LiveEvent) -> (Event, EventEnd) {
    match event {
        LiveEvent::Changes(reply) => (
            Event::default()
                .event("changes")
                .id(reply.cursor.clone())
                .data(String::from_utf8_lossy(&reply.body)),
            EventEnd::More,
        ),
        LiveEvent::Heartbeat => (Event::default().event("heartbeat").data("{}"), EventEnd::More),
        LiveEvent::ResyncRequired => (
            Event::default().event("resync_required").data(
                r#"{"error":{"code":"resync_required","message":"the cursor is older than the retained history; pull again without a cursor"}}"#,
            ),
            EventEnd::Last,
        ),
        LiveEvent::Conflict(conflict) => {
            (Event::default().event("conflict").data(json_line(&*conflict)), EventEnd::More)
        }
        LiveEvent::Alert(alert) => (Event::default().event("alert").data(json_line(&*alert)), EventEnd::More),
    }
}

fn json_line<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

fn close_reason(reason: &CloseReason) -> String {
    let (code, message) = close_reason_parts(reason);
    serde_json::json!({ "code": code, "message": message }).to_string()
}

/// The code and message that tell a subscriber why its stream ended.
pub(crate) fn close_reason_parts(reason: &CloseReason) -> (&'static str, String) {
    match reason {
        CloseReason::Slow => ("too_slow", "the stream fell behind; reconnect with your cursor".to_owned()),
        CloseReason::Shutdown => {
            ("restarting", "the server is restarting; reconnect with your cursor".to_owned())
        }
        CloseReason::Replaced => ("replaced", "a newer stream of this token replaced this one".to_owned()),
        CloseReason::Failed(cause) => {
            ("unavailable", format!("reading changes failed ({cause}); reconnect later"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/// A client message, once its `type` is known.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthMessage {
    #[serde(rename = "type")]
    _type: String,
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeMessage {
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    domains: Option<Vec<String>>,
    #[serde(default)]
    delta: bool,
    #[serde(default)]
    device_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckMessage {
    #[serde(rename = "type")]
    _type: String,
    cursor: String,
}

/// `GET /api/v1/sync/ws`.
pub(crate) async fn ws(
    State(api): State<SyncApi>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().map(str::to_owned).ok());
    upgrade.max_message_size(WS_READ_LIMIT).max_frame_size(WS_READ_LIMIT).on_upgrade(
        move |socket| async move {
            let mut session = WsSession { api, socket, subscription: None, device_id: None };
            session.run(authorization).await;
        },
    )
}

struct WsSession {
    api: SyncApi,
    socket: WebSocket,
    subscription: Option<Subscription>,
    device_id: Option<String>,
}

/// What handling a client message decided.
enum Step {
    Continue,
    Close(u16, &'static str),
}

impl WsSession {
    async fn run(&mut self, authorization: Option<Option<String>>) {
        let slot = match self.api.live().hub().try_connect() {
            Ok(slot) => slot,
            Err(_) => return self.close(close::TRY_LATER, "over the connection limit; retry later").await,
        };
        let config = self.api.live().hub().config().clone();
        let (principal, credential) = match self.authenticate(authorization, config.ws_auth_timeout()).await {
            Ok(found) => found,
            Err((code, reason)) => return self.close(code, reason).await,
        };
        let token_key = token_key(&principal, &credential);
        let mut shutdown = self.api.live().hub().shutdown_signal();
        let mut idle = Instant::now() + config.idle_timeout();
        loop {
            let step = tokio::select! {
                message = self.socket.recv() => {
                    idle = Instant::now() + config.idle_timeout();
                    match message {
                        None | Some(Err(_)) => {
                            // Gone, or a message over the read limit.
                            Step::Close(close::TOO_BIG, "message too big or connection lost")
                        }
                        Some(Ok(message)) => self.on_message(message, &principal, &token_key).await,
                    }
                }
                next = next_event(&mut self.subscription) => self.on_event(next).await,
                () = tokio::time::sleep_until(idle) => Step::Close(close::GOING_AWAY, "idle timeout"),
                () = sync_live::hub::until_set(&mut shutdown), if self.subscription.is_none() => {
                    Step::Close(close::RESTART, "the server is restarting; reconnect with your cursor")
                }
            };
            if let Step::Close(code, reason) = step {
                self.close(code, reason).await;
                break;
            }
        }
        drop(slot);
    }

    async fn authenticate(
        &mut self,
        authorization: Option<Option<String>>,
        timeout: Duration,
    ) -> std::result::Result<(Principal, String), (u16, &'static str)> {
        let header = match authorization {
            Some(Some(header)) => header,
            Some(None) => return Err((close::POLICY, "invalid Authorization header")),
            None => {
                let first = tokio::time::timeout(timeout, self.socket.recv())
                    .await
                    .map_err(|_| (close::POLICY, "no auth message in time"))?;
                let text = match first {
                    Some(Ok(Message::Text(text))) if text.len() <= MAX_WS_MESSAGE => text,
                    Some(Ok(Message::Text(_))) | Some(Err(_)) => {
                        return Err((close::TOO_BIG, "message over 64 KiB"));
                    }
                    _ => return Err((close::POLICY, "expected an auth message")),
                };
                let auth: AuthMessage = serde_json::from_str(text.as_str())
                    .ok()
                    .filter(|m: &AuthMessage| m._type == "auth")
                    .ok_or((close::POLICY, "expected {\"type\":\"auth\",\"token\":\"…\"}"))?;
                format!("Bearer {}", auth.token)
            }
        };
        let principal = self
            .api
            .authenticate(Some(&header))
            .await
            .map_err(|_| (close::POLICY, "invalid, revoked or expired token"))?;
        let credential = bearer_credential(&header);
        Ok((principal, credential))
    }

    async fn on_message(&mut self, message: Message, principal: &Principal, token_key: &str) -> Step {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(bytes) if bytes.len() > MAX_WS_MESSAGE => {
                return Step::Close(close::TOO_BIG, "message over 64 KiB");
            }
            Message::Binary(_) => {
                return Step::Close(close::POLICY, "binary messages are not part of the protocol");
            }
            Message::Ping(_) | Message::Pong(_) => return Step::Continue,
            Message::Close(_) => return Step::Close(1000, "bye"),
        };
        if text.len() > MAX_WS_MESSAGE {
            return Step::Close(close::TOO_BIG, "message over 64 KiB");
        }
        let value: serde_json::Value = match serde_json::from_str(text.as_str()) {
            Ok(value) => value,
            Err(e) => return self.error("invalid_json", format!("invalid JSON: {e}")).await,
        };
        let kind = value.get("type").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        match kind.as_str() {
            "subscribe" => {
                let message: SubscribeMessage = match serde_json::from_value(value) {
                    Ok(m) => m,
                    Err(e) => return self.error("invalid_request", e.to_string()).await,
                };
                let request = StreamRequest {
                    principal: principal.clone(),
                    cursor: message.cursor.filter(|c| !c.is_empty()),
                    domains: message.domains,
                    delta: message.delta,
                    device_id: message.device_id.clone(),
                    token_key: token_key.to_owned(),
                };
                // A new subscription replaces this connection's previous one.
                self.subscription = None;
                match self.api.live().subscribe(request) {
                    Ok(subscription) => {
                        self.subscription = Some(subscription);
                        self.device_id = message.device_id;
                        Step::Continue
                    }
                    Err(e) => {
                        let e = api_error(e);
                        self.error(e.code(), e.to_string()).await
                    }
                }
            }
            "ack" => {
                let message: AckMessage = match serde_json::from_value(value) {
                    Ok(m) => m,
                    Err(e) => return self.error("invalid_request", e.to_string()).await,
                };
                let Some(device) = self.device_id.clone() else {
                    return self
                        .error("missing_device_id", "ack needs a subscription with a device_id".into())
                        .await;
                };
                match self.api.engine().remember_cursor(principal, &device, &message.cursor).await {
                    Ok(()) => Step::Continue,
                    Err(e) => {
                        let e = ApiError::from(e);
                        self.error(e.code(), e.to_string()).await
                    }
                }
            }
            "auth" => self.error("already_authenticated", "this connection is authenticated".into()).await,
            _ => Step::Close(close::POLICY, "unknown message type"),
        }
    }

    async fn on_event(&mut self, next: Next) -> Step {
        let text = match next {
            Next::Event(LiveEvent::Changes(reply)) => changes_message(&reply.body),
            Next::Event(LiveEvent::Heartbeat) => {
                if self.socket.send(Message::Ping(Default::default())).await.is_err() {
                    return Step::Close(close::GOING_AWAY, "connection lost");
                }
                r#"{"type":"heartbeat"}"#.to_owned()
            }
            Next::Event(LiveEvent::ResyncRequired) => {
                self.subscription = None;
                r#"{"type":"resync_required"}"#.to_owned()
            }
            Next::Event(LiveEvent::Conflict(conflict)) => {
                serde_json::json!({ "type": "conflict", "conflict": *conflict }).to_string()
            }
            Next::Event(LiveEvent::Alert(alert)) => {
                serde_json::json!({ "type": "alert", "alert": *alert }).to_string()
            }
            Next::End => {
                self.subscription = None;
                return Step::Continue;
            }
            Next::Closed(CloseReason::Shutdown) => {
                return Step::Close(close::RESTART, "the server is restarting; reconnect with your cursor");
            }
            Next::Closed(CloseReason::Slow) => {
                return Step::Close(close::TRY_LATER, "too slow; reconnect with your cursor");
            }
            Next::Closed(CloseReason::Replaced) => {
                return Step::Close(close::POLICY, "a newer stream of this token replaced this one");
            }
            Next::Closed(CloseReason::Failed(_)) => {
                return Step::Close(close::TRY_LATER, "reading changes failed; retry later");
            }
        };
        if self.socket.send(Message::Text(text.into())).await.is_err() {
            return Step::Close(close::GOING_AWAY, "connection lost");
        }
        Step::Continue
    }

    async fn error(&mut self, code: &str, message: String) -> Step {
        let text =
            serde_json::json!({ "type": "error", "error": { "code": code, "message": message } }).to_string();
        if self.socket.send(Message::Text(text.into())).await.is_err() {
            return Step::Close(close::GOING_AWAY, "connection lost");
        }
        Step::Continue
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}

/// The next event of a subscription, or never when there is none.
async fn next_event(subscription: &mut Option<Subscription>) -> Next {
    match subscription {
        Some(subscription) => subscription.next().await,
        None => std::future::pending().await,
    }
}

/// `{"type":"changes", …the fields of a pull response}` from a pull body (a JSON object).
fn changes_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => r#"{"type":"changes"}"#.to_owned(),
        Some(rest) => format!(r#"{{"type":"changes",{rest}"#),
        None => r#"{"type":"changes"}"#.to_owned(),
    }
}
