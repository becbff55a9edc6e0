//! The `SyncableModel` trait: what a domain type declares to take part in sync.

use crate::{SyncMeta, ValidationErrors};

/// A domain type that takes part in sync. Usually derived: `#[derive(SyncableModel)]`.
pub trait SyncableModel {
    /// The domain name (`ticket`), see [`crate::DomainName`].
    const DOMAIN: &'static str;
    /// The workflow its `status` follows, by name (see sync-state-machine), if any.
    const WORKFLOW: Option<&'static str>;
    /// Fields that conflict resolution must never move backwards.
    const CRITICAL_FIELDS: &'static [&'static str];
    /// The field whose value is the record's priority, if any.
    const PRIORITY_FIELD: Option<&'static str>;

    fn sync_meta(&self) -> &SyncMeta;
    fn sync_meta_mut(&mut self) -> &mut SyncMeta;

    /// Checks the record's own data, naming each bad field by its path.
    fn validate(&self) -> Result<(), ValidationErrors>;
}
