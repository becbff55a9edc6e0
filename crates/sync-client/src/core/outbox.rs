//! The outbox: local edits, batches with their idempotency keys, and push answers.

use serde_json::Value;
use sync_bandwidth::{JsonPatch, NetworkQuality};
use sync_model::{Priority, SyncStatus};
use sync_protocol::limits::DEFAULT_MAX_PUSH_CHANGES;
use sync_protocol::{Change, ChangeResult, ItemError, Op, Outcome, PushResponse};
use time::OffsetDateTime;

use super::{
    Batch, Event, Notice, Origin, Pending, RecordId, Replica, ServerRecord, Step, Write, in_batch, view,
};
use crate::{Error, Result};

/// What a local edit does.
#[derive(Debug, Clone, PartialEq)]
pub enum EditOp {
    /// The record's full data (a JSON object).
    Put(Value),
    /// An RFC 6902 JSON Patch applied to what the app sees now.
    Patch(Value),
    Delete,
}

/// One local edit.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEdit {
    pub id: RecordId,
    pub op: EditOp,
    /// The device's time of the edit.
    pub at: OffsetDateTime,
    pub priority: Option<Priority>,
    pub bu: Option<String>,
}

/// Items per push for a network quality, within the protocol's limit and any cap a 413 taught.
pub fn batch_size(quality: NetworkQuality, cap: Option<usize>) -> usize {
    quality.batch_size().min(cap.unwrap_or(DEFAULT_MAX_PUSH_CHANGES)).clamp(1, DEFAULT_MAX_PUSH_CHANGES)
}

/// Stores a local edit in the outbox (coalesced with an unsent edit of the same record).
pub fn edit<R: Replica + ?Sized>(r: &mut R, e: LocalEdit) -> Result<Step> {
    let current = view(r, &e.id)?;
    let wanted = match e.op {
        EditOp::Put(data) if data.is_object() => Some(data),
        EditOp::Put(_) => return Err(Error::NotAnObject),
        EditOp::Patch(patch) => {
            let mut data = current.ok_or_else(|| Error::NotFound(e.id.clone()))?.data;
            sync_bandwidth::apply(&mut data, &JsonPatch::from_value(patch)?)?;
            if !data.is_object() {
                return Err(Error::NotAnObject);
            }
            Some(data)
        }
        EditOp::Delete if current.is_none() => return Err(Error::NotFound(e.id)),
        EditOp::Delete => None,
    };
    let mut step = Step::default();
    let mut in_flight = in_batch(r, &e.id)?.is_some();
    let mut sealed = None;
    let mut unsent = r.pending(&e.id)?;
    if let Some(create) = unsent.take_if(|p| p.base_version == 0 && !p.after_flight && p.wanted.is_some()) {
        // Coalescing a creation with later edits could make the record start in a state its
        // workflow does not allow at creation (a task created and started offline): the
        // creation goes first, in a batch of its own, and this edit follows it.
        let mut meta = r.meta()?;
        let key = format!("{}-{}", meta.instance, meta.next_key);
        meta.next_key += 1;
        let batch = Batch { key, changes: vec![change_of(&create)], items: vec![create], epoch: meta.epoch };
        step.writes.push(Write::RemovePending(e.id.clone()));
        step.writes.push(Write::Batch(batch));
        sealed = Some(meta);
        in_flight = true;
    }
    let pending = match unsent {
        Some(mut p) => {
            p.wanted = wanted;
            p.modified_at = e.at;
            p.priority = e.priority.or(p.priority);
            p.bu = e.bu.or(p.bu);
            p
        }
        None => {
            let mut meta = match sealed.take() {
                Some(meta) => meta,
                None => r.meta()?,
            };
            let seq = meta.next_seq;
            meta.next_seq += 1;
            step.writes.push(Write::Meta(meta));
            let (base_version, base_data) = match r.record(&e.id)? {
                Some(s) => (s.version, s.data.filter(|_| !s.deleted)),
                None => (0, None),
            };
            // A batched edit (the creation just sealed included) is this edit's base.
            let base_version = match in_flight {
                true => in_batch(r, &e.id)?.map_or(0, |p| p.base_version),
                false => base_version,
            };
            Pending {
                id: e.id.clone(),
                seq,
                wanted,
                base_version,
                base_data: if in_flight { None } else { base_data },
                after_flight: in_flight,
                modified_at: e.at,
                priority: e.priority,
                bu: e.bu,
            }
        }
    };
    // Even a record created and deleted here is sent: whether the server heard of it (an
    // earlier try whose answer was lost) is not known here.
    step.writes.push(Write::Pending(pending));
    step.events.push(Event::Changed { id: e.id, origin: Origin::Local });
    Ok(step)
}

/// The batch to send: the oldest one stored (same key, same body), else a new one of at most
/// `size` of the oldest pending edits. `None` when there is nothing to send. The step (which
/// stores a new batch) must commit before the batch is sent.
pub fn next_batch<R: Replica + ?Sized>(r: &mut R, size: usize) -> Result<Option<(Step, Batch)>> {
    if let Some(batch) = r.batches()?.into_iter().next() {
        return Ok(Some((Step::default(), batch)));
    }
    let items = r.oldest_pending(size.max(1))?;
    if items.is_empty() {
        return Ok(None);
    }
    let mut meta = r.meta()?;
    let key = format!("{}-{}", meta.instance, meta.next_key);
    meta.next_key += 1;
    let changes = items.iter().map(change_of).collect();
    let batch = Batch { key, items, changes, epoch: meta.epoch };
    let mut step = Step::default();
    step.writes.push(Write::Meta(meta));
    step.writes.extend(batch.items.iter().map(|p| Write::RemovePending(p.id.clone())));
    step.writes.push(Write::Batch(batch.clone()));
    Ok(Some((step, batch)))
}

/// The change that carries a pending edit: a delete, a JSON Patch where the base is known and
/// the patch is smaller, else the full data.
fn change_of(p: &Pending) -> Change {
    let (op, data, patch) = match (&p.wanted, &p.base_data) {
        (None, _) => (Op::Delete, None, None),
        (Some(wanted), Some(base)) if p.base_version > 0 => {
            let patch = sync_bandwidth::diff(base, wanted).to_value();
            let smaller = sync_bandwidth::serialized_len(&patch) < sync_bandwidth::serialized_len(wanted);
            if smaller { (Op::Patch, None, Some(patch)) } else { (Op::Upsert, Some(wanted.clone()), None) }
        }
        (Some(wanted), _) => (Op::Upsert, Some(wanted.clone()), None),
    };
    Change {
        domain: p.id.domain.clone(),
        mobile_id: p.id.mobile_id,
        base_version: p.base_version,
        op,
        data,
        patch,
        modified_at: p.modified_at,
        priority: p.priority,
        bu: p.bu.clone(),
    }
}

/// Takes the server's answer to the batch `key` into the local state. An answer to any other
/// key (late, duplicated) is ignored.
pub fn push_answered<R: Replica + ?Sized>(r: &mut R, key: &str, response: &PushResponse) -> Result<Step> {
    let Some(batch) = r.batches()?.into_iter().find(|b| b.key == key) else { return Ok(Step::default()) };
    if response.results.len() != batch.items.len() {
        return Err(Error::Protocol(format!(
            "push {key} sent {} changes but got {} results",
            batch.items.len(),
            response.results.len()
        )));
    }
    // A resync round that began after the batch was formed and has ended may have missed what
    // this answer's writes became (purged meanwhile): pull everything again, which shows
    // them or removes them. Rare: the driver pulls only once its batches are answered.
    let mut meta = r.meta()?;
    let mut step = Step::default();
    if batch.epoch != meta.epoch && !meta.resyncing {
        meta.cursor = None;
        meta.epoch += 1;
        meta.resyncing = true;
        step.writes.push(Write::Meta(meta));
        step.events.push(Event::ResyncStarted);
    }
    for ((item, change), result) in batch.items.iter().zip(&batch.changes).zip(&response.results) {
        if result.mobile_id != item.id.mobile_id || result.domain != item.id.domain {
            return Err(Error::Protocol(format!("push {key}: results out of order at {}", item.id)));
        }
        take_result(r, item, change, result, &mut step)?;
    }
    step.writes.push(Write::RemoveBatch(batch.key));
    Ok(step)
}

/// One change's outcome into the server state, the later pending edit and the notices.
fn take_result<R: Replica + ?Sized>(
    r: &mut R,
    item: &Pending,
    change: &Change,
    result: &ChangeResult,
    step: &mut Step,
) -> Result<()> {
    let id = &item.id;
    let held = r.record(id)?;
    let held_version = held.as_ref().map_or(0, |s| s.version);
    let taken = matches!(result.outcome, Outcome::Applied | Outcome::ClientWon);
    // `epoch` is the last resync round in which a pull showed the record; an answer is no
    // pull, so a resync still removes the record unless a page shows it (a record this
    // answer created after the resync's last page comes back with the next pull).
    let shown_in = held.as_ref().map_or(0, |s| s.epoch);
    let status = match result.outcome {
        Outcome::Applied | Outcome::ClientWon | Outcome::ServerWon | Outcome::Merged => SyncStatus::Synced,
        Outcome::ManualRequired => SyncStatus::Conflict,
        Outcome::Invalid => SyncStatus::SyncError,
    };
    // A pull may already have brought a newer version than this answer names.
    let late = result.version.is_some_and(|v| v < held_version);
    let new_state = match (&result.record, result.version) {
        _ if late => None,
        (Some(record), _) if record.data.is_some() || record.deleted => Some(ServerRecord {
            id: id.clone(),
            version: record.version,
            data: record.data.clone(),
            deleted: record.deleted,
            status,
            modified_at: record.modified_at,
            priority: record.priority,
            bu: record.bu.clone(),
            epoch: shown_in,
            conflict_at: None,
            pulled: false,
        }),
        (_, Some(version)) if taken => Some(ServerRecord {
            id: id.clone(),
            version,
            data: item.wanted.clone().or_else(|| held.as_ref().and_then(|s| s.data.clone())),
            deleted: item.wanted.is_none(),
            status,
            modified_at: change.modified_at,
            priority: change.priority.or(held.as_ref().map(|s| s.priority)).unwrap_or_default(),
            bu: change.bu.clone().or_else(|| held.as_ref().and_then(|s| s.bu.clone())),
            epoch: shown_in,
            conflict_at: None,
            pulled: false,
        }),
        _ => held.clone().map(|s| ServerRecord {
            status,
            conflict_at: if status == SyncStatus::Conflict { result.version } else { s.conflict_at },
            ..s
        }),
    };
    if let Some(state) = &new_state {
        if let Some(data) = state
            .data
            .clone()
            .filter(|_| !state.deleted && Some(state.version) != held.as_ref().map(|s| s.version))
        {
            step.writes.push(Write::Base { id: id.clone(), version: state.version, data });
        }
        step.writes.push(Write::Record(state.clone()));
    }
    // An edit made while this change was in flight builds on its result when the server took
    // it as sent; otherwise it keeps the older base, and the server resolves the conflict.
    if let Some(mut later) = r.pending(id)?.filter(|p| p.after_flight) {
        later.after_flight = false;
        match (result.version, taken && !late) {
            (Some(version), true) => {
                later.base_version = version;
                later.base_data = item.wanted.clone();
            }
            _ => {
                later.base_version = change.base_version;
                later.base_data = None;
            }
        }
        step.writes.push(Write::Pending(later));
    }
    if !matches!(result.outcome, Outcome::Applied) || result.conflict.is_some() {
        let notice = Notice {
            id: id.clone(),
            outcome: result.outcome,
            version: result.version,
            conflict: result.conflict.clone(),
            error: result.error.clone(),
            wanted: item.wanted.clone(),
        };
        step.writes.push(Write::Notice(notice.clone()));
        step.events.push(Event::Notice(notice));
    }
    // The app saw its own edit; it now sees the server's state, unless a later edit covers it.
    if !taken && r.pending(id)?.is_none() {
        step.events.push(Event::Changed { id: id.clone(), origin: Origin::Server });
    }
    Ok(())
}

/// The server refused the batch `key` for good (a 4xx that no retry can change). A 413
/// splits it: its edits go back to the outbox and later batches are half as large. Any other
/// refusal drops it, with an `invalid` notice per edit, and the app sees the server's state.
pub fn push_refused<R: Replica + ?Sized>(
    r: &mut R,
    key: &str,
    status: u16,
    error: ItemError,
) -> Result<Step> {
    let Some(batch) = r.batches()?.into_iter().find(|b| b.key == key) else { return Ok(Step::default()) };
    let mut step = Step::default();
    step.writes.push(Write::RemoveBatch(batch.key.clone()));
    if status == 413 && batch.items.len() > 1 {
        let mut meta = r.meta()?;
        meta.batch_cap = Some((batch.items.len() / 2).max(1));
        step.writes.push(Write::Meta(meta));
        for item in batch.items {
            // A newer edit of the same record keeps its data and takes this one's base and place.
            let back = match r.pending(&item.id)? {
                Some(later) => Pending { wanted: later.wanted, modified_at: later.modified_at, ..item },
                None => item,
            };
            step.writes.push(Write::Pending(back));
        }
        return Ok(step);
    }
    for item in batch.items {
        if let Some(mut later) = r.pending(&item.id)?.filter(|p| p.after_flight) {
            later.after_flight = false;
            later.base_version = item.base_version;
            later.base_data = item.base_data.clone();
            step.writes.push(Write::Pending(later));
        } else if let Some(held) = r.record(&item.id)? {
            step.writes.push(Write::Record(ServerRecord { status: SyncStatus::SyncError, ..held }));
        }
        let notice = Notice {
            id: item.id.clone(),
            outcome: Outcome::Invalid,
            version: None,
            conflict: None,
            error: Some(error.clone()),
            wanted: item.wanted,
        };
        step.writes.push(Write::Notice(notice.clone()));
        step.events.push(Event::Notice(notice));
        step.events.push(Event::Changed { id: item.id, origin: Origin::Server });
    }
    Ok(step)
}
