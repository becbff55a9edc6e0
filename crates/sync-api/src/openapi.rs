//! The OpenAPI 3.1 document of every REST endpoint (`GET /api/openapi.json`), generated with
//! utoipa from the route annotations below and the schema types.
//!
//! The wire types live in `sync-domain`, which knows nothing of OpenAPI, so their schemas are
//! declared here as documentation-only mirrors; the REST tests check that real responses
//! have the fields these schemas promise.

use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::rest::SnapshotRequest;

/// Documentation mirrors of the protocol's JSON documents.
pub mod schemas {
    use serde_json::Value;
    use utoipa::ToSchema;

    /// `op` of a change.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum Op {
        Upsert,
        Patch,
        Delete,
    }

    /// One change of a push.
    #[derive(Debug, ToSchema)]
    pub struct Change {
        #[schema(example = "task")]
        pub domain: String,
        pub mobile_id: uuid::Uuid,
        /// The version the device edited (0: new).
        pub base_version: Option<i64>,
        pub op: Op,
        /// Full data for `upsert`.
        #[schema(value_type = Option<Object>)]
        pub data: Option<Value>,
        /// RFC 6902 JSON Patch for `patch`.
        #[schema(value_type = Option<Vec<Object>>)]
        pub patch: Option<Value>,
        pub modified_at: time::OffsetDateTime,
        /// `high`, `medium` (default) or `low`.
        pub priority: Option<String>,
        pub bu: Option<String>,
    }

    /// `POST /api/v1/sync/push` body.
    #[derive(Debug, ToSchema)]
    pub struct PushRequest {
        pub device_id: String,
        pub client_time: Option<time::OffsetDateTime>,
        pub changes: Vec<Change>,
    }

    /// The conflict a change ran into.
    #[derive(Debug, ToSchema)]
    pub struct ConflictSummary {
        pub id: uuid::Uuid,
        pub strategy: String,
        /// `client`, `server`, `merged` or `none`.
        pub winner: String,
        #[schema(value_type = Object)]
        pub details: Value,
    }

    /// Why a change was `invalid`.
    #[derive(Debug, ToSchema)]
    pub struct ItemError {
        pub code: String,
        pub message: String,
    }

    /// A record as the server holds it (full `data`, or a `patch` from `base_version`).
    #[derive(Debug, ToSchema)]
    pub struct RecordEnvelope {
        pub domain: String,
        pub mobile_id: uuid::Uuid,
        pub version: i64,
        pub deleted: bool,
        #[schema(value_type = Option<Object>)]
        pub data: Option<Value>,
        pub base_version: Option<i64>,
        #[schema(value_type = Option<Vec<Object>>)]
        pub patch: Option<Value>,
        pub modified_at: time::OffsetDateTime,
        pub server_modified_at: time::OffsetDateTime,
        pub modified_by_device: Option<String>,
        pub priority: String,
        pub bu: Option<String>,
    }

    /// One entry of `results`, in request order.
    #[derive(Debug, ToSchema)]
    pub struct ChangeResult {
        pub mobile_id: uuid::Uuid,
        pub domain: String,
        /// `applied`, `client_won`, `server_won`, `merged`, `manual_required` or `invalid`.
        pub outcome: String,
        pub version: Option<i64>,
        pub record: Option<RecordEnvelope>,
        pub conflict: Option<ConflictSummary>,
        pub error: Option<ItemError>,
    }

    /// A push's response.
    #[derive(Debug, ToSchema)]
    pub struct PushResponse {
        pub results: Vec<ChangeResult>,
        pub cursor: String,
    }

    /// A pull's response.
    #[derive(Debug, ToSchema)]
    pub struct PullResponse {
        pub changes: Vec<RecordEnvelope>,
        pub cursor: String,
        pub has_more: bool,
        /// Changes still to pull after this page (an estimate).
        pub remaining: i64,
    }

    /// `GET /api/v1/sync/queue-status` response.
    #[derive(Debug, ToSchema)]
    pub struct QueueStatus {
        pub pending_items: i64,
        pub high_priority: i64,
        pub estimated_sync_time_sec: f64,
        pub queue_healthy: bool,
    }

    /// `POST /api/v1/sync/partial` body.
    #[derive(Debug, ToSchema)]
    pub struct PartialSyncRequest {
        pub device_id: String,
        /// `high`, `medium` (default) or `low`.
        pub priority: Option<String>,
        pub max_items: Option<u32>,
        pub network_quality: Option<String>,
    }

    /// `POST /api/v1/sync/partial` response.
    #[derive(Debug, ToSchema)]
    pub struct PartialSyncResponse {
        pub synced_items: Vec<RecordEnvelope>,
        pub remaining: i64,
    }

    /// `GET /api/v1/sync/optimal-time` response.
    #[derive(Debug, ToSchema)]
    pub struct OptimalTime {
        /// `sync_now` or `sync_in_30min`.
        pub recommendation: String,
        /// `low`, `medium` or `high`.
        pub server_load: String,
        pub queue_size: i64,
        pub is_peak_hour: bool,
    }

    /// `PUT /api/v1/sync/policies/{domain}` body.
    #[derive(Debug, ToSchema)]
    pub struct PolicyUpdate {
        /// `client_wins`, `server_wins`, `most_recent_wins`, `preserve_escalation`,
        /// `field_merge` or `manual`.
        pub policy: String,
        pub auto_resolve: Option<bool>,
        pub notify_on_conflict: Option<bool>,
    }

    /// A domain's effective policy.
    #[derive(Debug, ToSchema)]
    pub struct PolicyView {
        pub domain: String,
        pub policy: String,
        pub configured_policy: String,
        pub auto_resolve: bool,
        pub notify_on_conflict: bool,
        /// `default` or `tenant`.
        pub source: String,
    }

    /// A logged conflict.
    #[derive(Debug, ToSchema)]
    pub struct ConflictView {
        pub id: String,
        pub domain: String,
        pub mobile_id: String,
        pub server_version: i64,
        pub client_base_version: i64,
        pub client_version: Option<i64>,
        pub strategy: String,
        pub result: String,
        pub winner: String,
        pub status: String,
        #[schema(value_type = Object)]
        pub details: Value,
        pub device_id: String,
        pub user_id: String,
        pub created_at: time::OffsetDateTime,
        #[schema(value_type = Option<Object>)]
        pub client_state: Option<Value>,
        #[schema(value_type = Option<Object>)]
        pub server_state: Option<Value>,
        pub resolved_at: Option<time::OffsetDateTime>,
        pub resolved_by: Option<String>,
    }

    /// `POST /api/v1/sync/conflicts/{id}/resolve` body.
    #[derive(Debug, ToSchema)]
    pub struct ResolveRequest {
        /// `client`, `server` or `custom`.
        pub choose: String,
        /// The data for `custom`.
        #[schema(value_type = Option<Object>)]
        pub data: Option<Value>,
    }

    /// What resolving a conflict did.
    #[derive(Debug, ToSchema)]
    pub struct ResolveResponse {
        pub conflict_id: String,
        pub status: String,
        pub version: i64,
        pub record: RecordEnvelope,
    }

    /// `POST /api/sync/snapshot/create/` response.
    #[derive(Debug, ToSchema)]
    pub struct SnapshotCreated {
        pub snapshot_id: String,
        /// `created`.
        pub status: String,
        pub timestamp: time::OffsetDateTime,
    }

    /// A device's health.
    #[derive(Debug, ToSchema)]
    pub struct DeviceHealth {
        pub device_id: String,
        pub user_id: String,
        /// 0 to 100.
        pub health_score: f64,
        pub total_syncs: i64,
        pub failed_syncs_count: i64,
        pub avg_sync_duration_ms: f64,
        pub conflicts_encountered: i64,
        pub last_sync_at: Option<time::OffsetDateTime>,
        pub network_type: Option<String>,
        pub clock_skew_ms: i64,
    }

    /// `GET /api/sync/dashboard/` response.
    #[derive(Debug, ToSchema)]
    pub struct Dashboard {
        /// The latest snapshot (all snapshot fields), or null.
        #[schema(value_type = Option<Object>)]
        pub latest_snapshot: Option<Value>,
        /// The last 7 days' snapshots, oldest first.
        #[schema(value_type = Vec<Object>)]
        pub trend_7days: Value,
        pub unhealthy_devices: Vec<DeviceHealth>,
        /// `[{"domain", "conflict_count"}]`, descending.
        #[schema(value_type = Vec<Object>)]
        pub conflict_hotspots: Value,
        #[schema(value_type = Vec<Object>)]
        pub alerts: Value,
    }
}

/// Routes, as utoipa reads them; documentation only, never called (the handlers themselves are in [`crate::rest`]).
#[allow(dead_code)]
mod routes {
    use super::schemas::*;
    use crate::error::ErrorBody;
    use crate::rest::{ConflictsQuery, DeviceQuery, PullQuery, SnapshotRequest};

    #[utoipa::path(post, path = "/api/v1/sync/push", tag = "sync",
        params(
            ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters"),
            ("X-Network-Quality" = Option<String>, Header, description = "excellent, good, fair or poor"),
        ),
        request_body(content = PushRequest, description = "May be sent with `Content-Encoding: gzip`"),
        responses(
            (status = 200, description = "One result per change, in request order", body = PushResponse),
            (status = 400, description = "Malformed JSON, wrong or unknown fields, missing Idempotency-Key", body = ErrorBody),
            (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
            (status = 422, description = "Idempotency key reused with another body", body = ErrorBody),
            (status = 503, body = ErrorBody),
        ))]
    pub fn push() {}

    #[utoipa::path(get, path = "/api/v1/sync/pull", tag = "sync", params(PullQuery),
        responses(
            (status = 200, body = PullResponse),
            (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
            (status = 410, description = "resync_required: pull again without a cursor", body = ErrorBody),
        ))]
    pub fn pull() {}

    #[utoipa::path(get, path = "/api/v1/sync/queue-status", tag = "queue", params(DeviceQuery),
        responses((status = 200, body = QueueStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
    pub fn queue_status() {}

    #[utoipa::path(post, path = "/api/v1/sync/partial", tag = "queue", request_body = PartialSyncRequest,
        responses((status = 200, body = PartialSyncResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
    pub fn partial() {}

    #[utoipa::path(get, path = "/api/v1/sync/optimal-time", tag = "queue",
        responses((status = 200, body = OptimalTime), (status = 401, body = ErrorBody)))]
    pub fn optimal_time() {}

    #[utoipa::path(get, path = "/api/v1/sync/policies", tag = "conflicts",
        responses((status = 200, body = Vec<PolicyView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
    pub fn policies() {}

    #[utoipa::path(put, path = "/api/v1/sync/policies/{domain}", tag = "conflicts",
        params(("domain" = String, Path, description = "A domain name, e.g. `ticket`")),
        request_body = PolicyUpdate,
        responses((status = 200, body = PolicyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
            (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
    pub fn set_policy() {}

    #[utoipa::path(get, path = "/api/v1/sync/conflicts", tag = "conflicts", params(ConflictsQuery),
        responses((status = 200, body = Vec<ConflictView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
    pub fn conflicts() {}

    #[utoipa::path(post, path = "/api/v1/sync/conflicts/{id}/resolve", tag = "conflicts",
        params(("id" = String, Path, description = "The conflict id")),
        request_body = ResolveRequest,
        responses((status = 200, body = ResolveResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
            (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
            (status = 422, body = ErrorBody)))]
    pub fn resolve() {}

    #[utoipa::path(get, path = "/api/sync/dashboard/", tag = "analytics",
        responses((status = 200, body = Dashboard), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
    pub fn dashboard() {}

    #[utoipa::path(post, path = "/api/sync/snapshot/create/", tag = "analytics", request_body = SnapshotRequest,
        responses((status = 201, body = SnapshotCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
    pub fn snapshot_create() {}

    #[utoipa::path(get, path = "/api/sync/device-health/", tag = "analytics", params(DeviceQuery),
        responses((status = 200, body = DeviceHealth), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
            (status = 404, body = ErrorBody)))]
    pub fn device_health() {}

    #[utoipa::path(post, path = "/graphql", tag = "graphql",
        request_body(content = Object, description = "A GraphQL request: `{query, variables, operationName}`"),
        responses((status = 200, description = "A GraphQL response", body = Object), (status = 401, body = ErrorBody)))]
    pub fn graphql() {}

    #[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
        responses((status = 200, description = "The process is up")))]
    pub fn healthz() {}

    #[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
        responses((status = 200, description = "The database answers and migrations are current"),
            (status = 503, body = ErrorBody)))]
    pub fn readyz() {}

    #[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
        responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
    pub fn metrics() {}
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "syncforge sync protocol", version = "1", description = "PROTOCOL.md v1: offline-first sync for field-service apps."),
    paths(
        routes::push, routes::pull, routes::queue_status, routes::partial, routes::optimal_time,
        routes::policies, routes::set_policy, routes::conflicts, routes::resolve,
        routes::dashboard, routes::snapshot_create, routes::device_health, routes::graphql,
        routes::healthz, routes::readyz, routes::metrics,
    ),
    components(schemas(ErrorBody, SnapshotRequest)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document as pretty JSON.
pub fn document_json() -> String {
    document().to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}
