//! Priority order: high > medium > low, missing or unknown as medium, stable.

use proptest::prelude::*;
use serde_json::{Value, json};
use sync_bandwidth::{prioritize_by, prioritize_items};
use sync_model::Priority;

#[test]
fn high_before_medium_before_low_and_stable() {
    let mut items = vec![
        json!({"id": 1, "priority": "low"}),
        json!({"id": 2}),
        json!({"id": 3, "priority": "HIGH"}),
        json!({"id": 4, "priority": "urgent"}),
        json!({"id": 5, "priority": "High"}),
        json!({"id": 6, "priority": 3}),
        json!({"id": 7, "priority": "Low"}),
        json!("not an object"),
    ];
    prioritize_items(&mut items, "priority");
    let ids: Vec<Value> = items.iter().map(|v| v.get("id").cloned().unwrap_or(Value::Null)).collect();
    assert_eq!(ids, [json!(3), json!(5), json!(2), json!(4), json!(6), Value::Null, json!(1), json!(7)]);
}

#[test]
fn the_field_name_is_given() {
    let mut items = vec![json!({"p": "low", "priority": "high"}), json!({"p": "high", "priority": "low"})];
    prioritize_items(&mut items, "p");
    assert_eq!(items[0]["p"], "high");
}

fn priority_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec!["high", "HIGH", "Medium", "medium", "low", "LoW", "urgent", ""])
            .prop_map(|s| Some(json!(s))),
        Just(Some(json!(1))),
        Just(Some(Value::Null)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A permutation, most urgent first, arrival order kept among equals.
    #[test]
    fn prioritizing_is_a_stable_permutation(priorities in prop::collection::vec(priority_value(), 0..200)) {
        let mut items: Vec<Value> = priorities
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p {
                Some(p) => json!({"i": i, "priority": p}),
                None => json!({"i": i}),
            })
            .collect();
        let n = items.len();
        prioritize_items(&mut items, "priority");
        let order: Vec<usize> = items.iter().map(|v| v["i"].as_u64().unwrap() as usize).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        for pair in items.windows(2) {
            let (a, b) = (Priority::from_loose(pair[0].get("priority")), Priority::from_loose(pair[1].get("priority")));
            prop_assert!(a >= b);
            if a == b {
                prop_assert!(pair[0]["i"].as_u64() < pair[1]["i"].as_u64());
            }
        }
    }

    #[test]
    fn prioritize_by_is_a_stable_permutation(keys in prop::collection::vec(0usize..3, 0..200)) {
        let to_priority = |k: usize| [Priority::Low, Priority::Medium, Priority::High][k];
        let mut items: Vec<(usize, usize)> = keys.into_iter().enumerate().collect();
        let mut expected = items.clone();
        // Reference: a stable sort by descending rank done the slow, obvious way.
        expected = [2, 1, 0].iter().flat_map(|k| expected.iter().filter(move |(_, x)| x == k).copied()).collect();
        prioritize_by(&mut items, |(_, k)| to_priority(*k));
        prop_assert_eq!(items, expected);
    }
}
