//! The detector's laws: silence on a constant series and before enough history, scale
//! invariance of its judgement, a step change found, and explanations an operator reads.

use proptest::prelude::*;
use sync_insight::{Baseline, Bucket, DetectorConfig, InsightError, Metric, Scope, Severity, detect};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A Monday.
const START: OffsetDateTime = datetime!(2026-11-02 00:00 UTC);

fn config() -> DetectorConfig {
    DetectorConfig { bucket_minutes: 15, ..DetectorConfig::default() }
}

fn at(i: i64) -> OffsetDateTime {
    START + Duration::minutes(15 * i)
}

/// A deterministic pseudo-random number in [0, 1) from a seed and an index.
fn noise(seed: u64, i: u64) -> f64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A series with a daily rhythm and noise: `days` of 15-minute buckets from START.
fn rhythmic(seed: u64, days: i64, peak: f64) -> Vec<Bucket> {
    (0..days * 96)
        .map(|i| {
            let t = at(i);
            let busy = if (8..18).contains(&t.hour()) { 1.0 } else { 0.2 };
            let weekly = if t.weekday().number_days_from_monday() >= 5 { 0.3 } else { 1.0 };
            let syncs = (peak * busy * weekly * (0.8 + 0.4 * noise(seed, i as u64))).round() as u64;
            let failures = (syncs as f64 * 0.03 * 2.0 * noise(seed ^ 1, i as u64)).round() as u64;
            let changes = syncs * 3;
            let conflicts = (changes as f64 * 0.04 * 2.0 * noise(seed ^ 2, i as u64)).round() as u64;
            let p95 = 800.0 * (0.9 + 0.2 * noise(seed ^ 3, i as u64));
            Bucket { start: t, syncs, failures, changes, conflicts, p95_duration_ms: Some(p95) }
        })
        .collect()
}

fn scaled(buckets: &[Bucket], c: u64) -> Vec<Bucket> {
    buckets
        .iter()
        .map(|b| Bucket {
            syncs: b.syncs * c,
            failures: b.failures * c,
            changes: b.changes * c,
            conflicts: b.conflicts * c,
            ..b.clone()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_constant_series_raises_no_alarm(
        syncs in 0u64..400,
        fail_share in 0.0f64..1.0,
        changes in 0u64..1_000,
        conflict_share in 0.0f64..1.0,
        p95 in 1.0f64..60_000.0,
        offset in 0i64..(7 * 96),
        len in 1usize..5,
    ) {
        let bucket = |i: i64| Bucket {
            start: at(i),
            syncs,
            failures: (syncs as f64 * fail_share) as u64,
            changes,
            conflicts: (changes as f64 * conflict_share) as u64,
            p95_duration_ms: (syncs > 0).then_some(p95),
        };
        let history: Vec<Bucket> = (0..14 * 96).map(bucket).collect();
        let window: Vec<Bucket> = (0..len as i64).map(|j| bucket(14 * 96 + offset + j)).collect();
        let found = detect(&history, &window, &Scope::tenant(), &config()).unwrap();
        prop_assert!(found.is_empty(), "{found:?}");
    }

    /// Multiplying every count by c keeps what the window is judged against and how far it
    /// lies from it; more events are more evidence, so anomalies are only ever added and never
    /// lose severity.
    #[test]
    fn scaling_the_counts_keeps_the_judgement(
        seed in any::<u64>(),
        c in 2u64..8,
        offset in 0i64..(7 * 96),
        fail_jump in 0.0f64..0.5,
        volume_factor in 0.0f64..3.0,
    ) {
        let history = rhythmic(seed, 21, 60.0);
        let mut window = rhythmic(seed ^ 99, 29, 60.0)[(21 * 96 + offset) as usize..][..2].to_vec();
        for b in &mut window {
            b.syncs = (b.syncs as f64 * volume_factor).round() as u64;
            b.failures = (b.syncs as f64 * fail_jump).round() as u64;
            b.changes = b.syncs * 3;
            b.conflicts = b.conflicts.min(b.changes);
        }
        let one = detect(&history, &window, &Scope::tenant(), &config()).unwrap();
        let many = detect(&scaled(&history, c), &scaled(&window, c), &Scope::tenant(), &config()).unwrap();
        for a in &one {
            let b = many.iter().find(|b| b.metric == a.metric);
            prop_assert!(b.is_some(), "{:?} lost at scale {c}: {many:?}", a.metric);
            let b = b.unwrap();
            prop_assert!(b.severity >= a.severity);
            let k = if a.metric == Metric::SyncVolume { c as f64 } else { 1.0 };
            prop_assert!((b.expected - k * a.expected).abs() <= 1e-9 * (1.0 + b.expected.abs()));
            prop_assert!((b.observed - k * a.observed).abs() <= 1e-9 * (1.0 + b.observed.abs()));
            if a.metric == Metric::SyncVolume {
                prop_assert!(b.score.abs() >= a.score.abs() - 1e-9);
            } else {
                prop_assert!((b.score - a.score).abs() <= 1e-9 * (1.0 + a.score.abs()));
            }
        }
    }

    #[test]
    fn a_step_change_is_found(
        seed in any::<u64>(),
        offset in 0i64..(7 * 96),
        failure_rate in 0.25f64..0.9,
        slowdown in 4.0f64..20.0,
    ) {
        let history = rhythmic(seed, 14, 200.0);
        let mut b = Bucket {
            start: at(14 * 96 + offset),
            syncs: 200,
            failures: (200.0 * failure_rate) as u64,
            changes: 600,
            conflicts: 24,
            p95_duration_ms: Some(800.0 * slowdown),
        };
        let found = detect(&history, std::slice::from_ref(&b), &Scope::tenant(), &config()).unwrap();
        prop_assert!(found.iter().any(|a| a.metric == Metric::FailureRate), "{found:?}");
        prop_assert!(found.iter().any(|a| a.metric == Metric::P95Duration), "{found:?}");
        // A volume collapse inside the busy hours and a surge elsewhere. Not a collapse in
        // the first or last busy hour: the detector reads the usual volume between hour
        // centres, so at the edge of this series' step from 200 to 40 syncs (17:45, say) the
        // usual range is wide enough to hold 0 (found by proptest, seed in
        // tests/proptest-regressions).
        b.failures = 0;
        b.p95_duration_ms = Some(800.0);
        let busy = (9..17).contains(&b.start.hour()) && b.start.weekday().number_days_from_monday() < 5;
        b.syncs = if busy { 0 } else { 2_000 };
        b.changes = b.syncs * 3;
        b.conflicts = 0;
        let found = detect(&history, std::slice::from_ref(&b), &Scope::tenant(), &config()).unwrap();
        prop_assert!(found.iter().any(|a| a.metric == Metric::SyncVolume), "{found:?}");
    }

    #[test]
    fn every_anomaly_is_outside_its_band(seed in any::<u64>(), offset in 0i64..(7 * 96), jump in 0.0f64..1.0) {
        let history = rhythmic(seed, 14, 80.0);
        let mut window = rhythmic(seed ^ 5, 22, 80.0)[(14 * 96 + offset) as usize..][..1].to_vec();
        window[0].failures = (window[0].syncs as f64 * jump) as u64;
        for a in detect(&history, &window, &Scope::domain("task"), &config()).unwrap() {
            prop_assert!(a.observed > a.band[1] || a.observed < a.band[0], "{a:?}");
            prop_assert!(a.band[0] <= a.expected && a.expected <= a.band[1]);
            prop_assert!(!a.explanation.is_empty());
        }
    }
}

#[test]
fn silent_until_a_week_of_history() {
    let history = rhythmic(1, 6, 200.0);
    let baseline = Baseline::fit(&history, &config()).unwrap();
    assert!(!baseline.is_ready());
    let window = [Bucket {
        start: at(7 * 96 + 40),
        syncs: 200,
        failures: 190,
        changes: 600,
        conflicts: 500,
        p95_duration_ms: Some(60_000.0),
    }];
    assert!(baseline.evaluate(&window, &Scope::tenant()).unwrap().is_empty());
    // With a week it speaks.
    let history = rhythmic(1, 7, 200.0);
    let found = detect(&history, &window, &Scope::tenant(), &config()).unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn explains_itself_like_the_issue() {
    // Conflicts at 3-6 % on Tuesdays 10:00, then 38 %.
    let history: Vec<Bucket> = (0..21 * 96)
        .map(|i| {
            let changes = 400;
            let conflicts = 12 + (i % 4) as u64 * 4;
            Bucket { start: at(i), syncs: 100, failures: 1, changes, conflicts, p95_duration_ms: Some(700.0) }
        })
        .collect();
    let tuesday_ten = datetime!(2026-11-24 10:00 UTC);
    let window = [Bucket {
        start: tuesday_ten,
        syncs: 100,
        failures: 1,
        changes: 400,
        conflicts: 152,
        p95_duration_ms: Some(700.0),
    }];
    let found = detect(&history, &window, &Scope::domain("ticket"), &config()).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0];
    assert_eq!(a.metric, Metric::ConflictRate);
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!((a.window_start, a.window_end), (tuesday_ten, tuesday_ten + Duration::minutes(15)));
    assert!(
        a.explanation.starts_with("conflict rate of ticket 38 % (152 of 400 changes) against a usual"),
        "{}",
        a.explanation
    );
    assert!(a.explanation.ends_with("% for Tuesdays 10:00"), "{}", a.explanation);
    assert!(a.expected > 0.03 && a.expected < 0.06, "{a:?}");
    // The wire shape of section 12, without the id.
    let json = serde_json::to_value(a).unwrap();
    assert_eq!(json["metric"], "conflict_rate");
    assert_eq!(json["severity"], "critical");
    assert_eq!(json["scope"], serde_json::json!({"domain": "ticket"}));
    assert_eq!(json["window_start"], "2026-11-24T10:00:00Z");
    assert!(json["band"].as_array().is_some_and(|b| b.len() == 2));
}

#[test]
fn a_few_events_are_no_evidence() {
    let history = rhythmic(2, 14, 60.0);
    let thin = [Bucket {
        start: at(14 * 96 + 40),
        syncs: 2,
        failures: 1,
        changes: 3,
        conflicts: 1,
        p95_duration_ms: Some(5_000.0),
    }];
    // Two syncs where sixty are usual is a volume drop, but the rates and the p95 of so few
    // events say nothing.
    let found = detect(&history, &thin, &Scope::tenant(), &config()).unwrap();
    assert!(found.iter().all(|a| a.metric == Metric::SyncVolume), "{found:?}");
}

#[test]
fn rejects_malformed_input() {
    let mut history = rhythmic(3, 8, 50.0);
    history[5].failures = history[5].syncs + 1;
    assert!(matches!(
        Baseline::fit(&history, &config()),
        Err(InsightError::CountAboveTotal { part: "failures", .. })
    ));
    let mut history = rhythmic(3, 8, 50.0);
    history.swap(3, 4);
    assert!(matches!(Baseline::fit(&history, &config()), Err(InsightError::Unordered { .. })));
    let mut history = rhythmic(3, 8, 50.0);
    history[2].p95_duration_ms = Some(f64::NAN);
    assert!(matches!(Baseline::fit(&history, &config()), Err(InsightError::NotFinite { .. })));
    let bad = DetectorConfig { bucket_minutes: 7, ..config() };
    assert!(matches!(Baseline::fit(&[], &bad), Err(InsightError::BucketWidth { minutes: 7 })));
    let baseline = Baseline::fit(&rhythmic(3, 8, 50.0), &config()).unwrap();
    assert!(matches!(baseline.evaluate(&[], &Scope::tenant()), Err(InsightError::EmptyWindow)));
}

#[test]
fn missing_buckets_count_as_silence() {
    // Only busy-hour buckets are given; the gaps are nights with no syncs.
    let history: Vec<Bucket> =
        rhythmic(4, 14, 100.0).into_iter().filter(|b| (8..18).contains(&b.start.hour())).collect();
    let baseline = Baseline::fit(&history, &config()).unwrap();
    let night = baseline.level(Metric::SyncVolume, datetime!(2026-11-18 03:00 UTC)).unwrap();
    assert_eq!(night.center, 0.0);
    let day = baseline.level(Metric::SyncVolume, datetime!(2026-11-18 11:00 UTC)).unwrap();
    assert!(day.center > 50.0, "{day:?}");
}
