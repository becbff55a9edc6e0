//! Ordering items most urgent first, keeping arrival order among equals.

use std::cmp::Reverse;

use serde_json::Value;
use sync_model::Priority;

/// Sorts JSON items by the priority named in their `field` member: `high` before `medium`
/// before `low`, read case-insensitively. A missing field, a value that is not one of those
/// words, or an item that is not an object counts as `medium`. The sort is stable: items of the
/// same priority keep their order.
pub fn prioritize_items(items: &mut [Value], field: &str) {
    prioritize_by(items, |item| Priority::from_loose(item.get(field)));
}

/// Stable sort, most urgent first, by the priority `key` gives each item.
pub fn prioritize_by<T>(items: &mut [T], key: impl Fn(&T) -> Priority) {
    // Cached: the key is computed once per item (a JSON lookup and a case-insensitive compare).
    items.sort_by_cached_key(|item| Reverse(key(item)));
}
