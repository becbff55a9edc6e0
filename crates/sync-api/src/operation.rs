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
    ConflictView, Dashboard, DeviceHealthView, PolicyUpdate, PolicyView, PullReply, PushReply,
    ResolveRequest, ResolveResponse, SnapshotCreated,
};
use sync_domain::protocol::{
    OptimalTime, PartialSyncRequest, PartialSyncResponse, PullRequest, PushRequest, QueueStatus,
};
use sync_domain::store::Principal;
use sync_metrics::{Operation, Sample, SyncRecorder, Usage};
use tracing::Instrument;

use crate::auth::Authenticator;
use crate::error::{ApiError, Result};

/// Most conflicts one list request returns.
pub const MAX_CONFLICT_LIMIT: i64 = 500;
/// Conflicts listed when no `limit` is given.
pub const DEFAULT_CONFLICT_LIMIT: i64 = 100;
/// Longest snapshot window, in hours (a year).
pub const MAX_SNAPSHOT_WINDOW_HOURS: i64 = 24 * 366;

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
    OptimalTime,
    Policies,
    SetPolicy { domain: String, update: PolicyUpdate },
    Conflicts { status: Option<String>, limit: Option<i64> },
    ResolveConflict { id: String, request: ResolveRequest },
    Dashboard,
    CreateSnapshot { time_window_hours: i64 },
    DeviceHealth { device_id: String },
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
            OperationRequest::OptimalTime => "optimal_time",
            OperationRequest::Policies => "policies",
            OperationRequest::SetPolicy { .. } => "set_policy",
            OperationRequest::Conflicts { .. } => "conflicts",
            OperationRequest::ResolveConflict { .. } => "resolve_conflict",
            OperationRequest::Dashboard => "dashboard",
            OperationRequest::CreateSnapshot { .. } => "create_snapshot",
            OperationRequest::DeviceHealth { .. } => "device_health",
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
}

/// A JSON body ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBody {
    pub bytes: Vec<u8>,
    /// `Some("gzip")` when compressed.
    pub content_encoding: Option<&'static str>,
}

impl OperationOutput {
    /// The response as a JSON value (what GraphQL returns); push parses the engine's exact body.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        fn value<T: Serialize>(v: &T) -> Result<serde_json::Value> {
            serde_json::to_value(v).map_err(|e| ApiError::Internal(format!("serialising a response: {e}")))
        }
        match self {
            OperationOutput::Push(reply) => serde_json::from_str(&reply.body)
                .map_err(|e| ApiError::Internal(format!("stored push response is not JSON: {e}"))),
            OperationOutput::Pull(reply) => value(&reply.response),
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
}

/// The operation interface over one engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct SyncApi {
    engine: SyncEngine,
    auth: Authenticator,
    recorder: SyncRecorder,
    compression: Arc<CompressionConfig>,
    schema: crate::graphql::SyncSchema,
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
    pub fn new(engine: SyncEngine, options: ApiOptions) -> Self {
        let auth =
            Authenticator::new(engine.database().clone(), options.jwt_secret.as_deref().map(str::as_bytes));
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
            schema: crate::graphql::schema(),
        }
    }

    pub fn engine(&self) -> &SyncEngine {
        &self.engine
    }

    /// The GraphQL schema served at `/graphql`.
    pub fn graphql_schema(&self) -> &crate::graphql::SyncSchema {
        &self.schema
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
        let bytes = serde_json::to_vec(value)
            .map_err(|e| ApiError::Internal(format!("serialising a response: {e}")))?;
        self.encode_bytes(bytes, accept_gzip)
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
        metrics.set_tenant(&principal.tenant);
        if let Some(field) = nul_in(&request) {
            return Err(ApiError::BadRequest {
                code: "invalid_request",
                message: format!("{field}: text must not contain NUL characters"),
                details: Some(serde_json::json!({ "path": field })),
            });
        }
        let metrics_op = request.metrics_operation();
        let domain = metrics_domain(&request);
        let name = request.name();
        let span = tracing::debug_span!("operation", name, tenant = %principal.tenant, user = %principal.user, ?transport);
        let result = self
            .dispatch(&principal, idempotency_key, network_quality, accept_gzip, request)
            .instrument(span)
            .await;
        if let Some(operation) = metrics_op {
            let (success, usage, domain) = match &result {
                Ok(output) => {
                    let (usage, out_domain) = usage_of(output);
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
    ) -> Result<OperationOutput> {
        let engine = &self.engine;
        Ok(match request {
            OperationRequest::Push(push) => {
                let key = idempotency_key.ok_or_else(|| {
                    ApiError::bad_request("missing_idempotency_key", "push needs an Idempotency-Key header")
                })?;
                if push.changes.len() > engine.config().max_push_changes {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "a push may carry at most {} changes (got {})",
                        engine.config().max_push_changes,
                        push.changes.len()
                    )));
                }
                OperationOutput::Push(engine.push(principal, &key, push, network_quality.as_deref()).await?)
            }
            OperationRequest::Pull(mut pull) => {
                if pull.network_quality.is_none() {
                    pull.network_quality = network_quality;
                }
                OperationOutput::Pull(engine.pull(principal, pull, accept_gzip).await?)
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
            OperationRequest::OptimalTime => {
                OperationOutput::OptimalTime(engine.optimal_time(principal).await?)
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
                if !(1..=MAX_SNAPSHOT_WINDOW_HOURS).contains(&time_window_hours) {
                    return Err(ApiError::bad_request(
                        "invalid_time_window",
                        format!("time_window_hours must be between 1 and {MAX_SNAPSHOT_WINDOW_HOURS}"),
                    ));
                }
                OperationOutput::SnapshotCreated(engine.snapshot_for(principal, time_window_hours).await?)
            }
            OperationRequest::DeviceHealth { device_id } => {
                OperationOutput::DeviceHealth(engine.device_health(principal, &device_id).await?)
            }
        })
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
        OperationRequest::OptimalTime
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
/// says it better than the request.
fn usage_of(output: &OperationOutput) -> (Usage, Option<String>) {
    match output {
        OperationOutput::Push(reply) => {
            let bytes = reply.body.len() as u64;
            let (items, conflicts) = serde_json::from_str::<PushCounts>(&reply.body)
                .map(|c| {
                    (c.results.len() as u64, c.results.iter().filter(|r| r.conflict.is_some()).count() as u64)
                })
                .unwrap_or((0, 0));
            (Usage { items, conflicts, bytes_raw: bytes, bytes_sent: bytes }, None)
        }
        OperationOutput::Pull(reply) => {
            let sent = reply.body.len() as u64;
            let raw = if reply.content_encoding.is_some() {
                serde_json::to_vec(&reply.response).map(|v| v.len() as u64).unwrap_or(sent)
            } else {
                sent
            };
            (
                Usage {
                    items: reply.response.changes.len() as u64,
                    conflicts: 0,
                    bytes_raw: raw,
                    bytes_sent: sent,
                },
                None,
            )
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
