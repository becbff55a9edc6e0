//! The live-changes cases of the benchmark (PROTOCOL.md section 11), over server-sent events:
//!
//! - write-to-stream: from a push's response to the change arriving on another device's open
//!   stream, idle, with 8 devices pushing, and (PostgreSQL) pushed through one node and
//!   streamed from another;
//! - fan-out: one commit to a tenant with many open streams, until every stream has it;
//! - idle connections: many open streams on one node, the server's resident memory with them
//!   and whether their heartbeats come on time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use sync_protocol::{PullRequest, PushRequest};
use uuid::Uuid;

use crate::bench::{BenchOptions, new_change, push_until};
use crate::client::SyncClient;
use crate::error::{Error, Result};
use crate::server::ServerProcess;
use crate::sse::Sse;
use crate::stats::Latency;

/// How long a change may take to reach a stream before the case fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams opened at once while setting up the fan-out and idle cases.
const OPEN_CONCURRENCY: usize = 100;

/// Every live case of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct LiveResults {
    pub write_to_stream_idle: Latency,
    pub write_to_stream_loaded: Latency,
    /// PostgreSQL: pushed through one node, streamed from another.
    pub write_to_stream_two_nodes: Option<Latency>,
    pub fanout: FanoutCase,
    pub idle: IdleCase,
}

/// One commit, many subscribers.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutCase {
    pub subscribers: usize,
    pub commits: usize,
    /// Push response to arrival, over every (commit, subscriber).
    pub delivery: Latency,
    /// Push response to the last subscriber's arrival, per commit.
    pub last_delivery: Latency,
}

/// Many open, idle streams on one node.
#[derive(Debug, Clone, Serialize)]
pub struct IdleCase {
    pub connections: usize,
    pub open_seconds: f64,
    pub rss_before_mib: f64,
    pub rss_with_connections_mib: f64,
    pub kib_per_connection: f64,
    pub heartbeat_secs: u64,
    /// Heartbeats received over the observation, and those later than a second after due.
    pub heartbeats: usize,
    pub late_heartbeats: usize,
    /// Longest time between two heartbeats of one stream.
    pub max_gap_ms: f64,
}

/// The cursor at the end of what `client` can see.
async fn end_cursor(client: &SyncClient) -> Result<Option<String>> {
    let mut cursor = None;
    loop {
        let request = PullRequest { cursor: cursor.clone(), limit: Some(1000), ..PullRequest::default() };
        let page = client.pull(&request).await?.body;
        cursor = Some(page.cursor);
        if !page.has_more {
            return Ok(cursor);
        }
    }
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Runs every live case against `server` (and `other_node` of the same database, if given).
pub async fn run(
    server: &ServerProcess,
    other_node: Option<&ServerProcess>,
    options: &BenchOptions,
) -> Result<LiveResults> {
    // One connection pool per node, each request with its own token.
    let streams = SyncClient::new(server.base_url(), "")?;
    let streams_on = |base_url: &str| SyncClient::new(base_url, "");
    let target = server.target();
    let tenant = format!("live-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let token = |tenant: &str, user: &str| target.issuer.device(tenant, user, None);
    let device = |base_url: &str, user: &str| -> Result<SyncClient> {
        Ok(streams_on(base_url)?.with_token(token(&tenant, user)?))
    };
    let base = server.base_url();
    // Which case failed, in the error.
    let labelled = |case: &'static str| move |e: Error| Error::Server(format!("live case `{case}`: {e}"));

    let write_to_stream_idle = write_to_stream(
        &device(base, "writer")?,
        &streams,
        &token(&tenant, "watcher")?,
        options.latency_samples,
    )
    .await
    .map_err(labelled("write-to-stream, idle"))?;

    let load = (0..8).map(|i| device(base, &format!("load{i}"))).collect::<Result<Vec<_>>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let background = tokio::spawn(push_until(load, Arc::clone(&stop)));
    let loaded = write_to_stream(
        &device(base, "writer2")?,
        &streams,
        &token(&tenant, "watcher2")?,
        options.latency_samples,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = background.await;

    let write_to_stream_two_nodes = match other_node {
        Some(node) => Some(
            write_to_stream(
                &device(base, "writer3")?,
                &streams_on(node.base_url())?,
                &token(&tenant, "watcher3")?,
                options.latency_samples,
            )
            .await
            .map_err(labelled("write-to-stream, two nodes"))?,
        ),
        None => None,
    };

    let fanout_tenant = format!("{tenant}-fan");
    let fanout = fanout(
        &streams.with_token(token(&fanout_tenant, "writer")?),
        &streams,
        &(0..options.fanout_subscribers)
            .map(|i| token(&fanout_tenant, &format!("sub{i}")))
            .collect::<Result<Vec<_>>>()?,
        options.fanout_commits,
    )
    .await
    .map_err(labelled("fan-out"))?;

    let idle_tenant = format!("{tenant}-idle");
    let idle_tokens = (0..options.idle_connections)
        .map(|i| token(&idle_tenant, &format!("idle{i}")))
        .collect::<Result<Vec<_>>>()?;
    let idle =
        idle_connections(server, &streams, &idle_tokens).await.map_err(labelled("idle connections"))?;

    Ok(LiveResults {
        write_to_stream_idle,
        write_to_stream_loaded: loaded.map_err(labelled("write-to-stream, 8 devices pushing"))?,
        write_to_stream_two_nodes,
        fanout,
        idle,
    })
}

/// From a push's response to the change on the watcher's stream (opened through `streams`, at
/// the end of the tenant), `samples` times.
async fn write_to_stream(
    writer: &SyncClient,
    streams: &SyncClient,
    watcher_token: &str,
    samples: usize,
) -> Result<Latency> {
    let watcher = writer.with_token(watcher_token);
    let cursor = end_cursor(&watcher).await?;
    let mut sse = streams.with_token(watcher_token).open_stream(cursor.as_deref()).await?;
    let writer_id = Uuid::new_v4().to_string();
    let mut latencies = Vec::with_capacity(samples);
    for n in 0..samples {
        let id = Uuid::new_v4();
        let request =
            PushRequest { device_id: writer_id.clone(), client_time: None, changes: vec![new_change(id)] };
        writer.push(&format!("w2s-{writer_id}-{n}"), &request).await?;
        let written = Instant::now();
        sse.until_record(&id.to_string()).await?;
        latencies.push(micros(written.elapsed()));
    }
    Ok(Latency::of(&latencies))
}

/// Opens one stream per token, at most [`OPEN_CONCURRENCY`] at a time.
async fn open_all(streams: &SyncClient, tokens: &[String]) -> Result<Vec<Sse>> {
    let mut opened = Vec::with_capacity(tokens.len());
    for chunk in tokens.chunks(OPEN_CONCURRENCY) {
        let clients: Vec<SyncClient> = chunk.iter().map(|token| streams.with_token(token.as_str())).collect();
        let opening = clients.iter().map(|client| client.open_stream(None));
        for sse in futures_util::future::join_all(opening).await {
            opened.push(sse?);
        }
    }
    Ok(opened)
}

/// `commits` single-change pushes to a tenant whose `tokens` each hold a stream; each commit
/// waits until every stream has it.
async fn fanout(
    writer: &SyncClient,
    streams: &SyncClient,
    tokens: &[String],
    commits: usize,
) -> Result<FanoutCase> {
    let subscribers = open_all(streams, tokens).await?;
    // Arrivals of each record id, stamped by the subscriber that read it.
    let arrivals: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let delivered = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|mut sse| {
            let (arrivals, delivered) = (Arc::clone(&arrivals), Arc::clone(&delivered));
            tokio::spawn(async move {
                while let Ok(Some(event)) = sse.next().await {
                    if event.event != "changes" {
                        continue;
                    }
                    let now = Instant::now();
                    let Ok(body) = serde_json::from_str::<Value>(&event.data) else { continue };
                    let ids = body["changes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["mobile_id"].as_str());
                    let mut map = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
                    for id in ids {
                        map.entry(id.to_owned()).or_default().push(now);
                        delivered.fetch_add(1, Ordering::Release);
                    }
                }
            })
        })
        .collect();

    let mut all = Vec::new();
    let mut last = Vec::new();
    let device = Uuid::new_v4().to_string();
    for n in 0..commits {
        let id = Uuid::new_v4();
        let before = delivered.load(Ordering::Acquire);
        let request =
            PushRequest { device_id: device.clone(), client_time: None, changes: vec![new_change(id)] };
        writer.push(&format!("fan-{device}-{n}"), &request).await?;
        let acknowledged = Instant::now();
        while delivered.load(Ordering::Acquire) < before + tokens.len() {
            if acknowledged.elapsed() > DELIVERY_TIMEOUT {
                return Err(Error::Server(format!("commit {n} did not reach every subscriber in time")));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let stamps = arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id.to_string())
            .unwrap_or_default();
        let since = |at: &Instant| micros(at.saturating_duration_since(acknowledged));
        all.extend(stamps.iter().map(since));
        last.push(stamps.iter().map(since).max().unwrap_or(0));
    }
    for reader in readers {
        reader.abort();
    }
    Ok(FanoutCase {
        subscribers: tokens.len(),
        commits,
        delivery: Latency::of(&all),
        last_delivery: Latency::of(&last),
    })
}

/// One idle stream per token; after they are open, watches two heartbeat periods.
async fn idle_connections(
    server: &ServerProcess,
    streams: &SyncClient,
    tokens: &[String],
) -> Result<IdleCase> {
    let mib = |bytes: Option<u64>| bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let rss_before_mib = mib(server.rss_bytes());
    let started = Instant::now();
    let opened = open_all(streams, tokens).await?;
    let open_seconds = started.elapsed().as_secs_f64();
    let heartbeat = ServerProcess::heartbeat_secs();
    let watch_for = Duration::from_secs(heartbeat * 2 + 1);
    let readers: Vec<_> = opened
        .into_iter()
        .map(|mut sse| {
            tokio::spawn(async move {
                let mut beats = Vec::new();
                let deadline = Instant::now() + watch_for;
                while let Ok(Ok(Some(event))) = tokio::time::timeout_at(deadline.into(), sse.next()).await {
                    if event.event == "heartbeat" {
                        beats.push(Instant::now());
                    }
                }
                beats
            })
        })
        .collect();
    // Memory with every stream open and waiting.
    tokio::time::sleep(Duration::from_secs(heartbeat)).await;
    let rss_with_connections_mib = mib(server.rss_bytes());
    let (mut heartbeats, mut late, mut max_gap) = (0, 0, Duration::ZERO);
    let due = Duration::from_secs(heartbeat);
    for reader in readers {
        let beats = reader.await.map_err(|e| Error::Server(format!("a stream reader failed: {e}")))?;
        heartbeats += beats.len();
        if beats.is_empty() {
            late += 1;
        }
        for pair in beats.windows(2) {
            let gap = pair[1].saturating_duration_since(pair[0]);
            max_gap = max_gap.max(gap);
            if gap > due + Duration::from_secs(1) {
                late += 1;
            }
        }
    }
    Ok(IdleCase {
        connections: tokens.len(),
        open_seconds,
        rss_before_mib,
        rss_with_connections_mib,
        kib_per_connection: (rss_with_connections_mib - rss_before_mib) * 1024.0 / tokens.len().max(1) as f64,
        heartbeat_secs: heartbeat,
        heartbeats,
        late_heartbeats: late,
        max_gap_ms: max_gap.as_secs_f64() * 1000.0,
    })
}

/// The live section of `docs/benchmarks.md`.
pub fn markdown(out: &mut String, results: &[(&str, &LiveResults)]) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "\n### Live changes (server-sent events)\n\nWrite-to-stream: from a push's response to the \
         change arriving on another device's open stream (the watcher's stream opens at the end of \
         the tenant). Two nodes: pushed through one `serve` process, streamed from a second one on \
         the same PostgreSQL database (LISTEN/NOTIFY wake-ups).\n"
    );
    let _ = writeln!(out, "| backend | case | samples | p50 ms | p95 ms | p99 ms | max ms |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for (backend, live) in results {
        let mut cases =
            vec![("idle", &live.write_to_stream_idle), ("8 devices pushing", &live.write_to_stream_loaded)];
        if let Some(two) = &live.write_to_stream_two_nodes {
            cases.push(("two nodes, idle", two));
        }
        for (name, l) in cases {
            let _ = writeln!(
                out,
                "| {backend} | {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                l.count, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            );
        }
        let f = &live.fanout;
        for (name, l) in
            [("fan-out, every delivery", &f.delivery), ("fan-out, last subscriber", &f.last_delivery)]
        {
            let _ = writeln!(
                out,
                "| {backend} | {name} ({} streams, {} commits) | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                f.subscribers, f.commits, l.count, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            );
        }
    }
    let _ = writeln!(
        out,
        "\nIdle connections: streams held open on one node, each with its own token; resident memory \
         of the server before and with them; heartbeats watched for two periods (late: more than a \
         second after due, or none).\n"
    );
    let _ = writeln!(
        out,
        "| backend | streams | opened in s | RSS before MiB | RSS with streams MiB | KiB per stream | heartbeat s | heartbeats | late | longest gap ms |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (backend, live) in results {
        let i = &live.idle;
        let _ = writeln!(
            out,
            "| {backend} | {} | {:.1} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {:.0} |",
            i.connections,
            i.open_seconds,
            i.rss_before_mib,
            i.rss_with_connections_mib,
            i.kib_per_connection,
            i.heartbeat_secs,
            i.heartbeats,
            i.late_heartbeats,
            i.max_gap_ms
        );
    }
}
