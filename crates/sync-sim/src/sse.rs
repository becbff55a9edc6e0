//! Server-sent events of `GET /api/v1/sync/stream` (PROTOCOL.md section 11), read off a
//! streaming HTTP response: for live devices and the benchmark's live cases.

use std::time::Duration;

use crate::error::{Error, Result};

/// How long a change may take to reach a stream in [`Sse::until_record`].
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream's request timeout (it replaces the client's, which is for single requests).
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A client for long-lived streams: no request timeout, decompression left to the caller.
pub fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_gzip()
        .build()
        .map_err(|source| Error::Transport { path: "client setup".into(), source })
}

/// A server-sent-events stream being read.
#[derive(Debug)]
pub struct Sse {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

/// One event: its name and data.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl Sse {
    pub async fn open(
        http: &reqwest::Client,
        base_url: &str,
        token: &str,
        cursor: Option<&str>,
    ) -> Result<Sse> {
        let mut url = format!("{base_url}/api/v1/sync/stream");
        if let Some(cursor) = cursor {
            url.push_str("?cursor=");
            url.push_str(cursor);
        }
        let path = "/api/v1/sync/stream".to_owned();
        let response = http
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .timeout(STREAM_TIMEOUT)
            .send()
            .await
            .map_err(|source| Error::Transport { path: path.clone(), source })?;
        if !response.status().is_success() {
            return Err(Error::Server(format!("{path}: status {}", response.status())));
        }
        Ok(Sse { response, buffer: Vec::new() })
    }

    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let mut event = SseEvent { event: String::new(), data: String::new() };
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                    }
                }
                if !event.event.is_empty() {
                    return Ok(Some(event));
                }
                continue;
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|source| Error::Transport { path: "/api/v1/sync/stream".into(), source })?;
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// Reads until a `changes` event carries record `id`.
    pub async fn until_record(&mut self, id: &str) -> Result<()> {
        let wait = async {
            while let Some(event) = self.next().await? {
                if event.event == "changes" && event.data.contains(id) {
                    return Ok(());
                }
            }
            Err(Error::Server("the stream ended".into()))
        };
        tokio::time::timeout(DELIVERY_TIMEOUT, wait).await.map_err(|_| {
            Error::Server(format!("change {id} did not reach the stream within {DELIVERY_TIMEOUT:?}"))
        })?
    }
}
