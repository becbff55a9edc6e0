//! Server-sent events of `GET /api/v1/sync/stream` (PROTOCOL.md section 11), read off a
//! streaming HTTP response: for live devices and the benchmark's live cases.

use std::collections::VecDeque;
use std::time::Duration;

use sync_client::core::{SseEvent, SseParser};

use crate::error::{Error, Result};

/// How long a change may take to reach a stream in [`Sse::until_record`].
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A server-sent-events stream being read (opened by sync-client's `Remote::stream`, parsed
/// by its `SseParser`).
#[derive(Debug)]
pub struct Sse {
    response: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
}

impl Sse {
    pub fn new(response: reqwest::Response) -> Sse {
        Sse { response, parser: SseParser::new(), ready: VecDeque::new() }
    }

    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|source| Error::Transport { path: "/api/v1/sync/stream".into(), source })?;
            match chunk {
                Some(bytes) => self.ready.extend(self.parser.feed(&bytes)),
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
