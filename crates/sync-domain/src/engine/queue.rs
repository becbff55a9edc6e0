//! Queue management (PROTOCOL.md section 6): a device's download queue, partial sync of
//! the most urgent records, and when to sync.

use sync_model::Priority;
use sync_protocol::{Recommendation, ServerLoad};
use time::{Duration, OffsetDateTime};

use std::collections::BTreeMap;

use super::{
    SyncEngine,
    health::{FailedSync, SyncRecord, WireBytes, elapsed_ms, record_sync, record_time_per_item},
    pull::record_envelope,
    push::check_device_id,
};
use crate::{
    Error, Result, micros,
    protocol::{OptimalTime, PartialSyncRequest, PartialSyncResponse, QueueStatus},
    store::{self, DeviceRow, Principal, PullFilter, Role, SyncEventKind},
};

/// Priorities at or above `floor`, most urgent first.
fn at_or_above(floor: Priority) -> Vec<Priority> {
    Priority::ALL.into_iter().filter(|p| *p >= floor).collect()
}

/// A device of the caller's tenant that the caller may read: its own (one it synced as), or
/// any for an admin. An unknown device has no queue yet and is the caller's to start.
fn readable_device(principal: &Principal, device: Option<DeviceRow>) -> Result<Option<DeviceRow>> {
    match device {
        Some(d) if principal.role != Role::Admin && d.user_id != principal.user => {
            Err(Error::Forbidden("this device belongs to another user".into()))
        }
        other => Ok(other),
    }
}

impl SyncEngine {
    /// How much a device still has to download. The estimate uses the device's measured
    /// time per item (a moving average of its pulls and partial syncs), and
    /// `default_ms_per_item` (150 ms) only until the device has been measured.
    pub async fn queue_status(&self, principal: &Principal, device_id: &str) -> Result<QueueStatus> {
        check_device_id(device_id)?;
        let principal = principal.clone();
        let device_id = device_id.to_owned();
        let config = self.config.clone();
        self.db
            .read_tx(move |conn| {
                let device =
                    readable_device(&principal, store::get_device(conn, &principal.tenant, &device_id)?)?;
                let cursor = device.as_ref().and_then(|d| d.cursor_seq).unwrap_or(0);
                let units = principal.units.as_deref();
                let all = PullFilter { domains: None, units, priorities: None };
                let pending = store::count_after(conn, &principal.tenant, cursor, &all)?;
                let high = [Priority::High];
                let urgent = PullFilter { domains: None, units, priorities: Some(&high) };
                let high_priority = store::count_after(conn, &principal.tenant, cursor, &urgent)?;
                let ms_per_item =
                    device.and_then(|d| d.avg_ms_per_item).unwrap_or(config.default_ms_per_item);
                Ok(QueueStatus {
                    pending_items: pending,
                    high_priority,
                    estimated_sync_time_sec: (pending as f64 * ms_per_item / 1000.0 * 1000.0).round()
                        / 1000.0,
                    queue_healthy: pending < config.queue_healthy_threshold
                        && high_priority < config.high_priority_threshold,
                })
            })
            .await
    }

    /// The most urgent records after the device's cursor, without moving the cursor. It is
    /// recorded as a sync of the device (a failed one when it fails), and measures its time
    /// per item.
    pub async fn partial_sync(
        &self,
        principal: &Principal,
        request: PartialSyncRequest,
    ) -> Result<PartialSyncResponse> {
        let started = std::time::Instant::now();
        let device_id = request.device_id.clone();
        let network = request.network_quality.clone();
        let result = self.partial_from(principal, request).await;
        match &result {
            Ok(response) => {
                let engine = self.clone();
                let principal = principal.clone();
                let items = response.synced_items.len();
                let bytes = serde_json::to_vec(response).map_or(0, |v| v.len());
                let mut domains: BTreeMap<String, (u64, u64)> = BTreeMap::new();
                for item in &response.synced_items {
                    domains.entry(item.domain.clone()).or_default().0 += 1;
                }
                let written = engine
                    .retrying_write(move |conn| {
                        let now = time::OffsetDateTime::now_utc();
                        let duration_ms = elapsed_ms(started);
                        record_time_per_item(conn, &principal, &device_id, duration_ms, items, now)?;
                        record_sync(
                            conn,
                            &SyncRecord {
                                principal: &principal,
                                device_id: &device_id,
                                kind: SyncEventKind::Partial,
                                success: true,
                                duration_ms,
                                at: now,
                                changes: items,
                                conflicts: 0,
                                manual: 0,
                                bytes_raw: bytes,
                                bytes_sent: bytes,
                                domains: domains.clone(),
                                network: network.as_deref(),
                                clock_skew_ms: None,
                            },
                        )
                    })
                    .await;
                written?;
            }
            Err(error) => {
                let failed = FailedSync {
                    device_id,
                    kind: SyncEventKind::Partial,
                    duration: started.elapsed(),
                    wire: WireBytes::default(),
                    network,
                };
                self.note_failure(principal, error, failed).await;
            }
        }
        result
    }

    async fn partial_from(
        &self,
        principal: &Principal,
        request: PartialSyncRequest,
    ) -> Result<PartialSyncResponse> {
        check_device_id(&request.device_id)?;
        let max_items = match request.max_items {
            Some(0) => {
                return Err(Error::BadRequest {
                    code: "invalid_limit",
                    message: "max_items must be at least 1".into(),
                });
            }
            Some(n) => i64::from(n.min(self.config.max_pull_limit)),
            None => i64::try_from(self.config.batch_sizes.for_header(request.network_quality.as_deref()))
                .unwrap_or(i64::MAX)
                .min(i64::from(self.config.max_pull_limit)),
        };
        let principal = principal.clone();
        self.db
            .read_tx(move |conn| {
                let device = readable_device(
                    &principal,
                    store::get_device(conn, &principal.tenant, &request.device_id)?,
                )?;
                let cursor = device.and_then(|d| d.cursor_seq).unwrap_or(0);
                let units = principal.units.as_deref();
                let mut items = Vec::new();
                for priority in at_or_above(request.priority) {
                    let left = max_items - items.len() as i64;
                    if left <= 0 {
                        break;
                    }
                    let level = [priority];
                    let filter = PullFilter { domains: None, units, priorities: Some(&level) };
                    for row in store::pull_page(conn, &principal.tenant, cursor, left, &filter)? {
                        items.push(record_envelope(&row)?);
                    }
                }
                let levels = at_or_above(request.priority);
                let filter = PullFilter { domains: None, units, priorities: Some(&levels) };
                let total = store::count_after(conn, &principal.tenant, cursor, &filter)?;
                Ok(PartialSyncResponse {
                    remaining: (total - items.len() as i64).max(0),
                    synced_items: items,
                })
            })
            .await
    }

    /// Whether devices should sync now: tenant-wide queued changes and peak hours (section 6),
    /// and when `device_id` (or, without one, a device with no history) should sync next
    /// (section 12): the device's planned window, the fleet's, or the peak-hours rule. A device
    /// token may ask about its own devices only.
    pub async fn optimal_time(&self, principal: &Principal, device_id: Option<&str>) -> Result<OptimalTime> {
        if let Some(device) = device_id {
            check_device_id(device)?;
        }
        let principal = principal.clone();
        let device_id = device_id.map(str::to_owned);
        let engine = self.clone();
        self.db
            .read_tx(move |conn| {
                let config = &engine.config;
                let tenant = &principal.tenant;
                if let Some(device) = &device_id {
                    readable_device(&principal, store::get_device(conn, tenant, device)?)?;
                }
                let now = OffsetDateTime::now_utc();
                let active_since = micros::from_datetime(now - Duration::hours(24));
                let queue_size = match store::oldest_active_cursor(conn, tenant, active_since)? {
                    Some(cursor) => {
                        let units = principal.units.as_deref();
                        let filter = PullFilter { domains: None, units, priorities: None };
                        store::count_after(conn, tenant, cursor, &filter)?
                    }
                    None => 0,
                };
                let server_load = if queue_size > config.load_high_above {
                    ServerLoad::High
                } else if queue_size > config.load_medium_above {
                    ServerLoad::Medium
                } else {
                    ServerLoad::Low
                };
                let is_peak_hour = config.is_peak_hour(now.hour());
                let wait =
                    server_load == ServerLoad::High || (server_load == ServerLoad::Medium && is_peak_hour);
                let (next_window, confidence, basis) =
                    engine.window_advice(conn, tenant, device_id.as_deref(), now)?;
                Ok(OptimalTime {
                    recommendation: if wait { Recommendation::SyncIn30Min } else { Recommendation::SyncNow },
                    server_load,
                    queue_size,
                    is_peak_hour,
                    next_window,
                    confidence,
                    basis,
                })
            })
            .await
    }
}
