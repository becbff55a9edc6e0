//! A small typed client of the sync protocol (PROTOCOL.md) over HTTP.
//!
//! It speaks the wire contract as a phone app does: a bearer token, an `Idempotency-Key` on
//! every push, request bodies gzip-compressed by the server's own rule (at least
//! `compression_threshold_bytes`, and only when it saves 20 %), `Accept-Encoding: gzip` on
//! every request, and an `X-Network-Quality` header when the caller knows its network. It
//! decompresses responses itself, so that every [`Reply`] can say how many bytes crossed the
//! wire and how many the JSON took.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_bandwidth::{CompressionConfig, Encoding, NetworkQuality};
use sync_domain::engine::ConflictView;
use sync_domain::protocol::{PullRequest, PullResponse, PushRequest, PushResponse, QueueStatus};

use crate::error::{Error, Result};

/// Largest response body the client accepts (after decompression).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of one exchange: on the wire (as sent, possibly compressed) and as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    pub sent_wire: u64,
    pub sent_raw: u64,
    pub received_wire: u64,
    pub received_raw: u64,
}

impl Traffic {
    /// Adds another exchange's bytes.
    pub fn add(&mut self, other: Traffic) {
        self.sent_wire += other.sent_wire;
        self.sent_raw += other.sent_raw;
        self.received_wire += other.received_wire;
        self.received_raw += other.received_raw;
    }
}

/// A successful response: the decoded body, its exact bytes, the traffic and the latency.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub body: T,
    /// The decompressed response body, byte for byte (a replayed push must repeat it exactly).
    pub raw: Vec<u8>,
    pub traffic: Traffic,
    pub latency: Duration,
}

/// A client of one server, acting with one bearer token. Cheap to clone: clones share the
/// connection pool of their `reqwest::Client`.
#[derive(Debug, Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
    compression: CompressionConfig,
    network_quality: Option<NetworkQuality>,
}

impl SyncClient {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`) acting as `token`.
    pub fn new(http: reqwest::Client, base_url: &str, token: impl Into<String>) -> Self {
        SyncClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.into(),
            compression: CompressionConfig::default(),
            network_quality: None,
        }
    }

    /// A `reqwest::Client` suited to this client: it leaves decompression to us (so that the
    /// wire bytes can be counted) and keeps enough idle connections for a fleet.
    pub fn http_client() -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .no_gzip()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| Error::Transport { path: "client setup".into(), source })
    }

    /// Sends `X-Network-Quality` with every request, which also sets the server's default
    /// pull page size.
    pub fn with_network_quality(mut self, quality: NetworkQuality) -> Self {
        self.network_quality = Some(quality);
        self
    }

    /// The same client acting with another token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        SyncClient { token: token.into(), ..self.clone() }
    }

    /// `POST /api/v1/sync/push` with `key` as the `Idempotency-Key`.
    pub async fn push(&self, key: &str, request: &PushRequest) -> Result<Reply<PushResponse>> {
        self.send(Method::POST, "/api/v1/sync/push", &[], Some(request), Some(key)).await
    }

    /// `GET /api/v1/sync/pull`.
    pub async fn pull(&self, request: &PullRequest) -> Result<Reply<PullResponse>> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(cursor) = &request.cursor {
            query.push(("cursor", cursor.clone()));
        }
        if let Some(limit) = request.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(domains) = &request.domains {
            query.push(("domains", domains.join(",")));
        }
        if request.delta {
            query.push(("delta", "true".into()));
        }
        if let Some(device) = &request.device_id {
            query.push(("device_id", device.clone()));
        }
        self.send::<(), _>(Method::GET, "/api/v1/sync/pull", &query, None, None).await
    }

    /// `GET /api/v1/sync/stream` from `cursor` (server-sent events).
    pub async fn open_stream(&self, cursor: Option<&str>) -> Result<crate::sse::Sse> {
        crate::sse::Sse::open(&self.http, &self.base_url, &self.token, cursor).await
    }

    /// `GET /api/v1/sync/queue-status`.
    pub async fn queue_status(&self, device_id: &str) -> Result<Reply<QueueStatus>> {
        let query = [("device_id", device_id.to_owned())];
        self.send::<(), _>(Method::GET, "/api/v1/sync/queue-status", &query, None, None).await
    }

    /// `GET /api/v1/sync/conflicts` (admin): newest first, at most `limit`.
    pub async fn conflicts(&self, status: Option<&str>, limit: u32) -> Result<Reply<Vec<ConflictView>>> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(status) = status {
            query.push(("status", status.to_owned()));
        }
        self.send::<(), _>(Method::GET, "/api/v1/sync/conflicts", &query, None, None).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<Reply<T>> {
        let mut traffic = Traffic::default();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .header(header::ACCEPT_ENCODING, "gzip");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(quality) = self.network_quality {
            request = request.header("X-Network-Quality", quality.as_str());
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            let json =
                serde_json::to_vec(body).map_err(|source| Error::Encode { path: path.into(), source })?;
            let compressed = self.compression.compress(json)?;
            traffic.sent_raw = compressed.original_bytes as u64;
            traffic.sent_wire = compressed.encoded_bytes() as u64;
            request = request.header(header::CONTENT_TYPE, "application/json");
            if let Some(encoding) = compressed.content_encoding() {
                request = request.header(header::CONTENT_ENCODING, encoding);
            }
            request = request.body(compressed.body);
        }

        let started = Instant::now();
        let response =
            request.send().await.map_err(|source| Error::Transport { path: path.into(), source })?;
        let status = response.status();
        let encoding = Encoding::from_content_encoding(
            response.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()),
        )?;
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let wire = response.bytes().await.map_err(|source| Error::Transport { path: path.into(), source })?;
        let latency = started.elapsed();
        let raw = sync_bandwidth::decompress(&wire, encoding, MAX_RESPONSE_BYTES)?.into_owned();
        traffic.received_wire = wire.len() as u64;
        traffic.received_raw = raw.len() as u64;

        if status != StatusCode::OK {
            return Err(Error::status(path, status.as_u16(), &raw, retry_after));
        }
        let body =
            serde_json::from_slice(&raw).map_err(|source| Error::Decode { path: path.into(), source })?;
        Ok(Reply { body, raw, traffic, latency })
    }
}
