//! The sync engine: push, pull, queue management, conflicts, policies and analytics over the
//! storage layer.

mod activity;
mod admin;
mod analytics;
mod cache;
mod decide;
mod health;
mod insight;
mod live;
mod pull;
mod push;
mod queue;
mod webhooks;

use std::sync::Arc;

pub use activity::{
    ACTIVE_DEVICE_MINUTES, Activity, ActivityBucket, ActivitySummary, DeviceList, DeviceSyncView,
    DeviceSyncs, MAX_ACTIVITY_MINUTES, MAX_DEVICE_LIST, MAX_DEVICE_SYNCS, activity_buckets, activity_summary,
};
pub use admin::{Choice, ConflictView, PolicyUpdate, PolicyView, ResolveRequest, ResolveResponse};
pub use analytics::{
    AlertView, ConflictReportRow, Dashboard, DeviceHealthView, MAX_SNAPSHOT_WINDOW_HOURS,
    MIN_SNAPSHOT_WINDOW_HOURS, PurgeReport, SnapshotCreated, SnapshotView, check_snapshot_window,
};
pub use health::{FailedSync, TIME_PER_ITEM_WEIGHT, WireBytes, next_time_per_item};
pub use insight::{
    AnomalyBaselines, AnomalyRun, BUCKET_MINUTES, JUDGED_MINUTES, RiskHistory, RiskRun, SeriesKey,
    bucket_series, current_activity, detector_config, risk_examples, window_inputs,
};
pub use live::AdminEvents;
pub use pull::{BodyEncoding, Identity, PullReply, parse_cursor};
pub use push::{PushReply, check_device_id, check_idempotency_key, request_hash};
pub use webhooks::{
    AttemptResult, DueDelivery, check_webhook, check_webhook_name, next_attempt_at, retry_delay,
};

use crate::{
    Database, DbConnection, Result,
    config::SyncConfig,
    domains::DomainRegistry,
    live::{CommitListener, Committed},
};

/// How often a write transaction that lost a race is retried before the error is returned.
const WRITE_ATTEMPTS: usize = 4;

/// A fault to inject into a push after its records are written and before it commits, to
/// prove that a failing push leaves nothing behind (feature `testing`).
pub type FaultHook = Arc<dyn Fn(&crate::protocol::PushRequest) -> Result<()> + Send + Sync>;

/// The sync engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct SyncEngine {
    db: Database,
    config: Arc<SyncConfig>,
    domains: Arc<DomainRegistry>,
    fault: Option<FaultHook>,
    /// Told of every committed write (live subscribers, caches).
    listener: Option<Arc<dyn CommitListener>>,
    /// Tenant policy overrides, trusted while the listener vouches for them.
    policies: Arc<cache::PolicyCache>,
}

impl std::fmt::Debug for SyncEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncEngine")
            .field("db", &self.db)
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

impl SyncEngine {
    pub fn new(db: Database, config: SyncConfig, domains: DomainRegistry) -> Self {
        Self {
            db,
            config: Arc::new(config),
            domains: Arc::new(domains),
            fault: None,
            listener: None,
            policies: Arc::default(),
        }
    }

    /// The same engine telling `listener` of every committed write. On PostgreSQL the
    /// committing transactions then also send a wake-up notification to the other nodes
    /// (see [`crate::live`]).
    pub fn with_commit_listener(mut self, listener: Arc<dyn CommitListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// `tenant`'s policy overrides, from this node's cache while the listener vouches for it.
    fn tenant_policies(
        &self,
        conn: &mut DbConnection,
        tenant: &str,
    ) -> Result<Arc<Vec<crate::store::PolicyRow>>> {
        let generation = self.listener.as_ref().and_then(|l| l.cache_generation());
        self.policies.get(conn, tenant, generation)
    }

    /// Tells the listener, if any, of facts that have committed.
    fn publish(&self, facts: &[Committed]) {
        if let Some(listener) = &self.listener {
            for fact in facts {
                listener.committed(fact);
            }
        }
    }

    /// Sends a fact's wake-up inside the caller's transaction when a listener is attached
    /// (PostgreSQL; nothing on SQLite).
    fn notify_in_tx(&self, conn: &mut DbConnection, fact: &Committed) -> Result<()> {
        if self.listener.is_some() {
            crate::live::pg_notify(conn, fact.kind, &fact.tenant, fact.seq)?;
        }
        Ok(())
    }

    /// The same engine with a fault injected into every push before it commits.
    #[cfg(feature = "testing")]
    pub fn with_fault(mut self, fault: FaultHook) -> Self {
        self.fault = Some(fault);
        self
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    pub fn domains(&self) -> &DomainRegistry {
        &self.domains
    }

    /// Runs `f` in a write transaction, again from the start when it lost a race with a
    /// concurrent writer ([`crate::Error::WriteConflict`]).
    async fn retrying_write<T, F>(&self, f: F) -> Result<T>
    where
        F: Fn(&mut DbConnection) -> Result<T> + Send + Sync + 'static,
        T: Send + 'static,
    {
        self.retrying(None, f).await
    }

    /// [`SyncEngine::retrying_write`] in a group commit with the concurrent writers of
    /// `tenant` (see [`Database::write_grouped`]): for the hot paths, pushes and pulls that
    /// remember a cursor. `f` must only write to the database.
    async fn retrying_grouped_write<T, F>(&self, tenant: &str, f: F) -> Result<T>
    where
        F: Fn(&mut DbConnection) -> Result<T> + Send + Sync + 'static,
        T: Send + 'static,
    {
        self.retrying(Some(tenant), f).await
    }

    async fn retrying<T, F>(&self, group: Option<&str>, f: F) -> Result<T>
    where
        F: Fn(&mut DbConnection) -> Result<T> + Send + Sync + 'static,
        T: Send + 'static,
    {
        let f = Arc::new(f);
        let mut attempt = 1;
        loop {
            let g = Arc::clone(&f);
            let result = match group {
                Some(lane) => self.db.write_grouped(lane, move |conn| g(conn)).await,
                None => self.db.write_tx(move |conn| g(conn)).await,
            };
            match result {
                Err(err @ crate::Error::WriteConflict(_)) if attempt >= WRITE_ATTEMPTS => return Err(err),
                Err(crate::Error::WriteConflict(reason)) => {
                    tracing::debug!(attempt, %reason, "write transaction lost a race; retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
