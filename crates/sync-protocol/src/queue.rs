//! The device download queue (PROTOCOL.md section 6): queue status, partial sync, optimal time.

use serde::{Deserialize, Serialize};
use sync_model::Priority;

use crate::insight::{SyncWindow, WindowBasis};
use crate::pull::RecordEnvelope;

/// `GET /api/v1/sync/queue-status` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
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
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct PartialSyncRequest {
    /// 1 to 128 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")
    )]
    pub device_id: String,
    /// Items at or above this priority (default `medium`).
    #[serde(default)]
    #[cfg_attr(feature = "graphql", graphql(default))]
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
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct PartialSyncResponse {
    /// Most urgent first.
    pub synced_items: Vec<RecordEnvelope>,
    pub remaining: i64,
}

/// `GET /api/v1/sync/optimal-time` response: section 6's fields and section 12's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct OptimalTime {
    pub recommendation: Recommendation,
    pub server_load: ServerLoad,
    pub queue_size: i64,
    pub is_peak_hour: bool,
    /// When this device should sync next (section 12).
    pub next_window: SyncWindow,
    /// 0 to 1: how sure its history makes the server that a sync then succeeds (0 for `rule`).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub confidence: f64,
    pub basis: WindowBasis,
}

/// When a device should sync, by the server's load (section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    /// Load is low, or medium outside the peak hours.
    #[cfg_attr(feature = "graphql", graphql(name = "sync_now"))]
    SyncNow,
    /// Load is high, or medium in a peak hour.
    #[serde(rename = "sync_in_30min")]
    #[cfg_attr(feature = "graphql", graphql(name = "sync_in_30min"))]
    SyncIn30Min,
}

impl Recommendation {
    pub const fn as_str(self) -> &'static str {
        match self {
            Recommendation::SyncNow => "sync_now",
            Recommendation::SyncIn30Min => "sync_in_30min",
        }
    }
}

/// The server's load: its oldest active cursor's backlog against the configured bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "lowercase"))]
#[serde(rename_all = "snake_case")]
pub enum ServerLoad {
    Low,
    Medium,
    High,
}

impl ServerLoad {
    pub const fn as_str(self) -> &'static str {
        match self {
            ServerLoad::Low => "low",
            ServerLoad::Medium => "medium",
            ServerLoad::High => "high",
        }
    }
}
