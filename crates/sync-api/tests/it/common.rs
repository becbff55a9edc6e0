//! A test server in memory: a fresh database, tokens for each role, and request helpers.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use sync_api::{ApiOptions, LimitsConfig, SyncApi};
use sync_domain::domains::DomainRegistry;
use sync_domain::store::{self, Role};
use sync_domain::testing::TestDb;
use sync_domain::{Backend, Database, SyncConfig, SyncEngine};
use tower::ServiceExt;

pub const JWT_SECRET: &str = "test-secret";

pub struct TestApp {
    pub db: TestDb,
    pub api: SyncApi,
    pub router: Router,
    /// Device user `u1` of tenant `acme`.
    pub device: String,
    /// Another device user `u2` of tenant `acme`.
    pub device2: String,
    /// Admin of `acme`.
    pub admin: String,
    /// Admin of tenant `other`.
    pub other_admin: String,
    /// Device of tenant `other`.
    pub other_device: String,
}

pub fn token(db: &Database, tenant: &str, user: &str, role: Role) -> String {
    db.write_tx_sync(|conn| {
        store::create_token(conn, tenant, user, role, None, None, sync_domain::micros::now())
    })
    .unwrap()
}

/// A stored token of a user limited to `units`.
pub fn scoped_token(db: &Database, tenant: &str, user: &str, role: Role, units: &[&str]) -> String {
    let units: Vec<String> = units.iter().map(|u| (*u).to_owned()).collect();
    db.write_tx_sync(|conn| {
        store::create_token(conn, tenant, user, role, Some(&units), None, sync_domain::micros::now())
    })
    .unwrap()
}

/// An HS256 JWT of `claims` signed with `secret`.
pub fn jwt(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

impl TestApp {
    pub fn new() -> TestApp {
        Self::with_config(SyncConfig::default())
    }

    pub fn with_config(config: SyncConfig) -> TestApp {
        Self::on(TestDb::sqlite(), config)
    }

    pub fn on_backend(backend: Backend) -> Option<TestApp> {
        TestDb::new(backend).map(|db| Self::on(db, SyncConfig::default()))
    }

    /// Without rate limits: tests that are not about them make requests as fast as they can.
    pub fn on(db: TestDb, config: SyncConfig) -> TestApp {
        Self::with_options(
            db,
            config,
            ApiOptions { limits: LimitsConfig::unlimited(), ..ApiOptions::default() },
        )
    }

    pub fn with_options(db: TestDb, config: SyncConfig, options: ApiOptions) -> TestApp {
        let database = db.database().clone();
        let engine = SyncEngine::new(database.clone(), config, DomainRegistry::builtin());
        let api = SyncApi::new(engine, ApiOptions { jwt_secret: Some(JWT_SECRET.into()), ..options });
        let router = sync_api::router(api.clone());
        TestApp {
            device: token(&database, "acme", "u1", Role::Device),
            device2: token(&database, "acme", "u2", Role::Device),
            admin: token(&database, "acme", "boss", Role::Admin),
            other_admin: token(&database, "other", "boss", Role::Admin),
            other_device: token(&database, "other", "x1", Role::Device),
            db,
            api,
            router,
        }
    }

    pub fn req(&self) -> Req<'_> {
        Req { app: self, method: Method::GET, path: String::new(), headers: Vec::new(), body: Vec::new() }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.req().path(path).bearer(token).send().await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.req().method(Method::POST).path(path).bearer(token).json(&body).send().await
    }

    pub async fn push(&self, token: &str, key: &str, body: Value) -> Resp {
        self.req()
            .method(Method::POST)
            .path("/api/v1/sync/push")
            .bearer(token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
    }

    /// Runs a GraphQL document, with the definitions of the fragments it spreads.
    pub async fn graphql(&self, token: &str, query: &str, variables: Value) -> Resp {
        self.post("/graphql", token, json!({"query": gql_doc(query), "variables": variables})).await
    }

    /// Every record of tenant `acme` as the admin pulls them (for "nothing was stored").
    pub async fn stored(&self) -> Vec<Value> {
        let r = self.get("/api/v1/sync/pull?limit=1000", &self.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["changes"].as_array().unwrap().clone()
    }
}

pub struct Req<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req<'_> {
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn json(self, body: &Value) -> Self {
        self.raw(serde_json::to_vec(body).unwrap())
    }
    pub fn raw(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
    /// Sends the request and returns the response with its body unread (for streams).
    pub async fn open(self) -> axum::response::Response {
        let mut builder = Request::builder().method(self.method).uri(self.path);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Body::from(self.body)).unwrap();
        self.app.router.clone().oneshot(request).await.unwrap()
    }
    pub async fn send(self) -> Resp {
        let response = self.open().await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
        Resp { status, headers, body }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as text, gunzipped when it was sent gzip-encoded.
    pub fn decoded_text(&self) -> String {
        if self.headers.get("content-encoding").is_some_and(|v| v == "gzip") {
            String::from_utf8_lossy(&gunzip(&self.body)).into_owned()
        } else {
            self.text()
        }
    }
    pub fn json(&self) -> Value {
        let bytes = if self.headers.get("content-encoding").is_some_and(|v| v == "gzip") {
            gunzip(&self.body)
        } else {
            self.body.clone()
        };
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// Asserts the protocol's error body and returns its code.
    pub fn error_code(&self) -> String {
        let body = self.json();
        let error = body.get("error").unwrap_or_else(|| panic!("no error body: {body}"));
        assert!(error["message"].is_string(), "{body}");
        assert!(error.get("details").is_some(), "{body}");
        error["code"].as_str().unwrap().to_owned()
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

pub fn uuid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A push body of tasks `ids` (new records, status ASSIGNED).
pub fn task_push(device: &str, ids: &[u32], title: &str) -> Value {
    let changes: Vec<Value> = ids
        .iter()
        .map(|&n| {
            json!({"domain": "task", "mobile_id": uuid(n), "base_version": 0, "op": "upsert",
                   "data": {"title": title, "status": "ASSIGNED"}, "modified_at": "2026-11-22T09:58:00Z"})
        })
        .collect();
    json!({"device_id": device, "client_time": "2026-11-22T10:00:05Z", "changes": changes})
}

/// GraphQL fragments selecting every field of the protocol's result types, so that a result
/// can be compared with the REST body (see [`without_nulls`]).
const FRAGMENTS: &[(&str, &str)] = &[
    (
        "Record",
        "fragment Record on RecordEnvelope { domain mobile_id version deleted data base_version patch \
         modified_at server_modified_at modified_by_device priority bu conflict_risk }",
    ),
    (
        "Push",
        "fragment Push on PushResponse { results { mobile_id domain outcome version record { ...Record } \
         conflict { id strategy winner details } error { code message } } cursor }",
    ),
    ("Pull", "fragment Pull on PullResponse { changes { ...Record } cursor has_more remaining }"),
    ("Partial", "fragment Partial on PartialSyncResponse { synced_items { ...Record } remaining }"),
    (
        "Queue",
        "fragment Queue on QueueStatus { pending_items high_priority estimated_sync_time_sec queue_healthy }",
    ),
    (
        "Optimal",
        "fragment Optimal on OptimalTime { recommendation server_load queue_size is_peak_hour \
         next_window { start end } confidence basis }",
    ),
    (
        "Health",
        "fragment Health on DeviceHealthView { device_id user_id health_score total_syncs failed_syncs_count \
         avg_sync_duration_ms conflicts_encountered last_sync_at network_type clock_skew_ms }",
    ),
    (
        "Snapshot",
        "fragment Snapshot on SnapshotView { snapshot_id timestamp time_window_hours total_sync_requests \
         successful_syncs failed_syncs avg_sync_duration_ms p95_sync_duration_ms total_conflicts \
         auto_resolved_conflicts manual_conflicts conflict_rate_pct success_rate_pct total_bytes_synced \
         bytes_saved bandwidth_efficiency_pct unique_devices unique_users domain_breakdown }",
    ),
    (
        "Dashboard",
        "fragment Dashboard on Dashboard { latest_snapshot { ...Snapshot } trend_7days { ...Snapshot } \
         unhealthy_devices { ...Health } conflict_hotspots { domain conflict_count } \
         alerts { id snapshot_id rule severity value threshold message created_at } }",
    ),
    (
        "Policy",
        "fragment Policy on PolicyView { domain policy configured_policy auto_resolve notify_on_conflict source }",
    ),
    (
        "Conflict",
        "fragment Conflict on ConflictView { id domain mobile_id server_version client_base_version \
         client_version strategy result winner status details device_id user_id created_at client_state \
         server_state resolved_at resolved_by }",
    ),
    ("Resolved", "fragment Resolved on ResolveResponse { conflict_id status version record { ...Record } }"),
    ("Created", "fragment Created on SnapshotCreated { snapshot_id status timestamp }"),
];

/// `document` with the definitions of the fragments it spreads (`...Push`), and of theirs.
pub fn gql_doc(document: &str) -> String {
    let mut out = document.to_owned();
    loop {
        let missing: Vec<&str> = FRAGMENTS
            .iter()
            .filter(|(name, _)| spreads(&out, name))
            .filter(|(name, _)| !out.contains(&format!("fragment {name} on")))
            .map(|(_, definition)| *definition)
            .collect();
        if missing.is_empty() {
            return out;
        }
        for definition in missing {
            out.push('\n');
            out.push_str(definition);
        }
    }
}

/// Whether `document` spreads the fragment `name` (`...name` not followed by more of a name).
fn spreads(document: &str, name: &str) -> bool {
    let spread = format!("...{name}");
    document.match_indices(&spread).any(|(at, _)| {
        !document[at + spread.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// `value` without the members whose value is `null`, at every depth: a GraphQL result
/// selecting every field says `null` where the REST body leaves an optional field out.
pub fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}
