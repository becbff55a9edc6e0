//! The simulator's requests: sync-client's [`Remote`] (the HTTP transport apps embed), each
//! exchange timed, plus the admin conflict list the invariants read when they may not read
//! the database.
//!
//! Everything a device sends goes through [`Remote`]; this module only adds what a
//! measurement needs (the latency of each exchange) and a few conveniences for the benchmark
//! and the fault scenarios, which drive the protocol by hand.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sync_bandwidth::NetworkQuality;
use sync_client::Remote;
use sync_client::http::{Exchange, PullParams};
use sync_protocol::{ConflictView, PullRequest, PullResponse, PushRequest, PushResponse};

use crate::error::{Error, Result};

pub use sync_client::http::Traffic;

/// A successful exchange: the decoded body, its exact bytes, the traffic and the latency.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub body: T,
    /// The decompressed response body, byte for byte (a replayed push must repeat it exactly).
    pub raw: Vec<u8>,
    pub traffic: Traffic,
    pub latency: Duration,
}

impl<T> Reply<T> {
    fn timed(exchange: Exchange<T>, started: Instant) -> Self {
        Reply {
            body: exchange.body,
            raw: exchange.json,
            traffic: exchange.traffic,
            latency: started.elapsed(),
        }
    }
}

/// A server and a bearer token. Cheap to clone; clones and [`with_token`](Self::with_token)
/// share one connection pool.
#[derive(Debug, Clone)]
pub struct SyncClient {
    remote: Remote,
    base_url: String,
    token: String,
}

impl SyncClient {
    /// The server at `base_url` (e.g. `http://127.0.0.1:8080`) acting as `token`.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        Ok(SyncClient {
            remote: Remote::new(base_url, token.clone())?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends `X-Network-Quality` with every request (it also sets the server's page size).
    #[must_use]
    pub fn with_network_quality(&self, quality: NetworkQuality) -> Self {
        SyncClient { remote: self.remote.clone().with_network_quality(quality), ..self.clone() }
    }

    /// The same server acting as another token.
    #[must_use]
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        let token = token.into();
        SyncClient { remote: self.remote.with_token(token.clone()), base_url: self.base_url.clone(), token }
    }

    /// The transport itself.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// `POST /api/v1/sync/push` with `key` as the `Idempotency-Key`.
    pub async fn push(&self, key: &str, request: &PushRequest) -> Result<Reply<PushResponse>> {
        let started = Instant::now();
        Ok(Reply::timed(self.remote.push_exchange(key, request).await?, started))
    }

    /// `GET /api/v1/sync/pull`.
    pub async fn pull(&self, request: &PullRequest) -> Result<Reply<PullResponse>> {
        let params = PullParams {
            cursor: request.cursor.clone(),
            limit: request.limit,
            domains: request.domains.clone(),
            delta: request.delta,
            device_id: request.device_id.clone(),
            wait: None,
        };
        let started = Instant::now();
        Ok(Reply::timed(self.remote.pull_exchange(&params).await?, started))
    }

    /// Opens `GET /api/v1/sync/stream` from `cursor` (server-sent events).
    pub async fn open_stream(&self, cursor: Option<&str>) -> Result<crate::sse::Sse> {
        let params = PullParams { cursor: cursor.map(str::to_owned), ..PullParams::default() };
        Ok(crate::sse::Sse::new(self.remote.stream(&params, None).await?))
    }

    /// `GET /api/v1/sync/conflicts?status=all` (admin): newest first, at most `limit`.
    pub async fn conflicts(&self, limit: u32) -> Result<Vec<ConflictView>> {
        let path = "/api/v1/sync/conflicts";
        let transport = |source| Error::Transport { path: path.into(), source };
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .query(&[("status", "all".to_owned()), ("limit", limit.to_string())])
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(transport)?;
        if response.status() != StatusCode::OK {
            return Err(Error::Server(format!("{path}: HTTP {}", response.status())));
        }
        let body = response.bytes().await.map_err(transport)?;
        serde_json::from_slice(&body).map_err(|source| Error::Decode { path: path.into(), source })
    }
}
