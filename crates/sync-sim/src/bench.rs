//! The end-to-end benchmark (`cargo xtask bench`): a real server process, loaded over HTTP
//! by simulated devices in this process, on each backend.
//!
//! Cases: push throughput with 100-change batches at 1, 8 and 32 concurrent devices, and push
//! latency with 32 devices paced at the backend's target rate; the initial sync of a large
//! tenant by a new device; an incremental pull with and without deltas; write-to-pull latency
//! (from a push's response to the change appearing in another device's pull), idle and with 8
//! devices pushing; and, next to them, the raw batched upsert of the same rows into the same
//! database. For each: server CPU seconds and peak RSS.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use sync_protocol::{Change, Op, PullRequest, PushRequest};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::{SyncClient, Traffic};
use crate::db::{Backend, RawRecord};
use crate::error::{Error, Result};
use crate::server::ServerProcess;
use crate::stats::Latency;

/// Changes per push in the throughput cases.
pub const BATCH: usize = 100;

/// Sizes and durations.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOptions {
    /// How long each push-throughput case runs.
    pub push_seconds: f64,
    /// Concurrent devices of the push-throughput cases.
    pub push_devices: Vec<usize>,
    /// Devices of the paced push case, which offers each backend its target rate
    /// ([`paced_rate`]) instead of pushing back to back.
    pub paced_devices: usize,
    /// Records of the initial-sync tenant.
    pub initial_records: usize,
    /// Records changed before the incremental pull.
    pub incremental_records: usize,
    /// Write-to-pull and write-to-stream samples per case.
    pub latency_samples: usize,
    /// Open streams of the live fan-out case, and its commits.
    pub fanout_subscribers: usize,
    pub fanout_commits: usize,
    /// Open idle streams of the live idle-connections case.
    pub idle_connections: usize,
}

impl BenchOptions {
    /// The full benchmark.
    pub fn full() -> Self {
        BenchOptions {
            push_seconds: 10.0,
            push_devices: vec![1, 8, 32],
            paced_devices: 32,
            initial_records: 100_000,
            incremental_records: 1_000,
            latency_samples: 500,
            fanout_subscribers: 1_000,
            fanout_commits: 50,
            idle_connections: 10_000,
        }
    }

    /// A quick run (seconds, not minutes), for checking that the benchmark works.
    pub fn quick() -> Self {
        BenchOptions {
            push_seconds: 1.0,
            push_devices: vec![1, 8],
            paced_devices: 8,
            initial_records: 2_000,
            incremental_records: 200,
            latency_samples: 50,
            fanout_subscribers: 100,
            fanout_commits: 5,
            idle_connections: 300,
        }
    }
}

/// What the server process used during a case.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServerCost {
    pub cpu_seconds: f64,
    /// CPU seconds of the database's processes (PostgreSQL; NaN on SQLite, whose work is in
    /// `cpu_seconds`). Processes that ended during the case are not counted.
    pub database_cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

/// One push-throughput case.
#[derive(Debug, Clone, Serialize)]
pub struct PushCase {
    pub devices: usize,
    /// The rate the devices offered together in a paced case; `None` when they pushed back to
    /// back.
    pub offered_per_sec: Option<f64>,
    pub changes: u64,
    pub changes_per_sec: f64,
    pub latency: Latency,
    pub cost: ServerCost,
}

/// A pull case: records served, how fast, and the bytes.
#[derive(Debug, Clone, Serialize)]
pub struct PullCase {
    pub records: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub requests: u64,
    pub traffic: Traffic,
    pub cost: ServerCost,
}

/// Every result of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendResults {
    pub backend: String,
    pub push: Vec<PushCase>,
    /// Push latency at the backend's target rate ([`paced_rate`]).
    pub paced_push: PushCase,
    /// The same rows written by `store::raw_upsert_baseline`, 100 per transaction, one writer.
    pub raw_upsert_per_sec: f64,
    pub initial_sync: PullCase,
    /// The incremental pull of `incremental_records` edited records, with `delta=true`.
    pub incremental_delta: PullCase,
    /// The same pull without deltas.
    pub incremental_full: PullCase,
    pub write_to_pull_idle: Latency,
    pub write_to_pull_loaded: Latency,
    /// Live changes (server-sent events).
    pub live: crate::live_bench::LiveResults,
}

/// Runs every case against `server`; the live cases also against `other_node`, a second
/// server on the same database, when given.
pub async fn run_backend(
    server: &ServerProcess,
    other_node: Option<&ServerProcess>,
    options: &BenchOptions,
) -> Result<BackendResults> {
    let target = server.target();
    // One connection pool for every simulated device, each with its own token.
    let http = SyncClient::new(&target.base_url, "")?;
    let tenant = new_tenant();
    let device = |user: &str| -> Result<SyncClient> {
        Ok(http.with_token(target.issuer.device(&tenant, user, None)?))
    };

    let PushResults { cases: push, paced: paced_push, raw_upsert_per_sec } =
        run_push(server, &tenant, options).await?;

    // A tenant of its own for the initial sync.
    let big = format!("{tenant}-big");
    let big_device =
        |user: &str| -> Result<SyncClient> { Ok(http.with_token(target.issuer.device(&big, user, None)?)) };
    let (initial_sync, ids, cursor) = run_initial_sync(server, &big, options).await?;
    let reader = big_device("reader")?;

    // Edit some records, then pull them incrementally with and without deltas.
    let editor = big_device("editor")?;
    let edited: Vec<(Uuid, i64)> = ids.iter().take(options.incremental_records).map(|id| (*id, 1)).collect();
    for (n, chunk) in edited.chunks(BATCH).enumerate() {
        let changes = chunk.iter().map(|(id, base)| edit_change(*id, *base)).collect();
        let request = PushRequest { device_id: "editor".into(), client_time: None, changes };
        editor.push(&format!("edit-{n}"), &request).await?;
    }
    let (incremental_delta, _) = measure_pull(server, &reader, Some(cursor.clone()), true).await?;
    let (incremental_full, _) = measure_pull(server, &reader, Some(cursor), false).await?;

    let write_to_pull_idle =
        write_to_pull(&device("writer")?, &device("watcher")?, options.latency_samples).await?;
    let load = (0..8).map(|i| device(&format!("load{i}"))).collect::<Result<Vec<_>>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let background = tokio::spawn(push_until(load, Arc::clone(&stop)));
    let loaded = write_to_pull(&device("writer2")?, &device("watcher2")?, options.latency_samples).await;
    stop.store(true, Ordering::Relaxed);
    let _ = background.await;
    let live = crate::live_bench::run(server, other_node, options).await?;

    Ok(BackendResults {
        backend: server.backend().to_string(),
        push,
        paced_push,
        raw_upsert_per_sec,
        initial_sync,
        incremental_delta,
        incremental_full,
        write_to_pull_idle,
        write_to_pull_loaded: loaded?,
        live,
    })
}

/// A fresh tenant name for one benchmark run.
pub fn new_tenant() -> String {
    format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8])
}

/// The push cases of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct PushResults {
    /// Devices pushing back to back, one case per entry of `BenchOptions::push_devices`.
    pub cases: Vec<PushCase>,
    /// The paced case.
    pub paced: PushCase,
    /// The raw baseline beside them.
    pub raw_upsert_per_sec: f64,
}

/// The rate that issue 16 asks of a backend at 32 devices, in changes per second: what the
/// paced case offers.
pub fn paced_rate(backend: Backend) -> f64 {
    match backend {
        Backend::Sqlite => 20_000.0,
        Backend::Postgres => 12_000.0,
    }
}

/// The push cases of `tenant`: back to back (one per entry of `options.push_devices`), then
/// paced at the backend's [`paced_rate`], then the raw baseline.
pub async fn run_push(server: &ServerProcess, tenant: &str, options: &BenchOptions) -> Result<PushResults> {
    let target = server.target();
    let http = SyncClient::new(&target.base_url, "")?;
    let clients = |devices: usize, name: &str| {
        (0..devices)
            .map(|i| Ok(http.with_token(target.issuer.device(tenant, &format!("{name}{i}"), None)?)))
            .collect::<Result<Vec<_>>>()
    };
    let duration = Duration::from_secs_f64(options.push_seconds);
    let mut cases = Vec::new();
    for &devices in &options.push_devices {
        cases.push(measure_push(server, clients(devices, "pusher")?, "pusher", duration, None).await?);
    }
    let rate = Some(paced_rate(server.backend()));
    let paced =
        measure_push(server, clients(options.paced_devices, "paced")?, "paced", duration, rate).await?;
    Ok(PushResults { cases, paced, raw_upsert_per_sec: raw_baseline(server, 200).await? })
}

/// The initial sync of `tenant` (seeded by 8 devices with `options.initial_records` records)
/// by a new device `reader`: the case, the seeded ids and the end cursor.
pub async fn run_initial_sync(
    server: &ServerProcess,
    tenant: &str,
    options: &BenchOptions,
) -> Result<(PullCase, Vec<Uuid>, String)> {
    let target = server.target();
    let http = SyncClient::new(&target.base_url, "")?;
    let device =
        |user: &str| -> Result<SyncClient> { Ok(http.with_token(target.issuer.device(tenant, user, None)?)) };
    let seeders = (0..8).map(|i| device(&format!("seeder{i}"))).collect::<Result<Vec<_>>>()?;
    let ids = seed(seeders, options.initial_records).await?;
    // In production a tenant this size has planner statistics (autovacuum analyses PostgreSQL
    // tables within a minute of such a load); take them now rather than time the planner's
    // guesses about a table it has never measured.
    server.database().analyze().await?;
    let (case, cursor) = measure_pull(server, &device("reader")?, None, false).await?;
    Ok((case, ids, cursor))
}

/// A new task record, as phones send them.
pub(crate) fn new_change(id: Uuid) -> Change {
    let n = id.as_u128() % 100_000;
    Change {
        domain: "task".into(),
        mobile_id: id,
        base_version: 0,
        op: Op::Upsert,
        data: Some(json!({
            "title": format!("Inspect pump {n}"),
            "status": "ASSIGNED",
            "description": "Check pressure, seals and the inlet filter; photograph the nameplate.",
            "assigned_to": format!("tech-{}", n % 50),
            "location": {"lat": 52.52, "lng": 13.405},
        })),
        patch: None,
        modified_at: OffsetDateTime::now_utc(),
        priority: None,
        bu: None,
    }
}

/// A one-field edit of a task at `base`, as a JSON Patch.
fn edit_change(id: Uuid, base: i64) -> Change {
    Change {
        op: Op::Patch,
        base_version: base,
        data: None,
        patch: Some(json!([{"op": "replace", "path": "/status", "value": "INPROGRESS"}])),
        ..new_change(id)
    }
}

/// CPU seconds of the server and of the database so far, to measure a case from.
fn cpu_now(server: &ServerProcess) -> (Option<f64>, Option<f64>) {
    (server.cpu_seconds(), server.database_cpu_seconds())
}

fn cost_since(server: &ServerProcess, before: (Option<f64>, Option<f64>)) -> ServerCost {
    let since = |after: Option<f64>, before: Option<f64>| match (after, before) {
        (Some(after), Some(before)) => after - before,
        _ => f64::NAN,
    };
    ServerCost {
        cpu_seconds: since(server.cpu_seconds(), before.0),
        database_cpu_seconds: since(server.database_cpu_seconds(), before.1),
        peak_rss_mib: server.peak_rss_bytes().map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0)),
    }
}

/// Each client pushes 100 new records per request for `duration`: back to back, or, with
/// `paced`, at its share of that many changes per second.
///
/// Paced devices push at fixed times, staggered over the interval, and a push's latency runs
/// from the time it was due, not from when it was sent: a device held up by a slow answer
/// sends its next push late, and that wait counts (no coordinated omission).
async fn measure_push(
    server: &ServerProcess,
    clients: Vec<SyncClient>,
    name: &str,
    duration: Duration,
    paced: Option<f64>,
) -> Result<PushCase> {
    server.reset_peak_rss();
    let cpu = cpu_now(server);
    let devices = clients.len();
    let run = Uuid::new_v4().simple().to_string();
    // Each device's time between pushes.
    let interval = paced.map(|rate| Duration::from_secs_f64(devices as f64 * BATCH as f64 / rate));
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let run = run.clone();
            let device_id = format!("{name}{i}");
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0_u64;
                let mut due = started
                    + interval.map_or(Duration::ZERO, |every| every.mul_f64(i as f64 / devices as f64));
                while due < deadline {
                    if interval.is_some() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let changes = (0..BATCH).map(|_| new_change(Uuid::new_v4())).collect();
                    let request = PushRequest { device_id: device_id.clone(), client_time: None, changes };
                    let reply = client.push(&format!("p{run}-{device_id}-{n}"), &request).await?;
                    let latency = match interval {
                        Some(every) => {
                            let latency = due.elapsed();
                            due += every;
                            latency
                        }
                        None => {
                            due = Instant::now();
                            reply.latency
                        }
                    };
                    latencies.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
                    n += 1;
                }
                Ok::<_, Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await.map_err(|e| Error::Server(e.to_string()))??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let changes = latencies.len() as u64 * BATCH as u64;
    Ok(PushCase {
        devices,
        offered_per_sec: paced,
        changes,
        changes_per_sec: changes as f64 / seconds,
        latency: Latency::of(&latencies),
        cost: cost_since(server, cpu),
    })
}

/// Creates `records` tasks through the seeders, concurrently; returns their ids.
async fn seed(seeders: Vec<SyncClient>, records: usize) -> Result<Vec<Uuid>> {
    let per_seeder = records.div_ceil(seeders.len());
    let handles: Vec<_> = seeders
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            tokio::spawn(async move {
                let ids: Vec<Uuid> = (0..per_seeder).map(|_| Uuid::new_v4()).collect();
                for (n, chunk) in ids.chunks(500).enumerate() {
                    let changes = chunk.iter().map(|id| new_change(*id)).collect();
                    let request = PushRequest { device_id: format!("seeder{i}"), client_time: None, changes };
                    client.push(&format!("seed{i}-{n}"), &request).await?;
                }
                Ok::<_, Error>(ids)
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(records);
    for handle in handles {
        ids.extend(handle.await.map_err(|e| Error::Server(e.to_string()))??);
    }
    Ok(ids)
}

/// Pulls from `cursor` to the end, 1000 records a page; returns the case and the end cursor.
async fn measure_pull(
    server: &ServerProcess,
    client: &SyncClient,
    cursor: Option<String>,
    delta: bool,
) -> Result<(PullCase, String)> {
    server.reset_peak_rss();
    let cpu = cpu_now(server);
    let started = Instant::now();
    let mut cursor = cursor;
    let mut traffic = Traffic::default();
    let (mut records, mut requests) = (0_u64, 0_u64);
    loop {
        let request = PullRequest {
            cursor: cursor.clone(),
            limit: Some(1000),
            delta,
            device_id: Some("reader".into()),
            ..PullRequest::default()
        };
        let reply = client.pull(&request).await?;
        requests += 1;
        traffic.add(reply.traffic);
        records += reply.body.changes.len() as u64;
        cursor = Some(reply.body.cursor);
        if !reply.body.has_more {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let case = PullCase {
        records,
        seconds,
        records_per_sec: records as f64 / seconds,
        requests,
        traffic,
        cost: cost_since(server, cpu),
    };
    Ok((case, cursor.unwrap_or_default()))
}

/// From a push's response to the change in the watcher's next pulls, `samples` times.
async fn write_to_pull(writer: &SyncClient, watcher: &SyncClient, samples: usize) -> Result<Latency> {
    // The watcher starts at the end of the tenant.
    let mut cursor = None;
    loop {
        let request = PullRequest { cursor: cursor.clone(), limit: Some(1000), ..PullRequest::default() };
        let page = watcher.pull(&request).await?.body;
        cursor = Some(page.cursor);
        if !page.has_more {
            break;
        }
    }
    let mut latencies = Vec::with_capacity(samples);
    let writer_id = Uuid::new_v4().to_string();
    for n in 0..samples {
        let id = Uuid::new_v4();
        let request =
            PushRequest { device_id: writer_id.clone(), client_time: None, changes: vec![new_change(id)] };
        writer.push(&format!("w2p-{writer_id}-{n}"), &request).await?;
        let written = Instant::now();
        'seen: loop {
            let request = PullRequest { cursor: cursor.clone(), limit: Some(1000), ..PullRequest::default() };
            let page = watcher.pull(&request).await?.body;
            cursor = Some(page.cursor);
            if page.changes.iter().any(|r| r.mobile_id == id) {
                break 'seen;
            }
            if written.elapsed() > Duration::from_secs(10) {
                return Err(Error::Server(format!("change {id} did not reach a pull within 10 s")));
            }
        }
        latencies.push(u64::try_from(written.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(Latency::of(&latencies))
}

/// Background load: every client pushes 100-change batches until `stop`.
pub(crate) async fn push_until(clients: Vec<SyncClient>, stop: Arc<AtomicBool>) -> u64 {
    let pushed = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let stop = Arc::clone(&stop);
            let pushed = Arc::clone(&pushed);
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let changes = (0..BATCH).map(|_| new_change(Uuid::new_v4())).collect();
                    let request = PushRequest { device_id: format!("load{i}"), client_time: None, changes };
                    if client.push(&format!("load{i}-{n}"), &request).await.is_ok() {
                        pushed.fetch_add(BATCH as u64, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
    pushed.load(Ordering::Relaxed)
}

/// The raw baseline: `batches` transactions of 100 new rows, written straight to the
/// server's tables (`db::Database::raw_upsert`).
async fn raw_baseline(server: &ServerProcess, batches: usize) -> Result<f64> {
    let tenant = format!("raw-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let now = OffsetDateTime::now_utc();
    let at = i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX);
    let data = new_change(Uuid::new_v4()).data.unwrap_or(Value::Null).to_string();
    let prepared: Vec<Vec<RawRecord>> = (0..batches)
        .map(|b| {
            (0..BATCH)
                .map(|i| RawRecord {
                    tenant_id: tenant.clone(),
                    domain: "task".into(),
                    mobile_id: Uuid::new_v4().to_string(),
                    data: data.clone(),
                    at,
                    seq: (b * BATCH + i + 1) as i64,
                })
                .collect()
        })
        .collect();
    // Only the writes are timed.
    let took = server.database().raw_upsert(prepared).await?;
    Ok((batches * BATCH) as f64 / took.as_secs_f64().max(f64::MIN_POSITIVE))
}

const PUSH_HEADER: &str = "| backend | devices | changes/s | p50 ms | p99 ms | server CPU s | server CPU s per 10k | PostgreSQL CPU s per 10k | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|";
const PULL_HEADER: &str = "| backend | case | records | records/s | wire bytes | JSON bytes | saved | server CPU s | peak RSS MiB |\n|---|---|---:|---:|---:|---:|---:|---:|---:|";

/// The push table's rows of one backend: back to back, paced, and its raw baseline last.
fn push_rows(out: &mut String, backend: &str, cases: &[PushCase], paced: &PushCase, raw_upsert_per_sec: f64) {
    for c in cases.iter().chain([paced]) {
        let devices = match c.offered_per_sec {
            Some(rate) => format!("{}, paced at {rate:.0}/s", c.devices),
            None => c.devices.to_string(),
        };
        let per_10k = |seconds: f64| {
            if seconds.is_nan() {
                "–".to_owned()
            } else {
                format!("{:.2}", seconds * 1e4 / c.changes.max(1) as f64)
            }
        };
        let _ = writeln!(
            out,
            "| {backend} | {devices} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {:.0} |",
            c.changes_per_sec,
            c.latency.p50_ms,
            c.latency.p99_ms,
            c.cost.cpu_seconds,
            per_10k(c.cost.cpu_seconds),
            per_10k(c.cost.database_cpu_seconds),
            c.cost.peak_rss_mib
        );
    }
    let _ = writeln!(out, "| {backend} raw upsert baseline | 1 | {raw_upsert_per_sec:.0} | | | | | | |");
}

/// One row of the pull table.
fn pull_row(out: &mut String, backend: &str, name: &str, c: &PullCase) {
    let saved = 100.0 * (1.0 - c.traffic.received_wire as f64 / c.traffic.received_raw.max(1) as f64);
    let _ = writeln!(
        out,
        "| {backend} | {name} | {} | {:.0} | {} | {} | {saved:.0} % | {:.2} | {:.0} |",
        c.records,
        c.records_per_sec,
        c.traffic.received_wire,
        c.traffic.received_raw,
        c.cost.cpu_seconds,
        c.cost.peak_rss_mib
    );
}

/// The push cases alone, as a table (`sync-sim bench --only push`).
pub fn push_lines(out: &mut String, backend: &str, push: &PushResults) {
    let _ = writeln!(out, "{PUSH_HEADER}");
    push_rows(out, backend, &push.cases, &push.paced, push.raw_upsert_per_sec);
}

/// One pull case alone, as a table (`sync-sim bench --only initial-sync`).
pub fn pull_lines(out: &mut String, backend: &str, name: &str, case: &PullCase) {
    let _ = writeln!(out, "{PULL_HEADER}");
    pull_row(out, backend, name, case);
}

/// The results as the Markdown section of `docs/benchmarks.md`.
pub fn markdown(results: &[BackendResults], machine: &str, date: &str, options: &BenchOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## End to end (`cargo xtask bench`)\n");
    let _ = writeln!(
        out,
        "Measured {date} on {machine}. A release `sync-server` process on a fresh database; the \
         load generator (sync-sim) runs on the same machine and shares its cores. Server CPU is \
         user + system seconds of the server process during the case; peak RSS is the server's \
         high-water mark, reset before each case.\n"
    );
    let _ = writeln!(
        out,
        "### Push throughput ({BATCH}-change batches of new records, {}s per case)\n",
        options.push_seconds
    );
    let _ = writeln!(
        out,
        "Each device waits for its answer before it pushes again. Back to back, the devices \
         saturate the server, and latency is the time a push queues behind the others (at 32 \
         devices, 32 × {BATCH} changes / throughput on average). Paced, the devices push at fixed, \
         staggered times that add up to the rate given (issue 16's target of the backend), and a \
         push's latency runs from the time it was due, so a late answer also delays the next \
         push and that wait counts.\n"
    );
    let _ = writeln!(out, "{PUSH_HEADER}");
    for r in results {
        push_rows(&mut out, &r.backend, &r.push, &r.paced_push, r.raw_upsert_per_sec);
    }
    let _ = writeln!(out, "\n### Pulls (1000 records a page, gzip accepted)\n");
    let _ = writeln!(out, "{PULL_HEADER}");
    for r in results {
        for (name, c) in [
            ("initial sync", &r.initial_sync),
            ("incremental, delta", &r.incremental_delta),
            ("incremental, full", &r.incremental_full),
        ] {
            pull_row(&mut out, &r.backend, name, c);
        }
    }
    let _ = writeln!(
        out,
        "\nBytes saved by deltas: the incremental pull's wire bytes with `delta=true` against the same pull in full.\n"
    );
    for r in results {
        let delta = r.incremental_delta.traffic.received_wire as f64;
        let full = r.incremental_full.traffic.received_wire.max(1) as f64;
        let json_delta = r.incremental_delta.traffic.received_raw as f64;
        let json_full = r.incremental_full.traffic.received_raw.max(1) as f64;
        let _ = writeln!(
            out,
            "- {}: JSON {:.0} % smaller, on the wire (gzip) {:.0} % smaller.",
            r.backend,
            100.0 * (1.0 - json_delta / json_full),
            100.0 * (1.0 - delta / full)
        );
    }
    let _ =
        writeln!(out, "\n### Write-to-pull latency (push response to the change in another device's pull)\n");
    let _ = writeln!(out, "| backend | load | samples | p50 ms | p95 ms | p99 ms | max ms |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for r in results {
        for (name, l) in [("idle", &r.write_to_pull_idle), ("8 devices pushing", &r.write_to_pull_loaded)] {
            let _ = writeln!(
                out,
                "| {} | {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.backend, l.count, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            );
        }
    }
    let live: Vec<(&str, &crate::live_bench::LiveResults)> =
        results.iter().map(|r| (r.backend.as_str(), &r.live)).collect();
    crate::live_bench::markdown(&mut out, &live);
    let _ = writeln!(out, "\n### Charts\n");
    for (file, alt) in [
        ("bench-throughput.svg", "Push throughput by concurrency per backend"),
        ("bench-latency.svg", "Latency distributions"),
        ("bench-pull-rates.svg", "Pull rates"),
    ] {
        let _ = writeln!(out, "![{alt}]({file})\n");
    }
    out
}
