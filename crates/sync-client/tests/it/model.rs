//! A model of the sync server, small enough to trust: versions, a change sequence, idempotent
//! pushes, one conflict policy per domain, pulls with deltas and paging, and purges that
//! make old cursors `resync_required`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use sync_client::core::RecordId;
use sync_protocol::{
    Change, ChangeResult, ConflictSummary, ItemError, Op, Outcome, PullResponse, PushRequest, PushResponse,
    RecordEnvelope,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The domains of the model, each with its policy on conflict.
pub const DOMAINS: [&str; 4] = ["cw", "sw", "mg", "mn"];

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub version: i64,
    pub seq: i64,
    pub data: Option<Value>,
    pub deleted: bool,
}

#[derive(Debug, Default)]
pub struct ModelServer {
    pub history: BTreeMap<RecordId, Vec<Version>>,
    pub seq: i64,
    pub purged_below: i64,
    /// Purges so far: a cursor says which purge it was handed out after (`c<purges>.<seq>`).
    pub purges: u32,
    /// The cursor (sequence) at the end of the last page handed to the device.
    pub remembered: i64,
    responses: HashMap<String, PushResponse>,
    /// How often each idempotency key was processed (a replay does not count).
    pub processed: HashMap<String, u32>,
    /// Changes decided, per (key, index).
    pub decided: HashMap<(String, usize), u32>,
    /// Versions written by pushes, per edit marker (`"e"` in the data): an edit applied twice
    /// shows here as 2.
    pub written: HashMap<u64, u32>,
    /// The last version of each record before its tombstone was purged: versions go on from
    /// there (see `purge`).
    last_versions: HashMap<RecordId, i64>,
    pushing: bool,
}

pub fn at() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

impl ModelServer {
    pub fn current(&self, id: &RecordId) -> Option<&Version> {
        self.history.get(id).and_then(|h| h.last())
    }

    /// The live records: id → data.
    pub fn state(&self) -> BTreeMap<RecordId, Value> {
        self.history
            .iter()
            .filter_map(|(id, h)| {
                h.last().filter(|v| !v.deleted).and_then(|v| Some((id.clone(), v.data.clone()?)))
            })
            .collect()
    }

    fn write(&mut self, id: &RecordId, data: Option<Value>, deleted: bool) -> i64 {
        self.seq += 1;
        if self.pushing
            && let Some(marker) = data.as_ref().and_then(|d| d.get("e")).and_then(Value::as_u64)
        {
            *self.written.entry(marker).or_default() += 1;
        }
        let purged = self.last_versions.get(id).copied().unwrap_or(0);
        let history = self.history.entry(id.clone()).or_default();
        let version = history.last().map_or(purged, |v| v.version) + 1;
        history.push(Version { version, seq: self.seq, data, deleted });
        version
    }

    /// Another device changes a record (no conflict: it had the newest version).
    pub fn edit_elsewhere(&mut self, id: &RecordId, data: Option<Value>) {
        let deleted = data.is_none();
        if deleted && self.current(id).is_none_or(|v| v.deleted) {
            return;
        }
        self.write(id, data, deleted);
    }

    /// The daily purge: tombstones and past versions below the device's remembered cursor
    /// (the end of the last page handed to it) go, as PROTOCOL.md section 5 allows; a pull
    /// from an older cursor (a page whose answer was lost, a late request) then gets
    /// `resync_required`.
    ///
    /// Unlike the real server, which deletes a purged tombstone's row (so a record created
    /// again with the same id starts at version 1), the model goes on numbering.
    pub fn purge(&mut self) {
        let below = self.remembered;
        if below <= self.purged_below {
            return;
        }
        self.purged_below = below;
        self.purges += 1;
        for (id, h) in &self.history {
            if let Some(v) = h.last().filter(|v| v.deleted && v.seq <= below) {
                self.last_versions.insert(id.clone(), v.version);
            }
        }
        self.history.retain(|_, h| h.last().is_some_and(|v| !v.deleted || v.seq > below));
        for h in self.history.values_mut() {
            let newest = h.len() - 1;
            let mut i = 0;
            h.retain(|v| {
                i += 1;
                i - 1 == newest || v.seq > below
            });
        }
    }

    pub fn push(&mut self, key: &str, request: &PushRequest) -> PushResponse {
        if let Some(stored) = self.responses.get(key) {
            return stored.clone();
        }
        *self.processed.entry(key.to_owned()).or_default() += 1;
        let mut results = Vec::new();
        self.pushing = true;
        for (i, change) in request.changes.iter().enumerate() {
            *self.decided.entry((key.to_owned(), i)).or_default() += 1;
            results.push(self.decide(change));
        }
        self.pushing = false;
        let response = PushResponse { results, cursor: format!("c1.{}", self.seq) };
        self.responses.insert(key.to_owned(), response.clone());
        response
    }

    fn envelope(&self, id: &RecordId) -> Option<RecordEnvelope> {
        let v = self.current(id)?;
        Some(RecordEnvelope {
            domain: id.domain.clone(),
            mobile_id: id.mobile_id,
            version: v.version,
            deleted: v.deleted,
            data: v.data.clone(),
            base_version: None,
            patch: None,
            modified_at: at(),
            server_modified_at: at(),
            modified_by_device: None,
            priority: sync_model::Priority::Medium,
            bu: None,
            conflict_risk: None,
        })
    }

    /// The state a change asks for, built on `base` (the data it was based on).
    fn wanted(change: &Change, base: Option<&Value>) -> Result<Option<Value>, ()> {
        match change.op {
            Op::Delete => Ok(None),
            Op::Upsert => change.data.clone().map(Some).ok_or(()),
            Op::Patch => {
                let mut data = base.cloned().ok_or(())?;
                let patch =
                    sync_bandwidth::JsonPatch::from_value(change.patch.clone().ok_or(())?).map_err(|_| ())?;
                sync_bandwidth::apply(&mut data, &patch).map_err(|_| ())?;
                Ok(Some(data))
            }
        }
    }

    fn decide(&mut self, change: &Change) -> ChangeResult {
        let id = RecordId::new(change.domain.clone(), change.mobile_id);
        let stored = self.current(&id).cloned();
        let stored_version = stored.as_ref().map_or(0, |v| v.version);
        let result = |outcome, version| ChangeResult {
            mobile_id: change.mobile_id,
            domain: change.domain.clone(),
            outcome,
            version,
            record: None,
            conflict: None,
            error: None,
        };
        let base = self
            .history
            .get(&id)
            .and_then(|h| h.iter().find(|v| v.version == change.base_version))
            .and_then(|v| v.data.clone());
        let Ok(wanted) = Self::wanted(change, base.as_ref()) else {
            let mut r = result(Outcome::Invalid, None);
            r.error = Some(ItemError { code: "validation".into(), message: "patch does not apply".into() });
            return r;
        };
        if wanted.as_ref().is_some_and(|d| d.get("bad") == Some(&json!(true))) {
            let mut r = result(Outcome::Invalid, None);
            r.error = Some(ItemError { code: "validation".into(), message: "data.bad: refused".into() });
            return r;
        }
        let same = |s: &Option<Version>| match (s, &wanted) {
            (Some(v), None) => v.deleted,
            (Some(v), Some(d)) => !v.deleted && v.data.as_ref() == Some(d),
            (None, _) => false,
        };
        if stored_version == change.base_version {
            if same(&stored) {
                return result(Outcome::Applied, Some(stored_version));
            }
            if wanted.is_none() && stored.is_none() {
                return result(Outcome::Applied, Some(0));
            }
            let version = self.write(&id, wanted.clone(), wanted.is_none());
            return result(Outcome::Applied, Some(version));
        }
        let conflict = |strategy: &str, winner: &str| ConflictSummary {
            id: Uuid::from_u128(u128::try_from(stored_version).unwrap_or(0)),
            strategy: strategy.parse().unwrap(),
            winner: winner.parse().unwrap(),
            details: json!({}),
        };
        match change.domain.as_str() {
            "cw" => {
                let version = if same(&stored) {
                    stored_version
                } else {
                    self.write(&id, wanted.clone(), wanted.is_none())
                };
                let mut r = result(Outcome::ClientWon, Some(version));
                r.conflict = Some(conflict("client_wins", "client"));
                r
            }
            "mg" if wanted.is_some() && stored.as_ref().is_some_and(|s| !s.deleted) => {
                let mut merged = stored.as_ref().and_then(|s| s.data.clone()).unwrap_or_else(|| json!({}));
                if let (Some(m), Some(Value::Object(w))) = (merged.as_object_mut(), &wanted) {
                    for (k, v) in w {
                        m.insert(k.clone(), v.clone());
                    }
                }
                let version = self.write(&id, Some(merged), false);
                let mut r = result(Outcome::Merged, Some(version));
                r.record = self.envelope(&id);
                r.conflict = Some(conflict("field_merge", "merged"));
                r
            }
            "mn" => {
                let mut r = result(Outcome::ManualRequired, Some(stored_version));
                r.conflict = Some(conflict("manual", "none"));
                r
            }
            _ => {
                let mut r = result(Outcome::ServerWon, Some(stored_version));
                r.record = self.envelope(&id);
                r.conflict = Some(conflict("server_wins", "server"));
                r
            }
        }
    }

    /// A pull; `Err(410)` when the cursor is older than the purge.
    pub fn pull(&mut self, cursor: Option<&str>, delta: bool, limit: usize) -> Result<PullResponse, u16> {
        let (purges, from): (u32, i64) = match cursor {
            None => (self.purges, 0),
            Some(c) => c
                .strip_prefix('c')
                .and_then(|s| s.split_once('.'))
                .and_then(|(p, s)| Some((p.parse().ok()?, s.parse().ok()?)))
                .ok_or(400u16)?,
        };
        // A cursor from before a purge that removed history after it is too old.
        if purges < self.purges && from < self.purged_below {
            return Err(410);
        }
        let mut latest: Vec<(&RecordId, &Version)> = self
            .history
            .iter()
            .filter_map(|(id, h)| h.last().filter(|v| v.seq > from).map(|v| (id, v)))
            .collect();
        latest.sort_by_key(|(_, v)| v.seq);
        let has_more = latest.len() > limit;
        latest.truncate(limit);
        let next = latest.last().map_or(from, |(_, v)| v.seq);
        let changes = latest
            .iter()
            .filter_map(|(id, v)| {
                let mut e = self.envelope(id)?;
                e.version = v.version;
                let held = self.history[*id].iter().rev().find(|old| old.seq <= from);
                if delta
                    && let (Some(old), false) = (held, v.deleted)
                    && let (Some(old_data), Some(new_data)) = (&old.data, &v.data)
                    && !old.deleted
                {
                    e.base_version = Some(old.version);
                    e.patch = Some(sync_bandwidth::diff(old_data, new_data).to_value());
                    e.data = None;
                }
                Some(e)
            })
            .collect();
        self.remembered = next;
        Ok(PullResponse { changes, cursor: format!("c{}.{next}", self.purges), has_more, remaining: 0 })
    }
}
