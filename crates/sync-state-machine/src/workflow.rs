//! The workflow tables of the protocol and the graph questions asked of them.

use std::collections::VecDeque;

use crate::StateMachineError;

/// A domain's workflow: its states, the legal single steps and the start states.
#[derive(Debug, PartialEq, Eq)]
pub struct Workflow {
    name: &'static str,
    start: &'static [&'static str],
    /// Every state with its legal next states; a state with none is terminal.
    steps: &'static [(&'static str, &'static [&'static str])],
}

pub static TASK: Workflow = Workflow {
    name: "task",
    start: &["ASSIGNED"],
    steps: &[
        ("ASSIGNED", &["INPROGRESS", "STANDBY"]),
        ("INPROGRESS", &["COMPLETED", "PARTIALLYCOMPLETED", "STANDBY"]),
        ("PARTIALLYCOMPLETED", &["COMPLETED", "INPROGRESS", "STANDBY"]),
        ("STANDBY", &["ASSIGNED", "INPROGRESS"]),
        ("COMPLETED", &["STANDBY"]),
    ],
};

pub static TICKET: Workflow = Workflow {
    name: "ticket",
    start: &["NEW"],
    steps: &[
        ("NEW", &["OPEN"]),
        ("OPEN", &["INPROGRESS", "ONHOLD", "CANCELLED"]),
        ("INPROGRESS", &["RESOLVED", "ONHOLD", "CANCELLED"]),
        ("ONHOLD", &["INPROGRESS", "CANCELLED"]),
        ("RESOLVED", &["CLOSED", "OPEN"]),
        ("CLOSED", &[]),
        ("CANCELLED", &[]),
    ],
};

pub static ATTENDANCE: Workflow = Workflow {
    name: "attendance",
    start: &["PENDING"],
    steps: &[
        ("PENDING", &["VERIFIED", "REJECTED"]),
        ("VERIFIED", &["CORRECTED"]),
        ("REJECTED", &["PENDING"]),
        ("CORRECTED", &[]),
    ],
};

/// Every built-in workflow.
pub static WORKFLOWS: [&Workflow; 3] = [&TASK, &TICKET, &ATTENDANCE];

/// The workflow named `name` (by convention the domain's name), if there is one.
pub fn workflow(name: &str) -> Option<&'static Workflow> {
    WORKFLOWS.iter().copied().find(|w| w.name == name)
}

impl Workflow {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn states(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.steps.iter().map(|(s, _)| *s)
    }

    pub fn start_states(&self) -> &'static [&'static str] {
        self.start
    }

    /// The canonical spelling of `state`, if it is one of this workflow's.
    pub fn state(&self, state: &str) -> Option<&'static str> {
        self.states().find(|s| *s == state)
    }

    /// The legal next states of `state` (empty for a terminal or unknown state).
    pub fn next(&self, state: &str) -> &'static [&'static str] {
        self.steps.iter().find(|(s, _)| *s == state).map(|(_, next)| *next).unwrap_or(&[])
    }

    pub fn is_terminal(&self, state: &str) -> bool {
        self.state(state).is_some() && self.next(state).is_empty()
    }

    fn known(&self, state: &str) -> Result<&'static str, StateMachineError> {
        self.state(state)
            .ok_or_else(|| StateMachineError::UnknownState { workflow: self.name, state: state.to_owned() })
    }

    /// A new record's status must be a start state.
    pub fn check_start(&self, state: &str) -> Result<(), StateMachineError> {
        self.known(state)?;
        if self.start.contains(&state) {
            Ok(())
        } else {
            Err(StateMachineError::InvalidStart {
                workflow: self.name,
                state: state.to_owned(),
                allowed: self.start,
            })
        }
    }

    /// One legal step (staying put is always legal).
    pub fn check_step(&self, from: &str, to: &str) -> Result<(), StateMachineError> {
        let from = self.known(from)?;
        let to = self.known(to)?;
        if from == to || self.next(from).contains(&to) {
            Ok(())
        } else {
            Err(StateMachineError::IllegalStep {
                workflow: self.name,
                from: from.to_owned(),
                to: to.to_owned(),
            })
        }
    }

    /// The shortest path of legal steps from `from` to `to`, both included (`[from]` when
    /// they are equal); an error when either is unknown or `to` is unreachable.
    pub fn path(&self, from: &str, to: &str) -> Result<Vec<&'static str>, StateMachineError> {
        let from = self.known(from)?;
        let to = self.known(to)?;
        let mut came_from: Vec<(&'static str, &'static str)> = vec![(from, from)];
        let mut queue = VecDeque::from([from]);
        while let Some(state) = queue.pop_front() {
            if state == to {
                let mut path = vec![to];
                let mut cursor = to;
                while cursor != from {
                    cursor = came_from.iter().find(|(s, _)| *s == cursor).map(|(_, p)| *p).unwrap_or(from);
                    path.push(cursor);
                }
                path.reverse();
                return Ok(path);
            }
            for &next in self.next(state) {
                if !came_from.iter().any(|(s, _)| *s == next) {
                    came_from.push((next, state));
                    queue.push_back(next);
                }
            }
        }
        Err(StateMachineError::Unreachable { workflow: self.name, from: from.to_owned(), to: to.to_owned() })
    }

    /// Whether `to` is reachable from `from` through legal steps.
    pub fn reachable(&self, from: &str, to: &str) -> bool {
        self.path(from, to).is_ok()
    }
}
