//! The public JSON Patch conformance suite (json-patch-tests) and the RFC 7396 appendix examples.

use serde_json::Value;
use sync_bandwidth::{BandwidthError, JsonPatch, apply, merge_apply, merge_diff};

const TESTS: &str = include_str!("../data/json-patch-tests/tests.json");
const SPEC_TESTS: &str = include_str!("../data/json-patch-tests/spec_tests.json");
const MERGE_EXAMPLES: &str = include_str!("../data/json-merge-patch/rfc7396-appendix-a.json");

/// Runs every record that is not disabled; returns how many ran and every miss, described.
fn run_suite(name: &str, text: &str) -> (usize, Vec<String>) {
    let records: Vec<Value> = serde_json::from_str(text).unwrap();
    let mut ran = 0;
    let mut misses = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let record = record.as_object().unwrap();
        if record.get("disabled").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        ran += 1;
        let label =
            format!("{name}#{i} ({})", record.get("comment").and_then(Value::as_str).unwrap_or("no comment"));
        let original = record["doc"].clone();
        let mut doc = original.clone();
        // Presence matters, not the value: `"expected": null` expects a null document.
        let expected = record.get("expected");
        let wants_error = record.contains_key("error");
        let outcome: Result<(), BandwidthError> =
            JsonPatch::from_value(record["patch"].clone()).and_then(|patch| apply(&mut doc, &patch));
        match (outcome, expected, wants_error) {
            (Ok(()), Some(expected), false) if &doc == expected => {}
            (Ok(()), None, false) => {}
            (Err(_), _, true) if doc == original => {}
            (Err(e), _, true) => {
                misses.push(format!("{label}: failed ({e}) but changed the document to {doc}"))
            }
            (Ok(()), _, true) => {
                misses.push(format!("{label}: applied ({doc}) but the record expects an error"))
            }
            (Ok(()), Some(expected), false) => {
                misses.push(format!("{label}: got {doc}, expected {expected}"))
            }
            (Err(e), _, false) => misses.push(format!("{label}: failed ({e}) but should apply")),
        }
    }
    (ran, misses)
}

#[test]
fn json_patch_tests_suite_passes_every_record() {
    let (ran_tests, mut misses) = run_suite("tests.json", TESTS);
    let (ran_spec, spec_misses) = run_suite("spec_tests.json", SPEC_TESTS);
    misses.extend(spec_misses);
    eprintln!("json-patch-tests: ran {ran_tests} records of tests.json and {ran_spec} of spec_tests.json");
    assert!(misses.is_empty(), "{} misses:\n{}", misses.len(), misses.join("\n"));
    // 95 records in tests.json (3 disabled) and 17 in spec_tests.json (1 disabled): none skipped silently.
    assert_eq!((ran_tests, ran_spec), (92, 16));
}

#[test]
fn rfc7396_appendix_a_examples_apply() {
    let examples: Vec<Value> = serde_json::from_str(MERGE_EXAMPLES).unwrap();
    assert_eq!(examples.len(), 15);
    for (i, example) in examples.iter().enumerate() {
        let mut doc = example["original"].clone();
        merge_apply(&mut doc, &example["patch"]);
        assert_eq!(doc, example["result"], "example {i}");
    }
}

#[test]
fn rfc7396_appendix_a_results_are_reachable_by_merge_diff() {
    let examples: Vec<Value> = serde_json::from_str(MERGE_EXAMPLES).unwrap();
    for (i, example) in examples.iter().enumerate() {
        let (original, result) = (&example["original"], &example["result"]);
        let patch = merge_diff(original, result).unwrap();
        let mut doc = original.clone();
        merge_apply(&mut doc, &patch);
        assert_eq!(&doc, result, "example {i}");
    }
}
