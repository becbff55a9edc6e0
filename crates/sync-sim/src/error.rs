//! The one error type of sync-sim.

use serde_json::Value;

/// What can go wrong talking to a server or running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request did not get an answer (connection refused, reset, timed out).
    #[error("{path}: no answer: {source}")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status and the protocol's error body.
    #[error("{path}: HTTP {status} {code}: {message}")]
    Status { path: String, status: u16, code: String, message: String, retry_after: Option<u64> },
    /// A request body could not be serialised.
    #[error("{path}: cannot encode the request: {source}")]
    Encode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// A 200 response whose body is not what the protocol says.
    #[error("{path}: unexpected response body: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// Compression or decompression of a body, or applying a delta, failed.
    #[error(transparent)]
    Bandwidth(#[from] sync_bandwidth::BandwidthError),
    /// A token could not be signed.
    #[error("cannot sign a token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// Reading the server's database for the invariants failed.
    #[error("server database: {0}")]
    Database(#[from] sync_domain::Error),
    /// Bad scenario parameters or command-line arguments.
    #[error("{0}")]
    Config(String),
    /// Starting, reaching or stopping a server failed.
    #[error("server: {0}")]
    Server(String),
    /// A chart could not be drawn.
    #[error("chart: {0}")]
    Chart(String),
    /// A report could not be written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error status from its body (`{"error": {"code", "message"}}`), however malformed.
    pub(crate) fn status(path: &str, status: u16, body: &[u8], retry_after: Option<u64>) -> Error {
        let error = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("error").cloned());
        let field = |name: &str| {
            error.as_ref().and_then(|e| e.get(name)).and_then(Value::as_str).unwrap_or_default().to_owned()
        };
        Error::Status {
            path: path.to_owned(),
            status,
            code: field("code"),
            message: field("message"),
            retry_after,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether a client should try the same request again later: no answer, 429, 503, or
    /// another 5xx (a push carries its idempotency key, so a retry is always safe).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
