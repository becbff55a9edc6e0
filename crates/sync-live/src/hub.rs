//! The change hub: wakes the subscribers of a tenant when a commit concerns them, counts live
//! connections and streams per token, and carries cache invalidations.
//!
//! A wake-up is only a hint: each tenant has a generation counter in a `watch` channel, bumped
//! by every committed fact (from this process, or from another node through PostgreSQL
//! NOTIFY). A subscriber notes the generation *before* it reads by cursor; a commit during
//! the read bumps it again, so the subscriber reads once more. Nothing is queued per
//! subscriber here, so a slow one can never slow the hub or the others.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::Rng;
use sync_domain::live::{CommitKind, CommitListener, Committed, WAKE_ALL, Wake};
use tokio::sync::watch;

use crate::config::LiveConfig;
use crate::error::{LiveError, Result};

/// One tenant's wake-up channels.
#[derive(Debug)]
struct TenantEntry {
    /// Bumped by changes and purges.
    changes: watch::Sender<u64>,
    /// Bumped by new conflicts and alerts (admin streams).
    admin: watch::Sender<u64>,
    /// The change sequences of the latest wake-ups: a fact heard twice (in process, then
    /// through this node's own NOTIFY) wakes once. Only an exact repeat is redundant, so that
    /// no rule about the order in which wake-ups arrive has to hold for a change to be read.
    recent: VecDeque<i64>,
}

/// Wake-ups remembered per tenant to recognise repeats.
const RECENT_WAKES: usize = 64;

impl TenantEntry {
    fn new() -> Self {
        TenantEntry { changes: watch::channel(0).0, admin: watch::channel(0).0, recent: VecDeque::new() }
    }

    fn idle(&self) -> bool {
        self.changes.receiver_count() == 0 && self.admin.receiver_count() == 0
    }
}

/// Counters of what the hub did, for metrics and tests.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Committed facts received (in process and from NOTIFY).
    pub facts: AtomicU64,
    /// Facts that woke a tenant's subscribers.
    pub wakes: AtomicU64,
    /// Facts ignored because the same commit already woke the tenant.
    pub redundant: AtomicU64,
    /// Reads by cursor that went to the database.
    pub reads: AtomicU64,
    /// Reads served by joining another subscriber's identical read.
    pub coalesced: AtomicU64,
    /// Notifications received on the LISTEN connection.
    pub notifications: AtomicU64,
    /// Times the LISTEN connection was (re)established.
    pub listens: AtomicU64,
    /// Subscribers disconnected for being too slow.
    pub slow_disconnects: AtomicU64,
}

/// One stream of a token: its id and the flag that evicts it.
type TokenStream = (u64, watch::Sender<bool>);

#[derive(Debug)]
struct Inner {
    config: LiveConfig,
    tenants: Mutex<HashMap<String, TenantEntry>>,
    /// Bumped by every cache invalidation (policy change, token revocation) and whenever the
    /// LISTEN connection is lost (invalidations may have been missed).
    cache_generation: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    connections: AtomicUsize,
    streams: Mutex<HashMap<String, VecDeque<TokenStream>>>,
    next_stream: AtomicU64,
    /// Whether a LISTEN connection is up (PostgreSQL), so that other nodes' invalidations
    /// arrive: caches may only be trusted then.
    listening: AtomicBool,
    /// Whether this hub needs a LISTEN connection to hear other nodes (PostgreSQL).
    distributed: AtomicBool,
    listener_pid: AtomicI32,
    stats: HubStats,
}

/// The hub. Cheap to clone; one per process.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps hold plain data; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The wake-up channels a subscriber watches.
#[derive(Debug)]
pub struct TenantWatch {
    pub changes: watch::Receiver<u64>,
    pub admin: watch::Receiver<u64>,
}

impl Hub {
    pub fn new(config: LiveConfig) -> Self {
        Hub {
            inner: Arc::new(Inner {
                config,
                tenants: Mutex::new(HashMap::new()),
                cache_generation: watch::channel(0).0,
                shutdown: watch::channel(false).0,
                connections: AtomicUsize::new(0),
                streams: Mutex::new(HashMap::new()),
                next_stream: AtomicU64::new(1),
                listening: AtomicBool::new(false),
                distributed: AtomicBool::new(false),
                listener_pid: AtomicI32::new(0),
                stats: HubStats::default(),
            }),
        }
    }

    pub fn config(&self) -> &LiveConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    /// The wake-up channels of `tenant`.
    pub fn watch(&self, tenant: &str) -> TenantWatch {
        let mut tenants = lock(&self.inner.tenants);
        let entry = tenants.entry(tenant.to_owned()).or_insert_with(TenantEntry::new);
        TenantWatch { changes: entry.changes.subscribe(), admin: entry.admin.subscribe() }
    }

    /// Handles a wake-up (from this process or another node).
    pub fn wake(&self, wake: &Wake) {
        let stats = &self.inner.stats;
        stats.facts.fetch_add(1, Ordering::Relaxed);
        match wake.kind {
            CommitKind::Policy | CommitKind::Token => {
                self.invalidate_caches();
                return;
            }
            CommitKind::Changes | CommitKind::Purge | CommitKind::Conflict | CommitKind::Alert => {}
        }
        if wake.tenant == WAKE_ALL {
            self.wake_all();
            return;
        }
        let mut tenants = lock(&self.inner.tenants);
        let Some(entry) = tenants.get_mut(&wake.tenant) else { return };
        if entry.idle() {
            tenants.remove(&wake.tenant);
            return;
        }
        match wake.kind {
            CommitKind::Changes if wake.seq > 0 && entry.recent.contains(&wake.seq) => {
                stats.redundant.fetch_add(1, Ordering::Relaxed);
            }
            CommitKind::Changes | CommitKind::Purge => {
                if wake.seq > 0 {
                    if entry.recent.len() == RECENT_WAKES {
                        entry.recent.pop_front();
                    }
                    entry.recent.push_back(wake.seq);
                }
                entry.changes.send_modify(|g| *g += 1);
                stats.wakes.fetch_add(1, Ordering::Relaxed);
            }
            CommitKind::Conflict | CommitKind::Alert => {
                entry.admin.send_modify(|g| *g += 1);
                stats.wakes.fetch_add(1, Ordering::Relaxed);
            }
            CommitKind::Policy | CommitKind::Token => {}
        }
    }

    /// Wakes every subscriber of every tenant (after the LISTEN connection was lost, wake-ups
    /// may have been missed: everyone re-reads by cursor).
    pub fn wake_all(&self) {
        let mut tenants = lock(&self.inner.tenants);
        tenants.retain(|_, entry| !entry.idle());
        for entry in tenants.values_mut() {
            entry.changes.send_modify(|g| *g += 1);
            entry.admin.send_modify(|g| *g += 1);
        }
        self.inner.stats.wakes.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks every cached policy and token look-up stale.
    pub fn invalidate_caches(&self) {
        self.inner.cache_generation.send_modify(|g| *g += 1);
    }

    /// The cache generation: a cache entry made at an older generation is stale.
    pub fn cache_generation(&self) -> u64 {
        *self.inner.cache_generation.borrow()
    }

    /// Whether caches may be trusted: always on one node (SQLite), and on PostgreSQL only
    /// while the LISTEN connection that carries other nodes' invalidations is up.
    pub fn caches_coherent(&self) -> bool {
        !self.inner.distributed.load(Ordering::Acquire) || self.inner.listening.load(Ordering::Acquire)
    }

    /// Declares that other nodes may write (PostgreSQL): caches are trusted only while the
    /// LISTEN connection is up.
    pub(crate) fn set_distributed(&self) {
        self.inner.distributed.store(true, Ordering::Release);
    }

    /// The LISTEN connection is up (its backend pid, for operators and tests).
    pub(crate) fn listener_up(&self, pid: i32) {
        self.inner.listener_pid.store(pid, Ordering::Release);
        self.inner.stats.listens.fetch_add(1, Ordering::Relaxed);
        // Anything committed while no connection listened was not heard: re-read, re-fetch.
        self.invalidate_caches();
        self.inner.listening.store(true, Ordering::Release);
        self.wake_all();
    }

    /// The LISTEN connection is gone: caches can no longer be trusted and every subscriber
    /// re-reads by cursor.
    pub(crate) fn listener_down(&self) {
        self.inner.listening.store(false, Ordering::Release);
        self.inner.listener_pid.store(0, Ordering::Release);
        self.invalidate_caches();
        self.wake_all();
    }

    /// The PostgreSQL backend pid of the LISTEN connection, when it is up.
    pub fn listener_pid(&self) -> Option<i32> {
        Some(self.inner.listener_pid.load(Ordering::Acquire)).filter(|pid| *pid != 0)
    }

    /// Whether the LISTEN connection is up.
    pub fn listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// Closes every stream with "reconnect" (graceful shutdown) and answers waiting
    /// long-polls.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once [`Hub::shutdown`] was called.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Takes one of the node's live connection slots, or refuses with a random
    /// `Retry-After` between 1 and `max_retry_after_secs`.
    pub fn try_connect(&self) -> Result<ConnectionGuard> {
        let max = self.inner.config.max_live_connections;
        let taken = self
            .inner
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        match taken {
            Ok(_) => Ok(ConnectionGuard { hub: self.clone() }),
            Err(_) => {
                let max = self.inner.config.max_retry_after_secs.max(1);
                Err(LiveError::TooManyConnections { retry_after: rand::rng().random_range(1..=max) })
            }
        }
    }

    /// Live connections held now.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::Acquire)
    }

    /// Registers a stream of the token `token_key`; when the token already holds
    /// `max_streams_per_token`, its oldest stream is told to close.
    pub fn register_stream(&self, token_key: &str) -> StreamGuard {
        let id = self.inner.next_stream.fetch_add(1, Ordering::Relaxed);
        let (evict, evicted) = watch::channel(false);
        let mut streams = lock(&self.inner.streams);
        let list = streams.entry(token_key.to_owned()).or_default();
        list.push_back((id, evict));
        while list.len() > self.inner.config.max_streams_per_token.max(1) {
            if let Some((_, oldest)) = list.pop_front() {
                oldest.send_replace(true);
            }
        }
        StreamGuard { hub: self.clone(), token_key: token_key.to_owned(), id, evicted }
    }

    pub(crate) fn note_read(&self, coalesced: bool) {
        let counter = if coalesced { &self.inner.stats.coalesced } else { &self.inner.stats.reads };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_notification(&self) {
        self.inner.stats.notifications.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_slow(&self) {
        self.inner.stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
    }
}

impl CommitListener for Hub {
    fn committed(&self, fact: &Committed) {
        self.wake(&Wake { kind: fact.kind, seq: fact.seq, tenant: fact.tenant.clone() });
    }

    fn cache_generation(&self) -> Option<u64> {
        self.caches_coherent().then(|| self.cache_generation())
    }
}

/// Resolves once the flag in `rx` is true (or its sender is gone).
pub async fn until_set(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|set| *set).await;
}

/// A live connection slot; released on drop.
#[derive(Debug)]
pub struct ConnectionGuard {
    hub: Hub,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.hub.inner.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A registered stream of a token; unregistered on drop.
#[derive(Debug)]
pub struct StreamGuard {
    hub: Hub,
    token_key: String,
    id: u64,
    evicted: watch::Receiver<bool>,
}

impl StreamGuard {
    /// Resolves when a newer stream of the same token replaced this one.
    pub async fn evicted(&mut self) {
        let _ = self.evicted.wait_for(|e| *e).await;
    }

    pub fn is_evicted(&self) -> bool {
        *self.evicted.borrow()
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut streams = lock(&self.hub.inner.streams);
        if let Some(list) = streams.get_mut(&self.token_key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                streams.remove(&self.token_key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(seq: i64) -> Wake {
        Wake { kind: CommitKind::Changes, seq, tenant: "acme".into() }
    }

    /// A wake-up for a lower sequence after a higher one still wakes readers (wake-ups of
    /// one tenant's commits may arrive in any order); only the same commit heard twice (in
    /// process and through NOTIFY) wakes once.
    #[test]
    fn a_lower_sequence_after_a_higher_one_still_wakes_and_only_repeats_are_dropped() {
        let hub = Hub::new(LiveConfig::default());
        let mut watch = hub.watch("acme");
        let generation = |w: &mut TenantWatch| *w.changes.borrow_and_update();
        let start = generation(&mut watch);
        hub.wake(&changes(101));
        let after_101 = generation(&mut watch);
        assert!(after_101 > start);
        hub.wake(&changes(100));
        let after_100 = generation(&mut watch);
        assert!(after_100 > after_101, "the out-of-order commit woke the tenant");
        hub.wake(&changes(100));
        hub.wake(&changes(101));
        assert_eq!(generation(&mut watch), after_100, "repeats of the same commits are redundant");
        assert_eq!(hub.stats().redundant.load(Ordering::Relaxed), 2);
        // Only a bounded number of sequences is remembered.
        for seq in 200..200 + RECENT_WAKES as i64 {
            hub.wake(&changes(seq));
        }
        let before = generation(&mut watch);
        hub.wake(&changes(100));
        assert!(generation(&mut watch) > before, "an old sequence is no longer recognised: it wakes");
    }
}
