//! What a resolution returns: the words for the conflict log, the state, and the details.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::{Policy, RecordState, Resolution, Winner};

/// The outcome of one conflict: enough for the conflict log and the push response.
///
/// `state` borrows the input when one side's state stands as it is, and owns a new state
/// when the sides were merged; [`ResolutionResult::into_owned`] detaches it from the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolutionResult<'a> {
    pub resolution: Resolution,
    pub winner: Winner,
    /// The policy that was applied.
    pub strategy: Policy,
    /// The state that stands: to be stored (unless it is the server's own) and sent back.
    /// For `manual_required` it is the server's state, which stays until an admin decides.
    pub state: Cow<'a, RecordState>,
    pub details: MergeDetails<'a>,
}

impl ResolutionResult<'_> {
    /// The same result, owning its state and details.
    pub fn into_owned(self) -> ResolutionResult<'static> {
        ResolutionResult {
            resolution: self.resolution,
            winner: self.winner,
            strategy: self.strategy,
            state: Cow::Owned(self.state.into_owned()),
            details: self.details.into_owned(),
        }
    }

    /// Whether the stored state must change (the server's state does not stand as it is).
    pub fn changes_server(&self) -> bool {
        matches!(self.winner, Winner::Client | Winner::Merged)
    }
}

/// Which fields came from which side, and why.
///
/// Field names are top-level keys of `data`; a field merged inside a nested object is
/// named by its dotted path (`location.lat`). For a whole-state win (`client_wins`,
/// `server_wins`, `most_recent_wins` and every fallback), the winner's list names the
/// top-level fields on which the two sides differed, the other list is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeDetails<'a> {
    /// Fields whose value is the client's (and differs from the server's).
    pub from_client: Vec<Cow<'a, str>>,
    /// Fields whose value is the server's (and differs from the client's).
    pub from_server: Vec<Cow<'a, str>>,
    /// Fields changed on both sides to different values, settled by most_recent_wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicting: Vec<Cow<'a, str>>,
    /// Fields made of both sides' values (comments united by id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub combined: Vec<Cow<'a, str>>,
    /// Critical fields that `preserve_escalation` kept from moving backwards, i.e. whose
    /// value differs from what the plain field merge gave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preserved: Vec<Cow<'a, str>>,
    /// Why the state is what it is, where a rule other than the policy's plain one decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// For [`Reason::WorkflowViolation`]: the state machine's explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_error: Option<String>,
}

impl MergeDetails<'_> {
    pub fn into_owned(self) -> MergeDetails<'static> {
        fn own(v: Vec<Cow<'_, str>>) -> Vec<Cow<'static, str>> {
            v.into_iter().map(|s| Cow::Owned(s.into_owned())).collect()
        }
        MergeDetails {
            from_client: own(self.from_client),
            from_server: own(self.from_server),
            conflicting: own(self.conflicting),
            combined: own(self.combined),
            preserved: own(self.preserved),
            reason: self.reason,
            workflow_error: self.workflow_error,
        }
    }
}

/// A rule that decided a conflict, written in the details as a snake_case word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// most_recent_wins: one side's `modified_at` is later.
    LaterModifiedAt,
    /// most_recent_wins: equal times, the greater device id won.
    GreaterDeviceId,
    /// most_recent_wins: equal times and devices; the greater content won, so that the
    /// outcome still does not depend on arrival order.
    GreaterContent,
    /// Both sides hold the same content; the stored state stands.
    Identical,
    /// The client's state equals the base: only the server changed.
    ClientUnchanged,
    /// The server's state equals the base: only the client changed.
    ServerUnchanged,
    /// A merge without a base version: most_recent_wins on the whole state.
    NoBase,
    /// A delete against an edit: most_recent_wins on the whole state.
    DeleteVsEdit,
    /// The result would break the domain's workflow: the server's state stands.
    WorkflowViolation,
    /// The policy is `manual` (or auto-resolve is off): an admin decides.
    ManualPolicy,
}
