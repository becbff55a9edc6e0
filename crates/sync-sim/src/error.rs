//! The one error type of sync-sim.

/// What can go wrong talking to a server or running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request of the protocol failed (no answer, an error status, a body that does not
    /// decode): sync-client's error, which keeps the status and `Retry-After`.
    #[error(transparent)]
    Client(#[from] sync_client::Error),
    /// A request outside the device protocol (an admin list, a probe) got no answer.
    #[error("{path}: no answer: {source}")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// A 200 response whose body is not what the protocol says.
    #[error("{path}: unexpected response body: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// Compression or decompression of a body failed.
    #[error(transparent)]
    Bandwidth(#[from] sync_bandwidth::BandwidthError),
    /// A token could not be signed.
    #[error("cannot sign a token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// A query on the server's database (the invariants, the raw baseline) failed.
    #[error("server database: {0}")]
    Database(#[from] diesel::result::Error),
    /// The server's database could not be reached.
    #[error("connecting to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: diesel::ConnectionError,
    },
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
    /// The HTTP status, when the server answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Client(e) => e.http_status(),
            _ => None,
        }
    }

    /// Whether a client should try the same request again later: no answer, 408, 429 or a
    /// 5xx (a push carries its idempotency key, so a retry is always safe).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Client(e) => e.is_retryable(),
            Error::Transport { .. } => true,
            _ => false,
        }
    }
}
