//! Token lifecycle on the command line (PROTOCOL.md section 10): `token create --expires-in`,
//! `token list`, `token revoke ID` and `token revoke --tenant T --user U`; revoked and expired
//! tokens are refused over HTTP (401), and a token's use shows in the list. Both backends.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sync_domain::testing::TestDb;

use crate::{Server, create_token, run};

fn create(url: &str, tenant: &str, user: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", "--tenant", tenant, "--user", user, "--role", "device"];
    args.extend_from_slice(extra);
    let out = run(url, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn list(url: &str) -> Vec<Value> {
    let out = run(url, &["token", "list", "--tenant", "acme", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

fn stdout(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn lifecycle(db: &TestDb) {
    let url = db.url();
    let expiring_created = Instant::now();
    let expiring = create(url, "acme", "carol", &["--expires-in", "1s"]);
    let alice1 = create(url, "acme", "alice", &[]);
    let alice2 = create(url, "acme", "alice", &["--expires-in", "30d"]);
    let admin = create_token(url, "acme", "boss", "admin");
    let stranger = create(url, "other", "alice", &[]);

    let server = Server::start(url, &[]);
    let http = reqwest::Client::new();
    let pull = |token: &str| {
        http.get(server.url("/api/v1/sync/pull?device_id=d1")).bearer_auth(token.to_owned()).send()
    };
    assert_eq!(pull(&alice1).await.unwrap().status(), StatusCode::OK);
    assert_eq!(pull(&admin).await.unwrap().status(), StatusCode::OK);

    // The list: every token of the tenant, never a token itself.
    let tokens = list(url);
    assert_eq!(tokens.len(), 4, "{tokens:?}");
    let text = stdout(url, &["token", "list", "--tenant", "acme"]);
    for secret in [&expiring, &alice1, &alice2, &admin, &stranger] {
        assert!(!text.contains(&secret[3..]), "{text}");
        assert!(!serde_json::to_string(&tokens).unwrap().contains(&secret[3..]));
    }
    let header = text.lines().next().unwrap();
    for column in ["ID", "USER", "ROLE", "UNITS", "CREATED", "EXPIRES", "LAST USED", "REVOKED"] {
        assert!(header.contains(column), "{header}");
    }
    assert_eq!(text.lines().count(), 5, "{text}");
    let users: Vec<&str> = tokens.iter().map(|t| t["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["carol", "alice", "alice", "boss"]);
    assert!(tokens[0]["expires_at"].is_string());
    assert!(tokens[1]["expires_at"].is_null());
    assert_eq!(tokens[3]["role"], "admin");
    assert!(tokens.iter().all(|t| t["revoked"] == false && t["revoked_at"].is_null()));
    // Used tokens show their last use; unused ones none.
    let used: Vec<bool> = tokens.iter().map(|t| t["last_used_at"].is_string()).collect();
    assert_eq!(used, [false, true, false, true]);

    // Revoke by id: at once refused.
    let admin_id = tokens[3]["id"].as_str().unwrap().to_owned();
    assert_eq!(stdout(url, &["token", "revoke", &admin_id]).trim(), "revoked");
    assert_eq!(stdout(url, &["token", "revoke", &admin_id]).trim(), "already revoked");
    let out = run(url, &["token", "revoke", "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(out.status.code(), Some(1));
    let r = pull(&admin).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");

    // Revoke every token of a user (of that tenant only).
    assert_eq!(
        stdout(url, &["token", "revoke", "--tenant", "acme", "--user", "alice"]).trim(),
        "revoked 2 token(s)"
    );
    assert_eq!(pull(&alice1).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(pull(&alice2).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(pull(&stranger).await.unwrap().status(), StatusCode::OK);
    let tokens = list(url);
    let revoked: Vec<bool> = tokens.iter().map(|t| t["revoked"].as_bool().unwrap()).collect();
    assert_eq!(revoked, [false, true, true, true]);
    assert!(tokens[1]["revoked_at"].is_string());
    assert!(
        stdout(url, &["token", "list", "--tenant", "acme"])
            .lines()
            .filter(|l| l.contains("alice"))
            .all(|l| !l.ends_with(" no"))
    );

    // Expired: refused once its lifetime has passed.
    let lifetime = Duration::from_millis(1_200);
    if let Some(left) = lifetime.checked_sub(expiring_created.elapsed()) {
        tokio::time::sleep(left).await;
    }
    assert_eq!(pull(&expiring).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(stdout(url, &["token", "list", "--tenant", "acme"]).contains("(expired)"));
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_token_lifecycle() {
    lifecycle(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_token_lifecycle() {
    let Some(db) = TestDb::postgres() else { return };
    lifecycle(&db).await;
}
