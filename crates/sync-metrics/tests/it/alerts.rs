//! Alert rules on snapshots: each rule at its threshold, the empty window, configuration.

use proptest::prelude::*;
use sync_metrics::{Alert, AlertRule, AlertRules, Severity, Snapshot};

fn snapshot(total: u64, failed: u64, conflict_rate_pct: f64) -> Snapshot {
    Snapshot {
        total_sync_requests: total,
        successful_syncs: total - failed,
        failed_syncs: failed,
        success_rate_pct: if total == 0 { 100.0 } else { 100.0 * (total - failed) as f64 / total as f64 },
        conflict_rate_pct,
        total_conflicts: 7,
        ..Snapshot::default()
    }
}

fn rules_fired(alerts: &[Alert]) -> Vec<AlertRule> {
    alerts.iter().map(|a| a.rule).collect()
}

#[test]
fn the_empty_window_raises_nothing() {
    assert!(AlertRules::default().evaluate(&Snapshot::default(), 0).is_empty());
}

#[test]
fn success_rate_below_90_fires_critical() {
    let rules = AlertRules::default();
    assert!(rules.evaluate(&snapshot(100, 10, 0.0), 0).is_empty()); // exactly 90 %
    let alerts = rules.evaluate(&snapshot(100, 11, 0.0), 0);
    assert_eq!(rules_fired(&alerts), [AlertRule::LowSuccessRate]);
    let alert = &alerts[0];
    assert_eq!((alert.value, alert.threshold, alert.severity), (89.0, 90.0, Severity::Critical));
    assert_eq!(alert.message, "sync success rate 89.0 % is below 90 % (11 of 100 requests failed)");
}

#[test]
fn conflict_rate_above_10_fires_warning() {
    let rules = AlertRules::default();
    assert!(rules.evaluate(&snapshot(100, 0, 10.0), 0).is_empty());
    let alerts = rules.evaluate(&snapshot(100, 0, 10.5), 0);
    assert_eq!(rules_fired(&alerts), [AlertRule::HighConflictRate]);
    assert_eq!(alerts[0].severity, Severity::Warning);
    assert_eq!(alerts[0].message, "conflict rate 10.5 % is above 10 % (7 conflicts)");
}

#[test]
fn more_than_10_unhealthy_devices_fires() {
    let rules = AlertRules::default();
    assert!(rules.evaluate(&snapshot(0, 0, 0.0), 10).is_empty());
    let alerts = rules.evaluate(&snapshot(0, 0, 0.0), 11);
    assert_eq!(rules_fired(&alerts), [AlertRule::UnhealthyDevices]);
    assert_eq!((alerts[0].value, alerts[0].threshold), (11.0, 10.0));
    assert_eq!(alerts[0].message, "11 devices have a health score below 50, more than 10");
}

#[test]
fn all_rules_fire_in_order() {
    let alerts = AlertRules::default().evaluate(&snapshot(10, 5, 50.0), 20);
    assert_eq!(
        rules_fired(&alerts),
        [AlertRule::LowSuccessRate, AlertRule::HighConflictRate, AlertRule::UnhealthyDevices]
    );
}

#[test]
fn thresholds_are_configurable_and_serde_has_defaults() {
    let rules: AlertRules =
        serde_json::from_str(r#"{"min_success_rate_pct": 99, "min_sync_requests": 20}"#).unwrap();
    assert_eq!(rules.max_conflict_rate_pct, 10.0);
    assert!(rules.evaluate(&snapshot(10, 5, 0.0), 0).is_empty(), "too few requests to judge");
    assert_eq!(rules_fired(&rules.evaluate(&snapshot(100, 2, 0.0), 0)), [AlertRule::LowSuccessRate]);
    assert!(serde_json::from_str::<AlertRules>(r#"{"min_success": 99}"#).is_err());
    assert!(AlertRules { max_conflict_rate_pct: f64::INFINITY, ..AlertRules::default() }.validate().is_err());
}

#[test]
fn an_alert_serializes_with_snake_case_words() {
    let alert = &AlertRules::default().evaluate(&snapshot(100, 50, 0.0), 0)[0];
    let json = serde_json::to_value(alert).unwrap();
    assert_eq!(json["rule"], "low_success_rate");
    assert_eq!(json["severity"], "critical");
    assert_eq!(json["value"], 50.0);
    assert_eq!(json["threshold"], 90.0);
}

proptest! {
    #[test]
    fn an_alert_fires_exactly_when_its_rule_says(
        total in 0u64..1000,
        failed_frac in 0.0f64..=1.0,
        conflict_rate in 0.0f64..=100.0,
        devices in 0u64..30,
    ) {
        let failed = (total as f64 * failed_frac) as u64;
        let s = snapshot(total, failed, conflict_rate);
        let fired = rules_fired(&AlertRules::default().evaluate(&s, devices));
        prop_assert_eq!(fired.contains(&AlertRule::LowSuccessRate), total > 0 && s.success_rate_pct < 90.0);
        prop_assert_eq!(fired.contains(&AlertRule::HighConflictRate), total > 0 && conflict_rate > 10.0);
        prop_assert_eq!(fired.contains(&AlertRule::UnhealthyDevices), devices > 10);
    }
}
