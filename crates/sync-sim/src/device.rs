//! One simulated device: a local replica of what the server acknowledged or sent, an outbox
//! of local edits, and the behaviour of a careful mobile client over a bad network.
//!
//! The client rules it follows (and that a real app should follow):
//! - An edit remembers the version it was based on. Edits of the same record before it is
//!   sent are coalesced into one change, which keeps the first edit's base, so that the
//!   server sees a conflict whenever somebody else changed the record meanwhile.
//! - A batch gets its idempotency key when it is formed and keeps it through every retry, so
//!   a retry can never apply twice. A record in a batch in flight is not put in another batch.
//! - A late acknowledgement (older than what the replica holds) never moves it backwards.
//! - A delta that does not apply to the replica (its base is unknown) is fetched again in full.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sync_bandwidth::JsonPatch;
use sync_domain::protocol::{
    Change, ChangeResult, Op, Outcome, PullRequest, PullResponse, PushRequest, RecordEnvelope,
};
use sync_model::Priority;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::{Reply, SyncClient, Traffic};
use crate::error::Error;
use crate::network::{Delivery, NetworkProfile};
use crate::stats::{DeviceStats, Progress};
use crate::workload;

/// A record's identity within a tenant: `(domain, mobile_id)`.
pub type RecordId = (String, Uuid);

/// The largest push the protocol allows by default (`max_push_changes`).
const MAX_PUSH_CHANGES: usize = 500;

/// How many past versions of a record the device keeps as bases for deltas.
const KEPT_BASES: usize = 4;

/// A record as the device holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Held {
    pub version: i64,
    pub data: Value,
    pub deleted: bool,
}

impl Held {
    fn from_envelope(record: &RecordEnvelope) -> Option<Held> {
        Some(Held { version: record.version, data: record.data.clone()?, deleted: record.deleted })
    }

    /// Whether two holdings are the same state (tombstones compare by version alone).
    pub fn same_state(&self, other: &Held) -> bool {
        self.version == other.version
            && self.deleted == other.deleted
            && (self.deleted || self.data == other.data)
    }
}

/// A local edit not yet sent.
#[derive(Debug, Clone)]
struct Pending {
    /// The wanted state: `None` deletes the record.
    data: Option<Value>,
    /// The version the first coalesced edit was based on (0: a new record).
    base_version: i64,
    /// The data at `base_version`, for sending the edit as a JSON Patch.
    base_data: Option<Value>,
    modified_at: OffsetDateTime,
    priority: Option<Priority>,
}

/// A batch formed from the outbox, with its idempotency key for every try.
#[derive(Debug, Clone)]
struct Batch {
    key: String,
    request: PushRequest,
    /// Per change, the state the device wants (`None`: deleted).
    wanted: Vec<Option<Value>>,
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
    /// Chance that an edit is sent as a JSON Patch instead of the full data.
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
    replica: HashMap<RecordId, Held>,
    bases: HashMap<RecordId, VecDeque<(i64, Value)>>,
    /// Records every device of the unit edits (known from the start).
    shared: Vec<RecordId>,
    /// Records this device created.
    own: Vec<RecordId>,
    dirty: BTreeMap<RecordId, Pending>,
    outbox: VecDeque<Batch>,
    cursor: Option<String>,
    stream: Option<LiveStream>,
    next_key: u64,
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
        Device {
            id,
            unit,
            behaviour,
            client,
            network,
            clock_skew,
            rng: StdRng::seed_from_u64(seed),
            replica: HashMap::new(),
            bases: HashMap::new(),
            shared: Vec::new(),
            own: Vec::new(),
            dirty: BTreeMap::new(),
            outbox: VecDeque::new(),
            cursor: None,
            stream: None,
            next_key: 0,
            first_responses: HashMap::new(),
            acks: Vec::new(),
            stats: DeviceStats::default(),
            violations: Vec::new(),
        }
    }

    /// The replica: every record the device holds.
    pub fn replica(&self) -> &HashMap<RecordId, Held> {
        &self.replica
    }

    /// Local edits not yet acknowledged.
    pub fn unsent(&self) -> usize {
        self.dirty.len() + self.outbox.iter().map(|b| b.request.changes.len()).sum::<usize>()
    }

    /// Replaces the network conditions (e.g. a clean network for the final drain).
    pub fn set_network(&mut self, network: NetworkProfile) {
        self.client = self.client.clone().with_network_quality(network.quality);
        self.network = network;
    }

    /// Marks the records every device of the unit edits: the unit's records it holds now.
    pub fn adopt_shared(&mut self) {
        let domains = &self.behaviour.domains;
        self.shared = self
            .replica
            .iter()
            .filter(|(id, held)| !held.deleted && domains.contains(&id.0))
            .map(|(id, _)| id.clone())
            .collect();
        self.shared.sort();
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc().checked_add(self.clock_skew).unwrap_or_else(OffsetDateTime::now_utc)
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
        let now = self.now();
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
            let id = (domain, Uuid::new_v4());
            let data = workload::new_data(&id.0, &self.id, now, &mut self.rng);
            let priority = [Priority::High, Priority::Medium, Priority::Low][self.rng.random_range(0..3)];
            self.own.push(id.clone());
            let pending = Pending {
                data: Some(data),
                base_version: 0,
                base_data: None,
                modified_at: now,
                priority: Some(priority),
            };
            self.dirty.insert(id, pending);
            return;
        };
        // The state the user sees: the unsent edit if any, else the replica.
        let held = self.replica.get(&id);
        let current = match self.dirty.get(&id) {
            Some(pending) => pending.data.clone(),
            None => held.filter(|h| !h.deleted).map(|h| h.data.clone()),
        };
        let Some(current) = current else { return };
        let delete = !shared && self.rng.random_bool(behaviour.delete_probability);
        let data = (!delete).then(|| workload::edit_data(&id.0, &current, &self.id, now, &mut self.rng));
        if delete {
            self.own.retain(|own| own != &id);
        }
        match self.dirty.get_mut(&id) {
            Some(pending) => {
                pending.data = data;
                pending.modified_at = now;
            }
            None => {
                let (base_version, base_data) = held.map_or((0, None), |h| (h.version, Some(h.data.clone())));
                let pending = Pending { data, base_version, base_data, modified_at: now, priority: None };
                self.dirty.insert(id, pending);
            }
        }
    }

    /// Forms a batch of unsent edits (records not already in flight), if there are any.
    fn form_batch(&mut self, patch_probability: f64) -> Option<Batch> {
        let in_flight: HashSet<RecordId> = self
            .outbox
            .iter()
            .flat_map(|b| b.request.changes.iter().map(|c| (c.domain.clone(), c.mobile_id)))
            .collect();
        let size = self.network.quality.batch_size().clamp(1, MAX_PUSH_CHANGES);
        let ids: Vec<RecordId> =
            self.dirty.keys().filter(|id| !in_flight.contains(*id)).take(size).cloned().collect();
        if ids.is_empty() {
            return None;
        }
        let mut changes = Vec::with_capacity(ids.len());
        let mut wanted = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(pending) = self.dirty.remove(&id) else { continue };
            let (op, data, patch) = match (&pending.data, &pending.base_data) {
                (None, _) => (Op::Delete, None, None),
                (Some(data), Some(base)) if self.rng.random_bool(patch_probability) => {
                    (Op::Patch, None, Some(sync_bandwidth::diff(base, data).to_value()))
                }
                (Some(data), _) => (Op::Upsert, Some(data.clone()), None),
            };
            changes.push(Change {
                domain: id.0.clone(),
                mobile_id: id.1,
                base_version: pending.base_version,
                op,
                data,
                patch,
                modified_at: pending.modified_at,
                priority: pending.priority,
                bu: Some(self.unit.clone()),
            });
            wanted.push(pending.data);
        }
        self.next_key += 1;
        let key = format!("{}-{}", self.id, self.next_key);
        let request = PushRequest { device_id: self.id.clone(), client_time: None, changes };
        Some(Batch { key, request, wanted })
    }

    /// One push attempt of the oldest batch (forming one if the outbox is empty). Returns
    /// whether it was acknowledged (or there was nothing to send).
    pub async fn push_once(&mut self, progress: &Progress) -> bool {
        if self.outbox.is_empty() {
            match self.form_batch(self.patch_probability()) {
                Some(batch) => self.outbox.push_back(batch),
                None => return true,
            }
        }
        let Some(batch) = self.outbox.front().cloned() else { return true };
        let mut request = batch.request.clone();
        request.client_time = Some(self.now());
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
                    self.after_failure();
                    return false;
                }
                self.stats.push_ok += 1;
                self.stats.push_latencies_us.push(micros(reply.latency));
                self.outbox.pop_front();
                // The key is done with: no later try will use it.
                self.first_responses.remove(&batch.key);
                self.absorb(&batch, reply.body.results, progress);
                true
            }
            Some(Err(error)) => {
                self.record_error(&error, "push");
                self.after_failure();
                false
            }
            None => {
                self.stats.push_lost += 1;
                self.after_failure();
                false
            }
        }
    }

    fn patch_probability(&self) -> f64 {
        self.behaviour.patch_probability
    }

    /// A failed push: sometimes the next batch goes first (retries out of order).
    fn after_failure(&mut self) {
        if !self.network.reorders(&mut self.rng) {
            return;
        }
        if self.outbox.len() < 2
            && let Some(next) = self.form_batch(self.patch_probability())
        {
            self.outbox.push_front(next);
        } else {
            self.outbox.rotate_left(1);
        }
        self.stats.reorders += 1;
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

    fn record_error(&mut self, error: &Error, what: &str) {
        if what == "pull" && error.http_status() == Some(410) {
            // resync_required: the cursor is older than what was purged; start again.
            self.stats.resyncs += 1;
            self.cursor = None;
            return;
        }
        if error.is_retryable() {
            match error.http_status() {
                Some(429 | 503) => self.stats.throttled += 1,
                Some(_) => {
                    self.stats.server_errors += 1;
                    self.violations.push(format!("{}: {what}: {error}", self.id));
                }
                None => self.stats.transport_errors += 1,
            }
        } else {
            self.stats.http_errors += 1;
            self.violations.push(format!("{}: {what}: {error}", self.id));
            // A refused batch will never be accepted: drop it rather than retry forever.
            if what == "push" {
                self.outbox.pop_front();
            }
        }
    }

    /// Takes a push's results into the replica.
    fn absorb(&mut self, batch: &Batch, results: Vec<ChangeResult>, progress: &Progress) {
        if results.len() != batch.request.changes.len() {
            self.violations.push(format!(
                "{}: push {} sent {} changes but got {} results",
                self.id,
                batch.key,
                batch.request.changes.len(),
                results.len()
            ));
        }
        for ((change, wanted), result) in batch.request.changes.iter().zip(&batch.wanted).zip(results) {
            let id: RecordId = (change.domain.clone(), change.mobile_id);
            self.stats.count_outcome(result.outcome, result.conflict.is_some());
            progress.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let held = self.replica.get(&id).map_or(0, |h| h.version);
            let late = result.version.is_some_and(|v| v < held);
            if !late {
                let state = match (result.outcome, &result.record, result.version) {
                    (Outcome::Applied | Outcome::ClientWon, _, Some(version)) => Some(Held {
                        version,
                        data: wanted
                            .clone()
                            .or_else(|| self.replica.get(&id).map(|h| h.data.clone()))
                            .unwrap_or(Value::Null),
                        deleted: wanted.is_none(),
                    }),
                    (_, Some(record), _) => Held::from_envelope(record),
                    _ => None,
                };
                if let Some(state) = state {
                    // Later local edits of a record the server took as sent build on its new version.
                    if matches!(result.outcome, Outcome::Applied | Outcome::ClientWon)
                        && let Some(pending) = self.dirty.get_mut(&id)
                        && pending.base_version == change.base_version
                    {
                        pending.base_version = state.version;
                        pending.base_data = Some(state.data.clone());
                    }
                    self.hold(id.clone(), state);
                }
            }
            self.acks.push(Ack {
                device: self.id.clone(),
                idempotency_key: batch.key.clone(),
                record: id,
                wanted: wanted.clone(),
                result,
            });
        }
    }

    fn hold(&mut self, id: RecordId, state: Held) {
        let bases = self.bases.entry(id.clone()).or_default();
        bases.push_back((state.version, state.data.clone()));
        while bases.len() > KEPT_BASES {
            bases.pop_front();
        }
        self.replica.insert(id, state);
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
            let request = PullRequest {
                cursor: self.cursor.clone(),
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
                    self.record_error(&error, "pull");
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
            if !self.apply_page(&page.changes) {
                // A delta whose base we do not hold: this page again, in full.
                self.stats.delta_fallbacks += 1;
                delta_now = false;
                continue;
            }
            delta_now = delta;
            progress.pulled.fetch_add(page.changes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.cursor = Some(page.cursor);
            if !page.has_more {
                return true;
            }
        }
    }

    /// Live: opens the stream at the device's cursor when it has none (or it ended), then
    /// applies every batch it has delivered so far.
    pub async fn follow_stream(&mut self, progress: &Progress) {
        if self.stream.as_ref().is_none_or(|s| s.task.is_finished() && s.batches.is_empty()) {
            self.stream = None;
            match self.client.open_stream(self.cursor.as_deref()).await {
                Ok(sse) => {
                    self.stats.streams_opened += 1;
                    let (tx, batches) = tokio::sync::mpsc::channel(STREAM_BUFFER);
                    let task = tokio::spawn(read_stream(sse, tx));
                    self.stream = Some(LiveStream { batches, task });
                }
                Err(error) => {
                    self.record_error(&error, "stream");
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
            self.take_batch(batch, progress);
        }
    }

    /// Applies one batch a stream delivered, in cursor order.
    fn take_batch(&mut self, batch: PullResponse, progress: &Progress) {
        self.stats.stream_batches += 1;
        if !self.apply_page(&batch.changes) {
            // Streams send full records (no `delta`): a patch here is the server's fault.
            self.violations.push(format!("{}: a stream sent a patch it was not asked for", self.id));
            return;
        }
        progress.pulled.fetch_add(batch.changes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.cursor = Some(batch.cursor);
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
                .filter(|(id, version)| self.replica.get(id).is_none_or(|held| held.version < *version))
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

    /// Applies a pulled page; `false` (and nothing applied) when a delta's base is missing.
    fn apply_page(&mut self, changes: &[RecordEnvelope]) -> bool {
        let mut states = Vec::with_capacity(changes.len());
        for record in changes {
            let id: RecordId = (record.domain.clone(), record.mobile_id);
            let state = match (&record.data, record.base_version, &record.patch) {
                (Some(_), _, _) => Held::from_envelope(record),
                (None, Some(base), Some(patch)) => {
                    let Some(mut data) = self.base_data(&id, base) else { return false };
                    let applied = JsonPatch::from_value(patch.clone())
                        .and_then(|patch| sync_bandwidth::apply(&mut data, &patch));
                    if applied.is_err() {
                        return false;
                    }
                    self.stats.delta_records += 1;
                    Some(Held { version: record.version, data, deleted: record.deleted })
                }
                _ => None,
            };
            let Some(state) = state else {
                self.violations
                    .push(format!("{}: pulled {id:?} v{} without data or patch", self.id, record.version));
                continue;
            };
            states.push((id, state));
        }
        self.stats.records_pulled += states.len() as u64;
        for (id, state) in states {
            // Never move backwards: an acknowledgement may already hold a newer version.
            if self.replica.get(&id).is_some_and(|h| h.version >= state.version) {
                continue;
            }
            self.hold(id, state);
        }
        true
    }

    fn base_data(&self, id: &RecordId, version: i64) -> Option<Value> {
        self.bases.get(id)?.iter().find(|(v, _)| *v == version).map(|(_, data)| data.clone())
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
            "heartbeat" | "conflict" | "alert" => {}
            _ => return,
        }
    }
}
