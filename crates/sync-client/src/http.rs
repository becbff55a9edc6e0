//! The HTTP transport: the protocol's requests over reqwest, gzip both ways.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde::de::DeserializeOwned;
use sync_bandwidth::{CompressionConfig, NetworkQuality};
use sync_protocol::{ErrorBody, PullResponse, PushRequest, PushResponse};

use crate::{Error, Result};

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
        // reqwest's `gzip` feature sends `Accept-Encoding: gzip` and decodes gzip answers.
        let http = reqwest::Client::builder()
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
        let json =
            serde_json::to_vec(request).map_err(|e| Error::Protocol(format!("encoding a push: {e}")))?;
        let body = self.compression.compress(json)?;
        let mut builder = self
            .request(reqwest::Method::POST, PUSH)
            .timeout(Duration::from_secs(60))
            .header("Idempotency-Key", key)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(encoding) = body.content_encoding() {
            builder = builder.header(header::CONTENT_ENCODING, encoding);
        }
        let response =
            builder.body(body.body).send().await.map_err(|source| Error::Transport { path: PUSH, source })?;
        decode(PUSH, response).await
    }

    /// `GET /api/v1/sync/pull` (a long-poll when `params.wait` is set).
    pub async fn pull(&self, params: &PullParams) -> Result<PullResponse> {
        let timeout = Duration::from_secs(60 + u64::from(params.wait.unwrap_or(0)));
        let response = self
            .request(reqwest::Method::GET, PULL)
            .timeout(timeout)
            .query(&params.query())
            .send()
            .await
            .map_err(|source| Error::Transport { path: PULL, source })?;
        decode(PULL, response).await
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

async fn decode<T: DeserializeOwned>(path: &'static str, response: reqwest::Response) -> Result<T> {
    if response.status() != StatusCode::OK {
        return Err(http_error(path, response).await);
    }
    let bytes = response.bytes().await.map_err(|source| Error::Transport { path, source })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(format!("{path}: {e}")))
}

async fn http_error(path: &'static str, response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (String::new(), String::from_utf8_lossy(&body).chars().take(200).collect()),
    };
    Error::Http { path, status, code, message, retry_after }
}
