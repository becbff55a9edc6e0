//! Sync events (one per push, pull, partial sync or resolution), snapshots and alerts.

use diesel::prelude::*;

use super::text_enum;
use crate::db::{DbConnection, MultiBackend};
use crate::error::Result;
use crate::schema::{alerts, snapshots, sync_events};

text_enum! {
    /// What a sync event records.
    pub enum SyncEventKind {
        /// A push.
        Push = "push",
        /// A pull.
        Pull = "pull",
        /// A partial (priority) sync.
        Partial = "partial",
        /// An admin's manual conflict resolution.
        Resolve = "resolve",
    }
}

/// One push, pull, partial sync or resolution (table `sync_events`): what snapshots count.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sync_events)]
pub struct SyncEventRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Event id (UUID v7, so ids sort by time).
    pub id: String,
    /// When it happened (µs).
    pub at: i64,
    /// The device.
    pub device_id: String,
    /// The user.
    pub user_id: String,
    /// Push, pull, partial or resolve.
    pub kind: SyncEventKind,
    /// Whether it succeeded.
    pub success: bool,
    /// Server-side duration (ms).
    pub duration_ms: f64,
    /// Changes pushed or records pulled.
    pub changes: i64,
    /// Conflicts met.
    pub conflicts: i64,
    /// Of those, resolved by policy.
    pub auto_resolved: i64,
    /// Of those, left for an admin.
    pub manual: i64,
    /// Payload bytes before compression and deltas.
    pub bytes_raw: i64,
    /// Bytes actually sent.
    pub bytes_sent: i64,
    /// Per-domain counts (JSON text, e.g. `{"task": 3}`).
    pub domains: String,
}

/// Records a sync event.
pub fn insert_sync_event(conn: &mut DbConnection, row: &SyncEventRow) -> Result<()> {
    diesel::insert_into(sync_events::table).values(row).execute(conn)?;
    Ok(())
}

/// A tenant's events at or after `since` (µs), and before `until` if given, oldest first.
pub fn list_sync_events(
    conn: &mut DbConnection,
    tenant: &str,
    since: i64,
    until: Option<i64>,
) -> Result<Vec<SyncEventRow>> {
    let mut q = sync_events::table
        .filter(sync_events::tenant_id.eq(tenant))
        .filter(sync_events::at.ge(since))
        .into_boxed::<MultiBackend>();
    if let Some(until) = until {
        q = q.filter(sync_events::at.lt(until));
    }
    Ok(q.order((sync_events::at.asc(), sync_events::id.asc()))
        .select(SyncEventRow::as_select())
        .load(conn)?)
}

/// An analytics snapshot (table `snapshots`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = snapshots)]
pub struct SnapshotRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Snapshot id (UUID).
    pub id: String,
    /// When it was taken (µs).
    pub created_at: i64,
    /// The window it covers, in hours before `created_at`.
    pub window_hours: i64,
    /// The snapshot's figures (JSON text).
    pub body: String,
}

/// Stores a snapshot.
pub fn insert_snapshot(conn: &mut DbConnection, row: &SnapshotRow) -> Result<()> {
    diesel::insert_into(snapshots::table).values(row).execute(conn)?;
    Ok(())
}

/// A tenant's newest snapshot.
pub fn latest_snapshot(conn: &mut DbConnection, tenant: &str) -> Result<Option<SnapshotRow>> {
    Ok(snapshots::table
        .filter(snapshots::tenant_id.eq(tenant))
        .order((snapshots::created_at.desc(), snapshots::id.desc()))
        .select(SnapshotRow::as_select())
        .first(conn)
        .optional()?)
}

/// A tenant's snapshots taken at or after `since` (µs), oldest first.
pub fn list_snapshots(conn: &mut DbConnection, tenant: &str, since: i64) -> Result<Vec<SnapshotRow>> {
    Ok(snapshots::table
        .filter(snapshots::tenant_id.eq(tenant))
        .filter(snapshots::created_at.ge(since))
        .order((snapshots::created_at.asc(), snapshots::id.asc()))
        .select(SnapshotRow::as_select())
        .load(conn)?)
}

/// An alert (table `alerts`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = alerts)]
#[diesel(treat_none_as_default_value = false)]
pub struct AlertRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Alert id (UUID).
    pub id: String,
    /// The snapshot that raised it, if any.
    pub snapshot_id: Option<String>,
    /// Rule name (e.g. `success_rate_below`).
    pub rule: String,
    /// `info`, `warning` or `critical` (free text, chosen by the rule).
    pub severity: String,
    /// The measured value.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Human-readable message.
    pub message: String,
    /// When it was raised (µs).
    pub created_at: i64,
}

/// Stores an alert.
pub fn insert_alert(conn: &mut DbConnection, row: &AlertRow) -> Result<()> {
    diesel::insert_into(alerts::table).values(row).execute(conn)?;
    Ok(())
}

/// A tenant's alerts raised at or after `since` (µs), newest first, at most `limit`.
pub fn list_alerts(conn: &mut DbConnection, tenant: &str, since: i64, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(alerts::table
        .filter(alerts::tenant_id.eq(tenant))
        .filter(alerts::created_at.ge(since))
        .order((alerts::created_at.desc(), alerts::id.desc()))
        .limit(limit.max(0))
        .select(AlertRow::as_select())
        .load(conn)?)
}
