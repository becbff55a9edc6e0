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

    pub async fn graphql(&self, token: &str, query: &str, variables: Value) -> Resp {
        self.post("/graphql", token, json!({"query": query, "variables": variables})).await
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
