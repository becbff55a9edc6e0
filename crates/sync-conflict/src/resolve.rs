//! `resolve`: applies a policy to one conflict.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::{
    ConflictInput, MergeDetails, Policy, Reason, RecordState, Resolution, ResolutionResult, Winner,
    escalation::preserve_critical,
    merge::{Side, apply, cmp_content, differing_fields, merge_plan, recency},
};

/// Resolves one conflict under `policy`. Deterministic, and never fails: every input has
/// a defined answer (see the crate docs for each policy's rules).
///
/// A result that is not the server's state must keep the domain's workflow: its status
/// must be reachable from the server's status (`input.workflow`). When it is not, the
/// server's state stands, with [`Reason::WorkflowViolation`] in the details.
pub fn resolve<'a>(policy: Policy, input: &ConflictInput<'a>) -> ResolutionResult<'a> {
    let result = match policy {
        Policy::ClientWins => whole(policy, input, Side::Client, None),
        Policy::ServerWins => whole(policy, input, Side::Server, None),
        Policy::MostRecentWins => {
            let (side, reason) = most_recent(input.server, input.client);
            whole(policy, input, side, Some(reason))
        }
        Policy::FieldMerge => merge(policy, input, false),
        Policy::PreserveEscalation => merge(policy, input, true),
        Policy::Manual => ResolutionResult {
            resolution: Resolution::ManualRequired,
            winner: Winner::None,
            strategy: policy,
            state: Cow::Borrowed(input.server),
            details: MergeDetails {
                conflicting: differing_fields(&input.server.data, &input.client.data),
                reason: Some(Reason::ManualPolicy),
                ..MergeDetails::default()
            },
        },
    };
    keep_workflow(input, result)
}

/// most_recent_wins on whole states: later `modified_at`, then greater device id, then
/// (same time, same device) greater content, so that swapping the sides never changes the
/// winning state.
fn most_recent(server: &RecordState, client: &RecordState) -> (Side, Reason) {
    if let Some(side) = recency(server, client) {
        let reason = if client.modified_at == server.modified_at {
            Reason::GreaterDeviceId
        } else {
            Reason::LaterModifiedAt
        };
        return (side, reason);
    }
    let side = if cmp_content(client, server).is_gt() { Side::Client } else { Side::Server };
    (side, Reason::GreaterContent)
}

/// One side's full state stands.
fn whole<'a>(
    policy: Policy,
    input: &ConflictInput<'a>,
    side: Side,
    reason: Option<Reason>,
) -> ResolutionResult<'a> {
    let fields = differing_fields(&input.server.data, &input.client.data);
    let (winner, state, details) = match side {
        Side::Server => {
            (Winner::Server, input.server, MergeDetails { from_server: fields, reason, ..Default::default() })
        }
        Side::Client => {
            (Winner::Client, input.client, MergeDetails { from_client: fields, reason, ..Default::default() })
        }
    };
    ResolutionResult {
        resolution: Resolution::Resolved,
        winner,
        strategy: policy,
        state: Cow::Borrowed(state),
        details,
    }
}

/// field_merge, and with `preserve` the critical-field rules on top.
fn merge<'a>(policy: Policy, input: &ConflictInput<'a>, preserve: bool) -> ResolutionResult<'a> {
    let (server, client) = (input.server, input.client);
    if server.same_content(client) {
        return whole(policy, input, Side::Server, Some(Reason::Identical));
    }
    // The whole-state fallbacks are most_recent_wins, except that a full tie (same time,
    // same device) keeps the stored state: the critical-field rules then start from it, so
    // that resolving again against the result finds the same start.
    let recent = recency(server, client);
    let newer = recent.unwrap_or(Side::Server);
    let shortcut = match input.base {
        None => Some((newer, Reason::NoBase)),
        Some(base) if client.same_content(base) => Some((Side::Server, Reason::ClientUnchanged)),
        Some(base) if server.same_content(base) => Some((Side::Client, Reason::ServerUnchanged)),
        Some(_) if server.deleted || client.deleted => Some((newer, Reason::DeleteVsEdit)),
        Some(_) => None,
    };
    // A tombstone carries no fields to protect: the whole state decides.
    let preserve = preserve && !server.deleted && !client.deleted;

    let (mut data, mut details) = match shortcut {
        Some((side, reason)) if !preserve => return whole(policy, input, side, Some(reason)),
        Some((side, reason)) => {
            let fields = differing_fields(&server.data, &client.data);
            match side {
                Side::Server => (
                    Cow::Borrowed(&server.data),
                    MergeDetails { from_server: fields, reason: Some(reason), ..Default::default() },
                ),
                Side::Client => (
                    Cow::Borrowed(&client.data),
                    MergeDetails { from_client: fields, reason: Some(reason), ..Default::default() },
                ),
            }
        }
        None => {
            let mut details = MergeDetails::default();
            let base = input.base.map(|b| &b.data);
            let plan = merge_plan(base, &server.data, &client.data, recent, None, &mut details);
            // Every differing field is listed: no client field means the server's data,
            // and the other way round.
            let data = if details.from_client.is_empty() {
                Cow::Borrowed(&server.data)
            } else if details.from_server.is_empty() {
                Cow::Borrowed(&client.data)
            } else {
                Cow::Owned(apply(&server.data, plan))
            };
            if !preserve {
                let (winner, data) = match data {
                    Cow::Owned(data) => (Winner::Merged, Some(data)),
                    Cow::Borrowed(_) if details.from_client.is_empty() => (Winner::Server, None),
                    Cow::Borrowed(_) => (Winner::Client, None),
                };
                return merged_result(policy, input, winner, data, details);
            }
            (data, details)
        }
    };

    let cf = input.critical;
    let base = input.base.map(|b| &b.data);
    preserve_critical(&mut data, base, &server.data, &client.data, recent, cf, &mut details.preserved);
    if !details.preserved.is_empty() {
        for field in critical_names(cf) {
            reclassify(field, &data, &server.data, &client.data, &mut details);
        }
    }
    let winner = match &data {
        Cow::Borrowed(d) if std::ptr::eq(*d, &server.data) => Winner::Server,
        Cow::Borrowed(d) if std::ptr::eq(*d, &client.data) => Winner::Client,
        d if **d == server.data => Winner::Server,
        d if **d == client.data => Winner::Client,
        _ => Winner::Merged,
    };
    let data = (winner == Winner::Merged).then(|| data.into_owned());
    merged_result(policy, input, winner, data, details)
}

fn merged_result<'a>(
    policy: Policy,
    input: &ConflictInput<'a>,
    winner: Winner,
    data: Option<Map<String, Value>>,
    details: MergeDetails<'a>,
) -> ResolutionResult<'a> {
    let (winner, state) = match (winner, data) {
        (Winner::Client, _) => (Winner::Client, Cow::Borrowed(input.client)),
        (Winner::Merged, Some(data)) => {
            // The merged state carries the time and device of the more recent side, so
            // that resolving the same change against it again changes nothing.
            let newer = match recency(input.server, input.client) {
                Some(Side::Client) => input.client,
                _ => input.server,
            };
            let state = RecordState {
                data,
                deleted: false,
                modified_at: newer.modified_at,
                device_id: newer.device_id.clone(),
            };
            (Winner::Merged, Cow::Owned(state))
        }
        _ => (Winner::Server, Cow::Borrowed(input.server)),
    };
    ResolutionResult { resolution: Resolution::Resolved, winner, strategy: policy, state, details }
}

fn critical_names<'a>(cf: &'a crate::CriticalFields<'a>) -> impl Iterator<Item = &'a str> {
    [cf.escalation_level, cf.priority, cf.status, cf.comments]
        .into_iter()
        .chain(cf.escalation_companions.iter().copied())
}

/// After a critical rule changed `field`, names it again by where its value now comes from.
fn reclassify<'a>(
    field: &'a str,
    data: &Map<String, Value>,
    server: &Map<String, Value>,
    client: &Map<String, Value>,
    details: &mut MergeDetails<'a>,
) {
    let is_field = |name: &Cow<'_, str>| {
        name == field || name.strip_prefix(field).is_some_and(|rest| rest.starts_with('.'))
    };
    details.from_client.retain(|n| !is_field(n));
    details.from_server.retain(|n| !is_field(n));
    details.combined.retain(|n| !is_field(n));
    let (m, s, c) = (data.get(field), server.get(field), client.get(field));
    if s == c {
        return;
    }
    let list = if m == s {
        &mut details.from_server
    } else if m == c {
        &mut details.from_client
    } else {
        &mut details.combined
    };
    list.push(Cow::Borrowed(field));
}

/// A result other than the server's state must reach its status from the server's.
fn keep_workflow<'a>(input: &ConflictInput<'a>, result: ResolutionResult<'a>) -> ResolutionResult<'a> {
    if result.winner == Winner::Server || result.resolution != Resolution::Resolved {
        return result;
    }
    let Some(error) = workflow_error(input, &result.state) else {
        return result;
    };
    ResolutionResult {
        resolution: Resolution::Resolved,
        winner: Winner::Server,
        strategy: result.strategy,
        state: Cow::Borrowed(input.server),
        details: MergeDetails {
            from_server: differing_fields(&input.server.data, &input.client.data),
            reason: Some(Reason::WorkflowViolation),
            workflow_error: Some(error),
            ..Default::default()
        },
    }
}

fn workflow_error(input: &ConflictInput<'_>, state: &RecordState) -> Option<String> {
    let workflow = input.workflow?;
    let server = input.server;
    if state.deleted || server.deleted {
        return None;
    }
    let field = input.critical.status;
    let from = server.data.get(field).and_then(Value::as_str)?;
    match state.data.get(field).and_then(Value::as_str) {
        Some(to) if to == from => None,
        Some(to) => workflow.path(from, to).err().map(|e| e.to_string()),
        None => {
            Some(format!("{}: the result has no `{field}` but the stored record is {from}", workflow.name()))
        }
    }
}
