//! Committed facts for live subscribers: what the engine publishes after a write commits.
//!
//! The engine owns the [`CommitListener`] trait and calls it after a push, a conflict
//! resolution, a purge or a policy change commits; a hub (the `sync-live` crate) implements
//! it, so this crate never depends on the hub. On PostgreSQL the engine also sends a
//! `pg_notify` inside the committing transaction when a listener is attached, so that the
//! wake-up reaches the other nodes (PostgreSQL delivers it only if the transaction commits).
//! The payload is a wake-up only — kind, tenant and sequence, never data: a reader always
//! re-reads by cursor.

use std::collections::BTreeSet;
use std::fmt;

use crate::{DbConnection, Result};

/// The prefix of the PostgreSQL notification channel; the channel is this followed by the
/// current schema, so that tests (one schema each) and deployments sharing a database stay
/// apart.
pub const CHANNEL_PREFIX: &str = "syncforge_";

/// Largest tenant id carried in a notification payload (PostgreSQL allows 8000 bytes); a
/// longer one is sent as [`WAKE_ALL`].
const MAX_TENANT_IN_PAYLOAD: usize = 4000;

/// The tenant of a payload that wakes every tenant.
pub const WAKE_ALL: &str = "*";

/// What kind of commit a fact reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommitKind {
    /// New record versions (push or conflict resolution): readers re-read by cursor.
    Changes,
    /// History below a cursor was purged: readers re-read (and may find `resync_required`).
    Purge,
    /// New conflicts that the tenant's admins are told of.
    Conflict,
    /// A new alert for the tenant's admins.
    Alert,
    /// A tenant policy changed: cached policies of the tenant are stale.
    Policy,
    /// A token was revoked: cached token look-ups are stale.
    Token,
}

impl CommitKind {
    /// The one-letter code used in notification payloads.
    pub const fn code(self) -> char {
        match self {
            CommitKind::Changes => 'c',
            CommitKind::Purge => 'p',
            CommitKind::Conflict => 'x',
            CommitKind::Alert => 'a',
            CommitKind::Policy => 'o',
            CommitKind::Token => 't',
        }
    }

    /// The kind of a payload code.
    pub fn from_code(code: char) -> Option<CommitKind> {
        Some(match code {
            'c' => CommitKind::Changes,
            'p' => CommitKind::Purge,
            'x' => CommitKind::Conflict,
            'a' => CommitKind::Alert,
            'o' => CommitKind::Policy,
            't' => CommitKind::Token,
            _ => return None,
        })
    }
}

/// One committed fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub kind: CommitKind,
    pub tenant: String,
    /// The tenant's change-sequence high-water after the commit (0 when unknown).
    pub seq: i64,
    /// Domains touched (empty when unknown).
    pub domains: BTreeSet<String>,
    /// Business units touched (`None` for records without a unit).
    pub units: BTreeSet<Option<String>>,
    /// Ids of new conflicts the tenant's admins are told of (kind [`CommitKind::Conflict`]).
    pub conflicts: Vec<String>,
}

impl Committed {
    /// A fact with no detail beyond kind, tenant and sequence.
    pub fn new(kind: CommitKind, tenant: impl Into<String>, seq: i64) -> Self {
        Self {
            kind,
            tenant: tenant.into(),
            seq,
            domains: BTreeSet::new(),
            units: BTreeSet::new(),
            conflicts: Vec::new(),
        }
    }
}

/// Receives committed facts. Called after the transaction committed, on the thread that ran
/// it: implementations must not block.
pub trait CommitListener: Send + Sync + fmt::Debug {
    fn committed(&self, fact: &Committed);

    /// The generation of this node's caches (tenant policies, token look-ups) while they may
    /// be trusted: every commit that makes a cached entry stale, on this node or (through the
    /// LISTEN connection) on another, moves it on, and an entry filled at an older generation
    /// is not used. `None` (the default): caches are not to be trusted, read through.
    fn cache_generation(&self) -> Option<u64> {
        None
    }
}

/// A wake-up as carried between nodes: kind, tenant and sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub kind: CommitKind,
    pub seq: i64,
    /// A tenant id, or [`WAKE_ALL`].
    pub tenant: String,
}

/// The notification payload of a fact: `<kind>:<seq>:<tenant>`.
pub fn wake_payload(kind: CommitKind, tenant: &str, seq: i64) -> String {
    let tenant = if tenant.len() > MAX_TENANT_IN_PAYLOAD { WAKE_ALL } else { tenant };
    format!("{}:{seq}:{tenant}", kind.code())
}

/// Parses a payload made by [`wake_payload`]; `None` for anything else.
pub fn parse_wake_payload(payload: &str) -> Option<Wake> {
    let mut parts = payload.splitn(3, ':');
    let kind = parts.next()?;
    let mut chars = kind.chars();
    let kind = CommitKind::from_code(chars.next()?)?;
    if chars.next().is_some() {
        return None;
    }
    let seq = parts.next()?.parse().ok()?;
    let tenant = parts.next()?.to_owned();
    if tenant.is_empty() {
        return None;
    }
    Some(Wake { kind, seq, tenant })
}

/// Sends the wake-up of `fact` on the schema's channel inside the caller's transaction
/// (PostgreSQL only; a no-op on SQLite, whose single node fans out in process).
pub(crate) fn pg_notify(conn: &mut DbConnection, kind: CommitKind, tenant: &str, seq: i64) -> Result<()> {
    use diesel::RunQueryDsl;
    use diesel::sql_types::Text;
    if let DbConnection::Pg(c) = conn {
        diesel::sql_query("SELECT pg_notify($1 || current_schema(), $2)")
            .bind::<Text, _>(CHANNEL_PREFIX)
            .bind::<Text, _>(wake_payload(kind, tenant, seq))
            .execute(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for kind in [
            CommitKind::Changes,
            CommitKind::Purge,
            CommitKind::Conflict,
            CommitKind::Alert,
            CommitKind::Policy,
            CommitKind::Token,
        ] {
            let payload = wake_payload(kind, "acme:north", 42);
            assert_eq!(
                parse_wake_payload(&payload),
                Some(Wake { kind, seq: 42, tenant: "acme:north".into() })
            );
        }
        assert_eq!(parse_wake_payload("z:1:acme"), None);
        assert_eq!(parse_wake_payload("c:x:acme"), None);
        assert_eq!(parse_wake_payload("c:1:"), None);
        assert_eq!(parse_wake_payload("cc:1:a"), None);
        assert_eq!(parse_wake_payload(""), None);
        let long = "t".repeat(MAX_TENANT_IN_PAYLOAD + 1);
        assert_eq!(
            parse_wake_payload(&wake_payload(CommitKind::Changes, &long, 1)).map(|w| w.tenant),
            Some(WAKE_ALL.into())
        );
    }
}
