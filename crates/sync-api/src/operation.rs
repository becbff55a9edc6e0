//! The operation interface: one transport-neutral request type and one `execute`.
//!
//! REST and GraphQL parse their input into a [`SyncOperation`] and hand it to
//! [`SyncApi::execute`]; neither adapter calls the engine itself. So the same input has the
//! same outcome, versions and stored state on either transport, and an idempotency key used
//! on one replays on the other (the engine keys idempotency by tenant, user, device and key,
//! and hashes the parsed request, not its bytes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::IgnoredAny;
use sync_bandwidth::{CompressionConfig, CompressionMode, Encoding};
use sync_domain::SyncEngine;
use sync_domain::engine::{
    BodyEncoding, ConflictView, Dashboard, DeviceHealthView, FailedSync, PolicyUpdate, PolicyView, PullReply,
    PushReply, ResolveRequest, ResolveResponse, SnapshotCreated, WireBytes,
};
use sync_domain::protocol::{
    OptimalTime, PartialSyncRequest, PartialSyncResponse, PullRequest, PushRequest, QueueStatus,
};
use sync_domain::store::{Principal, SyncEventKind};
use sync_metrics::{Operation, Sample, SyncRecorder, Usage};
use sync_protocol::insight::{DEFAULT_INSIGHT_LIMIT, DEFAULT_RISK_LIMIT, MAX_INSIGHT_LIMIT};
use sync_protocol::{AnomalyView, ConflictRisk, DeliveryView, WebhookRequest, WebhookView};
use tracing::Instrument;

use crate::auth::Authenticator;
use crate::error::{ApiError, Result};
use crate::limits::{Limiter, LimitsConfig, retry_after_secs};

/// Most conflicts one list request returns.
pub const MAX_CONFLICT_LIMIT: i64 = 500;
/// Conflicts listed when no `limit` is given.
pub const DEFAULT_CONFLICT_LIMIT: i64 = 100;
/// Longest snapshot window, in hours: the engine's bound.
pub use sync_domain::engine::MAX_SNAPSHOT_WINDOW_HOURS;

/// Which adapter a request came through (for traces; it never changes the outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Rest,
    Graphql,
}

/// What to do, with its payload.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationRequest {
    Push(PushRequest),
    Pull(PullRequest),
    QueueStatus { device_id: String },
    PartialSync(PartialSyncRequest),
    OptimalTime { device_id: Option<String> },
    Policies,
    SetPolicy { domain: String, update: PolicyUpdate },
    Conflicts { status: Option<String>, limit: Option<i64> },
    ResolveConflict { id: String, request: ResolveRequest },
    Dashboard,
    CreateSnapshot { time_window_hours: i64 },
    DeviceHealth { device_id: String },
    Anomalies { since: Option<String>, limit: Option<i64> },
    ConflictRisk { domain: Option<String>, limit: Option<i64> },
    PutWebhook { name: String, request: WebhookRequest },
    Webhooks,
    Webhook { name: String },
    DeleteWebhook { name: String },
    WebhookDeliveries { name: String, limit: Option<i64> },
}

impl OperationRequest {
    /// The device the request is about, where it names one.
    pub fn device_id(&self) -> Option<&str> {
        match self {
            OperationRequest::Push(r) => Some(&r.device_id),
            OperationRequest::Pull(r) => r.device_id.as_deref(),
            OperationRequest::QueueStatus { device_id } | OperationRequest::DeviceHealth { device_id } => {
                Some(device_id)
            }
            OperationRequest::PartialSync(r) => Some(&r.device_id),
            OperationRequest::OptimalTime { device_id } => device_id.as_deref(),
            _ => None,
        }
    }

    /// The operation name used in traces.
    pub fn name(&self) -> &'static str {
        match self {
            OperationRequest::Push(_) => "push",
            OperationRequest::Pull(_) => "pull",
            OperationRequest::QueueStatus { .. } => "queue_status",
            OperationRequest::PartialSync(_) => "partial_sync",
            OperationRequest::OptimalTime { .. } => "optimal_time",
            OperationRequest::Policies => "policies",
            OperationRequest::SetPolicy { .. } => "set_policy",
            OperationRequest::Conflicts { .. } => "conflicts",
            OperationRequest::ResolveConflict { .. } => "resolve_conflict",
            OperationRequest::Dashboard => "dashboard",
            OperationRequest::CreateSnapshot { .. } => "create_snapshot",
            OperationRequest::DeviceHealth { .. } => "device_health",
            OperationRequest::Anomalies { .. } => "anomalies",
            OperationRequest::ConflictRisk { .. } => "conflict_risk",
            OperationRequest::PutWebhook { .. } => "put_webhook",
            OperationRequest::Webhooks => "webhooks",
            OperationRequest::Webhook { .. } => "webhook",
            OperationRequest::DeleteWebhook { .. } => "delete_webhook",
            OperationRequest::WebhookDeliveries { .. } => "webhook_deliveries",
        }
    }

    fn metrics_operation(&self) -> Option<Operation> {
        match self {
            OperationRequest::Push(_) => Some(Operation::Push),
            OperationRequest::Pull(_) => Some(Operation::Pull),
            OperationRequest::PartialSync(_) => Some(Operation::Partial),
            OperationRequest::ResolveConflict { .. } => Some(Operation::Resolve),
            _ => None,
        }
    }
}

/// A transport-neutral request: who, with which headers' worth of context, wants what.
#[derive(Debug, Clone)]
pub struct SyncOperation {
    /// The authenticated caller (see [`SyncApi::authenticate`]).
    pub principal: Principal,
    /// `Idempotency-Key` (required by push).
    pub idempotency_key: Option<String>,
    /// `X-Network-Quality`.
    pub network_quality: Option<String>,
    /// Whether the client accepts a gzip response (pull compresses inside the engine).
    pub accept_gzip: bool,
    pub transport: Transport,
    pub request: OperationRequest,
    /// Where the metrics layer collects what this request did.
    pub metrics: RequestMetrics,
}

impl SyncOperation {
    /// A request with no optional context.
    pub fn new(principal: Principal, transport: Transport, request: OperationRequest) -> Self {
        Self {
            principal,
            idempotency_key: None,
            network_quality: None,
            accept_gzip: false,
            transport,
            request,
            metrics: RequestMetrics::default(),
        }
    }
}

/// What an operation produced.
#[derive(Debug, Clone)]
pub enum OperationOutput {
    /// The exact response body (replays are byte-identical).
    Push(PushReply),
    /// The response, and its body already encoded by the compression rules.
    Pull(PullReply),
    QueueStatus(QueueStatus),
    PartialSync(PartialSyncResponse),
    OptimalTime(OptimalTime),
    Policies(Vec<PolicyView>),
    Policy(PolicyView),
    Conflicts(Vec<ConflictView>),
    Resolved(ResolveResponse),
    Dashboard(Box<Dashboard>),
    SnapshotCreated(SnapshotCreated),
    DeviceHealth(DeviceHealthView),
    Anomalies(Vec<AnomalyView>),
    ConflictRisk(ConflictRisk),
    Webhook(WebhookView),
    Webhooks(Vec<WebhookView>),
    /// Done, nothing to say (a deletion: 204).
    Deleted,
    Deliveries(Vec<DeliveryView>),
}

/// A JSON body ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBody {
    pub bytes: Vec<u8>,
    /// `Some("gzip")` when compressed.
    pub content_encoding: Option<&'static str>,
}

impl OperationOutput {
    /// The response as a JSON value; push parses the engine's exact body.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        fn value<T: Serialize>(v: &T) -> Result<serde_json::Value> {
            serde_json::to_value(v).map_err(ApiError::json("serialising a response"))
        }
        match self {
            OperationOutput::Push(reply) => {
                serde_json::from_str(&reply.body).map_err(ApiError::json("reading a stored push response"))
            }
            OperationOutput::Pull(reply) => {
                serde_json::from_slice(&reply.json()?).map_err(ApiError::json("reading a pull's body"))
            }
            OperationOutput::QueueStatus(v) => value(v),
            OperationOutput::PartialSync(v) => value(v),
            OperationOutput::OptimalTime(v) => value(v),
            OperationOutput::Policies(v) => value(v),
            OperationOutput::Policy(v) => value(v),
            OperationOutput::Conflicts(v) => value(v),
            OperationOutput::Resolved(v) => value(v),
            OperationOutput::Dashboard(v) => value(v),
            OperationOutput::SnapshotCreated(v) => value(v),
            OperationOutput::DeviceHealth(v) => value(v),
            OperationOutput::Anomalies(v) => value(v),
            OperationOutput::ConflictRisk(v) => value(v),
            OperationOutput::Webhook(v) => value(v),
            OperationOutput::Webhooks(v) => value(v),
            OperationOutput::Deleted => Ok(serde_json::Value::Null),
            OperationOutput::Deliveries(v) => value(v),
        }
    }
}

/// What one request did, filled in by [`SyncApi::execute`] and read by the metrics layer
/// once the response is ready. Clones share one slot.
#[derive(Debug, Clone, Default)]
pub struct RequestMetrics(Arc<Mutex<MetricsSlot>>);

#[derive(Debug, Default)]
struct MetricsSlot {
    tenant: Option<String>,
    ops: Vec<OpRecord>,
    /// The authenticated caller.
    principal: Option<Principal>,
    /// The device the request names, as far as it could be read.
    device_id: Option<String>,
    /// `X-Network-Quality`.
    network: Option<String>,
    /// The request body as it arrived (`sent`) and decoded (`raw`).
    body: Option<WireBytes>,
    /// Whether the request's outcome is already in analytics (the engine recorded it, or
    /// its refusal was recorded).
    outcome_recorded: bool,
    /// When the request arrived.
    started: Option<std::time::Instant>,
}

/// One operation of a request, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    pub operation: Operation,
    pub domain: String,
    pub success: bool,
    pub usage: Usage,
}

impl RequestMetrics {
    fn with_slot<T>(&self, f: impl FnOnce(&mut MetricsSlot) -> T) -> T {
        // A poisoned slot only means another thread panicked mid-update; the data is plain.
        let mut guard = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Notes the authenticated tenant (so that failures are counted against it).
    pub fn set_tenant(&self, tenant: &str) {
        self.with_slot(|s| s.tenant = Some(tenant.to_owned()));
    }

    /// The tenant noted, if any.
    pub fn tenant(&self) -> Option<String> {
        self.with_slot(|s| s.tenant.clone())
    }

    /// Notes the authenticated caller (and its tenant).
    pub fn set_principal(&self, principal: &Principal) {
        self.with_slot(|s| {
            s.tenant = Some(principal.tenant.clone());
            s.principal = Some(principal.clone());
        });
    }

    /// Notes the request's `X-Network-Quality`.
    pub fn note_network(&self, network: Option<&str>) {
        self.with_slot(|s| s.network = network.map(str::to_owned));
    }

    /// Notes the device the request names (the first one noted stays).
    pub fn note_device(&self, device_id: &str) {
        self.with_slot(|s| {
            if s.device_id.is_none() {
                s.device_id = Some(device_id.to_owned());
            }
        });
    }

    /// The device noted, if any.
    pub fn device_id(&self) -> Option<String> {
        self.with_slot(|s| s.device_id.clone())
    }

    /// Notes the request body's size as it arrived and decoded.
    pub fn note_body(&self, bytes: WireBytes) {
        self.with_slot(|s| s.body = Some(bytes));
    }

    /// The request body's size, if it was read.
    pub fn body(&self) -> Option<WireBytes> {
        self.with_slot(|s| s.body)
    }

    /// Notes when the request arrived.
    pub fn mark_started(&self, at: std::time::Instant) {
        self.with_slot(|s| s.started = Some(at));
    }

    /// Time since the request arrived (zero if that was not noted).
    pub fn elapsed(&self) -> Duration {
        self.with_slot(|s| s.started.map(|at| at.elapsed()).unwrap_or_default())
    }

    fn mark_recorded(&self) -> bool {
        self.with_slot(|s| std::mem::replace(&mut s.outcome_recorded, true))
    }

    fn push(&self, record: OpRecord) {
        self.with_slot(|s| s.ops.push(record));
    }

    /// Sets the bytes that went on the wire for the latest operation.
    pub fn set_bytes_sent(&self, bytes: usize) {
        self.with_slot(|s| {
            if let Some(last) = s.ops.last_mut() {
                last.usage.bytes_sent = bytes as u64;
            }
        });
    }

    /// Takes what was recorded.
    pub fn take(&self) -> (Option<String>, Vec<OpRecord>) {
        self.with_slot(|s| (s.tenant.clone(), std::mem::take(&mut s.ops)))
    }

    /// Records into `recorder`: every noted operation, or, when none was noted and the request
    /// was for `fallback`, one failure of it (a request refused before it reached the engine).
    pub fn record(&self, recorder: &SyncRecorder, elapsed: Duration, fallback: Option<(Operation, bool)>) {
        let (tenant, ops) = self.take();
        let tenant = tenant.unwrap_or_else(|| "_anonymous".to_owned());
        if ops.is_empty() {
            if let Some((operation, success)) = fallback {
                let sample = if success {
                    Sample::success(elapsed, Usage::default())
                } else {
                    Sample::failure(elapsed)
                };
                recorder.record(&tenant, "all", operation, &sample);
            }
            return;
        }
        for op in ops {
            let sample =
                if op.success { Sample::success(elapsed, op.usage) } else { Sample::failure(elapsed) };
            recorder.record(&tenant, &op.domain, op.operation, &sample);
        }
    }
}

/// Options of the API that are not the engine's.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Secret for HS256 JWTs; `None` accepts only stored tokens.
    pub jwt_secret: Option<String>,
    /// Request budgets per token and the ceiling on a tenant's concurrent pushes (per node).
    pub limits: LimitsConfig,
    /// Origins whose browser apps get CORS answers (exact `scheme://host[:port]`); none by
    /// default.
    pub cors_allowed_origins: Vec<String>,
}

/// The operation interface over one engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct SyncApi {
    engine: SyncEngine,
    auth: Authenticator,
    recorder: SyncRecorder,
    compression: Arc<CompressionConfig>,
    limiter: Limiter,
    cors_allowed_origins: Arc<Vec<String>>,
    live: sync_live::Live,
}

impl std::fmt::Debug for SyncApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncApi")
            .field("engine", &self.engine)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl SyncApi {
    /// The API over `engine`, with live streams fanned out in this process (default limits).
    pub fn new(engine: SyncEngine, options: ApiOptions) -> Self {
        Self::with_live(sync_live::Live::new(engine, sync_live::LiveConfig::default()), options)
    }

    /// The API over the live layer's engine (which tells the hub of every commit).
    pub fn with_live(live: sync_live::Live, options: ApiOptions) -> Self {
        let engine = live.engine().clone();
        let auth =
            Authenticator::new(engine.database().clone(), options.jwt_secret.as_deref().map(str::as_bytes))
                .with_cache(live.hub().clone());
        let config = engine.config();
        let compression = CompressionConfig {
            mode: CompressionMode::Adaptive,
            compression_threshold_bytes: config.compression_threshold_bytes,
            min_compression_ratio: config.min_compression_ratio,
            gzip_level: config.compression_level,
            ..CompressionConfig::default()
        };
        Self {
            engine,
            auth,
            recorder: SyncRecorder::new(),
            compression: Arc::new(compression),
            limiter: Limiter::new(options.limits),
            cors_allowed_origins: Arc::new(options.cors_allowed_origins),
            live,
        }
    }

    /// The per-node rate limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The origins that get CORS answers.
    pub fn cors_allowed_origins(&self) -> &[String] {
        &self.cors_allowed_origins
    }

    /// Spends one request of the budget of `credential`, a token of `principal`'s tenant
    /// (429 with the seconds to wait when it is spent).
    pub fn admit(&self, principal: &Principal, credential: &str) -> Result<()> {
        self.limiter.admit(&principal.tenant, credential).map_err(|wait| ApiError::RateLimited {
            message: "this token has used its request budget; retry later".into(),
            retry_after_secs: retry_after_secs(wait),
        })
    }

    /// Records a push, pull or partial sync refused before the engine saw it (bad input, too
    /// large, rate limited) as a failed sync of the device the request names, unless its
    /// outcome is already recorded. Nothing is recorded without an authenticated caller and
    /// a device.
    pub async fn record_refusal(&self, metrics: &RequestMetrics, kind: SyncEventKind, elapsed: Duration) {
        let (principal, device_id, network, body) =
            metrics.with_slot(|s| (s.principal.clone(), s.device_id.clone(), s.network.clone(), s.body));
        let (Some(principal), Some(device_id)) = (principal, device_id) else { return };
        if metrics.mark_recorded() {
            return;
        }
        let failed = FailedSync {
            device_id,
            kind,
            duration: elapsed,
            wire: if kind == SyncEventKind::Push { body.unwrap_or_default() } else { WireBytes::default() },
            network,
        };
        if let Err(e) = self.engine.record_failed_sync(&principal, failed).await {
            tracing::warn!(error = %e, "could not record a refused sync");
        }
    }

    /// The live layer: hub, coalescing reader, limits.
    pub fn live(&self) -> &sync_live::Live {
        &self.live
    }

    pub fn engine(&self) -> &SyncEngine {
        &self.engine
    }

    /// The recorder `/metrics` renders.
    pub fn recorder(&self) -> &SyncRecorder {
        &self.recorder
    }

    /// The principal of an `Authorization` header value (401 when missing or unknown).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal> {
        self.auth.authenticate(authorization).await
    }

    /// Serialises a response and gzips it when the client accepts gzip and it pays (the
    /// protocol's threshold and ratio rules).
    pub fn encode_json<T: Serialize + ?Sized>(&self, value: &T, accept_gzip: bool) -> Result<EncodedBody> {
        self.encode_measured(value, accept_gzip).map(|(body, _)| body)
    }

    /// [`SyncApi::encode_json`], with the length of the JSON before it was encoded.
    pub fn encode_measured<T: Serialize + ?Sized>(
        &self,
        value: &T,
        accept_gzip: bool,
    ) -> Result<(EncodedBody, usize)> {
        let bytes = serde_json::to_vec(value).map_err(ApiError::json("serialising a response"))?;
        let len = bytes.len();
        Ok((self.encode_bytes(bytes, accept_gzip)?, len))
    }

    /// [`SyncApi::encode_json`] for a body that is already JSON.
    pub fn encode_bytes(&self, bytes: Vec<u8>, accept_gzip: bool) -> Result<EncodedBody> {
        if !accept_gzip {
            return Ok(EncodedBody { bytes, content_encoding: None });
        }
        let compressed = self.compression.compress_as(bytes, Encoding::Gzip)?;
        let content_encoding = compressed.content_encoding();
        Ok(EncodedBody { bytes: compressed.body, content_encoding })
    }

    /// Runs one operation for its principal. Role, tenant and unit checks happen here (in the
    /// engine), whatever the transport.
    pub async fn execute(&self, op: SyncOperation) -> Result<OperationOutput> {
        let SyncOperation {
            principal,
            idempotency_key,
            network_quality,
            accept_gzip,
            transport,
            request,
            metrics,
        } = op;
        let started = std::time::Instant::now();
        metrics.set_principal(&principal);
        metrics.note_network(network_quality.as_deref());
        if let Some(device_id) = request.device_id() {
            metrics.note_device(device_id);
        }
        let sync_kind = sync_kind(&request);
        if let Some(field) = nul_in(&request) {
            let refused = ApiError::BadRequest {
                code: "invalid_request",
                message: format!("{field}: text must not contain NUL characters"),
                details: Some(serde_json::json!({ "path": field })),
            };
            if let Some(kind) = sync_kind {
                self.record_refusal(&metrics, kind, started.elapsed()).await;
            }
            return Err(refused);
        }
        let metrics_op = request.metrics_operation();
        let domain = metrics_domain(&request);
        let name = request.name();
        let body = metrics.body();
        let span = tracing::debug_span!("operation", name, tenant = %principal.tenant, user = %principal.user, ?transport);
        let result = self
            .dispatch(&principal, idempotency_key, network_quality, accept_gzip, request, body)
            .instrument(span)
            .await;
        if let Some(kind) = sync_kind {
            match &result {
                // The engine recorded the outcome, success or failure.
                Ok(_) | Err(ApiError::Engine(_)) => {
                    metrics.mark_recorded();
                }
                Err(_) => self.record_refusal(&metrics, kind, started.elapsed()).await,
            }
        }
        if let Some(operation) = metrics_op {
            let (success, usage, domain) = match &result {
                Ok(output) => {
                    let (usage, out_domain) = usage_of(output, body);
                    (true, usage, out_domain.unwrap_or(domain))
                }
                Err(_) => (false, Usage::default(), domain),
            };
            metrics.push(OpRecord { operation, domain, success, usage });
        }
        result
    }

    async fn dispatch(
        &self,
        principal: &Principal,
        idempotency_key: Option<String>,
        network_quality: Option<String>,
        accept_gzip: bool,
        request: OperationRequest,
        body: Option<WireBytes>,
    ) -> Result<OperationOutput> {
        let engine = &self.engine;
        Ok(match request {
            OperationRequest::Push(push) => {
                let key = idempotency_key.ok_or_else(|| {
                    ApiError::bad_request("missing_idempotency_key", "push needs an Idempotency-Key header")
                })?;
                let _permit =
                    self.limiter.push_permit(&principal.tenant).ok_or_else(|| ApiError::RateLimited {
                        message: "this tenant has as many pushes in progress as it may; retry shortly".into(),
                        retry_after_secs: 1,
                    })?;
                let network = network_quality.as_deref();
                let reply = match body {
                    Some(wire) => engine.push_from_wire(principal, &key, push, network, wire).await?,
                    None => engine.push(principal, &key, push, network).await?,
                };
                OperationOutput::Push(reply)
            }
            OperationRequest::Pull(mut pull) => {
                if pull.network_quality.is_none() {
                    pull.network_quality = network_quality;
                }
                let encoding = Negotiated { api: self, accept_gzip };
                OperationOutput::Pull(engine.pull(principal, pull, &encoding).await?)
            }
            OperationRequest::QueueStatus { device_id } => {
                OperationOutput::QueueStatus(engine.queue_status(principal, &device_id).await?)
            }
            OperationRequest::PartialSync(mut partial) => {
                if partial.network_quality.is_none() {
                    partial.network_quality = network_quality;
                }
                OperationOutput::PartialSync(engine.partial_sync(principal, partial).await?)
            }
            OperationRequest::OptimalTime { device_id } => {
                OperationOutput::OptimalTime(engine.optimal_time(principal, device_id.as_deref()).await?)
            }
            OperationRequest::Policies => OperationOutput::Policies(engine.policies(principal).await?),
            OperationRequest::SetPolicy { domain, update } => {
                OperationOutput::Policy(engine.set_policy(principal, &domain, update).await?)
            }
            OperationRequest::Conflicts { status, limit } => {
                require_admin(principal)?;
                let limit = limit.unwrap_or(DEFAULT_CONFLICT_LIMIT);
                if !(1..=MAX_CONFLICT_LIMIT).contains(&limit) {
                    return Err(ApiError::bad_request(
                        "invalid_limit",
                        format!("limit must be between 1 and {MAX_CONFLICT_LIMIT}"),
                    ));
                }
                OperationOutput::Conflicts(engine.conflicts(principal, status.as_deref(), limit).await?)
            }
            OperationRequest::ResolveConflict { id, request } => {
                OperationOutput::Resolved(engine.resolve_conflict(principal, &id, request).await?)
            }
            OperationRequest::Dashboard => {
                OperationOutput::Dashboard(Box::new(engine.dashboard(principal).await?))
            }
            OperationRequest::CreateSnapshot { time_window_hours } => {
                require_admin(principal)?;
                sync_domain::engine::check_snapshot_window(time_window_hours)?;
                OperationOutput::SnapshotCreated(engine.snapshot_for(principal, time_window_hours).await?)
            }
            OperationRequest::DeviceHealth { device_id } => {
                OperationOutput::DeviceHealth(engine.device_health(principal, &device_id).await?)
            }
            other => self.dispatch_insight(principal, other).await?,
        })
    }

    /// Section 12's admin operations: the role first, then the parameters, so that a device
    /// learns nothing from a 400.
    async fn dispatch_insight(
        &self,
        principal: &Principal,
        request: OperationRequest,
    ) -> Result<OperationOutput> {
        require_admin(principal)?;
        let engine = &self.engine;
        Ok(match request {
            OperationRequest::Anomalies { since, limit } => {
                let limit = insight_limit(limit, DEFAULT_INSIGHT_LIMIT)?;
                // An empty `since` is not a time: 400, like any other that is not.
                let since = since
                    .map(|s| {
                        time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                            .map_err(|_| {
                                ApiError::bad_request("invalid_since", "since must be an RFC 3339 time")
                            })
                    })
                    .transpose()?;
                OperationOutput::Anomalies(engine.anomalies(principal, since, limit).await?)
            }
            OperationRequest::ConflictRisk { domain, limit } => {
                let limit = insight_limit(limit, DEFAULT_RISK_LIMIT)?;
                let domain = domain.filter(|d| !d.is_empty());
                OperationOutput::ConflictRisk(
                    engine.conflict_risk(principal, domain.as_deref(), limit).await?,
                )
            }
            OperationRequest::PutWebhook { name, request } => {
                OperationOutput::Webhook(engine.put_webhook(principal, &name, request).await?)
            }
            OperationRequest::Webhooks => OperationOutput::Webhooks(engine.webhooks(principal).await?),
            OperationRequest::Webhook { name } => {
                OperationOutput::Webhook(engine.webhook(principal, &name).await?)
            }
            OperationRequest::DeleteWebhook { name } => {
                engine.delete_webhook(principal, &name).await?;
                OperationOutput::Deleted
            }
            OperationRequest::WebhookDeliveries { name, limit } => {
                let limit = insight_limit(limit, DEFAULT_INSIGHT_LIMIT)?;
                OperationOutput::Deliveries(engine.webhook_deliveries(principal, &name, limit).await?)
            }
            other => {
                return Err(ApiError::Internal(format!("{} is not an insight operation", other.name())));
            }
        })
    }
}

/// A list's `limit`: `default` when absent, else 1 to [`MAX_INSIGHT_LIMIT`] (400).
fn insight_limit(limit: Option<i64>, default: i64) -> Result<i64> {
    let limit = limit.unwrap_or(default);
    if (1..=MAX_INSIGHT_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_INSIGHT_LIMIT}"),
        ))
    }
}

/// The first field of a request whose text contains a NUL character, which PostgreSQL cannot
/// store in text: refused here, on every transport and backend alike, instead of failing in the
/// database.
fn nul_in(request: &OperationRequest) -> Option<&'static str> {
    fn text(s: &str) -> bool {
        s.contains('\0')
    }
    fn json(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => text(s),
            serde_json::Value::Array(items) => items.iter().any(json),
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| text(k) || json(v)),
            _ => false,
        }
    }
    let opt = |s: &Option<String>| s.as_deref().is_some_and(text);
    match request {
        OperationRequest::Push(push) => {
            if text(&push.device_id) {
                return Some("device_id");
            }
            push.changes
                .iter()
                .any(|c| {
                    text(&c.domain)
                        || opt(&c.bu)
                        || c.data.as_ref().is_some_and(json)
                        || c.patch.as_ref().is_some_and(json)
                })
                .then_some("changes")
        }
        OperationRequest::Pull(pull) => (opt(&pull.cursor)
            || opt(&pull.device_id)
            || opt(&pull.network_quality)
            || pull.domains.iter().flatten().any(|d| text(d)))
        .then_some("query"),
        OperationRequest::QueueStatus { device_id } | OperationRequest::DeviceHealth { device_id } => {
            text(device_id).then_some("device_id")
        }
        OperationRequest::PartialSync(p) => {
            (text(&p.device_id) || opt(&p.network_quality)).then_some("device_id")
        }
        OperationRequest::SetPolicy { domain, .. } => text(domain).then_some("domain"),
        OperationRequest::Conflicts { status, .. } => opt(status).then_some("status"),
        OperationRequest::ResolveConflict { id, request } => {
            (text(id) || request.data.as_ref().is_some_and(json)).then_some("id")
        }
        OperationRequest::OptimalTime { device_id } => opt(device_id).then_some("device_id"),
        OperationRequest::Anomalies { since, .. } => opt(since).then_some("since"),
        OperationRequest::ConflictRisk { domain, .. } => opt(domain).then_some("domain"),
        OperationRequest::PutWebhook { name, request } => {
            (text(name) || text(&request.url) || text(&request.secret)).then_some("webhook")
        }
        OperationRequest::Webhook { name }
        | OperationRequest::DeleteWebhook { name }
        | OperationRequest::WebhookDeliveries { name, .. } => text(name).then_some("name"),
        OperationRequest::Webhooks
        | OperationRequest::Policies
        | OperationRequest::Dashboard
        | OperationRequest::CreateSnapshot { .. } => None,
    }
}

/// The engine checks roles too; this runs first where the API validates parameters of an
/// admin-only operation, so that a device learns nothing from a 400.
fn require_admin(principal: &Principal) -> Result<()> {
    if principal.role == sync_domain::store::Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("this needs the admin role".into()))
    }
}

/// The kind of device sync a request is, for analytics (push, pull, partial).
fn sync_kind(request: &OperationRequest) -> Option<SyncEventKind> {
    match request {
        OperationRequest::Push(_) => Some(SyncEventKind::Push),
        OperationRequest::Pull(_) => Some(SyncEventKind::Pull),
        OperationRequest::PartialSync(_) => Some(SyncEventKind::Partial),
        _ => None,
    }
}

/// The `domain` label of a request: its one domain, or `all`/`mixed`.
fn metrics_domain(request: &OperationRequest) -> String {
    match request {
        OperationRequest::Push(push) => {
            let mut domains = push.changes.iter().map(|c| c.domain.as_str());
            match domains.next() {
                Some(first) if domains.all(|d| d == first) => first.to_owned(),
                Some(_) => "mixed".to_owned(),
                None => "all".to_owned(),
            }
        }
        OperationRequest::Pull(pull) => match pull.domains.as_deref() {
            Some([one]) => one.clone(),
            _ => "all".to_owned(),
        },
        _ => "all".to_owned(),
    }
}

#[derive(serde::Deserialize)]
struct PushCounts {
    results: Vec<ResultCounts>,
}

#[derive(serde::Deserialize)]
struct ResultCounts {
    #[serde(default)]
    conflict: Option<IgnoredAny>,
}

/// Items, conflicts and bytes of an operation's output, and its domain where the output
/// says it better than the request. A push's bytes are its request's as they arrived
/// (`body`), a pull's its response's as sent.
fn usage_of(output: &OperationOutput, body: Option<WireBytes>) -> (Usage, Option<String>) {
    match output {
        OperationOutput::Push(reply) => {
            let wire = body.unwrap_or_default();
            let (items, conflicts) = serde_json::from_str::<PushCounts>(&reply.body)
                .map(|c| {
                    (c.results.len() as u64, c.results.iter().filter(|r| r.conflict.is_some()).count() as u64)
                })
                .unwrap_or((0, 0));
            (Usage { items, conflicts, bytes_raw: wire.raw, bytes_sent: wire.sent }, None)
        }
        OperationOutput::Pull(reply) => {
            let sent = reply.body.len() as u64;
            let raw = reply.json_len as u64;
            (Usage { items: reply.changes as u64, conflicts: 0, bytes_raw: raw, bytes_sent: sent }, None)
        }
        OperationOutput::PartialSync(response) => {
            (Usage { items: response.synced_items.len() as u64, ..Usage::default() }, None)
        }
        OperationOutput::Resolved(response) => {
            (Usage { items: 1, ..Usage::default() }, Some(response.record.domain.clone()))
        }
        _ => (Usage::default(), None),
    }
}

/// The body encoding a caller negotiated: gzip by the protocol's rules when it accepts gzip.
/// The engine's pull asks it, so that the pull's sync event counts the bytes really sent.
struct Negotiated<'a> {
    api: &'a SyncApi,
    accept_gzip: bool,
}

impl BodyEncoding for Negotiated<'_> {
    fn encode(&self, json: Vec<u8>) -> sync_domain::Result<(Vec<u8>, Option<&'static str>)> {
        let body = self
            .api
            .encode_bytes(json, self.accept_gzip)
            .map_err(|e| sync_domain::Error::Internal(format!("encoding a pull: {e}")))?;
        Ok((body.bytes, body.content_encoding))
    }
}
