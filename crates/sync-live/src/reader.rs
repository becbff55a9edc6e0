//! Reads by cursor for live subscribers, coalesced: subscribers woken by the same commit with
//! the same tenant, units, filter and cursor share one read of the engine's pull.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sync_domain::SyncEngine;
use sync_domain::engine::PullReply;
use sync_domain::protocol::PullRequest;
use sync_domain::store::Principal;
use tokio::sync::OnceCell;

use crate::error::{LiveError, Result};
use crate::hub::Hub;

/// What a live read asks for: a pull's filters, and the wake-up generation the reader noted
/// before reading (a read started at an older generation may miss a newer commit, so it is
/// never reused for a newer one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadKey {
    pub tenant: String,
    pub units: Option<Vec<String>>,
    pub domains: Option<Vec<String>>,
    pub delta: bool,
    pub cursor: Option<String>,
    pub limit: u32,
    pub generation: u64,
}

impl ReadKey {
    /// The key of a read for `principal` (its tenant and units) with these filters.
    pub fn new(
        principal: &Principal,
        domains: Option<&[String]>,
        delta: bool,
        cursor: Option<&str>,
        limit: u32,
        generation: u64,
    ) -> Self {
        let mut units = principal.units.clone();
        if let Some(units) = &mut units {
            units.sort_unstable();
            units.dedup();
        }
        ReadKey {
            tenant: principal.tenant.clone(),
            units,
            domains: domains.map(<[String]>::to_vec),
            delta,
            cursor: cursor.map(str::to_owned),
            limit,
            generation,
        }
    }
}

type Shared = Arc<OnceCell<Result<Arc<PullReply>>>>;

/// The reads of each filter and cursor: the newest generation read, and its result.
#[derive(Debug, Default)]
struct Reads {
    by_key: HashMap<ReadKey, (u64, Shared)>,
    /// Sweep results nobody holds once the map grows past this.
    sweep_at: usize,
}

/// Fewest entries kept before a sweep.
const MIN_SWEEP: usize = 256;

/// Coalescing reader over the engine's pull. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reader {
    engine: SyncEngine,
    hub: Hub,
    reads: Arc<Mutex<Reads>>,
}

impl Reader {
    pub fn new(engine: SyncEngine, hub: Hub) -> Self {
        Reader { engine, hub, reads: Arc::new(Mutex::new(Reads::default())) }
    }

    /// The pull page after `key.cursor` with `key`'s filters, read by the engine's own pull
    /// (no device cursor is remembered).
    ///
    /// Callers with equal filters and cursor share a read whose generation is at least
    /// theirs: that read began after the wake-up they noted, so it holds every commit they were
    /// woken for (a later commit bumps the generation and makes them read again). A read of
    /// an older generation is never reused.
    pub async fn read(&self, principal: &Principal, key: ReadKey) -> Result<Arc<PullReply>> {
        let generation = key.generation;
        let key = ReadKey { generation: 0, ..key };
        let (cell, first) = {
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            let found = reads.by_key.get(&key).filter(|(g, _)| *g >= generation).map(|(_, c)| Arc::clone(c));
            match found {
                Some(cell) => (cell, false),
                None => {
                    let cell: Shared = Arc::new(OnceCell::new());
                    reads.by_key.insert(key.clone(), (generation, Arc::clone(&cell)));
                    if reads.by_key.len() > reads.sweep_at.max(MIN_SWEEP) {
                        reads.by_key.retain(|_, (_, c)| Arc::strong_count(c) > 1);
                        reads.sweep_at = reads.by_key.len() * 2;
                    }
                    (cell, true)
                }
            }
        };
        self.hub.note_read(!first);
        let request = PullRequest {
            cursor: key.cursor.clone(),
            limit: Some(key.limit),
            domains: key.domains.clone(),
            delta: key.delta,
            device_id: None,
            network_quality: None,
            hints: false,
        };
        let engine = &self.engine;
        let result = cell
            .get_or_init(|| async move {
                engine
                    .pull(principal, request, &sync_domain::engine::Identity)
                    .await
                    .map(Arc::new)
                    .map_err(LiveError::from)
            })
            .await
            .clone();
        if result.is_err() {
            // A failure is not shared with later readers.
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            if reads.by_key.get(&key).is_some_and(|(_, c)| Arc::ptr_eq(c, &cell)) {
                reads.by_key.remove(&key);
            }
        }
        result
    }
}
