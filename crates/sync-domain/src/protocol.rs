//! The transport-neutral request and response types of PROTOCOL.md sections 3 to 6.
//!
//! REST and GraphQL both read their input into these types and write these types out, so the
//! same input gives the same outcome on either. Unknown fields are refused.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_model::Priority;
use time::OffsetDateTime;
use uuid::Uuid;

/// `POST /api/v1/sync/push` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub device_id: String,
    /// The device's clock when it sent the push, for skew correction.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub client_time: Option<OffsetDateTime>,
    pub changes: Vec<Change>,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Full `data`.
    Upsert,
    /// RFC 6902 JSON Patch applied to the record at `base_version`.
    Patch,
    /// A tombstone.
    Delete,
}

/// One change of a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub domain: String,
    pub mobile_id: Uuid,
    /// The version the device edited (0: the device believes the record is new).
    #[serde(default)]
    pub base_version: i64,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bu: Option<String>,
}

/// The outcome of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    ClientWon,
    ServerWon,
    Merged,
    ManualRequired,
    Invalid,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::ClientWon => "client_won",
            Outcome::ServerWon => "server_won",
            Outcome::Merged => "merged",
            Outcome::ManualRequired => "manual_required",
            Outcome::Invalid => "invalid",
        }
    }
}

/// Why a change was `invalid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemError {
    pub code: String,
    pub message: String,
}

/// The conflict a change ran into, as the push response reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictSummary {
    pub id: Uuid,
    pub strategy: String,
    pub winner: String,
    pub details: Value,
}

/// One entry of a push response's `results`, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeResult {
    pub mobile_id: Uuid,
    pub domain: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The record as it now stands, where it is not what the device sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordEnvelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// A push's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushResponse {
    pub results: Vec<ChangeResult>,
    /// The change sequence position after this push's writes (a write receipt: pulls keep
    /// using their own cursor, which this never replaces).
    pub cursor: String,
}

/// A record as pulled: full `data`, or a `patch` from `base_version` when `delta=true` pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordEnvelope {
    pub domain: String,
    pub mobile_id: Uuid,
    pub version: i64,
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub server_modified_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_by_device: Option<String>,
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bu: Option<String>,
}

/// `GET /api/v1/sync/pull` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    #[serde(default)]
    pub delta: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// From `X-Network-Quality`; sets the default `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_quality: Option<String>,
}

/// A pull's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullResponse {
    pub changes: Vec<RecordEnvelope>,
    pub cursor: String,
    pub has_more: bool,
    /// Changes after `cursor` still to pull (for a progress bar): exact up to 10,000, an
    /// estimate beyond.
    pub remaining: i64,
}

/// `GET /api/v1/sync/queue-status` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueStatus {
    pub pending_items: i64,
    pub high_priority: i64,
    pub estimated_sync_time_sec: f64,
    pub queue_healthy: bool,
}

/// `POST /api/v1/sync/partial` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialSyncRequest {
    pub device_id: String,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_quality: Option<String>,
}

/// `POST /api/v1/sync/partial` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialSyncResponse {
    pub synced_items: Vec<RecordEnvelope>,
    pub remaining: i64,
}

/// `GET /api/v1/sync/optimal-time` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimalTime {
    pub recommendation: String,
    pub server_load: String,
    pub queue_size: i64,
    pub is_peak_hour: bool,
}

/// A pull cursor: an opaque string built on the change sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor(pub i64);

impl Cursor {
    const PREFIX: &'static str = "c1.";

    /// Parses a cursor the server handed out.
    pub fn parse(s: &str) -> Option<Self> {
        let seq: i64 = s.strip_prefix(Self::PREFIX)?.parse().ok()?;
        (seq >= 0).then_some(Self(seq))
    }

    pub fn seq(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}
