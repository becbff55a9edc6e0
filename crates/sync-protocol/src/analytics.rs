//! Analytics (PROTOCOL.md section 7): snapshots, device health, alerts and the dashboard.

use serde::{Deserialize, Serialize};
use sync_metrics::{ConflictHotspot, Snapshot};
use time::OffsetDateTime;

use crate::insight::AnomalySeverity;

/// A stored snapshot: the window's numbers with its id and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct SnapshotView {
    pub snapshot_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub time_window_hours: i64,
    #[serde(flatten)]
    #[cfg_attr(feature = "graphql", graphql(flatten))]
    pub snapshot: Snapshot,
}

/// `POST /api/sync/snapshot/create/` body (an empty body means the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// Hours back from now (1 to 8784, a leap year; default 1).
    #[serde(default = "one_hour")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 8784, default = 1))]
    pub time_window_hours: i64,
}

impl Default for SnapshotRequest {
    fn default() -> Self {
        Self { time_window_hours: one_hour() }
    }
}

fn one_hour() -> i64 {
    1
}

/// `POST /api/sync/snapshot/create/` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct SnapshotCreated {
    pub snapshot_id: String,
    /// `created`.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
}

/// A device's health as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct DeviceHealthView {
    pub device_id: String,
    pub user_id: String,
    /// 0 to 100.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub health_score: f64,
    pub total_syncs: i64,
    pub failed_syncs_count: i64,
    pub avg_sync_duration_ms: f64,
    pub conflicts_encountered: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sync_at: Option<OffsetDateTime>,
    pub network_type: Option<String>,
    pub clock_skew_ms: i64,
}

/// An alert raised on a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct AlertView {
    pub id: String,
    pub snapshot_id: Option<String>,
    /// `low_success_rate`, `high_conflict_rate`, `unhealthy_devices` or `anomaly_<metric>`.
    pub rule: String,
    /// A snapshot's rules raise `warning` or `critical`; an anomaly's alert has its severity.
    pub severity: AnomalySeverity,
    pub value: f64,
    pub threshold: f64,
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /api/sync/dashboard/` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct Dashboard {
    pub latest_snapshot: Option<SnapshotView>,
    /// The last 7 days' snapshots, oldest first.
    pub trend_7days: Vec<SnapshotView>,
    /// Devices whose health is below `device_health_threshold` (70).
    pub unhealthy_devices: Vec<DeviceHealthView>,
    /// The top 5 domains by conflicts over the tenant's last 7 days, most first.
    pub conflict_hotspots: Vec<ConflictHotspot>,
    pub alerts: Vec<AlertView>,
}
