//! The crate's error type: every illegal move, named.

use sync_model::SyncStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateMachineError {
    #[error("{workflow}: unknown status `{state}`")]
    UnknownState { workflow: &'static str, state: String },
    #[error("{workflow}: {from} → {to} is not a legal step")]
    IllegalStep { workflow: &'static str, from: String, to: String },
    #[error("{workflow}: {from} cannot reach {to} through legal steps")]
    Unreachable { workflow: &'static str, from: String, to: String },
    #[error("{workflow}: a new record cannot start in {state} (allowed: {})", allowed.join(", "))]
    InvalidStart { workflow: &'static str, state: String, allowed: &'static [&'static str] },
    #[error("sync status {from} → {to} is not a legal step")]
    IllegalSyncStatus { from: SyncStatus, to: SyncStatus },
}

impl StateMachineError {
    /// The protocol's error code for every illegal move.
    pub const fn code(&self) -> &'static str {
        "invalid_transition"
    }
}
