//! What the operator console reads beyond the dashboard: every device's health, one device's
//! recent sync events and the devices active since a time.

use diesel::prelude::*;

use super::{DeviceHealthRow, SyncEventRow};
use crate::db::DbConnection;
use crate::error::Result;
use crate::schema::{device_health, sync_events};

/// At most `limit` of a tenant's devices with recorded health, worst stored score first.
pub fn list_device_health(conn: &mut DbConnection, tenant: &str, limit: i64) -> Result<Vec<DeviceHealthRow>> {
    Ok(device_health::table
        .filter(device_health::tenant_id.eq(tenant))
        .order((device_health::health_score.asc(), device_health::device_id.asc()))
        .limit(limit)
        .select(DeviceHealthRow::as_select())
        .load(conn)?)
}

/// A device's last `limit` sync events, newest first.
pub fn recent_device_sync_events(
    conn: &mut DbConnection,
    tenant: &str,
    device: &str,
    limit: i64,
) -> Result<Vec<SyncEventRow>> {
    Ok(sync_events::table
        .filter(sync_events::tenant_id.eq(tenant))
        .filter(sync_events::device_id.eq(device))
        .order((sync_events::at.desc(), sync_events::id.desc()))
        .limit(limit)
        .select(SyncEventRow::as_select())
        .load(conn)?)
}

/// How many distinct devices of a tenant have a sync event at or after `since` (µs).
pub fn count_active_devices(conn: &mut DbConnection, tenant: &str, since: i64) -> Result<i64> {
    let devices: Vec<String> = sync_events::table
        .filter(sync_events::tenant_id.eq(tenant))
        .filter(sync_events::at.ge(since))
        .select(sync_events::device_id)
        .distinct()
        .load(conn)?;
    Ok(i64::try_from(devices.len()).unwrap_or(i64::MAX))
}
