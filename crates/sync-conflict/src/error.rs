//! The crate's error type.
//!
//! Error policy: resolving a conflict never fails — every pair of states has a defined
//! answer, so [`crate::resolve`] returns a result, not an error. Errors are for parsing the
//! closed vocabularies (policy, resolution, winner, conflict status), for refusing an inconsistent tenant
//! policy, and for arithmetic on times that leaves the representable range.

use crate::Policy;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConflictError {
    #[error(
        "unknown conflict policy `{0}` (expected client_wins, server_wins, most_recent_wins, field_merge, preserve_escalation or manual)"
    )]
    UnknownPolicy(String),
    #[error("unknown resolution `{0}` (expected resolved, manual_required or failed)")]
    UnknownResolution(String),
    #[error("unknown winner `{0}` (expected client, server, merged or none)")]
    UnknownWinner(String),
    #[error("unknown conflict status `{0}` (expected pending, resolved or auto)")]
    UnknownConflictStatus(String),
    #[error(
        "policy `{policy}` cannot be combined with auto_resolve = true: a manual policy never resolves by itself"
    )]
    InconsistentPolicy { policy: Policy },
    #[error("record data must be a JSON object, found {found}")]
    DataNotAnObject { found: &'static str },
    #[error("time out of range: {0}")]
    TimeOutOfRange(String),
}

impl ConflictError {
    /// The protocol's error code (section 9) for this error when it reaches a client.
    pub const fn code(&self) -> &'static str {
        match self {
            ConflictError::UnknownPolicy(_)
            | ConflictError::UnknownResolution(_)
            | ConflictError::UnknownWinner(_)
            | ConflictError::UnknownConflictStatus(_)
            | ConflictError::DataNotAnObject { .. } => "validation",
            ConflictError::InconsistentPolicy { .. } => "inconsistent_policy",
            ConflictError::TimeOutOfRange(_) => "time_out_of_range",
        }
    }
}
