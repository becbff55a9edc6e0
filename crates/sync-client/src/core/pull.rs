//! Pulled pages into the local state: full records and JSON-Patch deltas, the cursor in the
//! same transaction, and `resync_required`.

use sync_bandwidth::JsonPatch;
use sync_model::SyncStatus;
use sync_protocol::{PullResponse, RecordEnvelope};

use super::{Event, Meta, Origin, Replica, ServerRecord, Step, Write};
use crate::Result;

/// What to do with a pulled page.
#[derive(Debug, Clone, PartialEq)]
pub enum PullOutcome {
    /// Commit this step (the page's records and the new cursor); pull again if `more`.
    Apply { step: Step, more: bool },
    /// The page was pulled from another cursor than the stored one (a late or repeated
    /// answer): nothing to do.
    Stale,
    /// A delta's base version is not held here: pull the same page again without deltas.
    NeedFull,
}

/// Takes a page pulled from `from` (the cursor the request carried) into the local state.
pub fn pull_answered<R: Replica + ?Sized>(
    r: &mut R,
    from: Option<&str>,
    page: &PullResponse,
) -> Result<PullOutcome> {
    let mut meta = r.meta()?;
    if meta.cursor.as_deref() != from {
        return Ok(PullOutcome::Stale);
    }
    if from.is_none() && !meta.resyncing {
        // A pull from the beginning shows every record the server has: one held here that it
        // does not show by the end was purged (its tombstone with it), so it goes too.
        meta.epoch += 1;
        meta.resyncing = true;
    }
    let mut step = Step::default();
    for envelope in &page.changes {
        if !take_record(r, &meta, envelope, &mut step)? {
            return Ok(PullOutcome::NeedFull);
        }
    }
    meta.cursor = Some(page.cursor.clone());
    if meta.resyncing && !page.has_more {
        // Everything the server holds has been shown again: what it did not show was purged.
        meta.resyncing = false;
        let shown: std::collections::HashSet<super::RecordId> = step
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Record(s) => Some(s.id.clone()),
                _ => None,
            })
            .collect();
        for id in r.records_before_epoch(meta.epoch)? {
            if shown.contains(&id) {
                continue;
            }
            // Edits not yet acknowledged stay (and go to the server as usual); only the
            // server state they were based on, which the server no longer has, goes.
            let covered = r.pending(&id)?.is_some() || super::in_batch(r, &id)?.is_some();
            step.writes.push(Write::RemoveRecord(id.clone()));
            if !covered {
                step.events.push(Event::Changed { id, origin: Origin::Server });
            }
        }
    }
    step.writes.push(Write::Meta(meta));
    Ok(PullOutcome::Apply { step, more: page.has_more })
}

/// One pulled record; `false` when it is a delta on a base this device does not hold.
fn take_record<R: Replica + ?Sized>(
    r: &mut R,
    meta: &Meta,
    envelope: &RecordEnvelope,
    step: &mut Step,
) -> Result<bool> {
    let id = super::RecordId::new(envelope.domain.clone(), envelope.mobile_id);
    let held = r.record(&id)?;
    let known =
        |h: &&ServerRecord| h.version == envelope.version || (h.version > envelope.version && !h.pulled);
    if let Some(held) = held.as_ref().filter(known) {
        // Already as new (or a push answer came first): only note that the server still has it.
        if held.epoch != meta.epoch {
            step.writes.push(Write::Record(ServerRecord { epoch: meta.epoch, ..held.clone() }));
        }
        return Ok(true);
    }
    let data = match (&envelope.data, envelope.base_version, &envelope.patch) {
        (Some(data), _, _) => Some(data.clone()),
        (None, Some(base), Some(patch)) => {
            let base_data = match held.as_ref().filter(|h| h.version == base) {
                Some(h) => h.data.clone(),
                None => r.base(&id, base)?,
            };
            let Some(mut data) = base_data else { return Ok(false) };
            let applied =
                JsonPatch::from_value(patch.clone()).and_then(|p| sync_bandwidth::apply(&mut data, &p));
            if applied.is_err() {
                return Ok(false);
            }
            Some(data)
        }
        (None, _, _) if envelope.deleted => None,
        (None, _, _) => return Ok(false),
    };
    // A newer version settles a refused edit, and a manual conflict once it is past the
    // version the conflict was against (an admin resolved it).
    let conflict_at = held.as_ref().and_then(|h| h.conflict_at).filter(|v| envelope.version <= *v);
    let status = match held.as_ref().map(|h| h.status) {
        Some(SyncStatus::Conflict) if conflict_at.is_some() => SyncStatus::Conflict,
        _ => SyncStatus::Synced,
    };
    if let Some(data) = &data {
        step.writes.push(Write::Base { id: id.clone(), version: envelope.version, data: data.clone() });
    }
    step.writes.push(Write::Record(ServerRecord {
        id: id.clone(),
        version: envelope.version,
        data,
        deleted: envelope.deleted,
        status,
        modified_at: envelope.modified_at,
        priority: envelope.priority,
        bu: envelope.bu.clone(),
        epoch: meta.epoch,
        conflict_at,
        pulled: true,
    }));
    let covered = r.pending(&id)?.is_some() || super::in_batch(r, &id)?.is_some();
    if !covered {
        step.events.push(Event::Changed { id, origin: Origin::Server });
    }
    Ok(true)
}

/// The server answered 410 `resync_required`: pull everything again from no cursor; records
/// it no longer shows are removed when that pull completes (edits not yet sent stay).
pub fn resync_required<R: Replica + ?Sized>(r: &mut R) -> Result<Step> {
    let mut meta = r.meta()?;
    meta.cursor = None;
    meta.epoch += 1;
    meta.resyncing = true;
    Ok(Step { writes: vec![Write::Meta(meta)], events: vec![Event::ResyncStarted] })
}
