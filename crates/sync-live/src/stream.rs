//! A subscription: a task that follows a cursor for one subscriber and hands its events to
//! the transport through a bounded buffer.
//!
//! The task reads the backlog after the cursor in pages, then waits for a wake-up and reads
//! again — always by cursor, with the pull path's own filters, so the stream carries exactly
//! what pulls would. A subscriber that lets its buffer fill is disconnected
//! ([`CloseReason::Slow`]) instead of slowing anyone; it resumes by cursor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sync_domain::SyncEngine;
use sync_domain::engine::{AlertView, ConflictView, PullReply};
use sync_domain::store::{Principal, Role};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::LiveError;
use crate::hub::{Hub, StreamGuard, TenantWatch};
use crate::reader::{ReadKey, Reader};

/// How far back (µs) an admin stream looks for events stamped before newer ones it sent.
const ADMIN_LOOKBACK_US: i64 = 60_000_000;

/// What a subscriber asks for.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    pub principal: Principal,
    /// Resume after this cursor (none: from the beginning).
    pub cursor: Option<String>,
    pub domains: Option<Vec<String>>,
    pub delta: bool,
    /// Remember the device's cursor after each batch, as a pull with `device_id` does.
    pub device_id: Option<String>,
    /// The key under which streams are counted per token (the credential, hashed or not).
    pub token_key: String,
}

/// An event for the transport to write.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A batch of changes: a pull response (its body is the JSON the transport sends).
    Changes(Arc<PullReply>),
    Heartbeat,
    /// The cursor is older than what was purged; the stream ends after this.
    ResyncRequired,
    /// A new conflict for the tenant's admins.
    Conflict(Box<ConflictView>),
    /// A new alert for the tenant's admins.
    Alert(Box<AlertView>),
}

/// Why a stream ended from the server's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The subscriber did not take its events fast enough (SSE `reconnect`, WS 1013).
    Slow,
    /// The server is shutting down (SSE `reconnect`, WS 1012).
    Shutdown,
    /// A newer stream of the same token replaced this one.
    Replaced,
    /// A read failed (for example the database is unreachable); reconnect by cursor later.
    Failed(String),
}

/// A running subscription. Dropping it stops its task.
#[derive(Debug)]
pub struct Subscription {
    events: mpsc::Receiver<LiveEvent>,
    closed: Arc<Mutex<Option<CloseReason>>>,
    task: JoinHandle<()>,
    reported: bool,
}

/// The next thing a transport writes.
#[derive(Debug, Clone)]
pub enum Next {
    Event(LiveEvent),
    Closed(CloseReason),
    /// The stream ended normally (after `ResyncRequired`).
    End,
}

impl Subscription {
    /// The next event, or why the stream ends. A close reason comes before buffered events:
    /// a slow subscriber is told to reconnect at once and resumes by its last cursor.
    pub async fn next(&mut self) -> Next {
        if self.reported {
            return Next::End;
        }
        if let Some(reason) = self.take_reason() {
            return Next::Closed(reason);
        }
        match self.events.recv().await {
            Some(event) => Next::Event(event),
            None => match self.take_reason() {
                Some(reason) => Next::Closed(reason),
                None => {
                    self.reported = true;
                    Next::End
                }
            },
        }
    }

    fn take_reason(&mut self) -> Option<CloseReason> {
        let reason = self.closed.lock().unwrap_or_else(PoisonError::into_inner).take();
        if reason.is_some() {
            self.reported = true;
        }
        reason
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a subscription. The caller has checked the request's filters.
pub(crate) fn start(
    hub: &Hub,
    reader: &Reader,
    engine: &SyncEngine,
    request: StreamRequest,
    guard: StreamGuard,
) -> Subscription {
    let (tx, events) = mpsc::channel(hub.config().subscriber_buffer.max(1));
    let closed = Arc::new(Mutex::new(None));
    // Watch and stamp now, not when the task first runs: a commit in between is not missed.
    let watch = hub.watch(&request.principal.tenant);
    let admin_since = sync_domain::micros::now();
    let producer = Producer {
        hub: hub.clone(),
        reader: reader.clone(),
        engine: engine.clone(),
        request,
        tx,
        closed: Arc::clone(&closed),
    };
    let task = tokio::spawn(producer.run(watch, admin_since, guard));
    Subscription { events, closed, task, reported: false }
}

struct Producer {
    hub: Hub,
    reader: Reader,
    engine: SyncEngine,
    request: StreamRequest,
    tx: mpsc::Sender<LiveEvent>,
    closed: Arc<Mutex<Option<CloseReason>>>,
}

/// How a producer step ended.
enum Stop {
    /// The consumer is gone, or the stream ended normally.
    Quiet,
    Close(CloseReason),
}

impl Producer {
    async fn run(self, mut watch: TenantWatch, admin_since: i64, mut guard: StreamGuard) {
        if let Err(Stop::Close(reason)) = self.follow(&mut watch, admin_since, &mut guard).await {
            if reason == CloseReason::Slow {
                self.hub.note_slow();
            }
            *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        }
    }

    /// Hands an event to the transport without waiting: a full buffer means a slow subscriber.
    fn send(&self, event: LiveEvent) -> Result<(), Stop> {
        match self.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Stop::Close(CloseReason::Slow)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stop::Quiet),
        }
    }

    async fn follow(&self, watch: &mut TenantWatch, since: i64, guard: &mut StreamGuard) -> Result<(), Stop> {
        let request = &self.request;
        let principal = &request.principal;
        let mut shutdown = self.hub.shutdown_signal();
        let admin = principal.role == Role::Admin;
        let mut admin_since = since;
        let mut told: HashMap<String, i64> = HashMap::new();
        let mut cursor = request.cursor.clone();
        let limit = self.hub.config().page_size.min(self.engine.config().max_pull_limit).max(1);
        let heartbeat = self.hub.config().heartbeat();
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Note the generation before reading: a commit during the read wakes us again.
            let generation = *watch.changes.borrow_and_update();
            loop {
                let key = ReadKey::new(
                    principal,
                    request.domains.as_deref(),
                    request.delta,
                    cursor.as_deref(),
                    limit,
                    generation,
                );
                // Boxed: the read's future is large, and this task lives as long as the stream;
                // inline, every idle stream would keep room for a read it is not doing.
                let reply = match Box::pin(self.reader.read(principal, key)).await {
                    Ok(reply) => reply,
                    Err(e) if e.is_resync_required() => {
                        self.send(LiveEvent::ResyncRequired)?;
                        return Err(Stop::Quiet);
                    }
                    Err(e) => return Err(Stop::Close(CloseReason::Failed(failure(&e)))),
                };
                let next = reply.cursor.clone();
                let more = reply.has_more;
                if reply.changes > 0 {
                    self.send(LiveEvent::Changes(reply))?;
                    if let Some(device) = &request.device_id
                        && let Err(e) = Box::pin(self.engine.remember_cursor(principal, device, &next)).await
                    {
                        tracing::debug!(error = %e, "remembering a live device cursor failed");
                    }
                }
                cursor = Some(next);
                if !more {
                    break;
                }
            }
            // Wait for a wake-up of our tenant; heartbeats and admin events meanwhile.
            loop {
                tokio::select! {
                    changed = watch.changes.changed() => {
                        if changed.is_err() {
                            return Err(Stop::Quiet);
                        }
                        break;
                    }
                    changed = watch.admin.changed(), if admin => {
                        if changed.is_err() {
                            return Err(Stop::Quiet);
                        }
                        watch.admin.borrow_and_update();
                        Box::pin(self.admin_events(principal, &mut admin_since, &mut told)).await?;
                    }
                    _ = beat.tick() => self.send(LiveEvent::Heartbeat)?,
                    () = crate::hub::until_set(&mut shutdown) => return Err(Stop::Close(CloseReason::Shutdown)),
                    () = guard.evicted() => return Err(Stop::Close(CloseReason::Replaced)),
                    () = self.tx.closed() => return Err(Stop::Quiet),
                }
            }
        }
    }

    /// Sends the tenant's conflicts and alerts created since `since` that were not sent yet.
    async fn admin_events(
        &self,
        principal: &Principal,
        since: &mut i64,
        told: &mut HashMap<String, i64>,
    ) -> Result<(), Stop> {
        let events = match self.engine.admin_events_since(principal, *since).await {
            Ok(events) => events,
            Err(e) => return Err(Stop::Close(CloseReason::Failed(e.to_string()))),
        };
        let mut newest = *since;
        for conflict in events.conflicts {
            let at = sync_domain::micros::from_datetime(conflict.created_at);
            newest = newest.max(at);
            if told.insert(format!("c:{}", conflict.id), at).is_none() {
                self.send(LiveEvent::Conflict(Box::new(conflict)))?;
            }
        }
        for alert in events.alerts {
            let at = sync_domain::micros::from_datetime(alert.created_at);
            newest = newest.max(at);
            if told.insert(format!("a:{}", alert.id), at).is_none() {
                self.send(LiveEvent::Alert(Box::new(alert)))?;
            }
        }
        // A conflict is stamped when its push began, which may be before a push that
        // committed earlier: look back a margin, and remember what was sent within it.
        let floor = newest - ADMIN_LOOKBACK_US;
        if floor > *since {
            *since = floor;
            told.retain(|_, at| *at >= floor);
        }
        Ok(())
    }
}

fn failure(e: &LiveError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    /// An idle stream's task keeps its future's full size for as long as the stream is open:
    /// the large futures (reads, admin events) are boxed so that this stays small.
    #[test]
    fn a_subscription_task_is_small() {
        fn size_of_run() -> usize {
            let hub = crate::hub::Hub::new(crate::LiveConfig::default());
            let db = match sync_domain::Database::connect(
                "sqlite::memory:",
                sync_domain::ConnectOptions::default(),
            ) {
                Ok(db) => db,
                Err(e) => panic!("{e}"),
            };
            let engine = sync_domain::SyncEngine::new(
                db,
                sync_domain::SyncConfig::default(),
                sync_domain::domains::DomainRegistry::builtin(),
            );
            let reader = crate::reader::Reader::new(engine.clone(), hub.clone());
            let (tx, _rx) = tokio::sync::mpsc::channel(1);
            let producer = super::Producer {
                hub: hub.clone(),
                reader,
                engine,
                request: super::StreamRequest {
                    principal: sync_domain::store::Principal {
                        tenant: "t".into(),
                        user: "u".into(),
                        role: sync_domain::store::Role::Device,
                        units: None,
                    },
                    cursor: None,
                    domains: None,
                    delta: false,
                    device_id: None,
                    token_key: "k".into(),
                },
                tx,
                closed: std::sync::Arc::default(),
            };
            let watch = hub.watch("t");
            let guard = hub.register_stream("k");
            std::mem::size_of_val(&producer.run(watch, 0, guard))
        }
        let size = size_of_run();
        assert!(size < 4096, "a subscription task takes {size} bytes");
    }
}
