//! The window planner's laws: advice within the next day, deterministic, with a basis that
//! falls back from the device to the fleet to the rule, and devices spread over their hours.

use proptest::prelude::*;
use sync_insight::{Basis, DeviceHistory, InsightError, Network, SyncAttempt, WindowConfig, plan_windows};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-20 13:25 UTC);

/// A device that syncs successfully at each of `hours` on each of `days` days before NOW.
fn regular(id: &str, hours: &[u8], days: i64) -> DeviceHistory {
    let mut attempts = Vec::new();
    for d in 1..=days {
        let midnight = NOW.replace_time(time::Time::MIDNIGHT) - Duration::days(d);
        for &h in hours {
            attempts.push(SyncAttempt {
                at: midnight + Duration::hours(i64::from(h)) + Duration::minutes(10),
                succeeded: true,
                duration_ms: 300.0,
                network: Network::Wifi,
            });
        }
    }
    DeviceHistory { device_id: id.to_owned(), attempts }
}

fn arbitrary_history() -> impl Strategy<Value = Vec<DeviceHistory>> {
    let attempt =
        (0i64..(20 * 24 * 60), any::<bool>(), 0.0f64..10_000.0, 0u8..3).prop_map(|(m, ok, ms, n)| {
            SyncAttempt {
                at: NOW - Duration::minutes(m),
                succeeded: ok,
                duration_ms: ms,
                network: [Network::Wifi, Network::Cellular, Network::Unknown][usize::from(n)],
            }
        });
    prop::collection::vec(prop::collection::vec(attempt, 0..60), 0..12).prop_map(|devices| {
        devices
            .into_iter()
            .enumerate()
            .map(|(i, attempts)| DeviceHistory { device_id: format!("d{i}"), attempts })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn advice_is_within_the_day_and_deterministic(
        devices in arbitrary_history(),
        load in prop::array::uniform24(0.0f64..1_000.0),
        minutes in 0i64..(7 * 24 * 60),
    ) {
        let now = NOW + Duration::minutes(minutes);
        let config = WindowConfig::default();
        let advice = plan_windows(&devices, &load, now, &config).unwrap();
        prop_assert_eq!(&advice, &plan_windows(&devices, &load, now, &config).unwrap());
        prop_assert_eq!(advice.len(), devices.len());
        for (a, d) in advice.iter().zip(&devices) {
            prop_assert_eq!(&a.device_id, &d.device_id);
            prop_assert!(a.next_window.start >= now);
            prop_assert!(a.next_window.start < now + Duration::days(1));
            prop_assert_eq!(a.next_window.end - a.next_window.start, Duration::minutes(60));
            prop_assert_eq!(a.next_window.start.hour(), a.hour);
            prop_assert!((0.0..=1.0).contains(&a.confidence));
            if a.basis == Basis::Rule {
                prop_assert_eq!(a.confidence, 0.0);
            }
        }
    }
}

#[test]
fn the_basis_falls_back_from_device_to_fleet_to_rule() {
    let load = [10.0; 24];
    let config = WindowConfig::default();
    let devices = vec![regular("veteran", &[7, 20], 14), regular("newcomer", &[7], 1)];
    let advice = plan_windows(&devices, &load, NOW, &config).unwrap();
    assert_eq!(advice[0].basis, Basis::DeviceHistory);
    assert!([7, 20].contains(&advice[0].hour), "{advice:?}");
    assert!(advice[0].confidence > 0.5, "{advice:?}");
    assert_eq!(advice[1].basis, Basis::Fleet);
    assert!(advice[1].confidence > 0.0 && advice[1].confidence < advice[0].confidence, "{advice:?}");

    // Nobody has a history: the peak-hours rule (13:25 is in 09–18, so wait for 18:00).
    let blank = vec![DeviceHistory { device_id: "blank".into(), attempts: vec![] }];
    let advice = plan_windows(&blank, &load, NOW, &config).unwrap();
    assert_eq!(advice[0].basis, Basis::Rule);
    assert_eq!(advice[0].next_window.start, datetime!(2026-11-20 18:00 UTC));
    assert_eq!(advice[0].confidence, 0.0);
    let evening = datetime!(2026-11-20 21:10 UTC);
    let advice = plan_windows(&blank, &load, evening, &config).unwrap();
    assert_eq!(advice[0].next_window.start, evening);
    assert_eq!(serde_json::to_value(advice[0].basis).unwrap(), "rule");
}

#[test]
fn devices_are_spread_over_their_good_hours_away_from_the_peak() {
    // Twenty identical devices that sync well at 10:00 (the fleet's peak) and at 21:00.
    let devices: Vec<_> = (0..20).map(|i| regular(&format!("d{i:02}"), &[10, 10, 21], 14)).collect();
    let mut load = [5.0; 24];
    load[10] = 400.0;
    load[21] = 20.0;
    let advice = plan_windows(&devices, &load, NOW, &WindowConfig::default()).unwrap();
    let at = |h: u8| advice.iter().filter(|a| a.hour == h).count();
    assert_eq!(at(10) + at(21), 20, "{advice:?}");
    assert!(at(21) > at(10), "{advice:?}");
    assert!(advice.iter().all(|a| a.basis == Basis::DeviceHistory));
}

#[test]
fn hours_where_syncs_fail_are_avoided() {
    let mut device = regular("flaky-evenings", &[8, 19], 14);
    for a in &mut device.attempts {
        if a.at.hour() == 19 {
            a.succeeded = false;
        }
    }
    let advice = plan_windows(&[device], &[0.0; 24], NOW, &WindowConfig::default()).unwrap();
    assert_eq!(advice[0].hour, 8);
    assert_eq!(advice[0].next_window.start, datetime!(2026-11-21 08:00 UTC));
}

#[test]
fn bad_input_is_an_error() {
    let mut load = [1.0; 24];
    load[3] = f64::NAN;
    assert!(matches!(
        plan_windows(&[], &load, NOW, &WindowConfig::default()),
        Err(InsightError::NotFinite { .. })
    ));
    let bad = WindowConfig { deferrable_share: 2.0, ..WindowConfig::default() };
    assert!(plan_windows(&[], &[0.0; 24], NOW, &bad).is_err());
    let mut device = regular("d", &[9], 3);
    device.attempts[0].duration_ms = -1.0;
    assert!(plan_windows(&[device], &[0.0; 24], NOW, &WindowConfig::default()).is_err());
}
