//! The sync-status lifecycle of a record on a device.

use sync_model::SyncStatus::{self, *};

/// The legal next sync statuses of `from`.
///
/// A local edit makes a record `pending_sync` (or `pending_delete`); the server's answer
/// makes it `synced`, `sync_error` or `conflict`; a failed or conflicting record goes back
/// to pending when retried or edited, or to synced when the conflict is resolved.
pub const fn sync_status_next(from: SyncStatus) -> &'static [SyncStatus] {
    match from {
        Synced => &[PendingSync, PendingDelete],
        PendingSync => &[Synced, SyncError, Conflict, PendingDelete],
        SyncError => &[PendingSync, PendingDelete],
        PendingDelete => &[Synced, SyncError, Conflict],
        Conflict => &[Synced, PendingSync, PendingDelete],
    }
}

/// One step of the lifecycle (staying put is legal).
pub fn sync_status_step(from: SyncStatus, to: SyncStatus) -> Result<(), crate::StateMachineError> {
    if from == to || sync_status_next(from).contains(&to) {
        Ok(())
    } else {
        Err(crate::StateMachineError::IllegalSyncStatus { from, to })
    }
}
