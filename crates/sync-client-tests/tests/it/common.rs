//! A server on a free local port, tokens, and clients on temporary account files.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_api::{ApiOptions, LimitsConfig, SyncApi};
use sync_client::{Client, NetworkQuality, Options, Remote, Store};
use sync_domain::domains::DomainRegistry;
use sync_domain::store::{self, Role};
use sync_domain::{Database, SyncConfig, SyncEngine};
use sync_model::{SyncMeta, SyncableModel};

/// A task as an app declares it: the meta is not part of the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, SyncableModel)]
#[sync(domain = "task", workflow = "task", critical_fields(status))]
pub struct Task {
    #[serde(skip)]
    #[sync(meta)]
    pub meta: SyncMeta,
    pub title: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Task {
    pub fn new(title: &str) -> Task {
        Task {
            meta: SyncMeta::new(uuid::Uuid::new_v4()),
            title: title.into(),
            status: "ASSIGNED".into(),
            description: None,
        }
    }
}

pub struct Server {
    pub url: String,
    pub db: Database,
    pub engine: SyncEngine,
}

impl Server {
    pub async fn start(db: Database) -> Server {
        Self::with(db, SyncConfig::default(), LimitsConfig::unlimited()).await
    }

    pub async fn with(db: Database, config: SyncConfig, limits: LimitsConfig) -> Server {
        let engine = SyncEngine::new(db.clone(), config, DomainRegistry::builtin());
        let api = SyncApi::new(engine.clone(), ApiOptions { limits, ..ApiOptions::default() });
        let router = sync_api::router(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Server { url, db, engine }
    }

    pub fn token(&self, user: &str, role: Role) -> String {
        self.db
            .write_tx_sync(|conn| {
                store::create_token(conn, "acme", user, role, None, None, sync_domain::micros::now())
            })
            .unwrap()
    }

    /// A device of user `user` with its own account file.
    pub fn device(&self, user: &str, device_id: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let token = self.token(user, Role::Device);
        let path = dir.path().join(format!("{device_id}.db"));
        let client = open(&self.url, &token, &path, device_id, Options::default());
        Device { client, _dir: dir, token, path, url: self.url.clone(), device_id: device_id.into() }
    }

    /// Every live record of the tenant as an admin pulls it: (domain, id) → (version, data).
    pub async fn stored(&self, admin: &str) -> Vec<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/sync/pull?limit=1000", self.url))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["changes"].as_array().unwrap().clone()
    }

    pub async fn admin_request(
        &self,
        admin: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Value {
        let response = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

pub fn open(url: &str, token: &str, path: &std::path::Path, device_id: &str, options: Options) -> Client {
    let store = Store::open(path, device_id).unwrap();
    let remote = Remote::new(url, token).unwrap();
    Client::new(store, remote, options).unwrap()
}

pub struct Device {
    pub client: Client,
    /// Kept for the file's lifetime.
    pub _dir: tempfile::TempDir,
    pub token: String,
    pub path: std::path::PathBuf,
    pub url: String,
    pub device_id: String,
}

impl Device {
    /// The same account file opened again, as after a crash and restart.
    pub fn restart(&mut self) {
        self.client = open(&self.url, &self.token, &self.path, &self.device_id, Options::default());
    }

    pub fn with_options(&mut self, options: Options) {
        self.client = open(&self.url, &self.token, &self.path, &self.device_id, options);
    }
}

pub fn quick_options() -> Options {
    Options {
        network_quality: NetworkQuality::Excellent,
        poll_interval: Duration::from_millis(200),
        ..Options::default()
    }
}
