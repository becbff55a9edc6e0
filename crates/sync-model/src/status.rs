//! `SyncStatus`: where a record stands in the sync lifecycle.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Where a record stands in the sync lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    #[default]
    Synced,
    PendingSync,
    SyncError,
    PendingDelete,
    Conflict,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 5] = [
        SyncStatus::Synced,
        SyncStatus::PendingSync,
        SyncStatus::SyncError,
        SyncStatus::PendingDelete,
        SyncStatus::Conflict,
    ];

    /// The wire word (`pending_sync`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Synced => "synced",
            SyncStatus::PendingSync => "pending_sync",
            SyncStatus::SyncError => "sync_error",
            SyncStatus::PendingDelete => "pending_delete",
            SyncStatus::Conflict => "conflict",
        }
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncStatus {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ModelError::UnknownSyncStatus(s.to_owned()))
    }
}
