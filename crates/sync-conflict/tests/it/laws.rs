//! Property tests: the laws every policy keeps.

use proptest::{prelude::*, sample::select};
use serde_json::{Map, Value, json};
use sync_conflict::{ConflictInput, Policy, Reason, RecordState, Resolution, Winner, resolve};
use sync_state_machine::workflow;

use crate::at;

const TICKET_STATES: [&str; 7] = ["NEW", "OPEN", "INPROGRESS", "ONHOLD", "RESOLVED", "CLOSED", "CANCELLED"];
const KEYS: [&str; 9] =
    ["a", "b", "c", "obj", "status", "escalation_level", "escalated_by", "priority", "comments"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..4).prop_map(Value::from),
        select(vec!["x", "y", "z"]).prop_map(Value::from),
    ]
}

fn nested() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(select(vec!["p", "q", "r"]), scalar(), 0..3)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn comment() -> impl Strategy<Value = Value> {
    (select(vec!["1", "2", "3", "4"]), 0u32..4, select(vec!["hi", "ok"])).prop_map(|(id, minute, text)| {
        json!({"id": id, "at": format!("2026-11-22T09:0{minute}:00Z"), "text": text, "author": "u"})
    })
}

/// A value for `key`: typed for the critical fields most of the time, anything otherwise.
fn field(key: &'static str) -> BoxedStrategy<Value> {
    match key {
        "status" => prop_oneof![4 => select(TICKET_STATES.to_vec()).prop_map(Value::from), 1 => scalar()].boxed(),
        "escalation_level" => (0i64..6).prop_map(Value::from).boxed(),
        "priority" => select(vec!["LOW", "medium", "High", "CRITICAL", "other"]).prop_map(Value::from).boxed(),
        "comments" => prop::collection::vec(comment(), 0..4).prop_map(Value::Array).boxed(),
        "obj" => prop_oneof![3 => nested(), 1 => scalar()].boxed(),
        _ => prop_oneof![4 => scalar(), 1 => nested(), 1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::Array)]
            .boxed(),
    }
}

fn data() -> impl Strategy<Value = Map<String, Value>> {
    KEYS.iter()
        .map(|k| proptest::option::weighted(0.7, field(k)).prop_map(move |v| (*k, v)))
        .collect::<Vec<_>>()
        .prop_map(|fields| fields.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))).collect())
}

#[derive(Debug, Clone)]
enum Edit {
    Keep,
    Remove,
    Set(Value),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    KEYS.iter()
        .map(|k| prop_oneof![6 => Just(Edit::Keep), 1 => Just(Edit::Remove), 3 => field(k).prop_map(Edit::Set)])
        .collect::<Vec<_>>()
}

fn apply(base: &Map<String, Value>, edits: &[Edit]) -> Map<String, Value> {
    let mut out = base.clone();
    for (key, edit) in KEYS.iter().zip(edits) {
        match edit {
            Edit::Keep => {}
            Edit::Remove => {
                out.remove(*key);
            }
            Edit::Set(v) => {
                out.insert((*key).to_owned(), v.clone());
            }
        }
    }
    out
}

fn meta(deletes: f64) -> impl Strategy<Value = (i64, &'static str, bool)> {
    (0i64..3, select(vec!["d1", "d2", "d3"]), prop::bool::weighted(deletes))
}

fn state(data: Map<String, Value>, (minutes, device, deleted): (i64, &str, bool)) -> RecordState {
    RecordState { data, deleted, modified_at: at(minutes), device_id: device.to_owned() }
}

/// A base version and two states edited from it, sometimes deleted.
#[derive(Debug, Clone)]
struct Conflict {
    base: RecordState,
    server: RecordState,
    client: RecordState,
}

fn conflict() -> impl Strategy<Value = Conflict> {
    conflict_with(0.1)
}

/// Conflicts between two live states.
fn live_conflict() -> impl Strategy<Value = Conflict> {
    conflict_with(0.0)
}

fn conflict_with(deletes: f64) -> impl Strategy<Value = Conflict> {
    (data(), edits(), edits(), meta(deletes), meta(deletes), meta(deletes)).prop_map(
        |(base, se, ce, bm, sm, cm)| {
            let server = state(apply(&base, &se), sm);
            let client = state(apply(&base, &ce), cm);
            Conflict { base: state(base, (bm.0 - 5, bm.1, false)), server, client }
        },
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    select(Policy::ALL.to_vec())
}

fn level(data: &Map<String, Value>) -> i64 {
    data.get("escalation_level").and_then(Value::as_i64).unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_policy_is_deterministic(c in conflict(), p in policy(), with_base: bool, with_wf: bool) {
        let base = with_base.then_some(&c.base);
        let wf = if with_wf { workflow("ticket") } else { None };
        let first = resolve(p, &ConflictInput::new(&c.server, &c.client).with_base(base).with_workflow(wf));
        let copy = c.clone();
        let input = ConflictInput::new(&copy.server, &copy.client)
            .with_base(with_base.then_some(&copy.base))
            .with_workflow(wf);
        let second = resolve(p, &input);
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(first.strategy, p);
    }

    #[test]
    fn the_winner_names_the_state(c in conflict(), p in policy(), with_base: bool, with_wf: bool) {
        let wf = if with_wf { workflow("ticket") } else { None };
        let input = ConflictInput::new(&c.server, &c.client).with_base(with_base.then_some(&c.base)).with_workflow(wf);
        let r = resolve(p, &input);
        match r.winner {
            Winner::Server | Winner::None => prop_assert_eq!(&*r.state, &c.server),
            Winner::Client => prop_assert_eq!(&*r.state, &c.client),
            Winner::Merged => {
                prop_assert!(r.state.data != c.server.data && r.state.data != c.client.data);
                prop_assert!(!r.state.deleted);
            }
        }
        prop_assert_eq!(r.resolution == Resolution::ManualRequired, p == Policy::Manual);
        prop_assert_eq!(r.winner == Winner::None, p == Policy::Manual);
    }

    #[test]
    fn most_recent_wins_does_not_depend_on_which_side_is_which(c in conflict(), with_base: bool) {
        let base = with_base.then_some(&c.base);
        let forward = resolve(Policy::MostRecentWins, &ConflictInput::new(&c.server, &c.client).with_base(base));
        let swapped = resolve(Policy::MostRecentWins, &ConflictInput::new(&c.client, &c.server).with_base(base));
        prop_assert_eq!(&*forward.state, &*swapped.state);
    }

    #[test]
    fn field_merge_with_one_side_unchanged_is_the_other(c in conflict()) {
        let x = &c.client;
        let base = &c.base;
        for (server, client) in [(base, x), (x, base)] {
            let r = resolve(Policy::FieldMerge, &ConflictInput::new(server, client).with_base(Some(base)));
            prop_assert!(r.state.same_content(x), "{:?}", r);
        }
    }

    #[test]
    fn fields_changed_on_one_side_only_survive_a_merge(c in live_conflict()) {
        let input = ConflictInput::new(&c.server, &c.client).with_base(Some(&c.base));
        let r = resolve(Policy::FieldMerge, &input);
        let (b, s, m) = (&c.base.data, &c.server.data, &r.state.data);
        let cd = &c.client.data;
        for key in KEYS {
            let (bv, sv, cv, mv) = (b.get(key), s.get(key), cd.get(key), m.get(key));
            if sv == bv && cv != bv {
                prop_assert_eq!(mv, cv, "client-only change of {} lost", key);
            }
            if cv == bv && sv != bv {
                prop_assert_eq!(mv, sv, "server-only change of {} lost", key);
            }
        }
    }

    #[test]
    fn preserve_escalation_never_lowers_the_escalation_level(
        c in live_conflict(), with_base: bool, with_wf: bool,
    ) {
        let wf = if with_wf { workflow("ticket") } else { None };
        let input = ConflictInput::new(&c.server, &c.client).with_base(with_base.then_some(&c.base)).with_workflow(wf);
        let r = resolve(Policy::PreserveEscalation, &input);
        let result = level(&r.state.data);
        prop_assert!(result >= level(&c.server.data));
        if r.details.reason != Some(Reason::WorkflowViolation) {
            prop_assert!(result >= level(&c.client.data), "{:?}", r);
        }
    }

    #[test]
    fn server_wins_returns_the_server_state_unchanged(c in conflict(), with_wf: bool) {
        let wf = if with_wf { workflow("ticket") } else { None };
        let input = ConflictInput::new(&c.server, &c.client).with_base(Some(&c.base)).with_workflow(wf);
        let r = resolve(Policy::ServerWins, &input);
        prop_assert_eq!(&*r.state, &c.server);
        prop_assert_eq!(r.winner, Winner::Server);
        prop_assert!(matches!(r.state, std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn resolving_again_against_the_result_changes_nothing(
        c in conflict(), p in policy(), with_base: bool, with_wf: bool,
    ) {
        let base = with_base.then_some(&c.base);
        let wf = if with_wf { workflow("ticket") } else { None };
        let first = resolve(p, &ConflictInput::new(&c.server, &c.client).with_base(base).with_workflow(wf));
        // The result is stored; the same change arrives again (a retry).
        let stored = first.state.clone().into_owned();
        let again = resolve(p, &ConflictInput::new(&stored, &c.client).with_base(base).with_workflow(wf));
        prop_assert_eq!(&*again.state, &stored, "first: {:?}", first);
        // And a result resolved against itself is itself.
        let own = resolve(p, &ConflictInput::new(&stored, &stored).with_base(base).with_workflow(wf));
        prop_assert_eq!(&*own.state, &stored);
    }

    #[test]
    fn no_result_breaks_the_workflow(c in conflict(), p in policy(), with_base: bool) {
        let wf = workflow("ticket");
        let input = ConflictInput::new(&c.server, &c.client).with_base(with_base.then_some(&c.base)).with_workflow(wf);
        let r = resolve(p, &input);
        let status = |s: &RecordState| s.data.get("status").and_then(Value::as_str).map(str::to_owned);
        if r.winner != Winner::Server && !r.state.deleted && !c.server.deleted
            && let (Some(from), Some(to)) = (status(&c.server), status(&r.state))
        {
            prop_assert!(from == to || wf.is_some_and(|w| w.reachable(&from, &to)), "{from} -> {to}");
        }
    }

    #[test]
    fn details_serialise_and_come_back(c in conflict(), p in policy(), with_base: bool) {
        let r = resolve(p, &ConflictInput::new(&c.server, &c.client).with_base(with_base.then_some(&c.base)));
        let text = serde_json::to_string(&r).unwrap();
        let back: sync_conflict::ResolutionResult<'static> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, r);
    }
}
