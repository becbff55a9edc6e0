//! preserve_escalation's rules: the ticket's critical fields never move backwards.

use std::{borrow::Cow, cmp::Ordering};

use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    CriticalFields,
    merge::{Side, cmp_value, pick},
};

type Data = Map<String, Value>;

/// Applies the critical-field rules to `data` (the plain merge's result), cloning it only
/// when a rule changes something. Each field a rule changed is pushed to `preserved`.
pub(crate) fn preserve_critical<'a>(
    data: &mut Cow<'a, Data>,
    base: Option<&'a Data>,
    server: &'a Data,
    client: &'a Data,
    recent: Option<Side>,
    cf: &'a CriticalFields<'a>,
    preserved: &mut Vec<Cow<'a, str>>,
) {
    let mut set = |field: &'a str, value: Option<&Value>| {
        if data.get(field) == value {
            return;
        }
        match value {
            Some(v) => data.to_mut().insert(field.to_owned(), v.clone()),
            None => data.to_mut().remove(field),
        };
        if !preserved.iter().any(|p| p == field) {
            preserved.push(Cow::Borrowed(field));
        }
    };

    // Escalation: the higher level, with that side's companions.
    let higher = match cmp_level(level(server, cf.escalation_level), level(client, cf.escalation_level)) {
        Ordering::Greater => Some(server),
        Ordering::Less => Some(client),
        Ordering::Equal => None,
    };
    if let Some(side) = higher {
        set(cf.escalation_level, side.get(cf.escalation_level));
        for companion in cf.escalation_companions {
            set(companion, side.get(*companion));
        }
    }

    // Priority: the more urgent.
    match priority_rank(server, cf).cmp(&priority_rank(client, cf)) {
        Ordering::Greater => set(cf.priority, server.get(cf.priority)),
        Ordering::Less => set(cf.priority, client.get(cf.priority)),
        Ordering::Equal => {}
    }

    // A terminal status stands; the server's first, as nothing can leave it.
    if is_terminal(server, cf) {
        set(cf.status, server.get(cf.status));
    } else if is_terminal(client, cf) {
        set(cf.status, client.get(cf.status));
    }

    // Comments: the union by id, ordered by time (cloned only when it is news).
    if let Some(united) = unite_comments(base, server, client, recent, cf) {
        let unchanged = matches!(data.get(cf.comments), Some(Value::Array(items))
            if items.len() == united.len() && items.iter().zip(&united).all(|(a, b)| a == *b));
        if !unchanged {
            let united = Value::Array(united.into_iter().cloned().collect());
            data.to_mut().insert(cf.comments.to_owned(), united);
            if !preserved.iter().any(|p| p == cf.comments) {
                preserved.push(Cow::Borrowed(cf.comments));
            }
        }
    }
}

/// A level: absent or null is 0; a number its value; anything else ranks below every number.
fn level(data: &Data, field: &str) -> Option<f64> {
    match data.get(field) {
        None | Some(Value::Null) => Some(0.0),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    }
}

fn cmp_level(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// The rank of a priority word; absent or unknown ranks below the least urgent.
fn priority_rank(data: &Data, cf: &CriticalFields<'_>) -> Option<usize> {
    let word = data.get(cf.priority)?.as_str()?;
    cf.priority_order.iter().position(|p| p.eq_ignore_ascii_case(word))
}

fn is_terminal(data: &Data, cf: &CriticalFields<'_>) -> bool {
    data.get(cf.status)
        .and_then(Value::as_str)
        .is_some_and(|s| cf.terminal_statuses.iter().any(|t| t.eq_ignore_ascii_case(s)))
}

/// Both sides' comments united by id (a comment without an id is kept once per distinct
/// value). A comment both sides hold with different contents is settled like a field:
/// the side that changed it from the base, else most_recent_wins. `None` when a side holds
/// something other than an array, or neither side has comments.
fn unite_comments<'v>(
    base: Option<&'v Data>,
    server: &'v Data,
    client: &'v Data,
    recent: Option<Side>,
    cf: &CriticalFields<'_>,
) -> Option<Vec<&'v Value>> {
    let (s, c) = (comment_items(server, cf)?, comment_items(client, cf)?);
    if s.is_none() && c.is_none() {
        return None;
    }
    let (s, c) = (s.map_or(&[][..], Vec::as_slice), c.map_or(&[][..], Vec::as_slice));
    let base_items = base.and_then(|b| b.get(cf.comments)).and_then(Value::as_array);
    let base_items = base_items.map_or_else(Vec::new, |items| distinct(items, cf));

    let mut united = distinct(s, cf);
    for item in distinct(c, cf) {
        let Some(id) = comment_id(item, cf) else {
            if !united.contains(&item) {
                united.push(item);
            }
            continue;
        };
        match united.iter().position(|u| comment_id(u, cf) == Some(id)) {
            None => united.push(item),
            Some(i) if united[i] == item => {}
            Some(i) => {
                let from_base = base_items.iter().copied().find(|b| comment_id(b, cf) == Some(id));
                let theirs = united[i];
                let take_client = if Some(item) == from_base {
                    false
                } else if Some(theirs) == from_base {
                    true
                } else {
                    pick(recent, Some(theirs), Some(item)) == Side::Client
                };
                if take_client {
                    united[i] = item;
                }
            }
        }
    }

    let mut keyed: Vec<(CommentKey<'_>, &Value)> =
        united.into_iter().map(|item| (CommentKey::of(item, cf), item)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Some(keyed.into_iter().map(|(_, item)| item).collect())
}

/// One side's comments with each id once (of several comments with one id, the greatest
/// by [`cmp_value`], so that the order within the side does not matter) and each id-less
/// comment once.
fn distinct<'v>(items: &'v [Value], cf: &CriticalFields<'_>) -> Vec<&'v Value> {
    let mut out: Vec<&Value> = Vec::with_capacity(items.len());
    for item in items {
        let held = match comment_id(item, cf) {
            Some(id) => out.iter().position(|u| comment_id(u, cf) == Some(id)),
            None => out.iter().position(|u| *u == item),
        };
        match held {
            None => out.push(item),
            Some(i) => {
                if cmp_value(item, out[i]).is_gt() {
                    out[i] = item;
                }
            }
        }
    }
    out
}

/// A side's comments: `Some(None)` when it has none, `None` when it holds a non-array.
fn comment_items<'v>(data: &'v Data, cf: &CriticalFields<'_>) -> Option<Option<&'v Vec<Value>>> {
    match data.get(cf.comments) {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(items)) => Some(Some(items)),
        Some(_) => None,
    }
}

fn comment_id<'v>(item: &'v Value, cf: &CriticalFields<'_>) -> Option<&'v Value> {
    item.get(cf.comment_id).filter(|id| !id.is_null())
}

/// Orders comments by `at` (as a time when it parses), comments without one last, then by
/// the raw `at` text, then by id.
#[derive(Debug)]
struct CommentKey<'v> {
    missing_at: bool,
    at: Option<OffsetDateTime>,
    at_text: Option<&'v str>,
    id: Option<&'v Value>,
}

impl<'v> CommentKey<'v> {
    fn of(item: &'v Value, cf: &CriticalFields<'_>) -> Self {
        let at_text = item.get(cf.comment_at).and_then(Value::as_str);
        Self {
            missing_at: at_text.is_none(),
            at: at_text.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
            at_text,
            id: item.get(cf.comment_id),
        }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        self.missing_at
            .cmp(&other.missing_at)
            .then_with(|| match (self.at, other.at) {
                (Some(a), Some(b)) => a.cmp(&b),
                (a, b) => b.is_some().cmp(&a.is_some()),
            })
            .then_with(|| self.at_text.cmp(&other.at_text))
            .then_with(|| match (self.id, other.id) {
                (Some(a), Some(b)) => cmp_value(a, b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            })
    }
}
