//! `StateMachine`: applies the offline reachability rule in strict or permissive mode.

use crate::{StateMachineError, Workflow};

/// How illegal moves between known states are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Refuse them.
    #[default]
    Strict,
    /// Accept them but report them in [`Transition::tolerated`] (legacy imports).
    Permissive,
}

/// An accepted move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The legal steps taken, `from` and `to` included; `[from, to]` for a tolerated move,
    /// empty where the domain has no workflow.
    pub path: Vec<String>,
    /// Set when `Permissive` accepted a move that `Strict` refuses.
    pub tolerated: Option<StateMachineError>,
}

/// Checks status moves under a mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateMachine {
    mode: Mode,
}

impl StateMachine {
    pub const fn new(mode: Mode) -> Self {
        Self { mode }
    }

    pub const fn mode(&self) -> Mode {
        self.mode
    }

    /// A move of an existing record from `from` to `to`: legal when `to` is reachable
    /// through legal steps. A domain without a workflow accepts any move.
    pub fn check(
        &self,
        workflow: Option<&Workflow>,
        from: &str,
        to: &str,
    ) -> Result<Transition, StateMachineError> {
        let Some(workflow) = workflow else {
            return Ok(Transition { path: Vec::new(), tolerated: None });
        };
        match workflow.path(from, to) {
            Ok(path) => {
                Ok(Transition { path: path.into_iter().map(str::to_owned).collect(), tolerated: None })
            }
            Err(err @ StateMachineError::Unreachable { .. }) if self.mode == Mode::Permissive => {
                Ok(Transition { path: vec![from.to_owned(), to.to_owned()], tolerated: Some(err) })
            }
            Err(err) => Err(err),
        }
    }

    /// The status of a new record. Permissive mode tolerates a known non-start state.
    pub fn check_start(
        &self,
        workflow: Option<&Workflow>,
        state: &str,
    ) -> Result<Transition, StateMachineError> {
        let Some(workflow) = workflow else {
            return Ok(Transition { path: Vec::new(), tolerated: None });
        };
        match workflow.check_start(state) {
            Ok(()) => Ok(Transition { path: vec![state.to_owned()], tolerated: None }),
            Err(err @ StateMachineError::InvalidStart { .. }) if self.mode == Mode::Permissive => {
                Ok(Transition { path: vec![state.to_owned()], tolerated: Some(err) })
            }
            Err(err) => Err(err),
        }
    }
}
