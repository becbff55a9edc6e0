//! The scheduled jobs (snapshots, device-health check, purge) and who runs them.
//!
//! Every node runs the scheduler, but a job only runs on the node that holds the leader lock,
//! so each runs once per cluster. On PostgreSQL the lock is a session advisory lock held on a
//! dedicated connection: it is released when the node stops or its connection drops, and
//! another node takes over at its next attempt. SQLite has one server per database file, so
//! the lock is a plain in-process one (a mutex that keeps two job runs from overlapping).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use sync_domain::{Database, DbConnection, SyncEngine};
use tokio::sync::{Mutex, watch};
use tokio::time::{Instant, MissedTickBehavior};

/// The advisory lock key: "syncjobs" in ASCII.
pub const ADVISORY_LOCK_KEY: i64 = 0x7379_6e63_6a6f_6273;
/// How often a follower tries to become leader, and a leader checks its connection.
const LEADER_POLL: Duration = Duration::from_secs(15);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Whether this node may run the jobs now.
#[derive(Debug, Clone)]
pub struct Leadership {
    leader: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Leadership {
    /// Takes part in the election: on PostgreSQL a background thread holds (or keeps trying
    /// to take) the advisory lock; on SQLite this node is always the leader.
    pub fn start(db: &Database) -> Leadership {
        let leadership =
            Leadership { leader: Arc::new(AtomicBool::new(false)), stop: Arc::new(AtomicBool::new(false)) };
        if db.backend() == sync_domain::Backend::Sqlite {
            leadership.leader.store(true, Ordering::SeqCst);
            return leadership;
        }
        let (db, leader, stop) = (db.clone(), leadership.leader.clone(), leadership.stop.clone());
        let spawned = thread::Builder::new().name("sync-leader".into()).spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Err(e) = db.run_sync(|conn| hold_lock(conn, &leader, &stop)) {
                    tracing::warn!(error = %e, "leader lock connection lost; retrying");
                }
                leader.store(false, Ordering::SeqCst);
                sleep_unless_stopped(LEADER_POLL, &stop);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the leader-lock thread; scheduled jobs stay off on this node");
        }
        leadership
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Releases the lock (the thread unlocks and returns its connection).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Holds the advisory lock on this connection until `stop`, trying to take it while another
/// node has it. Returns an error when the connection fails.
fn hold_lock(conn: &mut DbConnection, leader: &AtomicBool, stop: &AtomicBool) -> sync_domain::Result<()> {
    let DbConnection::Pg(pg) = conn else { return Ok(()) };
    loop {
        if stop.load(Ordering::SeqCst) {
            if leader.swap(false, Ordering::SeqCst) {
                let _ = diesel::sql_query("SELECT pg_advisory_unlock($1) AS locked")
                    .bind::<BigInt, _>(ADVISORY_LOCK_KEY)
                    .get_result::<Locked>(pg);
            }
            return Ok(());
        }
        if leader.load(Ordering::SeqCst) {
            // Still connected (and so still holding the lock)?
            diesel::sql_query("SELECT true AS locked").get_result::<Locked>(pg)?;
        } else {
            let Locked { locked } = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind::<BigInt, _>(ADVISORY_LOCK_KEY)
                .get_result::<Locked>(pg)?;
            if locked {
                tracing::info!("this node now runs the scheduled jobs");
            }
            leader.store(locked, Ordering::SeqCst);
        }
        sleep_unless_stopped(LEADER_POLL, stop);
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(200);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::SeqCst) {
        thread::sleep(step);
        slept += step;
    }
}

/// The jobs themselves, shared by the scheduler and the subcommands.
pub mod run {
    use super::*;

    /// Snapshots `tenant` (or every tenant for `None`); returns `(tenant, snapshot_id)`.
    pub async fn snapshots(
        engine: &SyncEngine,
        tenant: Option<&str>,
        window_hours: i64,
    ) -> sync_domain::Result<Vec<(String, String)>> {
        let tenants = match tenant {
            Some(t) => vec![t.to_owned()],
            None => engine.tenants().await?,
        };
        let mut created = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let snapshot = engine.create_snapshot(&tenant, window_hours).await?;
            created.push((tenant, snapshot.snapshot_id));
        }
        Ok(created)
    }

    /// Purges every tenant's history below its oldest active cursor; returns the rows removed.
    pub async fn purge(engine: &SyncEngine) -> sync_domain::Result<usize> {
        let mut removed = 0;
        for tenant in engine.tenants().await? {
            let report = engine.purge(&tenant).await?;
            removed += report.tombstones + report.versions + report.idempotency_keys;
        }
        Ok(removed)
    }
}

/// Runs the jobs on their schedule until `shutdown` turns true: snapshots every
/// `analytics_snapshot_interval_hours`, the device-health check and the purge daily. The first
/// run of each is one period after start.
pub async fn schedule(engine: SyncEngine, leadership: Leadership, mut shutdown: watch::Receiver<bool>) {
    let hours = u64::from(engine.config().analytics_snapshot_interval_hours.max(1));
    let snapshot_every = Duration::from_secs(hours * 3600);
    let mut snapshot = tokio::time::interval_at(Instant::now() + snapshot_every, snapshot_every);
    let mut daily = tokio::time::interval_at(Instant::now() + DAY, DAY);
    snapshot.set_missed_tick_behavior(MissedTickBehavior::Delay);
    daily.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let running = Mutex::new(());
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = snapshot.tick() => {
                if !leadership.is_leader() { continue; }
                let _guard = running.lock().await;
                match run::snapshots(&engine, None, i64::try_from(hours).unwrap_or(1)).await {
                    Ok(created) => tracing::info!(snapshots = created.len(), "scheduled snapshots created"),
                    Err(e) => tracing::error!(error = %e, "scheduled snapshot failed"),
                }
            }
            _ = daily.tick() => {
                if !leadership.is_leader() { continue; }
                let _guard = running.lock().await;
                match engine.check_device_health(engine.config().device_health_threshold).await {
                    Ok(unhealthy) if unhealthy.is_empty() => tracing::info!("device health check: all healthy"),
                    Ok(unhealthy) => tracing::warn!(devices = unhealthy.len(), "device health check: unhealthy devices"),
                    Err(e) => tracing::error!(error = %e, "device health check failed"),
                }
                match run::purge(&engine).await {
                    Ok(removed) => tracing::info!(removed, "purge done"),
                    Err(e) => tracing::error!(error = %e, "purge failed"),
                }
            }
        }
    }
    leadership.stop();
}
