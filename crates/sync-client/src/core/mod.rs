//! The sans-IO core: every rule of the client as plain data in, plain data out.
//!
//! A step of the core reads the local state through [`Replica`] and returns a [`Step`]: the
//! writes to make in one local transaction and the events to announce after it commits. The
//! core keeps nothing of its own between steps, so restarting it after a crash is the same as
//! reading the stored state again. The SQLite store ([`crate::store`]) and the in-memory
//! [`MemoryReplica`] (tests, models) both implement [`Replica`].
//!
//! The rules:
//! - A local edit is stored (as a [`Pending`] edit, coalesced per record, keeping the version
//!   the first edit was based on) before anything is sent.
//! - A [`Batch`] takes the oldest pending edits and its `Idempotency-Key` in one transaction;
//!   it is resent, with the same key and body, until the server answers it. Batches go one
//!   at a time, oldest first, so edits of a record reach the server in the order made. An
//!   edit of a record created here and not yet sent seals the creation into a batch of its
//!   own first, so that the server sees the record start in its workflow's start state.
//! - A push answer is taken in one transaction that removes the batch; an answer for any
//!   other key (late, duplicated) changes nothing.
//! - A pulled page and its cursor are stored in one transaction; a page pulled from any
//!   cursor but the stored one (late, duplicated) changes nothing.
//! - The server's state of a record is kept apart from the edits not yet acknowledged; what
//!   the app sees is the newest edit, else the server's state.

mod backoff;
mod memory;
mod outbox;
mod pull;
mod sse;

pub use backoff::Backoff;
pub use memory::MemoryReplica;
pub use outbox::{EditOp, LocalEdit, batch_size, edit, next_batch, push_answered, push_refused};
pub use pull::{PullOutcome, pull_answered, resync_required};
pub use sse::{SseEvent, SseParser};

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_model::{Priority, SyncStatus};
use sync_protocol::{Change, ConflictSummary, ItemError, Outcome};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// How many past server versions of a record are kept as bases for pulled deltas.
pub const KEPT_BASES: usize = 4;

/// A record's identity within an account: `(domain, mobile_id)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordId {
    pub domain: String,
    pub mobile_id: Uuid,
}

impl RecordId {
    pub fn new(domain: impl Into<String>, mobile_id: Uuid) -> Self {
        RecordId { domain: domain.into(), mobile_id }
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.mobile_id)
    }
}

/// The server's state of a record as this device last learned it (by a pull or a push answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub id: RecordId,
    /// The server's version (never 0: a record the server has not taken has no row).
    pub version: i64,
    /// The data at `version`; `None` where it is unknown (a manual conflict whose stored
    /// version has not been pulled yet) or a tombstone came without data.
    pub data: Option<Value>,
    pub deleted: bool,
    /// `synced`, or `conflict`/`sync_error` after the last edit of it was not taken as sent.
    pub status: SyncStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    pub priority: Priority,
    pub bu: Option<String>,
    /// The resync round in which the server last showed this record.
    pub epoch: u64,
    /// The server version a `manual_required` answer named: the conflict stands until a
    /// newer version (an admin's resolution) arrives.
    #[serde(default)]
    pub conflict_at: Option<i64>,
    /// Whether this state came from a pull (else from a push answer). A later page always
    /// holds a later state, even with a lower version: the server restarts a record's
    /// versions when it purges its tombstone and the id is used again.
    #[serde(default)]
    pub pulled: bool,
}

/// A local edit not yet in a batch: the newest wanted state of one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub id: RecordId,
    /// Position in the outbox (older edits go first).
    pub seq: u64,
    /// The wanted data; `None` deletes the record.
    pub wanted: Option<Value>,
    /// The server version the first coalesced edit was based on (0: a new record).
    pub base_version: i64,
    /// The data at `base_version`, to send the edit as a JSON Patch.
    pub base_data: Option<Value>,
    /// Made while a batch holding the same record was in flight: its base becomes that
    /// change's result when the batch is answered.
    pub after_flight: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    pub priority: Option<Priority>,
    pub bu: Option<String>,
}

/// A batch of the outbox: its key, the edits it carries and the changes as sent. Batches are
/// sent oldest first, one at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The `Idempotency-Key` of every try.
    pub key: String,
    pub items: Vec<Pending>,
    pub changes: Vec<Change>,
    /// The resync round when it was formed.
    #[serde(default)]
    pub epoch: u64,
}

/// The account file's own state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub device_id: String,
    /// Made once per file: idempotency keys are `<instance>-<n>`, unique for ever.
    pub instance: Uuid,
    /// The pull cursor; `None`: from the beginning.
    pub cursor: Option<String>,
    pub next_key: u64,
    pub next_seq: u64,
    /// The current resync round (records the server has not shown since are purged at its end).
    pub epoch: u64,
    pub resyncing: bool,
    /// A cap on batch size learnt from a 413.
    pub batch_cap: Option<usize>,
}

impl Meta {
    pub fn new(device_id: impl Into<String>, instance: Uuid) -> Self {
        Meta {
            device_id: device_id.into(),
            instance,
            cursor: None,
            next_key: 1,
            next_seq: 1,
            epoch: 0,
            resyncing: false,
            batch_cap: None,
        }
    }
}

/// What happened to one local edit that the server did not take as sent (a conflict, a
/// refusal), for the app to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub id: RecordId,
    pub outcome: Outcome,
    pub version: Option<i64>,
    pub conflict: Option<ConflictSummary>,
    pub error: Option<ItemError>,
    /// What this device wanted (`None`: a delete).
    pub wanted: Option<Value>,
}

/// Where a change of the local view came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An edit on this device.
    Local,
    /// A pull or the answer to a push.
    Server,
}

/// Something the app may want to react to, announced after the step that caused it committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// What the app sees of a record changed.
    Changed { id: RecordId, origin: Origin },
    /// A local edit was resolved by a conflict policy, awaits an admin, or was refused.
    Notice(Notice),
    /// The server purged history past the cursor: the device pulls everything again.
    ResyncStarted,
}

/// One write of a step. A step's writes are made in one transaction, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Meta(Meta),
    Record(ServerRecord),
    RemoveRecord(RecordId),
    Pending(Pending),
    RemovePending(RecordId),
    /// Queues a batch behind the others.
    Batch(Batch),
    /// Removes the batch with this key.
    RemoveBatch(String),
    /// A server version of a record, as a base for later deltas (the store keeps the newest
    /// [`KEPT_BASES`]).
    Base {
        id: RecordId,
        version: i64,
        data: Value,
    },
    Notice(Notice),
}

/// The result of one step: writes to commit together, then events to announce.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    pub writes: Vec<Write>,
    pub events: Vec<Event>,
}

impl Step {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.events.is_empty()
    }
}

/// Read access to the local state, and the one way to change it.
pub trait Replica {
    fn meta(&mut self) -> Result<Meta>;
    fn record(&mut self, id: &RecordId) -> Result<Option<ServerRecord>>;
    fn pending(&mut self, id: &RecordId) -> Result<Option<Pending>>;
    /// The oldest pending edits, at most `limit`, in outbox order.
    fn oldest_pending(&mut self, limit: usize) -> Result<Vec<Pending>>;
    /// The batches, oldest first.
    fn batches(&mut self) -> Result<Vec<Batch>>;
    /// The data of a kept server version of a record.
    fn base(&mut self, id: &RecordId, version: i64) -> Result<Option<Value>>;
    /// Records last shown by the server before resync round `epoch`.
    fn records_before_epoch(&mut self, epoch: u64) -> Result<Vec<RecordId>>;
    /// Makes a step's writes (inside the caller's transaction).
    fn apply(&mut self, writes: &[Write]) -> Result<()>;
}

/// What the app sees of one record: its newest local edit, else the server's state.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub id: RecordId,
    pub data: Value,
    /// The server version this view is, or is based on (0: never acknowledged).
    pub version: i64,
    pub status: SyncStatus,
    pub modified_at: OffsetDateTime,
    pub priority: Priority,
    pub bu: Option<String>,
}

/// The newest batched edit of a record, if a batch holds one.
pub fn in_batch<R: Replica + ?Sized>(r: &mut R, id: &RecordId) -> Result<Option<Pending>> {
    Ok(r.batches()?.into_iter().rev().find_map(|b| b.items.into_iter().find(|p| &p.id == id)))
}

/// The app's view of a record; `None` when it does not exist or is deleted.
pub fn view<R: Replica + ?Sized>(r: &mut R, id: &RecordId) -> Result<Option<View>> {
    let record = r.record(id)?;
    let local = match r.pending(id)? {
        Some(p) => Some(p),
        None => in_batch(r, id)?,
    };
    let base_priority = record.as_ref().map_or(Priority::Medium, |s| s.priority);
    let base_bu = record.as_ref().and_then(|s| s.bu.clone());
    if let Some(p) = local {
        let version = record.as_ref().map_or(0, |s| s.version);
        return Ok(p.wanted.map(|data| View {
            id: id.clone(),
            data,
            version,
            status: SyncStatus::PendingSync,
            modified_at: p.modified_at,
            priority: p.priority.unwrap_or(base_priority),
            bu: p.bu.or(base_bu),
        }));
    }
    Ok(record.and_then(|s| {
        let data = s.data.filter(|_| !s.deleted)?;
        Some(View {
            id: s.id,
            data,
            version: s.version,
            status: s.status,
            modified_at: s.modified_at,
            priority: s.priority,
            bu: s.bu,
        })
    }))
}
