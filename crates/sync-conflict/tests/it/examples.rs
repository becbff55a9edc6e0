//! Example conflicts for every policy, including the seeds' cases.

use std::borrow::Cow;

use serde_json::json;
use sync_conflict::{
    ConflictInput, CriticalFields, MergeDetails, Policy, Reason, RecordState, Resolution, ResolutionResult,
    Winner, effective_policy, resolve,
};
use sync_state_machine::workflow;

use crate::{live, names, tombstone};

fn run<'a>(
    policy: Policy,
    base: Option<&'a RecordState>,
    server: &'a RecordState,
    client: &'a RecordState,
) -> ResolutionResult<'a> {
    resolve(policy, &ConflictInput::new(server, client).with_base(base))
}

// ---- client_wins / server_wins (seed cases: journal takes the client, attendance keeps the server)

#[test]
fn journal_takes_the_client() {
    let server = live(json!({"title": "Day 1", "notes": "server", "mood": "ok"}), 5, "dev-b");
    let client = live(json!({"title": "Day 1", "notes": "client", "mood": "ok"}), 1, "dev-a");
    let policy = effective_policy("journal", None).policy;
    assert_eq!(policy, Policy::ClientWins);
    let result = run(policy, None, &server, &client);
    assert_eq!(result.resolution, Resolution::Resolved);
    assert_eq!(result.winner, Winner::Client);
    assert_eq!(result.strategy, Policy::ClientWins);
    assert_eq!(*result.state, client);
    assert!(matches!(result.state, Cow::Borrowed(_)));
    assert_eq!(names(&result.details.from_client), ["notes"]);
    assert!(result.details.from_server.is_empty());
    assert!(result.changes_server());
}

#[test]
fn attendance_keeps_the_server() {
    let server = live(json!({"status": "VERIFIED", "event": "check_in"}), 0, "hq");
    let client = live(json!({"status": "PENDING", "event": "check_out"}), 9, "dev-a");
    let policy = effective_policy("attendance", None).policy;
    assert_eq!(policy, Policy::ServerWins);
    let result = resolve(policy, &ConflictInput::new(&server, &client).with_workflow(workflow("attendance")));
    assert_eq!(result.winner, Winner::Server);
    assert_eq!(*result.state, server);
    assert_eq!(names(&result.details.from_server), ["event", "status"]);
    assert!(!result.changes_server());
}

#[test]
fn client_wins_a_delete() {
    let server = live(json!({"title": "x"}), 5, "b");
    let client = tombstone(json!({}), 1, "a");
    let result = run(Policy::ClientWins, None, &server, &client);
    assert_eq!(result.winner, Winner::Client);
    assert!(result.state.deleted);
}

#[test]
fn client_wins_still_keeps_the_workflow() {
    let server = live(json!({"title": "t", "status": "CLOSED"}), 0, "b");
    let client = live(json!({"title": "t", "status": "OPEN"}), 1, "a");
    let input = ConflictInput::new(&server, &client).with_workflow(workflow("ticket"));
    let result = resolve(Policy::ClientWins, &input);
    assert_eq!(result.winner, Winner::Server);
    assert_eq!(result.details.reason, Some(Reason::WorkflowViolation));
    assert_eq!(
        result.details.workflow_error.as_deref(),
        Some("ticket: CLOSED cannot reach OPEN through legal steps")
    );
}

// ---- most_recent_wins

#[test]
fn most_recent_wins_takes_the_later_time() {
    let server = live(json!({"title": "old"}), 0, "zzz");
    let client = live(json!({"title": "new"}), 1, "aaa");
    let result = run(Policy::MostRecentWins, None, &server, &client);
    assert_eq!(result.winner, Winner::Client);
    assert_eq!(result.details.reason, Some(Reason::LaterModifiedAt));
    let result = run(Policy::MostRecentWins, None, &client, &server);
    assert_eq!(result.winner, Winner::Server);
    assert_eq!(result.state.data["title"], "new");
}

#[test]
fn most_recent_wins_ties_go_to_the_greater_device() {
    let a = live(json!({"title": "from a"}), 0, "device-a");
    let b = live(json!({"title": "from b"}), 0, "device-b");
    for (server, client) in [(&a, &b), (&b, &a)] {
        let result = run(Policy::MostRecentWins, None, server, client);
        assert_eq!(result.state.data["title"], "from b");
        assert_eq!(result.details.reason, Some(Reason::GreaterDeviceId));
    }
}

#[test]
fn most_recent_wins_full_ties_go_to_the_greater_content() {
    let a = live(json!({"n": 1}), 0, "d");
    let b = live(json!({"n": 2}), 0, "d");
    for (server, client) in [(&a, &b), (&b, &a)] {
        let result = run(Policy::MostRecentWins, None, server, client);
        assert_eq!(result.state.data["n"], 2);
        assert_eq!(result.details.reason, Some(Reason::GreaterContent));
    }
}

#[test]
fn most_recent_wins_compares_instants_not_offsets() {
    let mut server = live(json!({"n": 1}), 0, "a");
    let client = live(json!({"n": 2}), 1, "a");
    // 10:00 UTC written as 11:30+02:00 is later than 10:01 UTC.
    server.modified_at = crate::at(90).to_offset(time::macros::offset!(+2));
    let result = run(Policy::MostRecentWins, None, &server, &client);
    assert_eq!(result.winner, Winner::Server);
}

// ---- field_merge

#[test]
fn field_merge_takes_each_sides_changes() {
    let base = live(json!({"title": "t", "status": "ASSIGNED", "assigned_to": "ann", "notes": "n"}), 0, "a");
    let server =
        live(json!({"title": "t", "status": "ASSIGNED", "assigned_to": "bob", "notes": "n"}), 2, "b");
    let client = live(json!({"title": "t", "status": "INPROGRESS", "assigned_to": "ann"}), 1, "a");
    let result = run(Policy::FieldMerge, Some(&base), &server, &client);
    assert_eq!(result.winner, Winner::Merged);
    assert_eq!(
        serde_json::Value::Object(result.state.data.clone()),
        json!({"title": "t", "status": "INPROGRESS", "assigned_to": "bob"})
    );
    assert_eq!(names(&result.details.from_client), ["notes", "status"]);
    assert_eq!(names(&result.details.from_server), ["assigned_to"]);
    assert!(result.details.conflicting.is_empty());
    // The merged state carries the more recent side's time and device.
    assert_eq!(result.state.modified_at, server.modified_at);
    assert_eq!(result.state.device_id, "b");
}

#[test]
fn field_merge_settles_both_changed_fields_by_most_recent() {
    let base = live(json!({"title": "t", "notes": "base", "mood": "ok"}), 0, "a");
    let server = live(json!({"title": "server", "notes": "server", "mood": "ok"}), 2, "b");
    let client = live(json!({"title": "client", "notes": "base", "mood": "good"}), 3, "a");
    let result = run(Policy::FieldMerge, Some(&base), &server, &client);
    assert_eq!(result.state.data["title"], "client");
    assert_eq!(result.state.data["notes"], "server");
    assert_eq!(result.state.data["mood"], "good");
    assert_eq!(names(&result.details.conflicting), ["title"]);
    assert_eq!(names(&result.details.from_client), ["mood", "title"]);
}

#[test]
fn field_merge_merges_nested_objects_by_key_and_arrays_as_values() {
    let base = live(json!({"location": {"lat": 1, "lng": 2}, "tags": ["a"]}), 0, "a");
    let server = live(json!({"location": {"lat": 5, "lng": 2}, "tags": ["a", "s"]}), 2, "b");
    let client = live(json!({"location": {"lat": 1, "lng": 9}, "tags": ["a", "c"]}), 1, "a");
    let result = run(Policy::FieldMerge, Some(&base), &server, &client);
    assert_eq!(result.state.data["location"], json!({"lat": 5, "lng": 9}));
    // Arrays are values: both changed, the server's is more recent.
    assert_eq!(result.state.data["tags"], json!(["a", "s"]));
    assert_eq!(names(&result.details.from_client), ["location.lng"]);
    assert_eq!(names(&result.details.from_server), ["location.lat", "tags"]);
    assert_eq!(names(&result.details.conflicting), ["tags"]);
}

#[test]
fn field_merge_reports_a_side_when_everything_came_from_it() {
    let base = live(json!({"a": 1, "b": 1}), 0, "x");
    let server = live(json!({"a": 2, "b": 1}), 1, "x");
    let client = live(json!({"a": 2, "b": 1, "c": 0}), 2, "y");
    // Only the client added something beyond what both agree on.
    let result = run(Policy::FieldMerge, Some(&base), &server, &client);
    assert_eq!(result.winner, Winner::Client);
    assert_eq!(*result.state, client);
}

#[test]
fn field_merge_shortcuts() {
    let base = live(json!({"a": 1}), 0, "x");
    let changed = live(json!({"a": 2}), 1, "y");
    let same_as_base = live(json!({"a": 1}), 5, "z");

    let result = run(Policy::FieldMerge, Some(&base), &changed, &same_as_base);
    assert_eq!((result.winner, result.details.reason), (Winner::Server, Some(Reason::ClientUnchanged)));
    let result = run(Policy::FieldMerge, Some(&base), &same_as_base, &changed);
    assert_eq!((result.winner, result.details.reason), (Winner::Client, Some(Reason::ServerUnchanged)));
    let twin = live(json!({"a": 2}), 7, "w");
    let result = run(Policy::FieldMerge, Some(&base), &changed, &twin);
    assert_eq!((result.winner, result.details.reason), (Winner::Server, Some(Reason::Identical)));
}

#[test]
fn field_merge_without_base_falls_back_to_most_recent() {
    let server = live(json!({"a": 1, "b": 1}), 0, "x");
    let client = live(json!({"a": 2, "b": 1}), 1, "y");
    let result = run(Policy::FieldMerge, None, &server, &client);
    assert_eq!(result.winner, Winner::Client);
    assert_eq!(result.details.reason, Some(Reason::NoBase));
    assert_eq!(names(&result.details.from_client), ["a"]);
}

#[test]
fn delete_against_edit_is_decided_on_the_whole_state() {
    let base = live(json!({"title": "t", "notes": "n"}), 0, "x");
    let edited = live(json!({"title": "t", "notes": "edited"}), 2, "server-dev");
    let deleted = tombstone(json!({"title": "t", "notes": "n"}), 1, "client-dev");
    for policy in [Policy::FieldMerge, Policy::PreserveEscalation] {
        // The edit is later: it stands.
        let result = run(policy, Some(&base), &edited, &deleted);
        assert_eq!((result.winner, result.details.reason), (Winner::Server, Some(Reason::DeleteVsEdit)));
        assert!(!result.state.deleted);
        // A later delete wins against the edit.
        let late_delete = tombstone(json!({}), 3, "client-dev");
        let result = run(policy, Some(&base), &edited, &late_delete);
        assert_eq!((result.winner, result.details.reason), (Winner::Client, Some(Reason::DeleteVsEdit)));
        assert!(result.state.deleted);
        // A delete against an unchanged record is no real conflict: the delete stands.
        let untouched = live(json!({"title": "t", "notes": "n"}), 9, "server-dev");
        let result = run(policy, Some(&base), &untouched, &deleted);
        assert_eq!((result.winner, result.details.reason), (Winner::Client, Some(Reason::ServerUnchanged)));
        // Two deletes agree.
        let result = run(policy, Some(&base), &late_delete, &deleted);
        assert_eq!((result.winner, result.details.reason), (Winner::Server, Some(Reason::Identical)));
    }
    // Under most_recent_wins a tombstone is just a state.
    let result = run(Policy::MostRecentWins, None, &edited, &deleted);
    assert_eq!(result.winner, Winner::Server);
}

#[test]
fn a_merge_that_breaks_the_workflow_falls_back_to_the_server() {
    let base = live(json!({"title": "t", "status": "INPROGRESS", "assigned_to": "ann"}), 0, "x");
    let server = live(json!({"title": "t", "status": "CLOSED", "assigned_to": "bob"}), 1, "s");
    let client = live(json!({"title": "t2", "status": "ONHOLD", "assigned_to": "ann"}), 2, "c");
    let input = ConflictInput::new(&server, &client).with_base(Some(&base)).with_workflow(workflow("ticket"));
    let result = resolve(Policy::FieldMerge, &input);
    assert_eq!(result.resolution, Resolution::Resolved);
    assert_eq!(result.winner, Winner::Server);
    assert_eq!(*result.state, server);
    assert_eq!(result.details.reason, Some(Reason::WorkflowViolation));
    assert_eq!(
        result.details.workflow_error.as_deref(),
        Some("ticket: CLOSED cannot reach ONHOLD through legal steps")
    );
    // Without the workflow the same merge goes through.
    let result = resolve(Policy::FieldMerge, &input.with_workflow(None));
    assert_eq!(result.winner, Winner::Merged);
    assert_eq!(result.state.data["status"], "ONHOLD");
}

#[test]
fn a_merge_that_loses_its_status_or_invents_one_falls_back() {
    let base = live(json!({"status": "OPEN", "a": 0}), 0, "x");
    let server = live(json!({"status": "OPEN", "a": 1}), 1, "s");
    let no_status = live(json!({"a": 0}), 2, "c");
    let input =
        ConflictInput::new(&server, &no_status).with_base(Some(&base)).with_workflow(workflow("ticket"));
    let result = resolve(Policy::FieldMerge, &input);
    assert_eq!(result.details.reason, Some(Reason::WorkflowViolation));
    let bogus = live(json!({"status": "BOGUS", "a": 0}), 2, "c");
    let input = ConflictInput::new(&server, &bogus).with_base(Some(&base)).with_workflow(workflow("ticket"));
    let result = resolve(Policy::FieldMerge, &input);
    assert_eq!(result.details.workflow_error.as_deref(), Some("ticket: unknown status `BOGUS`"));
}

#[test]
fn a_legal_multi_step_move_is_kept() {
    let base = live(json!({"title": "t", "status": "OPEN"}), 0, "x");
    let server = live(json!({"title": "server", "status": "OPEN"}), 1, "s");
    let client = live(json!({"title": "t", "status": "CLOSED"}), 2, "c");
    let input = ConflictInput::new(&server, &client).with_base(Some(&base)).with_workflow(workflow("ticket"));
    let result = resolve(Policy::FieldMerge, &input);
    assert_eq!(result.winner, Winner::Merged);
    assert_eq!(result.state.data["status"], "CLOSED");
}

// ---- preserve_escalation (seed case: a ticket escalated on the server keeps its escalation)

fn ticket(extra: serde_json::Value) -> serde_json::Value {
    let mut t = json!({"title": "Pump", "status": "OPEN", "escalation_level": 0, "priority": "MEDIUM"});
    if let (Some(t), serde_json::Value::Object(extra)) = (t.as_object_mut(), extra) {
        t.extend(extra);
    }
    t
}

#[test]
fn a_ticket_escalated_on_the_server_keeps_its_escalation() {
    let base = live(ticket(json!({})), 0, "x");
    let server = live(
        ticket(json!({"escalation_level": 3, "escalated_at": "2026-11-22T10:01:00Z", "escalated_by": "ops"})),
        1,
        "hq",
    );
    // The device saw level 0, lowered nothing, but rewrote the whole ticket later.
    let client =
        live(ticket(json!({"title": "Pump room", "escalation_level": 1, "escalated_by": "tech"})), 5, "dev");
    let input = ConflictInput::new(&server, &client).with_base(Some(&base)).with_workflow(workflow("ticket"));
    let result = resolve(Policy::PreserveEscalation, &input);
    assert_eq!(result.winner, Winner::Merged);
    let data = &result.state.data;
    assert_eq!(data["escalation_level"], 3);
    assert_eq!(data["escalated_by"], "ops");
    assert_eq!(data["escalated_at"], "2026-11-22T10:01:00Z");
    assert_eq!(data["title"], "Pump room");
    assert_eq!(names(&result.details.from_server), ["escalated_at", "escalated_by", "escalation_level"]);
    assert_eq!(names(&result.details.from_client), ["title"]);
    // Both changed the level and escalated_by; plain field merge would have taken the later
    // client's. escalated_at was the server's already.
    assert_eq!(names(&result.details.preserved), ["escalated_by", "escalation_level"]);
    let plain = resolve(Policy::FieldMerge, &input);
    assert_eq!(plain.state.data["escalation_level"], 1);
}

#[test]
fn the_higher_escalation_brings_its_own_companions() {
    let base = live(ticket(json!({"escalation_level": 1, "escalated_by": "a"})), 0, "x");
    let server = live(ticket(json!({"escalation_level": 1, "escalated_by": "a", "title": "S"})), 9, "s");
    let client = live(
        ticket(json!({"escalation_level": 4, "escalated_at": "2026-11-22T10:02:00Z", "escalated_by": "c"})),
        1,
        "c",
    );
    let result = run(Policy::PreserveEscalation, Some(&base), &server, &client);
    assert_eq!(result.state.data["escalation_level"], 4);
    assert_eq!(result.state.data["escalated_by"], "c");
    assert_eq!(result.state.data["title"], "S");
    // Even without a base, escalation is not lost to the more recent side.
    let result = run(Policy::PreserveEscalation, None, &server, &client);
    assert_eq!(result.details.reason, Some(Reason::NoBase));
    assert_eq!(result.winner, Winner::Merged);
    assert_eq!(result.state.data["escalation_level"], 4);
    assert_eq!(result.state.data["escalated_at"], "2026-11-22T10:02:00Z");
    assert_eq!(result.state.data["title"], "S");
}

#[test]
fn escalation_is_kept_even_when_the_client_only_lowered_it() {
    let base = live(ticket(json!({"escalation_level": 3})), 0, "x");
    let server = live(ticket(json!({"escalation_level": 3, "title": "S"})), 1, "s");
    let client = live(ticket(json!({"escalation_level": 0})), 2, "c");
    let result = run(Policy::PreserveEscalation, Some(&base), &server, &client);
    assert_eq!(result.state.data["escalation_level"], 3);
    assert_eq!(result.state.data["title"], "S");
    assert_eq!(result.winner, Winner::Server);
}

#[test]
fn priority_takes_the_more_urgent_case_insensitively() {
    let base = live(ticket(json!({"priority": "MEDIUM"})), 0, "x");
    let server = live(ticket(json!({"priority": "critical"})), 1, "s");
    let client = live(ticket(json!({"priority": "High", "title": "C"})), 2, "c");
    let result = run(Policy::PreserveEscalation, Some(&base), &server, &client);
    assert_eq!(result.state.data["priority"], "critical");
    assert_eq!(result.state.data["title"], "C");
    assert_eq!(names(&result.details.preserved), ["priority"]);
    // An unknown word ranks below every known one.
    let odd = live(ticket(json!({"priority": "urgent!!"})), 3, "c");
    let result = run(Policy::PreserveEscalation, Some(&base), &server, &odd);
    assert_eq!(result.state.data["priority"], "critical");
}

#[test]
fn a_terminal_status_stands() {
    let wf = workflow("ticket");
    let base = live(ticket(json!({"status": "RESOLVED"})), 0, "x");
    let server = live(ticket(json!({"status": "CLOSED"})), 1, "s");
    let client = live(ticket(json!({"status": "OPEN", "title": "reopened"})), 2, "c");
    let input = ConflictInput::new(&server, &client).with_base(Some(&base)).with_workflow(wf);
    let result = resolve(Policy::PreserveEscalation, &input);
    assert_eq!(result.winner, Winner::Merged);
    assert_eq!(result.state.data["status"], "CLOSED");
    assert_eq!(result.state.data["title"], "reopened");
    assert_eq!(names(&result.details.preserved), ["status"]);

    // The client's terminal status stands against a later server edit.
    let base = live(ticket(json!({"status": "INPROGRESS"})), 0, "x");
    let server = live(ticket(json!({"status": "ONHOLD"})), 9, "s");
    let client = live(ticket(json!({"status": "CANCELLED"})), 2, "c");
    let input = ConflictInput::new(&server, &client).with_base(Some(&base)).with_workflow(wf);
    let result = resolve(Policy::PreserveEscalation, &input);
    assert_eq!(result.state.data["status"], "CANCELLED");
    assert_eq!(result.winner, Winner::Client);
}

#[test]
fn comments_are_united_by_id_and_ordered_by_time() {
    let c = |id: &str, at: &str, text: &str| json!({"id": id, "at": at, "text": text, "author": "x"});
    let base = live(ticket(json!({"comments": [c("1", "2026-11-22T08:00:00Z", "first")]})), 0, "x");
    let server = live(
        ticket(json!({"comments": [
            c("1", "2026-11-22T08:00:00Z", "first"),
            c("3", "2026-11-22T09:30:00Z", "server"),
        ]})),
        1,
        "s",
    );
    let client = live(
        ticket(json!({"comments": [
            c("1", "2026-11-22T08:00:00Z", "first (edited)"),
            c("2", "2026-11-22T09:00:00+00:00", "client"),
            c("4", "2026-11-22T11:00:00+02:00", "client, other zone"),
        ]})),
        2,
        "c",
    );
    let result = run(Policy::PreserveEscalation, Some(&base), &server, &client);
    let comments = result.state.data["comments"].as_array().unwrap();
    let ids: Vec<&str> = comments.iter().map(|c| c["id"].as_str().unwrap()).collect();
    // 4 is at 09:00Z as an instant, the same as 2: then the `at` text decides.
    assert_eq!(ids, ["1", "2", "4", "3"]);
    assert_eq!(comments[0]["text"], "first (edited)");
    assert_eq!(names(&result.details.combined), ["comments"]);
    assert_eq!(result.winner, Winner::Merged);

    // A comment removed on one side comes back: the union keeps it.
    let dropped = live(ticket(json!({"comments": []})), 3, "c");
    let result = run(Policy::PreserveEscalation, Some(&base), &server, &dropped);
    assert_eq!(result.state.data["comments"].as_array().unwrap().len(), 2);
}

#[test]
fn preserve_escalation_follows_custom_critical_fields() {
    let fields = CriticalFields {
        status: "state",
        terminal_statuses: &["DONE"],
        escalation_level: "severity",
        escalation_companions: &["raised_by"],
        priority: "urgency",
        priority_order: &["lo", "hi"],
        comments: "notes",
        comment_id: "key",
        comment_at: "when",
    };
    let base = live(json!({"severity": 1, "urgency": "lo", "state": "A"}), 0, "x");
    let server = live(json!({"severity": 2, "raised_by": "s", "urgency": "lo", "state": "DONE"}), 1, "s");
    let client = live(json!({"severity": 1, "urgency": "HI", "state": "B", "x": 1}), 2, "c");
    let input = ConflictInput::new(&server, &client).with_base(Some(&base)).with_critical_fields(&fields);
    let result = resolve(Policy::PreserveEscalation, &input);
    assert_eq!(
        serde_json::Value::Object(result.state.data.clone()),
        json!({"severity": 2, "raised_by": "s", "urgency": "HI", "state": "DONE", "x": 1})
    );
}

// ---- manual

#[test]
fn manual_keeps_the_server_and_waits() {
    let server = live(json!({"a": 1, "b": 2}), 0, "s");
    let client = live(json!({"a": 1, "b": 3, "c": 4}), 1, "c");
    let result = run(Policy::Manual, None, &server, &client);
    assert_eq!(result.resolution, Resolution::ManualRequired);
    assert_eq!(result.winner, Winner::None);
    assert_eq!(*result.state, server);
    assert_eq!(names(&result.details.conflicting), ["b", "c"]);
    assert_eq!(result.details.reason, Some(Reason::ManualPolicy));
    assert!(!result.changes_server());
}

#[test]
fn auto_resolve_off_means_manual() {
    let tenant = sync_conflict::TenantPolicy::new(Policy::ClientWins, false, true).unwrap();
    let effective = effective_policy("journal", Some(&tenant));
    assert_eq!(effective.policy, Policy::Manual);
    assert_eq!(effective.configured, Policy::ClientWins);
}

// ---- the wire shape

#[test]
fn details_serialise_as_the_push_response_shows() {
    let base = live(json!({"status": "OPEN", "assigned_to": "a"}), 0, "x");
    let server = live(json!({"status": "OPEN", "assigned_to": "b"}), 1, "s");
    let client = live(json!({"status": "INPROGRESS", "assigned_to": "a"}), 2, "c");
    let result = run(Policy::PreserveEscalation, Some(&base), &server, &client);
    let value = serde_json::to_value(&result).unwrap();
    assert_eq!(value["strategy"], "preserve_escalation");
    assert_eq!(value["winner"], "merged");
    assert_eq!(value["resolution"], "resolved");
    assert_eq!(value["details"], json!({"from_client": ["status"], "from_server": ["assigned_to"]}));
    assert_eq!(value["state"]["modified_at"], "2026-11-22T10:02:00Z");
    assert_eq!(value["state"]["deleted"], false);

    let back: ResolutionResult<'static> = serde_json::from_value(value).unwrap();
    assert_eq!(back, result.clone().into_owned());
    assert_eq!(back, result);
}

#[test]
fn details_with_a_reason_name_it_in_snake_case() {
    let details = MergeDetails { reason: Some(Reason::DeleteVsEdit), ..Default::default() };
    assert_eq!(
        serde_json::to_value(&details).unwrap(),
        json!({"from_client": [], "from_server": [], "reason": "delete_vs_edit"})
    );
}
