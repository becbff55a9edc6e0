//! Integration tests of sync-state-machine: the protocol's tables and the graph laws.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use sync_model::SyncStatus;
use sync_state_machine::{
    ATTENDANCE, Mode, StateMachine, StateMachineError, TASK, TICKET, WORKFLOWS, Workflow, sync_status_next,
    sync_status_step, workflow,
};

/// Reachability by a naive fixpoint over the single-step relation, independent of `path`.
fn closure(w: &Workflow, from: &str) -> BTreeSet<&'static str> {
    let mut seen: BTreeSet<&'static str> = w.state(from).into_iter().collect();
    loop {
        let next: BTreeSet<&'static str> =
            seen.iter().flat_map(|s| w.next(s).iter().copied()).chain(seen.iter().copied()).collect();
        if next == seen {
            return seen;
        }
        seen = next;
    }
}

fn workflow_and_two_states() -> impl Strategy<Value = (&'static Workflow, &'static str, &'static str)> {
    prop::sample::select(WORKFLOWS.to_vec()).prop_flat_map(|w| {
        let states: Vec<&'static str> = w.states().collect();
        (Just(w), prop::sample::select(states.clone()), prop::sample::select(states))
    })
}

proptest! {
    #[test]
    fn reachable_exactly_when_a_legal_path_exists((w, from, to) in workflow_and_two_states()) {
        prop_assert_eq!(w.reachable(from, to), closure(w, from).contains(to));
    }

    #[test]
    fn returned_paths_are_made_of_legal_steps((w, from, to) in workflow_and_two_states()) {
        if let Ok(path) = w.path(from, to) {
            prop_assert_eq!(path.first().copied(), Some(from));
            prop_assert_eq!(path.last().copied(), Some(to));
            for step in path.windows(2) {
                prop_assert!(w.next(step[0]).contains(&step[1]), "{} -> {}", step[0], step[1]);
            }
        }
    }

    #[test]
    fn terminal_states_reach_nothing_else((w, from, to) in workflow_and_two_states()) {
        if w.is_terminal(from) && from != to {
            prop_assert!(!w.reachable(from, to));
            prop_assert!(StateMachine::new(Mode::Strict).check(Some(w), from, to).is_err());
        }
    }

    #[test]
    fn permissive_accepts_what_strict_accepts_and_reports_the_rest((w, from, to) in workflow_and_two_states()) {
        let strict = StateMachine::new(Mode::Strict).check(Some(w), from, to);
        let permissive = StateMachine::new(Mode::Permissive).check(Some(w), from, to).unwrap();
        match strict {
            Ok(t) => prop_assert_eq!(permissive, t),
            Err(err) => prop_assert_eq!(permissive.tolerated, Some(err)),
        }
    }

    #[test]
    fn sync_status_step_agrees_with_the_table(from in prop::sample::select(SyncStatus::ALL.to_vec()),
                                              to in prop::sample::select(SyncStatus::ALL.to_vec())) {
        prop_assert_eq!(sync_status_step(from, to).is_ok(), from == to || sync_status_next(from).contains(&to));
    }
}

#[test]
fn the_protocols_tables() {
    assert_eq!(TASK.next("ASSIGNED"), ["INPROGRESS", "STANDBY"]);
    assert_eq!(TASK.next("COMPLETED"), ["STANDBY"]);
    assert_eq!(TICKET.next("RESOLVED"), ["CLOSED", "OPEN"]);
    assert!(TICKET.is_terminal("CLOSED") && TICKET.is_terminal("CANCELLED"));
    assert_eq!(ATTENDANCE.next("REJECTED"), ["PENDING"]);
    assert_eq!(TASK.start_states(), ["ASSIGNED"]);
    assert_eq!(TICKET.start_states(), ["NEW"]);
    assert_eq!(ATTENDANCE.start_states(), ["PENDING"]);
    assert_eq!(workflow("ticket"), Some(&TICKET));
    assert_eq!(workflow("journal"), None);
}

#[test]
fn single_steps_and_offline_paths() {
    assert!(TASK.check_step("ASSIGNED", "INPROGRESS").is_ok());
    assert!(TASK.check_step("ASSIGNED", "ASSIGNED").is_ok());
    assert_eq!(
        TASK.check_step("ASSIGNED", "COMPLETED"),
        Err(StateMachineError::IllegalStep {
            workflow: "task",
            from: "ASSIGNED".into(),
            to: "COMPLETED".into()
        })
    );
    // Offline, the technician started and finished the task: legal through INPROGRESS.
    assert_eq!(TASK.path("ASSIGNED", "COMPLETED").unwrap(), ["ASSIGNED", "INPROGRESS", "COMPLETED"]);
    assert_eq!(
        ATTENDANCE.path("REJECTED", "CORRECTED").unwrap(),
        ["REJECTED", "PENDING", "VERIFIED", "CORRECTED"]
    );
    assert!(!ATTENDANCE.reachable("CORRECTED", "PENDING"));
}

#[test]
fn errors_name_the_illegal_move() {
    let machine = StateMachine::new(Mode::Strict);
    let err = machine.check(Some(&TICKET), "CANCELLED", "OPEN").unwrap_err();
    assert_eq!(err.to_string(), "ticket: CANCELLED cannot reach OPEN through legal steps");
    assert_eq!(err.code(), "invalid_transition");
    let err = machine.check(Some(&TICKET), "OPEN", "DONE").unwrap_err();
    assert_eq!(err.to_string(), "ticket: unknown status `DONE`");
    let err = machine.check_start(Some(&TASK), "COMPLETED").unwrap_err();
    assert_eq!(err.to_string(), "task: a new record cannot start in COMPLETED (allowed: ASSIGNED)");
    // Unknown states are refused even in permissive mode.
    assert!(StateMachine::new(Mode::Permissive).check(Some(&TICKET), "OPEN", "DONE").is_err());
    assert!(
        StateMachine::new(Mode::Permissive)
            .check_start(Some(&TASK), "COMPLETED")
            .unwrap()
            .tolerated
            .is_some()
    );
}

#[test]
fn domains_without_a_workflow_accept_any_status() {
    let machine = StateMachine::new(Mode::Strict);
    assert!(machine.check(None, "whatever", "anything").unwrap().path.is_empty());
    assert!(machine.check_start(None, "anything").is_ok());
}

#[test]
fn sync_status_lifecycle() {
    assert!(sync_status_step(SyncStatus::Synced, SyncStatus::PendingSync).is_ok());
    assert!(sync_status_step(SyncStatus::PendingSync, SyncStatus::Conflict).is_ok());
    assert!(sync_status_step(SyncStatus::Conflict, SyncStatus::Synced).is_ok());
    assert_eq!(
        sync_status_step(SyncStatus::Synced, SyncStatus::Conflict).unwrap_err().to_string(),
        "sync status synced → conflict is not a legal step"
    );
}
