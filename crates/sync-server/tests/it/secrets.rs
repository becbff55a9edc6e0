//! No secret reaches the server's log: bearer tokens (good, revoked and forged), the JWT
//! secret, webhook secrets and the database password, with everything logged down to `debug`,
//! across a run that authenticates, fails to, pushes, pulls, streams and configures a webhook.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sync_domain::testing::TestDb;

use crate::{Server, create_token, run};

const JWT_SECRET: &str = "jwt-secret-that-must-never-be-logged-7d1c";
const WEBHOOK_SECRET: &str = "webhook-secret-never-logged-93be";

async fn scenario(url: &str, db_password: Option<&str>) {
    let device = create_token(url, "acme", "u1", "device");
    let admin = create_token(url, "acme", "boss", "admin");
    let revoked = create_token(url, "acme", "gone", "device");
    let out = run(url, &["token", "revoke", "--tenant", "acme", "--user", "gone"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let forged = "sf_forged-token-that-must-never-be-logged";

    let server = Server::start(url, &[("SYNC_LOG", "debug"), ("SYNC_JWT_SECRET", JWT_SECRET)]);
    let http = reqwest::Client::new();
    let push = json!({"device_id": "d1", "changes": [{"domain": "task",
        "mobile_id": "00000000-0000-4000-8000-000000000001", "base_version": 0, "op": "upsert",
        "data": {"title": "Inspect", "status": "ASSIGNED"}, "modified_at": "2026-11-22T09:58:00Z"}]});
    let r = http
        .post(server.url("/api/v1/sync/push"))
        .bearer_auth(&device)
        .header("idempotency-key", "k1")
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for token in [revoked.as_str(), forged] {
        let r = http.get(server.url("/api/v1/sync/pull")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token}");
    }
    let r = http.get(server.url("/api/v1/sync/pull?device_id=d1")).bearer_auth(&device).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A stream authenticated by its query-less header, read until its first event.
    let mut stream = http
        .get(server.url("/api/v1/sync/stream"))
        .bearer_auth(&admin)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await.unwrap().unwrap();
    assert!(first.is_some());
    drop(stream);
    let webhook = json!({"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET, "events": ["alert"]});
    let r = http
        .put(server.url("/api/v1/sync/webhooks/ops"))
        .bearer_auth(&admin)
        .json(&webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let mut log = server.early_log.clone();
    let (status, rest) = server.terminate_with_log();
    log.extend(rest);
    assert!(status.success(), "{status:?}");
    // The log is not empty of what a leak would ride on: every request, at debug level.
    for path in ["uri=/api/v1/sync/push", "uri=/api/v1/sync/stream", "uri=/api/v1/sync/webhooks/ops"] {
        assert!(log.iter().any(|l| l.contains("DEBUG") && l.contains(path)), "{path} not logged: {log:?}");
    }
    let mut secrets =
        vec![device.as_str(), admin.as_str(), revoked.as_str(), forged, JWT_SECRET, WEBHOOK_SECRET];
    secrets.extend(db_password);
    for secret in secrets {
        let leaked: Vec<&String> = log.iter().filter(|line| line.contains(secret)).collect();
        assert!(leaked.is_empty(), "`{secret}` is in the log: {leaked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_logs_no_secret() {
    let db = TestDb::sqlite();
    scenario(db.url(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_logs_no_secret() {
    let Some(db) = TestDb::postgres() else { return };
    // Trust authentication ignores the password, so a URL can carry one to look for.
    let password = "db-password-never-logged-51f0";
    let url = db.url().replacen("postgres@", &format!("postgres:{password}@"), 1);
    assert_ne!(url, db.url(), "the test URL names user postgres");
    scenario(&url, Some(password)).await;
}
