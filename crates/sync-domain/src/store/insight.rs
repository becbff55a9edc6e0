//! Fleet insight (PROTOCOL.md section 12): anomalies, conflict-risk models and scores, planned
//! sync windows, webhooks and their delivery log; and the light reads of the sync history the
//! insight jobs learn from.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::{KEYS_PER_LOOKUP, RecordKey, rows_per_insert, text_enum};
use crate::db::{DbConnection, MultiBackend};
use crate::error::Result;
use crate::schema::{
    anomalies, conflicts, record_versions, records, risk_models, risk_scores, sync_events, sync_windows,
    webhook_deliveries, webhooks,
};

text_enum! {
    /// What an anomaly measures (column `anomalies.metric`).
    pub enum MetricName {
        SyncVolume = "sync_volume",
        FailureRate = "failure_rate",
        ConflictRate = "conflict_rate",
        P95Duration = "p95_duration",
    }
}

text_enum! {
    /// An anomaly's severity (column `anomalies.severity`).
    pub enum SeverityName {
        Info = "info",
        Warning = "warning",
        Critical = "critical",
    }
}

text_enum! {
    /// Where a planned sync window came from (column `sync_windows.basis`).
    pub enum BasisName {
        DeviceHistory = "device_history",
        Fleet = "fleet",
        Rule = "rule",
    }
}

text_enum! {
    /// What a webhook delivery carries (column `webhook_deliveries.event`).
    pub enum EventName {
        Alert = "alert",
        Anomaly = "anomaly",
        Conflict = "conflict",
    }
}

text_enum! {
    /// Where a delivery attempt stands (column `webhook_deliveries.state`).
    pub enum DeliveryStatus {
        /// Not attempted yet.
        Pending = "pending",
        /// Answered with a 2xx.
        Delivered = "delivered",
        /// Failed; the next attempt is another row.
        Retrying = "retrying",
        /// Failed, with no retry left.
        Failed = "failed",
    }
}

/// An anomaly (table `anomalies`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = anomalies)]
#[diesel(treat_none_as_default_value = false, treat_none_as_null = true)]
pub struct AnomalyRow {
    pub tenant_id: String,
    /// Also the id of the dashboard alert it raised.
    pub id: String,
    pub metric: MetricName,
    pub scope_device: Option<String>,
    pub scope_domain: Option<String>,
    pub observed: f64,
    pub expected: f64,
    pub band_low: f64,
    pub band_high: f64,
    pub score: f64,
    pub severity: SeverityName,
    /// The judged window (µs); `window_end` moves on while the anomaly lasts.
    pub window_start: i64,
    pub window_end: i64,
    pub explanation: String,
    pub created_at: i64,
}

/// Stores an anomaly.
pub fn insert_anomaly(conn: &mut DbConnection, row: &AnomalyRow) -> Result<()> {
    diesel::insert_into(anomalies::table).values(row).execute(conn)?;
    Ok(())
}

/// Rewrites a stored anomaly (an episode that goes on: its window end, and its figures when it
/// got worse).
pub fn update_anomaly(conn: &mut DbConnection, row: &AnomalyRow) -> Result<()> {
    diesel::update(anomalies::table)
        .filter(anomalies::tenant_id.eq(&row.tenant_id))
        .filter(anomalies::id.eq(&row.id))
        .set(row)
        .execute(conn)?;
    Ok(())
}

/// A tenant's anomalies created at or after `since` (µs), newest first, at most `limit`.
pub fn list_anomalies(
    conn: &mut DbConnection,
    tenant: &str,
    since: i64,
    limit: i64,
) -> Result<Vec<AnomalyRow>> {
    Ok(anomalies::table
        .filter(anomalies::tenant_id.eq(tenant))
        .filter(anomalies::created_at.ge(since))
        .order((anomalies::created_at.desc(), anomalies::id.desc()))
        .limit(limit.max(0))
        .select(AnomalyRow::as_select())
        .load(conn)?)
}

/// A tenant's anomalies whose window ended at or after `since` (µs): the episodes that may
/// still be going on. Recent ones are found through the creation index (an episode is never
/// older than `created_after`).
pub fn open_anomalies(
    conn: &mut DbConnection,
    tenant: &str,
    created_after: i64,
    since: i64,
) -> Result<Vec<AnomalyRow>> {
    Ok(anomalies::table
        .filter(anomalies::tenant_id.eq(tenant))
        .filter(anomalies::created_at.ge(created_after))
        .filter(anomalies::window_end.ge(since))
        .select(AnomalyRow::as_select())
        .load(conn)?)
}

/// A tenant's conflict-risk model (table `risk_models`, one per tenant).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = risk_models)]
#[diesel(treat_none_as_default_value = false)]
pub struct RiskModelRow {
    pub tenant_id: String,
    pub trained_at: i64,
    pub examples: i64,
    pub holdout_auc: Option<f64>,
    pub baseline_auc: Option<f64>,
    /// The serialised `sync_insight::Model` (JSON text: weights, standardisation, figures).
    pub model: String,
}

/// Stores `row` as its tenant's model, replacing the previous one.
pub fn upsert_risk_model(conn: &mut DbConnection, row: &RiskModelRow) -> Result<()> {
    crate::dispatch!(conn, c => diesel::insert_into(risk_models::table)
        .values(row)
        .on_conflict(risk_models::tenant_id)
        .do_update()
        .set((
            risk_models::trained_at.eq(excluded(risk_models::trained_at)),
            risk_models::examples.eq(excluded(risk_models::examples)),
            risk_models::holdout_auc.eq(excluded(risk_models::holdout_auc)),
            risk_models::baseline_auc.eq(excluded(risk_models::baseline_auc)),
            risk_models::model.eq(excluded(risk_models::model)),
        ))
        .execute(c))?;
    Ok(())
}

/// A tenant's model, if one was trained.
pub fn get_risk_model(conn: &mut DbConnection, tenant: &str) -> Result<Option<RiskModelRow>> {
    Ok(risk_models::table
        .filter(risk_models::tenant_id.eq(tenant))
        .select(RiskModelRow::as_select())
        .first(conn)
        .optional()?)
}

/// One record's latest conflict risk (table `risk_scores`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = risk_scores)]
pub struct RiskScoreRow {
    pub tenant_id: String,
    pub domain: String,
    pub mobile_id: String,
    pub risk: f64,
    /// JSON array of the reasons in words.
    pub reasons: String,
    pub scored_at: i64,
}

/// Replaces a tenant's risk scores with `rows`.
pub fn replace_risk_scores(conn: &mut DbConnection, tenant: &str, rows: &[RiskScoreRow]) -> Result<()> {
    diesel::delete(risk_scores::table.filter(risk_scores::tenant_id.eq(tenant))).execute(conn)?;
    for chunk in rows.chunks(rows_per_insert(6)) {
        crate::dispatch!(&mut *conn, c => diesel::insert_into(risk_scores::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// A tenant's riskiest records (of `domain` if given), highest first.
pub fn top_risk_scores(
    conn: &mut DbConnection,
    tenant: &str,
    domain: Option<&str>,
    limit: i64,
) -> Result<Vec<RiskScoreRow>> {
    let mut q = risk_scores::table.filter(risk_scores::tenant_id.eq(tenant)).into_boxed::<MultiBackend>();
    if let Some(domain) = domain {
        q = q.filter(risk_scores::domain.eq(domain.to_owned()));
    }
    Ok(q.order((risk_scores::risk.desc(), risk_scores::domain.asc(), risk_scores::mobile_id.asc()))
        .limit(limit.max(0))
        .select(RiskScoreRow::as_select())
        .load(conn)?)
}

/// The risks of those of `keys` at or above `threshold`, by primary key (what a pull with
/// `hints=true` adds; one statement per 500 keys).
pub fn risks_of(
    conn: &mut DbConnection,
    tenant: &str,
    keys: &[RecordKey],
    threshold: f64,
) -> Result<HashMap<RecordKey, f64>> {
    let mut by_domain: HashMap<&str, Vec<&str>> = HashMap::new();
    for key in keys {
        by_domain.entry(key.domain.as_str()).or_default().push(key.mobile_id.as_str());
    }
    let mut found = HashMap::new();
    for (domain, ids) in by_domain {
        for chunk in ids.chunks(KEYS_PER_LOOKUP) {
            let rows: Vec<(String, String, f64)> = risk_scores::table
                .filter(risk_scores::tenant_id.eq(tenant))
                .filter(risk_scores::domain.eq(domain))
                .filter(risk_scores::mobile_id.eq_any(chunk))
                .filter(risk_scores::risk.ge(threshold))
                .select((risk_scores::domain, risk_scores::mobile_id, risk_scores::risk))
                .load(conn)?;
            for (domain, mobile_id, risk) in rows {
                found.insert(RecordKey { domain, mobile_id }, risk);
            }
        }
    }
    Ok(found)
}

/// One device's planned sync hour (table `sync_windows`).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sync_windows)]
pub struct SyncWindowRow {
    pub tenant_id: String,
    /// `""`: the fleet's advice for a device with no history of its own.
    pub device_id: String,
    pub hour: i64,
    pub minutes: i64,
    pub confidence: f64,
    pub basis: BasisName,
    pub planned_at: i64,
}

/// Replaces a tenant's planned windows with `rows`.
pub fn replace_sync_windows(conn: &mut DbConnection, tenant: &str, rows: &[SyncWindowRow]) -> Result<()> {
    diesel::delete(sync_windows::table.filter(sync_windows::tenant_id.eq(tenant))).execute(conn)?;
    for chunk in rows.chunks(rows_per_insert(7)) {
        crate::dispatch!(&mut *conn, c => diesel::insert_into(sync_windows::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// A device's planned window (`""`: the fleet's).
pub fn get_sync_window(conn: &mut DbConnection, tenant: &str, device: &str) -> Result<Option<SyncWindowRow>> {
    Ok(sync_windows::table
        .filter(sync_windows::tenant_id.eq(tenant))
        .filter(sync_windows::device_id.eq(device))
        .select(SyncWindowRow::as_select())
        .first(conn)
        .optional()?)
}

/// A webhook (table `webhooks`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
pub struct WebhookRow {
    pub tenant_id: String,
    pub name: String,
    pub url: String,
    pub secret: String,
    /// JSON array of event names.
    pub events: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Events created before this moment (µs) have been queued.
    pub queued_until: i64,
}

/// Creates a webhook, or changes the url, secret and events of an existing one (keeping its
/// creation time and queue position).
pub fn upsert_webhook(conn: &mut DbConnection, row: &WebhookRow) -> Result<()> {
    crate::dispatch!(conn, c => diesel::insert_into(webhooks::table)
        .values(row)
        .on_conflict((webhooks::tenant_id, webhooks::name))
        .do_update()
        .set((
            webhooks::url.eq(excluded(webhooks::url)),
            webhooks::secret.eq(excluded(webhooks::secret)),
            webhooks::events.eq(excluded(webhooks::events)),
            webhooks::updated_at.eq(excluded(webhooks::updated_at)),
        ))
        .execute(c))?;
    Ok(())
}

/// One webhook of a tenant.
pub fn get_webhook(conn: &mut DbConnection, tenant: &str, name: &str) -> Result<Option<WebhookRow>> {
    Ok(webhooks::table
        .filter(webhooks::tenant_id.eq(tenant))
        .filter(webhooks::name.eq(name))
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()?)
}

/// A tenant's webhooks by name.
pub fn list_webhooks(conn: &mut DbConnection, tenant: &str) -> Result<Vec<WebhookRow>> {
    Ok(webhooks::table
        .filter(webhooks::tenant_id.eq(tenant))
        .order(webhooks::name.asc())
        .select(WebhookRow::as_select())
        .load(conn)?)
}

/// Deletes a webhook and its delivery log; whether it existed.
pub fn delete_webhook(conn: &mut DbConnection, tenant: &str, name: &str) -> Result<bool> {
    diesel::delete(
        webhook_deliveries::table
            .filter(webhook_deliveries::tenant_id.eq(tenant))
            .filter(webhook_deliveries::webhook.eq(name)),
    )
    .execute(conn)?;
    let deleted = diesel::delete(
        webhooks::table.filter(webhooks::tenant_id.eq(tenant)).filter(webhooks::name.eq(name)),
    )
    .execute(conn)?;
    Ok(deleted > 0)
}

/// Moves a webhook's queue position on.
pub fn set_webhook_queued_until(conn: &mut DbConnection, tenant: &str, name: &str, until: i64) -> Result<()> {
    diesel::update(webhooks::table.filter(webhooks::tenant_id.eq(tenant)).filter(webhooks::name.eq(name)))
        .set(webhooks::queued_until.eq(until))
        .execute(conn)?;
    Ok(())
}

/// One delivery attempt (table `webhook_deliveries`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
#[diesel(treat_none_as_default_value = false)]
pub struct DeliveryRow {
    pub tenant_id: String,
    pub id: String,
    pub webhook: String,
    pub event: EventName,
    /// The id of the alert, anomaly or conflict.
    pub event_id: String,
    /// The exact JSON body sent (the same bytes on every attempt).
    pub body: String,
    pub attempt: i64,
    pub state: DeliveryStatus,
    /// When the event was first queued (µs): retries stop 24 hours after it.
    pub first_at: i64,
    pub due_at: i64,
    pub attempted_at: Option<i64>,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub next_retry_at: Option<i64>,
}

/// Queues delivery attempts.
pub fn insert_deliveries(conn: &mut DbConnection, rows: &[DeliveryRow]) -> Result<()> {
    for chunk in rows.chunks(rows_per_insert(14)) {
        crate::dispatch!(&mut *conn, c => diesel::insert_into(webhook_deliveries::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// The events (kind and id) already queued for a webhook at or after `since` (µs).
pub fn queued_events(
    conn: &mut DbConnection,
    tenant: &str,
    webhook: &str,
    since: i64,
) -> Result<HashSet<(EventName, String)>> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::tenant_id.eq(tenant))
        .filter(webhook_deliveries::webhook.eq(webhook))
        .filter(webhook_deliveries::attempt.eq(1))
        .filter(webhook_deliveries::first_at.ge(since))
        .select((webhook_deliveries::event, webhook_deliveries::event_id))
        .load::<(EventName, String)>(conn)?
        .into_iter()
        .collect())
}

/// A tenant's pending attempts due at or before `now` (µs), oldest first, at most `limit`.
pub fn due_deliveries(
    conn: &mut DbConnection,
    tenant: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::tenant_id.eq(tenant))
        .filter(webhook_deliveries::state.eq(DeliveryStatus::Pending))
        .filter(webhook_deliveries::due_at.le(now))
        .order((webhook_deliveries::due_at.asc(), webhook_deliveries::id.asc()))
        .limit(limit.max(0))
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

/// One attempt by id.
pub fn get_delivery(conn: &mut DbConnection, tenant: &str, id: &str) -> Result<Option<DeliveryRow>> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::tenant_id.eq(tenant))
        .filter(webhook_deliveries::id.eq(id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()?)
}

/// Records how a pending attempt went; whether it was still pending (another run may have
/// made it already).
pub fn finish_delivery(
    conn: &mut DbConnection,
    tenant: &str,
    id: &str,
    outcome: (DeliveryStatus, i64, Option<i64>, Option<String>, Option<i64>),
) -> Result<bool> {
    let (state, attempted_at, status_code, error, next_retry_at) = outcome;
    let updated = diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::tenant_id.eq(tenant))
            .filter(webhook_deliveries::id.eq(id))
            .filter(webhook_deliveries::state.eq(DeliveryStatus::Pending)),
    )
    .set((
        webhook_deliveries::state.eq(state),
        webhook_deliveries::attempted_at.eq(Some(attempted_at)),
        webhook_deliveries::status_code.eq(status_code),
        webhook_deliveries::error.eq(error),
        webhook_deliveries::next_retry_at.eq(next_retry_at),
    ))
    .execute(conn)?;
    Ok(updated > 0)
}

/// A webhook's delivery log, newest first, at most `limit`.
pub fn list_deliveries(
    conn: &mut DbConnection,
    tenant: &str,
    webhook: &str,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::tenant_id.eq(tenant))
        .filter(webhook_deliveries::webhook.eq(webhook))
        .order((
            webhook_deliveries::due_at.desc(),
            webhook_deliveries::attempt.desc(),
            webhook_deliveries::id.desc(),
        ))
        .limit(limit.max(0))
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

/// A sync event as the insight jobs read it (no byte counts, no user).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = sync_events)]
pub struct EventLite {
    pub at: i64,
    pub device_id: String,
    pub kind: super::SyncEventKind,
    pub success: bool,
    pub duration_ms: f64,
    pub changes: i64,
    pub conflicts: i64,
    /// Per-domain counts (JSON text).
    pub domains: String,
}

/// A tenant's events in `[since, until)` (µs), oldest first.
pub fn events_between(
    conn: &mut DbConnection,
    tenant: &str,
    since: i64,
    until: i64,
) -> Result<Vec<EventLite>> {
    Ok(sync_events::table
        .filter(sync_events::tenant_id.eq(tenant))
        .filter(sync_events::at.ge(since))
        .filter(sync_events::at.lt(until))
        .order((sync_events::at.asc(), sync_events::id.asc()))
        .select(EventLite::as_select())
        .load(conn)?)
}

/// One past version of a record, as the risk model reads the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditLite {
    pub key: RecordKey,
    pub device: String,
    /// When the server stored it (µs).
    pub at: i64,
}

/// A tenant's record versions stored at or after `since` (µs): the superseded ones in history
/// and the current ones in `records`. (Versions below the oldest active cursor may have been
/// purged; the model learns from what is left.)
pub fn edits_since(conn: &mut DbConnection, tenant: &str, since: i64) -> Result<Vec<EditLite>> {
    let mut rows: Vec<(String, String, String, i64)> = record_versions::table
        .filter(record_versions::tenant_id.eq(tenant))
        .filter(record_versions::server_modified_at.ge(since))
        .select((
            record_versions::domain,
            record_versions::mobile_id,
            record_versions::modified_by_device,
            record_versions::server_modified_at,
        ))
        .load(conn)?;
    rows.extend(
        records::table
            .filter(records::tenant_id.eq(tenant))
            .filter(records::server_modified_at.ge(since))
            .select((
                records::domain,
                records::mobile_id,
                records::modified_by_device,
                records::server_modified_at,
            ))
            .load::<(String, String, String, i64)>(conn)?,
    );
    Ok(rows
        .into_iter()
        .map(|(domain, mobile_id, device, at)| EditLite { key: RecordKey { domain, mobile_id }, device, at })
        .collect())
}

/// The business unit of each record changed at or after `since` (µs).
pub fn units_since(conn: &mut DbConnection, tenant: &str, since: i64) -> Result<HashMap<RecordKey, String>> {
    let rows: Vec<(String, String, Option<String>)> = records::table
        .filter(records::tenant_id.eq(tenant))
        .filter(records::server_modified_at.ge(since))
        .select((records::domain, records::mobile_id, records::bu))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(domain, mobile_id, bu)| Some((RecordKey { domain, mobile_id }, bu?)))
        .collect())
}

/// The record and time (µs) of each conflict logged at or after `since`.
pub fn conflicts_since(conn: &mut DbConnection, tenant: &str, since: i64) -> Result<Vec<(RecordKey, i64)>> {
    let rows: Vec<(String, String, i64)> = conflicts::table
        .filter(conflicts::tenant_id.eq(tenant))
        .filter(conflicts::created_at.ge(since))
        .select((conflicts::domain, conflicts::mobile_id, conflicts::created_at))
        .load(conn)?;
    Ok(rows.into_iter().map(|(domain, mobile_id, at)| (RecordKey { domain, mobile_id }, at)).collect())
}
