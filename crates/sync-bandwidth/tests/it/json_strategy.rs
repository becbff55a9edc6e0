//! proptest strategies for arbitrary JSON values, with keys that stress JSON Pointer escaping.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys drawn from a small set so that two random documents share members, including the
/// characters RFC 6901 escapes (`~`, `/`), the empty key and keys that look like array indices.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("0".to_owned()),
        Just("-".to_owned()),
        Just("a/b".to_owned()),
        Just("m~n".to_owned()),
        Just("~1".to_owned()),
        "[a-z]{1,3}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(Value::from),
    ]
}

fn leaf(with_null: bool) -> BoxedStrategy<Value> {
    let non_null =
        prop_oneof![any::<bool>().prop_map(Value::Bool), number(), "[a-z ~/é]{0,6}".prop_map(Value::String),];
    if with_null { prop_oneof![1 => Just(Value::Null), 6 => non_null].boxed() } else { non_null.boxed() }
}

fn value_with(with_null: bool) -> BoxedStrategy<Value> {
    leaf(with_null)
        .prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                // Arrays may hold nulls either way: a merge patch replaces arrays whole.
                prop::collection::vec(
                    if with_null { inner.clone() } else { value_with_inner_nulls(inner.clone()) },
                    0..6
                )
                .prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

fn value_with_inner_nulls(inner: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 6 => inner].boxed()
}

/// Any JSON value.
pub fn json() -> BoxedStrategy<Value> {
    value_with(true)
}

/// A JSON value in which no object member is `null`, except inside arrays: what an RFC 7396
/// merge patch can always produce.
pub fn json_without_null_members() -> BoxedStrategy<Value> {
    value_with(false)
}

/// A pair of documents where the second is an edit of the first (so diffs are small and share
/// structure), or an unrelated document.
pub fn edited_pair() -> BoxedStrategy<(Value, Value)> {
    (json(), json(), prop::collection::vec((key(), json()), 0..4), any::<bool>())
        .prop_map(|(a, other, edits, unrelated)| {
            if unrelated {
                return (a, other);
            }
            let mut b = a.clone();
            if let Value::Object(m) = &mut b {
                for (k, v) in edits {
                    if v.is_null() {
                        m.remove(&k);
                    } else {
                        m.insert(k, v);
                    }
                }
            }
            (a, b)
        })
        .boxed()
}
