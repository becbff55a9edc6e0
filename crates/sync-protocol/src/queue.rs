//! The device download queue (PROTOCOL.md section 6): queue status, partial sync, optimal time.

use serde::{Deserialize, Serialize};
use sync_model::Priority;

use crate::insight::{SyncWindow, WindowBasis};
use crate::pull::RecordEnvelope;

/// `GET /api/v1/sync/queue-status` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueueStatus {
    /// Changes after the device's remembered cursor.
    pub pending_items: i64,
    pub high_priority: i64,
    /// Pending items × the device's measured time per item.
    pub estimated_sync_time_sec: f64,
    pub queue_healthy: bool,
}

/// `POST /api/v1/sync/partial` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PartialSyncRequest {
    /// 1 to 128 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")
    )]
    pub device_id: String,
    /// Items at or above this priority (default `medium`).
    #[serde(default)]
    pub priority: Priority,
    /// At most this many items (capped at `max_pull_limit`); default by network quality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 4294967295.0))]
    pub max_items: Option<u32>,
    /// `excellent`, `good`, `fair` or `poor` (sets the default `max_items`; anything else
    /// counts as unknown; no NUL characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub network_quality: Option<String>,
}

/// `POST /api/v1/sync/partial` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PartialSyncResponse {
    /// Most urgent first.
    pub synced_items: Vec<RecordEnvelope>,
    pub remaining: i64,
}

/// `GET /api/v1/sync/optimal-time` response: section 6's fields and section 12's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OptimalTime {
    /// `sync_now` or `sync_in_30min`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(sync_now|sync_in_30min)$"))]
    pub recommendation: String,
    /// `low`, `medium` or `high`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(low|medium|high)$"))]
    pub server_load: String,
    pub queue_size: i64,
    pub is_peak_hour: bool,
    /// When this device should sync next (section 12).
    pub next_window: SyncWindow,
    /// 0 to 1: how sure its history makes the server that a sync then succeeds (0 for `rule`).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub confidence: f64,
    pub basis: WindowBasis,
}
