//! REST and GraphQL over one operation interface: same outcomes, same stored state, shared
//! idempotency.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sync_domain::Backend;

use crate::common::*;

pub const PUSH: &str =
    "mutation($key: String!, $input: PushRequest!) { push(idempotencyKey: $key, input: $input) { ...Push } }";

fn pushes() -> Vec<Value> {
    let ticket = |base: i64, title: &str, status: &str, level: i64, device: &str| {
        json!({"device_id": device, "changes": [{"domain": "ticket", "mobile_id": uuid(9), "base_version": base,
            "op": "upsert", "data": {"title": title, "status": status, "escalation_level": level},
            "modified_at": "2026-11-22T09:00:00Z"}]})
    };
    vec![
        task_push("d1", &[1, 2], "Check pump"),
        ticket(0, "Leak", "NEW", 0, "d1"),
        ticket(1, "Leak", "OPEN", 2, "d1"),
        // A stale edit: preserve_escalation merges.
        ticket(1, "Leak in hall", "OPEN", 1, "d2"),
        json!({"device_id": "d1", "changes": [{"domain": "task", "mobile_id": uuid(2), "base_version": 1,
            "op": "delete", "modified_at": "2026-11-22T09:30:00Z"}]}),
        json!({"device_id": "d1", "changes": [{"domain": "journal", "mobile_id": uuid(3), "base_version": 0,
            "op": "upsert", "data": {"title": ""}, "modified_at": "2026-11-22T09:30:00Z"}]}),
    ]
}

/// What a push result says, without ids and times that differ between two databases.
fn outcome(result: &Value) -> Value {
    json!({"outcome": result["outcome"], "version": result["version"], "winner": result["conflict"]["winner"],
           "data": result["record"]["data"], "error": result["error"]["code"]})
}

/// The stored state of `acme`, without server times.
async fn state(app: &TestApp) -> Vec<Value> {
    let mut records = app.stored().await;
    for r in &mut records {
        let obj = r.as_object_mut().unwrap();
        obj.remove("server_modified_at");
        obj.remove("modified_at");
    }
    records.sort_by_key(|r| r["mobile_id"].as_str().unwrap().to_owned());
    records
}

async fn same_pushes_same_database(backend: Backend) {
    let (Some(rest), Some(gql)) = (TestApp::on_backend(backend), TestApp::on_backend(backend)) else {
        return;
    };
    for (i, body) in pushes().into_iter().enumerate() {
        let token = if body["device_id"] == "d2" {
            (&rest.device2, &gql.device2)
        } else {
            (&rest.device, &gql.device)
        };
        let key = format!("push-{i}");
        let a = rest.push(token.0, &key, body.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let b = gql.graphql(token.1, PUSH, json!({"key": key, "input": body})).await;
        assert_eq!(b.status, StatusCode::OK);
        let b = b.json();
        assert!(b.get("errors").is_none(), "{b}");
        let (a, b) = (a.json(), b["data"]["push"].clone());
        let outcomes = |v: &Value| v["results"].as_array().unwrap().iter().map(outcome).collect::<Vec<_>>();
        assert_eq!(outcomes(&a), outcomes(&b), "push {i}");
    }
    assert_eq!(state(&rest).await, state(&gql).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_pushes_leave_identical_databases_sqlite() {
    same_pushes_same_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_pushes_leave_identical_databases_postgres() {
    same_pushes_same_database(Backend::Postgres).await;
}

#[tokio::test]
async fn an_idempotency_key_replays_across_transports() {
    let app = TestApp::new();
    let body = task_push("d1", &[1], "Check pump");
    let rest = app.push(&app.device, "shared", body.clone()).await;
    assert_eq!(rest.status, StatusCode::OK);
    let gql = app.graphql(&app.device, PUSH, json!({"key": "shared", "input": body})).await.json();
    assert_eq!(
        without_nulls(&gql["data"]["push"]),
        without_nulls(&rest.json()),
        "every field, as REST has it"
    );
    // And the other way round, with a different body: 422 on REST, code in the GraphQL error.
    let other = task_push("d1", &[5], "Other");
    let first = app.graphql(&app.device, PUSH, json!({"key": "gql-first", "input": other})).await.json();
    assert!(first.get("errors").is_none(), "{first}");
    let replay = app.push(&app.device, "gql-first", other.clone()).await;
    assert_eq!(without_nulls(&replay.json()), without_nulls(&first["data"]["push"]));
    let reused = app.push(&app.device, "shared", other.clone()).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reused = app.graphql(&app.device, PUSH, json!({"key": "gql-first", "input": body})).await.json();
    assert_eq!(reused["errors"][0]["extensions"]["code"], "idempotency_key_reused", "{reused}");
    assert_eq!(reused["errors"][0]["extensions"]["status"], 422);
}

#[tokio::test]
async fn every_operation_answers_on_graphql() {
    let app = TestApp::new();
    app.push(&app.device, "k", task_push("d1", &[1], "Check pump")).await;
    let device_queries = [
        ("{ pull(limit: 10) { ...Pull } }", "pull"),
        (r#"{ queueStatus(deviceId: "d1") { ...Queue } }"#, "queueStatus"),
        ("{ optimalTime { ...Optimal } }", "optimalTime"),
        (r#"{ deviceHealth(deviceId: "d1") { ...Health } }"#, "deviceHealth"),
        (
            r#"mutation { partialSync(input: {device_id: "d1", priority: high}) { ...Partial } }"#,
            "partialSync",
        ),
    ];
    for (query, field) in device_queries {
        let r = app.graphql(&app.device, query, json!({})).await.json();
        assert!(r.get("errors").is_none(), "{query}: {r}");
        assert!(!r["data"][field].is_null(), "{query}: {r}");
    }
    let rest_pull = app.get("/api/v1/sync/pull?limit=10", &app.device).await.json();
    let gql_pull = app.graphql(&app.device, "{ pull(limit: 10) { ...Pull } }", json!({})).await.json();
    assert_eq!(without_nulls(&gql_pull["data"]["pull"]), without_nulls(&rest_pull));
    // The same for what REST and GraphQL answer without side effects.
    for (path, query, field) in [
        (
            "/api/v1/sync/queue-status?device_id=d1",
            r#"{ queueStatus(deviceId: "d1") { ...Queue } }"#,
            "queueStatus",
        ),
        (
            "/api/sync/device-health/?device_id=d1",
            r#"{ deviceHealth(deviceId: "d1") { ...Health } }"#,
            "deviceHealth",
        ),
        ("/api/v1/sync/policies", "{ policies { ...Policy } }", "policies"),
    ] {
        let rest = app.get(path, &app.device).await.json();
        let gql = app.graphql(&app.device, query, json!({})).await.json();
        assert_eq!(without_nulls(&gql["data"][field]), without_nulls(&rest), "{query}");
    }

    let admin_queries = [
        ("{ dashboard { ...Dashboard } }", "dashboard"),
        ("{ policies { ...Policy } }", "policies"),
        (r#"{ conflicts(status: "pending") { ...Conflict } }"#, "conflicts"),
        (
            r#"mutation { setPolicy(domain: "task", input: {policy: client_wins}) { ...Policy } }"#,
            "setPolicy",
        ),
        ("mutation { createSnapshot(timeWindowHours: 2) { ...Created } }", "createSnapshot"),
    ];
    for (query, field) in admin_queries {
        let r = app.graphql(&app.admin, query, json!({})).await.json();
        assert!(r.get("errors").is_none(), "{query}: {r}");
        assert!(!r["data"][field].is_null(), "{query}: {r}");
        if field == "policies" {
            continue; // devices may read policies
        }
        // The same operation is refused for a device, with REST's status in the error.
        let denied = app.graphql(&app.device, query, json!({})).await.json();
        assert_eq!(denied["errors"][0]["extensions"]["status"], 403, "{query}: {denied}");
    }
    let r = app
        .graphql(
            &app.admin,
            r#"mutation { resolveConflict(id: "nope", input: {choose: client}) { ...Resolved } }"#,
            json!({}),
        )
        .await
        .json();
    assert_eq!(r["errors"][0]["extensions"]["code"], "not_found", "{r}");
    let r = app.graphql(&app.device, "{ nonsense }", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["errors"][0]["extensions"]["code"], "invalid_request");
    // An input GraphQL refuses for its type is a 400 too, with REST's code.
    for query in [
        r#"mutation { partialSync(input: {device_id: "d1", priority: urgent}) { remaining } }"#,
        r#"mutation { partialSync(input: {device_id: "d1", bogus: 1}) { remaining } }"#,
        r#"mutation { setPolicy(domain: "task", input: {policy: coin_flip}) { policy } }"#,
    ] {
        let r = app.graphql(&app.admin, query, json!({})).await.json();
        assert_eq!(r["errors"][0]["extensions"]["code"], "invalid_request", "{query}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["status"], 400, "{query}: {r}");
    }
    let r = app
        .req()
        .method(axum::http::Method::POST)
        .path("/graphql")
        .bearer(&app.device)
        .raw(b"{".to_vec())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// The type a field of an introspected object has, as `Name`, `[Name!]!`…
fn field_type(object: &Value, field: &str) -> String {
    fn name(t: &Value) -> String {
        match t["kind"].as_str() {
            Some("NON_NULL") => format!("{}!", name(&t["ofType"])),
            Some("LIST") => format!("[{}]", name(&t["ofType"])),
            _ => t["name"].as_str().unwrap().to_owned(),
        }
    }
    let fields = object["fields"].as_array().or(object["inputFields"].as_array()).unwrap();
    let found =
        fields.iter().find(|f| f["name"] == field).unwrap_or_else(|| panic!("no {field} in {object}"));
    name(&found["type"])
}

#[tokio::test]
async fn introspection_shows_typed_fields_named_as_the_json() {
    let app = TestApp::new();
    let query = "query($n: String!) { __type(name: $n) { kind fields { name type { ...T } } \
                 inputFields { name type { ...T } } enumValues { name } } } \
                 fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";
    let ty = |name: &'static str| {
        let app = &app;
        async move {
            let r = app.graphql(&app.device, query, json!({"n": name})).await.json();
            assert!(r.get("errors").is_none(), "{r}");
            r["data"]["__type"].clone()
        }
    };
    let queries = ty("QueryRoot").await;
    for (field, expected) in [
        ("pull", "PullResponse!"),
        ("queueStatus", "QueueStatus!"),
        ("optimalTime", "OptimalTime!"),
        ("deviceHealth", "DeviceHealthView!"),
        ("dashboard", "Dashboard!"),
        ("policies", "[PolicyView!]!"),
        ("conflicts", "[ConflictView!]!"),
    ] {
        assert_eq!(field_type(&queries, field), expected, "{field}");
    }
    let mutations = ty("MutationRoot").await;
    for (field, expected) in [
        ("push", "PushResponse!"),
        ("partialSync", "PartialSyncResponse!"),
        ("setPolicy", "PolicyView!"),
        ("resolveConflict", "ResolveResponse!"),
        ("createSnapshot", "SnapshotCreated!"),
    ] {
        assert_eq!(field_type(&mutations, field), expected, "{field}");
    }
    let conflict = ty("ConflictView").await;
    for (field, expected) in [
        ("strategy", "Policy!"),
        ("result", "Resolution!"),
        ("winner", "Winner!"),
        ("status", "ConflictStatus!"),
        ("details", "JSON!"),
        ("client_state", "JSON"),
    ] {
        assert_eq!(field_type(&conflict, field), expected, "ConflictView.{field}");
    }
    let change = ty("Change").await;
    assert_eq!((change["kind"].as_str(), field_type(&change, "op").as_str()), (Some("INPUT_OBJECT"), "Op!"));
    assert_eq!(field_type(&change, "data"), "JSON");
    // Enum values are the protocol's words.
    let words = |t: &Value| -> Vec<String> {
        t["enumValues"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_owned()).collect()
    };
    let policies: Vec<String> = sync_protocol::Policy::ALL.iter().map(|p| p.as_str().to_owned()).collect();
    assert_eq!(words(&ty("Policy").await), policies);
    assert_eq!(words(&ty("Winner").await), ["client", "server", "merged", "none"]);
    assert_eq!(
        words(&ty("Outcome").await),
        ["applied", "client_won", "server_won", "merged", "manual_required", "invalid"]
    );
    assert_eq!(words(&ty("Recommendation").await), ["sync_now", "sync_in_30min"]);
    assert_eq!(words(&ty("ServerLoad").await), ["low", "medium", "high"]);
    assert_eq!(words(&ty("Priority").await), ["low", "medium", "high"]);
    assert_eq!(words(&ty("AnomalySeverity").await), ["info", "warning", "critical"]);
    assert_eq!(words(&ty("PolicySource").await), ["default", "tenant"]);
    assert_eq!(words(&ty("WindowBasis").await), ["device_history", "fleet", "rule"]);
}
