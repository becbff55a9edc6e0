//! The law of the core: any interleaving of local edits, edits elsewhere, lost, duplicated
//! and reordered answers, purges and crashes (a restart from the stored state) converges to
//! the server's state, and every batch of local edits is decided by the server exactly once.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};
use sync_client::core::{
    self, EditOp, LocalEdit, MemoryReplica, Meta, PullOutcome, RecordId, Replica, Step, view,
};
use sync_client::{Result, Store};
use sync_protocol::{PullResponse, PushRequest};
use uuid::Uuid;

use crate::model::{DOMAINS, ModelServer, at};

const RECORDS: usize = 6;

fn id(i: usize) -> RecordId {
    RecordId::new(DOMAINS[i % DOMAINS.len()], Uuid::from_u128(i as u128 + 1))
}

#[derive(Debug, Clone)]
pub enum Action {
    Edit { rec: usize, kind: u8, value: u8 },
    EditElsewhere { rec: usize, value: Option<u8> },
    SendPush { size: usize },
    DeliverPush { pick: usize, answer: Answer },
    SendPull { delta: bool, limit: usize },
    DeliverPull { pick: usize, answer: Answer },
    Crash,
    Purge,
}

/// What becomes of a request in the air.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// The request never reaches the server.
    LostRequest,
    /// The server handles it; the answer is lost.
    LostResponse,
    Once,
    Twice,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        1 => Just(Answer::LostRequest),
        2 => Just(Answer::LostResponse),
        5 => Just(Answer::Once),
        2 => Just(Answer::Twice),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => (0..RECORDS, 0u8..5, any::<u8>()).prop_map(|(rec, kind, value)| Action::Edit { rec, kind, value }),
        2 => (0..RECORDS, proptest::option::weighted(0.85, any::<u8>()))
            .prop_map(|(rec, value)| Action::EditElsewhere { rec, value }),
        3 => (1usize..4).prop_map(|size| Action::SendPush { size }),
        4 => (any::<usize>(), answer()).prop_map(|(pick, answer)| Action::DeliverPush { pick, answer }),
        3 => (any::<bool>(), 1usize..4).prop_map(|(delta, limit)| Action::SendPull { delta, limit }),
        4 => (any::<usize>(), answer()).prop_map(|(pick, answer)| Action::DeliverPull { pick, answer }),
        1 => Just(Action::Crash),
        1 => Just(Action::Purge),
    ]
}

/// Where the client's state lives: in memory, or in a SQLite file reopened on each crash.
pub enum Disk {
    Memory(Box<MemoryReplica>),
    Sqlite { store: Store, _dir: tempfile::TempDir },
}

impl Disk {
    fn memory() -> Disk {
        Disk::Memory(Box::new(MemoryReplica::new(Meta::new("phone-1", Uuid::from_u128(7)))))
    }

    fn sqlite() -> Disk {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("account.db"), "phone-1").unwrap();
        Disk::Sqlite { store, _dir: dir }
    }

    /// Runs a read (and maybe a step) on the state, in one transaction for SQLite.
    fn run<T>(&mut self, f: impl FnOnce(&mut dyn Replica) -> Result<T>) -> Result<T> {
        match self {
            Disk::Memory(m) => f(m.as_mut()),
            Disk::Sqlite { store, .. } => store.transact(f),
        }
    }

    fn commit(&mut self, f: impl FnOnce(&mut dyn Replica) -> Result<Step>) -> Result<()> {
        self.run(|r| {
            let step = f(r)?;
            r.apply(&step.writes)
        })
    }

    /// A crash and restart: whatever the process held is gone; the file is read again.
    fn restart(&mut self) {
        if let Disk::Sqlite { store, _dir } = self {
            let path = store.path().to_path_buf();
            *store = Store::open(path, "phone-1").unwrap();
        }
    }

    fn snapshot(&mut self) -> MemoryReplica {
        match self {
            Disk::Memory(m) => m.as_ref().clone(),
            Disk::Sqlite { store, .. } => store.snapshot().unwrap(),
        }
    }
}

struct InAir<T> {
    request: T,
    /// The client instance that sent it: a crash loses the answers to earlier instances.
    life: u32,
}

struct World {
    disk: Disk,
    server: ModelServer,
    pushes: Vec<InAir<(String, PushRequest)>>,
    pulls: Vec<InAir<(Option<String>, bool, usize)>>,
    life: u32,
    /// Every key a batch was formed with.
    keys: BTreeSet<String>,
    /// Records some other device edited, and records the client ever sent bad data for.
    touched_elsewhere: BTreeSet<RecordId>,
    bad: BTreeSet<RecordId>,
    /// The newest local edit of each record (`None`: deleted).
    last_local: BTreeMap<RecordId, Option<Value>>,
    delta_ok: bool,
    /// Each local edit writes a new marker into its data.
    marker: u64,
    /// What happened, to show that the law was tested on the hard cases.
    seen: BTreeMap<String, u32>,
}

impl World {
    fn new(disk: Disk) -> World {
        World {
            disk,
            server: ModelServer::default(),
            pushes: Vec::new(),
            pulls: Vec::new(),
            life: 0,
            keys: BTreeSet::new(),
            touched_elsewhere: BTreeSet::new(),
            bad: BTreeSet::new(),
            last_local: BTreeMap::new(),
            delta_ok: true,
            marker: 0,
            seen: BTreeMap::new(),
        }
    }

    fn edit(&mut self, rec: usize, kind: u8, value: u8) {
        let id = id(rec);
        self.marker += 1;
        let e = self.marker;
        let op = match kind {
            0 | 1 => EditOp::Put(json!({"v": value, "n": rec, "e": e})),
            2 => EditOp::Patch(
                json!([{"op": "replace", "path": "/v", "value": value}, {"op": "add", "path": "/e", "value": e}]),
            ),
            3 => EditOp::Delete,
            _ => EditOp::Put(json!({"v": value, "bad": true, "e": e})),
        };
        let edit = LocalEdit { id: id.clone(), op, at: at(), priority: None, bu: None };
        // Editing what does not exist (a patch or delete of a deleted record) is refused.
        if self.disk.commit(|r| core::edit(r, edit)).is_ok() {
            if kind == 4 {
                self.bad.insert(id.clone());
            }
            let now = self.disk.run(|r| view(r, &id)).unwrap().map(|v| v.data);
            self.last_local.insert(id, now);
        }
    }

    fn send_push(&mut self, size: usize) {
        let mut formed = None;
        self.disk
            .commit(|r| {
                Ok(match core::next_batch(r, size)? {
                    Some((step, batch)) => {
                        formed = Some(batch);
                        step
                    }
                    None => Step::default(),
                })
            })
            .unwrap();
        if let Some(batch) = formed {
            self.keys.insert(batch.key.clone());
            let request =
                PushRequest { device_id: "phone-1".into(), client_time: None, changes: batch.changes };
            self.pushes.push(InAir { request: (batch.key, request), life: self.life });
        }
    }

    fn deliver_push(&mut self, pick: usize, answer: Answer) {
        if self.pushes.is_empty() {
            return;
        }
        let InAir { request: (key, request), life } = self.pushes.remove(pick % self.pushes.len());
        let times = match answer {
            Answer::LostRequest => return,
            Answer::LostResponse => {
                self.server.push(&key, &request);
                return;
            }
            Answer::Once => 1,
            Answer::Twice => 2,
        };
        for _ in 0..times {
            let response = self.server.push(&key, &request);
            if life == self.life {
                let current = self.disk.run(|r| r.batches()).unwrap().iter().any(|b| b.key == key);
                self.saw(if current {
                    "push answer taken"
                } else {
                    "push answer ignored (late or repeated)"
                });
                if current {
                    for result in &response.results {
                        self.saw(&format!("outcome {}", result.outcome.as_str()));
                    }
                }
                self.disk.commit(|r| core::push_answered(r, &key, &response)).unwrap();
            }
        }
    }

    fn send_pull(&mut self, delta: bool, limit: usize) {
        let cursor = self.disk.run(|r| r.meta()).unwrap().cursor;
        self.pulls.push(InAir { request: (cursor, delta && self.delta_ok, limit), life: self.life });
    }

    /// Delivers a pull; returns whether the page was the last one.
    fn deliver_pull(&mut self, pick: usize, answer: Answer) -> bool {
        if self.pulls.is_empty() {
            return true;
        }
        let InAir { request: (cursor, delta, limit), life } = self.pulls.remove(pick % self.pulls.len());
        let times = match answer {
            Answer::LostRequest | Answer::LostResponse => return false,
            Answer::Once => 1,
            Answer::Twice => 2,
        };
        let mut done = false;
        for _ in 0..times {
            let page = self.server.pull(cursor.as_deref(), delta, limit);
            if life != self.life {
                continue;
            }
            match page {
                Ok(page) => done |= self.take_page(cursor.as_deref(), &page),
                Err(410) => {
                    self.saw("resync_required");
                    self.disk.commit(|r| core::resync_required(r)).unwrap();
                }
                Err(status) => panic!("model server answered {status}"),
            }
        }
        done
    }

    fn take_page(&mut self, from: Option<&str>, page: &PullResponse) -> bool {
        let mut last = false;
        let mut need_full = false;
        let mut stale = false;
        let deltas = page.changes.iter().filter(|c| c.patch.is_some()).count();
        self.disk
            .commit(|r| {
                Ok(match core::pull_answered(r, from, page)? {
                    PullOutcome::Apply { step, more } => {
                        last = !more;
                        step
                    }
                    PullOutcome::Stale => {
                        stale = true;
                        Step::default()
                    }
                    PullOutcome::NeedFull => {
                        need_full = true;
                        Step::default()
                    }
                })
            })
            .unwrap();
        // The next pull goes without deltas; later ones with them again.
        self.delta_ok = !need_full;
        self.saw(match (stale, need_full) {
            (true, _) => "pulled page ignored (late or repeated)",
            (_, true) => "delta without its base: pulled again in full",
            _ if deltas > 0 => "delta applied",
            _ => "full page applied",
        });
        last
    }

    fn saw(&mut self, what: &str) {
        *self.seen.entry(what.to_owned()).or_default() += 1;
    }

    fn crash(&mut self) {
        self.life += 1;
        self.disk.restart();
    }

    fn run(&mut self, action: Action) {
        match action {
            Action::Edit { rec, kind, value } => self.edit(rec, kind, value),
            Action::EditElsewhere { rec, value } => {
                let id = id(rec);
                self.touched_elsewhere.insert(id.clone());
                self.server.edit_elsewhere(&id, value.map(|v| json!({"v": v, "n": rec, "elsewhere": true})));
            }
            Action::SendPush { size } => self.send_push(size),
            Action::DeliverPush { pick, answer } => self.deliver_push(pick, answer),
            Action::SendPull { delta, limit } => self.send_pull(delta, limit),
            Action::DeliverPull { pick, answer } => {
                self.deliver_pull(pick, answer);
            }
            Action::Crash => self.crash(),
            Action::Purge => self.server.purge(),
        }
    }

    /// A clean network until nothing is left to send and the last page is pulled.
    fn drain(&mut self) {
        self.crash(); // answers still in the air go nowhere
        self.pushes.clear();
        self.pulls.clear();
        for _ in 0..200 {
            self.send_push(3);
            if self.pushes.is_empty() {
                break;
            }
            self.deliver_push(0, Answer::Once);
        }
        for _ in 0..200 {
            self.send_pull(true, 3);
            if self.deliver_pull(0, Answer::Once) {
                return;
            }
        }
        panic!("pulling never reached the end");
    }

    fn check(&mut self) {
        let snapshot = self.disk.snapshot();
        assert!(snapshot.batches.is_empty(), "a batch is still in flight");
        assert!(snapshot.pending.is_empty(), "edits were never sent: {:?}", snapshot.pending);
        let server = self.server.state();
        let mut local = BTreeMap::new();
        for rec in 0..RECORDS {
            let id = id(rec);
            if let Some(v) = self.disk.run(|r| view(r, &id)).unwrap() {
                local.insert(id, v.data);
            }
        }
        assert_eq!(local, server, "the device does not hold the server's state");
        // Exactly once: every batch formed was decided by the server once, never again.
        for key in &self.keys {
            assert_eq!(
                self.server.processed.get(key),
                Some(&1),
                "batch {key} decided {:?} times",
                self.server.processed.get(key)
            );
        }
        assert!(self.server.decided.values().all(|n| *n == 1), "a change was decided twice");
        assert!(
            self.server.written.values().all(|n| *n == 1),
            "an edit was applied twice: {:?}",
            self.server.written
        );
        // No edit lost: where nobody else wrote and the policy lets the client win, the
        // server holds the device's last edit.
        for (id, wanted) in &self.last_local {
            if id.domain == "cw" && !self.touched_elsewhere.contains(id) && !self.bad.contains(id) {
                assert_eq!(server.get(id), wanted.as_ref(), "the last edit of {id} was lost");
            }
        }
    }
}

fn converges(disk: Disk, actions: Vec<Action>) -> BTreeMap<String, u32> {
    let mut world = World::new(disk);
    for action in actions {
        world.run(action);
    }
    world.drain();
    world.check();
    world.seen
}

/// The law is not passed vacuously: over a fixed set of runs, every outcome, every kind of
/// late answer, deltas with and without their base and resyncs all happen.
#[test]
fn the_runs_cover_every_case() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..300 {
        let actions = proptest::collection::vec(action(), 0..80).new_tree(&mut runner).unwrap().current();
        for (what, n) in converges(Disk::memory(), actions) {
            *seen.entry(what).or_default() += n;
        }
    }
    let expected = [
        "outcome applied",
        "outcome client_won",
        "outcome server_won",
        "outcome merged",
        "outcome manual_required",
        "outcome invalid",
        "push answer ignored (late or repeated)",
        "pulled page ignored (late or repeated)",
        "delta applied",
        "delta without its base: pulled again in full",
        "resync_required",
    ];
    for what in expected {
        assert!(seen.get(what).is_some_and(|n| *n > 0), "never happened: {what} (seen: {seen:?})");
    }
}

/// `PROPTEST_CASES` when set (for long runs), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(400), ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_converges_exactly_once(actions in proptest::collection::vec(action(), 0..80)) {
        converges(Disk::memory(), actions);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// The same law with the state in a SQLite file, reopened on every crash.
    #[test]
    fn any_interleaving_converges_on_sqlite(actions in proptest::collection::vec(action(), 0..60)) {
        converges(Disk::sqlite(), actions);
    }
}

/// The harness can fail: a client that forgets its batch on a crash (and so makes a new key
/// for the same edits) breaks exactly-once, and the checks see it.
#[test]
fn the_checks_catch_a_client_that_forgets_its_batch() {
    let mut world = World::new(Disk::memory());
    world.edit(0, 0, 1);
    world.send_push(3);
    world.deliver_push(0, Answer::LostResponse);
    world.run(Action::EditElsewhere { rec: 0, value: Some(9) });
    // Forget the batch: its edit goes back to the outbox, as a careless client would do.
    let batch = world.disk.run(|r| r.batches()).unwrap().remove(0);
    world
        .disk
        .run(|r| {
            let mut writes = vec![core::Write::RemoveBatch(batch.key.clone())];
            writes.extend(batch.items.into_iter().map(core::Write::Pending));
            r.apply(&writes)
        })
        .unwrap();
    world.drain();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.check()));
    assert!(caught.is_err(), "a second key for the same edit went unnoticed");
}
