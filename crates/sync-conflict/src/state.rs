//! What a conflict is made of: record states, the domain's critical fields, the input.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sync_state_machine::Workflow;
use time::OffsetDateTime;

use crate::ConflictError;

/// One state of a record: its data, whether it is a tombstone, and who wrote it when.
///
/// A tombstone is a state like any other: a delete against an edit is a conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordState {
    /// The domain's fields.
    pub data: Map<String, Value>,
    /// Set for a tombstone.
    #[serde(default)]
    pub deleted: bool,
    /// Device time of the change, skew-corrected (see [`crate::correct_clock_skew`]).
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    /// The device that made the change.
    pub device_id: String,
}

impl RecordState {
    /// A live state.
    pub fn new(data: Map<String, Value>, modified_at: OffsetDateTime, device_id: impl Into<String>) -> Self {
        Self { data, deleted: false, modified_at, device_id: device_id.into() }
    }

    /// A live state from a JSON value, which must be an object.
    pub fn from_json(
        data: Value,
        modified_at: OffsetDateTime,
        device_id: impl Into<String>,
    ) -> Result<Self, ConflictError> {
        match data {
            Value::Object(data) => Ok(Self::new(data, modified_at, device_id)),
            other => Err(ConflictError::DataNotAnObject { found: json_kind(&other) }),
        }
    }

    /// A tombstone. Its data is kept as given (often the last live data, or empty).
    pub fn tombstone(
        data: Map<String, Value>,
        modified_at: OffsetDateTime,
        device_id: impl Into<String>,
    ) -> Self {
        Self { data, deleted: true, modified_at, device_id: device_id.into() }
    }

    /// Whether two states say the same thing, whoever wrote them and when: both tombstones
    /// (whatever data they carry), or both live with equal data.
    pub fn same_content(&self, other: &RecordState) -> bool {
        self.deleted == other.deleted && (self.deleted || self.data == other.data)
    }
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Where a domain keeps the fields that `preserve_escalation` never lets move backwards,
/// and its workflow status. Fields a record does not have are simply left alone, so the
/// ticket layout ([`CriticalFields::TICKET`], the default) is harmless for other domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriticalFields<'f> {
    /// The workflow status field (checked against the workflow, and terminal states stand).
    pub status: &'f str,
    /// Statuses that stand once either side has reached them (compared ASCII
    /// case-insensitively).
    pub terminal_statuses: &'f [&'f str],
    /// An integer level that only goes up.
    pub escalation_level: &'f str,
    /// Fields that travel with the higher escalation level.
    pub escalation_companions: &'f [&'f str],
    /// The priority field, ranked by `priority_order`.
    pub priority: &'f str,
    /// Priority words from least to most urgent (compared ASCII case-insensitively).
    pub priority_order: &'f [&'f str],
    /// An array of `{id, at, …}` objects that is united by `id` and ordered by `at`.
    pub comments: &'f str,
    /// The id field of a comment.
    pub comment_id: &'f str,
    /// The time field of a comment (RFC 3339).
    pub comment_at: &'f str,
}

impl CriticalFields<'static> {
    /// The ticket's critical fields (PROTOCOL.md 3 and 4.2).
    pub const TICKET: CriticalFields<'static> = CriticalFields {
        status: "status",
        terminal_statuses: &["CLOSED", "CANCELLED"],
        escalation_level: "escalation_level",
        escalation_companions: &["escalated_at", "escalated_by"],
        priority: "priority",
        priority_order: &["LOW", "MEDIUM", "HIGH", "CRITICAL"],
        comments: "comments",
        comment_id: "id",
        comment_at: "at",
    };
}

impl Default for CriticalFields<'static> {
    fn default() -> Self {
        Self::TICKET
    }
}

/// One conflicting change, as the sync engine hands it over. Everything is borrowed.
#[derive(Debug, Clone, Copy)]
pub struct ConflictInput<'a> {
    /// The version the client edited; `None` when unknown or already purged.
    pub base: Option<&'a RecordState>,
    /// The stored latest state.
    pub server: &'a RecordState,
    /// The incoming state (a patch already applied to the base by the engine).
    pub client: &'a RecordState,
    /// The domain's workflow; a result that is not the server's state must reach its status
    /// from the server's status through legal steps.
    pub workflow: Option<&'a Workflow>,
    /// Where the critical fields live (defaults to the ticket's).
    pub critical: &'a CriticalFields<'a>,
}

impl<'a> ConflictInput<'a> {
    /// A conflict without base, workflow, and with the ticket's critical fields.
    pub fn new(server: &'a RecordState, client: &'a RecordState) -> Self {
        Self { base: None, server, client, workflow: None, critical: &CriticalFields::TICKET }
    }

    #[must_use]
    pub fn with_base(mut self, base: Option<&'a RecordState>) -> Self {
        self.base = base;
        self
    }

    #[must_use]
    pub fn with_workflow(mut self, workflow: Option<&'a Workflow>) -> Self {
        self.workflow = workflow;
        self
    }

    #[must_use]
    pub fn with_critical_fields(mut self, critical: &'a CriticalFields<'a>) -> Self {
        self.critical = critical;
        self
    }
}
