//! Live changes over real sockets, on SQLite and PostgreSQL: long-poll, server-sent events and
//! WebSocket deliver what pulls would, resume by cursor, and refuse bad input and excess
//! connections with the protocol's codes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sync_api::{ApiOptions, SyncApi};
use sync_domain::domains::DomainRegistry;
use sync_domain::store::Role;
use sync_domain::testing::TestDb;
use sync_domain::{Backend, SyncConfig, SyncEngine};
use sync_live::{Live, LiveConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{JWT_SECRET, task_push, token, uuid};

struct Server {
    _db: TestDb,
    base: String,
    live: Live,
    http: reqwest::Client,
    device: String,
    device_other_tenant: String,
    admin: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server(backend: Backend, config: LiveConfig) -> Option<Server> {
    let db = TestDb::new(backend)?;
    let database = db.database().clone();
    let engine = SyncEngine::new(database.clone(), SyncConfig::default(), DomainRegistry::builtin());
    let live = Live::new(engine, config);
    let api = SyncApi::with_live(
        live.clone(),
        ApiOptions { jwt_secret: Some(JWT_SECRET.into()), ..ApiOptions::default() },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, sync_api::router(api)).await.unwrap();
    });
    Some(Server {
        base: format!("http://{address}"),
        device: token(&database, "acme", "u1", Role::Device),
        device_other_tenant: token(&database, "other", "x1", Role::Device),
        admin: token(&database, "acme", "boss", Role::Admin),
        _db: db,
        live,
        http: reqwest::Client::new(),
        task,
    })
}

fn config() -> LiveConfig {
    LiveConfig { page_size: 2, ws_auth_timeout_secs: 1, ..LiveConfig::default() }
}

impl Server {
    async fn push(&self, token: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/api/v1/sync/push", self.base))
            .bearer_auth(token)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn pull_all(&self, token: &str) -> Vec<(String, i64)> {
        let mut cursor = String::new();
        let mut out = Vec::new();
        loop {
            let url = format!("{}/api/v1/sync/pull?limit=3&cursor={cursor}", self.base);
            let body: Value =
                self.http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            for c in body["changes"].as_array().unwrap() {
                out.push((c["mobile_id"].as_str().unwrap().to_owned(), c["version"].as_i64().unwrap()));
            }
            cursor = body["cursor"].as_str().unwrap().to_owned();
            if !body["has_more"].as_bool().unwrap() {
                return out;
            }
        }
    }

    fn ws_url(&self) -> String {
        format!("{}/api/v1/sync/ws", self.base.replace("http://", "ws://"))
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: String,
}

/// Reads server-sent events off a response.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                    }
                }
                if event.event.is_empty() && event.data.is_empty() {
                    continue;
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("an event in time")
                .unwrap()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Takes `changes` events until `want` records arrived: the records and the last id.
    async fn changes(&mut self, want: usize) -> (Vec<(String, i64)>, String) {
        let mut got = Vec::new();
        let mut id = String::new();
        while got.len() < want {
            let event = self.next().await.expect("the stream goes on");
            if event.event != "changes" {
                assert_eq!(event.event, "heartbeat", "{event:?}");
                continue;
            }
            let body: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(body["cursor"].as_str(), event.id.as_deref(), "the id is the batch's cursor");
            for c in body["changes"].as_array().unwrap() {
                got.push((c["mobile_id"].as_str().unwrap().to_owned(), c["version"].as_i64().unwrap()));
            }
            id = event.id.unwrap();
        }
        (got, id)
    }
}

async fn sse(server: &Server, token: &str, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = server
        .http
        .get(format!("{}/api/v1/sync/stream{query}", server.base))
        .header("accept", "text/event-stream")
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.unwrap()
}

async fn for_backends<F, Fut>(config: LiveConfig, mut test: F)
where
    F: FnMut(Server) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if !sync_domain::testing::backend_selected(backend) {
            continue;
        }
        if let Some(server) = server(backend, config.clone()).await {
            test(server).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_what_pulls_would_and_resumes_by_last_event_id() {
    for_backends(config(), |s| async move {
        s.push(&s.device, task_push("d1", &[1, 2, 3], "first")).await;
        s.push(&s.device_other_tenant, task_push("x", &[900], "elsewhere")).await;
        let response = sse(&s, &s.device, "", None).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut stream = SseReader { response, buffer: String::new() };
        let (backlog, after_backlog) = stream.changes(3).await;
        // Concurrent pushes while streaming.
        let pushes = (0..3u32).map(|i| s.push(&s.device, task_push("d2", &[10 + i * 2, 11 + i * 2], "live")));
        futures_util::future::join_all(pushes).await;
        let (live, _) = stream.changes(6).await;
        let mut all = backlog.clone();
        all.extend(live.clone());
        assert_eq!(all, s.pull_all(&s.device).await, "the stream is exactly the pulls, in order");
        assert!(!all.iter().any(|(id, _)| id == &uuid(900)), "never another tenant's change");
        drop(stream);

        // Last-Event-ID wins over cursor=: only what came after the backlog.
        let query = "?cursor=";
        let response = sse(&s, &s.device, query, Some(&after_backlog)).await;
        let mut resumed = SseReader { response, buffer: String::new() };
        let (again, _) = resumed.changes(6).await;
        assert_eq!(again, live, "resumed by Last-Event-ID with no gap and no duplicate");

        // Domain filter: nothing of other domains.
        let journal = json!({"device_id": "d3", "changes": [{"domain": "journal", "mobile_id": uuid(50),
            "base_version": 0, "op": "upsert", "data": {"title": "note"}, "modified_at": "2026-11-22T09:58:00Z"}]});
        let response = sse(&s, &s.device, &format!("?domains=journal&cursor={after_backlog}"), None).await;
        let mut journals = SseReader { response, buffer: String::new() };
        s.push(&s.device, journal).await;
        let (only, _) = journals.changes(1).await;
        assert_eq!(only, vec![(uuid(50), 1)]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_refuses_bad_requests_and_excess_connections() {
    let limited = LiveConfig { max_live_connections: 1, ..config() };
    for_backends(limited, |s| async move {
        let unauthenticated = s.http.get(format!("{}/api/v1/sync/stream", s.base)).send().await.unwrap();
        assert_eq!(unauthenticated.status(), 401);
        let bad_cursor = sse(&s, &s.device, "?cursor=garbage", None).await;
        assert_eq!(bad_cursor.status(), 400);
        let body: Value = bad_cursor.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_cursor");
        let bad_id = sse(&s, &s.device, "", Some("garbage")).await;
        assert_eq!(bad_id.status(), 400);
        let unknown = sse(&s, &s.device, "?domains=nope", None).await;
        assert_eq!(unknown.status(), 400);
        let unknown_param = sse(&s, &s.device, "?bogus=1", None).await;
        assert_eq!(unknown_param.status(), 400);

        // One connection is the limit: a second stream, a long-poll and a WebSocket are refused.
        let first = sse(&s, &s.device, "", None).await;
        assert_eq!(first.status(), 200);
        let second = sse(&s, &s.device, "", None).await;
        assert_eq!(second.status(), 503);
        let retry: u32 = second.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=10).contains(&retry));
        let body: Value = second.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_connections");
        let poll = s
            .http
            .get(format!("{}/api/v1/sync/pull?wait=1", s.base))
            .bearer_auth(&s.device)
            .send()
            .await
            .unwrap();
        assert_eq!(poll.status(), 503);
        let mut request = s.ws_url().into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {}", s.device).parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1013));
        // Plain pulls are not live connections.
        let plain =
            s.http.get(format!("{}/api/v1/sync/pull", s.base)).bearer_auth(&s.device).send().await.unwrap();
        assert_eq!(plain.status(), 200);
        drop(first);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_says_resync_required_for_a_purged_cursor_and_reconnect_on_shutdown() {
    for_backends(config(), |s| async move {
        for round in 0..3 {
            s.push(&s.device, task_push("d1", &[1, 2], &format!("round {round}"))).await;
        }
        let head: Value = s
            .http
            .get(format!("{}/api/v1/sync/pull?device_id=d1&limit=1000", s.base))
            .bearer_auth(&s.device)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(head["cursor"].is_string());
        let report = s.live.engine().purge("acme").await.unwrap();
        assert!(report.below_seq > 1);
        let old = sync_domain::protocol::Cursor(1).to_string();
        let response = sse(&s, &s.device, &format!("?cursor={old}"), None).await;
        assert_eq!(response.status(), 200);
        let mut stream = SseReader { response, buffer: String::new() };
        let event = stream.next().await.unwrap();
        assert_eq!(event.event, "resync_required");
        assert!(stream.next().await.is_none(), "the stream ends after resync_required");
        // The same cursor on a plain pull is 410.
        let pull = s
            .http
            .get(format!("{}/api/v1/sync/pull?cursor={old}", s.base))
            .bearer_auth(&s.device)
            .send()
            .await
            .unwrap();
        assert_eq!(pull.status(), 410);

        // Graceful shutdown: streams are told to reconnect.
        let response = sse(&s, &s.device, "", None).await;
        let mut stream = SseReader { response, buffer: String::new() };
        let _ = stream.changes(2).await;
        s.live.shutdown();
        let last = loop {
            let event = stream.next().await.unwrap();
            if event.event != "changes" && event.event != "heartbeat" {
                break event;
            }
        };
        assert_eq!(last.event, "reconnect");
        assert!(stream.next().await.is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_answers_at_once_waits_for_a_change_or_times_out() {
    for_backends(config(), |s| async move {
        for wait in ["0", "61", "x"] {
            let r = s
                .http
                .get(format!("{}/api/v1/sync/pull?wait={wait}", s.base))
                .bearer_auth(&s.device)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "wait={wait}");
        }
        let r = s.http.get(format!("{}/api/v1/sync/pull?wait=5", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        s.push(&s.device, task_push("d1", &[1], "t")).await;
        // Changes exist: at once, as a plain pull.
        let at_once: Value = s
            .http
            .get(format!("{}/api/v1/sync/pull?wait=30", s.base))
            .bearer_auth(&s.device)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(at_once["changes"].as_array().unwrap().len(), 1);
        let cursor = at_once["cursor"].as_str().unwrap().to_owned();
        // Nothing yet: the request waits, and a change that commits meanwhile answers it.
        let url = format!("{}/api/v1/sync/pull?wait=30&cursor={cursor}", s.base);
        let waiting = tokio::spawn(s.http.get(url).bearer_auth(&s.device).send());
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Another tenant's change does not answer it.
        s.push(&s.device_other_tenant, task_push("x", &[7], "elsewhere")).await;
        s.push(&s.device, task_push("d1", &[2], "new")).await;
        let answered: Value = waiting.await.unwrap().unwrap().json().await.unwrap();
        let ids: Vec<&str> = answered["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["mobile_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![uuid(2).as_str()]);
        // Nothing comes: 200, no changes, the same cursor.
        let cursor = answered["cursor"].as_str().unwrap().to_owned();
        let url = format!("{}/api/v1/sync/pull?wait=1&cursor={cursor}", s.base);
        let empty: Value = s.http.get(url).bearer_auth(&s.device).send().await.unwrap().json().await.unwrap();
        assert_eq!(empty["changes"], json!([]));
        assert_eq!(empty["cursor"].as_str(), Some(cursor.as_str()));
    })
    .await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The close code the server ends with (skipping other messages).
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("in time")?;
        match message {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// The next JSON text message (skipping pings and heartbeats).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] != "heartbeat" {
                return value;
            }
        }
    }
}

async fn ws_with_header(s: &Server, token: &str) -> Ws {
    let mut request = s.ws_url().into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscribes_acks_and_follows_changes() {
    for_backends(config(), |s| async move {
        s.push(&s.device, task_push("d1", &[1, 2, 3], "first")).await;
        // First-message auth (browsers cannot set headers).
        let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap();
        send(&mut ws, json!({"type": "auth", "token": s.device})).await;
        // Malformed JSON and a bad cursor are errors; the connection stays.
        ws.send(Message::Text("{not json".into())).await.unwrap();
        assert_eq!(next_json(&mut ws).await["error"]["code"], "invalid_json");
        send(&mut ws, json!({"type": "subscribe", "cursor": "garbage"})).await;
        assert_eq!(next_json(&mut ws).await["error"]["code"], "invalid_cursor");
        send(&mut ws, json!({"type": "ack", "cursor": "x"})).await;
        assert_eq!(next_json(&mut ws).await["error"]["code"], "missing_device_id");
        send(&mut ws, json!({"type": "subscribe", "cursor": null, "domains": ["task"], "delta": false, "device_id": "d9"})).await;
        let mut got = Vec::new();
        let mut cursor = String::new();
        while got.len() < 3 {
            let message = next_json(&mut ws).await;
            assert_eq!(message["type"], "changes", "{message}");
            for c in message["changes"].as_array().unwrap() {
                got.push(c["mobile_id"].as_str().unwrap().to_owned());
            }
            cursor = message["cursor"].as_str().unwrap().to_owned();
        }
        assert_eq!(got, vec![uuid(1), uuid(2), uuid(3)]);
        s.push(&s.device_other_tenant, task_push("x", &[9], "elsewhere")).await;
        s.push(&s.device, task_push("d1", &[4], "live")).await;
        let message = next_json(&mut ws).await;
        assert_eq!(message["changes"][0]["mobile_id"], uuid(4));
        assert_eq!(message["has_more"], false);
        cursor = message["cursor"].as_str().map_or(cursor, str::to_owned);
        // ack remembers the device's cursor: its queue is empty.
        send(&mut ws, json!({"type": "ack", "cursor": cursor})).await;
        let queue: Value = loop {
            let q: Value = s
                .http
                .get(format!("{}/api/v1/sync/queue-status?device_id=d9", s.base))
                .bearer_auth(&s.device)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if q["pending_items"] == 0 {
                break q;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(queue["pending_items"], 0);
        // An unknown message type closes with 1008.
        send(&mut ws, json!({"type": "dance"})).await;
        assert_eq!(close_code(&mut ws).await, Some(1008));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_close_codes() {
    for_backends(config(), |s| async move {
        // No credentials within the auth timeout, or a bad token: 1008.
        let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1008));
        let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap();
        send(&mut ws, json!({"type": "auth", "token": "sf_nope"})).await;
        assert_eq!(close_code(&mut ws).await, Some(1008));
        let mut ws = ws_with_header(&s, "sf_nope").await;
        assert_eq!(close_code(&mut ws).await, Some(1008));
        // A message over 64 KiB: 1009; another subscriber is unaffected.
        let mut other = ws_with_header(&s, &s.admin).await;
        send(&mut other, json!({"type": "subscribe"})).await;
        let mut ws = ws_with_header(&s, &s.device).await;
        let big = json!({"type": "subscribe", "cursor": "x".repeat(70 * 1024)});
        send(&mut ws, big).await;
        assert_eq!(close_code(&mut ws).await, Some(1009));
        s.push(&s.device, task_push("d1", &[5], "after")).await;
        assert_eq!(next_json(&mut other).await["changes"][0]["mobile_id"], uuid(5));
        // Graceful shutdown: 1012.
        s.live.shutdown();
        assert_eq!(close_code(&mut other).await, Some(1012));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// GraphQL subscriptions over graphql-transport-ws

/// A `graphql-transport-ws` socket at `/graphql/ws`, acknowledged after `connection_init`
/// with `payload`.
async fn graphql_ws(s: &Server, payload: Value) -> Result<Ws, Option<u16>> {
    let mut request =
        format!("{}/graphql/ws", s.base.replace("http://", "ws://")).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    send(&mut ws, json!({"type": "connection_init", "payload": payload})).await;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(value["type"], "connection_ack", "{value}");
                return Ok(ws);
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            _ => return Err(None),
        }
    }
}

/// Takes `next` messages of subscription `id` until `want` records arrived; panics on an
/// error or completion before that.
async fn graphql_changes(ws: &mut Ws, id: &str, want: usize) -> (Vec<(String, i64)>, String) {
    let mut got = Vec::new();
    let mut cursor = String::new();
    while got.len() < want {
        let message = next_json(ws).await;
        if message["type"] == "ping" {
            send(ws, json!({"type": "pong"})).await;
            continue;
        }
        assert_eq!(message["type"], "next", "{message}");
        if message["id"] != id {
            continue; // another subscription of the socket
        }
        let batch = &message["payload"]["data"]["changes"];
        for c in batch["changes"].as_array().unwrap() {
            got.push((c["mobile_id"].as_str().unwrap().to_owned(), c["version"].as_i64().unwrap()));
        }
        cursor = batch["cursor"].as_str().unwrap().to_owned();
    }
    (got, cursor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_subscription_delivers_what_server_sent_events_do() {
    for_backends(config(), |s| async move {
        s.push(&s.device, task_push("d1", &[1, 2, 3], "first")).await;
        s.push(&s.device_other_tenant, task_push("x", &[900], "elsewhere")).await;

        let mut ws = graphql_ws(&s, json!({"Authorization": format!("Bearer {}", s.device)})).await.unwrap();
        let subscribe = json!({"id": "1", "type": "subscribe",
            "payload": {"query": "subscription { changes(domains: [\"task\"]) { changes { mobile_id version } cursor } }"}});
        send(&mut ws, subscribe).await;
        let mut sse_stream = SseReader { response: sse(&s, &s.device, "?domains=task", None).await, buffer: String::new() };

        let (backlog, _) = graphql_changes(&mut ws, "1", 3).await;
        let (sse_backlog, _) = sse_stream.changes(3).await;
        assert_eq!(backlog, sse_backlog);
        let pushes = (0..3u32).map(|i| s.push(&s.device, task_push("d2", &[10 + i * 2, 11 + i * 2], "live")));
        futures_util::future::join_all(pushes).await;
        let (live, cursor) = graphql_changes(&mut ws, "1", 6).await;
        let (sse_live, sse_cursor) = sse_stream.changes(6).await;
        assert_eq!(live, sse_live, "the same changes in the same order as server-sent events");
        assert_eq!(cursor, sse_cursor);
        let mut all = backlog;
        all.extend(live);
        assert_eq!(all, s.pull_all(&s.device).await, "exactly what pulls return");
        assert!(!all.iter().any(|(id, _)| id == &uuid(900)), "never another tenant's change");

        // A second subscription resumes by cursor on the same socket: only what is new.
        send(&mut ws, json!({"id": "2", "type": "subscribe",
            "payload": {"query": "subscription($c: String) { changes(cursor: $c) { changes { mobile_id version } cursor } }", "variables": {"c": cursor}}})).await;
        s.push(&s.device, task_push("d3", &[40], "after")).await;
        loop {
            let (got, _) = graphql_changes(&mut ws, "2", 1).await;
            if !got.is_empty() {
                assert_eq!(got, vec![(uuid(40), 1)]);
                break;
            }
        }
        send(&mut ws, json!({"id": "2", "type": "complete"})).await;

        // A bad cursor is the subscription's error, with the protocol's code; the socket stays.
        send(&mut ws, json!({"id": "3", "type": "subscribe",
            "payload": {"query": "subscription { changes(cursor: \"nope\") { cursor } }"}})).await;
        let mut error = next_json(&mut ws).await;
        while error["id"] != "3" {
            error = next_json(&mut ws).await; // subscription 1's batches, 2's completion
        }
        // An execution error comes as the subscription's result (`next` with `errors`).
        assert_eq!(error["type"], "next", "{error}");
        assert_eq!(error["payload"]["errors"][0]["extensions"]["code"], "invalid_cursor", "{error}");
        assert_eq!(error["payload"]["errors"][0]["extensions"]["status"], 400, "{error}");

        // No credentials, or bad ones: the socket is refused (4403 Forbidden).
        assert_eq!(graphql_ws(&s, json!({})).await.err(), Some(Some(4403)));
        assert_eq!(graphql_ws(&s, json!({"token": "sf_nope"})).await.err(), Some(Some(4403)));
        // First-message style credentials work too.
        assert!(graphql_ws(&s, json!({"token": s.admin})).await.is_ok());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_socket_without_the_subprotocol_is_refused() {
    for_backends(config(), |s| async move {
        let response = s
            .http
            .get(format!("{}/graphql/ws", s.base))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_protocol");
    })
    .await;
}
