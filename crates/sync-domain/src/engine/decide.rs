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

#[cfg(test)]
mod tests {
    //! The decision table: one row per rule of `decide`, each stating what is stored, what
    //! the change asks, the policy, and the outcome, version, write and conflict expected.

    use serde_json::{Value, json};
    use sync_conflict::{EffectivePolicy, Policy, PolicySource, RecordState, Winner};
    use time::macros::datetime;
    use uuid::Uuid;

    use super::{ChangeContext, Current, decide};
    use crate::domains::DomainRegistry;
    use crate::protocol::{Change, Op, Outcome};

    const STORED_AT: time::OffsetDateTime = datetime!(2026-01-01 08:00 UTC);
    const EDITED_AT: time::OffsetDateTime = datetime!(2026-01-01 09:00 UTC);

    struct Case {
        name: &'static str,
        domain: &'static str,
        /// The stored version and data, if the record exists.
        stored: Option<(i64, Value)>,
        stored_bu: Option<&'static str>,
        /// The data at version 1, kept in the history.
        history: Option<Value>,
        op: Op,
        base_version: i64,
        /// `data` of an upsert, `patch` of a patch.
        body: Option<Value>,
        bu: Option<&'static str>,
        units: Option<&'static [&'static str]>,
        policy: Policy,
        auto_resolve: bool,
        // What is expected.
        outcome: Outcome,
        version: Option<i64>,
        /// The data written (`Some(Value::Null)`: a tombstone), `None` when nothing is.
        written: Option<Value>,
        error: Option<&'static str>,
        winner: Option<Winner>,
    }

    fn row() -> Case {
        Case {
            name: "",
            domain: "task",
            stored: None,
            stored_bu: None,
            history: None,
            op: Op::Upsert,
            base_version: 0,
            body: None,
            bu: None,
            units: None,
            policy: Policy::ClientWins,
            auto_resolve: true,
            outcome: Outcome::Applied,
            version: None,
            written: None,
            error: None,
            winner: None,
        }
    }

    fn task(title: &str, status: &str) -> Value {
        json!({"title": title, "status": status})
    }

    fn table() -> Vec<Case> {
        let v2 = || Some((2, task("stored", "INPROGRESS")));
        vec![
            Case {
                name: "a new record is written at version 1",
                body: Some(task("new", "ASSIGNED")),
                version: Some(1),
                written: Some(task("new", "ASSIGNED")),
                ..row()
            },
            Case {
                name: "an edit of the stored version is applied",
                stored: v2(),
                base_version: 2,
                body: Some(task("edited", "COMPLETED")),
                version: Some(3),
                written: Some(task("edited", "COMPLETED")),
                ..row()
            },
            Case {
                name: "repeating the stored state is no change, whatever the base",
                stored: v2(),
                base_version: 1,
                body: Some(task("stored", "INPROGRESS")),
                version: Some(2),
                ..row()
            },
            Case {
                name: "a stale base under client_wins writes the client's state",
                stored: v2(),
                base_version: 1,
                body: Some(task("mine", "INPROGRESS")),
                outcome: Outcome::ClientWon,
                version: Some(3),
                written: Some(task("mine", "INPROGRESS")),
                winner: Some(Winner::Client),
                ..row()
            },
            Case {
                name: "a stale base under server_wins keeps the stored state",
                stored: v2(),
                base_version: 1,
                body: Some(task("mine", "INPROGRESS")),
                policy: Policy::ServerWins,
                outcome: Outcome::ServerWon,
                version: Some(2),
                winner: Some(Winner::Server),
                ..row()
            },
            Case {
                name: "a stale base under manual waits for an admin",
                stored: v2(),
                base_version: 1,
                body: Some(task("mine", "INPROGRESS")),
                policy: Policy::Manual,
                outcome: Outcome::ManualRequired,
                version: Some(2),
                winner: Some(Winner::None),
                ..row()
            },
            Case {
                name: "auto_resolve off makes any policy manual",
                stored: v2(),
                base_version: 1,
                body: Some(task("mine", "INPROGRESS")),
                auto_resolve: false,
                outcome: Outcome::ManualRequired,
                version: Some(2),
                winner: Some(Winner::None),
                ..row()
            },
            Case {
                name: "field_merge keeps each side's own field",
                stored: Some((2, task("server title", "ASSIGNED"))),
                history: Some(task("old", "ASSIGNED")),
                base_version: 1,
                body: Some(task("old", "INPROGRESS")),
                policy: Policy::FieldMerge,
                outcome: Outcome::Merged,
                version: Some(3),
                written: Some(task("server title", "INPROGRESS")),
                winner: Some(Winner::Merged),
                ..row()
            },
            Case {
                name: "a negative base is invalid",
                base_version: -1,
                body: Some(task("new", "ASSIGNED")),
                outcome: Outcome::Invalid,
                error: Some("validation"),
                ..row()
            },
            Case {
                name: "a record of another unit cannot be written",
                stored: v2(),
                stored_bu: Some("south"),
                base_version: 2,
                body: Some(task("edited", "INPROGRESS")),
                units: Some(&["north"]),
                outcome: Outcome::Invalid,
                error: Some("forbidden_unit"),
                ..row()
            },
            Case {
                name: "a record cannot be moved into another unit",
                body: Some(task("new", "ASSIGNED")),
                bu: Some("south"),
                units: Some(&["north"]),
                outcome: Outcome::Invalid,
                error: Some("forbidden_unit"),
                ..row()
            },
            Case {
                name: "a patch of the stored version is applied to it",
                stored: v2(),
                op: Op::Patch,
                base_version: 2,
                body: Some(json!([{"op": "replace", "path": "/status", "value": "COMPLETED"}])),
                version: Some(3),
                written: Some(task("stored", "COMPLETED")),
                ..row()
            },
            Case {
                name: "a patch of an absent record is not_found",
                op: Op::Patch,
                base_version: 1,
                body: Some(json!([{"op": "replace", "path": "/status", "value": "COMPLETED"}])),
                outcome: Outcome::Invalid,
                error: Some("not_found"),
                ..row()
            },
            Case {
                name: "a patch of a version no longer kept is base_unavailable",
                stored: v2(),
                op: Op::Patch,
                base_version: 1,
                body: Some(json!([{"op": "replace", "path": "/status", "value": "COMPLETED"}])),
                outcome: Outcome::Invalid,
                error: Some("base_unavailable"),
                ..row()
            },
            Case {
                name: "a patch that does not apply is invalid_patch",
                stored: v2(),
                op: Op::Patch,
                base_version: 2,
                body: Some(json!([{"op": "test", "path": "/status", "value": "ASSIGNED"}])),
                outcome: Outcome::Invalid,
                error: Some("invalid_patch"),
                ..row()
            },
            Case {
                name: "upsert data must be an object",
                body: Some(json!([1, 2])),
                outcome: Outcome::Invalid,
                error: Some("validation"),
                ..row()
            },
            Case {
                name: "upsert without data is invalid",
                outcome: Outcome::Invalid,
                error: Some("validation"),
                ..row()
            },
            Case {
                name: "the domain's own validation runs",
                body: Some(task("", "ASSIGNED")),
                outcome: Outcome::Invalid,
                error: Some("validation"),
                ..row()
            },
            Case {
                name: "a delete writes a tombstone",
                stored: v2(),
                op: Op::Delete,
                base_version: 2,
                version: Some(3),
                written: Some(Value::Null),
                ..row()
            },
            Case {
                name: "a new record must start where its workflow starts",
                body: Some(task("new", "COMPLETED")),
                outcome: Outcome::Invalid,
                error: Some("invalid_transition"),
                ..row()
            },
            Case {
                name: "a closed ticket cannot be reopened",
                domain: "ticket",
                stored: Some((2, json!({"title": "t", "status": "CLOSED"}))),
                base_version: 2,
                body: Some(json!({"title": "t", "status": "OPEN"})),
                outcome: Outcome::Invalid,
                error: Some("invalid_transition"),
                ..row()
            },
        ]
    }

    fn object(value: Value) -> serde_json::Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("test data must be an object, not {other}"),
        }
    }

    #[test]
    fn every_row_of_the_decision_table() {
        let registry = DomainRegistry::builtin();
        for case in table() {
            let service = registry.get(case.domain).expect("a built-in domain");
            let current = case.stored.clone().map(|(version, data)| Current {
                version,
                state: RecordState::new(object(data), STORED_AT, "server-device"),
                bu: case.stored_bu.map(str::to_owned),
                priority: sync_model::Priority::default(),
            });
            let history = case.history.clone().map(|data| RecordState::new(object(data), STORED_AT, "d0"));
            let version_state = |version: i64| if version == 1 { history.clone() } else { None };
            let (data, patch) = match case.op {
                Op::Patch => (None, case.body.clone()),
                _ => (case.body.clone(), None),
            };
            let change = Change {
                domain: case.domain.to_owned(),
                mobile_id: Uuid::nil(),
                base_version: case.base_version,
                op: case.op,
                data,
                patch,
                modified_at: EDITED_AT,
                priority: None,
                bu: case.bu.map(str::to_owned),
            };
            let units: Option<Vec<String>> = case.units.map(|u| u.iter().map(|s| (*s).to_owned()).collect());
            let decision = decide(&ChangeContext {
                change: &change,
                service: service.as_ref(),
                current: current.as_ref(),
                version_state: &version_state,
                policy: EffectivePolicy {
                    policy: case.policy,
                    configured: case.policy,
                    auto_resolve: case.auto_resolve,
                    notify_on_conflict: false,
                    source: PolicySource::Tenant,
                },
                device_id: "phone",
                modified_at: EDITED_AT,
                units: units.as_deref(),
            });
            let name = case.name;
            assert_eq!(decision.outcome, case.outcome, "{name}: outcome");
            assert_eq!(decision.version, case.version, "{name}: version");
            assert_eq!(decision.error.as_ref().map(|e| e.code.as_str()), case.error, "{name}: error");
            assert_eq!(decision.conflict.as_ref().map(|c| c.winner), case.winner, "{name}: winner");
            let written = decision
                .write
                .as_ref()
                .map(|w| if w.state.deleted { Value::Null } else { Value::Object(w.state.data.clone()) });
            assert_eq!(written, case.written, "{name}: written");
            if let Some(write) = &decision.write {
                assert_eq!(Some(write.version), case.version, "{name}: written version");
            }
            if let Some(conflict) = &decision.conflict {
                assert_eq!(conflict.server_version, case.stored.as_ref().map_or(0, |s| s.0), "{name}");
                assert_eq!(conflict.client_base_version, case.base_version, "{name}");
            }
        }
    }

    #[test]
    fn a_user_of_one_unit_writes_new_records_into_it() {
        let registry = DomainRegistry::builtin();
        let service = registry.get("task").expect("task");
        let change = Change {
            domain: "task".into(),
            mobile_id: Uuid::nil(),
            base_version: 0,
            op: Op::Upsert,
            data: Some(task("new", "ASSIGNED")),
            patch: None,
            modified_at: EDITED_AT,
            priority: None,
            bu: None,
        };
        let units = ["north".to_owned()];
        let decision = decide(&ChangeContext {
            change: &change,
            service: service.as_ref(),
            current: None,
            version_state: &|_| None,
            policy: sync_conflict::effective_policy("task", None),
            device_id: "phone",
            modified_at: EDITED_AT,
            units: Some(&units),
        });
        assert_eq!(decision.write.and_then(|w| w.bu).as_deref(), Some("north"));
    }
}
