//! The decision for one change of a push: validate it, detect a conflict, resolve it, and say
//! what to write. Pure: the push shell loads what it needs and writes what this returns.

use serde_json::Value;
use sync_bandwidth::{self as delta, JsonPatch};
use sync_conflict::{
    ConflictInput, CriticalFields, EffectivePolicy, Policy, RecordState, Resolution, Winner,
};
use sync_model::Priority;
use sync_state_machine::{Mode, StateMachine, Workflow};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    domains::{DomainSyncService, MAX_DATA_BYTES},
    protocol::{Change, ItemError, Op, Outcome},
};

/// The latest state of a record, as the engine sees it during a push.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Current {
    pub version: i64,
    pub state: RecordState,
    pub bu: Option<String>,
    pub priority: Priority,
}

/// A new version to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewVersion {
    pub version: i64,
    pub state: RecordState,
    pub bu: Option<String>,
    pub priority: Priority,
}

/// A conflict to log (and, when pending, to queue for an admin).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConflictEntry {
    pub id: Uuid,
    pub strategy: Policy,
    pub resolution: Resolution,
    pub winner: Winner,
    pub details: Value,
    pub server_version: i64,
    pub client_base_version: i64,
    /// The version the resolution wrote, if any.
    pub result_version: Option<i64>,
    pub client_state: RecordState,
    pub server_state: RecordState,
}

/// What to do with one change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    pub outcome: Outcome,
    pub version: Option<i64>,
    pub write: Option<NewVersion>,
    pub conflict: Option<ConflictEntry>,
    pub error: Option<ItemError>,
    /// Whether the response carries the record as it now stands.
    pub return_record: bool,
}

impl Decision {
    fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Invalid,
            version: None,
            write: None,
            conflict: None,
            error: Some(ItemError { code: code.to_owned(), message: message.into() }),
            return_record: false,
        }
    }

    fn rejected(error: ItemError) -> Self {
        Self { error: Some(error), ..Self::invalid("", "") }
    }

    fn unchanged(outcome: Outcome, version: i64, return_record: bool) -> Self {
        Self { outcome, version: Some(version), write: None, conflict: None, error: None, return_record }
    }

    fn written(outcome: Outcome, write: NewVersion, return_record: bool) -> Self {
        Self {
            outcome,
            version: Some(write.version),
            write: Some(write),
            conflict: None,
            error: None,
            return_record,
        }
    }
}

/// Everything one decision reads.
pub(crate) struct ChangeContext<'a> {
    pub change: &'a Change,
    pub service: &'a dyn DomainSyncService,
    pub current: Option<&'a Current>,
    /// The state of this record at a past version, if still kept.
    pub version_state: &'a dyn Fn(i64) -> Option<RecordState>,
    pub policy: EffectivePolicy,
    pub device_id: &'a str,
    /// The change's `modified_at`, skew-corrected.
    pub modified_at: OffsetDateTime,
    /// The units the user may write; `None` for all.
    pub units: Option<&'a [String]>,
}

fn status_of(state: &RecordState) -> Option<&str> {
    if state.deleted { None } else { state.data.get("status").and_then(Value::as_str) }
}

/// Checks that `to` may follow `from` in the workflow (a tombstone or a missing status
/// checks nothing), with the offline reachability rule.
fn check_move(workflow: Option<&Workflow>, from: &RecordState, to: &RecordState) -> Result<(), ItemError> {
    let (Some(from), Some(to)) = (status_of(from), status_of(to)) else { return Ok(()) };
    StateMachine::new(Mode::Strict)
        .check(workflow, from, to)
        .map(drop)
        .map_err(|err| ItemError { code: err.code().to_owned(), message: err.to_string() })
}

fn in_units(units: Option<&[String]>, bu: Option<&str>) -> bool {
    match (units, bu) {
        (None, _) | (Some(_), None) => true,
        (Some(units), Some(bu)) => units.iter().any(|u| u == bu),
    }
}

pub(crate) fn decide(ctx: &ChangeContext<'_>) -> Decision {
    let change = ctx.change;
    let current = ctx.current;
    if change.base_version < 0 {
        return Decision::invalid("validation", "base_version: must not be negative");
    }

    // Unit scoping: a record in a unit the user cannot write behaves as one it may not touch.
    let bu = change.bu.clone().or_else(|| current.and_then(|c| c.bu.clone()));
    let bu = match (bu, ctx.units) {
        (None, Some([only])) => Some(only.clone()),
        (bu, _) => bu,
    };
    if !in_units(ctx.units, current.and_then(|c| c.bu.as_deref())) || !in_units(ctx.units, bu.as_deref()) {
        return Decision::invalid(
            "forbidden_unit",
            "the record belongs to a business unit this user cannot write",
        );
    }
    let priority = change.priority.or_else(|| current.map(|c| c.priority)).unwrap_or_default();

    // The state the client wants.
    let client = match client_state(ctx) {
        Ok(state) => state,
        Err(decision) => return *decision,
    };
    if !client.deleted {
        let size = delta::serialized_len(&client.data);
        if size > MAX_DATA_BYTES {
            return Decision::invalid(
                "validation",
                format!("data: must be at most {MAX_DATA_BYTES} bytes serialised (got {size})"),
            );
        }
        if let Err(errors) = ctx.service.validate(&client.data) {
            return Decision::invalid("validation", errors.to_string());
        }
    }
    let workflow = ctx.service.workflow();

    let Some(current) = current else {
        // A new record (or one this tenant has never seen: another tenant's id behaves as absent).
        if let (Some(workflow), Some(status)) = (workflow, status_of(&client))
            && let Err(err) = StateMachine::new(Mode::Strict).check_start(Some(workflow), status)
        {
            return Decision::invalid(err.code(), err.to_string());
        }
        return Decision::written(
            Outcome::Applied,
            NewVersion { version: 1, state: client, bu, priority },
            false,
        );
    };

    let write =
        |state: RecordState| NewVersion { version: current.version + 1, state, bu: bu.clone(), priority };

    // Repeating the stored state is not a change, whatever version the client based it on.
    if client.same_content(&current.state) && bu == current.bu && priority == current.priority {
        return Decision::unchanged(Outcome::Applied, current.version, false);
    }

    if change.base_version == current.version {
        if let Err(err) = check_move(workflow, &current.state, &client) {
            return Decision::rejected(err);
        }
        return Decision::written(Outcome::Applied, write(client), false);
    }

    // A conflict: the stored version is not the one the client edited.
    let base = (change.base_version > 0).then(|| (ctx.version_state)(change.base_version)).flatten();
    let policy = if ctx.policy.auto_resolve { ctx.policy.policy } else { Policy::Manual };
    let critical = CriticalFields::TICKET;
    let input = ConflictInput::new(&current.state, &client)
        .with_base(base.as_ref())
        .with_workflow(workflow)
        .with_critical_fields(&critical);
    let result = sync_conflict::resolve(policy, &input);
    let details = serde_json::to_value(&result.details).unwrap_or(Value::Null);
    let mut entry = ConflictEntry {
        id: Uuid::now_v7(),
        strategy: result.strategy,
        resolution: result.resolution,
        winner: result.winner,
        details,
        server_version: current.version,
        client_base_version: change.base_version,
        result_version: None,
        client_state: client.clone(),
        server_state: current.state.clone(),
    };

    let mut decision = match (result.resolution, result.winner) {
        (Resolution::Resolved, Winner::Client | Winner::Merged) => {
            // sync-conflict never returns a state that breaks the workflow it was given: such
            // a result falls back to the server's state (reason `workflow_violation`).
            let state = result.state.into_owned();
            if state.same_content(&current.state) {
                let outcome =
                    if result.winner == Winner::Merged { Outcome::Merged } else { Outcome::ClientWon };
                Decision::unchanged(outcome, current.version, true)
            } else {
                let merged = result.winner == Winner::Merged;
                let outcome = if merged { Outcome::Merged } else { Outcome::ClientWon };
                entry.result_version = Some(current.version + 1);
                Decision::written(outcome, write(state), merged)
            }
        }
        (Resolution::Resolved, _) => Decision::unchanged(Outcome::ServerWon, current.version, true),
        (Resolution::ManualRequired, _) => {
            Decision::unchanged(Outcome::ManualRequired, current.version, false)
        }
        (Resolution::Failed, _) => {
            Decision::invalid("conflict_failed", "the conflict could not be resolved; pull and retry")
        }
    };
    decision.conflict = Some(entry);
    decision
}

/// The client's intended state: the upsert's data, the patch applied to its base, or a
/// tombstone. An `Err` is the `invalid` decision to return.
fn client_state(ctx: &ChangeContext<'_>) -> Result<RecordState, Box<Decision>> {
    let change = ctx.change;
    let invalid = |code: &str, message: String| Box::new(Decision::invalid(code, message));
    match change.op {
        Op::Upsert => {
            if change.patch.is_some() {
                return Err(invalid("validation", "patch: not allowed with op upsert".into()));
            }
            match &change.data {
                Some(Value::Object(data)) => {
                    Ok(RecordState::new(data.clone(), ctx.modified_at, ctx.device_id))
                }
                Some(_) => Err(invalid("validation", "data: must be a JSON object".into())),
                None => Err(invalid("validation", "data: is required for op upsert".into())),
            }
        }
        Op::Patch => {
            if change.data.is_some() {
                return Err(invalid("validation", "data: not allowed with op patch".into()));
            }
            let Some(patch) = &change.patch else {
                return Err(invalid("validation", "patch: is required for op patch".into()));
            };
            let patch = JsonPatch::from_value(patch.clone())
                .map_err(|err| invalid("invalid_patch", format!("patch: {err}")))?;
            let Some(current) = ctx.current else {
                return Err(invalid("not_found", "no record to patch; push it with op upsert".into()));
            };
            let base = if change.base_version == current.version {
                Some(current.state.clone())
            } else {
                (ctx.version_state)(change.base_version)
            };
            let Some(base) = base.filter(|b| !b.deleted) else {
                return Err(invalid(
                    "base_unavailable",
                    format!(
                        "version {} of this record is not kept (or is a tombstone); pull and push an upsert",
                        change.base_version
                    ),
                ));
            };
            let mut doc = Value::Object(base.data);
            delta::apply(&mut doc, &patch)
                .map_err(|err| invalid("invalid_patch", format!("patch: {err}")))?;
            match doc {
                Value::Object(data) => Ok(RecordState::new(data, ctx.modified_at, ctx.device_id)),
                _ => Err(invalid("invalid_patch", "patch: the result must be a JSON object".into())),
            }
        }
        Op::Delete => {
            if change.data.is_some() || change.patch.is_some() {
                return Err(invalid("validation", "data and patch: not allowed with op delete".into()));
            }
            let data = ctx.current.map(|c| c.state.data.clone()).unwrap_or_default();
            Ok(RecordState::tombstone(data, ctx.modified_at, ctx.device_id))
        }
    }
}
