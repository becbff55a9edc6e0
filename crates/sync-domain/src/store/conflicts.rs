//! The conflict log (with manual conflicts waiting for an admin) and tenant policy overrides.

use diesel::prelude::*;
use diesel::upsert::excluded;

use sync_conflict::{ConflictStatus, Policy, Resolution, Winner};

use super::Word;
use crate::db::{DbConnection, MultiBackend};
use crate::error::Result;
use crate::schema::{conflicts, tenant_policies};

/// One logged conflict (table `conflicts`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = conflicts)]
#[diesel(treat_none_as_default_value = false)]
pub struct ConflictRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Conflict id (UUID).
    pub id: String,
    /// Domain of the record.
    pub domain: String,
    /// The record.
    pub mobile_id: String,
    /// The stored version when the conflict happened.
    pub server_version: i64,
    /// The version the device based its change on.
    pub client_base_version: i64,
    /// The version the resolution produced, if any.
    pub client_version: Option<i64>,
    /// The policy applied.
    #[diesel(deserialize_as = Word<Policy>, serialize_as = Word<Policy>)]
    pub strategy: Policy,
    /// How it ended: resolved by the policy, waiting for an admin (`manual` policy or
    /// `auto_resolve: false`), or failed.
    #[diesel(deserialize_as = Word<Resolution>, serialize_as = Word<Resolution>)]
    pub result: Resolution,
    /// Whose state won (`none` while it waits for an admin).
    #[diesel(deserialize_as = Word<Winner>, serialize_as = Word<Winner>)]
    pub winner: Winner,
    /// Resolution details (JSON text, e.g. which fields came from which side).
    pub details: String,
    /// Device that pushed the change.
    pub device_id: String,
    /// User that pushed the change.
    pub user_id: String,
    /// When the conflict happened (µs).
    pub created_at: i64,
    /// Pending, resolved by an admin, or auto.
    #[diesel(deserialize_as = Word<ConflictStatus>, serialize_as = Word<ConflictStatus>)]
    pub status: ConflictStatus,
    /// The device's proposed state (JSON text), kept for manual resolution.
    pub client_state: Option<String>,
    /// The stored state at the time (JSON text).
    pub server_state: Option<String>,
    /// When an admin resolved it (µs).
    pub resolved_at: Option<i64>,
    /// The admin who resolved it.
    pub resolved_by: Option<String>,
}

/// Which conflicts [`list_conflicts`] returns; newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConflictQuery<'a> {
    /// Only this status.
    pub status: Option<ConflictStatus>,
    /// Only conflicts created at or after this time (µs).
    pub since: Option<i64>,
    /// Only this domain.
    pub domain: Option<&'a str>,
    /// At most this many (`None`: all).
    pub limit: Option<i64>,
}

/// Logs a conflict.
pub fn insert_conflict(conn: &mut DbConnection, row: &ConflictRow) -> Result<()> {
    // Owned: a `serialize_as` field converts by value.
    diesel::insert_into(conflicts::table).values(row.clone()).execute(conn)?;
    Ok(())
}

/// Logs several conflicts in one statement (a push's conflicts).
pub fn insert_conflicts(conn: &mut DbConnection, rows: &[ConflictRow]) -> Result<()> {
    for chunk in rows.chunks(super::rows_per_insert(19)) {
        crate::dispatch!(&mut *conn, c => diesel::insert_into(conflicts::table).values(chunk.to_vec()).execute(c))?;
    }
    Ok(())
}

/// A tenant's conflicts matching `query`, newest first.
pub fn list_conflicts(
    conn: &mut DbConnection,
    tenant: &str,
    query: &ConflictQuery<'_>,
) -> Result<Vec<ConflictRow>> {
    let mut q = conflicts::table.filter(conflicts::tenant_id.eq(tenant)).into_boxed::<MultiBackend>();
    if let Some(status) = query.status {
        q = q.filter(conflicts::status.eq(Word(status)));
    }
    if let Some(since) = query.since {
        q = q.filter(conflicts::created_at.ge(since));
    }
    if let Some(domain) = query.domain {
        q = q.filter(conflicts::domain.eq(domain));
    }
    if let Some(limit) = query.limit {
        q = q.limit(limit.max(0));
    }
    Ok(q.order((conflicts::created_at.desc(), conflicts::id.desc()))
        .select(ConflictRow::as_select())
        .load(conn)?)
}

/// One conflict of `tenant` (another tenant's id is simply absent).
pub fn get_conflict(conn: &mut DbConnection, tenant: &str, id: &str) -> Result<Option<ConflictRow>> {
    Ok(conflicts::table
        .filter(conflicts::tenant_id.eq(tenant))
        .filter(conflicts::id.eq(id))
        .select(ConflictRow::as_select())
        .first(conn)
        .optional()?)
}

/// Marks a pending conflict resolved by an admin, recording the version the resolution
/// produced. Returns false when it was not pending (already resolved, or unknown), so two
/// admins resolving at once cannot both win.
pub fn mark_conflict_resolved(
    conn: &mut DbConnection,
    tenant: &str,
    id: &str,
    resolved_by: &str,
    resolved_at: i64,
    new_version: Option<i64>,
    winner: Winner,
) -> Result<bool> {
    let n = diesel::update(
        conflicts::table
            .filter(conflicts::tenant_id.eq(tenant))
            .filter(conflicts::id.eq(id))
            .filter(conflicts::status.eq(Word(ConflictStatus::Pending))),
    )
    .set((
        conflicts::status.eq(Word(ConflictStatus::Resolved)),
        conflicts::result.eq(Word(Resolution::Resolved)),
        conflicts::winner.eq(Word(winner)),
        conflicts::client_version.eq(new_version),
        conflicts::resolved_at.eq(Some(resolved_at)),
        conflicts::resolved_by.eq(Some(resolved_by)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Conflicts per domain since `since` (µs), most first (ties by name): the dashboard's
/// hotspots.
pub fn conflict_counts_by_domain(
    conn: &mut DbConnection,
    tenant: &str,
    since: i64,
) -> Result<Vec<(String, i64)>> {
    let mut counts: Vec<(String, i64)> = conflicts::table
        .filter(conflicts::tenant_id.eq(tenant))
        .filter(conflicts::created_at.ge(since))
        .group_by(conflicts::domain)
        .select((conflicts::domain, diesel::dsl::count_star()))
        .load(conn)?;
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(counts)
}

/// A tenant's override of a domain's conflict policy (table `tenant_policies`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenant_policies)]
pub struct PolicyRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Domain the override applies to.
    pub domain: String,
    /// Policy name (`client_wins`, `manual`, …), validated by the engine.
    pub policy: String,
    /// False turns every conflict of the domain into `manual_required`.
    pub auto_resolve: bool,
    /// Whether conflicts should be notified.
    pub notify_on_conflict: bool,
    /// Last change (µs).
    pub updated_at: i64,
}

/// Every policy override of a tenant, by domain.
pub fn get_policies(conn: &mut DbConnection, tenant: &str) -> Result<Vec<PolicyRow>> {
    Ok(tenant_policies::table
        .filter(tenant_policies::tenant_id.eq(tenant))
        .order(tenant_policies::domain)
        .select(PolicyRow::as_select())
        .load(conn)?)
}

/// One domain's override, if set.
pub fn get_policy(conn: &mut DbConnection, tenant: &str, domain: &str) -> Result<Option<PolicyRow>> {
    Ok(tenant_policies::table
        .filter(tenant_policies::tenant_id.eq(tenant))
        .filter(tenant_policies::domain.eq(domain))
        .select(PolicyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Sets a domain's override.
pub fn upsert_policy(conn: &mut DbConnection, row: &PolicyRow) -> Result<()> {
    crate::dispatch!(conn, c => diesel::insert_into(tenant_policies::table)
        .values(row)
        .on_conflict((tenant_policies::tenant_id, tenant_policies::domain))
        .do_update()
        .set((
            tenant_policies::policy.eq(excluded(tenant_policies::policy)),
            tenant_policies::auto_resolve.eq(excluded(tenant_policies::auto_resolve)),
            tenant_policies::notify_on_conflict.eq(excluded(tenant_policies::notify_on_conflict)),
            tenant_policies::updated_at.eq(excluded(tenant_policies::updated_at)),
        ))
        .execute(c))?;
    Ok(())
}

/// Removes a domain's override (back to the domain default); returns whether one existed.
pub fn delete_policy(conn: &mut DbConnection, tenant: &str, domain: &str) -> Result<bool> {
    let n = diesel::delete(
        tenant_policies::table
            .filter(tenant_policies::tenant_id.eq(tenant))
            .filter(tenant_policies::domain.eq(domain)),
    )
    .execute(conn)?;
    Ok(n > 0)
}
