//! `SyncMeta`: the sync fields every syncable record carries.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Priority, SyncStatus};

/// RFC 3339 (de)serialisation of timestamps, as the protocol writes them.
pub mod rfc3339 {
    pub use time::serde::rfc3339::*;
}

/// The sync fields of one record, with the protocol's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncMeta {
    /// Made by the device that created the record.
    pub mobile_id: Uuid,
    /// 1 on create, +1 on every accepted change; 0 for a record the server has not seen.
    pub version: i64,
    #[serde(default)]
    pub sync_status: SyncStatus,
    /// Device time of the last change, skew-corrected by the server.
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub server_modified_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_by_device: Option<String>,
    #[serde(default)]
    pub deleted: bool,
    /// Business unit, when the tenant uses them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bu: Option<String>,
    #[serde(default)]
    pub priority: Priority,
}

/// The nil record: nil id, version 0, `synced`, modified at the Unix epoch. Lets a typed
/// domain struct be read from a change's bare `data` with its meta filled in afterwards.
impl Default for SyncMeta {
    fn default() -> Self {
        Self {
            modified_at: OffsetDateTime::UNIX_EPOCH,
            sync_status: SyncStatus::Synced,
            ..Self::new(Uuid::nil())
        }
    }
}

impl SyncMeta {
    /// Meta for a record a device has just created: version 0, pending sync, modified now.
    pub fn new(mobile_id: Uuid) -> Self {
        Self {
            mobile_id,
            version: 0,
            sync_status: SyncStatus::PendingSync,
            modified_at: OffsetDateTime::now_utc(),
            server_modified_at: None,
            modified_by_device: None,
            deleted: false,
            bu: None,
            priority: Priority::Medium,
        }
    }
}
