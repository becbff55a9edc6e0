//! The operator console's page and its admin endpoints through `Router::oneshot`.

use axum::http::StatusCode;

use crate::common::*;

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let app = TestApp::new();
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let r = app.req().path(path).send().await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.headers["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert_eq!(r.headers["x-frame-options"], "DENY");
    }
    let page = app.req().path("/console").send().await.text();
    // No inline script or style, nothing from another origin.
    assert!(page.contains(r#"<script src="/console/console.js" defer></script>"#));
    assert_eq!(page.matches("<script").count(), 1);
    assert!(!page.contains("style=") && !page.contains("<style") && !page.contains("http"), "{page}");
    let r = app.req().path("/console/").send().await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers["location"], "/console");
}

#[tokio::test]
async fn activity_counts_pushes_for_admins_only() {
    let app = TestApp::new();
    let r = app.push(&app.device, "k1", task_push("d1", &[1, 2], "Check pump")).await;
    assert_eq!(r.status, StatusCode::OK);
    app.push(&app.device2, "k1", task_push("d2", &[3], "Check valve")).await;
    app.push(&app.other_device, "k1", task_push("x1", &[1], "Elsewhere")).await;

    let r = app.get("/api/v1/sync/activity?minutes=30", &app.admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let a = r.json();
    assert_eq!(a["minutes"], 30);
    assert_eq!(a["buckets"].as_array().unwrap().len(), 30);
    assert_eq!(a["active_devices_15m"], 2);
    assert_eq!(a["summary"]["syncs"], 2);
    assert_eq!(a["summary"]["changes"], 3);
    assert_eq!(a["summary"]["success_rate_pct"], 100.0);
    let total: u64 = a["buckets"].as_array().unwrap().iter().map(|b| b["syncs"].as_u64().unwrap()).sum();
    assert_eq!(total, 2);
    let default = app.get("/api/v1/sync/activity", &app.admin).await.json();
    assert_eq!(default["minutes"], 60);

    for bad in ["minutes=0", "minutes=1441", "minutes=x", "minutes=5&x=1"] {
        let r = app.get(&format!("/api/v1/sync/activity?{bad}"), &app.admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(app.get("/api/v1/sync/activity", &app.device).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/sync/activity", "nope").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn devices_and_their_syncs() {
    let app = TestApp::new();
    app.push(&app.device, "k1", task_push("d1", &[1], "Check pump")).await;
    app.push(&app.device, "k2", task_push("d1", &[2], "Check pump")).await;
    app.push(&app.other_device, "k1", task_push("x1", &[1], "Elsewhere")).await;

    let list = app.get("/api/v1/sync/devices", &app.admin).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let list = list.json();
    assert_eq!(list["health_threshold"], 70.0);
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "no other tenant's device: {list}");
    assert_eq!((devices[0]["device_id"].as_str(), devices[0]["total_syncs"].as_i64()), (Some("d1"), Some(2)));

    let syncs = app.get("/api/v1/sync/devices/d1/syncs?limit=1", &app.admin).await.json();
    assert_eq!(syncs["device_id"], "d1");
    assert_eq!(syncs["syncs"].as_array().unwrap().len(), 1);
    assert_eq!(syncs["syncs"][0]["kind"], "push");
    let other = app.get("/api/v1/sync/devices/x1/syncs", &app.admin).await.json();
    assert!(other["syncs"].as_array().unwrap().is_empty());

    assert_eq!(app.get("/api/v1/sync/devices?limit=0", &app.admin).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/api/v1/sync/devices/d1/syncs?limit=999", &app.admin).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.get("/api/v1/sync/devices", &app.device).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/sync/devices/d1/syncs", &app.device).await.status, StatusCode::FORBIDDEN);
}
