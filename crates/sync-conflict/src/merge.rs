//! The three-way field merge, and the total order that breaks exact ties.

use std::{borrow::Cow, cmp::Ordering, sync::OnceLock};

use serde_json::{Map, Number, Value};

use crate::{MergeDetails, RecordState};

/// A side of the conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// Which side most_recent_wins favours: the later `modified_at`, then the greater device
/// id; `None` when both are equal, and then each value decides by [`cmp_value`].
pub(crate) fn recency(server: &RecordState, client: &RecordState) -> Option<Side> {
    match client.modified_at.cmp(&server.modified_at).then_with(|| client.device_id.cmp(&server.device_id)) {
        Ordering::Greater => Some(Side::Client),
        Ordering::Less => Some(Side::Server),
        Ordering::Equal => None,
    }
}

/// The side whose value wins a both-changed field.
pub(crate) fn pick(recent: Option<Side>, server: Option<&Value>, client: Option<&Value>) -> Side {
    match recent {
        Some(side) => side,
        None => match cmp_opt_value(client, server) {
            Ordering::Greater => Side::Client,
            _ => Side::Server,
        },
    }
}

fn cmp_opt_value(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => cmp_value(a, b),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// A total order on JSON values that is `Equal` exactly when the values are equal: by kind
/// (null < bool < number < string < array < object), then by value.
pub(crate) fn cmp_value(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Number(a), Value::Number(b)) => cmp_number(a, b),
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Array(a), Value::Array(b)) => {
            a.iter().zip(b).map(|(a, b)| cmp_value(a, b)).find(|o| o.is_ne()).unwrap_or(a.len().cmp(&b.len()))
        }
        (Value::Object(a), Value::Object(b)) => cmp_map(a, b),
        (a, b) => kind_rank(a).cmp(&kind_rank(b)),
    }
}

/// Maps compare as their entries sorted by key (whatever order the map keeps).
pub(crate) fn cmp_map(a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
    let mut a: Vec<_> = a.iter().collect();
    let mut b: Vec<_> = b.iter().collect();
    a.sort_unstable_by(|x, y| x.0.cmp(y.0));
    b.sort_unstable_by(|x, y| x.0.cmp(y.0));
    a.iter()
        .zip(&b)
        .map(|((ka, va), (kb, vb))| ka.cmp(kb).then_with(|| cmp_value(va, vb)))
        .find(|o| o.is_ne())
        .unwrap_or(a.len().cmp(&b.len()))
}

fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn cmp_number(a: &Number, b: &Number) -> Ordering {
    let by_value = if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        a.cmp(&b)
    } else if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        a.cmp(&b)
    } else {
        a.as_f64().unwrap_or(f64::NAN).total_cmp(&b.as_f64().unwrap_or(f64::NAN))
    };
    // `1` and `1.0` are different JSON values of equal magnitude: their text decides.
    by_value.then_with(|| if a == b { Ordering::Equal } else { a.to_string().cmp(&b.to_string()) })
}

/// A total order on whole states, for the one tie most_recent_wins cannot break by time or
/// device: a live state is greater than a tombstone, then the data decides.
pub(crate) fn cmp_content(a: &RecordState, b: &RecordState) -> Ordering {
    (!a.deleted).cmp(&!b.deleted).then_with(|| cmp_map(&a.data, &b.data))
}

/// The top-level fields on which `server` and `client` differ.
pub(crate) fn differing_fields<'a>(
    server: &'a Map<String, Value>,
    client: &'a Map<String, Value>,
) -> Vec<Cow<'a, str>> {
    let mut out = Vec::new();
    for_each_key(None, server, client, |key, _, s, c| {
        if s != c {
            out.push(Cow::Borrowed(key.as_str()));
        }
    });
    out
}

/// Whether serde_json's `Map` keeps its keys sorted (a `BTreeMap`, the default) rather
/// than in insertion order (the `preserve_order` feature, which another crate of the build
/// may switch on).
fn maps_are_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut map = Map::new();
        map.insert("b".to_owned(), Value::Null);
        map.insert("a".to_owned(), Value::Null);
        map.keys().next().is_some_and(|k| k == "a")
    })
}

/// Calls `f(key, base, server, client)` once for every key of `server` or `client`. On
/// sorted maps one merge-join pass, in key order; otherwise by lookups, the server's keys
/// first.
fn for_each_key<'a>(
    base: Option<&'a Map<String, Value>>,
    server: &'a Map<String, Value>,
    client: &'a Map<String, Value>,
    mut f: impl FnMut(&'a String, Option<&'a Value>, Option<&'a Value>, Option<&'a Value>),
) {
    if !maps_are_sorted() {
        for (key, s) in server {
            f(key, base.and_then(|b| b.get(key)), Some(s), client.get(key));
        }
        for (key, c) in client {
            if !server.contains_key(key) {
                f(key, base.and_then(|b| b.get(key)), None, Some(c));
            }
        }
        return;
    }
    let mut si = server.iter().peekable();
    let mut ci = client.iter().peekable();
    let mut bi = base.map(|b| b.iter().peekable());
    loop {
        let (s, c) = match (si.peek(), ci.peek()) {
            (None, None) => break,
            (Some(_), None) => (si.next(), None),
            (None, Some(_)) => (None, ci.next()),
            (Some((ks, _)), Some((kc, _))) => match ks.cmp(kc) {
                Ordering::Less => (si.next(), None),
                Ordering::Greater => (None, ci.next()),
                Ordering::Equal => (si.next(), ci.next()),
            },
        };
        let Some(key) = s.or(c).map(|(k, _)| k) else { break };
        let b = bi.as_mut().and_then(|bi| {
            while bi.next_if(|(kb, _)| *kb < key).is_some() {}
            bi.next_if(|(kb, _)| *kb == key).map(|(_, v)| v)
        });
        f(key, b, s.map(|(_, v)| v), c.map(|(_, v)| v));
    }
}

/// How a merged map differs from the server's: a field takes the client's value (`None`:
/// removed), or a nested merge of both.
#[derive(Debug)]
pub(crate) enum Patch<'a> {
    Client(Option<&'a Value>),
    Merged(Value),
}

/// Three-way merge of `server` and `client` against `base`, as the patches that turn the
/// server's map into the merged one (nothing is cloned until [`apply`]), recording where
/// each field's value came from under `prefix` (`None` at the top level).
///
/// Per key: equal on both sides → that value; changed on one side only → that side; both
/// objects → merged by key (against the base object, if the base had one); otherwise
/// changed on both sides → most_recent_wins for the field. An absent key is a value
/// (removal is a change).
///
/// Every differing field is listed in `details.from_client` or `details.from_server`, so
/// no client field means the server's map, and no server field the client's.
pub(crate) fn merge_plan<'a>(
    base: Option<&'a Map<String, Value>>,
    server: &'a Map<String, Value>,
    client: &'a Map<String, Value>,
    recent: Option<Side>,
    prefix: Option<&str>,
    details: &mut MergeDetails<'a>,
) -> Vec<(&'a String, Patch<'a>)> {
    let mut plan = Vec::new();
    for_each_key(base, server, client, |key, b, s, c| {
        if let Some(patch) = merge_value(key, b, s, c, recent, prefix, details) {
            plan.push((key, patch));
        }
    });
    plan
}

/// The server's map with the plan's patches applied.
pub(crate) fn apply(server: &Map<String, Value>, plan: Vec<(&String, Patch<'_>)>) -> Map<String, Value> {
    let mut out = server.clone();
    for (key, patch) in plan {
        match patch {
            Patch::Client(Some(v)) => out.insert(key.clone(), v.clone()),
            Patch::Client(None) => out.remove(key),
            Patch::Merged(v) => out.insert(key.clone(), v),
        };
    }
    out
}

/// The patch for one key; `None` keeps the server's value.
fn merge_value<'a>(
    key: &'a str,
    b: Option<&'a Value>,
    s: Option<&'a Value>,
    c: Option<&'a Value>,
    recent: Option<Side>,
    prefix: Option<&str>,
    details: &mut MergeDetails<'a>,
) -> Option<Patch<'a>> {
    if s == c {
        return None;
    }
    let name = || match prefix {
        None => Cow::Borrowed(key),
        Some(prefix) => Cow::Owned(format!("{prefix}.{key}")),
    };
    if c == b {
        details.from_server.push(name());
        return None;
    }
    if s == b {
        details.from_client.push(name());
        return Some(Patch::Client(c));
    }
    if let (Some(Value::Object(s)), Some(Value::Object(c))) = (s, c) {
        let base = match b {
            Some(Value::Object(b)) => Some(b),
            _ => None,
        };
        let path = name();
        let plan = merge_plan(base, s, c, recent, Some(&path), details);
        return (!plan.is_empty()).then(|| Patch::Merged(Value::Object(apply(s, plan))));
    }
    let name = name();
    details.conflicting.push(name.clone());
    match pick(recent, s, c) {
        Side::Server => {
            details.from_server.push(name);
            None
        }
        Side::Client => {
            details.from_client.push(name);
            Some(Patch::Client(c))
        }
    }
}
