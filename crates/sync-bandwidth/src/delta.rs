//! JSON deltas: RFC 6902 JSON Patch, RFC 7396 merge patch, and picking the smallest way to send a change.

use std::{fmt, io};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::BandwidthError;

/// An RFC 6902 JSON Patch: a list of operations. Serializes as the JSON array of the RFC.
///
/// Parsing checks the shape (known `op`, required members, valid JSON Pointers); members an
/// operation does not define are ignored, as RFC 6902 §4 requires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonPatch(json_patch::Patch);

impl JsonPatch {
    /// Parses a patch from a JSON value (for example the `patch` member of a push change).
    pub fn from_value(value: Value) -> Result<Self, BandwidthError> {
        serde_json::from_value(value).map(JsonPatch).map_err(|e| BandwidthError::InvalidPatch(e.to_string()))
    }

    /// Parses a patch from JSON text.
    pub fn from_slice(json: &[u8]) -> Result<Self, BandwidthError> {
        serde_json::from_slice(json).map(JsonPatch).map_err(|e| BandwidthError::InvalidPatch(e.to_string()))
    }

    pub fn to_value(&self) -> Value {
        // A patch is made of pointers and JSON values: serializing it cannot fail.
        serde_json::to_value(&self.0).unwrap_or(Value::Null)
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.0.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }

    /// The target path (a JSON Pointer) of every operation, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.0.iter().map(|op| op.path().as_str())
    }

    /// The top-level members of an object that the patch writes to (the first token of each
    /// target path, decoded; `move` also changes its source). Useful to tell which fields a
    /// client changed. An operation on the whole document (path `""`) is reported as `""`.
    pub fn touched_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        let mut note = |pointer: &str| {
            let field = first_token(pointer);
            if !fields.contains(&field) {
                fields.push(field);
            }
        };
        for op in &self.0.0 {
            match op {
                json_patch::PatchOperation::Test(_) => {}
                json_patch::PatchOperation::Move(m) => {
                    note(m.from.as_str());
                    note(m.path.as_str());
                }
                other => note(other.path().as_str()),
            }
        }
        fields
    }
}

/// The first reference token of a JSON Pointer, unescaped (`""` for the whole document).
fn first_token(pointer: &str) -> String {
    let rest = pointer.strip_prefix('/').unwrap_or("");
    let raw = rest.split('/').next().unwrap_or("");
    raw.replace("~1", "/").replace("~0", "~")
}

impl fmt::Display for JsonPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The RFC 6902 patch that turns `old` into `new`: `apply(old, diff(old, new)) == new`.
///
/// Objects are compared member by member and arrays index by index (trailing elements added or
/// removed), so a one-field edit is one `replace`. No `move`/`copy` is ever emitted.
pub fn diff(old: &Value, new: &Value) -> JsonPatch {
    JsonPatch(json_patch::diff(old, new))
}

/// Applies `patch` to `doc` atomically: on success `doc` is the patched document; on failure
/// `doc` is exactly as it was and the error names the failing operation.
///
/// The patch runs on a copy that replaces `doc` only once every operation has succeeded. That
/// costs one clone of the document (records are at most 256 KiB), and buys atomicity that does
/// not depend on undoing each kind of operation correctly.
///
/// `test` compares numbers by value, as RFC 6902 §4.6 requires (`1` equals `1.0`), where a plain
/// `serde_json::Value` comparison would tell them apart.
pub fn apply(doc: &mut Value, patch: &JsonPatch) -> Result<(), BandwidthError> {
    let mut work = doc.clone();
    for (index, op) in patch.0.0.iter().enumerate() {
        let failed =
            |reason: String| BandwidthError::PatchFailed { index, path: op.path().to_string(), reason };
        match op {
            json_patch::PatchOperation::Test(test) => match work.pointer(test.path.as_str()) {
                Some(found) if json_equal(found, &test.value) => {}
                Some(_) => return Err(failed("value did not match".to_owned())),
                None => return Err(failed("path is invalid".to_owned())),
            },
            other => json_patch::patch_unsafe(&mut work, std::slice::from_ref(other))
                .map_err(|e| failed(e.kind.to_string()))?,
        }
    }
    *doc = work;
    Ok(())
}

/// JSON equality of RFC 6902 §4.6: numbers by numeric value, objects regardless of member order.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            // Mixed signs of integers beyond i64, or a float on either side.
            _ if x.is_f64() || y.is_f64() => x.as_f64() == y.as_f64(),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Applies an RFC 7396 merge patch to `doc` (never fails: every JSON value is a merge patch).
///
/// A non-object patch replaces the document; an object patch removes the members it sets to
/// `null`, merges object members recursively and replaces everything else, arrays included.
pub fn merge_apply(doc: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    if let Value::Object(target) = doc {
        for (key, value) in members {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_apply(target.entry(key.as_str()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The RFC 7396 merge patch that turns `old` into `new`, if one exists.
///
/// A merge patch uses `null` to mean "remove this member", so it cannot set a member to `null`.
/// When `new` has a `null` member that `old` does not have with the same value (at the same
/// place, outside arrays, which are replaced whole), no merge patch can express the change and
/// this returns [`BandwidthError::MergePatchUnrepresentable`] naming the first such member.
/// Otherwise `merge_apply(old, merge_diff(old, new)?) == new`. A non-object `new` is its own
/// patch (it replaces the document); `null` is a valid patch meaning "the document is null".
pub fn merge_diff(old: &Value, new: &Value) -> Result<Value, BandwidthError> {
    let mut pointer = String::new();
    merge_diff_at(old, new, &mut pointer)
}

fn merge_diff_at(old: &Value, new: &Value, pointer: &mut String) -> Result<Value, BandwidthError> {
    let Value::Object(new_members) = new else { return Ok(new.clone()) };
    let Value::Object(old_members) = old else {
        // The target is not an object: applying starts from `{}`, so every member of `new` is added,
        // and a null member anywhere in it would be dropped.
        check_no_null_members(new_members, pointer)?;
        return Ok(new.clone());
    };
    let mut patch = Map::new();
    for key in old_members.keys() {
        if !new_members.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, new_value) in new_members {
        let old_value = old_members.get(key);
        if old_value == Some(new_value) {
            continue;
        }
        let len = pointer.len();
        push_token(pointer, key);
        let entry = match (old_value, new_value) {
            (_, Value::Null) => {
                return Err(BandwidthError::MergePatchUnrepresentable { pointer: pointer.clone() });
            }
            (Some(old_value), new_value) => merge_diff_at(old_value, new_value, pointer)?,
            (None, new_value) => merge_diff_at(&Value::Null, new_value, pointer)?,
        };
        pointer.truncate(len);
        patch.insert(key.clone(), entry);
    }
    Ok(Value::Object(patch))
}

fn check_no_null_members(members: &Map<String, Value>, pointer: &mut String) -> Result<(), BandwidthError> {
    for (key, value) in members {
        let len = pointer.len();
        push_token(pointer, key);
        match value {
            Value::Null => {
                return Err(BandwidthError::MergePatchUnrepresentable { pointer: pointer.clone() });
            }
            Value::Object(inner) => check_no_null_members(inner, pointer)?,
            _ => {}
        }
        pointer.truncate(len);
    }
    Ok(())
}

/// Appends `/token` to a JSON Pointer, escaping `~` and `/` (RFC 6901).
fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// The ways to send a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeltaKind {
    /// RFC 6902 JSON Patch (the protocol's `patch`).
    JsonPatch,
    /// RFC 7396 merge patch.
    MergePatch,
    /// The whole new document (the protocol's `data`).
    Full,
}

/// A change in the form that serializes smallest.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    JsonPatch(JsonPatch),
    MergePatch(Value),
    Full(Value),
}

impl Delta {
    pub fn kind(&self) -> DeltaKind {
        match self {
            Delta::JsonPatch(_) => DeltaKind::JsonPatch,
            Delta::MergePatch(_) => DeltaKind::MergePatch,
            Delta::Full(_) => DeltaKind::Full,
        }
    }

    /// Turns the old document into the new one.
    pub fn apply_to(&self, doc: &mut Value) -> Result<(), BandwidthError> {
        match self {
            Delta::JsonPatch(p) => apply(doc, p),
            Delta::MergePatch(p) => {
                merge_apply(doc, p);
                Ok(())
            }
            Delta::Full(v) => {
                doc.clone_from(v);
                Ok(())
            }
        }
    }

    /// The delta as JSON (the patch array, the merge patch object, or the document).
    pub fn to_value(&self) -> Value {
        match self {
            Delta::JsonPatch(p) => p.to_value(),
            Delta::MergePatch(v) | Delta::Full(v) => v.clone(),
        }
    }
}

/// The chosen delta and what it saves.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaChoice {
    pub delta: Delta,
    /// Serialized size (compact JSON) of `delta`.
    pub bytes: usize,
    /// Serialized size of the full new document.
    pub full_bytes: usize,
}

impl DeltaChoice {
    pub fn bytes_saved(&self) -> usize {
        self.full_bytes.saturating_sub(self.bytes)
    }
}

/// The smallest (compact serialized bytes) of a JSON Patch, a merge patch and the full new
/// document that turns `old` into `new`. See [`smallest_delta_of`].
pub fn smallest_delta(old: &Value, new: &Value) -> DeltaChoice {
    smallest_delta_of(old, new, &[DeltaKind::JsonPatch, DeltaKind::MergePatch])
}

/// The smallest among the full document and the `allowed` kinds of patch (the protocol's pull
/// sends only JSON Patch or full data: pass `&[DeltaKind::JsonPatch]`).
///
/// A merge patch is a candidate only when one can express the change ([`merge_diff`]). Ties
/// go to the full document (nothing to apply), then to JSON Patch.
pub fn smallest_delta_of(old: &Value, new: &Value, allowed: &[DeltaKind]) -> DeltaChoice {
    let full_bytes = serialized_len(new);
    let mut best = (DeltaKind::Full, full_bytes);
    let mut patch = None;
    let mut merge = None;
    if allowed.contains(&DeltaKind::JsonPatch) {
        let p = diff(old, new);
        let n = serialized_len(&p);
        if n < best.1 {
            best = (DeltaKind::JsonPatch, n);
        }
        patch = Some(p);
    }
    if allowed.contains(&DeltaKind::MergePatch)
        && let Ok(m) = merge_diff(old, new)
    {
        let n = serialized_len(&m);
        if n < best.1 {
            best = (DeltaKind::MergePatch, n);
        }
        merge = Some(m);
    }
    let delta = match (best.0, patch, merge) {
        (DeltaKind::JsonPatch, Some(p), _) => Delta::JsonPatch(p),
        (DeltaKind::MergePatch, _, Some(m)) => Delta::MergePatch(m),
        _ => Delta::Full(new.clone()),
    };
    DeltaChoice { delta, bytes: best.1, full_bytes }
}

/// Length of the compact JSON serialization of `value`, without building the string.
pub fn serialized_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing JSON values into a counter cannot fail; a type that can fail counts as huge.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}
