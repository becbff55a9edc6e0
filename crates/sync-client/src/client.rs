//! The typed API apps use, and the tokio driver that syncs the store with a server.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sync_bandwidth::NetworkQuality;
use sync_model::{Priority, SyncMeta, SyncableModel};
use sync_protocol::{ItemError, PushRequest};
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, broadcast};
use uuid::Uuid;

use crate::core::{
    self, Backoff, EditOp, Event, LocalEdit, Notice, PullOutcome, RecordId, SseParser, Step, View,
};
use crate::http::{PullParams, Remote};
use crate::store::Store;
use crate::{Error, Result};

/// The stream sends a heartbeat every 15 s; this long without a byte, it is reopened.
const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// How the driver behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sets the push batch size (excellent 100, good 50, fair 25, poor 10) and is sent as
    /// `X-Network-Quality` (the server's pull page size).
    pub network_quality: NetworkQuality,
    /// Pull JSON-Patch deltas where the server has them.
    pub delta: bool,
    /// Pull only these domains (`None`: all).
    pub domains: Option<Vec<String>>,
    pub backoff: Backoff,
    /// Retries of one request before `sync()` gives up (the state stays safe; the next
    /// `sync()` goes on from there).
    pub max_retries: u32,
    /// Seconds a long-poll waits (1 to 60).
    pub long_poll_wait: u32,
    /// How often `follow` syncs when the server offers neither a stream nor long-poll.
    pub poll_interval: Duration,
    /// The live transport `follow` uses; `None`: the best the server offers.
    pub live_mode: Option<LiveMode>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            network_quality: NetworkQuality::Good,
            delta: true,
            domains: None,
            backoff: Backoff::default(),
            max_retries: 5,
            long_poll_wait: 25,
            poll_interval: Duration::from_secs(30),
            live_mode: None,
        }
    }
}

/// What one `sync()` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Batches the server answered.
    pub batches: u32,
    /// Changes pushed and answered.
    pub pushed: u32,
    /// Records pulled.
    pub pulled: u32,
    /// Requests retried after a failure, a 429 or a 503.
    pub retries: u32,
    /// Records that came as JSON-Patch deltas.
    pub deltas: u32,
    /// Pages pulled again in full because a delta's base was not held.
    pub delta_fallbacks: u32,
    /// `resync_required` answers.
    pub resyncs: u32,
}

/// How `follow` learns of new changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMode {
    /// Server-sent events (`GET /api/v1/sync/stream`).
    Stream,
    /// `pull?wait=S`.
    LongPoll,
    /// Neither offered: a sync every `poll_interval`.
    Poll,
}

/// An account's local data and its sync with one server.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    remote: Remote,
    options: Options,
    device_id: String,
    events: broadcast::Sender<Event>,
    outbox_changed: Notify,
    syncing: Mutex<()>,
    /// The live transport found by `follow`, until it fails.
    mode: std::sync::Mutex<Option<LiveMode>>,
}

impl Client {
    /// A client of `store` that syncs with `remote`.
    pub fn new(store: Store, remote: Remote, options: Options) -> Result<Client> {
        let device_id = store.meta()?.device_id;
        let remote = remote.with_network_quality(options.network_quality);
        let (events, _) = broadcast::channel(1024);
        Ok(Client {
            inner: Arc::new(Inner {
                store,
                remote,
                options,
                device_id,
                events,
                outbox_changed: Notify::new(),
                syncing: Mutex::new(()),
                mode: std::sync::Mutex::new(None),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn device_id(&self) -> &str {
        &self.inner.device_id
    }

    /// Local changes, server changes and conflict notices as they commit. A receiver that
    /// falls more than 1024 events behind misses the oldest (the store still has the state).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Every notice so far (conflicts resolved by policy, manual conflicts, refusals).
    pub fn notices(&self) -> Result<Vec<Notice>> {
        self.inner.store.notices()
    }

    fn commit(&self, f: impl FnOnce(&mut dyn core::Replica) -> Result<Step>) -> Result<()> {
        let events = self.inner.store.step(f)?;
        for event in events {
            // No subscriber is fine: events are a convenience, the store is the truth.
            let _ = self.inner.events.send(event);
        }
        Ok(())
    }

    fn local(&self, id: RecordId, op: EditOp, priority: Option<Priority>, bu: Option<String>) -> Result<()> {
        sync_model::DomainName::new(id.domain.clone())?;
        let at = OffsetDateTime::now_utc();
        self.commit(|r| core::edit(r, LocalEdit { id, op, at, priority, bu }))?;
        self.inner.outbox_changed.notify_one();
        Ok(())
    }

    // ---- untyped API: a domain name and JSON data ----

    /// Creates or replaces a record's data (a JSON object).
    pub fn put_json(&self, domain: &str, mobile_id: Uuid, data: Value) -> Result<()> {
        self.local(RecordId::new(domain, mobile_id), EditOp::Put(data), None, None)
    }

    /// Applies an RFC 6902 JSON Patch to what the app sees of a record.
    pub fn patch_json(&self, domain: &str, mobile_id: Uuid, patch: Value) -> Result<()> {
        self.local(RecordId::new(domain, mobile_id), EditOp::Patch(patch), None, None)
    }

    pub fn delete_json(&self, domain: &str, mobile_id: Uuid) -> Result<()> {
        self.local(RecordId::new(domain, mobile_id), EditOp::Delete, None, None)
    }

    pub fn get_json(&self, domain: &str, mobile_id: Uuid) -> Result<Option<View>> {
        self.inner.store.get(&RecordId::new(domain, mobile_id))
    }

    pub fn query_json(&self, domain: &str) -> Result<Vec<View>> {
        self.inner.store.query(domain)
    }

    // ---- typed API: records through `SyncableModel` ----

    /// Stores a typed record (its meta gives the id, priority and business unit). The record
    /// is validated first; its `SyncMeta` field must be `#[serde(skip)]`.
    pub fn put<T: SyncableModel + Serialize>(&self, record: &T) -> Result<()> {
        record.validate()?;
        let meta = record.sync_meta();
        let data = data_of(record)?;
        self.local(
            RecordId::new(T::DOMAIN, meta.mobile_id),
            EditOp::Put(data),
            Some(meta.priority),
            meta.bu.clone(),
        )
    }

    pub fn patch<T: SyncableModel>(&self, mobile_id: Uuid, patch: Value) -> Result<()> {
        self.local(RecordId::new(T::DOMAIN, mobile_id), EditOp::Patch(patch), None, None)
    }

    pub fn delete<T: SyncableModel>(&self, mobile_id: Uuid) -> Result<()> {
        self.local(RecordId::new(T::DOMAIN, mobile_id), EditOp::Delete, None, None)
    }

    pub fn get<T: SyncableModel + DeserializeOwned>(&self, mobile_id: Uuid) -> Result<Option<T>> {
        self.get_json(T::DOMAIN, mobile_id)?.map(typed).transpose()
    }

    /// Every record of `T`'s domain, by id.
    pub fn query<T: SyncableModel + DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.query_json(T::DOMAIN)?.into_iter().map(typed).collect()
    }

    // ---- the driver ----

    /// Pushes every local edit, then pulls everything new. Retryable failures are retried
    /// with backoff (honouring `Retry-After`); if they persist the error is returned and the
    /// local state is as safe as before: call `sync()` again later.
    pub async fn sync(&self) -> Result<SyncReport> {
        let _one_at_a_time = self.inner.syncing.lock().await;
        let mut report = SyncReport::default();
        self.push_all(&mut report).await?;
        self.pull_all(&mut report, None).await?;
        Ok(report)
    }

    /// Pushes every local edit (batch by batch, each with its idempotency key until answered).
    pub async fn push_all(&self, report: &mut SyncReport) -> Result<()> {
        loop {
            let meta = self.inner.store.meta()?;
            let size = core::batch_size(self.inner.options.network_quality, meta.batch_cap);
            let mut formed = None;
            self.commit(|r| {
                Ok(match core::next_batch(r, size)? {
                    Some((step, batch)) => {
                        formed = Some(batch);
                        step
                    }
                    None => Step::default(),
                })
            })?;
            let Some(batch) = formed else { return Ok(()) };
            let sent = self
                .retrying(report, || {
                    let request = PushRequest {
                        device_id: self.inner.device_id.clone(),
                        client_time: Some(OffsetDateTime::now_utc()),
                        changes: batch.changes.clone(),
                    };
                    let remote = self.inner.remote.clone();
                    let key = batch.key.clone();
                    async move { remote.push(&key, &request).await }
                })
                .await;
            match sent {
                Ok(response) => {
                    self.commit(|r| core::push_answered(r, &batch.key, &response))?;
                    report.batches += 1;
                    report.pushed += u32::try_from(batch.changes.len()).unwrap_or(u32::MAX);
                }
                Err(Error::Http { status, code, message, .. })
                    if (400..500).contains(&status) && !matches!(status, 401 | 403 | 408 | 429) =>
                {
                    self.commit(|r| core::push_refused(r, &batch.key, status, ItemError { code, message }))?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Pulls pages until the server has nothing more. With `wait`, the first page is a
    /// long-poll.
    async fn pull_all(&self, report: &mut SyncReport, mut wait: Option<u32>) -> Result<()> {
        let mut delta = self.inner.options.delta;
        let mut resyncs = 0;
        loop {
            let from = self.inner.store.meta()?.cursor;
            let params = self.params(from.clone(), delta, wait.take());
            let page = self
                .retrying(report, || {
                    let remote = self.inner.remote.clone();
                    let params = params.clone();
                    async move { remote.pull(&params).await }
                })
                .await;
            let page = match page {
                Ok(page) => page,
                // 410: history past the cursor was purged. A cursor the server never handed
                // out (its database was replaced) is as lost: start again either way.
                Err(error) if is_lost_cursor(&error) && resyncs < 2 => {
                    resyncs += 1;
                    report.resyncs += 1;
                    self.commit(|r| core::resync_required(r))?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let mut more = false;
            let mut full = false;
            self.commit(|r| {
                Ok(match core::pull_answered(r, from.as_deref(), &page)? {
                    PullOutcome::Apply { step, more: m } => {
                        more = m;
                        step
                    }
                    PullOutcome::Stale => {
                        more = true;
                        Step::default()
                    }
                    PullOutcome::NeedFull => {
                        full = true;
                        Step::default()
                    }
                })
            })?;
            if full && !delta {
                // Only a delta can lack its base: a page without deltas that still does not
                // apply would be asked for again for ever.
                return Err(Error::Protocol("a pulled record has neither data nor a delta".into()));
            }
            if full {
                report.delta_fallbacks += 1;
                delta = false;
                continue;
            }
            report.pulled += u32::try_from(page.changes.len()).unwrap_or(u32::MAX);
            let deltas = page.changes.iter().filter(|c| c.patch.is_some()).count();
            report.deltas += u32::try_from(deltas).unwrap_or(u32::MAX);
            delta = self.inner.options.delta;
            if !more {
                return Ok(());
            }
        }
    }

    fn params(&self, cursor: Option<String>, delta: bool, wait: Option<u32>) -> PullParams {
        PullParams {
            cursor,
            limit: None,
            domains: self.inner.options.domains.clone(),
            delta,
            device_id: Some(self.inner.device_id.clone()),
            wait,
        }
    }

    async fn retrying<T, F, Fut>(&self, report: &mut SyncReport, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(error) if error.is_retryable() && tries < self.inner.options.max_retries => {
                    let delay = self.inner.options.backoff.delay(tries, error.retry_after(), rand::random());
                    tries += 1;
                    report.retries += 1;
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Which live transport the server offers: the stream, else long-poll, else neither.
    pub async fn live_mode(&self) -> Result<LiveMode> {
        let cursor = self.inner.store.meta()?.cursor;
        match self.inner.remote.stream(&self.params(cursor.clone(), false, None), None).await {
            Ok(_) => return Ok(LiveMode::Stream),
            Err(Error::Http { status: 404 | 405, .. }) => {}
            Err(error) => return Err(error),
        }
        match self
            .inner
            .remote
            .pull(&PullParams { limit: Some(1), ..self.params(cursor, false, Some(1)) })
            .await
        {
            Ok(_) => Ok(LiveMode::LongPoll),
            Err(Error::Http { status: 400, .. }) => Ok(LiveMode::Poll),
            Err(error) => Err(error),
        }
    }

    /// Keeps the store in sync until the returned future is dropped: pushes local edits as
    /// they are made, and takes the server's changes as they commit through the live stream
    /// (or long-poll, or a periodic sync, whichever the server offers). Failures are retried
    /// with backoff for ever.
    pub async fn follow(&self) -> Result<std::convert::Infallible> {
        let mut failures = 0;
        loop {
            let round = async {
                let known = *self.inner.mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let mode = match known.or(self.inner.options.live_mode) {
                    Some(mode) => mode,
                    None => self.live_mode().await?,
                };
                *self.inner.mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mode);
                let mut report = SyncReport::default();
                {
                    let _one = self.inner.syncing.lock().await;
                    self.push_all(&mut report).await?;
                    self.pull_all(&mut report, None).await?;
                }
                match mode {
                    LiveMode::Stream => self.follow_stream().await,
                    LiveMode::LongPoll => self.follow_polls(true).await,
                    LiveMode::Poll => self.follow_polls(false).await,
                }
            };
            let started = std::time::Instant::now();
            let result = round.await;
            if result.is_err() {
                // Find the transport again after a failure (a server upgraded or rolled back).
                *self.inner.mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            }
            let error = match result {
                Ok(()) => {
                    failures = 0;
                    // A stream that ends at once (a server closing it, a moved cursor) is
                    // reopened after a short pause, not in a tight loop.
                    if started.elapsed() < Duration::from_secs(1) {
                        tokio::time::sleep(self.inner.options.backoff.delay(0, None, rand::random())).await;
                    }
                    continue;
                }
                Err(error) => error,
            };
            if !error.is_retryable() && !matches!(error, Error::Protocol(_)) {
                return Err(error);
            }
            let delay = self.inner.options.backoff.delay(failures, error.retry_after(), rand::random());
            failures = failures.saturating_add(1);
            tokio::time::sleep(delay).await;
        }
    }

    /// Long-polls (or sleeps `poll_interval`) and syncs, waking early for local edits. The
    /// sync lock is not held while waiting, so the app's own `sync()` calls go ahead.
    async fn follow_polls(&self, long_poll: bool) -> Result<()> {
        loop {
            let mut report = SyncReport::default();
            {
                let _one = self.inner.syncing.lock().await;
                self.push_all(&mut report).await?;
                if !long_poll {
                    self.pull_all(&mut report, None).await?;
                }
            }
            if long_poll {
                let wait = self.inner.options.long_poll_wait.clamp(1, 60);
                tokio::select! {
                    pulled = async {
                        let _one = self.inner.syncing.lock().await;
                        self.pull_all(&mut report, Some(wait)).await
                    } => pulled?,
                    () = self.inner.outbox_changed.notified() => {}
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep(self.inner.options.poll_interval) => {}
                    () = self.inner.outbox_changed.notified() => {}
                }
            }
        }
    }

    /// Reads the event stream; returns to reconnect (a cursor moved elsewhere, the stream ended).
    async fn follow_stream(&self) -> Result<()> {
        let from = self.inner.store.meta()?.cursor;
        // The stored cursor is the truth: sent as `cursor=` and, on a reconnect, as
        // `Last-Event-ID` (the event id of the last page taken).
        let params = self.params(from.clone(), self.inner.options.delta, None);
        let mut response = self.inner.remote.stream(&params, from.as_deref()).await?;
        let mut parser = SseParser::new();
        let mut at = from;
        loop {
            let chunk = tokio::select! {
                chunk = tokio::time::timeout(STREAM_SILENCE, response.chunk()) => match chunk {
                    // Not even a heartbeat: the connection is dead without knowing it.
                    Err(_) => return Ok(()),
                    Ok(chunk) => chunk.map_err(|source| Error::Transport { path: "/api/v1/sync/stream", source })?,
                },
                () = self.inner.outbox_changed.notified() => {
                    let _one = self.inner.syncing.lock().await;
                    self.push_all(&mut SyncReport::default()).await?;
                    continue;
                }
            };
            let Some(chunk) = chunk else { return Ok(()) };
            for event in parser.feed(&chunk) {
                match event.event.as_str() {
                    "changes" => {
                        let page: sync_protocol::PullResponse = serde_json::from_str(&event.data)
                            .map_err(|e| Error::Protocol(format!("stream changes: {e}")))?;
                        let mut applied = false;
                        self.commit(|r| {
                            Ok(match core::pull_answered(r, at.as_deref(), &page)? {
                                PullOutcome::Apply { step, .. } => {
                                    applied = true;
                                    step
                                }
                                PullOutcome::Stale | PullOutcome::NeedFull => Step::default(),
                            })
                        })?;
                        if !applied {
                            // A sync moved the cursor, or a delta needs its base: reconnect by cursor.
                            return Ok(());
                        }
                        at = Some(page.cursor);
                    }
                    "resync_required" => {
                        self.commit(|r| core::resync_required(r))?;
                        return Ok(());
                    }
                    "reconnect" => return Ok(()),
                    _ => {}
                }
            }
        }
    }
}

fn is_lost_cursor(error: &Error) -> bool {
    match error {
        Error::Http { status: 410, .. } => true,
        Error::Http { status: 400, code, .. } => code == "invalid_cursor",
        _ => false,
    }
}

/// A typed record's data: its serde form, which must not carry its `SyncMeta`.
fn data_of<T: SyncableModel + Serialize>(record: &T) -> Result<Value> {
    let data = serde_json::to_value(record).map_err(|source| Error::Typed { domain: T::DOMAIN, source })?;
    let meta = serde_json::to_value(record.sync_meta())
        .map_err(|source| Error::Typed { domain: T::DOMAIN, source })?;
    match &data {
        Value::Object(fields) if fields.values().any(|v| v == &meta) => Err(Error::MetaInData(T::DOMAIN)),
        Value::Object(_) => Ok(data),
        _ => Err(Error::NotAnObject),
    }
}

/// A typed record from what the app sees, its meta filled in from the local state.
fn typed<T: SyncableModel + DeserializeOwned>(view: View) -> Result<T> {
    let mut record: T =
        serde_json::from_value(view.data).map_err(|source| Error::Typed { domain: T::DOMAIN, source })?;
    *record.sync_meta_mut() = SyncMeta {
        mobile_id: view.id.mobile_id,
        version: view.version,
        sync_status: view.status,
        modified_at: view.modified_at,
        server_modified_at: None,
        modified_by_device: None,
        deleted: false,
        bu: view.bu,
        priority: view.priority,
    };
    Ok(record)
}
