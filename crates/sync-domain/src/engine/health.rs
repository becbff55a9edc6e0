//! Recording one sync (push, pull, partial, resolve): the device's health and a sync event
//! for analytics, written in the sync's own transaction.

use std::collections::BTreeMap;

use sync_metrics::{DeviceHealth, DeviceSync};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    Result,
    db::DbConnection,
    micros,
    store::{self, DeviceHealthRow, Principal, SyncEventKind, SyncEventRow},
};

/// What one sync did.
pub(crate) struct SyncRecord<'a> {
    pub principal: &'a Principal,
    pub device_id: &'a str,
    pub kind: SyncEventKind,
    pub success: bool,
    pub started: std::time::Instant,
    pub at: OffsetDateTime,
    pub changes: usize,
    pub conflicts: usize,
    pub manual: usize,
    pub bytes_raw: usize,
    pub bytes_sent: usize,
    /// Per domain: (changes, conflicts).
    pub domains: BTreeMap<String, (u64, u64)>,
    pub network: Option<&'a str>,
    pub clock_skew_ms: Option<i64>,
}

pub(crate) fn health_from_row(row: &DeviceHealthRow) -> DeviceHealth {
    DeviceHealth {
        total_syncs: u64::try_from(row.total_syncs).unwrap_or(0),
        failed_syncs_count: u64::try_from(row.failed_syncs_count).unwrap_or(0),
        avg_sync_duration_ms: row.avg_sync_duration_ms,
        conflicts_encountered: u64::try_from(row.conflicts_encountered).unwrap_or(0),
        last_sync_at: row.last_sync_at.and_then(micros::to_datetime),
        network_type: row.network_type.clone(),
        clock_skew_ms: row.clock_skew_ms,
        health_score: row.health_score,
    }
}

fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

pub(crate) fn record_sync(conn: &mut DbConnection, sync: &SyncRecord<'_>) -> Result<()> {
    let tenant = sync.principal.tenant.as_str();
    let duration_ms = sync.started.elapsed().as_secs_f64() * 1000.0;
    let mut health = store::get_device_health(conn, tenant, sync.device_id)?
        .map(|row| health_from_row(&row))
        .unwrap_or_default();
    health.record_sync(&DeviceSync {
        at: sync.at,
        success: sync.success,
        duration_ms,
        conflicts: sync.conflicts as u64,
        network_type: sync.network.map(str::to_owned),
        clock_skew_ms: sync.clock_skew_ms,
    });
    store::upsert_device_health(
        conn,
        &DeviceHealthRow {
            tenant_id: tenant.to_owned(),
            device_id: sync.device_id.to_owned(),
            user_id: sync.principal.user.clone(),
            total_syncs: to_i64(health.total_syncs),
            failed_syncs_count: to_i64(health.failed_syncs_count),
            avg_sync_duration_ms: health.avg_sync_duration_ms,
            conflicts_encountered: to_i64(health.conflicts_encountered),
            last_sync_at: health.last_sync_at.map(micros::from_datetime),
            network_type: health.network_type.clone(),
            clock_skew_ms: health.clock_skew_ms,
            health_score: health.health_score,
        },
    )?;
    let domains: BTreeMap<&str, serde_json::Value> = sync
        .domains
        .iter()
        .map(|(domain, (changes, conflicts))| {
            (domain.as_str(), serde_json::json!({"changes": changes, "conflicts": conflicts}))
        })
        .collect();
    store::insert_sync_event(
        conn,
        &SyncEventRow {
            tenant_id: tenant.to_owned(),
            id: Uuid::now_v7().to_string(),
            at: micros::from_datetime(sync.at),
            device_id: sync.device_id.to_owned(),
            user_id: sync.principal.user.clone(),
            kind: sync.kind,
            success: sync.success,
            duration_ms,
            changes: to_i64(sync.changes),
            conflicts: to_i64(sync.conflicts),
            auto_resolved: to_i64(sync.conflicts.saturating_sub(sync.manual)),
            manual: to_i64(sync.manual),
            bytes_raw: to_i64(sync.bytes_raw),
            bytes_sent: to_i64(sync.bytes_sent),
            domains: serde_json::to_string(&domains)?,
        },
    )?;
    Ok(())
}
