//! The operator console in a real browser: the server binary on a temp SQLite database with a
//! seeded fleet, Debian's headless Chromium driven over WebDriver (chromedriver). Sign-in with
//! a wrong, a device and an admin token; the page's figures against the API's; a push made
//! during the test appearing without a reload; a manual conflict resolved by clicking; no
//! script errors. Screenshots of each panel go to `target/console-screenshots/`.
//!
//! Skips (with a message) where `chromium` or `chromedriver` is missing, except under
//! `CI=true`, where that is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_domain::testing::TestDb;

use crate::{Server, create_token};

/// How long the page may take to show what a test waits for (polling is every 5 s).
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib/chromium")])
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Chromium and chromedriver, or `None` (after saying why) where this machine lacks them.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find_program(&["chromedriver"]);
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            let message = "console browser tests need `chromium` and `chromedriver` \
                           (Debian: apt-get install -y chromium chromium-driver)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{message}; they are required under CI=true"
            );
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A chromedriver process on a free port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(program: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
                && r.status().is_success()
            {
                return driver;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn open_browser(driver: &Driver, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,768", "--lang=en-US", "--no-first-run"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Runs `script` (a function body returning a value) until it returns something other than
/// `null`/`false`, and returns that.
async fn wait_js(client: &Client, what: &str, script: &str) -> Value {
    let started = Instant::now();
    loop {
        let value = client.execute(script, vec![]).await.unwrap();
        if !(value.is_null() || value == Value::Bool(false)) {
            return value;
        }
        assert!(started.elapsed() < PAGE_TIMEOUT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

async fn click(client: &Client, css: &str) {
    client.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

async fn sign_in(client: &Client, token: &str) {
    let input = client.find(Locator::Id("token-input")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(token).await.unwrap();
    click(client, "#signin-button").await;
}

fn uuid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn change(domain: &str, n: u32, base: i64, data: Value) -> Value {
    json!({"domain": domain, "mobile_id": uuid(n), "base_version": base, "op": "upsert",
           "data": data, "modified_at": "2026-12-01T09:58:00Z"})
}

struct Api {
    http: reqwest::Client,
    base: String,
    admin: String,
}

impl Api {
    async fn push(&self, token: &str, key: &str, device: &str, changes: Vec<Value>) -> Value {
        let r = self
            .http
            .post(format!("{}/api/v1/sync/push", self.base))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&json!({"device_id": device, "changes": changes}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.admin).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }
}

/// A small fleet: three devices, an auto-resolved and a manual conflict, a pull, a snapshot.
async fn seed(api: &Api, ann: &str, bob: &str, cid: &str) {
    let r = api
        .http
        .put(format!("{}/api/v1/sync/policies/journal", api.base))
        .bearer_auth(&api.admin)
        .json(&json!({"policy": "manual", "auto_resolve": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let task = |title: &str| json!({"title": title, "status": "ASSIGNED"});
    api.push(ann, "a1", "d-ann", (1..=3).map(|n| change("task", n, 0, task(&format!("Pump {n}")))).collect())
        .await;
    api.push(bob, "b1", "d-bob", vec![change("task", 1, 1, task("Pump 1 by Bob"))]).await;
    let auto = api.push(ann, "a2", "d-ann", vec![change("task", 1, 1, task("Pump 1 by Ann"))]).await;
    assert!(auto["results"][0]["conflict"].is_object(), "{auto}");
    api.push(
        ann,
        "a3",
        "d-ann",
        vec![change("journal", 10, 0, json!({"title": "Shift log", "notes": "calm"}))],
    )
    .await;
    api.push(
        ann,
        "a4",
        "d-ann",
        vec![change("journal", 10, 1, json!({"title": "Shift log", "notes": "busy"}))],
    )
    .await;
    let manual = api
        .push(
            bob,
            "b2",
            "d-bob",
            vec![change("journal", 10, 1, json!({"title": "Shift log", "notes": "quiet"}))],
        )
        .await;
    assert_eq!(manual["results"][0]["outcome"], "manual_required", "{manual}");
    let r = api
        .http
        .get(format!("{}/api/v1/sync/pull?device_id=d-cid", api.base))
        .bearer_auth(cid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = api
        .http
        .post(format!("{}/api/sync/snapshot/create/", api.base))
        .bearer_auth(&api.admin)
        .json(&json!({"time_window_hours": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

fn close(a: &Value, b: &Value) -> bool {
    let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
    (x - y).abs() < 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let Some((chromium, chromedriver)) = browser() else { return };
    let db = TestDb::sqlite();
    let url = db.url();
    let admin = create_token(url, "acme", "boss", "admin");
    let ann = create_token(url, "acme", "ann", "device");
    let bob = create_token(url, "acme", "bob", "device");
    let cid = create_token(url, "acme", "cid", "device");
    let dan = create_token(url, "acme", "dan", "device");
    let server = Server::start(url, &[]);
    let api = Api { http: reqwest::Client::new(), base: server.base.clone(), admin: admin.clone() };
    seed(&api, &ann, &bob, &cid).await;

    // The page and its headers.
    let page = api.http.get(server.url("/console")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");

    let driver = Driver::start(&chromedriver).await;
    let client = open_browser(&driver, &chromium).await;
    // Run the steps in a task so that a failed assertion still closes the browser.
    let steps = {
        let (client, base) = (client.clone(), server.base.clone());
        tokio::spawn(async move { run(&client, &base, &api, &admin, &ann, &dan).await })
    };
    let outcome = steps.await;
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run(client: &Client, base: &str, api: &Api, admin: &str, device: &str, dan: &str) {
    client.goto(&format!("{base}/console")).await.unwrap();
    wait_js(client, "the sign-in form", "return !document.getElementById('signin').hidden").await;
    screenshot(client, "0-sign-in").await;

    // A wrong token and a device token are refused with a clear message.
    sign_in(client, "sf_not_a_token").await;
    let error =
        wait_js(client, "the error", "return document.getElementById('signin-error').textContent || null")
            .await;
    assert!(error.as_str().unwrap().contains("not valid"), "{error}");
    screenshot(client, "0-wrong-token").await;
    sign_in(client, device).await;
    wait_js(
        client,
        "the role error",
        "return document.getElementById('signin-error').textContent.includes('not an admin token')",
    )
    .await;
    assert_eq!(js(client, "return sessionStorage.length").await, json!(0));

    // Sign in; the token stays out of the URL and in session storage.
    sign_in(client, admin).await;
    wait_js(client, "the app", "return !document.getElementById('app').hidden").await;
    assert!(!client.current_url().await.unwrap().as_str().contains(admin));
    assert_eq!(js(client, "return sessionStorage.getItem('syncforge.console.token')").await, json!(admin));
    js(client, "window.__sameDocument = 'yes'; return null").await;

    // Now: the tiles show the API's figures.
    let shown = wait_js(
        client,
        "the Now tiles",
        "const v = id => { const e = document.querySelector('#tile-' + id + ' .value'); return e ? e.dataset.value : null; };
         const all = ['active-devices', 'syncs-per-minute', 'success-rate', 'conflict-rate', 'p95'].map(v);
         return all.includes(null) ? null : all;",
    )
    .await;
    let activity = api.get("/api/v1/sync/activity?minutes=60").await;
    let shown: Vec<Value> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse::<f64>().unwrap().into())
        .collect();
    assert_eq!(activity["active_devices_15m"], json!(3));
    assert!(close(&shown[0], &activity["active_devices_15m"]), "{shown:?} {activity}");
    assert!(close(&shown[1], &activity["summary"]["syncs_per_minute"]), "{shown:?} {activity}");
    assert!(close(&shown[2], &activity["summary"]["success_rate_pct"]), "{shown:?} {activity}");
    assert!(close(&shown[3], &activity["summary"]["conflict_rate_pct"]), "{shown:?} {activity}");
    assert!(close(&shown[4], &activity["summary"]["p95_sync_duration_ms"]), "{shown:?} {activity}");
    assert_eq!(activity["summary"]["syncs"], json!(7));
    let text = js(client, "return document.querySelector('#tile-active-devices .value').textContent").await;
    assert_eq!(text, json!("3"));
    wait_js(client, "the 7-day trend", "return document.querySelectorAll('#trend .tile').length === 5").await;
    screenshot(client, "1-now").await;

    // Devices: the table lists the API's devices, worst first.
    click(client, "a[data-panel=devices]").await;
    let rows = wait_js(
        client,
        "the device rows",
        "const r = [...document.querySelectorAll('#device-table tbody tr')].map(t => t.dataset.device);
         return r.length ? r : null;",
    )
    .await;
    let list = api.get("/api/v1/sync/devices").await;
    let api_rows: Vec<Value> =
        list["devices"].as_array().unwrap().iter().map(|d| d["device_id"].clone()).collect();
    assert_eq!(rows.as_array().unwrap(), &api_rows);
    assert_eq!(api_rows.len(), 3);
    screenshot(client, "2-devices").await;

    // The page follows the live WebSocket (first-message auth), not polling.
    wait_js(
        client,
        "the live stream",
        "return document.getElementById('live').dataset.state === 'live' || null",
    )
    .await;

    // A push made now appears without a reload.
    api.push(dan, "d1", "d-dan", vec![change("task", 20, 0, json!({"title": "New", "status": "ASSIGNED"}))])
        .await;
    wait_js(
        client,
        "the new device",
        "return !!document.querySelector('#device-table tr[data-device=\"d-dan\"]')",
    )
    .await;
    assert_eq!(js(client, "return window.__sameDocument || null").await, json!("yes"));

    // A device's page: its recent syncs.
    click(client, "#device-table a[href='#device/d-ann']").await;
    let shown = wait_js(
        client,
        "the device's syncs",
        "const n = document.querySelectorAll('#device-syncs tbody tr').length; return n || null;",
    )
    .await;
    let syncs = api.get("/api/v1/sync/devices/d-ann/syncs").await;
    assert_eq!(shown, json!(syncs["syncs"].as_array().unwrap().len()));
    assert_eq!(shown, json!(4));
    screenshot(client, "3-device").await;

    // Conflicts: the manual one, its differing field marked; resolve it with the client's data.
    click(client, "a[data-panel=conflicts]").await;
    wait_js(client, "the conflict card", "return !!document.querySelector('.conflict')").await;
    let differs =
        js(client, "return [...document.querySelectorAll('.conflict tr.differs')].map(r => r.dataset.field)")
            .await;
    assert_eq!(differs, json!(["notes"]));
    let pending = api.get("/api/v1/sync/conflicts?status=pending").await;
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    screenshot(client, "4-conflicts").await;
    click(client, ".conflict button[data-choose=client]").await;
    wait_js(client, "the card to go", "return !document.querySelector('.conflict')").await;
    assert!(api.get("/api/v1/sync/conflicts?status=pending").await.as_array().unwrap().is_empty());
    let resolved = api.get("/api/v1/sync/conflicts?status=resolved").await;
    let entry = resolved.as_array().unwrap().iter().find(|c| c["id"] == json!(id)).unwrap().clone();
    assert_eq!(entry["status"], "resolved", "{entry}");

    // Alerts and policies.
    click(client, "a[data-panel=alerts]").await;
    wait_js(
        client,
        "the alert state",
        "return document.querySelector('.state[data-for=alerts]').textContent || null",
    )
    .await;
    screenshot(client, "5-alerts").await;
    click(client, "a[data-panel=policies]").await;
    let journal = wait_js(
        client,
        "the policies",
        "const r = document.querySelector('#policy-table tr[data-domain=journal] select'); return r ? r.value : null;",
    )
    .await;
    assert_eq!(journal, json!("manual"));
    screenshot(client, "6-policies").await;

    // A tablet's screen.
    client.set_window_size(768, 1024).await.unwrap();
    click(client, "a[data-panel=now]").await;
    wait_js(client, "the Now tiles", "return !!document.querySelector('#tile-p95')").await;
    screenshot(client, "7-now-tablet").await;

    // No script error all along; signing out forgets the token.
    assert_eq!(js(client, "return window.__consoleErrors").await, json!([]));
    click(client, "#signout").await;
    wait_js(client, "the sign-in form", "return !document.getElementById('signin').hidden").await;
    assert_eq!(js(client, "return sessionStorage.length").await, json!(0));
}
