//! Fleet insight in the engine: the series it buckets from sync events, the examples the risk
//! model learns from, and the webhook retry schedule (laws), plus the window planner's inputs.

use proptest::prelude::*;
use sync_domain::engine::{
    RiskHistory, SeriesKey, bucket_series, current_activity, next_attempt_at, retry_delay, risk_examples,
};
use sync_domain::store::{EditLite, EventLite, RecordKey, SyncEventKind};

const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;

fn event(at: i64, device: &str, success: bool, ms: f64, domains: &str) -> EventLite {
    EventLite {
        at,
        device_id: device.into(),
        kind: SyncEventKind::Push,
        success,
        duration_ms: ms,
        changes: 2,
        conflicts: 1,
        domains: domains.into(),
    }
}

#[test]
fn events_become_five_minute_buckets_per_tenant_domain_and_device() {
    let t0 = 1_764_000_000_000_000 - 1_764_000_000_000_000 % (5 * MIN);
    let events = vec![
        event(t0, "a", true, 100.0, r#"{"task":{"changes":2,"conflicts":1}}"#),
        event(t0 + MIN, "b", false, 300.0, r#"{"ticket":{"changes":2,"conflicts":0}}"#),
        event(t0 + 5 * MIN, "a", true, 200.0, "{}"),
        // An admin's resolution is not a device sync.
        EventLite { kind: SyncEventKind::Resolve, ..event(t0, "admin", true, 1.0, "{}") },
    ];
    let series = bucket_series(&events).unwrap();
    let tenant = &series[&SeriesKey::Tenant];
    assert_eq!(tenant.len(), 2);
    assert_eq!((tenant[0].syncs, tenant[0].failures, tenant[0].changes, tenant[0].conflicts), (2, 1, 4, 2));
    assert_eq!(tenant[0].p95_duration_ms, Some(300.0));
    assert_eq!(tenant[1].syncs, 1);
    assert_eq!(series[&SeriesKey::Device("a".into())].len(), 2);
    assert!(!series.contains_key(&SeriesKey::Device("admin".into())));
    let task = &series[&SeriesKey::Domain("task".into())];
    assert_eq!((task.len(), task[0].conflicts), (1, 1));
    assert_eq!(series[&SeriesKey::Domain("ticket".into())][0].failures, 1);
}

#[test]
fn risk_examples_label_the_day_after_and_never_look_ahead() {
    let now = 1_764_000_000_000_000;
    let key = |n: u32| RecordKey::new("task", format!("00000000-0000-4000-8000-{n:012}"));
    let mut history = RiskHistory::default();
    // Record 1: edited by two devices every hour for 9 days, and a conflict every 12 hours.
    // Record 2: edited once a day by one device, never conflicting.
    for h in 0..(9 * 24) {
        let at = now - h * HOUR;
        history.edits.push(EditLite { key: key(1), device: format!("d{}", h % 2), at });
        if h % 12 == 0 {
            history.conflicts.push((key(1), at));
        }
        if h % 24 == 0 {
            history.edits.push(EditLite { key: key(2), device: "d9".into(), at });
        }
    }
    let examples = risk_examples(&history, now).unwrap();
    assert!(!examples.is_empty());
    let hot: Vec<_> = examples.iter().filter(|e| e.activity.distinct_devices == 2).collect();
    let cold: Vec<_> = examples.iter().filter(|e| e.activity.distinct_devices == 1).collect();
    assert!(!hot.is_empty() && !cold.is_empty());
    assert!(hot.iter().all(|e| e.conflicted && e.activity.past_conflicts > 0));
    assert!(cold.iter().all(|e| !e.conflicted && e.activity.past_conflicts == 0));
    assert!(examples.iter().all(|e| e.activity.edits >= 1 && e.activity.window_hours == 24.0));
    let now_activity = current_activity(&history, now).unwrap();
    assert_eq!(now_activity.len(), 2);
}

#[test]
fn the_retry_schedule_doubles_from_30_seconds_to_2_hours() {
    let secs: Vec<i64> = (1..=10).map(|n| retry_delay(n).whole_seconds()).collect();
    assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3840, 7200, 7200]);
}

proptest! {
    /// Attempts follow one another by the schedule, stop within the horizon, and always stop.
    #[test]
    fn retries_end_within_the_horizon(first in 0i64..1_000_000_000_000, horizon in 1i64..48, lag in 0i64..5_000_000) {
        let mut at = first;
        let mut attempt = 1;
        let mut last_delay = 0;
        while let Some(next) = next_attempt_at(first, attempt, at, horizon) {
            prop_assert!(next > at);
            prop_assert!(next <= first + horizon * HOUR);
            let delay = next - at;
            prop_assert!(delay >= last_delay);
            last_delay = delay;
            at = next + lag;
            attempt += 1;
            prop_assert!(attempt < 100);
        }
    }
}
