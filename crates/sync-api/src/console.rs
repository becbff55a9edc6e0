//! The operator console (PROTOCOL.md section 13): the page at `/console`, embedded in the
//! binary, and the admin endpoints only it needs beyond the dashboard: per-minute activity,
//! the device list and one device's recent syncs.
//!
//! The page is plain HTML, CSS and JavaScript with no build step and no external resource,
//! served under a self-only Content-Security-Policy (no inline script or style).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::error::Result;
use crate::http::{Caller, QueryParams};
use crate::operation::SyncApi;

/// Paths of the console and its endpoints.
pub mod paths {
    pub const CONSOLE: &str = "/console";
    pub const CONSOLE_SLASH: &str = "/console/";
    pub const SCRIPT: &str = "/console/console.js";
    pub const STYLE: &str = "/console/console.css";
    pub const ACTIVITY: &str = "/api/v1/sync/activity";
    pub const DEVICES: &str = "/api/v1/sync/devices";
    pub const DEVICE_SYNCS: &str = "/api/v1/sync/devices/{device_id}/syncs";
}

const INDEX_HTML: &str = include_str!("../console/index.html");
const SCRIPT_JS: &str = include_str!("../console/console.js");
const STYLE_CSS: &str = include_str!("../console/console.css");

/// The page may load and talk to its own origin only (`'self'` covers the same host's
/// WebSocket); nothing inline, no frames, no forms posted elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes, merged into the router (`router.rs`).
pub fn routes() -> Router<SyncApi> {
    Router::new()
        .route(paths::CONSOLE, get(index))
        .route(paths::CONSOLE_SLASH, get(|| async { Redirect::permanent(paths::CONSOLE) }))
        .route(paths::SCRIPT, get(script))
        .route(paths::STYLE, get(style))
        .route(paths::ACTIVITY, get(activity))
        .route(paths::DEVICES, get(devices))
        .route(paths::DEVICE_SYNCS, get(device_syncs))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    response
}

async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

async fn script() -> Response {
    asset(SCRIPT_JS, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

fn json<T: serde::Serialize>(api: &SyncApi, caller: &Caller, value: &T) -> Result<Response> {
    let body = api.encode_json(value, caller.accept_gzip)?;
    let mut response = (StatusCode::OK, body.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(encoding) = body.content_encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Ok(response)
}

/// `GET /api/v1/sync/activity` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Minutes back from now, 1..=1440 (`MAX_ACTIVITY_MINUTES`, default 60).
    pub minutes: Option<u32>,
}

async fn activity(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<ActivityQuery>,
) -> Result<Response> {
    // The engine checks the role before the range, so a device learns nothing from a 400.
    let activity = api.engine().activity(&caller.principal, q.minutes.unwrap_or(60)).await?;
    json(&api, &caller, &activity)
}

/// `?limit=…` of the device lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    pub limit: Option<i64>,
}

async fn devices(
    State(api): State<SyncApi>,
    caller: Caller,
    QueryParams(q): QueryParams<LimitQuery>,
) -> Result<Response> {
    let list = api.engine().device_list(&caller.principal, q.limit).await?;
    json(&api, &caller, &list)
}

async fn device_syncs(
    State(api): State<SyncApi>,
    Path(device_id): Path<String>,
    caller: Caller,
    QueryParams(q): QueryParams<LimitQuery>,
) -> Result<Response> {
    let syncs = api.engine().device_syncs(&caller.principal, &device_id, q.limit).await?;
    json(&api, &caller, &syncs)
}
