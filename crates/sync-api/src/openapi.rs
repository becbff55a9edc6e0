//! The OpenAPI 3.1 document of every REST endpoint (`GET /api/openapi.json`), generated with
//! utoipa from the real wire types of `sync-protocol` (their `openapi` feature derives the
//! schemas, so a field, a constraint or a nullable that changes there changes here).
//!
//! What each endpoint answers is stated here: the route annotations below list the statuses
//! particular to each route, and [`CommonResponses`] adds those every authenticated route can
//! answer (400, 401, 429 and 503 with `Retry-After`). [`document_for`] then fills in what the
//! running server configures: the domain names a pull accepts and the limits.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder,
};
use utoipa::{Modify, OpenApi};

use crate::operation::SyncApi;

/// Routes, as utoipa reads them; documentation only, never called (the handlers themselves are
/// in the REST adapter, `rest.rs`).
#[allow(dead_code)]
mod routes {
    use sync_protocol::{
        AnomaliesQuery, AnomalyView, ConflictRisk, ConflictRiskQuery, DeliveriesQuery, DeliveryView,
        OptimalTimeQuery, WebhookRequest, WebhookView,
    };
    use sync_protocol::{
        ConflictView, ConflictsQuery, Dashboard, DeviceHealthView, DeviceQuery, ErrorBody, GraphqlRequest,
        Liveness, OptimalTime, PartialSyncRequest, PartialSyncResponse, PolicyUpdate, PolicyView, PullQuery,
        PullResponse, PushRequest, PushResponse, QueueStatus, Readiness, ResolveRequest, ResolveResponse,
        SnapshotCreated, SnapshotRequest,
    };

    #[utoipa::path(post, path = "/api/v1/sync/push", tag = "sync", operation_id = "push",
        params(
            ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = r"^[\x21-\x7E]+$",
                description = "1 to 255 visible ASCII characters; the same key with the same body replays the stored response"),
            ("X-Network-Quality" = Option<String>, Header, pattern = r"^[\t\x20-\x7E]*$",
                description = "`excellent`, `good`, `fair` or `poor` (anything else counts as unknown)"),
        ),
        request_body(content = PushRequest, description = "May be sent with `Content-Encoding: gzip`"),
        responses(
            (status = 200, description = "One result per change, in request order", body = PushResponse,
                headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored response of an earlier push with the same key"))),
            (status = 413, description = "More than `max_push_changes` changes, or a body over `max_body_bytes` (on the wire or decoded)", body = ErrorBody),
            (status = 415, description = "A `Content-Encoding` other than gzip or identity", body = ErrorBody),
            (status = 422, description = "`idempotency_key_reused`: the key was used with another body", body = ErrorBody),
        ))]
    pub fn push() {}

    #[utoipa::path(get, path = "/api/v1/sync/pull", tag = "sync", operation_id = "pull", params(PullQuery,
            ("X-Network-Quality" = Option<String>, Header, pattern = r"^[\t\x20-\x7E]*$",
                description = "Sets the default `limit`: excellent 100, good 50, fair 25, poor 10, else 50")),
        responses(
            (status = 200, body = PullResponse),
            (status = 410, description = "`resync_required`: the cursor is older than the retained history; pull again without one", body = ErrorBody),
        ))]
    pub fn pull() {}

    #[utoipa::path(get, path = "/api/v1/sync/queue-status", tag = "queue", operation_id = "queue_status",
        params(DeviceQuery),
        responses(
            (status = 200, body = QueueStatus),
            (status = 403, description = "A device token asking about another user's device", body = ErrorBody),
        ))]
    pub fn queue_status() {}

    #[utoipa::path(post, path = "/api/v1/sync/partial", tag = "queue", operation_id = "partial_sync",
        request_body = PartialSyncRequest,
        responses(
            (status = 200, body = PartialSyncResponse),
            (status = 403, description = "A device token asking about another user's device", body = ErrorBody),
            (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        ))]
    pub fn partial() {}

    #[utoipa::path(get, path = "/api/v1/sync/optimal-time", tag = "queue", operation_id = "optimal_time",
        params(OptimalTimeQuery),
        responses(
            (status = 200, body = OptimalTime),
            (status = 403, description = "A device token asking about another user's device", body = ErrorBody),
        ))]
    pub fn optimal_time() {}

    #[utoipa::path(get, path = "/api/v1/sync/anomalies", tag = "insight", operation_id = "anomalies",
        params(AnomaliesQuery),
        responses((status = 200, description = "Newest first", body = Vec<AnomalyView>), (status = 403, description = "Not an admin token", body = ErrorBody)))]
    pub fn anomalies() {}

    #[utoipa::path(get, path = "/api/v1/sync/conflict-risk", tag = "insight", operation_id = "conflict_risk",
        params(ConflictRiskQuery),
        responses((status = 200, body = ConflictRisk), (status = 403, description = "Not an admin token", body = ErrorBody),
            (status = 404, description = "A domain the server does not have", body = ErrorBody)))]
    pub fn conflict_risk() {}

    #[utoipa::path(get, path = "/api/v1/sync/webhooks", tag = "insight", operation_id = "webhooks",
        responses((status = 200, description = "By name; secrets are never shown", body = Vec<WebhookView>), (status = 403, description = "Not an admin token", body = ErrorBody)))]
    pub fn webhooks() {}

    #[utoipa::path(put, path = "/api/v1/sync/webhooks/{name}", tag = "insight", operation_id = "put_webhook",
        params(("name" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", description = "1 to 64 letters, digits, `_`, `.` or `-` (else 400)")),
        request_body = WebhookRequest,
        responses(
            (status = 200, description = "Created or replaced", body = WebhookView),
            (status = 403, description = "Not an admin token", body = ErrorBody),
            (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
            (status = 422, description = "`invalid_webhook_url` (not http or https, no host), `invalid_webhook_secret`, `invalid_webhook_events`", body = ErrorBody),
        ))]
    pub fn put_webhook() {}

    #[utoipa::path(get, path = "/api/v1/sync/webhooks/{name}", tag = "insight", operation_id = "webhook",
        params(("name" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", description = "The webhook's name")),
        responses(
            (status = 200, description = "Without its secret", body = WebhookView),
            (status = 403, description = "Not an admin token", body = ErrorBody),
            (status = 404, description = "No such webhook in the tenant", body = ErrorBody),
        ))]
    pub fn webhook() {}

    #[utoipa::path(delete, path = "/api/v1/sync/webhooks/{name}", tag = "insight", operation_id = "delete_webhook",
        params(("name" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", description = "The webhook's name")),
        responses(
            (status = 204, description = "Deleted, with its delivery log"),
            (status = 403, description = "Not an admin token", body = ErrorBody),
            (status = 404, description = "No such webhook in the tenant", body = ErrorBody),
        ))]
    pub fn delete_webhook() {}

    #[utoipa::path(get, path = "/api/v1/sync/webhooks/{name}/deliveries", tag = "insight", operation_id = "webhook_deliveries",
        params(("name" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", description = "The webhook's name"), DeliveriesQuery),
        responses(
            (status = 200, description = "Attempts, newest first", body = Vec<DeliveryView>),
            (status = 403, description = "Not an admin token", body = ErrorBody),
            (status = 404, description = "No such webhook in the tenant", body = ErrorBody),
        ))]
    pub fn webhook_deliveries() {}

    #[utoipa::path(get, path = "/api/v1/sync/policies", tag = "conflicts", operation_id = "policies",
        responses((status = 200, body = Vec<PolicyView>)))]
    pub fn policies() {}

    #[utoipa::path(put, path = "/api/v1/sync/policies/{domain}", tag = "conflicts", operation_id = "set_policy",
        params(("domain" = String, Path, pattern = r"^[^\u0000]*$", description = "A domain name, e.g. `ticket` (unknown: 404; no NUL characters)")),
        request_body = PolicyUpdate,
        responses(
            (status = 200, body = PolicyView),
            (status = 403, description = "Not an admin token", body = ErrorBody),
            (status = 404, description = "No such domain", body = ErrorBody),
            (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
            (status = 422, description = "`invalid_policy`: a combination the server refuses", body = ErrorBody),
        ))]
    pub fn set_policy() {}

    #[utoipa::path(get, path = "/api/v1/sync/conflicts", tag = "conflicts", operation_id = "conflicts",
        params(ConflictsQuery),
        responses((status = 200, body = Vec<ConflictView>), (status = 403, description = "Not an admin token", body = ErrorBody)))]
    pub fn conflicts() {}

    #[utoipa::path(post, path = "/api/v1/sync/conflicts/{id}/resolve", tag = "conflicts", operation_id = "resolve_conflict",
        params(("id" = String, Path, pattern = r"^[^\u0000]*$", description = "The conflict id (unknown: 404; no NUL characters)")),
        request_body = ResolveRequest,
        responses(
            (status = 200, body = ResolveResponse),
            (status = 403, description = "Not an admin token", body = ErrorBody),
            (status = 404, description = "No such conflict in the tenant", body = ErrorBody),
            (status = 409, description = "The conflict is no longer pending", body = ErrorBody),
            (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
            (status = 422, description = "The chosen state is not valid for the domain", body = ErrorBody),
        ))]
    pub fn resolve() {}

    #[utoipa::path(get, path = "/api/sync/dashboard/", tag = "analytics", operation_id = "dashboard",
        responses((status = 200, body = Dashboard), (status = 403, description = "Not an admin token", body = ErrorBody)))]
    pub fn dashboard() {}

    #[utoipa::path(post, path = "/api/sync/snapshot/create/", tag = "analytics", operation_id = "create_snapshot",
        request_body(content = Option<SnapshotRequest>, description = "May be empty (the defaults)"),
        responses(
            (status = 201, body = SnapshotCreated),
            (status = 403, description = "Not an admin token", body = ErrorBody),
            (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        ))]
    pub fn snapshot_create() {}

    #[utoipa::path(get, path = "/api/sync/device-health/", tag = "analytics", operation_id = "device_health",
        params(DeviceQuery),
        responses(
            (status = 200, body = DeviceHealthView),
            (status = 403, description = "A device token asking about another user's device", body = ErrorBody),
            (status = 404, description = "The device has never synced", body = ErrorBody),
        ))]
    pub fn device_health() {}

    #[utoipa::path(post, path = "/graphql", tag = "graphql", operation_id = "graphql",
        request_body(content = GraphqlRequest, description = "A GraphQL request"),
        responses(
            (status = 200, description = "A GraphQL response: `data` and/or `errors` (an operation's failure is an error whose `extensions` carry `code` and `status`)", body = Object),
            (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        ))]
    pub fn graphql() {}

    #[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz", security(()),
        responses((status = 200, description = "The process is up", body = Liveness)))]
    pub fn healthz() {}

    #[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz", security(()),
        responses(
            (status = 200, description = "The database answers and migrations are current", body = Readiness),
            (status = 503, description = "`migrations_pending` or `unavailable`", body = ErrorBody,
                headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        ))]
    pub fn readyz() {}

    #[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics", security(()),
        responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
    pub fn metrics() {}

    #[utoipa::path(get, path = "/api/openapi.json", tag = "operations", operation_id = "openapi", security(()),
        responses((status = 200, description = "This document", body = Object)))]
    pub fn openapi() {}
}

/// Paths without authentication (nothing common is added to them).
const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/api/openapi.json"];

/// The bearer scheme, and the responses every authenticated route can answer.
struct CommonResponses;

fn error_response(description: &str, retry_after: bool) -> RefOr<Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let mut response = ResponseBuilder::new().description(description).content("application/json", content);
    if retry_after {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).build();
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Schema::Object(seconds))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    RefOr::T(response.build())
}

fn add_common(operation: &mut Operation) {
    let common = [
        (
            "400",
            "Malformed request: invalid JSON, a wrong or unknown field, an invalid or unknown query parameter, an invalid header (`invalid_request`, `invalid_json`, `invalid_query`, `missing_idempotency_key`, …)",
            false,
        ),
        ("401", "No token, or one that is unknown, revoked or expired", false),
        (
            "429",
            "`rate_limited`: the token's request budget or the tenant's concurrent pushes are spent",
            true,
        ),
        ("503", "`unavailable`: the database cannot be reached", true),
    ];
    for (status, description, retry_after) in common {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description, retry_after));
    }
}

/// Any JSON value without a NUL character in a string or key: the server refuses NUL in
/// pushed `data` and `patch` and in a resolution's `data` (400), as PostgreSQL text cannot
/// hold it.
fn json_without_nul() -> Option<RefOr<Schema>> {
    use utoipa::openapi::schema::{AdditionalProperties, AnyOfBuilder};
    let reference = || RefOr::Ref(Ref::from_schema_name("JsonWithoutNul"));
    let text = ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL));
    let scalar = ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
        Type::Number,
        Type::Boolean,
        Type::Null,
    ]));
    let array = ArrayBuilder::new().items(reference());
    let object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL))))
        .additional_properties(Some(AdditionalProperties::RefOr(reference())));
    let any = AnyOfBuilder::new()
        .description(Some("Any JSON value whose strings and object keys contain no NUL character."))
        .item(text)
        .item(scalar)
        .item(array)
        .item(object);
    Some(RefOr::T(Schema::AnyOf(any.build())))
}

/// Text without a NUL character.
const NO_NUL: &str = r"^[^\u0000]*$";

/// Points the free JSON properties of the request types at [`json_without_nul`].
fn refuse_nul_in_json(components: &mut utoipa::openapi::Components) {
    let Some(schema) = json_without_nul() else { return };
    components.schemas.insert("JsonWithoutNul".to_owned(), schema);
    for (type_name, fields) in [("Change", &["data", "patch"][..]), ("ResolveRequest", &["data"][..])] {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(type_name) {
            for field in fields {
                if let Some(property) = object.properties.get_mut(*field) {
                    let description = match property {
                        RefOr::T(Schema::Object(o)) => o.description.clone(),
                        _ => None,
                    };
                    let mut reference = Ref::from_schema_name("JsonWithoutNul");
                    reference.description = description.unwrap_or_default();
                    *property = RefOr::Ref(reference);
                }
            }
        }
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut Document) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        refuse_nul_in_json(components);
        for (path, item) in openapi.paths.paths.iter_mut() {
            if PUBLIC_PATHS.contains(&path.as_str()) {
                continue;
            }
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
                .into_iter()
                .flatten()
            {
                add_common(operation);
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "syncforge sync protocol", version = "1.1",
        description = "PROTOCOL.md: offline-first sync for field-service apps. Generated from the wire types of the `sync-protocol` crate."),
    paths(
        routes::push, routes::pull, routes::queue_status, routes::partial, routes::optimal_time,
        routes::policies, routes::set_policy, routes::conflicts, routes::resolve,
        routes::dashboard, routes::snapshot_create, routes::device_health,
        routes::anomalies, routes::conflict_risk, routes::webhooks, routes::put_webhook, routes::webhook,
        routes::delete_webhook, routes::webhook_deliveries, routes::graphql,
        routes::healthz, routes::readyz, routes::metrics, routes::openapi,
    ),
    components(schemas(sync_protocol::ErrorBody)),
    modifiers(&CommonResponses),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The OpenAPI document with the protocol's default limits and no domain list.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The OpenAPI document as pretty JSON (the protocol's defaults, see [`document`]).
pub fn document_json() -> String {
    document().to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

/// What a running server configures that its document states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The domain names a pull's `domains` accepts.
    pub domains: Vec<String>,
    /// `max_push_changes`.
    pub max_push_changes: usize,
}

impl Settings {
    /// The settings of `api`'s engine.
    pub fn of(api: &SyncApi) -> Self {
        let engine = api.engine();
        Self {
            domains: engine.domains().names().map(str::to_owned).collect(),
            max_push_changes: engine.config().max_push_changes,
        }
    }
}

/// The document of a server with `settings`: the pull's `domains` items are the registry's
/// names, and a push's `changes` has the configured maximum.
pub fn document_with(settings: &Settings) -> Document {
    let mut doc = document();
    if let Some(pull) = doc.paths.paths.get_mut("/api/v1/sync/pull").and_then(|item| item.get.as_mut()) {
        for parameter in pull.parameters.iter_mut().flatten() {
            if parameter.name == "domains" {
                let names = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(settings.domains.iter().cloned()));
                parameter.schema = Some(RefOr::T(Schema::Array(ArrayBuilder::new().items(names).build())));
            }
        }
    }
    let push_request = doc.components.as_mut().and_then(|c| c.schemas.get_mut("PushRequest"));
    if let Some(RefOr::T(Schema::Object(push))) = push_request
        && let Some(RefOr::T(Schema::Array(changes))) = push.properties.get_mut("changes")
    {
        changes.max_items = Some(settings.max_push_changes);
    }
    if let Some(components) = doc.components.as_mut() {
        components.schemas.insert("ResolveRequest".to_owned(), RefOr::T(resolve_request_schema()));
    }
    doc
}

/// `ResolveRequest` as the server reads it: `data` (a JSON object) goes with `choose = custom`
/// and only with it, a rule of two fields that the derived schema cannot state.
fn resolve_request_schema() -> Schema {
    let choose = |values: &[&str]| {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied()))
    };
    let closed = || Some(AdditionalProperties::<Schema>::FreeForm(false));
    let chosen_state = ObjectBuilder::new()
        .property("choose", choose(&["client", "server"]))
        .property("data", ObjectBuilder::new().schema_type(Type::Null))
        .required("choose")
        .additional_properties(closed());
    let custom = ObjectBuilder::new()
        .property("choose", choose(&["custom"]))
        .property("data", ObjectBuilder::new().schema_type(Type::Object))
        .required("choose")
        .required("data")
        .additional_properties(closed());
    Schema::OneOf(
        OneOfBuilder::new()
            .item(chosen_state)
            .item(custom)
            .description(Some(
                "The state an admin chose: the client's, the server's, or `custom` with its `data`.",
            ))
            .build(),
    )
}

/// The document of `api`'s server as pretty JSON (what `GET /api/openapi.json` serves).
pub fn document_json_for(api: &SyncApi) -> String {
    document_with(&Settings::of(api)).to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}
