//! The crate's one error type and how database failures are classified.
//!
//! Policy: a failure the caller can act on gets its own variant. `Unavailable` (the database
//! cannot be reached: the API answers 503 with `Retry-After`) and `WriteConflict` (a concurrent
//! writer got there first: retry the whole transaction) are told apart from every other
//! database error, which is a bug or an operational problem (500, logged).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `sync-domain`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached (connection refused or lost, pool timed out).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A concurrent transaction changed what this one was based on (unique violation,
    /// serialization failure, deadlock, a stale upsert, SQLite busy). Retrying the whole
    /// transaction is safe and expected to succeed.
    #[error("concurrent write conflict, retry the transaction: {0}")]
    WriteConflict(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] DieselError),
    /// Running or reverting migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The database URL is not `sqlite://…`, `sqlite::memory:` or `postgres://…`.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// A caller passed a value that the storage layer refuses (for example `allocate_seqs(0)`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A stored value could not be decoded (JSON column, enum text).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The blocking task that ran the database work panicked or was cancelled.
    #[error("database task failed: {0}")]
    TaskFailed(String),

    // Engine errors: the request is wrong, or not allowed, as a whole.
    /// Malformed input (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Over a size or count limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// An idempotency key reused with a different request (422).
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// Well-formed but semantically wrong (422).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// No such thing in the caller's tenant (404); another tenant's ids land here too.
    #[error("{0}")]
    NotFound(String),
    /// The caller's role or units do not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    /// The thing changed state meanwhile; refetch (409).
    #[error("{0}")]
    Conflict(String),
    /// The cursor is older than what was purged: start again without one (410).
    #[error("the cursor is older than the purged history; pull again without a cursor")]
    ResyncRequired,
    /// A bug: an invariant of the engine did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether retrying the whole transaction may succeed (`WriteConflict`, `Unavailable`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::WriteConflict(_) | Error::Unavailable(_))
    }

    /// The protocol's error code (`snake_case`) for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unavailable(_) => "database_unavailable",
            Error::WriteConflict(_) => "write_conflict",
            Error::Database(_)
            | Error::Migration(_)
            | Error::Corrupt(_)
            | Error::TaskFailed(_)
            | Error::Internal(_) => "internal",
            Error::InvalidUrl(_) => "invalid_database_url",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::BadRequest { code, .. } | Error::Unprocessable { code, .. } => code,
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::NotFound(_) => "not_found",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::ResyncRequired => "resync_required",
        }
    }

    /// The HTTP status the protocol gives this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::BadRequest { .. } | Error::InvalidArgument(_) => 400,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict(_) | Error::WriteConflict(_) => 409,
            Error::ResyncRequired => 410,
            Error::PayloadTooLarge(_) => 413,
            Error::IdempotencyKeyReused | Error::Unprocessable { .. } => 422,
            Error::Unavailable(_) => 503,
            Error::Database(_)
            | Error::Migration(_)
            | Error::InvalidUrl(_)
            | Error::Corrupt(_)
            | Error::TaskFailed(_)
            | Error::Internal(_) => 500,
        }
    }

    /// Whether the database is unreachable (the API maps this to 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<DieselError> for Error {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure => {
                    Error::WriteConflict(info.message().to_owned())
                }
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    Error::Unavailable(info.message().to_owned())
                }
                // PostgreSQL 40P01 and SQLite's SQLITE_BUSY have no kind of their own.
                _ if is_deadlock_or_busy(info.message()) => Error::WriteConflict(info.message().to_owned()),
                _ => Error::Database(e),
            },
            _ => Error::Database(e),
        }
    }
}

fn is_deadlock_or_busy(message: &str) -> bool {
    message.starts_with("deadlock detected") || message.starts_with("database is locked")
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Corrupt(e.to_string())
    }
}
