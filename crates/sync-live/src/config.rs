//! Limits and timings of live streams (`[live]` in the server's configuration file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Live-stream settings. `Default` gives the protocol's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Live connections (SSE streams, WebSockets, waiting long-polls) one node holds at most;
    /// beyond it SSE and long-poll get 503 with a random `Retry-After`, WebSocket close 1013.
    pub max_live_connections: usize,
    /// Streams one token may hold; opening one more closes that token's oldest.
    pub max_streams_per_token: usize,
    /// Events buffered for one subscriber; a subscriber that lets it fill is disconnected
    /// (SSE `event: reconnect`, WebSocket 1013) and resumes by cursor.
    pub subscriber_buffer: usize,
    /// Seconds between heartbeats.
    pub heartbeat_secs: u64,
    /// A WebSocket from which nothing (no message, ping or pong) arrived for this many seconds
    /// is closed. The server pings with every heartbeat, so a live client always answers.
    pub idle_timeout_secs: u64,
    /// Seconds a WebSocket without an `Authorization` header has to send its `auth` message.
    pub ws_auth_timeout_secs: u64,
    /// Records per `changes` event of a stream (the backlog comes in pages of this size).
    pub page_size: u32,
    /// Largest `Retry-After` (seconds) sent with a 503 over the connection limit; the value
    /// is drawn at random from 1 to this, so a fleet does not come back at once.
    pub max_retry_after_secs: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_live_connections: 10_000,
            max_streams_per_token: 8,
            subscriber_buffer: 64,
            heartbeat_secs: 15,
            idle_timeout_secs: 120,
            ws_auth_timeout_secs: 10,
            page_size: 100,
            max_retry_after_secs: 10,
        }
    }
}

impl LiveConfig {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    pub fn ws_auth_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_auth_timeout_secs.max(1))
    }

    /// What is wrong with these settings (empty when none).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_streams_per_token == 0 {
            problems.push("live.max_streams_per_token must be at least 1".to_owned());
        }
        if self.subscriber_buffer == 0 {
            problems.push("live.subscriber_buffer must be at least 1".to_owned());
        }
        if self.page_size == 0 || self.page_size > 1000 {
            problems.push("live.page_size must be 1 to 1000".to_owned());
        }
        if self.max_retry_after_secs == 0 {
            problems.push("live.max_retry_after_secs must be at least 1".to_owned());
        }
        if self.heartbeat_secs == 0 || self.idle_timeout_secs == 0 || self.ws_auth_timeout_secs == 0 {
            problems.push("live timings must be at least 1 second".to_owned());
        }
        problems
    }
}
