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
    /// The database cannot store anything now: its disk is full, or its file or filesystem
    /// is read-only. Reads still work; writes may succeed once space returns (503).
    #[error("database storage unavailable: {0}")]
    StorageFull(String),
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
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database URL is not `sqlite://…`, `sqlite::memory:` or `postgres://…`.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// A caller passed a value that the storage layer refuses (for example `allocate_seqs(0)`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A stored value could not be decoded (enum text, a mobile id).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A JSON column could not be read, or a value could not be written as JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
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
    /// The insight maths refused what the engine handed it (a bug: the engine builds the
    /// series and examples itself).
    #[error("insight: {0}")]
    Insight(#[from] sync_insight::InsightError),
}

impl Error {
    /// Whether retrying the whole transaction may succeed (`WriteConflict`, `Unavailable`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::WriteConflict(_) | Error::Unavailable(_))
    }

    /// The protocol's error code (`snake_case`) for this error: the one source of the codes
    /// the API sends (sync-api only maps, see its `error` module).
    pub fn code(&self) -> &'static str {
        match self {
            // The engine already retried a write conflict: the client should retry later,
            // exactly as when the database is unreachable.
            Error::Unavailable(_) | Error::WriteConflict(_) | Error::StorageFull(_) => "unavailable",
            Error::Database(_)
            | Error::Migration(_)
            | Error::InvalidUrl(_)
            | Error::InvalidArgument(_)
            | Error::Corrupt(_)
            | Error::Json(_)
            | Error::TaskFailed(_)
            | Error::Internal(_)
            | Error::Insight(_) => "internal",
            Error::BadRequest { code, .. } | Error::Unprocessable { code, .. } => code,
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::NotFound(_) => "not_found",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::ResyncRequired => "resync_required",
        }
    }

    /// The HTTP status PROTOCOL.md section 9 gives this error: the one source of the statuses
    /// the API answers engine errors with.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::BadRequest { .. } => 400,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::ResyncRequired => 410,
            Error::PayloadTooLarge(_) => 413,
            Error::IdempotencyKeyReused | Error::Unprocessable { .. } => 422,
            Error::Unavailable(_) | Error::WriteConflict(_) | Error::StorageFull(_) => 503,
            // A value the storage layer refuses or a bad database URL reached the engine
            // unchecked: a fault of the server, not of the request.
            Error::InvalidArgument(_)
            | Error::Database(_)
            | Error::Migration(_)
            | Error::InvalidUrl(_)
            | Error::Corrupt(_)
            | Error::Json(_)
            | Error::TaskFailed(_)
            | Error::Internal(_)
            | Error::Insight(_) => 500,
        }
    }

    /// The message a client may see: the error itself for a 4xx, a generic one for a 5xx,
    /// whose cause stays in the server's log.
    pub fn public_message(&self) -> String {
        match self.http_status() {
            503 if matches!(self, Error::StorageFull(_)) => {
                "the database cannot store changes now (its storage is full or read-only); retry later"
                    .to_owned()
            }
            503 => "the database is unreachable or busy; retry later".to_owned(),
            status if status >= 500 => "internal server error".to_owned(),
            _ => self.to_string(),
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
                // PostgreSQL 40P01 and SQLite's SQLITE_BUSY have no kind of their own; nor
                // have a full or read-only disk and a server going away.
                _ if is_deadlock_or_busy(info.message()) => Error::WriteConflict(info.message().to_owned()),
                _ if is_storage_full(info.message()) => Error::StorageFull(info.message().to_owned()),
                _ if is_connection_lost(info.message()) => Error::Unavailable(info.message().to_owned()),
                _ => Error::Database(e),
            },
            _ => Error::Database(e),
        }
    }
}

fn is_deadlock_or_busy(message: &str) -> bool {
    message.starts_with("deadlock detected") || message.starts_with("database is locked")
}

/// SQLITE_FULL, SQLITE_READONLY and SQLite's I/O errors (a full or read-only filesystem
/// fails its writes this way too); PostgreSQL's 53100 (disk_full) and 25006
/// (read_only_sql_transaction, a standby or `default_transaction_read_only`).
fn is_storage_full(message: &str) -> bool {
    ["database or disk is full", "attempt to write a readonly database", "disk I/O error"]
        .iter()
        .any(|m| message.starts_with(m))
        || message.contains("No space left on device")
        || message.starts_with("cannot execute") && message.contains("in a read-only transaction")
}

/// The PostgreSQL server went away under the connection: 57P01 (admin_shutdown, also what
/// `pg_terminate_backend` sends), 57P02 (crash_shutdown), 57P03 (cannot_connect_now) and
/// libpq's own words for a connection that broke mid-query.
fn is_connection_lost(message: &str) -> bool {
    [
        "terminating connection",
        "the database system is",
        "server closed the connection unexpectedly",
        "no connection to the server",
        "connection to server",
        "could not receive data from server",
        "SSL connection has been closed unexpectedly",
    ]
    .iter()
    .any(|m| message.starts_with(m))
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md section 9's status for each variant, written without a wildcard so that a
    /// new variant does not compile until it is given one here.
    fn protocol_status(e: &Error) -> u16 {
        match e {
            Error::BadRequest { .. } => 400,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::ResyncRequired => 410,
            Error::PayloadTooLarge(_) => 413,
            Error::IdempotencyKeyReused | Error::Unprocessable { .. } => 422,
            Error::Unavailable(_) | Error::WriteConflict(_) | Error::StorageFull(_) => 503,
            Error::Database(_)
            | Error::Migration(_)
            | Error::InvalidUrl(_)
            | Error::InvalidArgument(_)
            | Error::Corrupt(_)
            | Error::Json(_)
            | Error::TaskFailed(_)
            | Error::Internal(_)
            | Error::Insight(_) => 500,
        }
    }

    #[test]
    fn every_variant_has_the_protocols_status_and_a_code() {
        let all = [
            Error::Unavailable("x".into()),
            Error::WriteConflict("x".into()),
            Error::StorageFull("x".into()),
            Error::Database(DieselError::NotFound),
            Error::Migration("x".into()),
            Error::Json(serde_json::from_str::<bool>("x").unwrap_err()),
            Error::InvalidUrl("x".into()),
            Error::InvalidArgument("x".into()),
            Error::Corrupt("x".into()),
            Error::TaskFailed("x".into()),
            Error::BadRequest { code: "invalid_cursor", message: "x".into() },
            Error::PayloadTooLarge("x".into()),
            Error::IdempotencyKeyReused,
            Error::Unprocessable { code: "invalid_policy", message: "x".into() },
            Error::NotFound("x".into()),
            Error::Forbidden("x".into()),
            Error::Conflict("x".into()),
            Error::ResyncRequired,
            Error::Internal("x".into()),
            Error::Insight(sync_insight::InsightError::EmptyWindow),
        ];
        for e in &all {
            assert_eq!(e.http_status(), protocol_status(e), "{e:?}");
            let code = e.code();
            assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            if e.http_status() >= 500 {
                assert!(!e.public_message().contains('x'), "a 5xx hides its cause: {}", e.public_message());
            }
        }
        assert_eq!(Error::WriteConflict("x".into()).code(), "unavailable");
        assert_eq!(Error::Internal("x".into()).code(), "internal");
    }

    struct Info(&'static str);

    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn classify(message: &'static str) -> Error {
        Error::from(DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(Info(message))))
    }

    /// The words SQLite and PostgreSQL use when the disk fills or the server goes away: each
    /// is a 503 (retry later), never a 500. The fault scenarios meet every one of them.
    #[test]
    fn storage_and_connection_failures_are_unavailable() {
        for message in [
            "database or disk is full",
            "attempt to write a readonly database",
            "disk I/O error",
            "could not extend file \"base/16384/16385\": No space left on device",
            "cannot execute INSERT in a read-only transaction",
        ] {
            let e = classify(message);
            assert!(matches!(e, Error::StorageFull(_)), "{message}: {e:?}");
            assert_eq!((e.http_status(), e.code()), (503, "unavailable"));
            assert!(e.public_message().contains("full or read-only"));
        }
        for message in [
            "terminating connection due to administrator command",
            "the database system is shutting down",
            "the database system is starting up",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            "no connection to the server",
        ] {
            let e = classify(message);
            assert!(matches!(e, Error::Unavailable(_)), "{message}: {e:?}");
            assert_eq!(e.http_status(), 503);
        }
        assert!(matches!(classify("syntax error at or near \"SELEC\""), Error::Database(_)));
    }
}
