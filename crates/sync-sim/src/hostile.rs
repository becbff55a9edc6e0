//! Hostile and slow clients (issue 19): attacks on a running server while a well-behaved
//! device keeps syncing, and the invariants that say the server held.
//!
//! First the attacks on connections and bodies, all at once, for `duration` (or as long as the
//! body timeout needs):
//! - **slowloris headers**: hundreds of connections sending a never-ending request head one
//!   byte a second;
//! - **slow bodies**: connections sending a body one byte a second after a complete head, on
//!   every endpoint that takes a body;
//! - **idle connections**: thousands of connections that never send a byte, and keep-alive
//!   connections left idle after one request;
//! - **huge headers**: a 1 MB header;
//! - **deep and wide JSON** on every endpoint that takes a body (100,000 levels of nesting;
//!   4 million array elements), and a GraphQL query of 1 MB;
//! - **gzip bombs** on every endpoint that takes a body: 10 MB of zeros (about 10 KB on the
//!   wire) and 1 GB (about 1 MB);
//! - then **a flood of tiny changes**: pushes of 100 one-field journal records, one after the
//!   other, 100 pushes per second of `duration` up to 10,000 (a million changes from a 100 s
//!   run). It comes after the other attacks, since its pushes share the database's writer with
//!   the well-behaved device's: on SQLite the committing writer's WAL checkpoint (every 32 MiB
//!   of WAL) holds every other push for 100 to 250 ms every few seconds under such a load, which
//!   is the database's cost and not a hostile client's (see [`good_client_latency`]).
//!
//! Invariants: every slowloris and idle connection is closed by the server within the header
//! timeout and every slow body cut (408) within the body timeout, each plus some slack; the
//! server's resident memory grows by at most 200 MiB; every hostile request gets a 4xx or a
//! closed connection, never a 5xx; every push of the flood succeeds; the well-behaved device's
//! p99 stays within 10 times its p99 before (at least 50 ms) and under 500 ms during the
//! attacks, under 500 ms during the flood, and every one of its requests succeeds; `/readyz`
//! answers 200 afterwards.
//!
//! The server's timeouts are the `[http]` defaults unless `SYNC_HTTP_HEADER_READ_TIMEOUT_SECS`,
//! `SYNC_HTTP_BODY_READ_TIMEOUT_SECS` or `SYNC_HTTP_IDLE_TIMEOUT_SECS` are set in this process's
//! environment: the server started by [`ServerProcess`] inherits them, and the checks here read
//! them too (a value of 0, which turns the server's timeout off, is checked against the
//! default, so that such a server fails). The attacks last `duration`, or longer when the body
//! timeout (30 s by default) needs it: set `SYNC_HTTP_BODY_READ_TIMEOUT_SECS=5` for a short run.
//! A baseline of a quarter of `duration` (3 to 15 s) comes first and the flood after.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};
use sync_protocol::{Change, Op, PullRequest, PushRequest};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::SyncClient;
use crate::error::{Error, Result};
use crate::invariants::Invariant;
use crate::server::ServerProcess;
use crate::stats::Latency;

/// The server's `[http]` defaults (sync-server's `HttpConfig`).
const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;

/// Slowloris connections, slow bodies, idle connections, idle keep-alive connections.
const SLOWLORIS: usize = 300;
const SLOW_BODIES: usize = 70;
const IDLE_CONNECTIONS: usize = 3000;
const KEEPALIVE_IDLE: usize = 50;
/// Connections opened at once, each holding its turn for [`CONNECT_TURN`]: about 1,300 a
/// second. Faster, the server's accept queue (1,024) overflows: the kernel then drops the
/// handshake's last packet, the client believes it is connected, and the server accepts the
/// connection (and starts its clock) only seconds later, after the retransmission.
const CONNECTING_AT_ONCE: usize = 128;
const CONNECT_TURN: Duration = Duration::from_millis(100);
/// Requests with a 1 MB header.
const HUGE_HEADERS: usize = 5;

/// The flood: changes per push, most pushes, and pushes per second of `duration` (a 100 s run
/// makes the full million).
const FLOOD_CHANGES_PER_PUSH: usize = 100;
const FLOOD_MAX_PUSHES: u64 = 10_000;
const FLOOD_PUSHES_PER_DURATION_SEC: f64 = 100.0;

/// How often the well-behaved device syncs (a push, then a pull).
const GOOD_CLIENT_PERIOD: Duration = Duration::from_millis(50);

/// The bounds of the invariants.
const MAX_RSS_GROWTH_BYTES: u64 = 200 << 20;
const MAX_LATENCY_FACTOR: f64 = 10.0;
/// Below this a p99 is noise (one scheduling hiccup on a loaded machine); the factor applies
/// above it.
const LATENCY_FLOOR_MS: f64 = 50.0;
const MAX_LATENCY_MS: f64 = 500.0;

/// Everything measured, and the verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct HostileReport {
    pub backend: String,
    /// The whole run: baseline, attacks, the check afterwards.
    pub elapsed_secs: f64,
    /// The timeouts the checks hold the server to.
    pub timeouts: Timeouts,
    pub memory: Memory,
    /// Most hostile connections open at once (this side's count), and the server's most open
    /// file descriptors.
    pub connections_held_peak: u64,
    pub server_fds_peak: Option<u64>,
    /// The well-behaved device: latency before, during the attacks and during the flood.
    pub good_client: GoodClient,
    pub slowloris: Held,
    pub slow_bodies: Held,
    pub idle_connections: Held,
    /// `None` when the idle timeout is longer than the run (see the module documentation).
    pub keepalive_idle: Option<Held>,
    /// Hostile requests (huge headers, deep and wide JSON, gzip bombs, a huge GraphQL query):
    /// answers by attack and status (`closed` when the server closed the connection instead).
    pub hostile_requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub flood: Flood,
    pub invariants: Vec<Invariant>,
}

impl HostileReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|i| i.passed)
    }
}

/// The server's timeouts, and the limits the checks allow: each timeout plus 2 s and a tenth
/// of it (the watchdog looks every second at most; a loaded machine adds some).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timeouts {
    pub header_read_secs: u64,
    pub body_read_secs: u64,
    pub idle_secs: u64,
    pub header_limit_secs: f64,
    pub body_limit_secs: f64,
    pub idle_limit_secs: f64,
}

/// The server's resident memory: before the attacks, at most during them and the flood (sampled
/// every 100 ms, and the kernel's high-water mark), and afterwards.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    pub rss_at_rest_bytes: Option<u64>,
    pub rss_peak_during_attacks_bytes: Option<u64>,
    pub rss_growth_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
}

/// The well-behaved device's latency alone, during the attacks on connections and bodies, and
/// during the flood; its requests and failures over both.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GoodClient {
    pub push_before: Latency,
    pub pull_before: Latency,
    pub push_during_attacks: Latency,
    pub pull_during_attacks: Latency,
    pub push_during_flood: Latency,
    pub pull_during_flood: Latency,
    pub pushes: u64,
    pub pushes_failed: u64,
    pub pulls: u64,
    pub pulls_failed: u64,
    /// The first failures.
    pub errors: Vec<String>,
}

/// How long the server held a kind of hostile connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Held {
    pub connections: u64,
    /// Closed by the server (after an answer or not).
    pub closed: u64,
    /// Still open when the check gave up on them.
    pub still_open: u64,
    /// Could not connect at all.
    pub connect_failed: u64,
    /// From connect (a slow body: from the end of its head; a keep-alive one: from its one
    /// request) until the server closed or answered.
    pub survived: Latency,
    /// Answers by status (`none` when it closed without one).
    pub answers: BTreeMap<String, u64>,
}

/// The flood's pushes, the changes they carried, and their latency.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Flood {
    pub pushes: u64,
    pub changes: u64,
    pub failed: u64,
    pub latency: Latency,
    pub errors: Vec<String>,
}

/// One hostile connection's fate.
#[derive(Debug, Clone)]
struct Fate {
    connected: bool,
    /// When the server closed it or answered, from the start of the clock.
    ended_after: Option<Duration>,
    status: Option<u16>,
}

impl Fate {
    fn unconnected() -> Self {
        Fate { connected: false, ended_after: None, status: None }
    }
}

/// Connections open now and at most, on this side.
#[derive(Debug, Default)]
struct Gauge {
    open: AtomicI64,
    peak: AtomicI64,
}

impl Gauge {
    fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The server's timeouts as the environment sets them; 0 (off) and unset are the defaults.
fn timeout_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|&s| s > 0).unwrap_or(default)
}

/// Runs the attacks on `server` for about `duration` (longer when the body timeout needs it).
pub async fn run(server: &ServerProcess, duration: Duration) -> Result<HostileReport> {
    let started = Instant::now();
    let header = timeout_from_env("SYNC_HTTP_HEADER_READ_TIMEOUT_SECS", DEFAULT_HEADER_TIMEOUT_SECS);
    let body = timeout_from_env("SYNC_HTTP_BODY_READ_TIMEOUT_SECS", DEFAULT_BODY_TIMEOUT_SECS);
    let idle = timeout_from_env("SYNC_HTTP_IDLE_TIMEOUT_SECS", DEFAULT_IDLE_TIMEOUT_SECS);
    let limit = |timeout: u64| Duration::from_secs(timeout) * 11 / 10 + Duration::from_secs(2);
    let (header_limit, body_limit, idle_limit) = (limit(header), limit(body), limit(idle));
    let timeouts = Timeouts {
        header_read_secs: header,
        body_read_secs: body,
        idle_secs: idle,
        header_limit_secs: header_limit.as_secs_f64(),
        body_limit_secs: body_limit.as_secs_f64(),
        idle_limit_secs: idle_limit.as_secs_f64(),
    };

    let target = server.target();
    let base = target.base_url.clone();
    let address = base.trim_start_matches("http://").to_owned();
    let good = SyncClient::new(&base, target.issuer.device("acme", "good", None)?)?;
    let device = target.issuer.device("evil", "mallory", None)?;
    let admin = target.issuer.admin("evil", "mallory-admin")?;

    let payloads = Arc::new(Payloads::make().await?);

    // Before: the well-behaved device alone.
    let baseline = (duration / 4).clamp(Duration::from_secs(3), Duration::from_secs(15));
    let before = good_client_for(&good, None, tokio::time::sleep(baseline)).await?;

    // The attacks on connections and bodies, with the device syncing through them.
    let rss_at_rest = server.rss_bytes();
    let peak_reset = server.reset_peak_rss();
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(server.pid(), stop_sampling.clone()));
    let window = duration.max(body_limit + Duration::from_secs(2));
    let keepalive_checked = idle_limit + Duration::from_secs(2) <= window;
    let gauge = Arc::new(Gauge::default());
    let attacks = async {
        let started = Instant::now();
        let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
        let mut slowloris_tasks = JoinSet::new();
        for _ in 0..SLOWLORIS {
            let give_up = header_limit + Duration::from_secs(2);
            slowloris_tasks.spawn(slowloris(address.clone(), give_up, gauge.clone(), connecting.clone()));
        }
        let mut idle_tasks = JoinSet::new();
        for _ in 0..IDLE_CONNECTIONS {
            let give_up = header_limit + Duration::from_secs(2);
            idle_tasks.spawn(silent(address.clone(), give_up, gauge.clone(), connecting.clone()));
        }
        let mut keepalive_tasks = JoinSet::new();
        if keepalive_checked {
            for _ in 0..KEEPALIVE_IDLE {
                let give_up = idle_limit + Duration::from_secs(2);
                keepalive_tasks.spawn(keepalive_idle(
                    address.clone(),
                    give_up,
                    gauge.clone(),
                    connecting.clone(),
                ));
            }
        }
        let endpoints = endpoints(&device, &admin);
        let mut slow_body_tasks = JoinSet::new();
        for i in 0..SLOW_BODIES {
            let endpoint = endpoints[i % endpoints.len()].clone();
            let give_up = body_limit + Duration::from_secs(2);
            slow_body_tasks.spawn(slow_body(
                address.clone(),
                endpoint,
                give_up,
                gauge.clone(),
                connecting.clone(),
            ));
        }
        let hostile = hostile_requests(base.clone(), address.clone(), endpoints, payloads).await;
        let fates = Attacked {
            slowloris: collect(slowloris_tasks).await,
            idle: collect(idle_tasks).await,
            keepalive: collect(keepalive_tasks).await,
            slow_bodies: collect(slow_body_tasks).await,
            hostile,
        };
        tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
        fates
    };
    let (attacked, during_attacks) = good_client_with(&good, Some(&before), attacks).await?;

    // The flood of tiny changes, with the device syncing through it.
    let flood_pushes = (FLOOD_PUSHES_PER_DURATION_SEC * duration.as_secs_f64()) as u64;
    let flood_client = good.with_token(device.clone());
    let (flood, during_flood) = good_client_with(
        &good,
        Some(&during_attacks),
        flood(flood_client, flood_pushes.clamp(1, FLOOD_MAX_PUSHES)),
    )
    .await?;
    stop_sampling.store(true, Ordering::Relaxed);
    let (rss_sampled, fds_peak) = sampler.await.unwrap_or_default();
    let rss_hwm = if peak_reset { server.peak_rss_bytes() } else { None };
    let rss_peak = rss_sampled.max(rss_hwm);

    // After: the server is still ready, and its memory settles.
    let ready = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let memory = Memory {
        rss_at_rest_bytes: rss_at_rest,
        rss_peak_during_attacks_bytes: rss_peak,
        rss_growth_bytes: rss_peak.zip(rss_at_rest).map(|(peak, rest)| peak.saturating_sub(rest)),
        rss_after_bytes: server.rss_bytes(),
    };

    let mut invariants = vec![
        closed_within("slowloris_closed", &attacked.slowloris, header_limit, "a slowloris connection"),
        closed_within("idle_connections_closed", &attacked.idle, header_limit, "an idle connection"),
        slow_bodies_cut(&attacked.slow_bodies, body_limit),
    ];
    if keepalive_checked {
        invariants.push(closed_within(
            "keepalive_idle_closed",
            &attacked.keepalive,
            idle_limit,
            "an idle keep-alive connection",
        ));
    }
    invariants.push(memory_bounded(&memory));
    invariants.push(hostile_refused(&attacked.hostile));
    invariants.push(flood_served(&flood));
    invariants.push(good_client_latency(&before, &during_attacks, &during_flood));
    invariants.push(good_client_succeeded(&[&during_attacks, &during_flood]));
    let mut ready_inv = Invariant::new("ready_afterwards");
    ready_inv.checked = 1;
    match ready {
        Ok(200) => {}
        Ok(status) => ready_inv.fail(|| format!("/readyz answered {status} after the attacks")),
        Err(e) => ready_inv.fail(|| format!("/readyz did not answer after the attacks: {e}")),
    }
    invariants.push(ready_inv);

    Ok(HostileReport {
        backend: server.backend().as_str().to_owned(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        timeouts,
        memory,
        connections_held_peak: u64::try_from(gauge.peak.load(Ordering::Relaxed)).unwrap_or(0),
        server_fds_peak: fds_peak,
        good_client: GoodClient {
            push_before: Latency::of(&before.push_us),
            pull_before: Latency::of(&before.pull_us),
            push_during_attacks: Latency::of(&during_attacks.push_us),
            pull_during_attacks: Latency::of(&during_attacks.pull_us),
            push_during_flood: Latency::of(&during_flood.push_us),
            pull_during_flood: Latency::of(&during_flood.pull_us),
            pushes: during_attacks.pushes + during_flood.pushes,
            pushes_failed: during_attacks.pushes_failed + during_flood.pushes_failed,
            pulls: during_attacks.pulls + during_flood.pulls,
            pulls_failed: during_attacks.pulls_failed + during_flood.pulls_failed,
            errors: during_attacks.errors.iter().chain(&during_flood.errors).take(10).cloned().collect(),
        },
        slowloris: held(&attacked.slowloris),
        slow_bodies: held(&attacked.slow_bodies),
        idle_connections: held(&attacked.idle),
        keepalive_idle: keepalive_checked.then(|| held(&attacked.keepalive)),
        hostile_requests: attacked.hostile.iter().fold(BTreeMap::new(), |mut by, answer| {
            *by.entry(answer.attack.clone())
                .or_insert_with(BTreeMap::new)
                .entry(answer.outcome())
                .or_insert(0) += 1;
            by
        }),
        flood: flood.summary(),
        invariants,
    })
}

/// The hostile connections' fates and the hostile requests' answers.
#[derive(Debug)]
struct Attacked {
    slowloris: Vec<Fate>,
    idle: Vec<Fate>,
    keepalive: Vec<Fate>,
    slow_bodies: Vec<Fate>,
    hostile: Vec<Answer>,
}

/// Runs `work` while the well-behaved device syncs (continuing `from`'s cursor): its output and
/// what the device saw meanwhile.
async fn good_client_with<T>(
    good: &SyncClient,
    from: Option<&Sample>,
    work: impl std::future::Future<Output = T>,
) -> Result<(T, Sample)> {
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(good_client(good.clone(), stop.clone(), from.and_then(|s| s.cursor.clone())));
    let output = work.await;
    stop.store(true, Ordering::Relaxed);
    let sample = task.await.map_err(|e| Error::Server(format!("the well-behaved device failed: {e}")))?;
    Ok((output, sample))
}

/// What the well-behaved device saw until `until` resolved.
async fn good_client_for(
    good: &SyncClient,
    from: Option<&Sample>,
    until: impl std::future::Future<Output = ()>,
) -> Result<Sample> {
    Ok(good_client_with(good, from, until).await?.1)
}

// ---------------------------------------------------------------------------------------------
// The well-behaved device

/// What the well-behaved device saw.
#[derive(Debug, Clone, Default)]
struct Sample {
    push_us: Vec<u64>,
    pull_us: Vec<u64>,
    pushes: u64,
    pushes_failed: u64,
    pulls: u64,
    pulls_failed: u64,
    errors: Vec<String>,
    cursor: Option<String>,
}

/// Syncs every [`GOOD_CLIENT_PERIOD`] until `stop`: a push of five new tasks, then a pull from
/// its cursor (from `cursor` on).
async fn good_client(client: SyncClient, stop: Arc<AtomicBool>, cursor: Option<String>) -> Sample {
    let mut sample = Sample { cursor, ..Sample::default() };
    let mut ticks = tokio::time::interval(GOOD_CLIENT_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let push = PushRequest {
            device_id: "good-phone".into(),
            client_time: None,
            changes: (0..5).map(|_| crate::bench::new_change(Uuid::new_v4())).collect(),
        };
        sample.pushes += 1;
        match client.push(&Uuid::new_v4().to_string(), &push).await {
            Ok(reply) => sample.push_us.push(micros(reply.latency)),
            Err(e) => {
                sample.pushes_failed += 1;
                note(&mut sample.errors, format!("push: {e}"));
            }
        }
        let pull = PullRequest {
            cursor: sample.cursor.clone(),
            limit: Some(100),
            device_id: Some("good-phone".into()),
            ..PullRequest::default()
        };
        sample.pulls += 1;
        match client.pull(&pull).await {
            Ok(reply) => {
                sample.pull_us.push(micros(reply.latency));
                sample.cursor = Some(reply.body.cursor);
            }
            Err(e) => {
                sample.pulls_failed += 1;
                note(&mut sample.errors, format!("pull: {e}"));
            }
        }
    }
    sample
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn note(errors: &mut Vec<String>, error: String) {
    if errors.len() < 10 {
        errors.push(error);
    }
}

/// Samples the server's resident memory and open files every 100 ms until `stop`: the peaks.
async fn sample(pid: u32, stop: Arc<AtomicBool>) -> (Option<u64>, Option<u64>) {
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    let fds = || Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64);
    let (mut rss_peak, mut fds_peak) = (None, None);
    while !stop.load(Ordering::Relaxed) {
        rss_peak = rss_peak.max(rss());
        fds_peak = fds_peak.max(fds());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (rss_peak, fds_peak)
}

// ---------------------------------------------------------------------------------------------
// Connections

async fn connect(address: &str, gauge: &Gauge, connecting: &Arc<Semaphore>) -> Option<TcpStream> {
    let permit = connecting.clone().acquire_owned().await.ok()?;
    let stream =
        tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address)).await.ok()?.ok()?;
    let _ = stream.set_nodelay(true);
    gauge.opened();
    tokio::spawn(async move {
        tokio::time::sleep(CONNECT_TURN).await;
        drop(permit);
    });
    Some(stream)
}

/// Reads what arrives within `wait`: the bytes, and whether the server closed the connection.
async fn read_for(stream: &mut TcpStream, wait: Duration, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(n)) => into.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status of an HTTP/1.1 answer's first line.
fn status_of(received: &[u8]) -> Option<u16> {
    let line = received.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends a never-ending request head one byte a second, until the server closes the
/// connection or `give_up` passes.
async fn slowloris(
    address: String,
    give_up: Duration,
    gauge: Arc<Gauge>,
    connecting: Arc<Semaphore>,
) -> Fate {
    let Some(mut stream) = connect(&address, &gauge, &connecting).await else { return Fate::unconnected() };
    let started = Instant::now();
    let head = b"GET /api/v1/sync/pull HTTP/1.1\r\nHost: sim\r\nX-Slowloris: "
        .iter()
        .chain(std::iter::repeat(&b'a'));
    let mut received = Vec::new();
    let mut fate = Fate { connected: true, ended_after: None, status: None };
    for &byte in head {
        if stream.write_all(&[byte]).await.is_err()
            || read_for(&mut stream, Duration::from_secs(1), &mut received).await
        {
            fate.ended_after = Some(started.elapsed());
            break;
        }
        if started.elapsed() > give_up {
            break;
        }
    }
    fate.status = status_of(&received);
    gauge.closed();
    fate
}

/// Connects and says nothing, until the server closes the connection or `give_up` passes.
async fn silent(address: String, give_up: Duration, gauge: Arc<Gauge>, connecting: Arc<Semaphore>) -> Fate {
    let Some(mut stream) = connect(&address, &gauge, &connecting).await else { return Fate::unconnected() };
    let started = Instant::now();
    let mut received = Vec::new();
    let closed = read_for(&mut stream, give_up, &mut received).await;
    gauge.closed();
    Fate { connected: true, ended_after: closed.then(|| started.elapsed()), status: status_of(&received) }
}

/// One request on a keep-alive connection, then silence: how long after its answer the server
/// closes it.
async fn keepalive_idle(
    address: String,
    give_up: Duration,
    gauge: Arc<Gauge>,
    connecting: Arc<Semaphore>,
) -> Fate {
    let Some(mut stream) = connect(&address, &gauge, &connecting).await else { return Fate::unconnected() };
    let mut received = Vec::new();
    let mut fate = Fate { connected: true, ended_after: None, status: None };
    let asked = Instant::now();
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: sim\r\n\r\n").await.is_ok() {
        // The answer is small and quick: the clock counts from the request.
        let closed = read_for(&mut stream, Duration::from_millis(500), &mut received).await;
        fate.status = status_of(&received);
        if closed || read_for(&mut stream, give_up, &mut received).await {
            fate.ended_after = Some(asked.elapsed());
        }
    }
    gauge.closed();
    fate
}

/// A complete head, then the body one byte a second: when the server answered (or closed),
/// counted from the end of the head.
async fn slow_body(
    address: String,
    endpoint: Endpoint,
    give_up: Duration,
    gauge: Arc<Gauge>,
    connecting: Arc<Semaphore>,
) -> Fate {
    let Some(mut stream) = connect(&address, &gauge, &connecting).await else { return Fate::unconnected() };
    let head = format!(
        "{} {} HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer {}\r\nIdempotency-Key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
        endpoint.method,
        endpoint.path,
        endpoint.token,
        Uuid::new_v4()
    );
    let mut fate = Fate { connected: true, ended_after: None, status: None };
    let mut received = Vec::new();
    if stream.write_all(head.as_bytes()).await.is_ok() {
        let started = Instant::now();
        let body = b"{\"device_id\": \"".iter().chain(std::iter::repeat(&b'x'));
        for &byte in body {
            let failed = stream.write_all(&[byte]).await.is_err();
            let closed = read_for(&mut stream, Duration::from_secs(1), &mut received).await;
            if failed || closed || !received.is_empty() {
                fate.ended_after = Some(started.elapsed());
                break;
            }
            if started.elapsed() > give_up {
                break;
            }
        }
    }
    if fate.ended_after.is_some() {
        // The rest of an answer.
        read_for(&mut stream, Duration::from_millis(300), &mut received).await;
    }
    fate.status = status_of(&received);
    gauge.closed();
    fate
}

async fn collect(mut tasks: JoinSet<Fate>) -> Vec<Fate> {
    let mut fates = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        fates.push(joined.unwrap_or_else(|_| Fate::unconnected()));
    }
    fates
}

fn held(fates: &[Fate]) -> Held {
    let mut held = Held { connections: fates.len() as u64, ..Held::default() };
    let mut survived = Vec::new();
    for fate in fates {
        if !fate.connected {
            held.connect_failed += 1;
            continue;
        }
        match fate.ended_after {
            Some(after) => {
                held.closed += 1;
                survived.push(micros(after));
            }
            None => held.still_open += 1,
        }
        let status = fate.status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        *held.answers.entry(status).or_insert(0) += 1;
    }
    held.survived = Latency::of(&survived);
    held
}

// ---------------------------------------------------------------------------------------------
// Hostile requests

/// An endpoint that takes a body, and how to make one of its bodies hold a given JSON value.
#[derive(Debug, Clone)]
struct Endpoint {
    method: &'static str,
    path: &'static str,
    token: String,
    /// The body around the value, as `{before}VALUE{after}`.
    before: &'static str,
    after: &'static str,
}

fn endpoints(device: &str, admin: &str) -> Vec<Endpoint> {
    let endpoint = |method, path, token: &str, before, after| Endpoint {
        method,
        path,
        token: token.to_owned(),
        before,
        after,
    };
    vec![
        endpoint(
            "POST",
            "/api/v1/sync/push",
            device,
            r#"{"device_id":"evil-phone","changes":[{"domain":"task","mobile_id":"00000000-0000-4000-8000-000000000001","op":"upsert","modified_at":"2026-11-22T09:58:00Z","data":"#,
            "}]}",
        ),
        endpoint("POST", "/api/v1/sync/partial", device, r#"{"device_id":"evil-phone","priority":"#, "}"),
        endpoint("PUT", "/api/v1/sync/policies/task", admin, r#"{"policy":"#, "}"),
        endpoint(
            "POST",
            "/api/v1/sync/conflicts/00000000-0000-4000-8000-000000000001/resolve",
            admin,
            r#"{"choose":"client","data":"#,
            "}",
        ),
        endpoint("POST", "/api/sync/snapshot/create/", admin, r#"{"time_window_hours":"#, "}"),
        endpoint("PUT", "/api/v1/sync/webhooks/evil", admin, r#"{"url":"#, "}"),
        endpoint(
            "POST",
            "/graphql",
            device,
            r#"{"query":"mutation($i: PushRequest!) { push(idempotencyKey: \"k\", input: $i) { cursor } }","variables":{"i":"#,
            "}}",
        ),
    ]
}

/// A hostile request's answer.
#[derive(Debug, Clone)]
struct Answer {
    attack: String,
    path: &'static str,
    /// `None`: the server closed the connection instead of answering.
    status: Option<u16>,
    /// A GraphQL answer's `errors` (GraphQL refuses with 200 and errors).
    graphql_errors: bool,
    took: Duration,
}

impl Answer {
    fn outcome(&self) -> String {
        match self.status {
            Some(status) => status.to_string(),
            None => "closed".to_owned(),
        }
    }

    fn refused(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => (400..500).contains(&status) || (status == 200 && self.graphql_errors),
        }
    }
}

/// 10 MB and 1 GB of zeros, gzipped (about 10 KB and 1 MB).
fn gzip_bombs() -> Result<(Vec<u8>, Vec<u8>)> {
    use std::io::Write;
    let zeros = |megabytes: usize| -> std::io::Result<Vec<u8>> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..megabytes {
            encoder.write_all(&chunk)?;
        }
        encoder.finish()
    };
    let io = |e: std::io::Error| Error::Io { path: "gzip bomb".into(), source: e };
    Ok((zeros(10).map_err(io)?, zeros(1024).map_err(io)?))
}

/// The hostile bodies, made before the attacks (compressing 1 GB takes this side's CPU for a
/// while, which must not count against the server).
#[derive(Debug)]
struct Payloads {
    /// 100,000 levels of nested arrays.
    deep: String,
    /// An array of 4 million zeros (8 MB, under `max_body_bytes`).
    wide: String,
    /// 10 MB and 1 GB of zeros, gzipped.
    bomb_10mb: Vec<u8>,
    bomb_1gb: Vec<u8>,
    /// A GraphQL request whose query is 1 MB of fields.
    huge_query: Vec<u8>,
}

impl Payloads {
    async fn make() -> Result<Payloads> {
        tokio::task::spawn_blocking(|| {
            let (bomb_10mb, bomb_1gb) = gzip_bombs()?;
            let mut wide = String::with_capacity(8 << 20);
            wide.push('[');
            for _ in 0..4_000_000 {
                wide.push_str("0,");
            }
            wide.push_str("0]");
            Ok(Payloads {
                deep: format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
                wide,
                bomb_10mb,
                bomb_1gb,
                huge_query: json!({"query": format!("{{{}}}", "a ".repeat(500_000))})
                    .to_string()
                    .into_bytes(),
            })
        })
        .await
        .map_err(|e| Error::Server(format!("making the hostile bodies failed: {e}")))?
    }
}

/// Huge headers, deep and wide JSON and gzip bombs on every endpoint, a huge GraphQL query.
async fn hostile_requests(
    base: String,
    address: String,
    endpoints: Vec<Endpoint>,
    payloads: Arc<Payloads>,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    for _ in 0..HUGE_HEADERS {
        answers.push(huge_header(&address).await);
    }
    let Ok(http) = reqwest::Client::builder().no_gzip().timeout(Duration::from_secs(60)).build() else {
        return answers;
    };
    for endpoint in &endpoints {
        let wrap = |value: &str| format!("{}{value}{}", endpoint.before, endpoint.after).into_bytes();
        answers.push(send(&http, &base, endpoint, "deep_json", wrap(&payloads.deep), None).await);
        answers.push(send(&http, &base, endpoint, "wide_json", wrap(&payloads.wide), None).await);
        let small = payloads.bomb_10mb.clone();
        answers.push(send(&http, &base, endpoint, "gzip_bomb_10mb", small, Some("gzip")).await);
        let big = payloads.bomb_1gb.clone();
        answers.push(send(&http, &base, endpoint, "gzip_bomb_1gb", big, Some("gzip")).await);
    }
    if let Some(graphql) = endpoints.iter().find(|e| e.path == "/graphql") {
        let query = payloads.huge_query.clone();
        answers.push(send(&http, &base, graphql, "graphql_huge_query", query, None).await);
    }
    answers
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    endpoint: &Endpoint,
    attack: &str,
    body: Vec<u8>,
    encoding: Option<&str>,
) -> Answer {
    let method = Method::from_bytes(endpoint.method.as_bytes()).unwrap_or(Method::POST);
    let mut request = http
        .request(method, format!("{base}{}", endpoint.path))
        .bearer_auth(&endpoint.token)
        .header("content-type", "application/json")
        .header("idempotency-key", Uuid::new_v4().to_string())
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let started = Instant::now();
    let (status, graphql_errors) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.bytes().await.unwrap_or_default();
            let errors = serde_json::from_slice::<Value>(&text).ok().is_some_and(|v| {
                v.get("errors").is_some_and(|e| !e.is_null()) && v.get("data").is_none_or(Value::is_null)
            });
            (Some(status), errors)
        }
        Err(_) => (None, false),
    };
    Answer { attack: attack.to_owned(), path: endpoint.path, status, graphql_errors, took: started.elapsed() }
}

/// A request with a 1 MB header: 431, or the connection closed.
async fn huge_header(address: &str) -> Answer {
    let started = Instant::now();
    let mut answer = Answer {
        attack: "huge_header".into(),
        path: "/healthz",
        status: None,
        graphql_errors: false,
        took: Duration::ZERO,
    };
    if let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address)).await
    {
        let mut request = b"GET /healthz HTTP/1.1\r\nHost: sim\r\nX-Huge: ".to_vec();
        request.extend(std::iter::repeat_n(b'a', 1 << 20));
        request.extend_from_slice(b"\r\n\r\n");
        // The server may close before reading it all: a failed write is a refusal too.
        let _ = stream.write_all(&request).await;
        let mut received = Vec::new();
        read_for(&mut stream, Duration::from_secs(10), &mut received).await;
        answer.status = status_of(&received);
    }
    answer.took = started.elapsed();
    answer
}

// ---------------------------------------------------------------------------------------------
// The flood

#[derive(Debug, Default)]
struct FloodResult {
    pushes: u64,
    failed: u64,
    latency_us: Vec<u64>,
    errors: Vec<String>,
}

impl FloodResult {
    fn summary(&self) -> Flood {
        Flood {
            pushes: self.pushes,
            changes: (self.pushes - self.failed) * FLOOD_CHANGES_PER_PUSH as u64,
            failed: self.failed,
            latency: Latency::of(&self.latency_us),
            errors: self.errors.clone(),
        }
    }
}

/// `pushes` pushes of [`FLOOD_CHANGES_PER_PUSH`] tiny journal records, one after the other.
async fn flood(client: SyncClient, pushes: u64) -> FloodResult {
    let mut result = FloodResult::default();
    for _ in 0..pushes {
        let now = OffsetDateTime::now_utc();
        let changes = (0..FLOOD_CHANGES_PER_PUSH)
            .map(|_| Change {
                domain: "journal".into(),
                mobile_id: Uuid::new_v4(),
                base_version: 0,
                op: Op::Upsert,
                data: Some(json!({"title": "x"})),
                patch: None,
                modified_at: now,
                priority: None,
                bu: None,
            })
            .collect();
        let push = PushRequest { device_id: "flood".into(), client_time: None, changes };
        result.pushes += 1;
        match client.push(&Uuid::new_v4().to_string(), &push).await {
            Ok(reply) => result.latency_us.push(micros(reply.latency)),
            Err(e) => {
                result.failed += 1;
                note(&mut result.errors, e.to_string());
            }
        }
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Invariants

/// Every connection of a kind was closed (or answered) by the server within `limit`.
fn closed_within(name: &'static str, fates: &[Fate], limit: Duration, what: &str) -> Invariant {
    let mut inv = Invariant::new(name);
    for fate in fates.iter().filter(|f| f.connected) {
        inv.checked += 1;
        match fate.ended_after {
            Some(after) if after <= limit => {}
            Some(after) => inv.fail(|| {
                format!("{what} was held {:.1} s (limit {:.1} s)", after.as_secs_f64(), limit.as_secs_f64())
            }),
            None => inv.fail(|| format!("{what} was still open after {:.1} s", limit.as_secs_f64())),
        }
        if let Some(status) = fate.status.filter(|s| *s >= 500) {
            inv.fail(|| format!("{what} was answered {status}"));
        }
    }
    if inv.checked == 0 && !fates.is_empty() {
        inv.fail(|| format!("no {what} could connect"));
    }
    inv
}

/// Every slow body was answered 408 (or its connection closed) within `limit` of its head.
fn slow_bodies_cut(fates: &[Fate], limit: Duration) -> Invariant {
    let mut inv = closed_within("slow_bodies_cut", fates, limit, "a slow body");
    for fate in fates.iter().filter(|f| f.connected && f.ended_after.is_some()) {
        if let Some(status) = fate.status.filter(|s| *s != 408) {
            inv.fail(|| format!("a slow body was answered {status}, not 408"));
        }
    }
    inv
}

fn memory_bounded(memory: &Memory) -> Invariant {
    let mut inv = Invariant::new("memory_bounded");
    match memory.rss_growth_bytes {
        Some(growth) => {
            inv.checked = 1;
            if growth > MAX_RSS_GROWTH_BYTES {
                inv.fail(|| {
                    format!(
                        "the server's resident memory grew by {} MiB during the attacks (limit {} MiB)",
                        growth >> 20,
                        MAX_RSS_GROWTH_BYTES >> 20
                    )
                });
            }
        }
        None => inv.note = Some("the server's memory could not be read (no /proc)".into()),
    }
    inv
}

fn hostile_refused(answers: &[Answer]) -> Invariant {
    let mut inv = Invariant::new("hostile_requests_refused");
    for answer in answers {
        inv.checked += 1;
        if !answer.refused() {
            inv.fail(|| {
                format!(
                    "{} on {} was answered {} (after {:?})",
                    answer.attack,
                    answer.path,
                    answer.outcome(),
                    answer.took
                )
            });
        }
    }
    inv
}

fn flood_served(flood: &FloodResult) -> Invariant {
    let mut inv = Invariant::new("flood_served");
    inv.checked = flood.pushes;
    for error in &flood.errors {
        inv.fail(|| format!("a push of the flood failed: {error}"));
    }
    inv.failure_count = flood.failed;
    inv
}

/// The well-behaved device's p99 during the attacks on connections and bodies: at most
/// [`MAX_LATENCY_FACTOR`] times its p99 before them (or [`LATENCY_FLOOR_MS`]) and never over
/// [`MAX_LATENCY_MS`]; during the flood, never over [`MAX_LATENCY_MS`] (the flood's pushes share
/// the database's writer with the device's, so the factor does not apply).
fn good_client_latency(before: &Sample, attacks: &Sample, flood: &Sample) -> Invariant {
    let mut inv = Invariant::new("good_client_latency");
    let phases = [
        ("push", "the attacks", &before.push_us, &attacks.push_us, true),
        ("pull", "the attacks", &before.pull_us, &attacks.pull_us, true),
        ("push", "the flood", &before.push_us, &flood.push_us, false),
        ("pull", "the flood", &before.pull_us, &flood.pull_us, false),
    ];
    for (what, phase, before, during, relative) in phases {
        let (before, during) = (Latency::of(before), Latency::of(during));
        inv.checked += 1;
        let bound = if relative {
            (before.p99_ms * MAX_LATENCY_FACTOR).clamp(LATENCY_FLOOR_MS, MAX_LATENCY_MS)
        } else {
            MAX_LATENCY_MS
        };
        if during.count == 0 {
            inv.fail(|| format!("no {what} succeeded during {phase}"));
        } else if during.p99_ms > bound {
            inv.fail(|| {
                format!(
                    "{what} p99 {:.1} ms during {phase}, over {bound:.1} ms (p99 {:.1} ms before)",
                    during.p99_ms, before.p99_ms
                )
            });
        }
    }
    inv
}

/// Every push and pull of the well-behaved device succeeded, during the attacks and the flood.
fn good_client_succeeded(phases: &[&Sample]) -> Invariant {
    let mut inv = Invariant::new("good_client_succeeded");
    for phase in phases {
        inv.checked += phase.pushes + phase.pulls;
        for error in &phase.errors {
            inv.fail(|| error.clone());
        }
    }
    inv.failure_count = phases.iter().map(|p| p.pushes_failed + p.pulls_failed).sum();
    if inv.failure_count > 0 {
        inv.passed = false;
    }
    inv
}
