//! The invariants checked at the end of every scenario.
//!
//! - `converged`: every device that pulled to the end holds exactly the server's state of
//!   its unit.
//! - `acknowledged_in_history`: every change acknowledged as applied, client_won or merged is
//!   in the server's history at the acknowledged version, with the acknowledged state.
//! - `no_duplicate_versions`: every version in the server's history was acknowledged to some
//!   device: none was made by a retry applying twice, and none is missing.
//! - `conflicts_logged`: the conflict log holds exactly the conflicts the devices were told
//!   of, each for the record it was reported on.
//! - `protocol`: every retry of an idempotency key got the first answer byte for byte, no
//!   request was refused or failed with a 5xx other than 503, and every device drained.
//!
//! With the server's database the history invariants read the history itself; over HTTP alone
//! they are checked against the final state (a weaker check, and the report says so).

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use sync_client::RecordId;
use sync_protocol::ConflictView;
use sync_protocol::Outcome;
use uuid::Uuid;

use crate::db::{ConflictRow, VersionRow};
use crate::device::{Ack, Held};

/// Most conflicts the HTTP conflict list returns in one call.
pub const HTTP_CONFLICT_LIMIT: u32 = 500;

/// Failures listed per invariant (the count is always complete).
const LISTED_FAILURES: usize = 10;

/// A record as the server holds it now.
#[derive(Debug, Clone)]
pub struct ServerRecord {
    pub held: Held,
    pub bu: Option<String>,
}

/// A logged conflict: its id and record.
#[derive(Debug, Clone)]
struct Logged {
    id: String,
    domain: String,
    mobile_id: String,
}

/// What the server holds for the tenant.
#[derive(Debug)]
pub struct ServerView {
    state: HashMap<RecordId, ServerRecord>,
    /// Every version in the history, when read from the database.
    history: Option<HashMap<(RecordId, i64), Held>>,
    conflicts: Vec<Logged>,
    /// Whether `conflicts` is the whole log (the HTTP list stops at a limit).
    conflicts_complete: bool,
}

impl ServerView {
    /// Every record a device of `unit` may see, at the server's version.
    pub fn visible_versions(&self, unit: &str) -> Vec<(RecordId, i64)> {
        self.state
            .iter()
            .filter(|(_, r)| r.bu.as_deref().is_none_or(|bu| bu == unit))
            .map(|(id, r)| (id.clone(), r.held.version))
            .collect()
    }

    /// From the final state and the database's history and conflict log.
    pub fn with_database(
        state: HashMap<RecordId, ServerRecord>,
        history: Vec<VersionRow>,
        conflicts: Vec<ConflictRow>,
    ) -> Self {
        let history = history
            .into_iter()
            .filter_map(|row| {
                let id = Uuid::parse_str(&row.mobile_id).ok()?;
                let data = serde_json::from_str(&row.data).unwrap_or_default();
                Some((
                    (RecordId::new(row.domain, id), row.version),
                    Held { version: row.version, data, deleted: row.deleted },
                ))
            })
            .collect();
        let conflicts = conflicts
            .into_iter()
            .map(|c| Logged { id: c.id, domain: c.domain, mobile_id: c.mobile_id })
            .collect();
        ServerView { state, history: Some(history), conflicts, conflicts_complete: true }
    }

    /// From the final state and the conflict list over HTTP.
    pub fn over_http(state: HashMap<RecordId, ServerRecord>, conflicts: Vec<ConflictView>) -> Self {
        let conflicts_complete = conflicts.len() < HTTP_CONFLICT_LIMIT as usize;
        let conflicts = conflicts
            .into_iter()
            .map(|c| Logged { id: c.id, domain: c.domain, mobile_id: c.mobile_id })
            .collect();
        ServerView { state, history: None, conflicts, conflicts_complete }
    }

    /// Records the server holds.
    pub fn records(&self) -> usize {
        self.state.len()
    }
}

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    pub name: &'static str,
    pub passed: bool,
    /// How many things were checked.
    pub checked: u64,
    pub failure_count: u64,
    /// The first failures.
    pub failures: Vec<String>,
    /// How it was checked, where that matters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Invariant {
    /// A passing invariant with nothing checked yet.
    pub fn new(name: &'static str) -> Self {
        Invariant { name, passed: true, checked: 0, failure_count: 0, failures: Vec::new(), note: None }
    }

    /// Records a failure (listed while there are fewer than ten).
    pub fn fail(&mut self, message: impl FnOnce() -> String) {
        self.passed = false;
        self.failure_count += 1;
        if self.failures.len() < LISTED_FAILURES {
            self.failures.push(message());
        }
    }
}

/// Writes `invariants` as lines of a terminal table: the verdict, the name, how much was
/// checked and any note, then the failures listed.
pub fn write_table<'a>(out: &mut String, invariants: impl IntoIterator<Item = &'a Invariant>) {
    use std::fmt::Write as _;
    for inv in invariants {
        let verdict = if inv.passed { "ok  " } else { "FAIL" };
        let note = inv.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        let _ = writeln!(out, "  {verdict} {:<26} {} checked{note}", inv.name, inv.checked);
        for failure in &inv.failures {
            let _ = writeln!(out, "         - {failure}");
        }
        if inv.failure_count > inv.failures.len() as u64 {
            let _ = writeln!(out, "         … and {} more", inv.failure_count - inv.failures.len() as u64);
        }
    }
}

/// A device's final holdings: `(device id, unit, replica)`.
pub type Holdings<'a> = (&'a str, &'a str, &'a HashMap<RecordId, Held>);

/// Checks every invariant.
pub fn check(
    fleet: &[Holdings<'_>],
    acks: &[Ack],
    violations: &[String],
    server: &ServerView,
) -> Vec<Invariant> {
    vec![
        converged(fleet, server),
        acknowledged_in_history(acks, server),
        no_duplicate_versions(acks, server),
        conflicts_logged(acks, server),
        protocol(violations, fleet.len()),
    ]
}

fn show(id: &RecordId) -> String {
    id.to_string()
}

fn converged(fleet: &[Holdings<'_>], server: &ServerView) -> Invariant {
    let mut inv = Invariant::new("converged");
    for (device, unit, replica) in fleet {
        inv.checked += 1;
        let visible = |record: &ServerRecord| record.bu.as_deref().is_none_or(|bu| bu == *unit);
        let mut expected = 0;
        for (id, record) in server.state.iter().filter(|(_, r)| visible(r)) {
            expected += 1;
            match replica.get(id) {
                None => inv.fail(|| format!("{device} lacks {} (server v{})", show(id), record.held.version)),
                Some(held) if !held.same_state(&record.held) => inv.fail(|| {
                    format!(
                        "{device} holds {} v{}, unlike the server's v{}",
                        show(id),
                        held.version,
                        record.held.version
                    )
                }),
                Some(_) => {}
            }
        }
        if replica.len() != expected {
            for id in replica.keys().filter(|id| !server.state.get(*id).is_some_and(&visible)) {
                inv.fail(|| format!("{device} holds {}, which the server does not show it", show(id)));
            }
        }
    }
    inv
}

/// The state an acknowledgement says the server stored, and its version; `None` for outcomes
/// that store nothing of the device's.
fn acknowledged_state(ack: &Ack) -> Option<Held> {
    let version = ack.result.version?;
    match ack.result.outcome {
        Outcome::Applied | Outcome::ClientWon => Some(Held {
            version,
            data: ack.wanted.clone().unwrap_or_default(),
            deleted: ack.wanted.is_none(),
        }),
        Outcome::Merged => {
            let record = ack.result.record.as_ref()?;
            Some(Held { version, data: record.data.clone().unwrap_or_default(), deleted: record.deleted })
        }
        _ => None,
    }
}

fn acknowledged_in_history(acks: &[Ack], server: &ServerView) -> Invariant {
    let mut inv = Invariant::new("acknowledged_in_history");
    for ack in acks {
        let Some(state) = acknowledged_state(ack) else { continue };
        inv.checked += 1;
        let id = &ack.record;
        let who = || format!("{} ({}, {})", show(id), ack.device, ack.idempotency_key);
        match &server.history {
            Some(history) => match history.get(&(id.clone(), state.version)) {
                None => {
                    inv.fail(|| format!("{}: acknowledged v{} is not in the history", who(), state.version))
                }
                Some(stored) if !stored.same_state(&state) => inv.fail(|| {
                    format!("{}: v{} in the history differs from what was acknowledged", who(), state.version)
                }),
                Some(_) => {}
            },
            None => match server.state.get(id) {
                None => inv.fail(|| {
                    format!("{}: acknowledged v{} but the server has no such record", who(), state.version)
                }),
                Some(now) if now.held.version < state.version => inv.fail(|| {
                    format!(
                        "{}: acknowledged v{} but the server is at v{}",
                        who(),
                        state.version,
                        now.held.version
                    )
                }),
                Some(now) if now.held.version == state.version && !now.held.same_state(&state) => {
                    inv.fail(|| format!("{}: v{} differs from what was acknowledged", who(), state.version))
                }
                Some(_) => {}
            },
        }
    }
    if server.history.is_none() {
        inv.note = Some("no database access: checked against the final state only".into());
    }
    inv
}

fn no_duplicate_versions(acks: &[Ack], server: &ServerView) -> Invariant {
    let mut inv = Invariant::new("no_duplicate_versions");
    let mut acknowledged: HashMap<&RecordId, BTreeSet<i64>> = HashMap::new();
    for ack in acks {
        if let Some(state) = acknowledged_state(ack) {
            acknowledged.entry(&ack.record).or_default().insert(state.version);
        }
    }
    let empty = BTreeSet::new();
    match &server.history {
        Some(history) => {
            let mut made: HashMap<&RecordId, BTreeSet<i64>> = HashMap::new();
            for (id, version) in history.keys() {
                made.entry(id).or_default().insert(*version);
            }
            for (id, versions) in &made {
                inv.checked += 1;
                let acked = acknowledged.get(id).unwrap_or(&empty);
                if let Some(orphan) = versions.difference(acked).next() {
                    inv.fail(|| {
                        format!("{}: v{orphan} is in the history but no device was told of it", show(id))
                    });
                }
                let last = versions.last().copied().unwrap_or(0);
                if versions.len() as i64 != last || versions.first() != Some(&1) {
                    inv.fail(|| {
                        format!("{}: versions are not 1..={last} without gaps: {versions:?}", show(id))
                    });
                }
                if server.state.get(*id).is_some_and(|r| r.held.version != last) {
                    inv.fail(|| format!("{}: the pulled version is not the last in the history", show(id)));
                }
            }
        }
        None => {
            inv.note = Some("no database access: versions counted against the final state".into());
            for (id, record) in &server.state {
                inv.checked += 1;
                let acked = acknowledged.get(id).unwrap_or(&empty);
                if acked.len() as i64 != record.held.version {
                    inv.fail(|| {
                        format!(
                            "{} is at v{} but {} versions were acknowledged",
                            show(id),
                            record.held.version,
                            acked.len()
                        )
                    });
                }
            }
        }
    }
    inv
}

fn conflicts_logged(acks: &[Ack], server: &ServerView) -> Invariant {
    let mut inv = Invariant::new("conflicts_logged");
    let mut seen: HashMap<String, &RecordId> = HashMap::new();
    for ack in acks {
        if let Some(conflict) = &ack.result.conflict {
            seen.insert(conflict.id.to_string(), &ack.record);
        }
    }
    let logged: HashMap<&str, &Logged> = server.conflicts.iter().map(|c| (c.id.as_str(), c)).collect();
    for (id, record) in &seen {
        inv.checked += 1;
        match logged.get(id.as_str()) {
            None if server.conflicts_complete => inv.fail(|| {
                format!("conflict {id} on {} was reported to a device but is not logged", show(record))
            }),
            None => {}
            Some(c) if c.domain != record.domain || c.mobile_id != record.mobile_id.to_string() => {
                inv.fail(|| {
                    format!(
                        "conflict {id} is logged for {}/{}, reported for {}",
                        c.domain,
                        c.mobile_id,
                        show(record)
                    )
                })
            }
            Some(_) => {}
        }
    }
    for conflict in &server.conflicts {
        if !seen.contains_key(&conflict.id) {
            inv.fail(|| format!("conflict {} is logged but no device was told of it", conflict.id));
        }
    }
    if !server.conflicts_complete {
        inv.note = Some(format!(
            "no database access and over {HTTP_CONFLICT_LIMIT} conflicts: checked the newest only"
        ));
    }
    inv
}

fn protocol(violations: &[String], devices: usize) -> Invariant {
    let mut inv = Invariant::new("protocol");
    inv.checked = devices as u64;
    for violation in violations {
        inv.fail(|| violation.clone());
    }
    inv
}

/// Live fleets: every change the server acknowledged before the drain reached every device
/// that may see it through its live stream alone. `misses` are `(device, missing changes,
/// an example)`, `checked` the (device, record) pairs checked.
pub fn live_delivery(checked: u64, misses: &[(String, usize, String)]) -> Invariant {
    let mut inv = Invariant::new("live_delivery");
    inv.checked = checked;
    for (device, missing, example) in misses {
        inv.fail(|| {
            format!(
                "{device}: its live stream did not bring {missing} acknowledged change(s), e.g. {example}"
            )
        });
    }
    inv
}
