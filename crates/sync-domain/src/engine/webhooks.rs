//! Webhooks (PROTOCOL.md section 12): a tenant's subscriptions, the queue of events to deliver
//! and the delivery log. The engine decides what to send, when to retry and when to give up;
//! the HTTP POST itself belongs to an adapter (sync-api's `webhooks`), which reports each
//! attempt back through [`SyncEngine::record_webhook_attempt`].
//!
//! Queueing: a job reads, for each webhook, the alerts (anomalies included), anomalies and
//! conflicts (those admins are told of, as on live streams) created since its queue position,
//! less a lag that covers transactions still committing, and queues each one not yet queued:
//! the body is fixed then, so every attempt sends the same bytes. Retries: after attempt `n`
//! fails, the next is due [`retry_delay`]`(n)` later (30 s doubling, at most 2 h), while that is
//! within `webhook_retry_hours` (24) of the first attempt; then the delivery has failed.

use serde_json::json;
use sync_conflict::Resolution;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    SyncEngine,
    admin::{conflict_view, require_admin},
    analytics::alert_view,
    insight::anomaly_view,
};
use crate::{
    Error, Result,
    db::DbConnection,
    micros,
    protocol::{DeliveryState, DeliveryView, WebhookEvent, WebhookRequest, WebhookView},
    store::{self, ConflictQuery, DeliveryRow, DeliveryStatus, EventName, Principal, WebhookRow},
};

/// Events created this long before a webhook's queue position are read again, so that one
/// whose transaction committed late is not missed (duplicates are recognised by id).
pub const QUEUE_LAG_MINUTES: i64 = 10;
/// The delay after a first failed attempt.
pub const FIRST_RETRY_SECONDS: i64 = 30;
/// The longest delay between attempts.
pub const MAX_RETRY_SECONDS: i64 = 2 * 3600;
/// Most events of each kind queued per webhook and run.
const MAX_QUEUED_PER_RUN: i64 = 500;

const MINUTE_US: i64 = 60_000_000;

/// The delay before attempt `failed + 1` after attempt `failed` (1-based) failed: 30 s,
/// doubling, at most 2 hours.
pub fn retry_delay(failed: i64) -> time::Duration {
    let exponent = u32::try_from(failed.clamp(1, 20) - 1).unwrap_or(0);
    let seconds = FIRST_RETRY_SECONDS.saturating_mul(1_i64 << exponent).min(MAX_RETRY_SECONDS);
    time::Duration::seconds(seconds)
}

/// When the next attempt is due after attempt `failed` failed at `failed_at` (µs), or `None`
/// when that would be more than `horizon_hours` after the first attempt (`first_at`).
pub fn next_attempt_at(first_at: i64, failed: i64, failed_at: i64, horizon_hours: i64) -> Option<i64> {
    let delay = i64::try_from(retry_delay(failed).whole_microseconds()).unwrap_or(i64::MAX);
    let next = failed_at.saturating_add(delay);
    (next <= first_at.saturating_add(micros::hours(horizon_hours))).then_some(next)
}

/// Checks a webhook's name: 1 to 64 of `A-Z a-z 0-9 _ . -` (400 otherwise).
pub fn check_webhook_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest {
            code: "invalid_webhook_name",
            message: "a webhook name is 1 to 64 letters, digits, `_`, `.` or `-`".into(),
        })
    }
}

/// Most entries of a webhook's `events` (a set of three names; repeats are taken once).
const MAX_WEBHOOK_EVENTS: usize = 16;

fn unprocessable(code: &'static str, message: impl Into<String>) -> Error {
    Error::Unprocessable { code, message: message.into() }
}

/// Checks a webhook's URL (an http or https URL with a host), secret and events (422).
pub fn check_webhook(request: &WebhookRequest) -> Result<()> {
    use sync_protocol::insight::{MAX_WEBHOOK_SECRET, MAX_WEBHOOK_URL, MIN_WEBHOOK_SECRET};
    if request.url.len() > MAX_WEBHOOK_URL {
        return Err(unprocessable(
            "invalid_webhook_url",
            format!("url is longer than {MAX_WEBHOOK_URL} characters"),
        ));
    }
    let url = url::Url::parse(&request.url)
        .map_err(|e| unprocessable("invalid_webhook_url", format!("url is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(unprocessable("invalid_webhook_url", "url must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(unprocessable("invalid_webhook_url", "url must name a host"));
    }
    let secret = request.secret.chars().count();
    if !(MIN_WEBHOOK_SECRET..=MAX_WEBHOOK_SECRET).contains(&secret) || request.secret.contains('\0') {
        return Err(unprocessable(
            "invalid_webhook_secret",
            format!("secret must be {MIN_WEBHOOK_SECRET} to {MAX_WEBHOOK_SECRET} characters without NUL"),
        ));
    }
    if request.events.is_empty() || request.events.len() > MAX_WEBHOOK_EVENTS {
        return Err(unprocessable(
            "invalid_webhook_events",
            format!("events must list alert, anomaly or conflict (1 to {MAX_WEBHOOK_EVENTS} entries)"),
        ));
    }
    Ok(())
}

fn event_of(name: EventName) -> WebhookEvent {
    match name {
        EventName::Alert => WebhookEvent::Alert,
        EventName::Anomaly => WebhookEvent::Anomaly,
        EventName::Conflict => WebhookEvent::Conflict,
    }
}

fn events_of(row: &WebhookRow) -> Result<Vec<WebhookEvent>> {
    Ok(serde_json::from_str(&row.events)?)
}

fn webhook_view(row: &WebhookRow) -> Result<WebhookView> {
    Ok(WebhookView {
        name: row.name.clone(),
        url: row.url.clone(),
        events: events_of(row)?,
        created_at: micros::stored(row.created_at)?,
        updated_at: micros::stored(row.updated_at)?,
    })
}

fn delivery_view(row: &DeliveryRow) -> Result<DeliveryView> {
    Ok(DeliveryView {
        id: row.id.clone(),
        event: event_of(row.event),
        event_id: row.event_id.clone(),
        attempt: row.attempt,
        state: match row.state {
            DeliveryStatus::Pending => DeliveryState::Pending,
            DeliveryStatus::Delivered => DeliveryState::Delivered,
            DeliveryStatus::Retrying => DeliveryState::Retrying,
            DeliveryStatus::Failed => DeliveryState::Failed,
        },
        due_at: micros::stored(row.due_at)?,
        attempted_at: row.attempted_at.map(micros::stored).transpose()?,
        status_code: row.status_code.and_then(|c| u16::try_from(c).ok()),
        error: row.error.clone(),
        next_retry_at: row.next_retry_at.map(micros::stored).transpose()?,
    })
}

/// A delivery attempt that is due, with where and how to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub tenant: String,
    pub webhook: String,
    pub url: String,
    pub secret: String,
    /// The attempt row's id.
    pub id: String,
    pub event: WebhookEvent,
    pub event_id: String,
    /// The exact JSON body to POST.
    pub body: String,
    pub attempt: i64,
    pub first_at: i64,
}

/// How an attempt went: the receiver's status, if it answered, and why it failed, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl AttemptResult {
    fn delivered(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl SyncEngine {
    /// Creates or replaces a webhook (admin). The secret is stored to sign deliveries and never
    /// shown again. A new webhook receives the events created from now on.
    pub async fn put_webhook(
        &self,
        principal: &Principal,
        name: &str,
        request: WebhookRequest,
    ) -> Result<WebhookView> {
        require_admin(principal)?;
        check_webhook_name(name)?;
        check_webhook(&request)?;
        // Events are a set: stored sorted, each once.
        let mut events = request.events;
        events.sort();
        events.dedup();
        let now = micros::now();
        let row = WebhookRow {
            tenant_id: principal.tenant.clone(),
            name: name.to_owned(),
            url: request.url,
            secret: request.secret,
            events: serde_json::to_string(&events)?,
            created_at: now,
            updated_at: now,
            queued_until: now,
        };
        self.retrying_write(move |conn| {
            store::upsert_webhook(conn, &row)?;
            let stored = store::get_webhook(conn, &row.tenant_id, &row.name)?
                .ok_or_else(|| Error::Internal("a webhook just written is missing".into()))?;
            webhook_view(&stored)
        })
        .await
    }

    /// A tenant's webhooks by name, without their secrets (admin).
    pub async fn webhooks(&self, principal: &Principal) -> Result<Vec<WebhookView>> {
        require_admin(principal)?;
        let tenant = principal.tenant.clone();
        self.db.run(move |conn| store::list_webhooks(conn, &tenant)?.iter().map(webhook_view).collect()).await
    }

    /// One webhook, without its secret (admin; 404 when unknown in the tenant).
    pub async fn webhook(&self, principal: &Principal, name: &str) -> Result<WebhookView> {
        require_admin(principal)?;
        check_webhook_name(name)?;
        let tenant = principal.tenant.clone();
        let name = name.to_owned();
        self.db
            .run(move |conn| {
                let row = store::get_webhook(conn, &tenant, &name)?
                    .ok_or_else(|| Error::NotFound(format!("no webhook `{name}`")))?;
                webhook_view(&row)
            })
            .await
    }

    /// Deletes a webhook and its delivery log (admin; 404 when unknown).
    pub async fn delete_webhook(&self, principal: &Principal, name: &str) -> Result<()> {
        require_admin(principal)?;
        check_webhook_name(name)?;
        let tenant = principal.tenant.clone();
        let name = name.to_owned();
        self.retrying_write(move |conn| {
            if store::delete_webhook(conn, &tenant, &name)? {
                Ok(())
            } else {
                Err(Error::NotFound(format!("no webhook `{name}`")))
            }
        })
        .await
    }

    /// A webhook's delivery attempts, newest first (admin; 404 when unknown).
    pub async fn webhook_deliveries(
        &self,
        principal: &Principal,
        name: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryView>> {
        require_admin(principal)?;
        check_webhook_name(name)?;
        let tenant = principal.tenant.clone();
        let name = name.to_owned();
        self.db
            .read_tx(move |conn| {
                if store::get_webhook(conn, &tenant, &name)?.is_none() {
                    return Err(Error::NotFound(format!("no webhook `{name}`")));
                }
                store::list_deliveries(conn, &tenant, &name, limit)?.iter().map(delivery_view).collect()
            })
            .await
    }

    /// The queueing job: for every tenant's webhooks, queues the events created since each
    /// one's queue position. Returns the deliveries queued.
    pub async fn queue_webhook_events(&self, now: OffsetDateTime) -> Result<usize> {
        let now = micros::from_datetime(now);
        let mut queued = 0;
        for tenant in self.tenants().await? {
            queued += self.retrying_write(move |conn| queue_tenant(conn, &tenant, now)).await?;
        }
        Ok(queued)
    }

    /// The attempts due at `now` over every tenant, at most `limit` per tenant.
    pub async fn due_webhook_deliveries(&self, now: OffsetDateTime, limit: i64) -> Result<Vec<DueDelivery>> {
        let now = micros::from_datetime(now);
        let tenants = self.tenants().await?;
        self.db
            .read_tx(move |conn| {
                let mut due = Vec::new();
                for tenant in &tenants {
                    for row in store::due_deliveries(conn, tenant, now, limit)? {
                        // A webhook deleted meanwhile takes its deliveries with it.
                        let Some(hook) = store::get_webhook(conn, tenant, &row.webhook)? else { continue };
                        due.push(DueDelivery {
                            tenant: tenant.clone(),
                            webhook: hook.name,
                            url: hook.url,
                            secret: hook.secret,
                            id: row.id,
                            event: event_of(row.event),
                            event_id: row.event_id,
                            body: row.body,
                            attempt: row.attempt,
                            first_at: row.first_at,
                        });
                    }
                }
                Ok(due)
            })
            .await
    }

    /// Records how an attempt went at `at`: delivered on a 2xx; otherwise the next attempt is
    /// queued by the retry schedule, or, 24 hours after the first, the delivery has failed.
    /// Returns the attempt's new state.
    pub async fn record_webhook_attempt(
        &self,
        due: &DueDelivery,
        result: &AttemptResult,
        at: OffsetDateTime,
    ) -> Result<DeliveryState> {
        let at = micros::from_datetime(at);
        let horizon = self.config.webhook_retry_hours;
        let due = due.clone();
        let result = result.clone();
        self.retrying_write(move |conn| {
            let Some(row) = store::get_delivery(conn, &due.tenant, &due.id)? else {
                return Ok(DeliveryState::Failed);
            };
            let status = result.status.map(i64::from);
            if result.delivered() {
                store::finish_delivery(
                    conn,
                    &due.tenant,
                    &due.id,
                    (DeliveryStatus::Delivered, at, status, None, None),
                )?;
                return Ok(DeliveryState::Delivered);
            }
            let error =
                result.error.clone().or_else(|| result.status.map(|s| format!("the receiver answered {s}")));
            let next = next_attempt_at(row.first_at, row.attempt, at, horizon);
            let state = if next.is_some() { DeliveryStatus::Retrying } else { DeliveryStatus::Failed };
            if !store::finish_delivery(conn, &due.tenant, &due.id, (state, at, status, error, next))? {
                return Ok(DeliveryState::Failed);
            }
            if let Some(next) = next {
                store::insert_deliveries(
                    conn,
                    &[DeliveryRow {
                        id: Uuid::now_v7().to_string(),
                        attempt: row.attempt + 1,
                        state: DeliveryStatus::Pending,
                        due_at: next,
                        attempted_at: None,
                        status_code: None,
                        error: None,
                        next_retry_at: None,
                        ..row
                    }],
                )?;
                Ok(DeliveryState::Retrying)
            } else {
                Ok(DeliveryState::Failed)
            }
        })
        .await
    }
}

/// One event to queue: its kind, id and body.
fn events_for(
    conn: &mut DbConnection,
    tenant: &str,
    wanted: &[WebhookEvent],
    since: i64,
) -> Result<Vec<(EventName, String, serde_json::Value)>> {
    let mut out = Vec::new();
    if wanted.contains(&WebhookEvent::Alert) {
        for row in store::list_alerts(conn, tenant, since, MAX_QUEUED_PER_RUN)? {
            let view = alert_view(row)?;
            out.push((EventName::Alert, view.id.clone(), serde_json::to_value(view)?));
        }
    }
    if wanted.contains(&WebhookEvent::Anomaly) {
        for row in store::list_anomalies(conn, tenant, since, MAX_QUEUED_PER_RUN)? {
            let view = anomaly_view(&row)?;
            out.push((EventName::Anomaly, view.id.clone(), serde_json::to_value(view)?));
        }
    }
    if wanted.contains(&WebhookEvent::Conflict) {
        let notify = super::live::notified_domains(conn, tenant)?;
        let query =
            ConflictQuery { since: Some(since), limit: Some(MAX_QUEUED_PER_RUN), ..ConflictQuery::default() };
        for row in store::list_conflicts(conn, tenant, &query)? {
            if row.result != Resolution::ManualRequired && !notify.get(&row.domain).copied().unwrap_or(false)
            {
                continue;
            }
            let view = conflict_view(row)?;
            out.push((EventName::Conflict, view.id.clone(), serde_json::to_value(view)?));
        }
    }
    Ok(out)
}

/// Queues a tenant's new events for each of its webhooks; returns how many.
fn queue_tenant(conn: &mut DbConnection, tenant: &str, now: i64) -> Result<usize> {
    let mut queued = 0;
    for hook in store::list_webhooks(conn, tenant)? {
        let wanted = events_of(&hook)?;
        let since = (hook.queued_until - QUEUE_LAG_MINUTES * MINUTE_US).max(hook.created_at);
        let already = store::queued_events(conn, tenant, &hook.name, since)?;
        let mut rows = Vec::new();
        for (event, event_id, data) in events_for(conn, tenant, &wanted, since)? {
            if already.contains(&(event, event_id.clone())) {
                continue;
            }
            let body = json!({"event": event.as_str(), "tenant": tenant, "id": event_id, "data": data});
            rows.push(DeliveryRow {
                tenant_id: tenant.to_owned(),
                id: Uuid::now_v7().to_string(),
                webhook: hook.name.clone(),
                event,
                event_id,
                body: serde_json::to_string(&body)?,
                attempt: 1,
                state: DeliveryStatus::Pending,
                first_at: now,
                due_at: now,
                attempted_at: None,
                status_code: None,
                error: None,
                next_retry_at: None,
            });
        }
        queued += rows.len();
        store::insert_deliveries(conn, &rows)?;
        store::set_webhook_queued_until(conn, tenant, &hook.name, now.max(hook.queued_until))?;
    }
    Ok(queued)
}
