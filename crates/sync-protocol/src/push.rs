//! Push (PROTOCOL.md section 3): `POST /api/v1/sync/push`, its changes and their outcomes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_conflict::{Policy, Winner};
use sync_model::Priority;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::pull::RecordEnvelope;

/// `POST /api/v1/sync/push` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct PushRequest {
    /// The pushing device: 1 to 128 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$",
            example = "tablet-7"
        )
    )]
    pub device_id: String,
    /// The device's clock when it sent the push, for skew correction.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub client_time: Option<OffsetDateTime>,
    /// At most `max_push_changes` (default 500; more is 413).
    #[cfg_attr(feature = "openapi", schema(max_items = 500))]
    pub changes: Vec<Change>,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "snake_case"))]
pub enum Op {
    /// Full `data`.
    Upsert,
    /// RFC 6902 JSON Patch applied to the record at `base_version`.
    Patch,
    /// A tombstone.
    Delete,
}

/// One change of a push.
///
/// A change the server cannot apply (an unknown domain, `data` that is not a valid object of
/// the domain, a patch that does not apply, a negative `base_version`…) is answered with the
/// outcome `invalid` for that change; the rest of the push goes ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct Change {
    /// The record's domain, e.g. `task`.
    /// (No NUL characters: a text column cannot hold them, and such a push is 400.)
    #[cfg_attr(feature = "openapi", schema(example = "task", pattern = r"^[^\u0000]*$"))]
    pub domain: String,
    pub mobile_id: Uuid,
    /// The version the device edited (0: the device believes the record is new).
    #[serde(default)]
    #[cfg_attr(feature = "graphql", graphql(default))]
    #[cfg_attr(feature = "openapi", schema(default = 0))]
    pub base_version: i64,
    pub op: Op,
    /// The record's full data for `upsert`: a JSON object of the domain's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// An RFC 6902 JSON Patch (an array of operations) for `patch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
    /// The device's time of the edit.
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    /// Default `medium`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// The business unit (no NUL characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[^\u0000]*$"))]
    pub bu: Option<String>,
}

/// The outcome of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "snake_case"))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct ItemError {
    /// e.g. `validation`, `invalid_transition`, `unknown_domain`.
    pub code: String,
    pub message: String,
}

/// The conflict a change ran into, as the push response reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct ConflictSummary {
    pub id: Uuid,
    /// The policy that resolved it.
    pub strategy: Policy,
    pub winner: Winner,
    /// What the resolution did, e.g. `{"from_client": ["status"], "from_server": […]}`.
    pub details: Value,
}

/// One entry of a push response's `results`, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct PushResponse {
    /// One result per change, in request order.
    pub results: Vec<ChangeResult>,
    /// The change sequence position after this push's writes (a write receipt: pulls keep
    /// using their own cursor, which this never replaces).
    pub cursor: String,
}
