//! Device health: the seeds' numbers, edge cases, and the laws of the score.

use proptest::prelude::*;
use sync_metrics::{DeviceHealth, DeviceSync, HealthRules, Problem, count_below};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn device(total: u64, failed: u64, conflicts: u64, hours_ago: f64) -> DeviceHealth {
    DeviceHealth {
        total_syncs: total,
        failed_syncs_count: failed,
        conflicts_encountered: conflicts,
        last_sync_at: Some(NOW - Duration::seconds_f64(hours_ago * 3600.0)),
        ..DeviceHealth::new()
    }
}

fn sync(at: OffsetDateTime, success: bool, duration_ms: f64, conflicts: u64) -> DeviceSync {
    DeviceSync { at, success, duration_ms, conflicts, network_type: None, clock_skew_ms: None }
}

#[test]
fn seeds_example_scores_92_17() {
    let health = device(100, 10, 5, 1.0);
    // 60 × 90/100 + (20 − 20/24) + (20 − 20 × 5/100) = 54 + 19.1667 + 19
    assert_eq!(round2(health.score_at(NOW)), 92.17);
}

#[test]
fn seeds_example_through_record_sync() {
    let mut health = DeviceHealth::new();
    let last = NOW - Duration::hours(1);
    for i in 0..100u64 {
        let at = last - Duration::minutes(100 - i as i64);
        health.record_sync(&sync(at, i % 10 != 0, 150.0, u64::from(i % 20 == 1)));
    }
    health.record_sync(&DeviceSync { clock_skew_ms: Some(-2500), ..sync(last, true, 150.0, 0) });
    // 101 syncs now: check the counts and the score from the record itself.
    assert_eq!(health.total_syncs, 101);
    assert_eq!(health.failed_syncs_count, 10);
    assert_eq!(health.conflicts_encountered, 5);
    assert_eq!(health.last_sync_at, Some(last));
    assert_eq!(health.clock_skew_ms, -2500);
    assert!((health.avg_sync_duration_ms - 150.0).abs() < 1e-9);
    // Recorded at the last sync: full recency points.
    let expected_at_sync = 60.0 * 91.0 / 101.0 + 20.0 + (20.0 - 20.0 * 5.0 / 101.0);
    assert!((health.health_score - expected_at_sync).abs() < 1e-9);
    let expected_now = 60.0 * 91.0 / 101.0 + (20.0 - 20.0 / 24.0) + (20.0 - 20.0 * 5.0 / 101.0);
    assert!((health.score_at(NOW) - expected_now).abs() < 1e-9);
    health.refresh(NOW);
    assert_eq!(health.health_score, health.score_at(NOW));
}

#[test]
fn no_syncs_scores_100() {
    let health = DeviceHealth::new();
    assert_eq!(health.score_at(NOW), 100.0);
    assert_eq!(health.health_score, 100.0);
    assert_eq!(health.success_rate_pct(), None);
    assert!(!health.is_unhealthy(NOW, &HealthRules::default()));
    assert!(!health.is_problematic(&HealthRules::default()));
}

#[test]
fn a_device_silent_for_a_week_loses_the_recency_points() {
    let health = device(50, 0, 0, 24.0 * 7.0);
    assert_eq!(health.score_at(NOW), 80.0);
    // One day is exactly the point where recency reaches 0.
    assert_eq!(device(50, 0, 0, 24.0).score_at(NOW), 80.0);
    assert_eq!(round2(device(50, 0, 0, 12.0).score_at(NOW)), 90.0);
}

#[test]
fn all_failed_with_conflicts_on_every_sync_scores_only_recency() {
    let health = device(10, 10, 30, 0.0);
    assert_eq!(health.score_at(NOW), 20.0);
    assert_eq!(device(10, 10, 30, 48.0).score_at(NOW), 0.0);
}

#[test]
fn a_last_sync_in_the_future_counts_as_just_now() {
    let health = device(10, 0, 0, -5.0);
    assert_eq!(health.score_at(NOW), 100.0);
    assert_eq!(health.hours_since_last_sync(NOW), Some(0.0));
}

#[test]
fn inconsistent_records_stay_in_range() {
    // More failures than syncs, no last sync time: still a number within 0..=100.
    let health = DeviceHealth { total_syncs: 3, failed_syncs_count: 9, ..DeviceHealth::new() };
    assert_eq!(health.score_at(NOW), 20.0);
    assert_eq!(health.success_rate_pct(), Some(0.0));
}

#[test]
fn bad_durations_count_as_zero() {
    let mut health = DeviceHealth::new();
    health.record_sync(&sync(NOW, true, f64::NAN, 0));
    health.record_sync(&sync(NOW, true, -10.0, 0));
    health.record_sync(&sync(NOW, true, f64::INFINITY, 0));
    health.record_sync(&sync(NOW, true, 40.0, 0));
    assert_eq!(health.avg_sync_duration_ms, 10.0);
}

#[test]
fn out_of_order_syncs_keep_the_latest_time_and_latest_reports() {
    let mut health = DeviceHealth::new();
    health.record_sync(&DeviceSync { network_type: Some("wifi".into()), ..sync(NOW, true, 100.0, 0) });
    health.record_sync(&DeviceSync {
        network_type: Some("3g".into()),
        clock_skew_ms: Some(3000),
        ..sync(NOW - Duration::hours(2), false, 300.0, 1)
    });
    assert_eq!(health.last_sync_at, Some(NOW));
    assert_eq!(health.network_type.as_deref(), Some("3g"));
    assert_eq!(health.avg_sync_duration_ms, 200.0);
    // Scored as of the latest sync, not of the older one just recorded.
    assert_eq!(health.health_score, health.score_at(NOW));
}

#[test]
fn problematic_rules() {
    let rules = HealthRules::default();
    let fine = device(100, 5, 0, 0.0);
    assert!(fine.problems(&rules).is_empty());

    let failing = device(100, 6, 0, 0.0);
    assert_eq!(failing.problems(&rules), vec![Problem::TooManyFailures { failed: 6, max: 5 }]);

    let flaky = device(10, 3, 0, 0.0);
    assert_eq!(flaky.problems(&rules), vec![Problem::LowSuccessRate { success_rate_pct: 70.0, min: 80.0 }]);

    let slow = DeviceHealth { avg_sync_duration_ms: 5000.5, ..device(10, 0, 0, 0.0) };
    assert_eq!(slow.problems(&rules), vec![Problem::SlowSyncs { avg_sync_duration_ms: 5000.5, max: 5000.0 }]);
    assert!(!DeviceHealth { avg_sync_duration_ms: 5000.0, ..device(10, 0, 0, 0.0) }.is_problematic(&rules));

    let all = DeviceHealth { avg_sync_duration_ms: 9000.0, ..device(10, 8, 0, 0.0) };
    assert_eq!(all.problems(&rules).len(), 3);
}

#[test]
fn unhealthy_threshold_is_configurable() {
    let health = device(100, 50, 0, 0.0); // 30 + 20 + 20 = 70
    assert_eq!(health.score_at(NOW), 70.0);
    assert!(!health.is_unhealthy(NOW, &HealthRules::default()));
    assert!(health.is_unhealthy(NOW, &HealthRules { unhealthy_below: 75.0, ..HealthRules::default() }));
}

#[test]
fn rules_deserialize_with_defaults_and_reject_unknown_fields() {
    let rules: HealthRules = serde_json::from_str(r#"{"unhealthy_below": 60}"#).unwrap();
    assert_eq!(rules, HealthRules { unhealthy_below: 60.0, ..HealthRules::default() });
    assert!(serde_json::from_str::<HealthRules>(r#"{"unhealthy": 60}"#).is_err());
    assert!(HealthRules { max_avg_duration_ms: f64::NAN, ..HealthRules::default() }.validate().is_err());
    assert!(HealthRules::default().validate().is_ok());
}

#[test]
fn serde_uses_the_protocol_field_names() {
    let health = device(100, 10, 5, 1.0);
    let json = serde_json::to_value(&health).unwrap();
    let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "avg_sync_duration_ms",
            "clock_skew_ms",
            "conflicts_encountered",
            "failed_syncs_count",
            "health_score",
            "last_sync_at",
            "network_type",
            "total_syncs"
        ]
    );
    assert_eq!(json["last_sync_at"], "2026-11-22T09:00:00Z");
    let back: DeviceHealth = serde_json::from_value(json).unwrap();
    assert_eq!(back, health);
}

#[test]
fn count_below_counts_strictly_below() {
    let devices = [device(10, 10, 30, 48.0), device(10, 0, 0, 0.0), device(100, 50, 0, 48.0)];
    // Scores 0, 100, 50.
    assert_eq!(count_below(&devices, NOW, 50.0), 1);
    assert_eq!(count_below(&devices, NOW, 50.1), 2);
}

fn arb_device() -> impl Strategy<Value = DeviceHealth> {
    (0u64..10_000, 0u64..12_000, 0u64..50_000, prop::option::of(-100.0f64..10_000.0)).prop_map(
        |(total, failed, conflicts, hours_ago)| DeviceHealth {
            total_syncs: total,
            failed_syncs_count: failed,
            conflicts_encountered: conflicts,
            last_sync_at: hours_ago.map(|h| NOW - Duration::seconds_f64(h * 3600.0)),
            ..DeviceHealth::new()
        },
    )
}

proptest! {
    #[test]
    fn score_is_within_0_and_100(health in arb_device(), now_offset_h in -1000.0f64..100_000.0) {
        let now = NOW + Duration::seconds_f64(now_offset_h * 3600.0);
        let score = health.score_at(now);
        prop_assert!((0.0..=100.0).contains(&score), "{score}");
    }

    #[test]
    fn more_failures_never_raise_the_score(health in arb_device(), more in 1u64..100) {
        let worse = DeviceHealth {
            failed_syncs_count: health.failed_syncs_count + more,
            ..health.clone()
        };
        prop_assert!(worse.score_at(NOW) <= health.score_at(NOW));
    }

    #[test]
    fn a_failed_sync_never_scores_above_a_successful_one(
        outcomes in prop::collection::vec((any::<bool>(), 0.0f64..10_000.0, 0u64..3), 0..50),
        duration in 0.0f64..10_000.0,
        conflicts in 0u64..3,
    ) {
        let mut health = DeviceHealth::new();
        for (i, (success, ms, c)) in outcomes.into_iter().enumerate() {
            health.record_sync(&sync(NOW - Duration::minutes(100 - i as i64), success, ms, c));
        }
        let mut ok = health.clone();
        ok.record_sync(&sync(NOW, true, duration, conflicts));
        let mut failed = health;
        failed.record_sync(&sync(NOW, false, duration, conflicts));
        prop_assert!(failed.health_score <= ok.health_score);
        prop_assert!((0.0..=100.0).contains(&failed.health_score));
    }

    #[test]
    fn the_score_never_rises_as_time_passes(health in arb_device(), a in 0.0f64..1000.0, b in 0.0f64..1000.0) {
        let (early, late) = if a <= b { (a, b) } else { (b, a) };
        let at = |h: f64| NOW + Duration::seconds_f64(h * 3600.0);
        prop_assert!(health.score_at(at(late)) <= health.score_at(at(early)));
    }

    #[test]
    fn the_running_average_is_the_mean(durations in prop::collection::vec(0.0f64..100_000.0, 1..200)) {
        let mut health = DeviceHealth::new();
        for &ms in &durations {
            health.record_sync(&sync(NOW, true, ms, 0));
        }
        let mean = durations.iter().sum::<f64>() / durations.len() as f64;
        prop_assert!((health.avg_sync_duration_ms - mean).abs() <= 1e-6 * mean.max(1.0));
    }
}
