//! The wire types read what the protocol sends and refuse what it forbids.

use proptest::prelude::*;
use serde_json::json;
use sync_protocol::{
    Change, Cursor, ErrorBody, Op, PartialSyncRequest, PolicyUpdate, Priority, PushRequest, PushResponse,
    ResolveRequest, SnapshotRequest,
};

fn change() -> serde_json::Value {
    json!({"domain": "task", "mobile_id": "7f8c3a52-5f44-4a4e-9a57-8a1c7e2f0b11", "op": "upsert",
           "data": {"title": "t", "status": "ASSIGNED"}, "modified_at": "2026-11-22T09:58:00Z"})
}

#[test]
fn a_change_takes_the_protocol_defaults() {
    let change: Change = serde_json::from_value(change()).unwrap();
    assert_eq!(change.op, Op::Upsert);
    assert_eq!(change.base_version, 0);
    assert_eq!(change.priority, None);
    assert_eq!(change.bu, None);
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let mut with_extra_change = change();
    with_extra_change["colour"] = json!("red");
    for body in [
        json!({"device_id": "d", "changes": [], "extra": 1}),
        json!({"device_id": "d", "changes": [with_extra_change]}),
    ] {
        assert!(serde_json::from_value::<PushRequest>(body).is_err());
    }
    assert!(serde_json::from_value::<PartialSyncRequest>(json!({"device_id": "d", "x": 1})).is_err());
    assert!(serde_json::from_value::<PolicyUpdate>(json!({"policy": "manual", "x": 1})).is_err());
    assert!(serde_json::from_value::<ResolveRequest>(json!({"choose": "client", "x": 1})).is_err());
    assert!(serde_json::from_value::<SnapshotRequest>(json!({"hours": 1})).is_err());
    assert!(
        serde_json::from_value::<ErrorBody>(
            json!({"error": {"code": "c", "message": "m", "details": null, "x": 1}})
        )
        .is_err()
    );
}

#[test]
fn priority_and_policy_are_read_in_any_case_and_written_lowercase() {
    let partial: PartialSyncRequest =
        serde_json::from_value(json!({"device_id": "d", "priority": "HiGh"})).unwrap();
    assert_eq!(partial.priority, Priority::High);
    let update: PolicyUpdate = serde_json::from_value(json!({"policy": "Field_Merge"})).unwrap();
    assert_eq!(serde_json::to_value(&update).unwrap()["policy"], "field_merge");
    assert!(update.auto_resolve, "auto_resolve defaults to true");
    assert!(!update.notify_on_conflict);
}

#[test]
fn an_empty_snapshot_request_is_one_hour() {
    assert_eq!(serde_json::from_value::<SnapshotRequest>(json!({})).unwrap(), SnapshotRequest::default());
    assert_eq!(SnapshotRequest::default().time_window_hours, 1);
}

#[test]
fn a_push_response_skips_absent_fields() {
    let text = r#"{"results":[{"mobile_id":"7f8c3a52-5f44-4a4e-9a57-8a1c7e2f0b11","domain":"task","outcome":"applied","version":1}],"cursor":"c1.1"}"#;
    let response: PushResponse = serde_json::from_str(text).unwrap();
    assert_eq!(serde_json::to_string(&response).unwrap(), text);
}

#[test]
fn an_error_body_without_details_says_null() {
    let body = serde_json::to_value(ErrorBody::new("rate_limited", "slow down")).unwrap();
    assert_eq!(body, json!({"error": {"code": "rate_limited", "message": "slow down", "details": null}}));
}

proptest! {
    #[test]
    fn a_cursor_reads_back_what_it_writes(seq in 0_i64..1_000_000_000_000_000_000) {
        let cursor = Cursor(seq);
        prop_assert_eq!(Cursor::parse(&cursor.to_string()), Some(cursor));
    }

    #[test]
    fn a_cursor_is_c1_and_1_to_18_digits_and_nothing_else(text in "(c1\\.)?[-+ 0-9a]{0,20}") {
        let digits = text.strip_prefix("c1.");
        let well_formed = digits
            .is_some_and(|d| (1..=18).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
        prop_assert_eq!(Cursor::parse(&text).is_some(), well_formed);
    }

    #[test]
    fn a_push_survives_a_round_trip(
        device_id in "[a-z0-9-]{1,20}",
        base_version in 0_i64..1000,
        priority in proptest::option::of(prop_oneof![Just(Priority::High), Just(Priority::Medium), Just(Priority::Low)]),
        bu in proptest::option::of("[a-z]{1,8}"),
    ) {
        let mut change = change();
        change["base_version"] = json!(base_version);
        if let Some(p) = priority {
            change["priority"] = json!(p.as_str());
        }
        if let Some(bu) = &bu {
            change["bu"] = json!(bu);
        }
        let push: PushRequest = serde_json::from_value(json!({"device_id": device_id, "changes": [change]})).unwrap();
        let again: PushRequest = serde_json::from_str(&serde_json::to_string(&push).unwrap()).unwrap();
        prop_assert_eq!(again, push);
    }
}
