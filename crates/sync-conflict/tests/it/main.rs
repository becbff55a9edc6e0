//! Integration tests of sync-conflict: examples per policy, laws, registry, clock skew.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod examples;
mod laws;
mod registry;
mod skew;
mod vocab;

use serde_json::{Map, Value, json};
use sync_conflict::RecordState;
use time::{Duration, OffsetDateTime, macros::datetime};

/// 2026-11-22 10:00 UTC plus `minutes`.
pub fn at(minutes: i64) -> OffsetDateTime {
    datetime!(2026-11-22 10:00 UTC) + Duration::minutes(minutes)
}

pub fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A live state written by `device` at `at(minutes)`.
pub fn live(data: Value, minutes: i64, device: &str) -> RecordState {
    RecordState::new(obj(data), at(minutes), device)
}

pub fn tombstone(data: Value, minutes: i64, device: &str) -> RecordState {
    RecordState::tombstone(obj(data), at(minutes), device)
}

pub fn names(list: &[std::borrow::Cow<'_, str>]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn helpers_build_states() {
    let s = live(json!({"a": 1}), 0, "d");
    assert!(!s.deleted);
    assert_eq!(s.modified_at, at(0));
}
