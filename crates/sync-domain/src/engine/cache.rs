//! Per-node caches of what every push reads and rarely changes: a tenant's policy overrides.
//!
//! An entry is used only while the commit listener (the live hub) vouches for the cache
//! generation it was filled at: a policy change committed on this node or, through
//! PostgreSQL LISTEN/NOTIFY, on any other moves the generation on, and so does losing the
//! LISTEN connection. Without a listener every read goes to the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::store::{self, PolicyRow};
use crate::{DbConnection, Result};

/// Most tenants whose policies one node keeps; beyond, the cache starts again empty.
const MAX_TENANTS: usize = 10_000;

/// A tenant's policy overrides and the cache generation they were read at.
type Entry = (u64, Arc<Vec<PolicyRow>>);

/// Policy overrides by tenant.
#[derive(Debug, Default)]
pub(crate) struct PolicyCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PolicyCache {
    /// `tenant`'s policy overrides: cached when `generation` is that of the entry, else read
    /// on `conn` (and kept for `generation`). The generation must be taken before the read,
    /// so that an invalidation racing with it leaves the entry stale, never wrong.
    pub(crate) fn get(
        &self,
        conn: &mut DbConnection,
        tenant: &str,
        generation: Option<u64>,
    ) -> Result<Arc<Vec<PolicyRow>>> {
        let Some(generation) = generation else { return Ok(Arc::new(store::get_policies(conn, tenant)?)) };
        if let Some((at, rows)) = self.lock().get(tenant)
            && *at == generation
        {
            return Ok(rows.clone());
        }
        let rows = Arc::new(store::get_policies(conn, tenant)?);
        let mut entries = self.lock();
        if entries.len() >= MAX_TENANTS && !entries.contains_key(tenant) {
            entries.clear();
        }
        entries.insert(tenant.to_owned(), (generation, rows.clone()));
        Ok(rows)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
