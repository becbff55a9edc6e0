//! Conflict policies, three-way field merge, preserve_escalation, policy registry, clock skew. Sans-IO.
#![doc = include_str!("../README.md")]

mod error;
mod escalation;
mod merge;
mod registry;
mod resolve;
mod result;
mod skew;
mod state;
mod vocab;

pub use error::ConflictError;
pub use registry::{
    EffectivePolicy, PolicyRegistry, PolicySource, TenantPolicy, default_policy, effective_policy,
};
pub use resolve::resolve;
pub use result::{MergeDetails, Reason, ResolutionResult};
pub use skew::{DEFAULT_MAX_CLOCK_SKEW, SkewCorrection, correct_clock_skew};
pub use state::{ConflictInput, CriticalFields, RecordState};
pub use vocab::{ConflictStatus, Policy, Resolution, Winner};
