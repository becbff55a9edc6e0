//! The local state in memory: the reference [`Replica`] for tests and models of the client.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use super::{Batch, KEPT_BASES, Meta, Notice, Pending, RecordId, Replica, ServerRecord, Step, Write};
use crate::Result;

/// The whole local state as plain maps. Cloning it is taking a copy of the "disk".
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryReplica {
    pub meta: Meta,
    pub records: BTreeMap<RecordId, ServerRecord>,
    pub pending: BTreeMap<RecordId, Pending>,
    pub batches: Vec<Batch>,
    pub bases: BTreeMap<RecordId, VecDeque<(i64, Value)>>,
    pub notices: Vec<Notice>,
}

impl MemoryReplica {
    pub fn new(meta: Meta) -> Self {
        MemoryReplica {
            meta,
            records: BTreeMap::new(),
            pending: BTreeMap::new(),
            batches: Vec::new(),
            bases: BTreeMap::new(),
            notices: Vec::new(),
        }
    }

    /// Makes a step's writes and returns its events.
    pub fn commit(&mut self, step: Step) -> Result<Vec<super::Event>> {
        self.apply(&step.writes)?;
        Ok(step.events)
    }
}

impl Replica for MemoryReplica {
    fn meta(&mut self) -> Result<Meta> {
        Ok(self.meta.clone())
    }

    fn record(&mut self, id: &RecordId) -> Result<Option<ServerRecord>> {
        Ok(self.records.get(id).cloned())
    }

    fn pending(&mut self, id: &RecordId) -> Result<Option<Pending>> {
        Ok(self.pending.get(id).cloned())
    }

    fn oldest_pending(&mut self, limit: usize) -> Result<Vec<Pending>> {
        let mut all: Vec<Pending> = self.pending.values().cloned().collect();
        all.sort_by_key(|p| p.seq);
        all.truncate(limit);
        Ok(all)
    }

    fn batches(&mut self) -> Result<Vec<Batch>> {
        Ok(self.batches.clone())
    }

    fn base(&mut self, id: &RecordId, version: i64) -> Result<Option<Value>> {
        Ok(self.bases.get(id).and_then(|b| b.iter().find(|(v, _)| *v == version)).map(|(_, d)| d.clone()))
    }

    fn records_before_epoch(&mut self, epoch: u64) -> Result<Vec<RecordId>> {
        Ok(self.records.values().filter(|r| r.epoch < epoch).map(|r| r.id.clone()).collect())
    }

    fn apply(&mut self, writes: &[Write]) -> Result<()> {
        for write in writes {
            match write.clone() {
                Write::Meta(meta) => self.meta = meta,
                Write::Record(record) => {
                    self.records.insert(record.id.clone(), record);
                }
                Write::RemoveRecord(id) => {
                    self.records.remove(&id);
                    self.bases.remove(&id);
                }
                Write::Pending(pending) => {
                    self.pending.insert(pending.id.clone(), pending);
                }
                Write::RemovePending(id) => {
                    self.pending.remove(&id);
                }
                Write::Batch(batch) => self.batches.push(batch),
                Write::RemoveBatch(key) => self.batches.retain(|b| b.key != key),
                Write::Base { id, version, data } => {
                    let bases = self.bases.entry(id).or_default();
                    bases.retain(|(v, _)| *v != version);
                    bases.push_back((version, data));
                    while bases.len() > KEPT_BASES {
                        bases.pop_front();
                    }
                }
                Write::Notice(notice) => self.notices.push(notice),
            }
        }
        Ok(())
    }
}
