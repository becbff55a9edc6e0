//! Clock-skew correction of device times (PROTOCOL.md 4.3).

use time::{Duration, OffsetDateTime};

use crate::ConflictError;

/// The protocol's default `max_clock_skew`.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::seconds(2);

/// A device time after correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkewCorrection {
    /// The time to store and to compare in most_recent_wins.
    pub modified_at: OffsetDateTime,
    /// The measured skew, `server_now - client_time` (positive: the device is behind).
    pub skew: Duration,
    /// Whether `|skew|` exceeded the threshold, so that `modified_at` was moved by it.
    pub applied: bool,
}

impl SkewCorrection {
    /// The skew that was added to the device time (zero when within the threshold): what
    /// device health records.
    pub fn applied_skew(&self) -> Duration {
        if self.applied { self.skew } else { Duration::ZERO }
    }
}

/// Corrects a device time by the device's clock skew: `skew = server_now - client_time`,
/// added to `modified_at` when `|skew| > max_skew`. Errors only when the corrected time
/// leaves the representable range.
pub fn correct_clock_skew(
    modified_at: OffsetDateTime,
    client_time: OffsetDateTime,
    server_now: OffsetDateTime,
    max_skew: Duration,
) -> Result<SkewCorrection, ConflictError> {
    let skew = server_now - client_time;
    if skew.abs() <= max_skew.abs() {
        return Ok(SkewCorrection { modified_at, skew, applied: false });
    }
    let corrected = modified_at.checked_add(skew).ok_or_else(|| {
        ConflictError::TimeOutOfRange(format!("{modified_at} corrected by a clock skew of {skew}"))
    })?;
    Ok(SkewCorrection { modified_at: corrected, skew, applied: true })
}
