//! Analytics (PROTOCOL.md section 7) and the scheduled jobs: snapshots from sync events,
//! the dashboard, device health, alerts, conflict reports and the history purge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_metrics::{AlertRules, DomainCounts, Snapshot, SyncEvent, SyncKind, conflict_hotspots};
use sync_protocol::AnomalySeverity;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{SyncEngine, admin::require_admin, health::health_from_row, push::check_device_id};
use crate::{
    Error, Result,
    db::DbConnection,
    live::{CommitKind, Committed},
    micros,
    store::{self, AlertRow, DeviceHealthRow, Principal, Role, SnapshotRow, SyncEventKind, SyncEventRow},
};

/// The shortest snapshot window, in hours.
pub const MIN_SNAPSHOT_WINDOW_HOURS: i64 = 1;
/// The longest snapshot window, in hours (a leap year). The one bound the engine, the API and
/// the command line share.
pub const MAX_SNAPSHOT_WINDOW_HOURS: i64 = 24 * 366;

/// Refuses a snapshot window outside [`MIN_SNAPSHOT_WINDOW_HOURS`]..=[`MAX_SNAPSHOT_WINDOW_HOURS`].
pub fn check_snapshot_window(window_hours: i64) -> Result<()> {
    if (MIN_SNAPSHOT_WINDOW_HOURS..=MAX_SNAPSHOT_WINDOW_HOURS).contains(&window_hours) {
        return Ok(());
    }
    Err(Error::BadRequest {
        code: "invalid_time_window",
        message: format!(
            "time_window_hours must be between {MIN_SNAPSHOT_WINDOW_HOURS} and {MAX_SNAPSHOT_WINDOW_HOURS}"
        ),
    })
}

// The analytics wire types live in sync-protocol; re-exported from `engine` as before.
pub use sync_protocol::{AlertView, Dashboard, DeviceHealthView, SnapshotCreated, SnapshotView};

/// What a purge removed for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    pub tenant: String,
    pub below_seq: i64,
    pub tombstones: usize,
    pub versions: usize,
    pub idempotency_keys: usize,
}

/// Conflicts per domain, strategy and result over some days (the weekly report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictReportRow {
    pub tenant: String,
    pub domain: String,
    pub conflict_count: i64,
}

fn snapshot_view(row: &SnapshotRow) -> Result<SnapshotView> {
    Ok(SnapshotView {
        snapshot_id: row.id.clone(),
        timestamp: micros::stored(row.created_at)?,
        time_window_hours: row.window_hours,
        snapshot: serde_json::from_str(&row.body)?,
    })
}

pub(super) fn health_view(row: &DeviceHealthRow, now: OffsetDateTime) -> Result<DeviceHealthView> {
    let health = health_from_row(row);
    Ok(DeviceHealthView {
        device_id: row.device_id.clone(),
        user_id: row.user_id.clone(),
        health_score: (health.score_at(now) * 100.0).round() / 100.0,
        total_syncs: row.total_syncs,
        failed_syncs_count: row.failed_syncs_count,
        avg_sync_duration_ms: row.avg_sync_duration_ms,
        conflicts_encountered: row.conflicts_encountered,
        last_sync_at: row.last_sync_at.map(micros::stored).transpose()?,
        network_type: row.network_type.clone(),
        clock_skew_ms: row.clock_skew_ms,
    })
}

pub(crate) fn alert_view(row: AlertRow) -> Result<AlertView> {
    Ok(AlertView {
        created_at: micros::stored(row.created_at)?,
        id: row.id,
        snapshot_id: row.snapshot_id,
        rule: row.rule,
        severity: AnomalySeverity::parse(&row.severity)
            .ok_or_else(|| Error::Internal(format!("stored alert severity {:?}", row.severity)))?,
        value: row.value,
        threshold: row.threshold,
        message: row.message,
    })
}

pub(super) fn sync_event(row: &SyncEventRow) -> Result<SyncEvent> {
    let domains: BTreeMap<String, Value> = serde_json::from_str(&row.domains).unwrap_or_default();
    let count = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(SyncEvent {
        at: micros::stored(row.at)?,
        tenant: row.tenant_id.clone(),
        device: row.device_id.clone(),
        user: row.user_id.clone(),
        kind: match row.kind {
            // A partial sync downloads; an admin's resolution writes.
            SyncEventKind::Pull | SyncEventKind::Partial => SyncKind::Pull,
            SyncEventKind::Push | SyncEventKind::Resolve => SyncKind::Push,
        },
        success: row.success,
        duration_ms: row.duration_ms,
        changes: u64::try_from(row.changes).unwrap_or(0),
        conflicts: u64::try_from(row.conflicts).unwrap_or(0),
        auto_resolved: u64::try_from(row.auto_resolved).unwrap_or(0),
        manual: u64::try_from(row.manual).unwrap_or(0),
        domains: domains
            .iter()
            .map(|(domain, v)| {
                (
                    domain.clone(),
                    DomainCounts { changes: count(v, "changes"), conflicts: count(v, "conflicts") },
                )
            })
            .collect(),
        bytes_raw: u64::try_from(row.bytes_raw).unwrap_or(0),
        bytes_sent: u64::try_from(row.bytes_sent).unwrap_or(0),
    })
}

impl SyncEngine {
    fn alert_rules(&self) -> AlertRules {
        AlertRules {
            min_success_rate_pct: self.config.alert_min_success_rate_pct,
            max_conflict_rate_pct: self.config.alert_max_conflict_rate_pct,
            device_health_below: self.config.alert_critical_health,
            max_unhealthy_devices: u64::from(self.config.alert_max_critical_devices),
            ..AlertRules::default()
        }
    }

    /// Computes and stores a snapshot of `tenant`'s last `window_hours`, with its alerts.
    pub async fn create_snapshot(&self, tenant: &str, window_hours: i64) -> Result<SnapshotCreated> {
        check_snapshot_window(window_hours)?;
        let engine = self.clone();
        let tenant = tenant.to_owned();
        let (created, alerted) =
            self.retrying_write(move |conn| engine.snapshot_tx(conn, &tenant, window_hours)).await?;
        if let Some(fact) = alerted {
            self.publish(&[fact]);
        }
        Ok(created)
    }

    fn snapshot_tx(
        &self,
        conn: &mut DbConnection,
        tenant: &str,
        window_hours: i64,
    ) -> Result<(SnapshotCreated, Option<Committed>)> {
        let now = OffsetDateTime::now_utc();
        let from = now - Duration::hours(window_hours);
        let events = store::list_sync_events(conn, tenant, micros::from_datetime(from), None)?
            .iter()
            .map(sync_event)
            .collect::<Result<Vec<_>>>()?;
        let snapshot = Snapshot::from_window(&events, from, now + Duration::SECOND);
        let rules = self.alert_rules();
        let critical = self.devices_below(conn, tenant, rules.device_health_below, now)?;
        let alerts = rules.evaluate(&snapshot, critical.len() as u64);
        let id = Uuid::now_v7().to_string();
        let now_us = micros::from_datetime(now);
        store::insert_snapshot(
            conn,
            &SnapshotRow {
                tenant_id: tenant.to_owned(),
                id: id.clone(),
                created_at: now_us,
                window_hours,
                body: serde_json::to_string(&snapshot)?,
            },
        )?;
        let alerted = (!alerts.is_empty()).then(|| Committed::new(CommitKind::Alert, tenant, 0));
        if let Some(fact) = &alerted {
            self.notify_in_tx(conn, fact)?;
        }
        for alert in alerts {
            store::insert_alert(
                conn,
                &AlertRow {
                    tenant_id: tenant.to_owned(),
                    id: Uuid::now_v7().to_string(),
                    snapshot_id: Some(id.clone()),
                    rule: alert.rule.to_string(),
                    severity: match alert.severity {
                        sync_metrics::Severity::Warning => "warning",
                        sync_metrics::Severity::Critical => "critical",
                    }
                    .to_owned(),
                    value: alert.value,
                    threshold: alert.threshold,
                    message: alert.message,
                    created_at: now_us,
                },
            )?;
        }
        Ok((SnapshotCreated { snapshot_id: id, status: "created".into(), timestamp: now }, alerted))
    }

    /// Devices whose health, scored now, is below `level`. Scores only fall with time since
    /// the last sync (by at most 20 points), so rows stored below `level + 20` are the
    /// candidates.
    fn devices_below(
        &self,
        conn: &mut DbConnection,
        tenant: &str,
        level: f64,
        now: OffsetDateTime,
    ) -> Result<Vec<DeviceHealthView>> {
        let mut devices: Vec<DeviceHealthView> =
            store::list_device_health_below(conn, Some(tenant), level + 20.0)?
                .iter()
                .map(|row| health_view(row, now))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|d| d.health_score < level)
                .collect();
        devices.sort_by(|a, b| {
            a.health_score.total_cmp(&b.health_score).then_with(|| a.device_id.cmp(&b.device_id))
        });
        Ok(devices)
    }

    /// Snapshot as an admin asked for it.
    pub async fn snapshot_for(&self, principal: &Principal, window_hours: i64) -> Result<SnapshotCreated> {
        require_admin(principal)?;
        self.create_snapshot(&principal.tenant, window_hours).await
    }

    /// The operator's view of a tenant (admin).
    pub async fn dashboard(&self, principal: &Principal) -> Result<Dashboard> {
        require_admin(principal)?;
        let engine = self.clone();
        let tenant = principal.tenant.clone();
        self.db
            .read_tx(move |conn| {
                let now = OffsetDateTime::now_utc();
                let week = micros::from_datetime(now - Duration::days(7));
                let latest =
                    store::latest_snapshot(conn, &tenant)?.as_ref().map(snapshot_view).transpose()?;
                let mut trend = store::list_snapshots(conn, &tenant, week)?
                    .iter()
                    .map(snapshot_view)
                    .collect::<Result<Vec<_>>>()?;
                trend.sort_by_key(|s| s.timestamp);
                let unhealthy =
                    engine.devices_below(conn, &tenant, engine.config.device_health_threshold, now)?;
                let by_domain: BTreeMap<String, DomainCounts> =
                    store::conflict_counts_by_domain(conn, &tenant, week)?
                        .into_iter()
                        .map(|(domain, n)| {
                            (domain, DomainCounts { changes: 0, conflicts: u64::try_from(n).unwrap_or(0) })
                        })
                        .collect();
                let hotspots = conflict_hotspots(&by_domain, 5);
                let alerts = store::list_alerts(conn, &tenant, week, 50)?
                    .into_iter()
                    .map(alert_view)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Dashboard {
                    latest_snapshot: latest,
                    trend_7days: trend,
                    unhealthy_devices: unhealthy,
                    conflict_hotspots: hotspots,
                    alerts,
                })
            })
            .await
    }

    /// One device's health: a device may read its own, an admin any in its tenant.
    pub async fn device_health(&self, principal: &Principal, device_id: &str) -> Result<DeviceHealthView> {
        check_device_id(device_id)?;
        let principal = principal.clone();
        let device_id = device_id.to_owned();
        self.db
            .run(move |conn| {
                let row = store::get_device_health(conn, &principal.tenant, &device_id)?
                    .ok_or_else(|| Error::NotFound(format!("no health recorded for device `{device_id}`")))?;
                if principal.role != Role::Admin && row.user_id != principal.user {
                    return Err(Error::Forbidden("this device belongs to another user".into()));
                }
                health_view(&row, OffsetDateTime::now_utc())
            })
            .await
    }

    /// Every tenant's devices whose health is below `threshold` now (the daily check).
    pub async fn check_device_health(&self, threshold: f64) -> Result<Vec<(String, DeviceHealthView)>> {
        let engine = self.clone();
        self.db
            .run(move |conn| {
                let now = OffsetDateTime::now_utc();
                let mut found = Vec::new();
                for tenant in store::tenant_ids(conn)? {
                    for device in engine.devices_below(conn, &tenant, threshold, now)? {
                        found.push((tenant.clone(), device));
                    }
                }
                Ok(found)
            })
            .await
    }

    /// Conflicts per tenant and domain over the last `days` (the weekly report).
    pub async fn conflict_report(&self, days: i64) -> Result<Vec<ConflictReportRow>> {
        self.db
            .run(move |conn| {
                let since = micros::from_datetime(OffsetDateTime::now_utc() - Duration::days(days));
                let mut rows = Vec::new();
                for tenant in store::tenant_ids(conn)? {
                    for (domain, conflict_count) in store::conflict_counts_by_domain(conn, &tenant, since)? {
                        rows.push(ConflictReportRow { tenant: tenant.clone(), domain, conflict_count });
                    }
                }
                Ok(rows)
            })
            .await
    }

    /// Every tenant's id.
    pub async fn tenants(&self) -> Result<Vec<String>> {
        self.db.run(store::tenant_ids).await
    }

    /// Purges `tenant`'s tombstones and past versions below the oldest cursor of a device
    /// active within `device_retention_days`, and expired idempotency keys. With no active
    /// device holding a cursor, history is kept.
    pub async fn purge(&self, tenant: &str) -> Result<PurgeReport> {
        let config = self.config.clone();
        let tenant = tenant.to_owned();
        let engine = self.clone();
        let report = self
            .retrying_write(move |conn| {
                let now = OffsetDateTime::now_utc();
                let active = micros::from_datetime(now - Duration::days(config.device_retention_days));
                let expired = micros::from_datetime(now - Duration::hours(config.idempotency_ttl_hours));
                let idempotency_keys = store::purge_expired_idempotency(conn, Some(&tenant), expired)?;
                let (below_seq, stats) = match store::oldest_active_cursor(conn, &tenant, active)? {
                    Some(cursor) => {
                        (cursor, store::purge(conn, &tenant, cursor, micros::from_datetime(now))?)
                    }
                    None => (0, store::PurgeStats::default()),
                };
                if below_seq > 0 {
                    engine
                        .notify_in_tx(conn, &Committed::new(CommitKind::Purge, tenant.clone(), below_seq))?;
                }
                Ok(PurgeReport {
                    tenant: tenant.clone(),
                    below_seq,
                    tombstones: stats.tombstones,
                    versions: stats.versions,
                    idempotency_keys,
                })
            })
            .await?;
        if report.below_seq > 0 {
            self.publish(&[Committed::new(CommitKind::Purge, report.tenant.clone(), report.below_seq)]);
        }
        Ok(report)
    }
}
