//! The GraphQL transport (`POST /graphql` and the subscription socket `/graphql/ws`) of the
//! typed schema in [`schema`].
//!
//! The caller is authenticated before the document is executed (401 without a valid token, as
//! on REST) and the body is read by the REST rules (size, encoding). Every error of the
//! response has the protocol's `code` and an HTTP `status` in its `extensions`: an operation's
//! failure its own, a document GraphQL refuses (syntax, unknown field, an input that is not of
//! its type) `invalid_request` and 400.
//!
//! The `changes` subscription (PROTOCOL.md section 11) runs over the `graphql-transport-ws`
//! protocol at `/graphql/ws` (and the older `graphql-ws` one): the socket is authenticated by
//! its `Authorization` header or by the `connection_init` payload (`{"Authorization": "Bearer
//! …"}` or `{"token": "…"}`), and each subscription follows a cursor through `sync-live`, as
//! server-sent events do, yielding the same pull responses.

pub mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sync_domain::protocol::GraphqlRequest;
use sync_domain::store::SyncEventKind;

use crate::error::ApiError;
use crate::http::{self, Caller};
use crate::operation::SyncApi;
pub use schema::{MutationRoot, QueryRoot, SubscriptionRoot, SyncSchema, sdl};
use schema::{RequestContext, SubscriberContext};

/// Longest query document, in bytes. The depth and complexity limits apply to the parsed
/// document, and parsing costs hundreds of bytes of memory per field: 8 MiB of `{a a a …}`
/// would take over a GiB and seconds of CPU before being refused. Large inputs go in
/// `variables` (JSON, bounded as every body is).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

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
    let bytes = http::read_body(&api, request).await?;
    let gql = graphql_request(http::parse_json(&bytes)?)?;
    let refused = refused_sync(&gql);
    let metrics = caller.metrics.clone();
    let gql = gql.data(RequestContext { api: api.clone(), caller });
    let response = schema::schema().execute(gql).await;
    // A push or partial sync whose input GraphQL refused never reached the operation
    // interface: it is still a failed sync of the device it names, as on REST.
    if response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && let Some((kind, device_id)) = refused
    {
        metrics.note_device(&device_id);
        api.record_refusal(&metrics, kind, metrics.elapsed()).await;
    }
    let response = with_codes(response);
    let body = api.encode_json(&response, accept_gzip)?;
    let mut http = (StatusCode::OK, body.bytes).into_response();
    http.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(encoding) = body.content_encoding {
        http.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    Ok(http)
}

/// The device sync a document asks for, if it is a push or partial sync whose `input` names a
/// device (literally or in a variable): what to record should GraphQL refuse the document
/// before it runs.
fn refused_sync(request: &async_graphql::Request) -> Option<(SyncEventKind, String)> {
    use async_graphql::parser::types::Selection;
    let document = async_graphql::parser::parse_query(&request.query).ok()?;
    document.operations.iter().find_map(|(_, operation)| {
        operation.node.selection_set.node.items.iter().find_map(|selection| {
            let Selection::Field(field) = &selection.node else { return None };
            let kind = match field.node.name.node.as_str() {
                "push" => SyncEventKind::Push,
                "partialSync" => SyncEventKind::Partial,
                _ => return None,
            };
            let input = field.node.get_argument("input")?;
            let input = input
                .node
                .clone()
                .into_const_with(|name| request.variables.get(&name).cloned().ok_or(()))
                .ok()?;
            let async_graphql::Value::Object(input) = input else { return None };
            let async_graphql::Value::String(device_id) = input.get("device_id")? else { return None };
            Some((kind, device_id.clone()))
        })
    })
}

/// Gives every error without a protocol `code` (one GraphQL itself raised: a syntax error, an
/// unknown field, an argument not of its type, a limit) `invalid_request` and status 400, as REST
/// refuses a body it cannot read.
fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "invalid_request");
            extensions.set("status", StatusCode::BAD_REQUEST.as_u16());
        }
    }
    response
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
            let schema = schema::schema();
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
