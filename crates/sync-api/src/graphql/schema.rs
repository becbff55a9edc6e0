//! The GraphQL schema: the protocol's operations as typed queries, mutations and a
//! subscription over the operation interface, with no HTTP in sight.
//!
//! Every object, input object and enum is sync-protocol's own wire type (its `graphql`
//! feature), named as the JSON is, so a result selecting every field reads as the REST body
//! (absent optional fields are `null`). Free-form JSON (record `data`, patches, `details`) is the
//! `JSON` scalar. A push answers with the engine's stored response parsed as it is, so an
//! idempotency key replays across transports. An operation's own failures are GraphQL errors
//! whose `extensions` carry the protocol's `code` and the HTTP `status` REST would have answered
//! with.

use std::sync::LazyLock;

use async_graphql::{Context, ErrorExtensions, Object, Schema, Subscription};
use futures_util::Stream;
use sync_domain::protocol::{
    ConflictView, Dashboard, DeviceHealthView, OptimalTime, PartialSyncRequest, PartialSyncResponse,
    PolicyUpdate, PolicyView, PullRequest, PullResponse, PushRequest, PushResponse, QueueStatus,
    ResolveRequest, ResolveResponse, SnapshotCreated,
};
use sync_domain::store::Principal;
use sync_live::{CloseReason, LiveEvent, Next, StreamRequest};

use crate::error::ApiError;
use crate::http::Caller;
use crate::operation::{OperationOutput, OperationRequest, SyncApi, Transport};

/// The GraphQL schema type.
pub type SyncSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted (the deepest type, a dashboard's snapshot, is 3 levels; this only
/// stops abuse).
const MAX_DEPTH: usize = 16;
/// Most fields per query.
const MAX_COMPLEXITY: usize = 256;

static SCHEMA: LazyLock<SyncSchema> = LazyLock::new(|| {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
});

/// The schema (no data attached: each request carries its caller). Built once per process;
/// clones share it.
pub fn schema() -> SyncSchema {
    SCHEMA.clone()
}

/// The schema in SDL: the checked-in `schema.graphql` and its snapshot test.
pub fn sdl() -> String {
    SCHEMA.sdl()
}

/// Per-request context of `POST /graphql`: the API and the authenticated caller.
pub(crate) struct RequestContext {
    pub(crate) api: SyncApi,
    pub(crate) caller: Caller,
}

/// The context of a subscription socket: the API and who opened it.
pub(crate) struct SubscriberContext {
    pub(crate) api: SyncApi,
    pub(crate) principal: Principal,
    /// The key its streams are counted under per token.
    pub(crate) token_key: String,
}

/// The GraphQL error of an [`ApiError`]: its message, with `code`, `status` and `details`
/// in `extensions`.
pub(crate) fn gql_error(e: ApiError) -> async_graphql::Error {
    let status = e.status().as_u16();
    let body = e.body();
    async_graphql::Error::new(body.error.message).extend_with(|_, ext| {
        ext.set("code", body.error.code.clone());
        ext.set("status", status);
        if !body.error.details.is_null()
            && let Ok(details) = async_graphql::Value::from_json(body.error.details.clone())
        {
            ext.set("details", details);
        }
    })
}

/// Runs `request` as the context's caller.
async fn execute(
    ctx: &Context<'_>,
    request: OperationRequest,
    idempotency_key: Option<String>,
) -> async_graphql::Result<OperationOutput> {
    let rc = ctx.data::<RequestContext>()?;
    let mut operation = rc.caller.clone().into_operation(Transport::Graphql, request);
    if idempotency_key.is_some() {
        operation.idempotency_key = idempotency_key;
    }
    // The engine's pull body is not used here; the whole GraphQL response is encoded once.
    operation.accept_gzip = false;
    rc.api.execute(operation).await.map_err(gql_error)
}

/// The error of an output that is not the operation's (a bug, never the caller's doing).
fn unexpected() -> async_graphql::Error {
    gql_error(ApiError::Internal("the operation answered with another operation's output".into()))
}

/// Takes the output of one variant, or fails with [`unexpected`].
macro_rules! output {
    ($output:expr, $variant:ident($value:ident) => $result:expr) => {
        match $output {
            OperationOutput::$variant($value) => Ok($result),
            _ => Err(unexpected()),
        }
    };
}

/// Queries.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Changes after `cursor` (PROTOCOL.md section 5).
    #[allow(clippy::too_many_arguments)]
    async fn pull(
        &self,
        ctx: &Context<'_>,
        cursor: Option<String>,
        limit: Option<u32>,
        domains: Option<Vec<String>>,
        delta: Option<bool>,
        device_id: Option<String>,
        network_quality: Option<String>,
        hints: Option<bool>,
    ) -> async_graphql::Result<PullResponse> {
        let request = PullRequest {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit,
            domains,
            delta: delta.unwrap_or(false),
            device_id,
            network_quality,
            hints: hints.unwrap_or(false),
        };
        let output = execute(ctx, OperationRequest::Pull(request), None).await?;
        output!(output, Pull(reply) => reply.response().map_err(|e| gql_error(ApiError::Engine(e)))?)
    }

    /// The device's download queue.
    async fn queue_status(&self, ctx: &Context<'_>, device_id: String) -> async_graphql::Result<QueueStatus> {
        let output = execute(ctx, OperationRequest::QueueStatus { device_id }, None).await?;
        output!(output, QueueStatus(status) => status)
    }

    /// Whether to sync now; with `deviceId`, also that device's next window (PROTOCOL.md
    /// section 12).
    async fn optimal_time(
        &self,
        ctx: &Context<'_>,
        device_id: Option<String>,
    ) -> async_graphql::Result<OptimalTime> {
        let output = execute(ctx, OperationRequest::OptimalTime { device_id }, None).await?;
        output!(output, OptimalTime(advice) => advice)
    }

    /// A device's health (own device, or any device of the tenant for an admin).
    async fn device_health(
        &self,
        ctx: &Context<'_>,
        device_id: String,
    ) -> async_graphql::Result<DeviceHealthView> {
        let output = execute(ctx, OperationRequest::DeviceHealth { device_id }, None).await?;
        output!(output, DeviceHealth(health) => health)
    }

    /// The analytics dashboard (admin).
    async fn dashboard(&self, ctx: &Context<'_>) -> async_graphql::Result<Dashboard> {
        let output = execute(ctx, OperationRequest::Dashboard, None).await?;
        output!(output, Dashboard(dashboard) => *dashboard)
    }

    /// The effective conflict policy of every domain.
    async fn policies(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PolicyView>> {
        let output = execute(ctx, OperationRequest::Policies, None).await?;
        output!(output, Policies(policies) => policies)
    }

    /// Logged conflicts, newest first (admin). `status`: `pending`, `resolved`, `auto` or `all`
    /// (the default); `limit` 1 to 500 (default 100).
    async fn conflicts(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        limit: Option<i64>,
    ) -> async_graphql::Result<Vec<ConflictView>> {
        let output = execute(ctx, OperationRequest::Conflicts { status, limit }, None).await?;
        output!(output, Conflicts(conflicts) => conflicts)
    }
}

/// Mutations.
#[derive(Debug, Clone, Copy, Default)]
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// A push (PROTOCOL.md section 3); `input` is the REST body. Shares idempotency with REST.
    async fn push(
        &self,
        ctx: &Context<'_>,
        idempotency_key: String,
        input: PushRequest,
    ) -> async_graphql::Result<PushResponse> {
        let output = execute(ctx, OperationRequest::Push(input), Some(idempotency_key)).await?;
        let reply = output!(output, Push(reply) => reply)?;
        serde_json::from_str(&reply.body)
            .map_err(|e| gql_error(ApiError::Json { what: "reading a stored push response", source: e }))
    }

    /// The most urgent pending items, without moving the cursor.
    async fn partial_sync(
        &self,
        ctx: &Context<'_>,
        input: PartialSyncRequest,
    ) -> async_graphql::Result<PartialSyncResponse> {
        let output = execute(ctx, OperationRequest::PartialSync(input), None).await?;
        output!(output, PartialSync(response) => response)
    }

    /// Overrides a domain's conflict policy (admin); `input` is the REST body.
    async fn set_policy(
        &self,
        ctx: &Context<'_>,
        domain: String,
        input: PolicyUpdate,
    ) -> async_graphql::Result<PolicyView> {
        let output = execute(ctx, OperationRequest::SetPolicy { domain, update: input }, None).await?;
        output!(output, Policy(policy) => policy)
    }

    /// Resolves a manual conflict (admin); `input` is the REST body.
    async fn resolve_conflict(
        &self,
        ctx: &Context<'_>,
        id: String,
        input: ResolveRequest,
    ) -> async_graphql::Result<ResolveResponse> {
        let output = execute(ctx, OperationRequest::ResolveConflict { id, request: input }, None).await?;
        output!(output, Resolved(response) => response)
    }

    /// Creates an analytics snapshot of the last `time_window_hours` (admin).
    async fn create_snapshot(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1)] time_window_hours: i64,
    ) -> async_graphql::Result<SnapshotCreated> {
        let output = execute(ctx, OperationRequest::CreateSnapshot { time_window_hours }, None).await?;
        output!(output, SnapshotCreated(created) => created)
    }
}

/// Subscriptions.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriptionRoot;

/// The GraphQL error that ends a subscription, with the protocol's code.
fn stream_error(code: &str, message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
}

#[Subscription]
impl SubscriptionRoot {
    /// The changes after `cursor` the caller may see, as pull responses (PROTOCOL.md section
    /// 11): the backlog in pages, then each batch as it commits. A cursor older than the purged
    /// history ends the subscription with the error `resync_required`; a server restart or a
    /// subscriber too slow to keep up ends it with `restarting` or `too_slow` (resubscribe
    /// with the last cursor).
    async fn changes(
        &self,
        ctx: &Context<'_>,
        cursor: Option<String>,
        domains: Option<Vec<String>>,
        delta: Option<bool>,
        device_id: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<PullResponse>> + use<>> {
        let sc = ctx.data::<SubscriberContext>()?;
        let request = StreamRequest {
            principal: sc.principal.clone(),
            cursor: cursor.filter(|c| !c.is_empty()),
            domains,
            delta: delta.unwrap_or(false),
            device_id,
            token_key: sc.token_key.clone(),
        };
        let subscription =
            sc.api.live().subscribe(request).map_err(|e| gql_error(crate::live::api_error(e)))?;
        Ok(futures_util::stream::unfold(Some(subscription), |state| async move {
            let mut subscription = state?;
            loop {
                let item = match subscription.next().await {
                    Next::Event(LiveEvent::Changes(reply)) => match reply.response() {
                        Ok(response) => return Some((Ok(response), Some(subscription))),
                        Err(e) => Err(gql_error(ApiError::Engine(e))),
                    },
                    // Admin events and heartbeats are the other transports' (the protocol
                    // pings keep this socket alive).
                    Next::Event(LiveEvent::Heartbeat | LiveEvent::Conflict(_) | LiveEvent::Alert(_)) => {
                        continue;
                    }
                    Next::Event(LiveEvent::ResyncRequired) => {
                        Err(gql_error(ApiError::Engine(sync_domain::Error::ResyncRequired)))
                    }
                    Next::Closed(CloseReason::Replaced) | Next::End => return None,
                    Next::Closed(reason) => {
                        let (code, message) = crate::live::close_reason_parts(&reason);
                        Err(stream_error(code, message))
                    }
                };
                return Some((item, None));
            }
        }))
    }
}
