//! The operator console's figures (PROTOCOL.md section 13): per-minute fleet activity counted
//! from the recorded sync events, every device's health, and one device's recent syncs.

use serde::{Deserialize, Serialize};
use sync_metrics::{Snapshot, SyncEvent};
use time::{Duration, OffsetDateTime};

use super::{
    SyncEngine,
    admin::require_admin,
    analytics::{DeviceHealthView, health_view, sync_event},
    push::check_device_id,
};
use crate::{
    Error, Result, micros,
    store::{self, Principal},
};

/// The longest activity window, in minutes (one day).
pub const MAX_ACTIVITY_MINUTES: u32 = 1440;
/// The window of "devices active now", in minutes.
pub const ACTIVE_DEVICE_MINUTES: i64 = 15;
/// The most devices one device list returns.
pub const MAX_DEVICE_LIST: i64 = 5000;
/// The most sync events one device's history returns.
pub const MAX_DEVICE_SYNCS: i64 = 200;

/// One minute of a tenant's sync activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityBucket {
    /// The start of the minute; the bucket holds events of `[start, start + 1 min)`.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Pushes, pulls, partial syncs and resolutions.
    pub syncs: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Changes pushed or records pulled.
    pub changes: u64,
    /// Conflicts met.
    pub conflicts: u64,
    /// `None` for a minute without syncs.
    pub success_rate_pct: Option<f64>,
    /// Conflicts per synced change in %; `None` for a minute without changes.
    pub conflict_rate_pct: Option<f64>,
    /// Nearest-rank p95 of the minute's durations; `None` for a minute without syncs.
    pub p95_sync_duration_ms: Option<f64>,
    /// Distinct devices that synced in the minute.
    pub devices: u64,
}

/// The whole window's figures, as a snapshot of it would count them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivitySummary {
    pub syncs: u64,
    pub failed: u64,
    pub changes: u64,
    pub conflicts: u64,
    /// `syncs` over the window's minutes.
    pub syncs_per_minute: f64,
    /// 100 for an empty window (none failed).
    pub success_rate_pct: f64,
    /// 0 for a window without changes.
    pub conflict_rate_pct: f64,
    /// 0 for an empty window.
    pub p95_sync_duration_ms: f64,
    pub devices: u64,
}

/// `GET /api/v1/sync/activity?minutes=N` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub minutes: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Distinct devices with a sync in the last 15 minutes.
    pub active_devices_15m: u64,
    pub summary: ActivitySummary,
    /// `minutes` buckets, oldest first.
    pub buckets: Vec<ActivityBucket>,
}

/// `GET /api/v1/sync/devices` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceList {
    /// Devices below this score are unhealthy (`device_health_threshold`).
    pub health_threshold: f64,
    /// Health scored now, worst first.
    pub devices: Vec<DeviceHealthView>,
}

/// One recorded sync of a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSyncView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `push`, `pull`, `partial` or `resolve`.
    pub kind: String,
    pub success: bool,
    pub duration_ms: f64,
    pub changes: i64,
    pub conflicts: i64,
    pub bytes_sent: i64,
}

/// `GET /api/v1/sync/devices/{device_id}/syncs` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSyncs {
    pub device_id: String,
    /// Newest first.
    pub syncs: Vec<DeviceSyncView>,
}

/// Splits `events` into `minutes` one-minute buckets from `from`. Events before `from` are
/// left out; events at or after the window's end fall into the last bucket (they committed
/// while the window was read).
pub fn activity_buckets(events: &[SyncEvent], from: OffsetDateTime, minutes: u32) -> Vec<ActivityBucket> {
    let n = minutes.max(1) as usize;
    let mut slots: Vec<Vec<&SyncEvent>> = vec![Vec::new(); n];
    for event in events {
        if event.at < from {
            continue;
        }
        let index = usize::try_from((event.at - from).whole_minutes()).unwrap_or(usize::MAX).min(n - 1);
        if let Some(slot) = slots.get_mut(index) {
            slot.push(event);
        }
    }
    slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let s = Snapshot::from_events(slot.iter().copied());
            let changes = slot.iter().map(|e| e.changes).fold(0u64, u64::saturating_add);
            let any = s.total_sync_requests > 0;
            ActivityBucket {
                start: from + Duration::minutes(i as i64),
                syncs: s.total_sync_requests,
                failed: s.failed_syncs,
                changes,
                conflicts: s.total_conflicts,
                success_rate_pct: any.then_some(s.success_rate_pct),
                conflict_rate_pct: (changes > 0).then_some(s.conflict_rate_pct),
                p95_sync_duration_ms: any.then_some(s.p95_sync_duration_ms),
                devices: s.unique_devices,
            }
        })
        .collect()
}

/// The figures of the whole window.
pub fn activity_summary(events: &[SyncEvent], minutes: u32) -> ActivitySummary {
    let s = Snapshot::from_events(events);
    ActivitySummary {
        syncs: s.total_sync_requests,
        failed: s.failed_syncs,
        changes: events.iter().map(|e| e.changes).fold(0u64, u64::saturating_add),
        conflicts: s.total_conflicts,
        syncs_per_minute: s.total_sync_requests as f64 / f64::from(minutes.max(1)),
        success_rate_pct: s.success_rate_pct,
        conflict_rate_pct: s.conflict_rate_pct,
        p95_sync_duration_ms: s.p95_sync_duration_ms,
        devices: s.unique_devices,
    }
}

fn bounded(value: Option<i64>, default: i64, max: i64, name: &str) -> Result<i64> {
    let value = value.unwrap_or(default);
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::BadRequest { code: "invalid_limit", message: format!("{name} must be 1 to {max}") })
    }
}

impl SyncEngine {
    /// The tenant's sync activity of the last `minutes` (1..=1440), per minute (admin).
    pub async fn activity(&self, principal: &Principal, minutes: u32) -> Result<Activity> {
        require_admin(principal)?;
        if !(1..=MAX_ACTIVITY_MINUTES).contains(&minutes) {
            return Err(Error::BadRequest {
                code: "invalid_minutes",
                message: format!("minutes must be 1 to {MAX_ACTIVITY_MINUTES}"),
            });
        }
        let tenant = principal.tenant.clone();
        self.db
            .read_tx(move |conn| {
                let to = OffsetDateTime::now_utc();
                let from = to - Duration::minutes(i64::from(minutes));
                let until = micros::from_datetime(to) + 1;
                let events =
                    store::list_sync_events(conn, &tenant, micros::from_datetime(from), Some(until))?
                        .iter()
                        .map(sync_event)
                        .collect::<Result<Vec<_>>>()?;
                let active_since = micros::from_datetime(to - Duration::minutes(ACTIVE_DEVICE_MINUTES));
                let active = store::count_active_devices(conn, &tenant, active_since)?;
                Ok(Activity {
                    minutes,
                    from,
                    to,
                    active_devices_15m: u64::try_from(active).unwrap_or(0),
                    summary: activity_summary(&events, minutes),
                    buckets: activity_buckets(&events, from, minutes),
                })
            })
            .await
    }

    /// The tenant's devices with their health scored now, worst first (admin).
    pub async fn device_list(&self, principal: &Principal, limit: Option<i64>) -> Result<DeviceList> {
        require_admin(principal)?;
        let limit = bounded(limit, 1000, MAX_DEVICE_LIST, "limit")?;
        let tenant = principal.tenant.clone();
        let health_threshold = self.config.device_health_threshold;
        self.db
            .read_tx(move |conn| {
                let now = OffsetDateTime::now_utc();
                let mut devices = store::list_device_health(conn, &tenant, limit)?
                    .iter()
                    .map(|row| health_view(row, now))
                    .collect::<Result<Vec<_>>>()?;
                devices.sort_by(|a, b| {
                    a.health_score.total_cmp(&b.health_score).then_with(|| a.device_id.cmp(&b.device_id))
                });
                Ok(DeviceList { health_threshold, devices })
            })
            .await
    }

    /// A device's last syncs, newest first (admin).
    pub async fn device_syncs(
        &self,
        principal: &Principal,
        device_id: &str,
        limit: Option<i64>,
    ) -> Result<DeviceSyncs> {
        require_admin(principal)?;
        check_device_id(device_id)?;
        let limit = bounded(limit, 50, MAX_DEVICE_SYNCS, "limit")?;
        let tenant = principal.tenant.clone();
        let device_id = device_id.to_owned();
        self.db
            .read_tx(move |conn| {
                let syncs = store::recent_device_sync_events(conn, &tenant, &device_id, limit)?
                    .into_iter()
                    .map(|row| {
                        Ok(DeviceSyncView {
                            at: micros::stored(row.at)?,
                            kind: row.kind.as_str().to_owned(),
                            success: row.success,
                            duration_ms: row.duration_ms,
                            changes: row.changes,
                            conflicts: row.conflicts,
                            bytes_sent: row.bytes_sent,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(DeviceSyncs { device_id, syncs })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_metrics::SyncKind;
    use time::macros::datetime;

    fn event(
        at: OffsetDateTime,
        device: &str,
        success: bool,
        ms: f64,
        changes: u64,
        conflicts: u64,
    ) -> SyncEvent {
        SyncEvent {
            at,
            tenant: "t".into(),
            device: device.into(),
            user: "u".into(),
            kind: SyncKind::Push,
            success,
            duration_ms: ms,
            changes,
            conflicts,
            auto_resolved: conflicts,
            manual: 0,
            domains: Default::default(),
            bytes_raw: 0,
            bytes_sent: 0,
        }
    }

    #[test]
    fn buckets_count_each_minute_and_leave_empty_minutes_empty() {
        let from = datetime!(2026-12-01 10:00:00 UTC);
        let events = vec![
            event(from - Duration::SECOND, "early", true, 1.0, 1, 0),
            event(from, "a", true, 10.0, 4, 1),
            event(from + Duration::seconds(59), "b", false, 30.0, 0, 0),
            event(from + Duration::minutes(2), "a", true, 5.0, 2, 0),
            event(from + Duration::minutes(9), "late", true, 7.0, 1, 0),
        ];
        let buckets = activity_buckets(&events, from, 3);
        assert_eq!(buckets.len(), 3);
        assert_eq!(buckets[0].start, from);
        assert_eq!((buckets[0].syncs, buckets[0].failed, buckets[0].devices), (2, 1, 2));
        assert_eq!(buckets[0].success_rate_pct, Some(50.0));
        assert_eq!(buckets[0].conflict_rate_pct, Some(25.0));
        assert_eq!(buckets[0].p95_sync_duration_ms, Some(30.0));
        assert_eq!(buckets[1].syncs, 0);
        assert_eq!(buckets[1].success_rate_pct, None);
        assert_eq!(buckets[1].p95_sync_duration_ms, None);
        // The event after the window's end lands in the last bucket.
        assert_eq!((buckets[2].syncs, buckets[2].devices), (2, 2));
    }

    #[test]
    fn the_summary_divides_by_the_window() {
        let from = datetime!(2026-12-01 10:00:00 UTC);
        let events: Vec<_> =
            (0..6).map(|i| event(from + Duration::minutes(i), "a", i != 0, 1.0, 1, 0)).collect();
        let s = activity_summary(&events, 3);
        assert_eq!((s.syncs, s.failed, s.devices), (6, 1, 1));
        assert!((s.syncs_per_minute - 2.0).abs() < 1e-9);
        assert!((s.success_rate_pct - 500.0 / 6.0).abs() < 1e-9);
        let empty = activity_summary(&[], 60);
        assert_eq!((empty.syncs, empty.success_rate_pct, empty.p95_sync_duration_ms), (0, 100.0, 0.0));
    }
}
