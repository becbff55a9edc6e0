//! Workflow transition tables per domain and the sync-status lifecycle. Sans-IO.
#![doc = include_str!("../README.md")]

mod error;
mod lifecycle;
mod machine;
mod workflow;

pub use error::StateMachineError;
pub use lifecycle::{sync_status_next, sync_status_step};
pub use machine::{Mode, StateMachine, Transition};
pub use workflow::{ATTENDANCE, TASK, TICKET, WORKFLOWS, Workflow, workflow};
