//! Pull (PROTOCOL.md section 5): `GET /api/v1/sync/pull` and the record envelope.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_model::Priority;
use time::OffsetDateTime;
use uuid::Uuid;

/// A record as pulled: full `data`, or a `patch` from `base_version` when `delta=true` pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct RecordEnvelope {
    pub domain: String,
    pub mobile_id: Uuid,
    pub version: i64,
    pub deleted: bool,
    /// The record's data (absent when the record comes as a `patch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The version `patch` applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<i64>,
    /// RFC 6902 JSON Patch from `base_version` to `version`.
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
    /// With `hints=true`: the record's risk of conflicting soon (0..1), when at least the
    /// tenant's threshold (PROTOCOL.md section 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub conflict_risk: Option<f64>,
}

/// A pull's parameters, transport-neutral (REST reads them from [`PullQuery`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Add `conflict_risk` to risky records (section 12).
    #[serde(default)]
    pub hints: bool,
}

/// `GET /api/v1/sync/pull` query parameters. Unknown parameters are refused (400).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    /// Opaque cursor from the previous pull (`c1.` and a sequence number); none or empty:
    /// from the beginning. A cursor the server did not hand out is 400; one older than the
    /// retained history is 410 `resync_required`.
    #[cfg_attr(feature = "openapi", param(pattern = r"^(c1\.[0-9]{1,18})?$", example = "c1.42"))]
    pub cursor: Option<String>,
    /// Page size (default by `X-Network-Quality`); larger than `max_pull_limit` (default 1000)
    /// is capped to it.
    #[cfg_attr(feature = "openapi", param(value_type = Option<u64>, minimum = 1, maximum = 4294967295.0))]
    pub limit: Option<u32>,
    /// Comma-separated domain names (unknown ones are 400); none: every domain.
    #[cfg_attr(feature = "openapi", param(value_type = Option<Vec<String>>, style = Form, explode = false))]
    pub domains: Option<String>,
    /// Send patches where the device holds an older version.
    pub delta: Option<bool>,
    /// Remember this device's cursor (1 to 128 characters, no control characters).
    #[cfg_attr(
        feature = "openapi",
        param(min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")
    )]
    pub device_id: Option<String>,
    /// Long-poll: when nothing is after the cursor, hold the request up to this many seconds
    /// (1 to 60) for a change the caller may see (PROTOCOL.md section 11).
    #[cfg_attr(feature = "openapi", param(value_type = Option<u64>, minimum = 1, maximum = 60))]
    pub wait: Option<u32>,
    /// Add `conflict_risk` to records whose risk of conflicting soon is at least the
    /// threshold (PROTOCOL.md section 12).
    pub hints: Option<bool>,
}

/// `?device_id=…` of the queue-status and device-health endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// 1 to 128 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        param(min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")
    )]
    pub device_id: String,
}

/// A pull's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct PullResponse {
    /// In change-sequence order, each record at its latest version.
    pub changes: Vec<RecordEnvelope>,
    /// The cursor for the next pull.
    pub cursor: String,
    pub has_more: bool,
    /// Changes after `cursor` still to pull (for a progress bar): exact up to 10,000, an
    /// estimate beyond.
    pub remaining: i64,
}
