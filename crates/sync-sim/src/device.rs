//! One simulated device: a phone running sync-client's core over the simulator's network.
//!
//! Its local state is sync-client's [`MemoryReplica`] and every rule a real app follows comes
//! from sync-client's sans-IO core, the code apps embed: edits are stored in the outbox and
//! coalesced per record (keeping the first edit's base, so that the server sees a conflict
//! whenever somebody else changed the record meanwhile); a batch takes its idempotency key
//! when it is formed and keeps it through every retry; batches go one at a time, oldest
//! first; a late or repeated answer never moves the replica backwards; a delta whose base is
//! unknown is fetched again in full; `resync_required` starts a resync. Its requests go
//! through sync-client's `Remote`. What is the simulation's own stays here: what the user
//! does and when, the network's losses, duplicates and late deliveries between the core and
//! the server, and what the device saw (stats, acknowledgements and violations for the
//! invariants).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sync_client::RecordId;
use sync_client::core::{self, EditOp, LocalEdit, MemoryReplica, Meta, PullOutcome, Step};
use sync_model::Priority;
use sync_protocol::{ChangeResult, ItemError, PullRequest, PullResponse, PushRequest};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::{Reply, SyncClient, Traffic};
use crate::error::Error;
use crate::network::{Delivery, NetworkProfile};
use crate::stats::{DeviceStats, Progress};
use crate::workload;

/// A record as the device holds it: the server's state it last learned.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Held {
    pub version: i64,
    pub data: Value,
    pub deleted: bool,
}

impl Held {
    /// Whether two holdings are the same state (tombstones compare by version alone).
    pub fn same_state(&self, other: &Held) -> bool {
        self.version == other.version
            && self.deleted == other.deleted
            && (self.deleted || self.data == other.data)
    }
}

/// One acknowledged change, for the invariants.
#[derive(Debug, Clone)]
pub struct Ack {
    pub device: String,
    pub idempotency_key: String,
    pub record: RecordId,
    /// The state the device wanted (`None`: a delete).
    pub wanted: Option<Value>,
    pub result: ChangeResult,
}

/// What the workload lets this device do.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub domains: Vec<String>,
    /// Chance that an edit goes to a record that every device of the unit edits.
    pub conflict_probability: f64,
    /// Chance that an edit creates a record (when it does not go to a shared record).
    pub create_probability: f64,
    pub delete_probability: f64,
    /// Chance that an edit is made as a JSON Patch rather than as the record's new data (the
    /// client sends a patch or the full data, whichever is smaller, either way).
    pub patch_probability: f64,
    /// Edits per action.
    pub edits_per_action: u32,
    /// Chance that an action ends with a pull.
    pub pull_probability: f64,
    /// Pause between actions (uniform between the two).
    pub think_time: (Duration, Duration),
    /// Pull with `delta=true`.
    pub delta: bool,
    /// Follow a live stream while online (and pull only when it cannot be followed).
    pub live: bool,
}

/// The live stream a device holds: a task reads its server-sent events and hands over each
/// batch of changes; dropped (and the connection closed) when the device goes offline.
#[derive(Debug)]
struct LiveStream {
    batches: tokio::sync::mpsc::Receiver<PullResponse>,
    task: tokio::task::JoinHandle<()>,
    /// The cursor the stream has brought the device to (the next batch is pulled from it).
    at: Option<String>,
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Batches one stream may have waiting before its reader stops reading (the server then
/// disconnects it as too slow, and the device resumes by cursor).
const STREAM_BUFFER: usize = 64;

/// A simulated device.
#[derive(Debug)]
pub struct Device {
    pub id: String,
    pub unit: String,
    behaviour: Arc<Behaviour>,
    client: SyncClient,
    network: NetworkProfile,
    /// Added to the real time for `client_time` and `modified_at`.
    clock_skew: time::Duration,
    rng: StdRng,
    /// The local state, kept by sync-client's core: server records, outbox, cursor.
    local: MemoryReplica,
    /// Records every device of the unit edits (known from the start).
    shared: Vec<RecordId>,
    /// Records this device created.
    own: Vec<RecordId>,
    stream: Option<LiveStream>,
    /// A copy of a push that the network held back: it reaches the server after the batch
    /// was answered (a late retransmission).
    held_back: Option<(String, PushRequest)>,
    /// The first response body of every idempotency key this device used.
    first_responses: HashMap<String, Vec<u8>>,
    pub acks: Vec<Ack>,
    pub stats: DeviceStats,
    /// Things that must never happen, seen from this device (retries that changed the answer,
    /// unexpected error statuses).
    pub violations: Vec<String>,
}

impl Device {
    pub fn new(
        id: String,
        unit: String,
        behaviour: Arc<Behaviour>,
        client: SyncClient,
        network: NetworkProfile,
        clock_skew: time::Duration,
        seed: u64,
    ) -> Self {
        let client = client.with_network_quality(network.quality);
        let mut rng = StdRng::seed_from_u64(seed);
        let local = MemoryReplica::new(Meta::new(id.clone(), Uuid::from_u128(rng.random())));
        Device {
            id,
            unit,
            behaviour,
            client,
            network,
            clock_skew,
            rng,
            local,
            shared: Vec::new(),
            own: Vec::new(),
            stream: None,
            held_back: None,
            first_responses: HashMap::new(),
            acks: Vec::new(),
            stats: DeviceStats::default(),
            violations: Vec::new(),
        }
    }

    /// The server's state of every record the device holds.
    pub fn replica(&self) -> HashMap<RecordId, Held> {
        self.local
            .records
            .iter()
            .map(|(id, r)| {
                let held =
                    Held { version: r.version, data: r.data.clone().unwrap_or_default(), deleted: r.deleted };
                (id.clone(), held)
            })
            .collect()
    }

    /// Local edits not yet acknowledged.
    pub fn unsent(&self) -> usize {
        self.local.pending.len() + self.local.batches.iter().map(|b| b.items.len()).sum::<usize>()
    }

    /// Replaces the network conditions (e.g. a clean network for the final drain).
    pub fn set_network(&mut self, network: NetworkProfile) {
        self.client = self.client.with_network_quality(network.quality);
        self.network = network;
    }

    /// Marks the records every device of the unit edits: the unit's records it holds now.
    pub fn adopt_shared(&mut self) {
        let domains = &self.behaviour.domains;
        self.shared = self
            .local
            .records
            .values()
            .filter(|r| !r.deleted && domains.contains(&r.id.domain))
            .map(|r| r.id.clone())
            .collect();
        self.shared.sort();
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc().checked_add(self.clock_skew).unwrap_or_else(OffsetDateTime::now_utc)
    }

    /// Commits a step of the core; a step the core refused is a violation.
    fn commit(&mut self, step: sync_client::Result<Step>) -> bool {
        match step.and_then(|step| self.local.commit(step)) {
            Ok(_) => true,
            Err(e) => {
                self.violations.push(format!("{}: client core: {e}", self.id));
                false
            }
        }
    }

    /// Runs actions until `deadline`: go offline now and then, edit, push, pull, think.
    pub async fn run_until(&mut self, deadline: Instant, progress: &Progress) {
        let behaviour = Arc::clone(&self.behaviour);
        let mut offline_until: Option<Instant> = None;
        while Instant::now() < deadline {
            let online = match offline_until {
                Some(until) if Instant::now() < until => false,
                _ => {
                    offline_until = None;
                    true
                }
            };
            for _ in 0..behaviour.edits_per_action {
                self.edit();
            }
            if online {
                if let Some(period) = self.network.offline_period(&mut self.rng) {
                    self.stats.offline_periods += 1;
                    offline_until = Some(Instant::now() + period);
                    self.stream = None;
                } else {
                    self.push_once(progress).await;
                    if behaviour.live {
                        self.follow_stream(progress).await;
                    } else if self.rng.random_bool(behaviour.pull_probability) {
                        self.pull_to_end(behaviour.delta, Some(20), progress).await;
                    }
                }
            }
            let (min, max) = behaviour.think_time;
            let pause = if max > min { self.rng.random_range(min..=max) } else { min };
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// Works offline until `until`: edits, thinks, sends nothing.
    pub async fn work_offline_until(&mut self, until: Instant) {
        self.stats.offline_periods += 1;
        let (min, max) = self.behaviour.think_time;
        while Instant::now() < until {
            for _ in 0..self.behaviour.edits_per_action {
                self.edit();
            }
            let pause = if max > min { self.rng.random_range(min..=max) } else { min };
            tokio::time::sleep(pause.min(until.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// The device's network quality.
    pub fn network_quality(&self) -> sync_bandwidth::NetworkQuality {
        self.network.quality
    }

    /// Pushes until nothing is left unsent (for the final drain, on a clean network).
    /// Gives up after `max_attempts` failed pushes.
    pub async fn flush(&mut self, progress: &Progress, max_attempts: u32) {
        let mut failures = 0;
        while self.unsent() > 0 {
            if !self.push_once(progress).await {
                failures += 1;
                if failures >= max_attempts {
                    self.violations.push(format!(
                        "{}: could not flush {} changes after {failures} tries",
                        self.id,
                        self.unsent()
                    ));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20 * u64::from(failures.min(50)))).await;
            }
        }
    }

    /// Makes one local edit: to a shared record, to one of its own, a new record or a delete.
    pub fn edit(&mut self) {
        let behaviour = Arc::clone(&self.behaviour);
        let at = self.now();
        let bu = Some(self.unit.clone());
        let shared = !self.shared.is_empty() && self.rng.random_bool(behaviour.conflict_probability);
        let target = if shared {
            Some(self.shared[self.rng.random_range(0..self.shared.len())].clone())
        } else if self.own.is_empty() || self.rng.random_bool(behaviour.create_probability) {
            None
        } else {
            Some(self.own[self.rng.random_range(0..self.own.len())].clone())
        };
        let Some(id) = target else {
            let domain = behaviour.domains[self.rng.random_range(0..behaviour.domains.len())].clone();
            let id = RecordId::new(domain, Uuid::new_v4());
            let data = workload::new_data(&id.domain, &self.id, at, &mut self.rng);
            let priority = [Priority::High, Priority::Medium, Priority::Low][self.rng.random_range(0..3)];
            self.own.push(id.clone());
            let step = core::edit(
                &mut self.local,
                LocalEdit { id, op: EditOp::Put(data), at, priority: Some(priority), bu },
            );
            self.commit(step);
            return;
        };
        // What the user sees: the newest local edit, else the server's state.
        let current = match core::view(&mut self.local, &id) {
            Ok(view) => view.map(|v| v.data),
            Err(e) => {
                self.violations.push(format!("{}: client core: {e}", self.id));
                return;
            }
        };
        let Some(current) = current else { return };
        let op = if !shared && self.rng.random_bool(behaviour.delete_probability) {
            self.own.retain(|own| own != &id);
            EditOp::Delete
        } else {
            let data = workload::edit_data(&id.domain, &current, &self.id, at, &mut self.rng);
            if self.rng.random_bool(behaviour.patch_probability) {
                EditOp::Patch(sync_bandwidth::diff(&current, &data).to_value())
            } else {
                EditOp::Put(data)
            }
        };
        let step = core::edit(&mut self.local, LocalEdit { id, op, at, priority: None, bu });
        self.commit(step);
    }

    /// One push attempt of the oldest batch (the core forms one if none is stored). Returns
    /// whether it was acknowledged (or there was nothing to send).
    pub async fn push_once(&mut self, progress: &Progress) -> bool {
        let size = core::batch_size(self.network.quality, self.local.meta.batch_cap);
        let batch = match core::next_batch(&mut self.local, size) {
            Ok(None) => return true,
            Ok(Some((step, batch))) => {
                if !self.commit(Ok(step)) {
                    return false;
                }
                batch
            }
            Err(e) => {
                self.violations.push(format!("{}: client core: {e}", self.id));
                return false;
            }
        };
        let request = PushRequest {
            device_id: self.id.clone(),
            client_time: Some(self.now()),
            changes: batch.changes.clone(),
        };
        tokio::time::sleep(self.network.delay(&mut self.rng)).await;
        self.stats.push_attempts += 1;
        let delivery = self.network.delivery(&mut self.rng);
        let outcome = match delivery {
            Delivery::LostRequest => None,
            Delivery::Once | Delivery::LostResponse => Some(self.client.push(&batch.key, &request).await),
            Delivery::Twice => {
                self.stats.duplicates_sent += 1;
                let (first, second) = tokio::join!(
                    self.client.push(&batch.key, &request),
                    self.client.push(&batch.key, &request)
                );
                if let Ok(second) = &second {
                    self.check_replay(&batch.key, second);
                }
                Some(first)
            }
        };
        if let Some(result) = &outcome {
            self.stats.count_answer(result);
        }
        match outcome {
            Some(Ok(reply)) => {
                self.check_replay(&batch.key, &reply);
                self.stats.traffic.add(reply.traffic);
                if delivery == Delivery::LostResponse {
                    self.stats.push_lost += 1;
                    self.after_failure(&batch.key, &request);
                    return false;
                }
                self.stats.push_ok += 1;
                self.stats.push_latencies_us.push(micros(reply.latency));
                for (item, result) in batch.items.iter().zip(&reply.body.results) {
                    self.stats.count_outcome(result.outcome, result.conflict.is_some());
                    progress.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.acks.push(Ack {
                        device: self.id.clone(),
                        idempotency_key: batch.key.clone(),
                        record: item.id.clone(),
                        wanted: item.wanted.clone(),
                        result: result.clone(),
                    });
                }
                let answered = core::push_answered(&mut self.local, &batch.key, &reply.body);
                self.commit(answered);
                self.deliver_held_back().await;
                if self.held_back.as_ref().is_none_or(|(key, _)| *key != batch.key) {
                    // The key is done with: no later try will use it.
                    self.first_responses.remove(&batch.key);
                }
                true
            }
            Some(Err(error)) => {
                self.record_error(&error, "push", Some(&batch.key));
                self.after_failure(&batch.key, &request);
                false
            }
            None => {
                self.stats.push_lost += 1;
                self.after_failure(&batch.key, &request);
                false
            }
        }
    }

    /// A failed push: sometimes the network keeps a copy and delivers it late, after the
    /// batch has been answered.
    fn after_failure(&mut self, key: &str, request: &PushRequest) {
        if self.held_back.is_none() && self.network.reorders(&mut self.rng) {
            self.held_back = Some((key.to_owned(), request.clone()));
            self.stats.reorders += 1;
        }
    }

    /// The held-back copy reaches the server: it must be answered as the first try was, and
    /// its answer, for a batch no longer in the outbox, must change nothing on the device.
    async fn deliver_held_back(&mut self) {
        let Some((key, request)) = self.held_back.take() else { return };
        let result = self.client.push(&key, &request).await;
        self.stats.count_answer(&result);
        match result {
            Ok(reply) => {
                self.check_replay(&key, &reply);
                self.stats.traffic.add(reply.traffic);
                match core::push_answered(&mut self.local, &key, &reply.body) {
                    Ok(step) if step.is_empty() => {}
                    Ok(_) => self.violations.push(format!(
                        "{}: the late answer to idempotency key {key} would have changed the replica",
                        self.id
                    )),
                    Err(e) => self.violations.push(format!("{}: client core: {e}", self.id)),
                }
            }
            Err(error) => self.record_error(&error, "late push", None),
        }
        if !self.local.batches.iter().any(|b| b.key == key) {
            self.first_responses.remove(&key);
        }
    }

    /// Every response of one idempotency key must be the first one, byte for byte.
    fn check_replay<T>(&mut self, key: &str, reply: &Reply<T>) {
        match self.first_responses.get(key) {
            Some(first) if first != &reply.raw => self.violations.push(format!(
                "{}: a retry of idempotency key {key} was answered differently from the first try",
                self.id
            )),
            Some(_) => self.stats.replays_checked += 1,
            None => {
                self.first_responses.insert(key.to_owned(), reply.raw.clone());
            }
        }
    }

    /// Counts a failed request; what must never happen is a violation. A push refused for
    /// good goes to the core (`push_refused`), a lost cursor starts a resync.
    fn record_error(&mut self, error: &Error, what: &str, batch: Option<&str>) {
        let status = error.http_status();
        let lost_cursor = match error {
            Error::Client(sync_client::Error::Http { status: 400, code, .. }) => code == "invalid_cursor",
            _ => status == Some(410),
        };
        if what == "pull" && lost_cursor {
            // resync_required: the cursor is older than what was purged; start again.
            self.stats.resyncs += 1;
            let step = core::resync_required(&mut self.local);
            self.commit(step);
            return;
        }
        if error.is_retryable() {
            match status {
                Some(429 | 503) => self.stats.throttled += 1,
                Some(_) => {
                    self.stats.server_errors += 1;
                    self.violations.push(format!("{}: {what}: {error}", self.id));
                }
                None => self.stats.transport_errors += 1,
            }
            return;
        }
        self.stats.http_errors += 1;
        self.violations.push(format!("{}: {what}: {error}", self.id));
        // A refused batch will never be accepted: the core drops it (or splits it on 413).
        if let (Some(key), Error::Client(sync_client::Error::Http { status, code, message, .. })) =
            (batch, error)
        {
            let item = ItemError { code: code.clone(), message: message.clone() };
            let step = core::push_refused(&mut self.local, key, *status, item);
            self.commit(step);
        }
    }

    /// Pulls pages until the server has nothing more (or `max_pages` pages). Returns whether
    /// it reached the end.
    pub async fn pull_to_end(&mut self, delta: bool, max_pages: Option<u32>, progress: &Progress) -> bool {
        let mut pages = 0;
        let mut delta_now = delta;
        loop {
            if max_pages.is_some_and(|max| pages >= max) {
                return false;
            }
            pages += 1;
            let from = self.local.meta.cursor.clone();
            let request = PullRequest {
                cursor: from.clone(),
                delta: delta_now,
                device_id: Some(self.id.clone()),
                ..PullRequest::default()
            };
            tokio::time::sleep(self.network.delay(&mut self.rng)).await;
            self.stats.pull_requests += 1;
            let delivery = self.network.delivery(&mut self.rng);
            if delivery == Delivery::LostRequest {
                self.stats.pull_lost += 1;
                return false;
            }
            let result = self.client.pull(&request).await;
            self.stats.count_answer(&result);
            let reply = match result {
                Ok(reply) => reply,
                Err(error) => {
                    self.record_error(&error, "pull", None);
                    return false;
                }
            };
            self.stats.traffic.add(reply.traffic);
            if delivery == Delivery::LostResponse {
                self.stats.pull_lost += 1;
                return false;
            }
            self.stats.pull_latencies_us.push(micros(reply.latency));
            let page = reply.body;
            match core::pull_answered(&mut self.local, from.as_deref(), &page) {
                Ok(PullOutcome::Apply { step, more }) => {
                    self.count_page(&page, progress);
                    if !self.commit(Ok(step)) {
                        return false;
                    }
                    if !more {
                        return true;
                    }
                    delta_now = delta;
                }
                Ok(PullOutcome::NeedFull) if delta_now => {
                    // A delta whose base this device does not hold: this page again, in full.
                    self.stats.delta_fallbacks += 1;
                    delta_now = false;
                }
                Ok(PullOutcome::NeedFull) => {
                    self.violations.push(format!("{}: a full page held a record without data", self.id));
                    return false;
                }
                Ok(PullOutcome::Stale) => {
                    self.violations.push(format!("{}: a pull from its own cursor was stale", self.id));
                    return false;
                }
                Err(e) => {
                    self.violations.push(format!("{}: client core: {e}", self.id));
                    return false;
                }
            }
        }
    }

    fn count_page(&mut self, page: &PullResponse, progress: &Progress) {
        let records = page.changes.len() as u64;
        self.stats.records_pulled += records;
        self.stats.delta_records += page.changes.iter().filter(|c| c.patch.is_some()).count() as u64;
        progress.pulled.fetch_add(records, std::sync::atomic::Ordering::Relaxed);
    }

    /// Live: opens the stream at the device's cursor when it has none (or it ended), then
    /// applies every batch it has delivered so far.
    pub async fn follow_stream(&mut self, progress: &Progress) {
        if self.stream.as_ref().is_none_or(|s| s.task.is_finished() && s.batches.is_empty()) {
            self.stream = None;
            let at = self.local.meta.cursor.clone();
            match self.client.open_stream(at.as_deref()).await {
                Ok(sse) => {
                    self.stats.streams_opened += 1;
                    let (tx, batches) = tokio::sync::mpsc::channel(STREAM_BUFFER);
                    let task = tokio::spawn(read_stream(sse, tx));
                    self.stream = Some(LiveStream { batches, task, at });
                }
                Err(error) => {
                    self.record_error(&error, "stream", None);
                    return;
                }
            }
        }
        let mut batches = Vec::new();
        if let Some(stream) = &mut self.stream {
            while let Ok(batch) = stream.batches.try_recv() {
                batches.push(batch);
            }
        }
        for batch in batches {
            if !self.take_batch(batch, progress) {
                self.stream = None;
                return;
            }
        }
    }

    /// Applies one batch a stream delivered, pulled from where the stream is; `false` when
    /// the stream must be reopened.
    fn take_batch(&mut self, batch: PullResponse, progress: &Progress) -> bool {
        self.stats.stream_batches += 1;
        let at = self.stream.as_ref().and_then(|s| s.at.clone());
        match core::pull_answered(&mut self.local, at.as_deref(), &batch) {
            Ok(PullOutcome::Apply { step, .. }) => {
                self.count_page(&batch, progress);
                if let Some(stream) = &mut self.stream {
                    stream.at = Some(batch.cursor.clone());
                }
                self.commit(Ok(step))
            }
            // The device's cursor moved elsewhere (a resync): reopen from it.
            Ok(PullOutcome::Stale) => false,
            Ok(PullOutcome::NeedFull) => {
                // Streams send full records (no `delta`): a patch here is the server's fault.
                self.violations.push(format!("{}: a stream sent a patch it was not asked for", self.id));
                false
            }
            Err(e) => {
                self.violations.push(format!("{}: client core: {e}", self.id));
                false
            }
        }
    }

    /// Live: waits until the stream alone brought every record `expected` lists (record, the
    /// server's version) up to that version, or `timeout` passes; returns what is still missing.
    pub async fn await_stream(
        &mut self,
        expected: &[(RecordId, i64)],
        timeout: Duration,
        progress: &Progress,
    ) -> Vec<(RecordId, i64)> {
        let deadline = Instant::now() + timeout;
        loop {
            self.follow_stream(progress).await;
            let missing: Vec<(RecordId, i64)> = expected
                .iter()
                .filter(|(id, version)| self.local.records.get(id).is_none_or(|held| held.version < *version))
                .cloned()
                .collect();
            if missing.is_empty() || Instant::now() >= deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the live stream, if any.
    pub fn close_stream(&mut self) {
        self.stream = None;
    }

    /// Bytes this device sent and received.
    pub fn traffic(&self) -> Traffic {
        self.stats.traffic
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Reads a stream's `changes` events into `batches` until it ends (resync, reconnect, a
/// dropped connection) or the device closes it.
async fn read_stream(mut sse: crate::sse::Sse, batches: tokio::sync::mpsc::Sender<PullResponse>) {
    while let Ok(Some(event)) = sse.next().await {
        match event.event.as_str() {
            "changes" => {
                let Ok(batch) = serde_json::from_str::<PullResponse>(&event.data) else { return };
                if batches.send(batch).await.is_err() {
                    return;
                }
            }
            "heartbeat" | "conflict" | "alert" | "message" => {}
            _ => return,
        }
    }
}
