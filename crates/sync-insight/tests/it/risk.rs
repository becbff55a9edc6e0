//! The conflict-risk model's laws: probabilities in 0..1, deterministic training, reasons that
//! explain, and errors for bad input.

use std::sync::OnceLock;

use proptest::prelude::*;
use sync_insight::{InsightError, Model, RecordActivity, TrainConfig, baseline_score, eval};

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::train(&eval::risk_examples(11, 3_000), &TrainConfig::default()).unwrap())
}

fn activity() -> impl Strategy<Value = RecordActivity> {
    (
        prop::sample::select(vec!["task", "ticket", "work_order", "journal", "never_seen"]),
        0u32..1_000,
        0u32..100_000,
        0.001f64..10_000.0,
        prop::option::of(0.0f64..1e6),
        0u32..100_000,
        0u8..24,
        0u32..100_000,
    )
        .prop_map(
            |(domain, distinct_devices, edits, window_hours, since, unit_size, hour, past_conflicts)| {
                RecordActivity {
                    domain: domain.to_owned(),
                    distinct_devices,
                    edits,
                    window_hours,
                    hours_since_server_change: since,
                    unit_size,
                    hour,
                    past_conflicts,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn risk_is_a_probability_with_positive_reasons(a in activity()) {
        let p = model().predict(&a).unwrap();
        prop_assert!((0.0..=1.0).contains(&p.risk), "{p:?}");
        prop_assert!(p.reasons.len() <= 3);
        for pair in p.reasons.windows(2) {
            prop_assert!(pair[0].contribution >= pair[1].contribution);
        }
        for r in &p.reasons {
            prop_assert!(r.contribution > 0.0 && !r.explanation.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn training_is_deterministic(seed in any::<u64>(), n in 300usize..800, data_seed in 0u64..1_000) {
        let data = eval::risk_examples(data_seed, n);
        let config = TrainConfig { seed, ..TrainConfig::default() };
        match (Model::train(&data, &config), Model::train(&data, &config)) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(&a, &b);
                prop_assert!(a.weights.iter().all(|w| w.is_finite()));
                prop_assert!(a.holdout_auc.is_none_or(|x| (0.0..=1.0).contains(&x)));
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
        }
    }
}

#[test]
fn the_model_beats_the_baseline_and_ranks_contention_high() {
    let m = model();
    let (auc, base) = (m.holdout_auc.unwrap(), m.baseline_auc.unwrap());
    assert!(auc >= 0.8 && auc > base, "{auc} vs {base}");
    assert_eq!(m.examples, 3_000);
    assert_eq!(m.holdout_examples, 750);
    let quiet = RecordActivity {
        domain: "journal".into(),
        distinct_devices: 1,
        edits: 1,
        window_hours: 24.0,
        hours_since_server_change: Some(200.0),
        unit_size: 3,
        hour: 3,
        past_conflicts: 0,
    };
    let hot = RecordActivity {
        domain: "ticket".into(),
        distinct_devices: 5,
        edits: 60,
        hours_since_server_change: Some(0.1),
        unit_size: 50,
        hour: 10,
        ..quiet.clone()
    };
    let (q, h) = (m.predict(&quiet).unwrap(), m.predict(&hot).unwrap());
    assert!(h.risk > 0.5 && q.risk < 0.05, "{h:?} {q:?}");
    assert!(
        h.reasons.iter().any(|r| r.explanation.contains("5 devices") || r.explanation.contains("60 edits")),
        "{h:?}"
    );
    assert_eq!(baseline_score(&hot), 0.0);
}

#[test]
fn the_model_survives_a_round_trip_through_json() {
    let m = model();
    let text = serde_json::to_string(m).unwrap();
    let back: Model = serde_json::from_str(&text).unwrap();
    let a = eval::risk_examples(5, 1).remove(0).activity;
    assert_eq!(m.predict(&a).unwrap().risk.to_bits(), back.predict(&a).unwrap().risk.to_bits());
}

#[test]
fn bad_input_is_an_error() {
    let mut a = eval::risk_examples(5, 1).remove(0).activity;
    a.window_hours = 0.0;
    assert!(matches!(model().predict(&a), Err(InsightError::OutOfRange { field: "window_hours", .. })));
    a.window_hours = f64::NAN;
    assert!(matches!(model().predict(&a), Err(InsightError::NotFinite { field: "window_hours", .. })));
    a.window_hours = 24.0;
    a.hour = 24;
    assert!(matches!(model().predict(&a), Err(InsightError::OutOfRange { field: "hour", .. })));
    let all_quiet: Vec<_> = eval::risk_examples(5, 200)
        .into_iter()
        .map(|mut e| {
            e.conflicted = false;
            e
        })
        .collect();
    assert!(matches!(
        Model::train(&all_quiet, &TrainConfig::default()),
        Err(InsightError::TooFewExamples { positives: 0, .. })
    ));
    let bad = TrainConfig { holdout_fraction: 1.0, ..TrainConfig::default() };
    assert!(Model::train(&eval::risk_examples(5, 200), &bad).is_err());
}
