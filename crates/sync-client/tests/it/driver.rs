//! The HTTP driver against small fake servers: the event stream, and a server that refuses
//! large batches.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use sync_client::core::{RecordId, ServerRecord, Step, Write};
use sync_client::{Client, Event, LiveMode, Options, Origin, Remote, Store};
use uuid::Uuid;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn client(url: &str, dir: &tempfile::TempDir) -> Client {
    let store = Store::open(dir.path().join("a.db"), "phone-1").unwrap();
    Client::new(store, Remote::new(url, "token").unwrap(), Options::default()).unwrap()
}

fn record(id: Uuid, version: i64, title: &str) -> Value {
    json!({"domain": "journal", "mobile_id": id, "version": version, "deleted": false,
           "data": {"title": title}, "modified_at": "2026-11-22T10:00:00Z",
           "server_modified_at": "2026-11-22T10:00:00Z", "priority": "medium"})
}

#[derive(Clone, Default)]
struct Seen {
    last_event_ids: Arc<Mutex<Vec<Option<String>>>>,
    batch_sizes: Arc<Mutex<Vec<usize>>>,
    gzipped: Arc<Mutex<Vec<bool>>>,
}

#[tokio::test]
async fn follow_takes_changes_from_the_event_stream() {
    let id = Uuid::new_v4();
    let seen = Seen::default();
    let stream = move |State(seen): State<Seen>, headers: HeaderMap| async move {
        let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        seen.last_event_ids.lock().unwrap().push(last);
        let page = json!({"changes": [record(id, 1, "streamed")], "cursor": "c1.7", "has_more": false, "remaining": 0});
        let body =
            format!(": hello\n\nevent: heartbeat\ndata: {{}}\n\nevent: changes\nid: c1.7\ndata: {page}\n\n");
        ([("content-type", "text/event-stream")], body)
    };
    // Nothing new by pull: the same cursor back.
    let pull = |query: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
        let cursor = query.get("cursor").cloned().unwrap_or_else(|| "c1.0".into());
        axum::Json(json!({"changes": [], "cursor": cursor, "has_more": false, "remaining": 0}))
    };
    let router = Router::new()
        .route("/api/v1/sync/stream", get(stream))
        .route("/api/v1/sync/pull", get(pull))
        .with_state(seen.clone());
    let url = serve(router).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&url, &dir);
    assert_eq!(c.live_mode().await.unwrap(), LiveMode::Stream);
    let mut events = c.events();
    let follower = c.clone();
    let follow = tokio::spawn(async move { follower.follow().await });
    let arrived = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Changed { id: changed, origin: Origin::Server }) = events.recv().await {
                return changed;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(arrived.mobile_id, id);
    assert_eq!(c.get_json("journal", id).unwrap().unwrap().data["title"], "streamed");
    assert_eq!(c.store().meta().unwrap().cursor.as_deref(), Some("c1.7"), "the cursor moved with the page");
    // The stream ends after its page; the reconnect resumes from the page's event id.
    let resumed = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.last_event_ids.lock().unwrap().contains(&Some("c1.7".to_owned())) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(resumed.is_ok(), "{:?}", seen.last_event_ids.lock().unwrap());
    assert_eq!(seen.last_event_ids.lock().unwrap()[0], None, "the probe had no cursor");
    follow.abort();
}

#[tokio::test]
async fn a_413_halves_the_batches_until_they_pass() {
    let seen = Seen::default();
    let push = move |State(seen): State<Seen>, headers: HeaderMap, body: axum::body::Bytes| async move {
        // Large request bodies come gzipped.
        let encoding = headers.get("content-encoding").and_then(|v| v.to_str().ok());
        let encoding = sync_bandwidth::Encoding::from_content_encoding(encoding).unwrap();
        if encoding != sync_bandwidth::Encoding::Identity {
            seen.gzipped.lock().unwrap().push(true);
        }
        let body = sync_bandwidth::decompress(&body, encoding, 1 << 20).unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap();
        let changes = request["changes"].as_array().unwrap();
        seen.batch_sizes.lock().unwrap().push(changes.len());
        if changes.len() > 3 {
            let error =
                json!({"error": {"code": "payload_too_large", "message": "too many", "details": null}});
            return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(error)).into_response();
        }
        let results: Vec<Value> = changes
            .iter()
            .map(|c| json!({"mobile_id": c["mobile_id"], "domain": c["domain"], "outcome": "applied", "version": 1}))
            .collect();
        axum::Json(json!({"results": results, "cursor": "c1.1"})).into_response()
    };
    let pull =
        || async { axum::Json(json!({"changes": [], "cursor": "c1.1", "has_more": false, "remaining": 0})) };
    let router: Router = Router::new()
        .route("/api/v1/sync/push", post(push))
        .route("/api/v1/sync/pull", get(pull))
        .with_state(seen.clone());
    let url = serve(router).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&url, &dir);
    for i in 0..10 {
        c.put_json("journal", Uuid::new_v4(), json!({"title": format!("t{i}"), "notes": "n".repeat(200)}))
            .unwrap();
    }
    let report = c.sync().await.unwrap();
    assert_eq!(report.pushed, 10, "{report:?}");
    let sizes = seen.batch_sizes.lock().unwrap().clone();
    // 10 refused, then halves: 5 refused, then batches of at most 2 (half of 5).
    assert_eq!(sizes[..2], [10, 5], "{sizes:?}");
    assert!(sizes[2..].iter().all(|n| *n <= 3) && sizes[2..].iter().sum::<usize>() == 10, "{sizes:?}");
    assert!(c.notices().unwrap().is_empty());
    assert!(!seen.gzipped.lock().unwrap().is_empty(), "the first, large batches went gzipped");
    assert!(c.query_json("journal").unwrap().iter().all(|v| v.version == 1));
}

#[tokio::test]
async fn without_a_stream_follow_long_polls() {
    let id = Uuid::new_v4();
    let waits = Arc::new(Mutex::new(Vec::new()));
    let seen = waits.clone();
    let no_stream = || async {
        let error = json!({"error": {"code": "not_found", "message": "no such route", "details": null}});
        (StatusCode::NOT_FOUND, axum::Json(error))
    };
    // The first pull has nothing; a long-poll from its cursor is answered when "a change
    // commits" (after a moment) with the record.
    let pull = move |query: axum::extract::Query<std::collections::HashMap<String, String>>| {
        let seen = seen.clone();
        async move {
            let wait = query.get("wait").cloned();
            seen.lock().unwrap().push(wait.clone());
            let page = match (query.get("cursor").map(String::as_str), wait) {
                (Some("c1.1"), Some(_)) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    json!({"changes": [record(id, 1, "long-polled")], "cursor": "c1.2", "has_more": false, "remaining": 0})
                }
                (Some(cursor), _) => {
                    json!({"changes": [], "cursor": cursor, "has_more": false, "remaining": 0})
                }
                (None, _) => json!({"changes": [], "cursor": "c1.1", "has_more": false, "remaining": 0}),
            };
            axum::Json(page)
        }
    };
    let router =
        Router::new().route("/api/v1/sync/stream", get(no_stream)).route("/api/v1/sync/pull", get(pull));
    let url = serve(router).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&url, &dir);
    assert_eq!(c.live_mode().await.unwrap(), LiveMode::LongPoll);
    let follower = c.clone();
    let follow = tokio::spawn(async move { follower.follow().await });
    let arrived = tokio::time::timeout(Duration::from_secs(10), async {
        while c.get_json("journal", id).unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(arrived.is_ok(), "pulls: {:?}", waits.lock().unwrap());
    assert!(waits.lock().unwrap().contains(&Some("25".to_owned())), "a long-poll waits the configured 25 s");
    follow.abort();
}

#[tokio::test]
async fn a_cursor_the_server_never_handed_out_starts_a_resync() {
    let id = Uuid::new_v4();
    let pull = move |query: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
        match query.get("cursor").map(String::as_str) {
            // A server whose database was replaced does not know this device's cursor.
            Some("c1.99") => {
                let error = json!({"error": {"code": "invalid_cursor", "message": "unknown cursor", "details": null}});
                (StatusCode::BAD_REQUEST, axum::Json(error)).into_response()
            }
            _ => axum::Json(json!({"changes": [record(id, 1, "fresh")], "cursor": "c1.1", "has_more": false, "remaining": 0}))
                .into_response(),
        }
    };
    let url = serve(Router::new().route("/api/v1/sync/pull", get(pull))).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&url, &dir);
    let stale = RecordId::new("journal", Uuid::new_v4());
    c.store()
        .step(|r| {
            let mut meta = r.meta()?;
            meta.cursor = Some("c1.99".into());
            let held = ServerRecord {
                id: stale.clone(),
                version: 3,
                data: Some(json!({"title": "from the old server"})),
                deleted: false,
                status: sync_client::SyncStatus::Synced,
                modified_at: time::OffsetDateTime::UNIX_EPOCH,
                priority: sync_client::Priority::Medium,
                bu: None,
                epoch: 0,
                conflict_at: None,
                pulled: true,
            };
            Ok(Step { writes: vec![Write::Meta(meta), Write::Record(held)], events: vec![] })
        })
        .unwrap();
    let report = c.sync().await.unwrap();
    assert_eq!(report.resyncs, 1, "{report:?}");
    assert_eq!(c.get_json("journal", id).unwrap().unwrap().data["title"], "fresh");
    assert!(
        c.get_json("journal", stale.mobile_id).unwrap().is_none(),
        "what the server does not have is gone"
    );
    assert_eq!(c.store().meta().unwrap().cursor.as_deref(), Some("c1.1"));
}

/// A gzipped pull answer: the exchange tells its bytes on the wire from its JSON, and the
/// decoded page is the one sent. A gzip bomb is refused instead of filling memory.
#[tokio::test]
async fn exchanges_count_wire_bytes_and_refuse_gzip_bombs() {
    let page = json!({"changes": [record(Uuid::new_v4(), 1, &"x".repeat(5000))], "cursor": "c1.1",
                      "has_more": false, "remaining": 0});
    let json_bytes = serde_json::to_vec(&page).unwrap();
    let gzipped = sync_bandwidth::CompressionConfig::default().compress(json_bytes.clone()).unwrap();
    assert_eq!(gzipped.content_encoding(), Some("gzip"));
    let gzipped = gzipped.body;
    let bomb = {
        let config = sync_bandwidth::CompressionConfig {
            mode: sync_bandwidth::CompressionMode::Always,
            ..Default::default()
        };
        config.compress(vec![b' '; sync_client::http::MAX_RESPONSE_BYTES + 1024]).unwrap().body
    };
    let pull = move |headers: HeaderMap,
                     query: axum::extract::Query<std::collections::HashMap<String, String>>| {
        let (gzipped, bomb) = (gzipped.clone(), bomb.clone());
        async move {
            assert_eq!(headers.get("accept-encoding").and_then(|v| v.to_str().ok()), Some("gzip"));
            let body = if query.contains_key("cursor") { bomb } else { gzipped };
            ([("content-type", "application/json"), ("content-encoding", "gzip")], body)
        }
    };
    let url = serve(Router::new().route("/api/v1/sync/pull", get(pull))).await;
    let remote = Remote::new(&url, "token").unwrap();
    let exchange = remote.pull_exchange(&sync_client::http::PullParams::default()).await.unwrap();
    assert_eq!(exchange.json, json_bytes);
    assert_eq!(exchange.traffic.received_raw, json_bytes.len() as u64);
    assert!(exchange.traffic.received_wire < exchange.traffic.received_raw / 4, "{:?}", exchange.traffic);
    assert_eq!(exchange.body.changes.len(), 1);
    let params = sync_client::http::PullParams { cursor: Some("c1.1".into()), ..Default::default() };
    let error = remote.pull(&params).await.unwrap_err();
    assert!(matches!(error, sync_client::Error::Patch(_)), "{error}");
}

/// A full page (no deltas asked for) with a record that has no data is the server's fault:
/// `sync()` says so instead of asking for the same page for ever.
#[tokio::test]
async fn a_full_page_without_data_is_an_error_not_a_loop() {
    let id = Uuid::new_v4();
    let asked = Arc::new(Mutex::new(0_u32));
    let pull = {
        let asked = Arc::clone(&asked);
        move || {
            *asked.lock().unwrap() += 1;
            let mut broken = record(id, 2, "x");
            broken.as_object_mut().unwrap().remove("data");
            async move {
                axum::Json(json!({"changes": [broken], "cursor": "c1.2", "has_more": false, "remaining": 0}))
            }
        }
    };
    let url = serve(Router::new().route("/api/v1/sync/pull", get(pull))).await;
    let dir = tempfile::tempdir().unwrap();
    let error = client(&url, &dir).sync().await.unwrap_err();
    assert!(matches!(error, sync_client::Error::Protocol(_)), "{error}");
    // Once with deltas, once in full, then the error.
    assert_eq!(*asked.lock().unwrap(), 2);
}
