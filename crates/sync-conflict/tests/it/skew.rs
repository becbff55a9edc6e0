//! Clock-skew correction (PROTOCOL.md 4.3).

use proptest::prelude::*;
use sync_conflict::{ConflictError, DEFAULT_MAX_CLOCK_SKEW, correct_clock_skew};
use time::{Duration, OffsetDateTime};

use crate::at;

#[test]
fn a_device_behind_the_server_is_moved_forward() {
    // The device's clock says 09:00 when the server's says 10:00.
    let c = correct_clock_skew(at(-62), at(-60), at(0), DEFAULT_MAX_CLOCK_SKEW).unwrap();
    assert!(c.applied);
    assert_eq!(c.skew, Duration::hours(1));
    assert_eq!(c.modified_at, at(-2));
    assert_eq!(c.applied_skew(), Duration::hours(1));
}

#[test]
fn a_device_ahead_of_the_server_is_moved_back() {
    let c = correct_clock_skew(at(30), at(31), at(1), DEFAULT_MAX_CLOCK_SKEW).unwrap();
    assert_eq!(c.skew, Duration::minutes(-30));
    assert_eq!(c.modified_at, at(0));
}

#[test]
fn a_skew_within_the_threshold_is_measured_but_not_applied() {
    let now = at(0);
    for skew in [Duration::ZERO, Duration::seconds(2), Duration::seconds(-2), Duration::milliseconds(1500)] {
        let c = correct_clock_skew(at(-5), now - skew, now, DEFAULT_MAX_CLOCK_SKEW).unwrap();
        assert!(!c.applied, "{skew}");
        assert_eq!(c.skew, skew);
        assert_eq!(c.modified_at, at(-5));
        assert_eq!(c.applied_skew(), Duration::ZERO);
    }
    let c =
        correct_clock_skew(at(-5), now - Duration::milliseconds(2001), now, DEFAULT_MAX_CLOCK_SKEW).unwrap();
    assert!(c.applied);
}

#[test]
fn leaving_the_time_range_is_an_error_not_a_panic() {
    let err = correct_clock_skew(
        OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT),
        OffsetDateTime::UNIX_EPOCH,
        at(0),
        DEFAULT_MAX_CLOCK_SKEW,
    )
    .unwrap_err();
    assert!(matches!(err, ConflictError::TimeOutOfRange(_)));
}

proptest! {
    #[test]
    fn correction_makes_the_device_clock_agree_with_the_server(
        device_offset_s in -86_400i64..86_400,
        age_s in 0i64..3_600,
        threshold_s in 0i64..10,
    ) {
        let server_now = at(0);
        let client_time = server_now + Duration::seconds(device_offset_s);
        let modified_at = client_time - Duration::seconds(age_s);
        let c = correct_clock_skew(modified_at, client_time, server_now, Duration::seconds(threshold_s)).unwrap();
        prop_assert_eq!(c.skew, Duration::seconds(-device_offset_s));
        prop_assert_eq!(c.applied, device_offset_s.abs() > threshold_s);
        if c.applied {
            // The change's age as the device saw it, measured on the server's clock.
            prop_assert_eq!(c.modified_at, server_now - Duration::seconds(age_s));
        } else {
            prop_assert_eq!(c.modified_at, modified_at);
        }
    }
}
