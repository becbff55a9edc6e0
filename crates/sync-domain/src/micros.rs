//! Times as stored: `i64` microseconds since the Unix epoch, UTC.
//!
//! Integers sort and compare the same on every backend and cost no time-zone handling;
//! microseconds keep the precision of RFC 3339 times with fractions that devices send.

use time::OffsetDateTime;

/// Now, in microseconds since the epoch.
pub fn now() -> i64 {
    from_datetime(OffsetDateTime::now_utc())
}

/// A time in microseconds since the epoch (saturating outside ±292,000 years).
pub fn from_datetime(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(if t.unix_timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Microseconds since the epoch as a UTC time, or `None` outside the range `time` supports.
pub fn to_datetime(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

/// A stored time: like [`to_datetime`], with an out-of-range value reported as corrupt data.
pub fn stored(micros: i64) -> crate::Result<OffsetDateTime> {
    to_datetime(micros).ok_or_else(|| crate::Error::Corrupt(format!("stored time {micros} is out of range")))
}

/// Hours as microseconds.
pub const fn hours(h: i64) -> i64 {
    h * 3_600_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = time::macros::datetime!(2026-11-22 10:00:05.123456 UTC);
        let m = from_datetime(t);
        assert_eq!(m, 1_795_341_605_123_456);
        assert_eq!(to_datetime(m), Some(t));
        assert!(to_datetime(i64::MAX).is_none());
        assert_eq!(hours(1), 3_600 * 1_000_000);
    }
}
