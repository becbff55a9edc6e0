//! Security checks (issue 19): tenant isolation over every endpoint, and unit scoping on every
//! read path, on SQLite and PostgreSQL.
//!
//! **Tenant isolation.** Tenant B (`other`) holds data of every kind the API serves: records in
//! every domain, conflicts (a pending `manual_required` one, one an admin resolved, automatic
//! ones), devices with cursors and health, policies, an idempotency key, webhooks with queued
//! deliveries, snapshots, alerts, an anomaly, risk scores and planned sync windows. Every text of
//! it carries [`MARKER`], and some figures only B has (a clock skew, a risk, a confidence, an
//! observed value). Tenant A (`acme`) then calls every endpoint (REST, GraphQL, long-poll,
//! server-sent events, the probes) with its device, unit-limited device and admin tokens, naming
//! B's ids (records, conflicts, devices, webhooks, deliveries, snapshots, alerts, anomalies, B's
//! idempotency key and cursors) or random ones: first each endpoint in turn, then
//! proptest-chosen requests. Every answer must:
//! 1. contain nothing of B: not the marker, not B's figures, not a B id that the request did
//!    not name (nor A ever gave one of its own records, devices or webhooks);
//! 2. change nothing of B: every row of B in every table stays as it was;
//! 3. be a 4xx (404 for B's conflicts, webhooks and devices; 403 for the wrong role) or a 2xx,
//!    never a 5xx.
//!
//! At the end B's admin reads what it read before, and A's live streams (server-sent events,
//! WebSocket, GraphQL subscription) hear nothing of B's new changes and conflicts.
//!
//! **Unit scoping.** Tokens limited to units (stored tokens and a JWT, devices and an admin)
//! never receive a record of another unit on any read path: pull (pages, domains, delta, hints),
//! GraphQL pull, queue status, partial sync, optimal time, push results, long-poll, server-sent
//! events, WebSocket and the GraphQL subscription; and they receive exactly what an unlimited
//! reader sees, filtered to their units.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use diesel::prelude::*;
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use sync_domain::protocol::Cursor;
use sync_domain::store::{self, Role};
use sync_domain::{Backend, Database, DbConnection};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

/// In every text of tenant B, and nowhere else.
const MARKER: &str = "b-secret-9f41d7";
const TENANT_A: &str = "acme";
const TENANT_B: &str = "other";
const DOMAINS: [&str; 6] = ["task", "ticket", "journal", "attendance", "work_order", "voice_note"];
/// Figures only B's stored data has (a risk, a planned window's confidence, an anomaly's
/// observed value, its risk model's AUC); B's clock skew is added once known.
const B_FIGURES: [&str; 4] = ["0.91827364", "0.31415926", "4242.4242", "0.86420975"];
/// B's idempotency key, used by B's user `u1` (a name A has too) on `B_SHARED_DEVICE`.
const B_SHARED_KEY: &str = "shared-key-b";
const B_SHARED_DEVICE: &str = "dev-shared-b";
/// A webhook name both tenants use.
const SHARED_HOOK: &str = "alerts";
/// Cases of each property.
const CASES: u32 = 32;

/// The properties' runner. The cases share one server whose state each case moves on, so a
/// failure is reported as found: shrinking would replay cases against a different state.
fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: CASES,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn gql(query: &str, variables: Value) -> Value {
    json!({"query": crate::common::gql_doc(query), "variables": variables})
}

/// Data of a record of `domain` (valid for a new record), with `text` in it.
fn record_data(domain: &str, text: &str) -> Value {
    match domain {
        "task" => json!({"title": format!("task {text}"), "status": "ASSIGNED", "description": text}),
        "ticket" => json!({"title": format!("ticket {text}"), "status": "NEW", "description": text}),
        "journal" => json!({"title": format!("journal {text}"), "notes": text}),
        "attendance" => json!({"status": "PENDING", "event": "check_in", "note": text}),
        "work_order" => json!({"title": format!("order {text}"), "vendor": text}),
        _ => json!({"title": format!("voice {text}"), "transcript": text}),
    }
}

fn upsert(domain: &str, mobile_id: &str, base_version: i64, data: Value, modified_at: &str) -> Value {
    json!({"domain": domain, "mobile_id": mobile_id, "base_version": base_version, "op": "upsert",
           "data": data, "modified_at": modified_at})
}

fn ids_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| v[field].as_str().unwrap().to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// A tenant's rows, whatever the table

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    line: String,
}

fn lines(conn: &mut DbConnection, sql: &str) -> Vec<String> {
    let rows = match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(sql).load::<Line>(c),
        DbConnection::Pg(c) => diesel::sql_query(sql).load::<Line>(c),
    };
    rows.unwrap_or_else(|e| panic!("{e}: {sql}")).into_iter().map(|l| l.line).collect()
}

/// One query that reads every row of `tenant` in every table, each as one line of text
/// (`table|col1|col2|…`), sorted.
fn tenant_rows_query(db: &Database, tenant: &str) -> String {
    db.run_sync(|conn| {
        let mut parts = Vec::new();
        for table in sync_domain::schema::ALL_TABLES {
            let columns_sql = match conn {
                DbConnection::Sqlite(_) => format!("SELECT name AS line FROM pragma_table_info('{table}') ORDER BY cid"),
                DbConnection::Pg(_) => format!(
                    "SELECT column_name::text AS line FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
                ),
            };
            let columns = lines(conn, &columns_sql);
            assert!(!columns.is_empty(), "table {table} has no columns");
            let row = columns
                .iter()
                .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '~')"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let key = if *table == "tenants" { "id" } else { "tenant_id" };
            parts.push(format!("SELECT '{table}|' || {row} AS line FROM \"{table}\" WHERE \"{key}\" = '{tenant}'"));
        }
        Ok(parts.join(" UNION ALL ") + " ORDER BY 1")
    })
    .unwrap()
}

fn tenant_rows(db: &Database, query: &str) -> Vec<String> {
    db.run_sync(|conn| Ok(lines(conn, query))).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Server-sent events in process

/// Reads server-sent events off an in-process response body.
struct SseBody {
    body: axum::body::BodyDataStream,
    buffer: String,
}

impl SseBody {
    fn new(response: axum::response::Response) -> Self {
        SseBody { body: response.into_body().into_data_stream(), buffer: String::new() }
    }

    /// The next event (name, data), or `None` when nothing came within `wait` or it ended.
    async fn next(&mut self, wait: Duration) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue;
                }
                return Some((event, data));
            }
            let chunk = tokio::time::timeout(wait, self.body.next()).await.ok()??.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSockets (a real listener: an upgrade needs a connection)

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Listener {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(app: &TestApp) -> Listener {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Listener { base, task }
}

async fn ws_send(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into())).await.unwrap();
}

/// The next JSON text message within `wait` (heartbeats and pings skipped).
async fn ws_next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(wait, ws.next()).await.ok()??.ok()?;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == "ping" {
                ws_send(ws, json!({"type": "pong"})).await;
                continue;
            }
            if value["type"] != "heartbeat" {
                return Some(value);
            }
        }
    }
}

/// The sync WebSocket, authenticated by header and subscribed with `subscribe`.
async fn sync_ws(listener: &Listener, token: &str, subscribe: Value) -> Ws {
    let mut request = format!("{}/api/v1/sync/ws", listener.base).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws_send(&mut ws, subscribe).await;
    ws
}

/// A `graphql-transport-ws` socket with one `changes` subscription (id `s`).
async fn graphql_ws(listener: &Listener, token: &str, variables: Value) -> Ws {
    let mut request = format!("{}/graphql/ws", listener.base).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws_send(&mut ws, json!({"type": "connection_init", "payload": {"token": token}})).await;
    let ack = ws_next(&mut ws, Duration::from_secs(20)).await.unwrap();
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let query = crate::common::gql_doc(
        "subscription($c: String, $d: String) { changes(cursor: $c, deviceId: $d) { ...Pull } }",
    );
    ws_send(
        &mut ws,
        json!({"id": "s", "type": "subscribe", "payload": {"query": query, "variables": variables}}),
    )
    .await;
    ws
}

/// The pull response a live message carries (sync WebSocket `changes`, GraphQL `next`).
fn live_batch(message: &Value) -> Option<&Value> {
    match message["type"].as_str() {
        Some("changes") => Some(message),
        Some("next") => Some(&message["payload"]["data"]["changes"]),
        _ => None,
    }
}

// =============================================================================================
// Tenant isolation

/// Who in tenant A sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// Device user `u1` (a user name tenant B has too).
    Device,
    /// Device user `u2`.
    Device2,
    /// Device user `n1`, limited to unit `north` (a unit name tenant B uses too).
    North,
    /// Admin `boss` (an admin name tenant B has too).
    Admin,
}

const CALLERS: [Caller; 4] = [Caller::Device, Caller::Device2, Caller::North, Caller::Admin];

impl Caller {
    fn user(self) -> &'static str {
        match self {
            Caller::Device => "u1",
            Caller::Device2 => "u2",
            Caller::North => "n1",
            Caller::Admin => "boss",
        }
    }
}

/// Every route of the API (REST, GraphQL operations, live transports over HTTP, probes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Push,
    Pull,
    LongPoll,
    QueueStatus,
    Partial,
    OptimalTime,
    Policies,
    SetPolicy,
    Conflicts,
    Resolve,
    Dashboard,
    Snapshot,
    DeviceHealth,
    Anomalies,
    ConflictRisk,
    Webhooks,
    Webhook,
    PutWebhook,
    DeleteWebhook,
    Deliveries,
    Activity,
    Devices,
    DeviceSyncs,
    Stream,
    GqlPull,
    GqlQueueStatus,
    GqlOptimalTime,
    GqlDeviceHealth,
    GqlDashboard,
    GqlPolicies,
    GqlConflicts,
    GqlPush,
    GqlPartial,
    GqlSetPolicy,
    GqlResolve,
    GqlSnapshot,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Console,
}

use Endpoint as E;

const ENDPOINTS: [Endpoint; 41] = [
    E::Push,
    E::Pull,
    E::LongPoll,
    E::QueueStatus,
    E::Partial,
    E::OptimalTime,
    E::Policies,
    E::SetPolicy,
    E::Conflicts,
    E::Resolve,
    E::Dashboard,
    E::Snapshot,
    E::DeviceHealth,
    E::Anomalies,
    E::ConflictRisk,
    E::Webhooks,
    E::Webhook,
    E::PutWebhook,
    E::DeleteWebhook,
    E::Deliveries,
    E::Activity,
    E::Devices,
    E::DeviceSyncs,
    E::Stream,
    E::GqlPull,
    E::GqlQueueStatus,
    E::GqlOptimalTime,
    E::GqlDeviceHealth,
    E::GqlDashboard,
    E::GqlPolicies,
    E::GqlConflicts,
    E::GqlPush,
    E::GqlPartial,
    E::GqlSetPolicy,
    E::GqlResolve,
    E::GqlSnapshot,
    E::Healthz,
    E::Readyz,
    E::Metrics,
    E::OpenApi,
    E::Console,
];

/// Which of B's ids an endpoint's first id slot takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Record,
    Conflict,
    Device,
    Hook,
    Cursor,
    Nothing,
}

impl Endpoint {
    fn admin_only(self) -> bool {
        matches!(
            self,
            E::SetPolicy
                | E::Conflicts
                | E::Resolve
                | E::Dashboard
                | E::Snapshot
                | E::Anomalies
                | E::ConflictRisk
                | E::Webhooks
                | E::Webhook
                | E::PutWebhook
                | E::DeleteWebhook
                | E::Deliveries
                | E::Activity
                | E::Devices
                | E::DeviceSyncs
                | E::GqlDashboard
                | E::GqlConflicts
                | E::GqlSetPolicy
                | E::GqlResolve
                | E::GqlSnapshot
        )
    }

    /// The probes and documents: no token.
    fn public(self) -> bool {
        matches!(self, E::Healthz | E::Readyz | E::Metrics | E::OpenApi | E::Console)
    }

    fn graphql(self) -> bool {
        matches!(
            self,
            E::GqlPull
                | E::GqlQueueStatus
                | E::GqlOptimalTime
                | E::GqlDeviceHealth
                | E::GqlDashboard
                | E::GqlPolicies
                | E::GqlConflicts
                | E::GqlPush
                | E::GqlPartial
                | E::GqlSetPolicy
                | E::GqlResolve
                | E::GqlSnapshot
        )
    }

    fn slot(self) -> Slot {
        match self {
            E::Push | E::GqlPush | E::ConflictRisk => Slot::Record,
            E::Resolve | E::GqlResolve => Slot::Conflict,
            E::QueueStatus
            | E::Partial
            | E::OptimalTime
            | E::DeviceHealth
            | E::DeviceSyncs
            | E::GqlQueueStatus
            | E::GqlOptimalTime
            | E::GqlDeviceHealth
            | E::GqlPartial => Slot::Device,
            E::Webhook | E::PutWebhook | E::DeleteWebhook | E::Deliveries => Slot::Hook,
            E::Pull | E::LongPoll | E::Stream | E::GqlPull => Slot::Cursor,
            _ => Slot::Nothing,
        }
    }
}

/// One request of A: an endpoint, who sends it, the ids it names (`id` in the endpoint's main
/// slot, `id2` in a second one: a push's device, a pull's device) and bits that pick the other
/// parameters.
#[derive(Debug, Clone)]
struct Call {
    endpoint: Endpoint,
    caller: Caller,
    id: String,
    id2: String,
    flags: u8,
}

/// An HTTP request, built.
struct Built {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Built {
    fn get(path: String) -> Self {
        Built { method: Method::GET, path, headers: Vec::new(), body: None }
    }
    fn with(method: Method, path: String, body: Value) -> Self {
        Built { method, path, headers: Vec::new(), body: Some(body) }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    /// Everything the request says (what an answer may echo).
    fn text(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        format!(
            "{} {} {} {}",
            self.method,
            self.path,
            headers.join(" "),
            self.body.as_ref().map(Value::to_string).unwrap_or_default()
        )
    }
}

fn query(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// What an answer said.
struct Answer {
    status: StatusCode,
    text: String,
    /// The `extensions.status` of each GraphQL error.
    gql_statuses: Vec<u64>,
}

/// What tenant B has, as its own admin read it.
struct BData {
    /// (domain, mobile_id) of B's records.
    records: Vec<(String, String)>,
    /// Conflicts: pending, resolved and automatic.
    conflicts: Vec<String>,
    devices: Vec<String>,
    /// B's webhook names that A does not have.
    hooks: Vec<String>,
    deliveries: Vec<String>,
    snapshots: Vec<String>,
    alerts: Vec<String>,
    anomalies: Vec<String>,
    cursors: Vec<String>,
    /// Texts and figures only B has: never in an answer to A.
    secrets: Vec<String>,
    /// What B's admin reads through the API.
    view: Value,
}

impl BData {
    /// Ids that a client makes (A may make the same ones for itself).
    fn client_ids(&self) -> impl Iterator<Item = &String> {
        self.records.iter().map(|(_, id)| id).chain(&self.devices).chain(&self.hooks)
    }

    /// Ids the server makes for B.
    fn server_ids(&self) -> impl Iterator<Item = &String> {
        self.conflicts
            .iter()
            .chain(&self.deliveries)
            .chain(&self.snapshots)
            .chain(&self.alerts)
            .chain(&self.anomalies)
    }

    fn domain_of(&self, mobile_id: &str) -> Option<&str> {
        self.records.iter().find(|(_, id)| id == mobile_id).map(|(d, _)| d.as_str())
    }

    /// Every id of B, for proptest to choose from.
    fn pool(&self) -> Vec<String> {
        let mut pool: Vec<String> =
            self.client_ids().chain(self.server_ids()).chain(&self.cursors).cloned().collect();
        pool.push(B_SHARED_KEY.to_owned());
        pool.push(SHARED_HOOK.to_owned());
        pool
    }

    fn of_slot(&self, slot: Slot) -> Vec<String> {
        match slot {
            Slot::Record => self.records.iter().map(|(_, id)| id.clone()).collect(),
            Slot::Conflict => self.conflicts.clone(),
            Slot::Device => self.devices.clone(),
            Slot::Hook => {
                let mut hooks = self.hooks.clone();
                hooks.push(SHARED_HOOK.to_owned());
                hooks
            }
            Slot::Cursor => self.cursors.clone(),
            Slot::Nothing => Vec::new(),
        }
    }
}

/// What A did so far, to know which answers are right.
#[derive(Default)]
struct Seen {
    /// Every id A has named where a request makes something of A's (a record's or a device's
    /// id, a webhook's name): A may have a thing of that id now.
    owned: BTreeSet<String>,
    /// A's webhooks.
    webhooks: BTreeSet<String>,
    /// (user, device, key) of A's pushes.
    push_keys: BTreeSet<(String, String, String)>,
    requests: u64,
}

struct Isolation {
    app: TestApp,
    north: String,
    b: BData,
    b_rows_query: String,
    b_rows: Vec<String>,
    seen: RefCell<Seen>,
    /// Last: the app goes before its runtime.
    rt: tokio::runtime::Runtime,
}

impl Isolation {
    fn token(&self, caller: Caller) -> &str {
        match caller {
            Caller::Device => &self.app.device,
            Caller::Device2 => &self.app.device2,
            Caller::North => &self.north,
            Caller::Admin => &self.app.admin,
        }
    }

    fn build(&self, call: &Call, n: u64) -> Built {
        let Call { endpoint, id, id2, flags, .. } = call;
        let flags = *flags;
        let bit = |b: u8| flags & (1 << b) != 0;
        let pick = |options: &[&'static str]| options[usize::from(flags) % options.len()];
        let push_input = || {
            let domain = self.b.domain_of(id).unwrap_or(DOMAINS[usize::from(flags) % DOMAINS.len()]);
            let base_version = [0, 1, 2, 7][usize::from(flags >> 5 & 3)];
            let mut change = json!({"domain": domain, "mobile_id": id, "base_version": base_version,
                                    "modified_at": "2026-11-22T09:58:00Z"});
            match flags >> 3 & 3 {
                1 => {
                    change["op"] = json!("patch");
                    change["patch"] = json!([{"op": "add", "path": "/note", "value": "A patched"}]);
                }
                2 => change["op"] = json!("delete"),
                _ => {
                    change["op"] = json!("upsert");
                    change["data"] = record_data(domain, "from A");
                }
            }
            let key = if bit(7) { B_SHARED_KEY.to_owned() } else { format!("a-key-{n}") };
            (json!({"device_id": id2, "changes": [change]}), key)
        };
        // A pull's parameters: a cursor (B's) and a device, or only a device.
        let pull_params = |wait: bool| {
            let mut pairs = vec![("limit", "1000".to_owned())];
            if bit(0) {
                pairs.push(("cursor", id.clone()));
                if bit(1) {
                    pairs.push(("device_id", id2.clone()));
                }
            } else {
                pairs.push(("device_id", id.clone()));
            }
            if bit(2) {
                pairs.push(("delta", "true".to_owned()));
            }
            if bit(3) {
                pairs.push(("hints", "true".to_owned()));
            }
            if wait {
                pairs.push(("wait", "1".to_owned()));
            }
            pairs
        };
        let slash = if bit(6) { "/" } else { "" };
        let graphql =
            |q: &str, variables: Value| Built::with(Method::POST, "/graphql".into(), gql(q, variables));
        let policy = json!({"policy": pick(&["client_wins", "server_wins", "most_recent_wins", "field_merge", "manual"]),
                            "auto_resolve": bit(1), "notify_on_conflict": bit(2)});
        let policy_domain =
            if bit(5) { id.clone() } else { DOMAINS[usize::from(flags) % DOMAINS.len()].to_owned() };
        let resolution = match flags % 3 {
            0 => json!({"choose": "server"}),
            1 => json!({"choose": "client"}),
            _ => json!({"choose": "custom", "data": {"title": "A custom", "status": "NEW"}}),
        };
        let partial =
            json!({"device_id": id, "priority": pick(&["low", "medium", "high"]), "max_items": 1000});
        let built = match endpoint {
            E::Push => {
                let (body, key) = push_input();
                Built::with(Method::POST, "/api/v1/sync/push".into(), body).header("idempotency-key", key)
            }
            E::Pull => Built::get(format!("/api/v1/sync/pull?{}", query(&pull_params(false)))),
            E::LongPoll => Built::get(format!("/api/v1/sync/pull?{}", query(&pull_params(true)))),
            E::QueueStatus => {
                Built::get(format!("/api/v1/sync/queue-status?{}", query(&[("device_id", id.clone())])))
            }
            E::Partial => Built::with(Method::POST, "/api/v1/sync/partial".into(), partial),
            E::OptimalTime if bit(5) => Built::get("/api/v1/sync/optimal-time".into()),
            E::OptimalTime => {
                Built::get(format!("/api/v1/sync/optimal-time?{}", query(&[("device_id", id.clone())])))
            }
            E::Policies => Built::get("/api/v1/sync/policies".into()),
            E::SetPolicy => {
                Built::with(Method::PUT, format!("/api/v1/sync/policies/{policy_domain}"), policy)
            }
            E::Conflicts => Built::get(format!(
                "/api/v1/sync/conflicts?limit=500&status={}",
                ["all", "pending", "resolved", "auto"][usize::from(flags >> 2) % 4]
            )),
            E::Resolve => {
                Built::with(Method::POST, format!("/api/v1/sync/conflicts/{id}/resolve"), resolution)
            }
            E::Dashboard => Built::get(format!("/api/sync/dashboard{slash}")),
            E::Snapshot => Built::with(
                Method::POST,
                format!("/api/sync/snapshot/create{slash}"),
                json!({"time_window_hours": 24}),
            ),
            E::DeviceHealth => {
                Built::get(format!("/api/sync/device-health{slash}?{}", query(&[("device_id", id.clone())])))
            }
            E::Anomalies => Built::get("/api/v1/sync/anomalies?limit=500&since=2000-01-01T00:00:00Z".into()),
            E::ConflictRisk => match self.b.domain_of(id) {
                Some(domain) => Built::get(format!("/api/v1/sync/conflict-risk?limit=500&domain={domain}")),
                None => Built::get("/api/v1/sync/conflict-risk?limit=500".into()),
            },
            E::Webhooks => Built::get("/api/v1/sync/webhooks".into()),
            E::Webhook => Built::get(format!("/api/v1/sync/webhooks/{id}")),
            E::PutWebhook => Built::with(
                Method::PUT,
                format!("/api/v1/sync/webhooks/{id}"),
                json!({"url": "https://a.example/hooks/in", "secret": "a-secret-0123456789", "events": ["alert", "conflict"]}),
            ),
            E::DeleteWebhook => Built {
                method: Method::DELETE,
                path: format!("/api/v1/sync/webhooks/{id}"),
                headers: Vec::new(),
                body: None,
            },
            E::Deliveries => Built::get(format!("/api/v1/sync/webhooks/{id}/deliveries?limit=500")),
            E::Activity => Built::get("/api/v1/sync/activity?minutes=1440".into()),
            E::Devices => Built::get("/api/v1/sync/devices?limit=5000".into()),
            E::DeviceSyncs => Built::get(format!("/api/v1/sync/devices/{id}/syncs?limit=200")),
            E::Stream => {
                let pairs: Vec<(&str, String)> = pull_params(false)
                    .into_iter()
                    .filter(|(k, _)| !matches!(*k, "limit" | "hints"))
                    .collect();
                let built = Built::get(format!("/api/v1/sync/stream?{}", query(&pairs)))
                    .header("accept", "text/event-stream");
                if bit(4) { built.header("last-event-id", id.clone()) } else { built }
            }
            E::GqlPull => graphql(
                "query($c: String, $d: String, $delta: Boolean, $h: Boolean) { pull(cursor: $c, deviceId: $d, delta: $delta, hints: $h, limit: 1000) { ...Pull } }",
                if bit(0) {
                    json!({"c": id, "d": id2, "delta": bit(2), "h": bit(3)})
                } else {
                    json!({"d": id, "delta": bit(2), "h": bit(3)})
                },
            ),
            E::GqlQueueStatus => {
                graphql("query($d: String!) { queueStatus(deviceId: $d) { ...Queue } }", json!({"d": id}))
            }
            E::GqlOptimalTime => {
                graphql("query($d: String) { optimalTime(deviceId: $d) { ...Optimal } }", json!({"d": id}))
            }
            E::GqlDeviceHealth => {
                graphql("query($d: String!) { deviceHealth(deviceId: $d) { ...Health } }", json!({"d": id}))
            }
            E::GqlDashboard => graphql("{ dashboard { ...Dashboard } }", json!({})),
            E::GqlPolicies => graphql("{ policies { ...Policy } }", json!({})),
            E::GqlConflicts => {
                graphql("{ conflicts(status: \"all\", limit: 500) { ...Conflict } }", json!({}))
            }
            E::GqlPush => {
                let (input, key) = push_input();
                graphql(
                    "mutation($k: String!, $i: PushRequest!) { push(idempotencyKey: $k, input: $i) { ...Push } }",
                    json!({"k": key, "i": input}),
                )
            }
            E::GqlPartial => graphql(
                "mutation($i: PartialSyncRequest!) { partialSync(input: $i) { ...Partial } }",
                json!({"i": partial}),
            ),
            E::GqlSetPolicy => graphql(
                "mutation($d: String!, $i: PolicyUpdate!) { setPolicy(domain: $d, input: $i) { ...Policy } }",
                json!({"d": policy_domain, "i": policy}),
            ),
            E::GqlResolve => graphql(
                "mutation($id: String!, $i: ResolveRequest!) { resolveConflict(id: $id, input: $i) { ...Resolved } }",
                json!({"id": id, "i": resolution}),
            ),
            E::GqlSnapshot => {
                graphql("mutation { createSnapshot(timeWindowHours: 24) { ...Created } }", json!({}))
            }
            E::Healthz => Built::get("/healthz".into()),
            E::Readyz => Built::get("/readyz".into()),
            E::Metrics => Built::get("/metrics".into()),
            E::OpenApi => Built::get("/api/openapi.json".into()),
            E::Console => Built::get("/console".into()),
        };
        if bit(6) && !endpoint.public() { built.header("accept-encoding", "gzip") } else { built }
    }

    async fn send(&self, call: &Call, built: &Built) -> Answer {
        let mut req = self.app.req().method(built.method.clone()).path(&built.path);
        if !call.endpoint.public() {
            req = req.bearer(self.token(call.caller));
        }
        for (name, value) in &built.headers {
            req = req.header(name, value);
        }
        if let Some(body) = &built.body {
            req = req.json(body);
        }
        if call.endpoint == E::Stream {
            let response = req.open().await;
            let status = response.status();
            if !status.is_success() {
                let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
                return Answer {
                    status,
                    text: String::from_utf8_lossy(&body).into_owned(),
                    gql_statuses: Vec::new(),
                };
            }
            let mut stream = SseBody::new(response);
            let mut text = String::new();
            // The backlog comes at once; an empty one sends nothing.
            while let Some((event, data)) = stream.next(Duration::from_millis(250)).await {
                let done = event == "changes" && data.contains("\"has_more\":false");
                text.push_str(&format!("event: {event}\ndata: {data}\n"));
                if done || text.len() > 1 << 20 {
                    break;
                }
            }
            return Answer { status, text, gql_statuses: Vec::new() };
        }
        let r = req.send().await;
        let text = r.decoded_text();
        let gql_statuses = if call.endpoint.graphql() && r.status == StatusCode::OK {
            let body: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
            body["errors"]
                .as_array()
                .map(|errors| {
                    errors.iter().map(|e| e["extensions"]["status"].as_u64().unwrap_or(0)).collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Answer { status: r.status, text, gql_statuses }
    }

    /// Sends `call` and checks the three laws; `Err` says what broke.
    fn check(&self, call: &Call) -> Result<(), String> {
        let n = {
            let mut seen = self.seen.borrow_mut();
            seen.requests += 1;
            seen.requests
        };
        let built = self.build(call, n);
        let said = built.text();
        assert!(!said.contains(MARKER), "A's requests never carry B's marker: {said}");
        let (fresh_key, fresh_device) = {
            let mut seen = self.seen.borrow_mut();
            let fresh_device = !seen.owned.contains(&call.id);
            let makes: &[&String] = match call.endpoint {
                E::Push | E::GqlPush | E::Pull | E::LongPoll | E::Stream | E::GqlPull => {
                    &[&call.id, &call.id2]
                }
                E::Partial | E::GqlPartial | E::PutWebhook => &[&call.id],
                _ => &[],
            };
            for id in makes {
                if said.contains(id.as_str()) {
                    seen.owned.insert((*id).clone());
                }
            }
            let key_triple = |key: &str| (call.caller.user().to_owned(), call.id2.clone(), key.to_owned());
            let fresh_key = match call.endpoint {
                E::Push | E::GqlPush => {
                    let key =
                        built.headers.iter().find(|(n, _)| *n == "idempotency-key").map(|(_, v)| v.clone());
                    let key = key.unwrap_or_else(|| {
                        built.body.as_ref().unwrap()["variables"]["k"].as_str().unwrap().to_owned()
                    });
                    seen.push_keys.insert(key_triple(&key))
                }
                _ => false,
            };
            (fresh_key, fresh_device)
        };
        let answer = self.rt.block_on(self.send(call, &built));
        let context = || {
            format!(
                "{call:?}\n{said}\n→ {} {}",
                answer.status,
                answer.text.chars().take(2000).collect::<String>()
            )
        };

        // 1. Nothing of B in the answer.
        for secret in &self.b.secrets {
            if answer.text.contains(secret.as_str()) {
                return Err(format!("B's `{secret}` in the answer to {}", context()));
            }
        }
        {
            let seen = self.seen.borrow();
            for id in self.b.client_ids().chain(self.b.server_ids()) {
                if answer.text.contains(id.as_str())
                    && !said.contains(id.as_str())
                    && !seen.owned.contains(id)
                {
                    return Err(format!("B's id `{id}` in the answer to {}", context()));
                }
            }
        }

        // 3. A 2xx or a 4xx, and the right one where the protocol says which.
        let status = answer.status;
        if status.is_server_error() || answer.gql_statuses.iter().any(|s| *s >= 500 || *s < 400) {
            return Err(format!("a 5xx (or an error without a 4xx status): {}", context()));
        }
        let gql = call.endpoint.graphql();
        let expect = |code: u16| -> Result<(), String> {
            let ok = if gql {
                status == StatusCode::OK && answer.gql_statuses == [u64::from(code)]
            } else {
                status.as_u16() == code
            };
            if ok { Ok(()) } else { Err(format!("expected {code}: {}", context())) }
        };
        if call.endpoint.public() {
            expect(200)?;
        } else if call.endpoint.admin_only() && call.caller != Caller::Admin {
            expect(403)?;
        } else {
            let mut seen = self.seen.borrow_mut();
            match call.endpoint {
                E::Resolve | E::GqlResolve => expect(404)?,
                E::Webhook | E::Deliveries => {
                    expect(if seen.webhooks.contains(&call.id) { 200 } else { 404 })?
                }
                E::DeleteWebhook => {
                    expect(if seen.webhooks.remove(&call.id) { 204 } else { 404 })?;
                }
                E::PutWebhook => {
                    expect(200)?;
                    seen.webhooks.insert(call.id.clone());
                }
                E::DeviceHealth | E::GqlDeviceHealth if fresh_device => expect(404)?,
                E::Push | E::GqlPush if fresh_key => {
                    let reused =
                        status == StatusCode::UNPROCESSABLE_ENTITY || answer.gql_statuses.contains(&422);
                    if reused {
                        return Err(format!(
                            "A's first use of an idempotency key was refused: {}",
                            context()
                        ));
                    }
                }
                _ => {}
            }
        }

        // 2. Nothing of B changed.
        let now = tenant_rows(self.app.db.database(), &self.b_rows_query);
        if now != self.b_rows {
            let before: BTreeSet<&String> = self.b_rows.iter().collect();
            let after: BTreeSet<&String> = now.iter().collect();
            let gone: Vec<_> = before.difference(&after).collect();
            let new: Vec<_> = after.difference(&before).collect();
            return Err(format!("B's rows changed: gone {gone:?}, new {new:?}, after {}", context()));
        }
        Ok(())
    }
}

/// Tenant A's own data: records (some in unit `north`), a pending manual conflict, a webhook
/// named like one of B's, a device, a snapshot, risk scores.
async fn seed_a(app: &TestApp) {
    let r = app
        .req()
        .method(Method::PUT)
        .path(&format!("/api/v1/sync/webhooks/{SHARED_HOOK}"))
        .bearer(&app.admin)
        .json(&json!({"url": "https://a.example/hook", "secret": "a-secret-0123456789abcdef", "events": ["alert", "anomaly", "conflict"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    tickets_wait_for_an_admin(app).await;
    // More changes than B makes: B's cursors fall inside A's history.
    let mut body = task_push("a-dev-1", &(1..=30).collect::<Vec<_>>(), "A task");
    for (i, change) in body["changes"].as_array_mut().unwrap().iter_mut().enumerate() {
        if i % 2 == 0 {
            change["bu"] = json!("north");
        }
    }
    assert_eq!(app.push(&app.device, "a-seed-1", body).await.status, StatusCode::OK);
    let ticket = |device: &str, title: &str| json!({"device_id": device, "changes": [upsert("ticket", &uuid(40), 0, record_data("ticket", title), "2026-11-22T09:00:00Z")]});
    assert_eq!(app.push(&app.device, "a-seed-2", ticket("a-dev-1", "A leak")).await.status, StatusCode::OK);
    let r = app.push(&app.device2, "a-seed-3", ticket("a-dev-2", "A leak too")).await;
    assert_eq!(r.json()["results"][0]["outcome"], "manual_required", "{}", r.text());
    let r = app.get("/api/v1/sync/pull?device_id=a-dev-1&limit=1000", &app.device).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.post("/api/sync/snapshot/create/", &app.admin, json!({"time_window_hours": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let now = sync_domain::micros::now();
    let scores: Vec<store::RiskScoreRow> = (1..=3)
        .map(|n| store::RiskScoreRow {
            tenant_id: TENANT_A.into(),
            domain: "task".into(),
            mobile_id: uuid(n),
            risk: 0.75,
            reasons: json!(["edited often"]).to_string(),
            scored_at: now,
        })
        .collect();
    app.db.database().write_tx_sync(|conn| store::replace_risk_scores(conn, TENANT_A, &scores)).unwrap();
}

/// Tenant B's data of every kind, and what its admin reads of it.
async fn seed_b(app: &TestApp) -> BData {
    let db = app.db.database();
    let admin = &app.other_admin;
    let x1 = &app.other_device;
    let bob = token(db, TENANT_B, &format!("bob-{MARKER}"), Role::Device);
    let b_u1 = token(db, TENANT_B, "u1", Role::Device);
    let b_north = scoped_token(db, TENANT_B, "bn", Role::Device, &["north"]);

    for name in [SHARED_HOOK, "b-only-hook"] {
        let r = app
            .req()
            .method(Method::PUT)
            .path(&format!("/api/v1/sync/webhooks/{name}"))
            .bearer(admin)
            .json(&json!({"url": format!("https://{MARKER}.example/{name}"), "secret": format!("{MARKER}-webhook-secret"),
                          "events": ["alert", "anomaly", "conflict"]}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    for (domain, policy) in [
        ("ticket", json!({"policy": "manual"})),
        ("journal", json!({"policy": "field_merge", "auto_resolve": true, "notify_on_conflict": true})),
    ] {
        let r = app
            .req()
            .method(Method::PUT)
            .path(&format!("/api/v1/sync/policies/{domain}"))
            .bearer(admin)
            .json(&policy)
            .send()
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }

    // A record in every domain, in units (`north`, as A has) or none, from a device whose clock
    // is years off (B's device health has a skew no one else has).
    let units = [json!("north"), json!("south"), Value::Null];
    let mut changes = Vec::new();
    let mut records = Vec::new();
    for (i, domain) in DOMAINS.iter().enumerate() {
        let id = uuid(7000 + i as u32);
        let mut change =
            upsert(domain, &id, 0, record_data(domain, &format!("{MARKER}-{i}")), "2001-02-03T04:04:00Z");
        change["bu"] = units[i % 3].clone();
        change["priority"] = json!(if i % 2 == 0 { "high" } else { "low" });
        changes.push(change);
        records.push((domain.to_string(), id));
    }
    let ticket2 = uuid(7010);
    changes.push(upsert("ticket", &ticket2, 0, record_data("ticket", MARKER), "2001-02-03T04:04:00Z"));
    records.push(("ticket".into(), ticket2.clone()));
    let body = json!({"device_id": "bdev-one", "client_time": "2001-02-03T04:05:06Z", "changes": changes});
    let r = app.push(x1, "b-seed-1", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut cursors = vec![r.json()["cursor"].as_str().unwrap().to_owned()];

    // Conflicts: two manual ones (one to resolve), an automatic one that admins are told of.
    let edits = json!({"device_id": "bdev-two", "changes": [
        upsert("ticket", &uuid(7001), 0, record_data("ticket", &format!("edit {MARKER}")), "2026-11-22T09:00:00Z"),
        upsert("ticket", &ticket2, 0, record_data("ticket", &format!("edit {MARKER}")), "2026-11-22T09:00:00Z"),
        upsert("journal", &uuid(7002), 0, record_data("journal", &format!("edit {MARKER}")), "2026-11-22T09:00:00Z"),
    ]});
    let r = app.push(&bob, "b-seed-2", edits).await;
    let results = r.json()["results"].clone();
    assert_eq!(results[0]["outcome"], "manual_required", "{results}");
    assert_eq!(results[1]["outcome"], "manual_required", "{results}");
    assert!(results[2]["conflict"]["id"].is_string(), "{results}");
    cursors.push(r.json()["cursor"].as_str().unwrap().to_owned());
    let to_resolve = results[1]["conflict"]["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/sync/conflicts/{to_resolve}/resolve"),
            admin,
            json!({"choose": "custom", "data": {"title": format!("resolved {MARKER}"), "status": "NEW"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // B's user `u1` (a name A has) with B's idempotency key: the server's older-but-stored state
    // wins, so the stored response holds B's record.
    let stale = json!({"device_id": B_SHARED_DEVICE, "changes": [
        upsert("task", &uuid(7000), 0, record_data("task", &format!("stale {MARKER}")), "2000-01-01T00:00:00Z")]});
    let r = app.push(&b_u1, B_SHARED_KEY, stale).await;
    assert!(r.text().contains(MARKER), "B's stored push response holds B's record: {}", r.text());

    // Devices with cursors and health.
    for (token, device) in
        [(x1, "bdev-one"), (&bob, "bdev-two"), (&b_u1, B_SHARED_DEVICE), (&b_north, "bdev-north")]
    {
        let r = app.get(&format!("/api/v1/sync/pull?device_id={device}&limit=3&delta=true"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        cursors.push(r.json()["cursor"].as_str().unwrap().to_owned());
    }
    let r = app.post("/api/v1/sync/partial", x1, json!({"device_id": "bdev-one", "priority": "low"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // A snapshot (its conflict rate raises an alert), then the webhook job queues deliveries.
    let r = app.post("/api/sync/snapshot/create/", admin, json!({"time_window_hours": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let queued = app.api.engine().queue_webhook_events(time::OffsetDateTime::now_utc()).await.unwrap();
    assert!(queued > 0);

    // What the insight jobs store: an anomaly (and its alert), risk scores, sync windows.
    let now = sync_domain::micros::now();
    let anomaly_id = uuid::Uuid::new_v4().to_string();
    let anomaly = store::AnomalyRow {
        tenant_id: TENANT_B.into(),
        id: anomaly_id.clone(),
        metric: store::MetricName::SyncVolume,
        scope_device: Some("bdev-one".into()),
        scope_domain: Some("task".into()),
        observed: 4242.4242,
        expected: 10.0,
        band_low: 5.0,
        band_high: 15.0,
        score: 9.0,
        severity: store::SeverityName::Critical,
        window_start: now - 900_000_000,
        window_end: now,
        explanation: format!("volume jump {MARKER}"),
        created_at: now,
    };
    let alert = store::AlertRow {
        tenant_id: TENANT_B.into(),
        id: anomaly_id.clone(),
        snapshot_id: None,
        rule: "anomaly_sync_volume".into(),
        severity: "critical".into(),
        value: 4242.4242,
        threshold: 15.0,
        message: format!("volume jump {MARKER}"),
        created_at: now,
    };
    let scores: Vec<store::RiskScoreRow> = records
        .iter()
        .map(|(domain, id)| store::RiskScoreRow {
            tenant_id: TENANT_B.into(),
            domain: domain.clone(),
            mobile_id: id.clone(),
            risk: 0.91827364,
            reasons: json!([format!("edited by {MARKER}")]).to_string(),
            scored_at: now,
        })
        .collect();
    let windows: Vec<store::SyncWindowRow> = ["", "bdev-one", "bdev-two", B_SHARED_DEVICE]
        .iter()
        .map(|device| store::SyncWindowRow {
            tenant_id: TENANT_B.into(),
            device_id: (*device).into(),
            hour: 3,
            minutes: 17,
            confidence: 0.31415926,
            basis: if device.is_empty() { store::BasisName::Fleet } else { store::BasisName::DeviceHistory },
            planned_at: now,
        })
        .collect();
    // A model as the insight job stores it (training needs days of history).
    let model = store::RiskModelRow {
        tenant_id: TENANT_B.into(),
        trained_at: now,
        examples: 4321,
        holdout_auc: Some(0.86420975),
        baseline_auc: Some(0.5),
        model: json!({"features": ["edits_24h"], "domains": ["task"], "means": [0.0], "scales": [1.0],
                      "weights": [0.5], "intercept": 0.0, "examples": 4321, "holdout_examples": 1080,
                      "holdout_auc": 0.86420975, "baseline_auc": 0.5})
        .to_string(),
    };
    db.write_tx_sync(|conn| {
        store::upsert_risk_model(conn, &model)?;
        store::insert_anomaly(conn, &anomaly)?;
        store::insert_alert(conn, &alert)?;
        store::replace_risk_scores(conn, TENANT_B, &scores)?;
        store::replace_sync_windows(conn, TENANT_B, &windows)
    })
    .unwrap();

    // What B's admin reads: the ids, and the view to compare at the end.
    let view = b_view(app).await;
    let conflicts = ids_of(&view["conflicts"], "id");
    assert!(conflicts.len() >= 4, "{}", view["conflicts"]);
    assert!(view["conflicts"].as_array().unwrap().iter().any(|c| c["status"] == "pending"));
    assert!(view["conflict_risk"]["model"].is_object(), "{}", view["conflict_risk"]);
    let r = app.get("/api/v1/sync/devices", admin).await;
    let devices = ids_of(&r.json()["devices"], "device_id");
    assert_eq!(devices.len(), 4, "{}", r.text());
    let mut deliveries = Vec::new();
    for hook in [SHARED_HOOK, "b-only-hook"] {
        deliveries.extend(ids_of(&view["deliveries"][hook], "id"));
    }
    assert!(!deliveries.is_empty());
    let dashboard = &view["dashboard"];
    let snapshots = ids_of(&dashboard["trend_7days"], "snapshot_id");
    let alerts = ids_of(&dashboard["alerts"], "id");
    assert!(!alerts.is_empty() && !snapshots.is_empty(), "{dashboard}");
    let r = app.get("/api/sync/device-health/?device_id=bdev-one", admin).await;
    let skew = r.json()["clock_skew_ms"].as_i64().unwrap();
    assert!(skew > 100_000_000_000, "{}", r.text());
    let mut secrets: Vec<String> = B_FIGURES.iter().map(|s| (*s).to_owned()).collect();
    secrets.push(MARKER.to_owned());
    secrets.push(skew.to_string());
    BData {
        records,
        conflicts,
        devices,
        hooks: vec!["b-only-hook".into()],
        deliveries,
        snapshots,
        alerts,
        anomalies: vec![anomaly_id],
        cursors,
        secrets,
        view,
    }
}

/// What B's admin reads of B through the API (nothing in it depends on the time of reading).
async fn b_view(app: &TestApp) -> Value {
    let admin = &app.other_admin;
    let read = |path: String| async move {
        let r = app.get(&path, admin).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        r.json()
    };
    let mut deliveries = serde_json::Map::new();
    for hook in [SHARED_HOOK, "b-only-hook"] {
        deliveries
            .insert(hook.into(), read(format!("/api/v1/sync/webhooks/{hook}/deliveries?limit=500")).await);
    }
    let mut dashboard = read("/api/sync/dashboard/".into()).await;
    dashboard.as_object_mut().unwrap().remove("unhealthy_devices"); // scored at the time of reading
    json!({
        "records": read("/api/v1/sync/pull?limit=1000".into()).await,
        "conflicts": read("/api/v1/sync/conflicts?status=all&limit=500".into()).await,
        "policies": read("/api/v1/sync/policies".into()).await,
        "webhooks": read("/api/v1/sync/webhooks".into()).await,
        "deliveries": deliveries,
        "anomalies": read("/api/v1/sync/anomalies?limit=500".into()).await,
        "conflict_risk": read("/api/v1/sync/conflict-risk?limit=500".into()).await,
        "dashboard": dashboard,
    })
}

/// Every endpoint, with each caller, naming B's ids of the endpoint's kind (two of them) and a
/// random one.
fn sweep(b: &BData) -> Vec<Call> {
    let mut calls = Vec::new();
    let random = uuid::Uuid::new_v4().to_string();
    for endpoint in ENDPOINTS {
        if endpoint.public() {
            calls.push(Call {
                endpoint,
                caller: Caller::Device,
                id: random.clone(),
                id2: random.clone(),
                flags: 0,
            });
            continue;
        }
        let mut ids: Vec<String> = b.of_slot(endpoint.slot()).into_iter().take(2).collect();
        ids.push(random.clone());
        if endpoint == E::LongPoll {
            // Each one may wait its second: B's newest cursor, and no cursor.
            ids = vec![b.cursors.iter().max_by_key(|c| Cursor::parse(c).map(|c| c.seq())).unwrap().clone()];
        }
        for caller in [Caller::Device, Caller::North, Caller::Admin] {
            if caller == Caller::North && endpoint.admin_only() {
                continue;
            }
            for id in &ids {
                // Flags: a cursor and a device (pulls), B's idempotency key (pushes), gzip.
                let flags = if matches!(endpoint, E::Push | E::GqlPush) { 0b1000_0000 } else { 0b0100_0011 };
                let id2 = if caller == Caller::Device { B_SHARED_DEVICE } else { "bdev-one" };
                calls.push(Call { endpoint, caller, id: id.clone(), id2: id2.to_owned(), flags });
            }
        }
    }
    // A push of every one of B's records, as each caller.
    for (_, id) in &b.records {
        for caller in CALLERS {
            calls.push(Call { endpoint: E::Push, caller, id: id.clone(), id2: "a-dev-1".into(), flags: 0 });
        }
    }
    calls
}

fn call_strategy(b: &BData) -> impl Strategy<Value = Vec<Call>> + use<> {
    let pool = b.pool();
    let id = prop_oneof![
        4 => prop::sample::select(pool),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => "[a-z0-9-]{1,16}",
    ];
    // Every endpoint but long-poll (each may wait a second).
    let endpoints: Vec<Endpoint> = ENDPOINTS.into_iter().filter(|e| *e != E::LongPoll).collect();
    let call = (
        prop::sample::select(endpoints),
        prop::sample::select(CALLERS.to_vec()),
        id.clone(),
        id,
        any::<u8>(),
    )
        .prop_map(|(endpoint, caller, id, id2, flags)| Call { endpoint, caller, id, id2, flags });
    prop::collection::vec(call, 1..=4)
}

fn tenant_isolation(backend: Backend) {
    let rt = runtime();
    let Some(app) = rt.block_on(async { TestApp::on_backend(backend) }) else { return };
    let started = std::time::Instant::now();
    let north = scoped_token(app.db.database(), TENANT_A, "n1", Role::Device, &["north"]);
    rt.block_on(seed_a(&app));
    let b = rt.block_on(seed_b(&app));
    let b_rows_query = tenant_rows_query(app.db.database(), TENANT_B);
    let b_rows = tenant_rows(app.db.database(), &b_rows_query);
    // B really has data of every kind the API serves.
    for table in sync_domain::schema::ALL_TABLES.iter().filter(|t| **t != "purge_marks") {
        assert!(b_rows.iter().any(|row| row.starts_with(&format!("{table}|"))), "B has no {table} rows");
    }
    let world = Isolation {
        rt,
        app,
        north,
        b_rows_query,
        b_rows,
        seen: RefCell::new(Seen { webhooks: [SHARED_HOOK.to_owned()].into(), ..Seen::default() }),
        b,
    };

    let sweep = sweep(&world.b);
    for call in &sweep {
        if let Err(e) = world.check(call) {
            panic!("{e}");
        }
    }
    runner()
        .run(&call_strategy(&world.b), |calls| {
            for call in &calls {
                world.check(call).map_err(TestCaseError::fail)?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));

    // B's admin reads exactly what it read before.
    let view = world.rt.block_on(b_view(&world.app));
    assert_eq!(view, world.b.view, "B's own view changed");
    world.rt.block_on(live_streams_stay_in_their_tenant(&world));
    eprintln!(
        "tenant isolation on {backend:?}: {} sweep requests, {CASES} proptest cases, {} requests in all, {:.1?}",
        sweep.len(),
        world.seen.borrow().requests,
        started.elapsed()
    );
}

/// A's live streams (admin server-sent events, device WebSocket from B's cursor, GraphQL
/// subscription) hear of A's changes and conflicts and of nothing of B's.
async fn live_streams_stay_in_their_tenant(world: &Isolation) {
    let app = &world.app;
    // The cases may have changed A's policies: tickets wait for an admin again.
    tickets_wait_for_an_admin(app).await;
    let listener = listen(app).await;
    let b_cursor = world.b.cursors.iter().max_by_key(|c| Cursor::parse(c).map(|c| c.seq())).unwrap().clone();
    let head = app.get("/api/v1/sync/pull?limit=1000", &app.admin).await.json()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_stream = app
        .req()
        .path(&format!("/api/v1/sync/stream?cursor={head}"))
        .bearer(&app.admin)
        .header("accept", "text/event-stream")
        .open()
        .await;
    assert_eq!(admin_stream.status(), StatusCode::OK);
    let mut admin_stream = SseBody::new(admin_stream);
    let mut ws = sync_ws(
        &listener,
        &app.device,
        json!({"type": "subscribe", "cursor": head, "device_id": "bdev-one"}),
    )
    .await;
    let mut subscription = graphql_ws(&listener, &app.device, json!({"c": head, "d": B_SHARED_DEVICE})).await;
    // Subscriptions start asynchronously; give them a moment to be listening.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // B: new records and a new manual conflict, by B's device `u1`.
    let b_u1 = token(app.db.database(), TENANT_B, "u1", Role::Device);
    let b_new = json!({"device_id": B_SHARED_DEVICE, "changes": [
        upsert("ticket", &uuid(7001), 0, record_data("ticket", &format!("live {MARKER}")), "2026-11-22T09:00:00Z"),
        upsert("journal", &uuid(7100), 0, record_data("journal", &format!("live {MARKER}")), "2026-11-22T09:00:00Z")]});
    let r = app.push(&b_u1, "b-live", b_new).await;
    assert_eq!(r.json()["results"][0]["outcome"], "manual_required", "{}", r.text());
    // A: a record and a manual conflict.
    let a_new = json!({"device_id": "a-dev-2", "changes": [
        upsert("ticket", &uuid(40), 0, record_data("ticket", "A live"), "2026-11-22T09:00:00Z"),
        upsert("journal", &uuid(41), 0, record_data("journal", "A live"), "2026-11-22T09:00:00Z")]});
    let r = app.push(&app.device2, "a-live", a_new).await;
    assert_eq!(r.json()["results"][0]["outcome"], "manual_required", "{}", r.text());
    let a_conflict = r.json()["results"][0]["conflict"]["id"].as_str().unwrap().to_owned();

    let clean = |what: &str, text: &str| {
        assert!(!text.contains(MARKER), "{what} heard of B: {text}");
        assert!(!text.contains(&uuid(7100)), "{what} heard of B's record: {text}");
    };
    // The admin stream: A's changes, A's conflict, nothing of B.
    let (mut heard, mut got_conflict, mut got_record) = (String::new(), false, false);
    while !(got_conflict && got_record) {
        let Some((event, data)) = admin_stream.next(Duration::from_secs(20)).await else {
            panic!("the admin stream fell silent: {heard}");
        };
        got_conflict |= event == "conflict" && data.contains(&a_conflict);
        got_record |= event == "changes" && data.contains(&uuid(41));
        heard.push_str(&data);
    }
    clean("A's admin stream", &heard);
    // The device WebSocket and the GraphQL subscription: A's record, nothing of B.
    for (what, socket) in [("A's WebSocket", &mut ws), ("A's GraphQL subscription", &mut subscription)] {
        let mut heard = String::new();
        while !heard.contains(&uuid(41)) {
            let message = ws_next(socket, Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("{what} fell silent"));
            assert!(live_batch(&message).is_some(), "{what}: {message}");
            heard.push_str(&message.to_string());
        }
        clean(what, &heard);
    }
    // B's cursor on a live stream is a cursor of A's history: nothing of B either.
    let mut ws = sync_ws(&listener, &app.device, json!({"type": "subscribe", "cursor": b_cursor})).await;
    let mut heard = String::new();
    while let Some(message) = ws_next(&mut ws, Duration::from_millis(500)).await {
        heard.push_str(&message.to_string());
    }
    assert!(heard.contains("\"changes\""), "A's history after B's cursor: {heard}");
    clean("A's WebSocket from B's cursor", &heard);
}

#[test]
fn tenant_isolation_sqlite() {
    tenant_isolation(Backend::Sqlite);
}

#[test]
fn tenant_isolation_postgres() {
    tenant_isolation(Backend::Postgres);
}

// =============================================================================================
// Unit scoping

const UNITS: [Option<&str>; 4] = [None, Some("north"), Some("south"), Some("east")];
/// Records the cases change: `uuid(100 + slot)`, of domain `DOMAINS[slot % 6]`.
const SLOTS: u32 = 10;

fn slot_domain(slot: u32) -> &'static str {
    DOMAINS[slot as usize % DOMAINS.len()]
}

/// A token limited to units, and what it has read.
struct Scoped {
    name: &'static str,
    token: String,
    units: Vec<&'static str>,
    device: String,
    /// The cursor of its last delta pull (also its device's remembered cursor).
    cursor: RefCell<Option<String>>,
    /// The version of each record it last received.
    held: RefCell<BTreeMap<String, i64>>,
}

impl Scoped {
    fn sees(&self, bu: &Value) -> bool {
        bu.as_str().is_none_or(|bu| self.units.contains(&bu))
    }
}

/// A change of one record (each record at most once per push, so that no push conflicts
/// with itself).
#[derive(Debug, Clone)]
struct Change {
    slot: u32,
    unit: usize,
    priority: usize,
    delete: bool,
}

/// One case: a push, then every read path of one scoped reader.
#[derive(Debug, Clone)]
struct UnitCase {
    changes: Vec<Change>,
    /// 0: an unlimited device pushes; else the scoped token `pusher - 1`.
    pusher: usize,
    reader: usize,
    limit: usize,
    domains: Option<Vec<&'static str>>,
    hints: bool,
    partial_priority: usize,
}

fn unit_case(readers: usize) -> impl Strategy<Value = UnitCase> {
    let change = (0..UNITS.len(), 0..3usize, prop::bool::weighted(0.15));
    let changes = prop::collection::btree_map(0..SLOTS, change, 1..=5).prop_map(|changes| {
        changes
            .into_iter()
            .map(|(slot, (unit, priority, delete))| Change { slot, unit, priority, delete })
            .collect()
    });
    let domains = prop::option::weighted(0.3, prop::sample::subsequence(DOMAINS.to_vec(), 1..=3));
    (changes, 0..=readers, 0..readers, 2..=6usize, domains, any::<bool>(), 0..3usize).prop_map(
        |(changes, pusher, reader, limit, domains, hints, partial_priority)| UnitCase {
            changes,
            pusher,
            reader,
            limit,
            domains,
            hints,
            partial_priority,
        },
    )
}

const PRIORITIES: [&str; 3] = ["low", "medium", "high"];

struct UnitWorld {
    app: TestApp,
    readers: Vec<Scoped>,
    /// The current version of each slot's record.
    versions: RefCell<BTreeMap<u32, i64>>,
    /// Pushes so far (for idempotency keys).
    pushes: RefCell<u64>,
    /// Last: the app goes before its runtime.
    rt: tokio::runtime::Runtime,
}

/// The tags in the data of records of units `units` cannot see (every record's data names its
/// unit: `tag-<unit>`).
fn foreign_tags(units: &[&str]) -> Vec<String> {
    UNITS.iter().flatten().filter(|u| !units.contains(u)).map(|u| format!("tag-{u}")).collect()
}

/// (mobile_id, version) of each record of a pull page, checking that `reader` may see it.
fn visible_records(reader: &Scoped, page: &Value, path: &str) -> Result<Vec<(String, i64)>, String> {
    let mut out = Vec::new();
    for c in page["changes"].as_array().ok_or_else(|| format!("{path}: no changes in {page}"))? {
        if !reader.sees(&c["bu"]) {
            return Err(format!("{} received a record of unit {} on {path}: {c}", reader.name, c["bu"]));
        }
        if let Some(tag) = foreign_tags(&reader.units).iter().find(|t| c.to_string().contains(t.as_str())) {
            return Err(format!("{} received data of another unit ({tag}) on {path}: {c}", reader.name));
        }
        out.push((c["mobile_id"].as_str().unwrap().to_owned(), c["version"].as_i64().unwrap()));
    }
    Ok(out)
}

impl UnitWorld {
    async fn get(&self, path: &str, token: &str) -> Result<Value, String> {
        let r = self.app.get(path, token).await;
        if r.status != StatusCode::OK {
            return Err(format!("{path}: {} {}", r.status, r.text()));
        }
        Ok(r.json())
    }

    /// Every record after `cursor` as the unlimited admin pulls it (the pull's envelopes, in
    /// change order), and the head cursor.
    async fn truth(&self, cursor: Option<&str>) -> Result<(Vec<Value>, String), String> {
        let mut path = "/api/v1/sync/pull?limit=1000".to_owned();
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = self.get(&path, &self.app.admin).await?;
        assert_eq!(page["has_more"], false);
        Ok((page["changes"].as_array().unwrap().clone(), page["cursor"].as_str().unwrap().to_owned()))
    }

    /// (mobile_id, version) of the records of `truth` that `reader` may see (of `domains`).
    fn expected(reader: &Scoped, truth: &[Value], domains: Option<&[&str]>) -> Vec<(String, i64)> {
        truth
            .iter()
            .filter(|c| reader.sees(&c["bu"]))
            .filter(|c| domains.is_none_or(|d| d.contains(&c["domain"].as_str().unwrap())))
            .map(|c| (c["mobile_id"].as_str().unwrap().to_owned(), c["version"].as_i64().unwrap()))
            .collect()
    }

    /// Pushes the case's changes (each record's data names its unit); a scoped pusher's answer
    /// holds nothing of a unit it cannot see.
    async fn push(&self, case: &UnitCase) -> Result<(), String> {
        let (token, pusher) = match case.pusher {
            0 => (self.app.device.as_str(), None),
            n => (self.readers[n - 1].token.as_str(), Some(&self.readers[n - 1])),
        };
        let mut changes = Vec::new();
        let versions = self.versions.borrow().clone();
        let n = {
            let mut pushes = self.pushes.borrow_mut();
            *pushes += 1;
            *pushes
        };
        for change in &case.changes {
            let id = uuid(100 + change.slot);
            let domain = slot_domain(change.slot);
            let base = versions.get(&change.slot).copied().unwrap_or(0);
            let unit = UNITS[change.unit];
            let tag = format!("tag-{}", unit.unwrap_or("none"));
            // A delete keeps the record's unit (its tombstone keeps its data).
            let mut c = if change.delete && base > 0 {
                json!({"domain": domain, "mobile_id": id, "base_version": base, "op": "delete",
                       "modified_at": "2026-11-22T09:58:00Z"})
            } else {
                let mut data = record_data(domain, &format!("{tag} #{n}"));
                data["unit_tag"] = json!(tag);
                // A field that never changes: a delta is smaller than the record.
                data["body"] = json!("lorem ipsum ".repeat(40));
                let mut c = upsert(domain, &id, base, data, "2026-11-22T09:58:00Z");
                c["bu"] = unit.map_or(Value::Null, |u| json!(u));
                c
            };
            c["priority"] = json!(PRIORITIES[change.priority]);
            changes.push(c);
        }
        let r = self
            .app
            .push(token, &format!("unit-push-{n}"), json!({"device_id": "pusher", "changes": changes}))
            .await;
        if r.status != StatusCode::OK {
            return Err(format!("push: {} {}", r.status, r.text()));
        }
        let body = r.json();
        for (change, result) in case.changes.iter().zip(body["results"].as_array().unwrap()) {
            if let Some(pusher) = pusher {
                if let Some(record) = result.get("record")
                    && !pusher.sees(&record["bu"])
                {
                    return Err(format!(
                        "{}'s push answered with a record of another unit: {result}",
                        pusher.name
                    ));
                }
                if foreign_tags(&pusher.units).iter().any(|t| result.to_string().contains(t.as_str())) {
                    return Err(format!(
                        "{}'s push answered with data of another unit: {result}",
                        pusher.name
                    ));
                }
            }
            if let Some(version) = result["version"].as_i64() {
                self.versions.borrow_mut().insert(change.slot, version);
            }
        }
        Ok(())
    }

    /// Runs `case`: its push, then the reader's pull (paged, with the case's domains and
    /// hints), GraphQL pull, queue status, partial sync, delta pull and optimal time, each
    /// against what the unlimited admin sees filtered to the reader's units.
    async fn check_case(&self, case: &UnitCase) -> Result<(), String> {
        self.push(case).await?;
        let reader = &self.readers[case.reader];
        let (truth, _) = self.truth(None).await?;

        // Pull from the start, page by page, with the case's domains and hints.
        let mut got = Vec::new();
        let mut cursor = String::new();
        let domains = case.domains.as_ref().map(|d| d.join(","));
        for page_no in 0.. {
            let mut pairs = vec![("limit", case.limit.to_string()), ("cursor", cursor.clone())];
            if let Some(d) = &domains {
                pairs.push(("domains", d.clone()));
            }
            if case.hints {
                pairs.push(("hints", "true".into()));
            }
            let path = format!("/api/v1/sync/pull?{}", query(&pairs));
            let page = self.get(&path, &reader.token).await?;
            got.extend(visible_records(reader, &page, &path)?);
            cursor = page["cursor"].as_str().unwrap().to_owned();
            if page["has_more"] == false {
                break;
            }
            assert!(page_no < 100, "pull never ends");
        }
        let expected = Self::expected(reader, &truth, case.domains.as_deref());
        if got != expected {
            return Err(format!("{}'s pull: got {got:?}, expected {expected:?}", reader.name));
        }

        // GraphQL pull.
        let r = self
            .app
            .graphql(
                &reader.token,
                "query($d: [String!]) { pull(limit: 1000, domains: $d) { ...Pull } }",
                json!({"d": case.domains}),
            )
            .await;
        let page = r.json()["data"]["pull"].clone();
        let gql = visible_records(reader, &page, "GraphQL pull")?;
        if gql != expected {
            return Err(format!("{}'s GraphQL pull: got {gql:?}, expected {expected:?}", reader.name));
        }

        // Queue status and partial sync of its device, from its remembered cursor.
        let held_cursor = reader.cursor.borrow().clone();
        let (after, _) = self.truth(held_cursor.as_deref()).await?;
        let pending = Self::expected(reader, &after, None);
        let q = self
            .get(&format!("/api/v1/sync/queue-status?device_id={}", reader.device), &reader.token)
            .await?;
        let high = after.iter().filter(|c| reader.sees(&c["bu"]) && c["priority"] == "high").count();
        if q["pending_items"] != pending.len() || q["high_priority"] != high {
            return Err(format!(
                "{}'s queue status {q}: expected {} pending, {high} high",
                reader.name,
                pending.len()
            ));
        }
        let floor = case.partial_priority;
        let r = self
            .app
            .post(
                "/api/v1/sync/partial",
                &reader.token,
                json!({"device_id": reader.device, "priority": PRIORITIES[floor], "max_items": 1000}),
            )
            .await;
        let items = visible_records(reader, &json!({"changes": r.json()["synced_items"]}), "partial sync")?;
        let urgent: BTreeSet<(String, i64)> = after
            .iter()
            .filter(|c| reader.sees(&c["bu"]))
            .filter(|c| PRIORITIES.iter().position(|p| c["priority"] == *p).unwrap() >= floor)
            .map(|c| (c["mobile_id"].as_str().unwrap().to_owned(), c["version"].as_i64().unwrap()))
            .collect();
        if items.iter().cloned().collect::<BTreeSet<_>>() != urgent || items.len() != urgent.len() {
            return Err(format!("{}'s partial sync: got {items:?}, expected {urgent:?}", reader.name));
        }

        // Delta pull from its cursor, remembering the new one: a patch only against a version it
        // received.
        let mut pairs = vec![
            ("limit", "1000".to_owned()),
            ("delta", "true".to_owned()),
            ("device_id", reader.device.clone()),
        ];
        if let Some(c) = &held_cursor {
            pairs.push(("cursor", c.clone()));
        }
        let path = format!("/api/v1/sync/pull?{}", query(&pairs));
        let page = self.get(&path, &reader.token).await?;
        let delta = visible_records(reader, &page, &path)?;
        if delta != pending {
            return Err(format!("{}'s delta pull: got {delta:?}, expected {pending:?}", reader.name));
        }
        *reader.cursor.borrow_mut() = Some(page["cursor"].as_str().unwrap().to_owned());
        for c in page["changes"].as_array().unwrap() {
            let id = c["mobile_id"].as_str().unwrap().to_owned();
            let held = reader.held.borrow().get(&id).copied();
            if let Some(base) = c["base_version"].as_i64()
                && held != Some(base)
            {
                return Err(format!(
                    "{}'s delta pull sent a patch from version {base}, which it never received (it holds {held:?}): {c}",
                    reader.name,
                ));
            }
            reader.held.borrow_mut().insert(id, c["version"].as_i64().unwrap());
        }

        // Optimal time: the queue counted in its units only.
        let since = sync_domain::micros::now() - 24 * 3600 * 1_000_000;
        let oldest = self
            .app
            .db
            .database()
            .run_sync(|conn| store::oldest_active_cursor(conn, TENANT_A, since))
            .unwrap();
        let queued = match oldest {
            Some(seq) => {
                Self::expected(reader, &self.truth(Some(&Cursor(seq).to_string())).await?.0, None).len()
            }
            None => 0,
        };
        let o = self.get("/api/v1/sync/optimal-time", &reader.token).await?;
        if o["queue_size"] != queued {
            return Err(format!("{}'s optimal time {o}: expected a queue of {queued}", reader.name));
        }
        Ok(())
    }

    /// A record that moves into `reader`'s unit comes whole to its delta pull: the version its
    /// device could hold as of its cursor was of another unit, which it never received. (It came
    /// as a patch from that version, which this test found.) An unlimited reader gets the patch.
    async fn moved_record_comes_whole(&self, reader: &Scoped) {
        let app = &self.app;
        let id = uuid(960);
        let foreign_unit =
            ["south", "north", "east"].into_iter().find(|u| !reader.units.contains(u)).unwrap();
        let body = |version: i64, unit: &str, title: &str| {
            let mut data = record_data("journal", title);
            data["body"] = json!("lorem ipsum ".repeat(40));
            let mut change = upsert("journal", &id, version, data, "2026-11-22T09:58:00Z");
            change["bu"] = json!(unit);
            json!({"device_id": "pusher", "changes": [change]})
        };
        let r = app.push(&app.device, "move-1", body(0, foreign_unit, "before the move")).await;
        assert_eq!(r.json()["results"][0]["version"], 1, "{}", r.text());
        let path = "/api/v1/sync/pull?limit=1000&delta=true&device_id=dev-move";
        let before = app.get(path, &reader.token).await.json();
        visible_records(reader, &before, path).unwrap();
        let cursor = before["cursor"].as_str().unwrap().to_owned();
        let r = app.push(&app.device, "move-2", body(1, reader.units[0], "after the move")).await;
        assert_eq!(r.json()["results"][0]["version"], 2, "{}", r.text());

        let path = format!("/api/v1/sync/pull?limit=1000&delta=true&device_id=dev-move&cursor={cursor}");
        let after = app.get(&path, &reader.token).await.json();
        visible_records(reader, &after, &path).unwrap();
        let moved = &after["changes"][0];
        assert_eq!(moved["mobile_id"], id.as_str(), "{after}");
        assert!(moved.get("patch").is_none() && moved.get("base_version").is_none(), "{moved}");
        assert_eq!(moved["data"]["title"], "journal after the move", "{moved}");
        let unlimited = app
            .get(&format!("/api/v1/sync/pull?limit=1000&delta=true&cursor={cursor}"), &app.admin)
            .await
            .json();
        assert_eq!(unlimited["changes"][0]["base_version"], 1, "{unlimited}");

        // Once the reader holds a version of its unit, the next edit comes as a patch from it.
        let cursor = after["cursor"].as_str().unwrap().to_owned();
        let r = app.push(&app.device, "move-3", body(2, reader.units[0], "edited in its unit")).await;
        assert_eq!(r.json()["results"][0]["version"], 3, "{}", r.text());
        let path = format!("/api/v1/sync/pull?limit=1000&delta=true&device_id=dev-move&cursor={cursor}");
        let edited = app.get(&path, &reader.token).await.json();
        assert_eq!(edited["changes"][0]["base_version"], 2, "{edited}");
        assert!(edited["changes"][0]["patch"].is_array(), "{edited}");
    }

    /// Long-poll, server-sent events, WebSocket and the GraphQL subscription of `reader`: the
    /// backlog is what pulls return, and a change of another unit neither arrives nor wakes it.
    async fn live_paths(&self, reader: &Scoped, first_id: u32) {
        let app = &self.app;
        let (truth, head) = self.truth(None).await.unwrap();
        let expected = Self::expected(reader, &truth, None);
        let foreign_unit =
            ["south", "north", "east"].into_iter().find(|u| !reader.units.contains(u)).unwrap();
        let own_unit = reader.units[0];
        let listener = listen(app).await;

        let mut sse = SseBody::new(
            app.req()
                .path("/api/v1/sync/stream")
                .bearer(&reader.token)
                .header("accept", "text/event-stream")
                .open()
                .await,
        );
        let mut ws = sync_ws(&listener, &reader.token, json!({"type": "subscribe", "cursor": null})).await;
        let mut subscription = graphql_ws(&listener, &reader.token, json!({})).await;
        let mut backlog = Vec::new();
        while backlog.len() < expected.len() {
            let (event, data) = sse.next(Duration::from_secs(20)).await.expect("the backlog");
            assert_eq!(event, "changes", "{data}");
            backlog.extend(visible_records(reader, &serde_json::from_str(&data).unwrap(), "stream").unwrap());
        }
        assert_eq!(backlog, expected, "{}'s server-sent events: the backlog is the pull", reader.name);
        for (what, socket) in [("WebSocket", &mut ws), ("GraphQL subscription", &mut subscription)] {
            let mut backlog = Vec::new();
            while backlog.len() < expected.len() {
                let message = ws_next(socket, Duration::from_secs(20)).await.expect("the backlog");
                let batch = live_batch(&message).unwrap_or_else(|| panic!("{what}: {message}"));
                backlog.extend(visible_records(reader, batch, what).unwrap());
            }
            assert_eq!(backlog, expected, "{}'s {what}: the backlog is the pull", reader.name);
        }

        // A long-poll from the head: a change of another unit does not answer it, one of its
        // own unit does; every stream then brings that one only.
        let foreign = uuid(first_id);
        let own = uuid(first_id + 1);
        let push = |id: String, unit: &'static str, key: String| async move {
            let mut data = record_data("journal", &format!("tag-{unit} live"));
            data["unit_tag"] = json!(format!("tag-{unit}"));
            let mut change = upsert("journal", &id, 0, data, "2026-11-22T09:58:00Z");
            change["bu"] = json!(unit);
            let r = app.push(&app.device, &key, json!({"device_id": "pusher", "changes": [change]})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        };
        let path = format!("/api/v1/sync/pull?wait=10&cursor={head}");
        let poll = app.get(&path, &reader.token);
        let pushes = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            push(foreign.clone(), foreign_unit, format!("live-{first_id}-1")).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            push(own.clone(), own_unit, format!("live-{first_id}-2")).await;
        };
        let (answered, ()) = tokio::join!(poll, pushes);
        assert_eq!(answered.status, StatusCode::OK, "{}", answered.text());
        let woke = visible_records(reader, &answered.json(), "long-poll").unwrap();
        assert_eq!(
            woke.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            [own.as_str()],
            "{}'s long-poll",
            reader.name
        );
        let (event, data) = loop {
            let (event, data) = sse.next(Duration::from_secs(20)).await.expect("the new change");
            if event != "heartbeat" {
                break (event, data);
            }
        };
        assert_eq!(event, "changes", "{data}");
        let live = visible_records(reader, &serde_json::from_str(&data).unwrap(), "stream").unwrap();
        assert_eq!(live.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), [own.as_str()]);
        for (what, socket) in [("WebSocket", &mut ws), ("GraphQL subscription", &mut subscription)] {
            let message = ws_next(socket, Duration::from_secs(20)).await.expect("the new change");
            let batch = live_batch(&message).unwrap_or_else(|| panic!("{what}: {message}"));
            let live = visible_records(reader, batch, what).unwrap();
            assert_eq!(live.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), [own.as_str()], "{what}");
        }

        // Only another unit changes: the long-poll times out empty.
        let cursor = answered.json()["cursor"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/sync/pull?wait=1&cursor={cursor}");
        let poll = app.get(&path, &reader.token);
        // Meanwhile the streams hear nothing either.
        let silence = Duration::from_millis(700);
        let pushes_and_streams = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            push(uuid(first_id + 2), foreign_unit, format!("live-{first_id}-3")).await;
            tokio::join!(ws_next(&mut ws, silence), ws_next(&mut subscription, silence), sse.next(silence))
        };
        let (quiet, heard) = tokio::join!(poll, pushes_and_streams);
        assert_eq!(
            quiet.json()["changes"],
            json!([]),
            "{}'s long-poll woke with another unit's change",
            reader.name
        );
        assert!(heard.0.is_none(), "the WebSocket heard another unit's change: {:?}", heard.0);
        assert!(heard.1.is_none(), "the GraphQL subscription heard another unit's change: {:?}", heard.1);
        assert!(heard.2.is_none(), "the stream heard another unit's change: {:?}", heard.2);
    }
}

fn unit_scoping(backend: Backend) {
    let rt = runtime();
    let Some(app) = rt.block_on(async { TestApp::on_backend(backend) }) else { return };
    let started = std::time::Instant::now();
    let db = app.db.database().clone();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let scoped = |name, token, units: &[&'static str], device: &str| Scoped {
        name,
        token,
        units: units.to_vec(),
        device: device.into(),
        cursor: RefCell::new(None),
        held: RefCell::new(BTreeMap::new()),
    };
    let readers = vec![
        scoped(
            "north device",
            scoped_token(&db, TENANT_A, "n1", Role::Device, &["north"]),
            &["north"],
            "dev-n1",
        ),
        scoped(
            "north JWT device",
            jwt(
                &json!({"tenant": TENANT_A, "sub": "n2", "role": "device", "units": ["north"], "exp": exp}),
                JWT_SECRET,
            ),
            &["north"],
            "dev-n2",
        ),
        scoped(
            "north+east device",
            scoped_token(&db, TENANT_A, "ne", Role::Device, &["north", "east"]),
            &["north", "east"],
            "dev-ne",
        ),
        scoped(
            "south admin",
            scoped_token(&db, TENANT_A, "sboss", Role::Admin, &["south"]),
            &["south"],
            "dev-sboss",
        ),
    ];
    let world =
        UnitWorld { rt, app, readers, versions: RefCell::new(BTreeMap::new()), pushes: RefCell::new(0) };
    runner()
        .run(&unit_case(world.readers.len()), |case| {
            world.rt.block_on(world.check_case(&case)).map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let cases_took = started.elapsed();
    world.rt.block_on(world.moved_record_comes_whole(&world.readers[0]));
    world.rt.block_on(world.live_paths(&world.readers[0], 900));
    world.rt.block_on(world.live_paths(&world.readers[2], 910));
    eprintln!(
        "unit scoping on {backend:?}: {CASES} proptest cases in {cases_took:.1?}, {:.1?} in all",
        started.elapsed()
    );
}

#[test]
fn unit_scoping_sqlite() {
    unit_scoping(Backend::Sqlite);
}

#[test]
fn unit_scoping_postgres() {
    unit_scoping(Backend::Postgres);
}

/// Tenant A's ticket conflicts wait for an admin (policy `manual`).
async fn tickets_wait_for_an_admin(app: &TestApp) {
    let r = app
        .req()
        .method(Method::PUT)
        .path("/api/v1/sync/policies/ticket")
        .bearer(&app.admin)
        .json(&json!({"policy": "manual"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
