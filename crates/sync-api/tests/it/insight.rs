//! Fleet insight (PROTOCOL.md section 12) through the REST API, on SQLite and PostgreSQL:
//! anomalies planted in the sync events and found by the job, the conflict-risk model trained
//! on a generated history, pull hints, optimal-time's window, and webhooks (CRUD, validation,
//! tenant isolation, and signed deliveries to a local receiver that fails once).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sync_domain::Backend;
use sync_domain::engine::AnomalyBaselines;
use sync_domain::store::{
    self, AlertRow, ConflictRow, ConflictStatus, Policy, RecordRow, Resolution, RiskScoreRow, SyncEventKind,
    SyncEventRow, VersionRow, Winner,
};
use sync_model::Priority;
use time::{Duration, OffsetDateTime};

use crate::common::*;

const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Runs `case` on a fresh app on each selected backend; returns how many ran.
async fn on_both<F, Fut>(case: F) -> usize
where
    F: Fn(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ran = 0;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if !sync_domain::testing::backend_selected(backend) {
            continue;
        }
        let Some(app) = TestApp::on_backend(backend) else { continue };
        case(app).await;
        ran += 1;
    }
    ran
}

fn sync_event(tenant: &str, at: i64, device: &str, success: bool, n: u64) -> SyncEventRow {
    SyncEventRow {
        tenant_id: tenant.into(),
        id: format!("{at:020}-{device}-{n}"),
        at,
        device_id: device.into(),
        user_id: "u1".into(),
        kind: if n.is_multiple_of(2) { SyncEventKind::Push } else { SyncEventKind::Pull },
        success,
        duration_ms: 120.0 + (n % 7) as f64 * 10.0,
        changes: 2,
        conflicts: 0,
        auto_resolved: 0,
        manual: 0,
        bytes_raw: 100,
        bytes_sent: 100,
        domains: r#"{"task":{"changes":2,"conflicts":0}}"#.into(),
    }
}

fn floor(t: i64, step: i64) -> i64 {
    t - t.rem_euclid(step)
}

/// Nine quiet days before today (two successful syncs every 5 minutes, devices d0 and d1),
/// then the last 15 minutes: 30 syncs per 5 minutes, two thirds of them failing.
fn plant_incident(app: &TestApp, now: OffsetDateTime) {
    let now_us = sync_domain::micros::from_datetime(now);
    let end = floor(now_us, 5 * MIN);
    let day = floor(end, DAY);
    let mut rows = Vec::new();
    let mut n = 0;
    let mut at = day - 9 * DAY;
    while at < day {
        for device in ["d0", "d1"] {
            n += 1;
            rows.push(sync_event("acme", at + MIN, device, true, n));
        }
        at += 5 * MIN;
    }
    let history = rows.len();
    for bucket in 1..=3 {
        let start = end - bucket * 5 * MIN;
        for i in 0..30 {
            n += 1;
            let device = ["d0", "d1", "d2"][i % 3];
            rows.push(sync_event("acme", start + 5_000_000 * (i as i64 % 50), device, i % 3 == 2, n));
        }
    }
    assert!(history > 5000 && rows.len() == history + 90);
    app.db
        .database()
        .write_tx_sync(move |conn| {
            for row in &rows {
                store::insert_sync_event(conn, row)?;
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_incident_becomes_an_anomaly_an_alert_and_a_window_plan() {
    let ran = on_both(|app| async move {
        let engine = app.api.engine().clone();
        let now = OffsetDateTime::now_utc();
        plant_incident(&app, now);
        let mut baselines = AnomalyBaselines::default();
        let run = engine.evaluate_anomalies(&mut baselines, now).await.unwrap();
        assert!(run.series >= 3, "{run:?}");
        let failure = run
            .raised
            .iter()
            .find(|a| {
                a.metric.as_str() == "failure_rate" && a.scope.device_id.is_none() && a.scope.domain.is_none()
            })
            .unwrap_or_else(|| panic!("no tenant failure-rate anomaly: {run:?}"));
        assert!(failure.observed > failure.band[1] && failure.observed > 0.5, "{failure:?}");
        assert!(failure.explanation.starts_with("failure rate"), "{}", failure.explanation);

        // The endpoint lists it, newest first; the dashboard has it as an alert.
        let r = app.get("/api/v1/sync/anomalies?limit=50", &app.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let listed = r.json();
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), run.raised.len());
        let found = listed.iter().find(|a| a["id"] == failure.id.as_str()).unwrap();
        for field in
            ["observed", "expected", "score", "window_start", "window_end", "explanation", "severity"]
        {
            assert!(!found[field].is_null(), "{field}: {found}");
        }
        assert_eq!(found["band"].as_array().unwrap().len(), 2);
        let dashboard = app.get("/api/sync/dashboard/", &app.admin).await.json();
        let alert =
            dashboard["alerts"].as_array().unwrap().iter().find(|a| a["id"] == failure.id.as_str()).unwrap();
        assert_eq!(alert["rule"], "anomaly_failure_rate");
        assert_eq!(alert["message"], failure.explanation.as_str());

        // The next run continues the same episodes instead of raising them again.
        let again = engine.evaluate_anomalies(&mut baselines, now).await.unwrap();
        assert!(again.raised.is_empty() && again.continued == run.raised.len(), "{again:?}");

        // Admin only, per tenant; bad parameters are 400.
        assert_eq!(app.get("/api/v1/sync/anomalies", &app.device).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/sync/anomalies", &app.other_admin).await.json(), json!([]));
        for bad in ["limit=0", "limit=501", "since=yesterday", "since=", "limit=x", "nope=1"] {
            let r = app.get(&format!("/api/v1/sync/anomalies?{bad}"), &app.admin).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
            r.error_code();
        }
        let future =
            (now + Duration::hours(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
        let r = app
            .get(&format!("/api/v1/sync/anomalies?since={}", future.replace('+', "%2B")), &app.admin)
            .await;
        assert_eq!(r.json(), json!([]));

        // The same history plans the devices' windows.
        assert_eq!(engine.plan_sync_windows("acme", now).await.unwrap(), 3);
        for (path, bases) in [
            ("/api/v1/sync/optimal-time?device_id=d0", &["device_history"][..]),
            ("/api/v1/sync/optimal-time", &["fleet"][..]),
        ] {
            let r = app.get(path, &app.admin).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let o = r.json();
            assert!(bases.contains(&o["basis"].as_str().unwrap()), "{path}: {o}");
            let confidence = o["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&confidence), "{o}");
            let start = OffsetDateTime::parse(
                o["next_window"]["start"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            let end = OffsetDateTime::parse(
                o["next_window"]["end"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert!(
                start >= now - Duration::seconds(5) && start < now + Duration::hours(24) && end > start,
                "{o}"
            );
            for field in ["recommendation", "server_load", "queue_size", "is_peak_hour"] {
                assert!(!o[field].is_null(), "section 6's {field} stays: {o}");
            }
        }
        // GraphQL's optimalTime takes the device too and gives the same basis and confidence
        // (a window that opens now starts at the moment of asking).
        let rest = app.get("/api/v1/sync/optimal-time?device_id=d0", &app.admin).await.json();
        let gql = app
            .graphql(&app.admin, r#"{ optimalTime(deviceId: "d0") { ...Optimal } }"#, json!({}))
            .await
            .json();
        let gql = &gql["data"]["optimalTime"];
        for field in ["basis", "confidence"] {
            assert_eq!(gql[field], rest[field], "{field}: {gql} against {rest}");
        }
        assert!(gql["next_window"]["start"].is_string(), "{gql}");
        // A tenant with no history gets the rule, with no confidence.
        let o = app.get("/api/v1/sync/optimal-time?device_id=x1", &app.other_device).await.json();
        assert_eq!((o["basis"].as_str(), o["confidence"].as_f64()), (Some("rule"), Some(0.0)), "{o}");
        let r = app.get("/api/v1/sync/optimal-time?device_id=", &app.admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    })
    .await;
    assert!(ran >= 1);
}

fn task_id(n: u32) -> String {
    uuid(n)
}

/// Nine days of history: 12 hot tasks edited by three devices every 2 hours with a conflict
/// every 6 hours, 48 cold ones edited once a day by one device, a few of which conflicted once.
/// Stored as the server stores it: each task's last version is its record, the earlier ones are
/// history.
fn plant_history(app: &TestApp, now: i64) {
    let mut versions = Vec::new();
    let mut records = Vec::new();
    let mut conflicts = Vec::new();
    let mut seq = 0;
    for n in 0..60u32 {
        let hot = n < 12;
        let step = if hot { 2 * HOUR } else { DAY };
        let mut at = now - 9 * DAY + i64::from(n) * 7 * MIN;
        let mut version = 0;
        while at < now {
            version += 1;
            seq += 1;
            let device = if hot { format!("d{}", version % 3) } else { format!("c{n}") };
            versions.push(VersionRow {
                tenant_id: "acme".into(),
                domain: "task".into(),
                mobile_id: task_id(n),
                version,
                data: "{}".into(),
                deleted: false,
                modified_at: at,
                server_modified_at: at,
                modified_by_device: device.clone(),
                seq,
                created_at: at,
                bu: None,
            });
            let conflicted =
                if hot { version % 3 == 0 } else { n % 8 == 0 && version == i64::from(n % 9) + 1 };
            if conflicted {
                conflicts.push(ConflictRow {
                    tenant_id: "acme".into(),
                    id: format!("c-{n}-{version}"),
                    domain: "task".into(),
                    mobile_id: task_id(n),
                    server_version: version,
                    client_base_version: version - 1,
                    client_version: Some(version + 1),
                    strategy: Policy::MostRecentWins,
                    result: Resolution::Resolved,
                    winner: Winner::Server,
                    details: "{}".into(),
                    device_id: device,
                    user_id: "u1".into(),
                    created_at: at + MIN,
                    status: ConflictStatus::Auto,
                    client_state: None,
                    server_state: None,
                    resolved_at: None,
                    resolved_by: None,
                });
            }
            at += step;
        }
        if let Some(last) = versions.pop() {
            records.push(RecordRow {
                tenant_id: last.tenant_id,
                domain: last.domain,
                mobile_id: last.mobile_id,
                version: last.version,
                data: last.data,
                deleted: last.deleted,
                modified_at: last.modified_at,
                server_modified_at: last.server_modified_at,
                modified_by_device: last.modified_by_device,
                bu: last.bu,
                priority: Priority::Medium,
                seq: last.seq,
            });
        }
    }
    app.db
        .database()
        .write_tx_sync(move |conn| {
            store::insert_versions(conn, &versions)?;
            store::upsert_records(conn, &records)?;
            store::insert_conflicts(conn, &conflicts)
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conflict_risk_model_trains_on_the_history_and_ranks_hot_records_first() {
    let ran = on_both(|app| async move {
        let engine = app.api.engine().clone();
        // Nothing trained yet: no model, no records.
        let r = app.get("/api/v1/sync/conflict-risk", &app.admin).await;
        assert_eq!(r.json(), json!({"model": null, "records": []}));

        let now = OffsetDateTime::now_utc();
        plant_history(&app, sync_domain::micros::from_datetime(now));
        let run = engine.train_conflict_risk("acme", now).await.unwrap();
        assert!(run.trained && run.examples > 200 && run.scored == 60, "{run:?}");

        let body = app.get("/api/v1/sync/conflict-risk?limit=60", &app.admin).await.json();
        let model = &body["model"];
        assert!(model["examples"].as_i64().unwrap() > 200, "{model}");
        let auc = model["holdout_auc"].as_f64().unwrap();
        assert!(auc > 0.8, "holdout AUC {auc}: {model}");
        assert!(model["trained_at"].is_string() && model["baseline_auc"].is_number(), "{model}");
        let records = body["records"].as_array().unwrap();
        assert_eq!(records.len(), 60);
        let risks: Vec<f64> = records.iter().map(|r| r["risk"].as_f64().unwrap()).collect();
        assert!(risks.iter().all(|r| (0.0..=1.0).contains(r)), "{risks:?}");
        assert!(risks.windows(2).all(|w| w[0] >= w[1]), "highest first: {risks:?}");
        let hot: Vec<String> = (0..12).map(task_id).collect();
        let top: Vec<&str> = records[..12].iter().map(|r| r["mobile_id"].as_str().unwrap()).collect();
        assert!(top.iter().all(|id| hot.iter().any(|h| h == id)), "the hot records lead: {top:?}");
        assert!(!records[0]["reasons"].as_array().unwrap().is_empty());

        // Filters and refusals.
        let r = app.get("/api/v1/sync/conflict-risk?domain=ticket", &app.admin).await.json();
        assert_eq!(r["records"], json!([]));
        assert_eq!(
            app.get("/api/v1/sync/conflict-risk?limit=3", &app.admin).await.json()["records"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        for bad in ["limit=0", "limit=501", "limit=-1", "x=1"] {
            let r = app.get(&format!("/api/v1/sync/conflict-risk?{bad}"), &app.admin).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        }
        // A domain the server does not have: nothing of that name (404), not a malformed query.
        let r = app.get("/api/v1/sync/conflict-risk?domain=nope", &app.admin).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
        assert_eq!(app.get("/api/v1/sync/conflict-risk", &app.device).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            app.get("/api/v1/sync/conflict-risk", &app.other_admin).await.json(),
            json!({"model": null, "records": []})
        );
    })
    .await;
    assert!(ran >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_hints_mark_records_at_or_above_the_threshold_only_when_asked() {
    let ran = on_both(|app| async move {
        assert_eq!(
            app.push(&app.device, "k1", task_push("p1", &[1, 2, 3], "t")).await.status,
            StatusCode::OK
        );
        let now = sync_domain::micros::now();
        let score = |n: u32, risk: f64| RiskScoreRow {
            tenant_id: "acme".into(),
            domain: "task".into(),
            mobile_id: uuid(n),
            risk,
            reasons: "[]".into(),
            scored_at: now,
        };
        let rows = vec![score(1, 0.9), score(2, 0.3), score(3, 0.5)];
        app.db.database().write_tx_sync(move |conn| store::replace_risk_scores(conn, "acme", &rows)).unwrap();

        let risk_of = |body: &Value| -> Vec<Option<f64>> {
            body["changes"].as_array().unwrap().iter().map(|c| c["conflict_risk"].as_f64()).collect()
        };
        let hinted = app.get("/api/v1/sync/pull?hints=true", &app.device2).await;
        assert_eq!(hinted.status, StatusCode::OK, "{}", hinted.text());
        assert_eq!(risk_of(&hinted.json()), [Some(0.9), None, Some(0.5)]);
        // GraphQL's pull takes the same argument and gives the same records.
        let gql = app.graphql(&app.device2, "{ pull(hints: true) { ...Pull } }", json!({})).await.json();
        assert_eq!(without_nulls(&gql["data"]["pull"]["changes"]), hinted.json()["changes"], "{gql}");
        for plain in ["/api/v1/sync/pull", "/api/v1/sync/pull?hints=false"] {
            let body = app.get(plain, &app.device2).await.json();
            assert_eq!(risk_of(&body), [None, None, None], "{plain}");
            assert!(body["changes"][0].get("conflict_risk").is_none());
        }
        // Another tenant's scores never leak.
        let r = app.get("/api/v1/sync/pull?hints=true", &app.other_device).await.json();
        assert_eq!(r["changes"], json!([]));
        assert_eq!(
            app.get("/api/v1/sync/pull?hints=maybe", &app.device).await.status,
            StatusCode::BAD_REQUEST
        );
    })
    .await;
    assert!(ran >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_admin_only_validated_tenant_isolated_and_never_show_their_secret() {
    let ran = on_both(|app| async move {
        let put = |token: String, name: &str, body: Value| {
            let path = format!("/api/v1/sync/webhooks/{name}");
            let app = &app;
            async move { app.req().method(Method::PUT).path(&path).bearer(&token).json(&body).send().await }
        };
        let good = json!({"url": "https://ops.example.com/hooks/sync", "secret": "a-long-enough-secret",
                          "events": ["alert", "anomaly"]});
        let r = put(app.admin.clone(), "ops", good.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["events"], json!(["alert", "anomaly"]));
        assert!(!r.text().contains("a-long-enough-secret"));
        let replaced = json!({"url": "http://10.0.0.5:8080/x", "secret": "another-long-secret", "events": ["conflict"]});
        assert_eq!(put(app.admin.clone(), "ops", replaced).await.json()["url"], "http://10.0.0.5:8080/x");

        for path in ["/api/v1/sync/webhooks", "/api/v1/sync/webhooks/ops"] {
            let r = app.get(path, &app.admin).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
            assert!(!r.text().contains("secret"), "{path}: {}", r.text());
        }
        assert_eq!(app.get("/api/v1/sync/webhooks", &app.admin).await.json().as_array().unwrap().len(), 1);

        // Validation: 422 for a wrong URL, secret or events; 400 for malformed input.
        for (body, status) in [
            (json!({"url": "ftp://x.example.com/", "secret": "a-long-enough-secret", "events": ["alert"]}), 422),
            (json!({"url": "not a url", "secret": "a-long-enough-secret", "events": ["alert"]}), 422),
            (json!({"url": "file:///etc/passwd", "secret": "a-long-enough-secret", "events": ["alert"]}), 422),
            (json!({"url": "https://x.example.com/", "secret": "short", "events": ["alert"]}), 422),
            (json!({"url": "https://x.example.com/", "secret": "a-long-enough-secret", "events": []}), 422),
            (json!({"url": "https://x.example.com/", "secret": "a-long-enough-secret", "events": ["nope"]}), 400),
            (json!({"url": "https://x.example.com/", "secret": "a-long-enough-secret"}), 400),
            (json!({"url": "https://x.example.com/", "secret": "a-long-enough-secret", "events": ["alert"], "x": 1}), 400),
        ] {
            let r = put(app.admin.clone(), "bad", body.clone()).await;
            assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text());
            r.error_code();
        }
        for name in ["has%20space", &"x".repeat(65), "a%00b"] {
            let r = put(app.admin.clone(), name, good.clone()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text());
        }
        assert_eq!(app.get("/api/v1/sync/webhooks/bad", &app.admin).await.status, StatusCode::NOT_FOUND);
        // Events are a set: a repeated one is taken once.
        let twice = json!({"url": "https://x.example.com/", "secret": "a-long-enough-secret", "events": ["conflict", "alert", "conflict"]});
        let r = put(app.admin.clone(), "twice", twice).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(app.get("/api/v1/sync/webhooks/twice", &app.admin).await.json()["events"], json!(["alert", "conflict"]));
        let r = app.req().method(Method::DELETE).path("/api/v1/sync/webhooks/twice").bearer(&app.admin).send().await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);

        // Admin only; another tenant sees nothing of it.
        assert_eq!(put(app.device.clone(), "mine", good.clone()).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/sync/webhooks", &app.device).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/sync/webhooks", &app.other_admin).await.json(), json!([]));
        for path in ["/api/v1/sync/webhooks/ops", "/api/v1/sync/webhooks/ops/deliveries"] {
            assert_eq!(app.get(path, &app.other_admin).await.status, StatusCode::NOT_FOUND, "{path}");
        }
        let delete = |token: String| {
            let app = &app;
            async move { app.req().method(Method::DELETE).path("/api/v1/sync/webhooks/ops").bearer(&token).send().await }
        };
        assert_eq!(delete(app.other_admin.clone()).await.status, StatusCode::NOT_FOUND);
        assert_eq!(delete(app.device.clone()).await.status, StatusCode::FORBIDDEN);
        let r = delete(app.admin.clone()).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(r.body.is_empty());
        assert_eq!(delete(app.admin.clone()).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/v1/sync/webhooks/ops", &app.admin).await.status, StatusCode::NOT_FOUND);
    })
    .await;
    assert!(ran >= 1);
}

/// What the local receiver saw: the signature header and the body of each POST.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A receiver on a free local port that answers 500 to its first POST and 200 after.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let state = (seen.clone(), calls);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            |axum::extract::State((seen, calls)): axum::extract::State<(Seen, Arc<AtomicUsize>)>,
             headers: axum::http::HeaderMap,
             body: axum::body::Bytes| async move {
                let signature = headers
                    .get("x-syncforge-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                seen.lock().unwrap().push((signature, body.to_vec()));
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app.with_state(state)).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivery_is_signed_retried_after_a_500_and_logged() {
    let ran = on_both(|app| async move {
        let engine = app.api.engine().clone();
        let (url, seen) = receiver().await;
        let secret = "receiver-shared-secret";
        let body = json!({"url": url, "secret": secret, "events": ["alert"]});
        let r = app
            .req()
            .method(Method::PUT)
            .path("/api/v1/sync/webhooks/ops")
            .bearer(&app.admin)
            .json(&body)
            .send()
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());

        let alert_id = "0190-test-alert";
        let now = sync_domain::micros::now();
        app.db
            .database()
            .write_tx_sync(move |conn| {
                store::insert_alert(
                    conn,
                    &AlertRow {
                        tenant_id: "acme".into(),
                        id: alert_id.into(),
                        snapshot_id: None,
                        rule: "success_rate_below".into(),
                        severity: "warning".into(),
                        value: 80.0,
                        threshold: 90.0,
                        message: "success rate 80 % is below 90 %".into(),
                        created_at: now,
                    },
                )
            })
            .unwrap();

        let client = sync_api::webhooks::client().unwrap();
        let first = sync_api::webhooks::deliver_due(&engine, &client).await.unwrap();
        assert_eq!((first.attempted, first.retrying, first.delivered), (1, 1, 0), "{first:?}");
        // Nothing is queued twice, and the retry is not due yet.
        assert_eq!(sync_api::webhooks::deliver_due(&engine, &client).await.unwrap().attempted, 0);

        // 30 seconds later the retry is due; the receiver now answers 200.
        let later = OffsetDateTime::now_utc() + Duration::seconds(31);
        let due = engine.due_webhook_deliveries(later, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].attempt, 2);
        let result = sync_api::webhooks::attempt(&client, &due[0]).await;
        assert_eq!(result.status, Some(200));
        let state = engine.record_webhook_attempt(&due[0], &result, later).await.unwrap();
        assert_eq!(state, sync_protocol::DeliveryState::Delivered);

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        for (signature, body) in &seen {
            assert!(sync_api::webhooks::verify(secret, body, signature), "{signature}");
            assert!(!sync_api::webhooks::verify("another-secret-entirely", body, signature));
        }
        assert_eq!(seen[0].1, seen[1].1, "every attempt sends the same bytes");
        let sent: Value = serde_json::from_slice(&seen[0].1).unwrap();
        assert_eq!((sent["event"].as_str(), sent["tenant"].as_str()), (Some("alert"), Some("acme")));
        assert_eq!(sent["data"]["id"], alert_id);
        assert_eq!(sent["data"]["rule"], "success_rate_below");

        let log = app.get("/api/v1/sync/webhooks/ops/deliveries", &app.admin).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.text());
        let log = log.json();
        let log = log.as_array().unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(
            (log[0]["attempt"].as_i64(), log[0]["state"].as_str(), log[0]["status_code"].as_i64()),
            (Some(2), Some("delivered"), Some(200))
        );
        assert_eq!(
            (log[1]["attempt"].as_i64(), log[1]["state"].as_str(), log[1]["status_code"].as_i64()),
            (Some(1), Some("retrying"), Some(500))
        );
        assert!(log[1]["next_retry_at"].is_string() && log[1]["error"].is_string(), "{:?}", log[1]);
        assert!(log.iter().all(|d| d["event_id"] == alert_id && d["event"] == "alert"));
        assert_eq!(
            app.get("/api/v1/sync/webhooks/ops/deliveries?limit=1", &app.admin)
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            app.get("/api/v1/sync/webhooks/ops/deliveries?limit=0", &app.admin).await.status,
            StatusCode::BAD_REQUEST
        );
    })
    .await;
    assert!(ran >= 1);
}
