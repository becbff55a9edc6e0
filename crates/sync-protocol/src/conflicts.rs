//! Conflict policies and manual conflicts (PROTOCOL.md section 4).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_conflict::{ConflictStatus, Policy, PolicySource, Resolution, Winner};
use time::OffsetDateTime;

use crate::pull::RecordEnvelope;

/// One domain's policy as `GET /api/v1/sync/policies` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct PolicyView {
    pub domain: String,
    /// The policy applied to conflicts (`manual` when `auto_resolve` is off).
    pub policy: Policy,
    /// The policy as configured (or the domain's default).
    pub configured_policy: Policy,
    pub auto_resolve: bool,
    pub notify_on_conflict: bool,
    pub source: PolicySource,
}

/// `PUT /api/v1/sync/policies/{domain}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct PolicyUpdate {
    pub policy: Policy,
    /// Default true; false turns every conflict of the domain into `manual_required`.
    #[serde(default = "yes")]
    #[cfg_attr(feature = "graphql", graphql(default = true))]
    #[cfg_attr(feature = "openapi", schema(default = true))]
    pub auto_resolve: bool,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(default = false))]
    #[cfg_attr(feature = "graphql", graphql(default))]
    pub notify_on_conflict: bool,
}

fn yes() -> bool {
    true
}

/// A logged conflict, as the conflict list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct ConflictView {
    pub id: String,
    pub domain: String,
    pub mobile_id: String,
    pub server_version: i64,
    pub client_base_version: i64,
    pub client_version: Option<i64>,
    /// The policy applied.
    pub strategy: Policy,
    pub result: Resolution,
    pub winner: Winner,
    pub status: ConflictStatus,
    pub details: Value,
    pub device_id: String,
    pub user_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub client_state: Option<Value>,
    pub server_state: Option<Value>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub resolved_by: Option<String>,
}

/// `GET /api/v1/sync/conflicts` query parameters. Unknown parameters are refused (400).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ConflictsQuery {
    /// `pending`, `resolved`, `auto` or `all` (the default).
    #[cfg_attr(feature = "openapi", param(pattern = "^(pending|resolved|auto|all)$"))]
    pub status: Option<String>,
    /// At most this many (1 to 500, default 100).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<i64>,
}

/// `POST /api/v1/sync/conflicts/{id}/resolve` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct ResolveRequest {
    pub choose: Choice,
    /// The record's data, required with `choose = custom` (a JSON object) and refused
    /// otherwise.
    #[serde(default)]
    pub data: Option<Value>,
}

/// Which state an admin chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "snake_case"))]
pub enum Choice {
    Client,
    Server,
    Custom,
}

/// What resolving a conflict did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct ResolveResponse {
    pub conflict_id: String,
    /// The conflict's status now: `resolved`.
    pub status: ConflictStatus,
    pub version: i64,
    pub record: RecordEnvelope,
}
