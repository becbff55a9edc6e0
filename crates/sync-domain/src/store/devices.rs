//! Devices (remembered pull cursors, measured speed) and device health.

use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::db::{DbConnection, MultiBackend};
use crate::error::Result;
use crate::schema::{device_health, devices};

/// A device of a tenant (table `devices`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = devices)]
#[diesel(treat_none_as_default_value = false)]
pub struct DeviceRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Device id.
    pub device_id: String,
    /// The user the device last synced as.
    pub user_id: String,
    /// The remembered pull cursor (a sequence number), if the device pulled with its id.
    pub cursor_seq: Option<i64>,
    /// Last push or pull (µs): purge keeps history for devices active since a cut-off.
    pub last_seen_at: i64,
    /// Measured download time per item (ms), if measured.
    pub avg_ms_per_item: Option<f64>,
}

/// A device of `tenant`, if known.
pub fn get_device(conn: &mut DbConnection, tenant: &str, device: &str) -> Result<Option<DeviceRow>> {
    Ok(devices::table
        .filter(devices::tenant_id.eq(tenant))
        .filter(devices::device_id.eq(device))
        .select(DeviceRow::as_select())
        .first(conn)
        .optional()?)
}

/// Creates or replaces a device row (every column).
pub fn upsert_device(conn: &mut DbConnection, row: &DeviceRow) -> Result<()> {
    crate::dispatch!(conn, c => diesel::insert_into(devices::table)
        .values(row)
        .on_conflict((devices::tenant_id, devices::device_id))
        .do_update()
        .set((
            devices::user_id.eq(excluded(devices::user_id)),
            devices::cursor_seq.eq(excluded(devices::cursor_seq)),
            devices::last_seen_at.eq(excluded(devices::last_seen_at)),
            devices::avg_ms_per_item.eq(excluded(devices::avg_ms_per_item)),
        ))
        .execute(c))?;
    Ok(())
}

/// Remembers a device's pull cursor and marks it seen, creating the device if needed (its
/// `avg_ms_per_item` is kept).
pub fn set_device_cursor(
    conn: &mut DbConnection,
    tenant: &str,
    device: &str,
    user: &str,
    cursor_seq: i64,
    seen_at: i64,
) -> Result<()> {
    crate::dispatch!(conn, c => diesel::insert_into(devices::table)
        .values((
            devices::tenant_id.eq(tenant),
            devices::device_id.eq(device),
            devices::user_id.eq(user),
            devices::cursor_seq.eq(Some(cursor_seq)),
            devices::last_seen_at.eq(seen_at),
            devices::avg_ms_per_item.eq(None::<f64>),
        ))
        .on_conflict((devices::tenant_id, devices::device_id))
        .do_update()
        .set((
            devices::user_id.eq(excluded(devices::user_id)),
            devices::cursor_seq.eq(excluded(devices::cursor_seq)),
            devices::last_seen_at.eq(excluded(devices::last_seen_at)),
        ))
        .execute(c))?;
    Ok(())
}

/// Sets a device's measured time per item (ms) and marks it seen, creating the device if
/// needed (its remembered cursor is kept).
pub fn set_device_time_per_item(
    conn: &mut DbConnection,
    tenant: &str,
    device: &str,
    user: &str,
    avg_ms_per_item: f64,
    seen_at: i64,
) -> Result<()> {
    crate::dispatch!(conn, c => diesel::insert_into(devices::table)
        .values((
            devices::tenant_id.eq(tenant),
            devices::device_id.eq(device),
            devices::user_id.eq(user),
            devices::cursor_seq.eq(None::<i64>),
            devices::last_seen_at.eq(seen_at),
            devices::avg_ms_per_item.eq(Some(avg_ms_per_item)),
        ))
        .on_conflict((devices::tenant_id, devices::device_id))
        .do_update()
        .set((
            devices::user_id.eq(excluded(devices::user_id)),
            devices::last_seen_at.eq(excluded(devices::last_seen_at)),
            devices::avg_ms_per_item.eq(excluded(devices::avg_ms_per_item)),
        ))
        .execute(c))?;
    Ok(())
}

/// The lowest remembered cursor among `tenant`'s devices seen at or after `since` (µs), or
/// `None` if no such device has a cursor: history below it may be purged.
pub fn oldest_active_cursor(conn: &mut DbConnection, tenant: &str, since: i64) -> Result<Option<i64>> {
    Ok(devices::table
        .filter(devices::tenant_id.eq(tenant))
        .filter(devices::last_seen_at.ge(since))
        .select(diesel::dsl::min(devices::cursor_seq))
        .first::<Option<i64>>(conn)?)
}

/// A device's sync health (table `device_health`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = device_health)]
#[diesel(treat_none_as_default_value = false)]
pub struct DeviceHealthRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// Device id.
    pub device_id: String,
    /// The user the device last synced as.
    pub user_id: String,
    /// Pushes and pulls.
    pub total_syncs: i64,
    /// Failed pushes and pulls.
    pub failed_syncs_count: i64,
    /// Mean duration over all syncs (ms).
    pub avg_sync_duration_ms: f64,
    /// Conflicts met by this device's pushes.
    pub conflicts_encountered: i64,
    /// Last sync (µs).
    pub last_sync_at: Option<i64>,
    /// Last reported network quality.
    pub network_type: Option<String>,
    /// Last applied clock skew (ms).
    pub clock_skew_ms: i64,
    /// 0..100, computed by sync-metrics.
    pub health_score: f64,
}

/// A device's health, if it ever synced.
pub fn get_device_health(
    conn: &mut DbConnection,
    tenant: &str,
    device: &str,
) -> Result<Option<DeviceHealthRow>> {
    Ok(device_health::table
        .filter(device_health::tenant_id.eq(tenant))
        .filter(device_health::device_id.eq(device))
        .select(DeviceHealthRow::as_select())
        .first(conn)
        .optional()?)
}

/// Creates or replaces a device's health row.
pub fn upsert_device_health(conn: &mut DbConnection, row: &DeviceHealthRow) -> Result<()> {
    crate::dispatch!(conn, c => diesel::insert_into(device_health::table)
        .values(row)
        .on_conflict((device_health::tenant_id, device_health::device_id))
        .do_update()
        .set((
            device_health::user_id.eq(excluded(device_health::user_id)),
            device_health::total_syncs.eq(excluded(device_health::total_syncs)),
            device_health::failed_syncs_count.eq(excluded(device_health::failed_syncs_count)),
            device_health::avg_sync_duration_ms.eq(excluded(device_health::avg_sync_duration_ms)),
            device_health::conflicts_encountered.eq(excluded(device_health::conflicts_encountered)),
            device_health::last_sync_at.eq(excluded(device_health::last_sync_at)),
            device_health::network_type.eq(excluded(device_health::network_type)),
            device_health::clock_skew_ms.eq(excluded(device_health::clock_skew_ms)),
            device_health::health_score.eq(excluded(device_health::health_score)),
        ))
        .execute(c))?;
    Ok(())
}

/// Devices whose health score is below `threshold`, worst first; of one tenant, or of every
/// tenant (`None`, for the scheduled health check).
pub fn list_device_health_below(
    conn: &mut DbConnection,
    tenant: Option<&str>,
    threshold: f64,
) -> Result<Vec<DeviceHealthRow>> {
    let mut q =
        device_health::table.filter(device_health::health_score.lt(threshold)).into_boxed::<MultiBackend>();
    if let Some(tenant) = tenant {
        q = q.filter(device_health::tenant_id.eq(tenant));
    }
    Ok(q.order((device_health::health_score.asc(), device_health::tenant_id, device_health::device_id))
        .select(DeviceHealthRow::as_select())
        .load(conn)?)
}
