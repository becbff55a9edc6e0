//! Slow and hostile clients against the real server, with its `[http]` timeouts shortened
//! through the environment (header 1 s, body 1 s, idle 2 s): a slowloris connection is closed
//! within the header timeout, a slow body gets 408 with the protocol's error body, a 1 MB
//! header is refused, a gzip bomb is 413 on push and GraphQL, deep JSON is 400, and an SSE
//! stream outlives all three timeouts, receiving heartbeats.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_domain::testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Server, create_token};

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const BODY_TIMEOUT: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// The watchdog looks every tenth of the shortest timeout; scheduling on a busy CI machine.
const SLACK: Duration = Duration::from_millis(1500);

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads what the server sends until it closes the connection (or `within` passes): the bytes
/// and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (received, false),
            Ok(Ok(0) | Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// A slowloris client: one byte of a never-ending head every 200 ms. Returns how long the
/// server kept the connection.
async fn slowloris(server: &Server) -> Duration {
    let mut stream = TcpStream::connect(address(server)).await.unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a'));
    for &byte in head {
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        let (_, closed) = read_until_closed(&mut stream, Duration::from_millis(200)).await;
        if closed || started.elapsed() > HEADER_TIMEOUT * 10 {
            break;
        }
    }
    started.elapsed()
}

/// A push whose body trickles in after its headers: the answer and how long it took.
async fn slow_body(server: &Server, token: &str) -> (String, Duration) {
    let mut stream = TcpStream::connect(address(server)).await.unwrap();
    let started = Instant::now();
    let head = format!(
        "POST /api/v1/sync/push HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Idempotency-Key: slow\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    for _ in 0..50 {
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        let (bytes, closed) = read_until_closed(&mut stream, Duration::from_millis(100)).await;
        received.extend(bytes);
        if closed {
            break;
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

/// A request with a 1 MB header: the status line, if the server answered before closing.
async fn huge_header(server: &Server) -> String {
    let mut stream = TcpStream::connect(address(server)).await.unwrap();
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Huge: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 1 << 20));
    request.extend_from_slice(b"\r\n\r\n");
    // The server may close before it has read everything: a failed write is a refusal too.
    let _ = stream.write_all(&request).await;
    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the connection stayed open after a 1 MB header");
    String::from_utf8_lossy(&received).lines().next().unwrap_or_default().to_owned()
}

/// Seconds an SSE stream stayed open (up to `hold`) and the heartbeats it received.
async fn sse(server: &Server, token: &str, hold: Duration) -> (Duration, usize) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut response = http
        .get(server.url("/api/v1/sync/stream"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut text = String::new();
    while started.elapsed() < hold {
        match tokio::time::timeout(hold.saturating_sub(started.elapsed()), response.chunk()).await {
            Err(_) => break,
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None) | Err(_)) => return (started.elapsed(), text.matches("event: heartbeat").count()),
        }
    }
    (started.elapsed(), text.matches("event: heartbeat").count())
}

fn gzip_bomb() -> Vec<u8> {
    // 10 MB of zeros: about 10 KB on the wire, over the 8 MiB limit once decoded.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..10 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_are_bounded_and_live_streams_are_not() {
    let db = TestDb::sqlite();
    let token = create_token(db.url(), "acme", "u1", "device");
    let server = Server::start(
        db.url(),
        &[
            ("SYNC_HTTP_HEADER_READ_TIMEOUT_SECS", "1"),
            ("SYNC_HTTP_BODY_READ_TIMEOUT_SECS", "1"),
            ("SYNC_HTTP_IDLE_TIMEOUT_SECS", "2"),
            ("SYNC_LIVE_HEARTBEAT_SECS", "1"),
        ],
    );
    // Longer than the header, body and idle timeouts together.
    let hold = HEADER_TIMEOUT + BODY_TIMEOUT + IDLE_TIMEOUT + Duration::from_millis(500);
    let (slowloris, (slow_answer, slow_took), huge, (sse_open, heartbeats)) = tokio::join!(
        slowloris(&server),
        slow_body(&server, &token),
        huge_header(&server),
        sse(&server, &token, hold),
    );

    assert!(
        slowloris >= HEADER_TIMEOUT - Duration::from_millis(100) && slowloris <= HEADER_TIMEOUT + SLACK,
        "a slowloris connection lasted {slowloris:?}"
    );

    assert!(slow_took <= BODY_TIMEOUT + SLACK, "a slow body was cut after {slow_took:?}");
    assert!(slow_answer.starts_with("HTTP/1.1 408"), "{slow_answer}");
    let body = slow_answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let error: Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["error"]["code"], "request_timeout", "{error}");
    assert!(error["error"]["message"].is_string(), "{error}");

    assert!(huge.is_empty() || huge.starts_with("HTTP/1.1 431"), "a 1 MB header got {huge:?}");

    assert!(sse_open >= hold, "the SSE stream was closed after {sse_open:?}");
    assert!(heartbeats >= 3, "{heartbeats} heartbeats in {sse_open:?}");

    // Bodies: a gzip bomb is 413 on push and on GraphQL; deep JSON is 400.
    let http = reqwest::Client::builder().gzip(false).build().unwrap();
    let bomb = gzip_bomb();
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    for (path, key) in [("/api/v1/sync/push", Some("bomb")), ("/graphql", None)] {
        let mut request = http
            .post(server.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let started = Instant::now();
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "payload_too_large", "{path}: {error}");
        assert!(started.elapsed() < Duration::from_secs(2), "{path}: {:?}", started.elapsed());
    }
    let deep = format!(
        r#"{{"device_id":"d1","changes":[{{"domain":"task","data":{}{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let response = http
        .post(server.url("/api/v1/sync/push"))
        .bearer_auth(&token)
        .header("idempotency-key", "deep")
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_json", "{error}");

    // And the server is still serving.
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let pushed = http
        .post(server.url("/api/v1/sync/push"))
        .bearer_auth(&token)
        .header("idempotency-key", "after")
        .json(&json!({"device_id": "d1", "changes": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::OK);
}
