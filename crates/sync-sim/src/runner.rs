//! Runs a scenario against a server: seed, initial pull, the working phase, the final drain,
//! then the invariants and the report.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync_client::RecordId;
use sync_protocol::PullRequest;

use crate::client::SyncClient;
use crate::db::Database;
use crate::device::{Ack, Device, Held};
use crate::error::{Error, Result};
use crate::invariants::{self, ServerRecord, ServerView};
use crate::network::NetworkProfile;
use crate::report::{InitialSync, Report};
use crate::scenario::{Scenario, ScenarioKind};
use crate::stats::{DeviceStats, Progress};
use crate::token::TokenIssuer;

/// How many failed pushes a device tolerates in the final drain before it reports a violation.
const DRAIN_ATTEMPTS: u32 = 200;

/// The server a scenario runs against.
#[derive(Debug, Clone)]
pub struct Target {
    /// e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Other nodes of the same server (PostgreSQL): devices are spread over `base_url` and
    /// these, round robin.
    pub other_nodes: Vec<String>,
    /// Signs the fleet's tokens with the server's JWT secret.
    pub issuer: TokenIssuer,
    /// The server's database, when the simulator may read it: the invariants on the server's
    /// history (every acknowledged change is in it, no version made twice) need it; without
    /// it they are checked against the final state only.
    pub database: Option<Database>,
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The tenant to use (default: a fresh `sim-<scenario>-<random>` one).
    pub tenant: Option<String>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// Runs `scenario` against `target` and checks the invariants. An `Err` means the run could
/// not be carried out (bad parameters, server unreachable); a run that completes returns its
/// report, whose invariants say whether the server behaved.
pub async fn run(scenario: &Scenario, target: &Target, options: &RunOptions) -> Result<Report> {
    scenario.validate()?;
    let tenant = options.tenant.clone().unwrap_or_else(|| {
        format!("sim-{}-{}", scenario.kind, &uuid::Uuid::new_v4().simple().to_string()[..8])
    });
    let units: Vec<String> = (0..scenario.units()).map(|u| format!("u{u}")).collect();
    let behaviour = Arc::new(scenario.behaviour());
    let progress = Arc::new(Progress::default());
    let nodes: Vec<&str> = std::iter::once(target.base_url.as_str())
        .chain(target.other_nodes.iter().map(String::as_str))
        .collect();
    // One connection pool per node; each device acts with its own token.
    let pools = nodes.iter().map(|node| SyncClient::new(node, "")).collect::<Result<Vec<_>>>()?;
    let client_on = |node: usize, user: &str, unit: Option<&String>| -> Result<SyncClient> {
        let units = unit.map(|u| vec![u.clone()]);
        let token = target.issuer.device(&tenant, user, units.as_deref())?;
        Ok(pools[node % pools.len()].with_token(token))
    };
    let client_for = |user: &str, unit: Option<&String>| client_on(0, user, unit);

    // Seed: per unit, its shared records and its share of the initial records.
    let per_unit = scenario.initial_records.div_ceil(units.len());
    let mut seeders = Vec::with_capacity(units.len());
    for (u, unit) in units.iter().enumerate() {
        let seed_behaviour = crate::device::Behaviour {
            conflict_probability: 0.0,
            create_probability: 1.0,
            ..(*behaviour).clone()
        };
        let mut seeder = Device::new(
            format!("seed-{unit}"),
            unit.clone(),
            Arc::new(seed_behaviour),
            client_for(&format!("seeder-{unit}"), Some(unit))?,
            NetworkProfile::perfect(),
            time::Duration::ZERO,
            scenario.seed.wrapping_mul(7919).wrapping_add(u as u64),
        );
        for _ in 0..scenario.shared_records + per_unit {
            seeder.edit();
        }
        seeders.push(seeder);
    }
    let seeders = join_all(
        seeders,
        |mut seeder, progress| async move {
            seeder.flush(&progress, DRAIN_ATTEMPTS).await;
            seeder
        },
        &progress,
    )
    .await?;

    // The fleet, and its first pull.
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let skew_ms = i64::try_from(scenario.max_clock_skew.as_millis()).unwrap_or(i64::MAX);
    let mut devices = Vec::with_capacity(scenario.devices);
    for i in 0..scenario.devices {
        let unit = &units[i / scenario.devices_per_unit];
        let skew = if skew_ms > 0 { rng.random_range(-skew_ms..=skew_ms) } else { 0 };
        devices.push(Device::new(
            format!("dev-{i:04}"),
            unit.clone(),
            Arc::clone(&behaviour),
            client_on(i, &format!("tech{i}"), Some(unit))?,
            scenario.network.clone(),
            time::Duration::milliseconds(skew),
            scenario.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
        ));
    }
    let started = Instant::now();
    let pulled_before = progress.pulled();
    let devices = join_all(
        devices,
        |mut device, progress| async move {
            for _ in 0..DRAIN_ATTEMPTS {
                if device.pull_to_end(true, None, &progress).await {
                    break;
                }
            }
            device.adopt_shared();
            device
        },
        &progress,
    )
    .await?;
    let initial_sync = InitialSync::new(progress.pulled() - pulled_before, started.elapsed());

    // Work.
    let work_started = Instant::now();
    let deadline = work_started + scenario.duration;
    let back_online = (scenario.kind == ScenarioKind::OfflineBurst)
        .then(|| work_started + scenario.duration.mul_f64(scenario.offline_share));
    let bar =
        options.progress.then(|| ProgressBar::start(Arc::clone(&progress), scenario.duration)).flatten();
    let devices = join_all(
        devices,
        move |mut device, progress| async move {
            if let Some(back) = back_online {
                device.work_offline_until(back).await;
            }
            device.run_until(deadline, &progress).await;
            device
        },
        &progress,
    )
    .await?;

    // Drain on a clean network: everyone sends what is left, then everyone pulls to the end.
    let devices = join_all(
        devices,
        |mut device, progress| async move {
            let quality = device.network_quality();
            device.set_network(NetworkProfile { quality, ..NetworkProfile::perfect() });
            device.flush(&progress, DRAIN_ATTEMPTS).await;
            device
        },
        &progress,
    )
    .await?;
    // Live: what the server acknowledged must reach every device that may see it through its
    // stream alone, before anyone pulls.
    let mut live = None;
    let devices = if scenario.live {
        let server = read_server(&pools[0], target, &tenant).await?;
        let expected: HashMap<String, Vec<(RecordId, i64)>> =
            units.iter().map(|unit| (unit.clone(), server.visible_versions(unit))).collect();
        let checked = devices.iter().map(|d| expected.get(&d.unit).map_or(0, Vec::len) as u64).sum::<u64>();
        let expected = Arc::new(expected);
        let timeout = scenario.live_delivery_timeout;
        let misses = Arc::new(std::sync::Mutex::new(Vec::new()));
        let devices = {
            let misses = Arc::clone(&misses);
            join_all(
                devices,
                move |mut device, progress| {
                    let (expected, misses) = (Arc::clone(&expected), Arc::clone(&misses));
                    async move {
                        let wanted = expected.get(&device.unit).cloned().unwrap_or_default();
                        let missing = device.await_stream(&wanted, timeout, &progress).await;
                        if let Some((id, version)) = missing.first() {
                            let example = format!("{id} v{version}");
                            misses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((
                                device.id.clone(),
                                missing.len(),
                                example,
                            ));
                        }
                        device.close_stream();
                        device
                    }
                },
                &progress,
            )
            .await?
        };
        let misses = std::mem::take(&mut *misses.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        live = Some(invariants::live_delivery(checked, &misses));
        devices
    } else {
        devices
    };
    let devices = join_all(
        devices,
        |mut device, progress| async move {
            let mut done = false;
            for _ in 0..DRAIN_ATTEMPTS {
                if device.pull_to_end(true, None, &progress).await {
                    done = true;
                    break;
                }
            }
            if !done {
                device.violations.push(format!("{}: could not pull to the end", device.id));
            }
            device
        },
        &progress,
    )
    .await?;
    let elapsed = work_started.elapsed();
    if let Some(bar) = bar {
        bar.finish().await;
    }

    // The server's side, and the verdict.
    let server = read_server(&pools[0], target, &tenant).await?;
    let mut acks: Vec<Ack> = Vec::new();
    let mut violations = Vec::new();
    for device in seeders.iter().chain(&devices) {
        acks.extend(device.acks.iter().cloned());
        violations.extend(device.violations.iter().cloned());
    }
    let replicas: Vec<HashMap<RecordId, Held>> = devices.iter().map(Device::replica).collect();
    let fleet: Vec<(&str, &str, &HashMap<RecordId, Held>)> =
        devices.iter().zip(&replicas).map(|(d, r)| (d.id.as_str(), d.unit.as_str(), r)).collect();
    let mut invariants = invariants::check(&fleet, &acks, &violations, &server);
    invariants.extend(live);

    let mut stats = DeviceStats::default();
    for device in &devices {
        stats.merge(&device.stats);
    }
    Ok(Report::new(
        scenario,
        tenant,
        &stats,
        elapsed,
        (scenario.kind == ScenarioKind::InitialSync).then_some(initial_sync),
        invariants,
    ))
}

/// Runs `step` for every device concurrently and gives the devices back in order.
async fn join_all<F, Fut>(devices: Vec<Device>, step: F, progress: &Arc<Progress>) -> Result<Vec<Device>>
where
    F: Fn(Device, Arc<Progress>) -> Fut,
    Fut: std::future::Future<Output = Device> + Send + 'static,
{
    let handles: Vec<_> =
        devices.into_iter().map(|device| tokio::spawn(step(device, Arc::clone(progress)))).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.map_err(|e| Error::Server(format!("a device task failed: {e}")))?);
    }
    Ok(out)
}

/// What the server holds for `tenant`: its state through a full pull, and its history and
/// conflict log from the database when we may read it (else the conflict list over HTTP).
async fn read_server(pool: &SyncClient, target: &Target, tenant: &str) -> Result<ServerView> {
    let auditor = pool.with_token(target.issuer.device(tenant, "auditor", None)?);
    let mut state = HashMap::new();
    let mut cursor = None;
    loop {
        let request = PullRequest { cursor: cursor.clone(), limit: Some(1000), ..PullRequest::default() };
        let page = auditor.pull(&request).await?.body;
        for record in page.changes {
            let held = Held {
                version: record.version,
                data: record.data.unwrap_or_default(),
                deleted: record.deleted,
            };
            state
                .insert(RecordId::new(record.domain, record.mobile_id), ServerRecord { held, bu: record.bu });
        }
        cursor = Some(page.cursor);
        if !page.has_more {
            break;
        }
    }
    match &target.database {
        Some(db) => {
            let history = db.history(tenant).await?;
            let conflicts = db.conflicts(tenant).await?;
            Ok(ServerView::with_database(state, history, conflicts))
        }
        None => {
            let admin = auditor.with_token(target.issuer.admin(tenant, "auditor")?);
            let conflicts = admin.conflicts(invariants::HTTP_CONFLICT_LIMIT).await?;
            Ok(ServerView::over_http(state, conflicts))
        }
    }
}

/// A one-line progress bar on stderr, redrawn a few times a second.
struct ProgressBar {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ProgressBar {
    fn start(progress: Arc<Progress>, duration: Duration) -> Option<ProgressBar> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let task = tokio::spawn(async move {
            loop {
                let elapsed = started.elapsed();
                let share = (elapsed.as_secs_f64() / duration.as_secs_f64().max(0.001)).min(1.0);
                let filled = (share * 30.0) as usize;
                let phase = if share >= 1.0 { "draining" } else { "working" };
                eprint!(
                    "\r[{}{}] {:5.1}s {phase:9} changes {:>9}  pulled {:>9}",
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    elapsed.as_secs_f64(),
                    progress.changes(),
                    progress.pulled(),
                );
                let _ = std::io::stderr().flush();
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            eprintln!();
        });
        Some(ProgressBar { stop, task })
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
