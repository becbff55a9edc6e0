//! Recording one sync (push, pull, partial, resolve): the device's health and a sync event
//! for analytics, written in the sync's own transaction; a sync that failed or was refused is
//! recorded in a transaction of its own, after the one that rolled back. Also the device's
//! measured time per item, which queue-status uses.

use std::collections::BTreeMap;

use sync_metrics::{DeviceHealth, DeviceSync};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SyncEngine, push::check_device_id};
use crate::{
    Result,
    db::DbConnection,
    micros,
    store::{self, DeviceHealthRow, Principal, SyncEventKind, SyncEventRow},
};

/// Weight of the newest measurement in a device's time per item (an exponential moving
/// average: about the last ten syncs count).
pub const TIME_PER_ITEM_WEIGHT: f64 = 0.2;

/// Bytes of a sync as they crossed the wire: `sent` as they travelled (compressed when they
/// were), `raw` once decoded (for a pull: before compression and deltas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireBytes {
    pub raw: u64,
    pub sent: u64,
}

/// A push, pull or partial sync that failed or was refused after its caller was
/// authenticated (bad data, too large, rate limited, an engine error).
#[derive(Debug, Clone, PartialEq)]
pub struct FailedSync {
    pub device_id: String,
    pub kind: SyncEventKind,
    /// From the request's arrival to its refusal.
    pub duration: std::time::Duration,
    /// What the request carried (a push's body), if it was read.
    pub wire: WireBytes,
    /// `X-Network-Quality`.
    pub network: Option<String>,
}

pub(crate) fn elapsed_ms(started: std::time::Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// The next moving average of a device's time per item after a sync of `items` that took
/// `duration_ms`; `None` when the sync moved no item (nothing to measure).
pub fn next_time_per_item(previous: Option<f64>, duration_ms: f64, items: usize) -> Option<f64> {
    if items == 0 || !duration_ms.is_finite() || duration_ms < 0.0 {
        return previous;
    }
    let sample = duration_ms / items as f64;
    Some(match previous {
        Some(previous) if previous.is_finite() => {
            TIME_PER_ITEM_WEIGHT * sample + (1.0 - TIME_PER_ITEM_WEIGHT) * previous
        }
        _ => sample,
    })
}

/// Folds one measured download of `items` into the device's time per item (and marks it seen).
pub(crate) fn record_time_per_item(
    conn: &mut DbConnection,
    principal: &Principal,
    device_id: &str,
    duration_ms: f64,
    items: usize,
    at: OffsetDateTime,
) -> Result<()> {
    let previous = store::get_device(conn, &principal.tenant, device_id)?.and_then(|d| d.avg_ms_per_item);
    if let Some(average) = next_time_per_item(previous, duration_ms, items) {
        store::set_device_time_per_item(
            conn,
            &principal.tenant,
            device_id,
            &principal.user,
            average,
            micros::from_datetime(at),
        )?;
    }
    Ok(())
}

impl SyncEngine {
    /// Records a failed or refused sync of a device: a sync event with `success = false` and
    /// the device's health, in a transaction of its own (the failed one rolled back). A
    /// device id that the protocol refuses names no device and is not recorded.
    pub async fn record_failed_sync(&self, principal: &Principal, failed: FailedSync) -> Result<()> {
        if check_device_id(&failed.device_id).is_err() {
            return Ok(());
        }
        let principal = principal.clone();
        let duration_ms = failed.duration.as_secs_f64() * 1000.0;
        self.retrying_write(move |conn| {
            record_sync(
                conn,
                &SyncRecord {
                    principal: &principal,
                    device_id: &failed.device_id,
                    kind: failed.kind,
                    success: false,
                    duration_ms,
                    at: OffsetDateTime::now_utc(),
                    changes: 0,
                    conflicts: 0,
                    manual: 0,
                    bytes_raw: usize::try_from(failed.wire.raw).unwrap_or(usize::MAX),
                    bytes_sent: usize::try_from(failed.wire.sent).unwrap_or(usize::MAX),
                    domains: BTreeMap::new(),
                    network: failed.network.as_deref(),
                    clock_skew_ms: None,
                },
            )
        })
        .await
    }

    /// Records `error`, the failure of an engine operation, as a failed sync of `device_id`.
    /// Recording is best effort: when the database is unreachable there is nowhere to write,
    /// and a failure to record never hides the error the caller gets.
    pub(crate) async fn note_failure(&self, principal: &Principal, error: &crate::Error, failed: FailedSync) {
        if error.is_unavailable() {
            return;
        }
        if let Err(e) = self.record_failed_sync(principal, failed).await {
            tracing::warn!(error = %e, "could not record a failed sync");
        }
    }
}

/// What one sync did.
pub(crate) struct SyncRecord<'a> {
    pub principal: &'a Principal,
    pub device_id: &'a str,
    pub kind: SyncEventKind,
    pub success: bool,
    /// Server-side duration (ms).
    pub duration_ms: f64,
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
    let duration_ms = sync.duration_ms;
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
