//! Group commit: concurrent writers' transactions run one after another inside one database
//! transaction, each in a savepoint of its own, and share its commit.
//!
//! Why: on SQLite there is one writer anyway, and every commit rewrites the pages the pushes
//! share (the change counter, the tails of the records, history, idempotency and sync-event
//! indexes) and appends them to the WAL: a group pays that once.
//!
//! How (a leader/follower queue, as databases do it): a writer puts its job in its lane's
//! queue; if no leader is running there, it starts one on the blocking pool. The leader takes
//! every queued job (up to the group limit), opens one write transaction, runs each job in a
//! savepoint — a job that fails is rolled back to its savepoint and answered with its error at
//! once, without touching the others —, commits, and only then answers the jobs that
//! succeeded. If the commit fails, none of them happened, and each gets the error. Then it
//! leads the next group, or stops when the queue is empty. Followers wait on a channel, not on
//! a thread.
//!
//! The result is exactly that of running the jobs one at a time in queue order: each job
//! sees everything the earlier ones wrote, in the same transaction, and nothing of a job
//! that failed.
//!
//! Measured (docs/benchmarks.md, "Group commit"): it pays on SQLite and is its default; on
//! PostgreSQL a group runs in one backend the pushes that would otherwise overlap all but
//! their writes, so there it is off by default, and `write_grouped` instead gives each writer
//! a transaction of its own while letting at most two writers of a lane into the database at
//! once: the rest wait in the server rather than on the tenant's change-counter row.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{Database, DbConnection, TxMode, transaction};
use crate::error::{Error, Result};

/// One writer's job in a group.
trait Job: Send {
    /// Runs the job in a savepoint of the group's transaction. `Some` when it succeeded: its
    /// answer waits for the commit.
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Option<Box<dyn Done>>;
    /// Answers the job with an error without running it.
    fn fail(self: Box<Self>, error: Error);
}

/// A job that ran, waiting for its group's commit.
trait Done: Send {
    fn finish(self: Box<Self>, commit: Result<(), &Error>);
}

struct Pending<T, F> {
    f: F,
    reply: tokio::sync::oneshot::Sender<Result<T>>,
}

struct Ran<T> {
    value: T,
    reply: tokio::sync::oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Option<Box<dyn Done>> {
        let Pending { f, reply } = *self;
        // Inside the group's transaction this is a savepoint: released on `Ok`, rolled back
        // to on `Err`.
        match transaction(conn, TxMode::Write, f) {
            Ok(value) => Some(Box::new(Ran { value, reply })),
            Err(error) => {
                // The caller may have gone away (its request was cancelled): nothing to tell.
                let _ = reply.send(Err(error));
                None
            }
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Err(error));
    }
}

impl<T: Send + 'static> Done for Ran<T> {
    fn finish(self: Box<Self>, commit: Result<(), &Error>) {
        let Ran { value, reply } = *self;
        let _ = reply.send(commit.map(|()| value).map_err(replicate));
    }
}

/// The error a group's failure gives each of its jobs: the same kind where the caller acts on
/// the kind (retry a write conflict, answer 503 when the database is unavailable), else an
/// internal error naming the cause.
fn replicate(error: &Error) -> Error {
    match error {
        Error::Unavailable(message) => Error::Unavailable(message.clone()),
        Error::WriteConflict(message) => Error::WriteConflict(message.clone()),
        Error::StorageFull(message) => Error::StorageFull(message.clone()),
        other => Error::Internal(format!("the group commit's transaction failed: {other}")),
    }
}

/// A server broken on purpose (cargo feature `fault-ack-before-commit`, never in a real
/// build): it answers the group's writers before their transaction commits, and commits a
/// moment later, so that a crash in between loses changes the devices were told are stored.
/// The fault scenarios (`sync-sim faults --scenario crash`) must catch it.
#[cfg(feature = "fault-ack-before-commit")]
fn ack_before_commit(done: &mut Vec<Box<dyn Done>>) {
    for job in done.drain(..) {
        job.finish(Ok(()));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
}

/// Writers of one lane in the database at once when group commit is off (see
/// `write_grouped`): two, so that one prepares its push while the other holds the change
/// counter, and no crowd of waiters is woken at every commit.
const LANE_WRITERS: usize = 2;

/// One queue of jobs and whether a leader is draining it.
struct Lane {
    state: Mutex<LaneState>,
    /// Bounds the lane's concurrent writers when group commit is off.
    writers: tokio::sync::Semaphore,
}

impl Default for Lane {
    fn default() -> Self {
        Lane { state: Mutex::default(), writers: tokio::sync::Semaphore::new(LANE_WRITERS) }
    }
}

#[derive(Default)]
struct LaneState {
    jobs: VecDeque<Box<dyn Job>>,
    leading: bool,
}

/// The lanes of a database: jobs of one lane commit together; lanes commit independently
/// (PostgreSQL takes several writers at once; SQLite has one lane).
pub(super) struct Groups {
    lanes: Vec<Lane>,
    max_jobs: usize,
    groups: AtomicU64,
    writers: AtomicU64,
}

/// How many group transactions ran, and how many writers they held (see
/// [`Database::group_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub groups: u64,
    pub writers: u64,
}

impl Groups {
    pub(super) fn new(lanes: usize, max_jobs: usize) -> Groups {
        Groups {
            lanes: (0..lanes.max(1)).map(|_| Lane::default()).collect(),
            max_jobs: max_jobs.max(1),
            groups: AtomicU64::new(0),
            writers: AtomicU64::new(0),
        }
    }

    fn lane(&self, key: &str) -> usize {
        // FNV-1a: stable and cheap; the lane only spreads keys, it guards nothing.
        let hash = key
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        usize::try_from(hash % self.lanes.len() as u64).unwrap_or(0)
    }

    /// Queues `job` in `lane`; true when the caller must start a leader there.
    fn enqueue(&self, lane: usize, job: Box<dyn Job>) -> bool {
        let mut state = self.lanes[lane].state.lock().unwrap_or_else(PoisonError::into_inner);
        state.jobs.push_back(job);
        !std::mem::replace(&mut state.leading, true)
    }

    /// The next group of `lane`, or `None` (and the lane leaderless) when its queue is empty.
    fn next_group(&self, lane: usize) -> Option<Vec<Box<dyn Job>>> {
        let mut state = self.lanes[lane].state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.jobs.is_empty() {
            state.leading = false;
            return None;
        }
        let take = state.jobs.len().min(self.max_jobs);
        Some(state.jobs.drain(..take).collect())
    }
}

impl Database {
    /// Group transactions run so far and the writers they held: `writers / groups` is the
    /// mean group size (a figure for benchmarks and `/metrics`).
    pub fn group_stats(&self) -> GroupStats {
        let groups = &self.inner.groups;
        GroupStats {
            groups: groups.groups.load(Ordering::Relaxed),
            writers: groups.writers.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` as [`Database::write_tx`] does, but in a group commit with the concurrent
    /// callers of the same `lane_key` (see the module's docs): `f` runs in a savepoint of a
    /// transaction that other callers' work shares, and its `Ok` is returned only once that
    /// transaction has committed. `f` must leave no effect outside the database that a later
    /// rollback could not undo.
    pub async fn write_grouped<T, F>(&self, lane_key: &str, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let groups = &self.inner.groups;
        if groups.max_jobs <= 1 {
            // Group commit off: a transaction per writer, but at most `LANE_WRITERS` of a
            // lane in the database at once; the rest wait here, not on the change counter.
            let lane = &groups.lanes[groups.lane(lane_key)];
            let _permit = lane
                .writers
                .acquire()
                .await
                .map_err(|_| Error::TaskFailed("the lane's writer limit was closed".into()))?;
            return self.write_tx(f).await;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let lane = groups.lane(lane_key);
        if groups.enqueue(lane, Box::new(Pending { f, reply })) {
            let db = self.clone();
            // The leader's handle is not awaited: its jobs' channels carry every outcome, and
            // a panic drops them, which answers the waiting callers below.
            drop(tokio::task::spawn_blocking(move || db.lead(lane)));
        }
        answer.await.map_err(|_| Error::TaskFailed("the group commit's leader stopped".into()))?
    }

    /// Commits groups of `lane` until its queue is empty.
    fn lead(&self, lane: usize) {
        while let Some(jobs) = self.inner.groups.next_group(lane) {
            // A panicking job (a bug) must not leave the lane with a leader that is gone: its
            // group's callers hear of it through their dropped channels, the lane goes on.
            let group = std::panic::AssertUnwindSafe(|| self.commit_group(jobs));
            if std::panic::catch_unwind(group).is_err() {
                tracing::error!("a group commit panicked; its writers were answered with an error");
            }
        }
    }

    fn commit_group(&self, jobs: Vec<Box<dyn Job>>) {
        let _writer = self.sqlite_writer();
        let mut conn = match self.conn() {
            Ok(conn) => conn,
            Err(error) => {
                for job in jobs {
                    job.fail(replicate(&error));
                }
                return;
            }
        };
        let groups = &self.inner.groups;
        groups.groups.fetch_add(1, Ordering::Relaxed);
        groups.writers.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let mut waiting = Some(jobs);
        let mut done = Vec::new();
        let outcome = transaction(&mut conn, TxMode::Write, |conn| {
            for job in waiting.take().into_iter().flatten() {
                done.extend(job.run(conn));
            }
            #[cfg(feature = "fault-ack-before-commit")]
            ack_before_commit(&mut done);
            Ok(())
        });
        // The transaction did not even begin: no job ran.
        if let (Err(error), Some(jobs)) = (&outcome, waiting) {
            for job in jobs {
                job.fail(replicate(error));
            }
        }
        for job in done {
            job.finish(outcome.as_ref().copied());
        }
    }
}
