//! Fleet insight (PROTOCOL.md section 12): anomalies, conflict risk, predicted sync windows
//! and webhooks.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Most anomalies, risky records or deliveries one list request returns.
pub const MAX_INSIGHT_LIMIT: i64 = 500;
/// Anomalies and deliveries listed when no `limit` is given.
pub const DEFAULT_INSIGHT_LIMIT: i64 = 100;
/// Risky records listed when no `limit` is given.
pub const DEFAULT_RISK_LIMIT: i64 = 20;
/// A webhook's name: 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub const WEBHOOK_NAME_PATTERN: &str = r"^[A-Za-z0-9_.-]{1,64}$";
/// The longest webhook URL.
pub const MAX_WEBHOOK_URL: usize = 2048;
/// A webhook's secret: at least this many characters...
pub const MIN_WEBHOOK_SECRET: usize = 16;
/// ...and at most this many.
pub const MAX_WEBHOOK_SECRET: usize = 256;

/// What an anomaly measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AnomalyMetric {
    /// Syncs in the window.
    SyncVolume,
    /// Failed syncs per sync (0..1).
    FailureRate,
    /// Conflicts per synced change (0..1).
    ConflictRate,
    /// The p95 sync duration in milliseconds.
    P95Duration,
}

impl AnomalyMetric {
    /// The wire name, also the suffix of the dashboard rule `anomaly_<metric>`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyMetric::SyncVolume => "sync_volume",
            AnomalyMetric::FailureRate => "failure_rate",
            AnomalyMetric::ConflictRate => "conflict_rate",
            AnomalyMetric::P95Duration => "p95_duration",
        }
    }
}

/// How loudly an anomaly is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "snake_case"))]
pub enum AnomalySeverity {
    Info,
    Warning,
    Critical,
}

impl AnomalySeverity {
    pub const ALL: [AnomalySeverity; 3] =
        [AnomalySeverity::Info, AnomalySeverity::Warning, AnomalySeverity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            AnomalySeverity::Info => "info",
            AnomalySeverity::Warning => "warning",
            AnomalySeverity::Critical => "critical",
        }
    }

    /// The severity a word names, if any.
    pub fn parse(text: &str) -> Option<AnomalySeverity> {
        AnomalySeverity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Whose series an anomaly is in: the tenant's (both absent), a domain's or a device's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnomalyScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// One anomaly, as `GET /api/v1/sync/anomalies` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnomalyView {
    pub id: String,
    pub metric: AnomalyMetric,
    pub scope: AnomalyScope,
    /// The window's value: syncs, a fraction 0..1 or milliseconds.
    pub observed: f64,
    /// What this hour of the week usually shows.
    pub expected: f64,
    /// `[low, high]`: the range within which no alarm is raised.
    #[cfg_attr(feature = "openapi", schema(min_items = 2, max_items = 2))]
    pub band: [f64; 2],
    /// Robust standard deviations from the expected value (negative below it).
    pub score: f64,
    pub severity: AnomalySeverity,
    #[serde(with = "time::serde::rfc3339")]
    pub window_start: OffsetDateTime,
    /// The end of the judged window (moved on while the anomaly lasts).
    #[serde(with = "time::serde::rfc3339")]
    pub window_end: OffsetDateTime,
    /// One line an operator understands.
    pub explanation: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /api/v1/sync/anomalies` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AnomaliesQuery {
    /// Only anomalies found at or after this RFC 3339 time (default: the last 7 days).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime, example = "2026-12-01T00:00:00Z"))]
    pub since: Option<String>,
    /// 1 to 500 (default 100).
    #[cfg_attr(feature = "openapi", param(value_type = Option<i64>, minimum = 1, maximum = 500))]
    pub limit: Option<i64>,
}

/// `GET /api/v1/sync/conflict-risk` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ConflictRiskQuery {
    /// Only records of this domain (unknown: 404).
    #[cfg_attr(feature = "openapi", param(pattern = r"^[^\u0000]*$"))]
    pub domain: Option<String>,
    /// 1 to 500 (default 20).
    #[cfg_attr(feature = "openapi", param(value_type = Option<i64>, minimum = 1, maximum = 500))]
    pub limit: Option<i64>,
}

/// The tenant's conflict-risk model, as trained by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RiskModelView {
    #[serde(with = "time::serde::rfc3339")]
    pub trained_at: OffsetDateTime,
    /// Examples it learnt from (training and holdout).
    pub examples: i64,
    /// Of those, held out for the evaluation.
    pub holdout_examples: i64,
    /// AUC on the holdout (null when the holdout lacked either outcome).
    pub holdout_auc: Option<f64>,
    /// AUC of the baseline "count of past conflicts of the record" on the same holdout.
    pub baseline_auc: Option<f64>,
}

/// One record's risk of conflicting soon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RiskRecord {
    pub domain: String,
    pub mobile_id: String,
    /// 0 to 1.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub risk: f64,
    /// Why, largest contribution first ("3 devices edited it in the last 24 h").
    pub reasons: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub scored_at: OffsetDateTime,
}

/// `GET /api/v1/sync/conflict-risk` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictRisk {
    /// Null until the tenant has enough history to train on.
    pub model: Option<RiskModelView>,
    /// Highest risk first.
    pub records: Vec<RiskRecord>,
}

/// Where a sync-window recommendation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "graphql", graphql(rename_items = "snake_case"))]
pub enum WindowBasis {
    /// The device's own history.
    DeviceHistory,
    /// The fleet's history (a device with too little of its own).
    Fleet,
    /// Section 6's peak-hours rule (no history at all).
    Rule,
}

impl WindowBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowBasis::DeviceHistory => "device_history",
            WindowBasis::Fleet => "fleet",
            WindowBasis::Rule => "rule",
        }
    }
}

/// A time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
#[cfg_attr(feature = "graphql", graphql(rename_fields = "lowercase"))]
pub struct SyncWindow {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// `GET /api/v1/sync/optimal-time` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct OptimalTimeQuery {
    /// The device to advise (1 to 128 characters, no control characters); none: a device
    /// with no history of its own.
    #[cfg_attr(
        feature = "openapi",
        param(min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")
    )]
    pub device_id: Option<String>,
}

/// An event a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// An alert as the dashboard lists it (anomalies included, rule `anomaly_<metric>`).
    Alert,
    /// An anomaly as `GET /anomalies` lists it.
    Anomaly,
    /// A conflict as `GET /conflicts` lists it (those admins are told of).
    Conflict,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 3] = [WebhookEvent::Alert, WebhookEvent::Anomaly, WebhookEvent::Conflict];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Alert => "alert",
            WebhookEvent::Anomaly => "anomaly",
            WebhookEvent::Conflict => "conflict",
        }
    }

    pub fn parse(text: &str) -> Option<WebhookEvent> {
        WebhookEvent::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// `PUT /api/v1/sync/webhooks/{name}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// An `http` or `https` URL with a host (at most 2048 characters; anything else: 422). The
    /// schema's pattern is a plain subset of what the server takes.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2048,
            pattern = r"^https?://[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(\.[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*)*(:[1-5]?[0-9]{1,4})?(/[!-~]*)?$",
            example = "https://ops.example.com/hooks/sync"
        )
    )]
    pub url: String,
    /// Signs each delivery (HMAC-SHA256); 16 to 256 characters. Never shown again.
    #[cfg_attr(feature = "openapi", schema(min_length = 16, max_length = 256, pattern = r"^[^\u0000]*$"))]
    pub secret: String,
    /// One or more of `alert`, `anomaly`, `conflict`, a set (a repeated name counts once; at
    /// most 16 entries).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 16))]
    pub events: Vec<WebhookEvent>,
}

/// A webhook as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookView {
    pub name: String,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Where a delivery attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not attempted yet (due at `due_at`).
    Pending,
    /// Answered with a 2xx.
    Delivered,
    /// Failed; another attempt is due at `next_retry_at`.
    Retrying,
    /// Failed, and the 24 hours of retries are over.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Retrying, DeliveryState::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One delivery attempt, as `GET /api/v1/sync/webhooks/{name}/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeliveryView {
    pub id: String,
    pub event: WebhookEvent,
    /// The id of the alert, anomaly or conflict delivered.
    pub event_id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub state: DeliveryState,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub attempted_at: Option<OffsetDateTime>,
    /// The receiver's HTTP status (null when no answer came).
    pub status_code: Option<u16>,
    /// Why the attempt failed (a status other than 2xx, a timeout, a refused connection).
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_retry_at: Option<OffsetDateTime>,
}

/// `?limit=…` of the delivery log (1 to 500, default 100).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    #[cfg_attr(feature = "openapi", param(value_type = Option<i64>, minimum = 1, maximum = 500))]
    pub limit: Option<i64>,
}
