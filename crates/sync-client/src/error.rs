//! The crate's one error type.
//!
//! Error policy: nothing that a server answer, a stored file or an app's input can reach
//! panics; each failure keeps its source error. A retryable failure of the network or the
//! server ([`Error::is_retryable`]) leaves the local state as it was, so the next `sync()`
//! simply tries again.

use std::time::Duration;

use crate::core::RecordId;

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("local store: {0}")]
    Store(#[from] diesel::result::Error),
    #[error("opening the local store: {0}")]
    Open(#[from] diesel::ConnectionError),
    #[error("stored JSON does not decode: {0}")]
    StoredJson(#[source] serde_json::Error),
    #[error("record {0} does not exist locally")]
    NotFound(RecordId),
    #[error("record data must be a JSON object")]
    NotAnObject,
    #[error("typed record `{domain}` does not (de)serialise: {source}")]
    Typed { domain: &'static str, source: serde_json::Error },
    #[error("typed record `{0}` serialises its SyncMeta into its data: mark the meta field #[serde(skip)]")]
    MetaInData(&'static str),
    #[error("invalid record: {0}")]
    Invalid(#[from] sync_model::ValidationErrors),
    #[error("invalid domain name: {0}")]
    Domain(#[from] sync_model::ModelError),
    #[error("JSON patch: {0}")]
    Patch(#[from] sync_bandwidth::BandwidthError),
    #[error("device id `{0}` is not 1 to 128 characters without control characters")]
    DeviceId(String),
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("request to {path} failed: {source}")]
    Transport { path: &'static str, source: reqwest::Error },
    #[error("{path} answered {status} {code}: {message}")]
    Http { path: &'static str, status: u16, code: String, message: String, retry_after: Option<Duration> },
    #[error("the server does not offer {0}")]
    Unsupported(&'static str),
}

impl Error {
    /// Whether trying again later can succeed (network failures, 408, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Http { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            _ => false,
        }
    }

    /// The HTTP status, for errors the server answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Retry-After`, where it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
