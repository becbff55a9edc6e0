//! JSON Patch and merge patch laws, atomicity, and the smallest-delta helper.

use proptest::prelude::*;
use serde_json::{Value, json};
use sync_bandwidth::{
    BandwidthError, Delta, DeltaKind, JsonPatch, apply, diff, merge_apply, merge_diff, serialized_len,
    smallest_delta, smallest_delta_of,
};

use crate::json_strategy::{edited_pair, json, json_without_null_members, key};

/// Does `v` hold an object member whose value is `null`, outside arrays?
fn has_null_member(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().any(|x| x.is_null() || has_null_member(x)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// RFC 6902: the diff applies back to the target, also after a trip through JSON text.
    #[test]
    fn json_patch_diff_then_apply_gives_the_target((a, b) in edited_pair()) {
        let patch = diff(&a, &b);
        let mut doc = a.clone();
        apply(&mut doc, &patch).unwrap();
        prop_assert_eq!(&doc, &b);

        let wire = serde_json::to_vec(&patch).unwrap();
        let parsed = JsonPatch::from_slice(&wire).unwrap();
        prop_assert_eq!(&parsed, &patch);
        let mut doc = a.clone();
        apply(&mut doc, &parsed).unwrap();
        prop_assert_eq!(doc, b);
    }

    #[test]
    fn json_patch_law_for_unrelated_documents(a in json(), b in json()) {
        let mut doc = a.clone();
        apply(&mut doc, &diff(&a, &b)).unwrap();
        prop_assert_eq!(doc, b);
    }

    #[test]
    fn diff_of_equal_documents_is_empty(a in json()) {
        prop_assert!(diff(&a, &a).is_empty());
    }

    /// RFC 7396, restricted to what it can represent: a target without `null` object members
    /// (outside arrays) is always reachable, from any document.
    #[test]
    fn merge_patch_law_for_targets_without_null_members(a in json(), b in json_without_null_members()) {
        let patch = merge_diff(&a, &b).unwrap();
        let mut doc = a.clone();
        merge_apply(&mut doc, &patch);
        prop_assert_eq!(doc, b);
    }

    /// RFC 7396 for any pair: either the diff round-trips, or it is refused, and only when the
    /// target has a `null` member that no merge patch can set.
    #[test]
    fn merge_diff_round_trips_or_refuses_for_a_reason((a, b) in edited_pair()) {
        match merge_diff(&a, &b) {
            Ok(patch) => {
                let mut doc = a.clone();
                merge_apply(&mut doc, &patch);
                prop_assert_eq!(doc, b);
            }
            Err(BandwidthError::MergePatchUnrepresentable { pointer }) => {
                prop_assert!(has_null_member(&b));
                prop_assert_eq!(b.pointer(&pointer), Some(&Value::Null));
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    /// The chosen delta rebuilds the target and is never larger than the full document.
    #[test]
    fn smallest_delta_rebuilds_the_target((a, b) in edited_pair()) {
        let choice = smallest_delta(&a, &b);
        prop_assert!(choice.bytes <= choice.full_bytes);
        prop_assert_eq!(choice.bytes, serialized_len(&choice.delta.to_value()));
        prop_assert_eq!(choice.full_bytes, serde_json::to_vec(&b).unwrap().len());
        let mut doc = a.clone();
        choice.delta.apply_to(&mut doc).unwrap();
        prop_assert_eq!(doc, b);
    }

    /// A patch that fails leaves the document exactly as it was.
    #[test]
    fn failed_patches_leave_the_document_unchanged(doc in json(), ops in prop::collection::vec(op(), 1..6)) {
        let Ok(patch) = JsonPatch::from_value(Value::Array(ops)) else { return Ok(()) };
        let mut target = doc.clone();
        if apply(&mut target, &patch).is_err() {
            prop_assert_eq!(target, doc);
        }
    }
}

fn pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![key().prop_map(|k| k.replace('~', "~0").replace('/', "~1")), Just("1".to_owned())],
        0..3,
    )
    .prop_map(|tokens| tokens.iter().map(|t| format!("/{t}")).collect())
}

/// An arbitrary operation, valid or not, on paths that random documents often have.
fn op() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("add"), Just("remove"), Just("replace"), Just("move"), Just("copy"), Just("test")],
        pointer(),
        pointer(),
        json(),
    )
        .prop_map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}))
}

#[test]
fn one_field_edit_is_one_replace() {
    let old = json!({"title": "Check pump", "status": "ASSIGNED", "tags": ["a", "b"]});
    let new = json!({"title": "Check pump", "status": "INPROGRESS", "tags": ["a", "b"]});
    let patch = diff(&old, &new);
    assert_eq!(patch.to_value(), json!([{"op": "replace", "path": "/status", "value": "INPROGRESS"}]));
    assert_eq!(patch.len(), 1);
    assert_eq!(patch.touched_fields(), ["status"]);
}

#[test]
fn touched_fields_decode_pointers_and_include_move_sources() {
    let patch = JsonPatch::from_value(json!([
        {"op": "test", "path": "/title", "value": "x"},
        {"op": "replace", "path": "/a~1b/0", "value": 1},
        {"op": "move", "from": "/m~0n", "path": "/notes"},
        {"op": "add", "path": "/notes/-", "value": 2},
    ]))
    .unwrap();
    assert_eq!(patch.touched_fields(), ["a/b", "m~n", "notes"]);
    assert_eq!(patch.paths().collect::<Vec<_>>(), ["/title", "/a~1b/0", "/notes", "/notes/-"]);
}

#[test]
fn failed_patch_reports_the_operation_and_changes_nothing() {
    let mut doc = json!({"escalation_level": 1, "status": "OPEN"});
    let patch = JsonPatch::from_value(json!([
        {"op": "replace", "path": "/escalation_level", "value": 2},
        {"op": "remove", "path": "/missing"},
    ]))
    .unwrap();
    let err = apply(&mut doc, &patch).unwrap_err();
    assert!(
        matches!(&err, BandwidthError::PatchFailed { index: 1, path, .. } if path == "/missing"),
        "{err}"
    );
    assert_eq!(err.code(), "patch_failed");
    assert_eq!(doc, json!({"escalation_level": 1, "status": "OPEN"}));
}

#[test]
fn test_compares_numbers_by_value() {
    let mut doc = json!({"a": 1, "b": [2.0, {"c": 3}], "big": 18446744073709551615u64});
    let patch = JsonPatch::from_value(json!([
        {"op": "test", "path": "/a", "value": 1.0},
        {"op": "test", "path": "/b", "value": [2, {"c": 3.0}]},
        {"op": "test", "path": "/big", "value": 18446744073709551615u64},
        {"op": "replace", "path": "/a", "value": 2},
    ]))
    .unwrap();
    apply(&mut doc, &patch).unwrap();
    assert_eq!(doc["a"], 2);
    for unequal in [json!(1.5), json!("1"), json!(-1), json!(null)] {
        let patch = JsonPatch::from_value(json!([{"op": "test", "path": "/a", "value": unequal}])).unwrap();
        assert!(matches!(apply(&mut doc, &patch), Err(BandwidthError::PatchFailed { index: 0, .. })));
    }
    let missing = JsonPatch::from_value(json!([{"op": "test", "path": "/nope", "value": 1}])).unwrap();
    assert!(apply(&mut doc, &missing).is_err());
}

#[test]
fn malformed_patches_are_typed_errors() {
    for bad in [
        json!({"op": "add"}),
        json!([{"op": "frobnicate", "path": "/a"}]),
        json!([{"op": "add", "path": "a", "value": 1}]),
        json!([{"op": "add", "value": 1}]),
        json!([{"path": "/a", "value": 1}]),
    ] {
        let err = JsonPatch::from_value(bad.clone()).unwrap_err();
        assert!(matches!(err, BandwidthError::InvalidPatch(_)), "{bad}: {err}");
        assert_eq!(err.code(), "invalid_patch");
    }
    assert!(JsonPatch::from_slice(b"[{\"op\":").is_err());
}

#[test]
fn merge_diff_refuses_to_set_a_member_to_null() {
    let err = merge_diff(&json!({"a": 1}), &json!({"a": null})).unwrap_err();
    assert_eq!(err, BandwidthError::MergePatchUnrepresentable { pointer: "/a".to_owned() });
    // Nested, and escaped as a JSON Pointer.
    let err = merge_diff(&json!(1), &json!({"x/y": {"z": null}})).unwrap_err();
    assert_eq!(err, BandwidthError::MergePatchUnrepresentable { pointer: "/x~1y/z".to_owned() });
    // A null that is already there, or one inside an array, is fine.
    assert_eq!(merge_diff(&json!({"e": null}), &json!({"e": null, "a": 1})).unwrap(), json!({"a": 1}));
    assert_eq!(merge_diff(&json!({}), &json!({"a": [null]})).unwrap(), json!({"a": [null]}));
}

#[test]
fn merge_diff_removes_members_with_null() {
    let patch = merge_diff(&json!({"a": 1, "b": {"c": 2, "d": 3}}), &json!({"b": {"c": 2}})).unwrap();
    assert_eq!(patch, json!({"a": null, "b": {"d": null}}));
}

fn ticket() -> Value {
    json!({
        "title": "Pump station 4: pressure drop on the north line",
        "status": "OPEN",
        "description": "Operator reports intermittent pressure loss after the valve replacement last week.",
        "priority": "HIGH",
        "escalation_level": 1,
        "assigned_to": "0b6e4b1c-8f5e-4d7a-9a57-0d2b3c4e5f60",
        "comments": [{"id": "c1", "at": "2026-11-22T09:00:00Z", "text": "On my way", "author": "tech-7"}]
    })
}

#[test]
fn smallest_delta_of_a_one_field_edit() {
    let old = ticket();
    let mut new = old.clone();
    new["escalation_level"] = json!(2);

    let any = smallest_delta(&old, &new);
    assert_eq!(any.delta, Delta::MergePatch(json!({"escalation_level": 2})));
    assert_eq!(any.bytes, r#"{"escalation_level":2}"#.len());
    assert!(any.bytes_saved() > 200);

    let patch_only = smallest_delta_of(&old, &new, &[DeltaKind::JsonPatch]);
    assert_eq!(patch_only.delta.kind(), DeltaKind::JsonPatch);
    assert_eq!(patch_only.bytes, r#"[{"op":"replace","path":"/escalation_level","value":2}]"#.len());

    let full_only = smallest_delta_of(&old, &new, &[]);
    assert_eq!(full_only.delta, Delta::Full(new.clone()));
    assert_eq!(full_only.bytes, full_only.full_bytes);
}

#[test]
fn smallest_delta_prefers_json_patch_when_merge_patch_cannot_express_it() {
    let old = ticket();
    let mut new = old.clone();
    new["assigned_to"] = Value::Null;
    let choice = smallest_delta(&old, &new);
    assert_eq!(choice.delta.kind(), DeltaKind::JsonPatch);
}

#[test]
fn smallest_delta_of_an_unrelated_document_is_the_document() {
    let choice = smallest_delta(&ticket(), &json!({"title": "x"}));
    assert_eq!(choice.delta, Delta::Full(json!({"title": "x"})));
}
