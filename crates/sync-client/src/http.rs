//! The HTTP transport: the protocol's requests over reqwest, gzip both ways.
//!
//! Answers are decompressed here rather than by reqwest, within [`MAX_RESPONSE_BYTES`] (a
//! gzip bomb is refused after reading at most that much), so that each [`Exchange`] can tell
//! the bytes on the wire from the JSON they carried.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sync_bandwidth::{CompressionConfig, Encoding, NetworkQuality};
use sync_protocol::{ErrorBody, PullResponse, PushRequest, PushResponse};

use crate::{Error, Result};

/// The largest answer accepted, after decompression.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of one exchange: on the wire (as sent, possibly gzipped) and as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// An answered request: the decoded body, the exact JSON it was decoded from (a push replayed
/// under its idempotency key must be answered with the same bytes), and the bytes it took.
#[derive(Debug, Clone)]
pub struct Exchange<T> {
    pub body: T,
    pub json: Vec<u8>,
    pub traffic: Traffic,
}

/// Parameters of a pull (and of the live stream, which takes the same filters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullParams {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    pub domains: Option<Vec<String>>,
    pub delta: bool,
    pub device_id: Option<String>,
    /// Long-poll: hold the request up to this many seconds (1 to 60) when nothing is new.
    pub wait: Option<u32>,
}

impl PullParams {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(cursor) = &self.cursor {
            query.push(("cursor", cursor.clone()));
        }
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(domains) = &self.domains {
            query.push(("domains", domains.join(",")));
        }
        if self.delta {
            query.push(("delta", "true".into()));
        }
        if let Some(device) = &self.device_id {
            query.push(("device_id", device.clone()));
        }
        if let Some(wait) = self.wait {
            query.push(("wait", wait.to_string()));
        }
        query
    }
}

/// One server, one bearer token. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Remote {
    http: reqwest::Client,
    base_url: String,
    token: String,
    compression: CompressionConfig,
    quality: Option<NetworkQuality>,
}

const PUSH: &str = "/api/v1/sync/push";
const PULL: &str = "/api/v1/sync/pull";
const STREAM: &str = "/api/v1/sync/stream";

impl Remote {
    /// The server at `base_url` (e.g. `http://127.0.0.1:8080`), acting as `token`.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Remote> {
        // Answers are decoded here (see the module docs), so reqwest's own decoding is off and
        // `Accept-Encoding: gzip` is sent by hand on push and pull.
        let http = reqwest::Client::builder()
            .no_gzip()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| Error::Transport { path: "client setup", source })?;
        Ok(Remote {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.into(),
            compression: CompressionConfig::default(),
            quality: None,
        })
    }

    /// Sends `X-Network-Quality` (it also sets the server's default page size).
    #[must_use]
    pub fn with_network_quality(mut self, quality: NetworkQuality) -> Self {
        self.quality = Some(quality);
        self
    }

    pub fn network_quality(&self) -> Option<NetworkQuality> {
        self.quality
    }

    /// The same server acting as another token, sharing this one's connection pool (many
    /// devices or accounts in one process).
    #[must_use]
    pub fn with_token(&self, token: impl Into<String>) -> Remote {
        Remote { token: token.into(), ..self.clone() }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base_url)).bearer_auth(&self.token);
        if let Some(quality) = self.quality {
            request = request.header("X-Network-Quality", quality.as_str());
        }
        request
    }

    /// `POST /api/v1/sync/push` with `key` as the `Idempotency-Key`; the body is gzipped
    /// where that pays (the server's own threshold rule).
    pub async fn push(&self, key: &str, request: &PushRequest) -> Result<PushResponse> {
        Ok(self.push_exchange(key, request).await?.body)
    }

    /// [`push`](Self::push), with the answer's exact bytes and the traffic.
    pub async fn push_exchange(&self, key: &str, request: &PushRequest) -> Result<Exchange<PushResponse>> {
        let json =
            serde_json::to_vec(request).map_err(|e| Error::Protocol(format!("encoding a push: {e}")))?;
        let body = self.compression.compress(json)?;
        let sent = (body.encoded_bytes() as u64, body.original_bytes as u64);
        let mut builder = self
            .request(reqwest::Method::POST, PUSH)
            .timeout(Duration::from_secs(60))
            .header(header::ACCEPT_ENCODING, "gzip")
            .header("Idempotency-Key", key)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(encoding) = body.content_encoding() {
            builder = builder.header(header::CONTENT_ENCODING, encoding);
        }
        let response =
            builder.body(body.body).send().await.map_err(|source| Error::Transport { path: PUSH, source })?;
        decode(PUSH, response, sent).await
    }

    /// `GET /api/v1/sync/pull` (a long-poll when `params.wait` is set).
    pub async fn pull(&self, params: &PullParams) -> Result<PullResponse> {
        Ok(self.pull_exchange(params).await?.body)
    }

    /// [`pull`](Self::pull), with the answer's exact bytes and the traffic.
    pub async fn pull_exchange(&self, params: &PullParams) -> Result<Exchange<PullResponse>> {
        let timeout = Duration::from_secs(60 + u64::from(params.wait.unwrap_or(0)));
        let response = self
            .request(reqwest::Method::GET, PULL)
            .timeout(timeout)
            .header(header::ACCEPT_ENCODING, "gzip")
            .query(&params.query())
            .send()
            .await
            .map_err(|source| Error::Transport { path: PULL, source })?;
        decode(PULL, response, (0, 0)).await
    }

    /// Opens `GET /api/v1/sync/stream` (server-sent events), resuming at `last_event_id`.
    pub async fn stream(
        &self,
        params: &PullParams,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut builder = self
            .request(reqwest::Method::GET, STREAM)
            .header(header::ACCEPT, "text/event-stream")
            .query(&params.query());
        if let Some(id) = last_event_id {
            builder = builder.header("Last-Event-ID", id);
        }
        let response = builder.send().await.map_err(|source| Error::Transport { path: STREAM, source })?;
        if response.status() == StatusCode::OK {
            Ok(response)
        } else {
            Err(http_error(STREAM, response).await)
        }
    }
}

/// The body of a 200 answer decoded as `T`; `sent` is the request's (wire, JSON) bytes.
async fn decode<T: DeserializeOwned>(
    path: &'static str,
    response: reqwest::Response,
    sent: (u64, u64),
) -> Result<Exchange<T>> {
    if response.status() != StatusCode::OK {
        return Err(http_error(path, response).await);
    }
    let encoding = Encoding::from_content_encoding(
        response.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()),
    )?;
    let wire = response.bytes().await.map_err(|source| Error::Transport { path, source })?;
    let json = sync_bandwidth::decompress(&wire, encoding, MAX_RESPONSE_BYTES)?.into_owned();
    let body = serde_json::from_slice(&json).map_err(|e| Error::Protocol(format!("{path}: {e}")))?;
    let traffic = Traffic {
        sent_wire: sent.0,
        sent_raw: sent.1,
        received_wire: wire.len() as u64,
        received_raw: json.len() as u64,
    };
    Ok(Exchange { body, json, traffic })
}

async fn http_error(path: &'static str, response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let encoding = Encoding::from_content_encoding(
        response.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()),
    );
    let wire = response.bytes().await.unwrap_or_default();
    // An error body is small: a larger or undecodable one is shown as it came.
    let body = match encoding.map(|e| sync_bandwidth::decompress(&wire, e, 64 * 1024)) {
        Ok(Ok(body)) => body.into_owned(),
        _ => wire.to_vec(),
    };
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (String::new(), String::from_utf8_lossy(&body).chars().take(200).collect()),
    };
    Error::Http { path, status, code, message, retry_after }
}
