//! The GraphQL adapter (`POST /graphql`): the protocol's operations as queries and mutations
//! over the same operation interface as REST.
//!
//! Payloads and results are the protocol's JSON documents, carried as the `JSON` scalar: the
//! push result is the engine's stored response parsed as it is, so a push answers with the
//! same content on both transports and an idempotency key replays across them. The caller is
//! authenticated before the document is executed (401 without a valid token, as on REST);
//! an operation's own failures are GraphQL errors whose `extensions` carry the protocol's
//! `code` and the HTTP `status` REST would have answered with.

use async_graphql::{Context, EmptySubscription, ErrorExtensions, Json, Object, Schema};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sync_domain::protocol::{GraphqlRequest, PartialSyncRequest, PullRequest, PushRequest};

use crate::error::ApiError;
use crate::operation::{OperationRequest, SyncApi, SyncOperation, Transport};
use crate::rest::{self, Caller};

/// The GraphQL schema type.
pub type SyncSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest query accepted (the schema is flat; this only stops abuse).
const MAX_DEPTH: usize = 16;
/// Most fields per query.
const MAX_COMPLEXITY: usize = 256;

/// Builds the schema (no data attached: each request carries its caller).
pub fn schema() -> SyncSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, for documentation and the snapshot test.
pub fn sdl() -> String {
    schema().sdl()
}

/// Per-request context: the API, the caller and its headers.
struct RequestContext {
    api: SyncApi,
    caller: Caller,
}

/// The GraphQL error of an [`ApiError`]: its message, with `code`, `status` and `details`
/// in `extensions`.
fn gql_error(e: ApiError) -> async_graphql::Error {
    {
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
}

trait OrGql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> OrGql<T> for Result<T, ApiError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(gql_error)
    }
}

fn input<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::Internal(e.to_string()))?;
    rest::parse_json(&bytes)
}

/// Parses the input of a push or partial sync; a refused one is a failed sync of the device
/// it names, as on REST.
async fn sync_input<T: DeserializeOwned>(
    ctx: &Context<'_>,
    value: Value,
    kind: sync_domain::store::SyncEventKind,
) -> async_graphql::Result<T> {
    let device_id = value.get("device_id").and_then(Value::as_str).map(str::to_owned);
    match input(value) {
        Ok(parsed) => Ok(parsed),
        Err(refused) => {
            if let Ok(rc) = ctx.data::<RequestContext>() {
                let metrics = &rc.caller.metrics;
                if let Some(device_id) = device_id {
                    metrics.note_device(&device_id);
                }
                rc.api.record_refusal(metrics, kind, metrics.elapsed()).await;
            }
            Err(gql_error(refused))
        }
    }
}

async fn execute(
    ctx: &Context<'_>,
    request: OperationRequest,
    idempotency_key: Option<String>,
) -> async_graphql::Result<Json<Value>> {
    let rc = ctx.data::<RequestContext>()?;
    let caller = rc.caller.clone();
    let operation = SyncOperation {
        principal: caller.principal,
        idempotency_key: idempotency_key.or(caller.idempotency_key),
        network_quality: caller.network_quality,
        // The engine's pull body is not used here; the whole GraphQL response is encoded once.
        accept_gzip: false,
        transport: Transport::Graphql,
        request,
        metrics: caller.metrics,
    };
    let output = rc.api.execute(operation).await.gql()?;
    Ok(Json(output.to_json().gql()?))
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
    ) -> async_graphql::Result<Json<Value>> {
        if limit == Some(0) {
            return Err(gql_error(ApiError::bad_request("invalid_limit", "limit must be at least 1")));
        }
        let request = PullRequest {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit,
            domains,
            delta: delta.unwrap_or(false),
            device_id,
            network_quality,
        };
        execute(ctx, OperationRequest::Pull(request), None).await
    }

    /// The device's download queue.
    async fn queue_status(&self, ctx: &Context<'_>, device_id: String) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::QueueStatus { device_id }, None).await
    }

    /// Whether to sync now.
    async fn optimal_time(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::OptimalTime, None).await
    }

    /// A device's health (own device, or any device of the tenant for an admin).
    async fn device_health(
        &self,
        ctx: &Context<'_>,
        device_id: String,
    ) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::DeviceHealth { device_id }, None).await
    }

    /// The analytics dashboard (admin).
    async fn dashboard(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::Dashboard, None).await
    }

    /// The effective conflict policy of every domain.
    async fn policies(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::Policies, None).await
    }

    /// Logged conflicts, newest first (admin).
    async fn conflicts(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        limit: Option<i64>,
    ) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::Conflicts { status, limit }, None).await
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
        input: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let request: PushRequest = sync_input(ctx, input.0, sync_domain::store::SyncEventKind::Push).await?;
        execute(ctx, OperationRequest::Push(request), Some(idempotency_key)).await
    }

    /// The most urgent pending items, without moving the cursor.
    async fn partial_sync(
        &self,
        ctx: &Context<'_>,
        input: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let request: PartialSyncRequest =
            sync_input(ctx, input.0, sync_domain::store::SyncEventKind::Partial).await?;
        execute(ctx, OperationRequest::PartialSync(request), None).await
    }

    /// Overrides a domain's conflict policy (admin); `input` is the REST body.
    async fn set_policy(
        &self,
        ctx: &Context<'_>,
        domain: String,
        input: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let update = self::input(input.0).gql()?;
        execute(ctx, OperationRequest::SetPolicy { domain, update }, None).await
    }

    /// Resolves a manual conflict (admin); `input` is `{"choose": …, "data": …}`.
    async fn resolve_conflict(
        &self,
        ctx: &Context<'_>,
        id: String,
        input: Json<Value>,
    ) -> async_graphql::Result<Json<Value>> {
        let request = self::input(input.0).gql()?;
        execute(ctx, OperationRequest::ResolveConflict { id, request }, None).await
    }

    /// Creates an analytics snapshot of the last `time_window_hours` (admin).
    async fn create_snapshot(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1)] time_window_hours: i64,
    ) -> async_graphql::Result<Json<Value>> {
        execute(ctx, OperationRequest::CreateSnapshot { time_window_hours }, None).await
    }
}

/// `POST /graphql`: authenticates, reads the body by the REST rules (size, encoding), runs the
/// document.
pub(crate) async fn handler(State(api): State<SyncApi>, caller: Caller, request: Request) -> Response {
    match run(api, caller, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// The executable request of a GraphQL-over-HTTP body, read strictly as the OpenAPI document
/// states it (`query` required, `operationName`, `variables` and `extensions` optional or null,
/// nothing else).
fn graphql_request(body: GraphqlRequest) -> Result<async_graphql::Request, ApiError> {
    let mut gql = async_graphql::Request::new(body.query);
    if let Some(name) = body.operation_name {
        gql = gql.operation_name(name);
    }
    if let Some(variables) = body.variables {
        gql = gql.variables(async_graphql::Variables::from_json(Value::Object(variables)));
    }
    for (name, value) in body.extensions.unwrap_or_default() {
        let value = async_graphql::Value::from_json(value)
            .map_err(|e| ApiError::bad_request("invalid_request", format!("extensions.{name}: {e}")))?;
        gql.extensions.0.insert(name, value);
    }
    Ok(gql)
}

async fn run(api: SyncApi, caller: Caller, request: Request) -> Result<Response, ApiError> {
    let accept_gzip = caller.accept_gzip;
    let bytes = rest::read_body(&api, request).await?;
    let gql = graphql_request(rest::parse_json(&bytes)?)?;
    let schema = api.graphql_schema().clone();
    let gql = gql.data(RequestContext { api: api.clone(), caller });
    let response = schema.execute(gql).await;
    let body = api.encode_json(&response, accept_gzip)?;
    let mut http = (StatusCode::OK, body.bytes).into_response();
    http.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(encoding) = body.content_encoding {
        http.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    Ok(http)
}
