//! `LiveError`: how a live read or the hub fails.

use std::sync::Arc;

/// Result alias for this crate.
pub type Result<T, E = LiveError> = std::result::Result<T, E>;

/// Every failure of the live layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LiveError {
    /// The node holds `max_live_connections` already; retry after the given seconds.
    #[error("this node holds its maximum of live connections; retry in {retry_after} s")]
    TooManyConnections { retry_after: u32 },
    /// The engine refused or failed a read (bad cursor, purged cursor, database down…).
    #[error(transparent)]
    Engine(Arc<sync_domain::Error>),
    /// The PostgreSQL LISTEN connection failed.
    #[error("LISTEN connection: {0}")]
    Listen(#[source] Arc<tokio_postgres::Error>),
    /// The LISTEN connection's task ended abnormally (panicked or was cancelled).
    #[error("LISTEN connection task: {0}")]
    ListenTask(String),
}

impl From<sync_domain::Error> for LiveError {
    fn from(e: sync_domain::Error) -> Self {
        LiveError::Engine(Arc::new(e))
    }
}

impl From<tokio_postgres::Error> for LiveError {
    fn from(e: tokio_postgres::Error) -> Self {
        LiveError::Listen(Arc::new(e))
    }
}

impl LiveError {
    /// Whether this is the engine's `resync_required` (a purged cursor).
    pub fn is_resync_required(&self) -> bool {
        matches!(self, LiveError::Engine(e) if matches!(**e, sync_domain::Error::ResyncRequired))
    }
}
