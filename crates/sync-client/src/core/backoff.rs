//! Retry delays: exponential backoff with full jitter that honours the server's `Retry-After`.

use std::time::Duration;

/// Retry delays for one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    pub base: Duration,
    /// No delay is longer than this (unless the server asks for longer with `Retry-After`).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_millis(500), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry). `random` is any
    /// uniformly random `u64`: the delay is uniform in `[0, min(max, base·2^attempt)]` ("full
    /// jitter", so that a fleet that failed together does not retry together). With a
    /// `Retry-After` the delay is at least that, plus up to a tenth more of jitter.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        let ceiling =
            self.base.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX)).min(self.max);
        match retry_after {
            Some(after) => after + scale(after / 10, random),
            None => scale(ceiling, random),
        }
    }
}

/// `d` times a fraction in `[0, 1]` taken from `random`.
fn scale(d: Duration, random: u64) -> Duration {
    let nanos = d.as_nanos().min(u128::from(u64::MAX));
    let scaled = nanos * u128::from(random) / u128::from(u64::MAX);
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::Backoff;

    const B: Backoff = Backoff { base: Duration::from_millis(500), max: Duration::from_secs(60) };

    #[test]
    fn table() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // (attempt, Retry-After, random) → delay
        let cases = [
            (0, None, 0, ms(0)),
            (0, None, u64::MAX, ms(500)),
            (3, None, u64::MAX, s(4)),
            (3, None, u64::MAX / 2, ms(2000)),
            (40, None, u64::MAX, s(60)),
            (0, Some(s(5)), 0, s(5)),
            (0, Some(s(5)), u64::MAX, ms(5500)),
            (9, Some(s(120)), u64::MAX, s(132)),
        ];
        for (attempt, after, random, want) in cases {
            let got = B.delay(attempt, after, random);
            let diff = got.abs_diff(want);
            assert!(
                diff < ms(1),
                "attempt {attempt}, Retry-After {after:?}, random {random}: {got:?} not {want:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn within_bounds(attempt in 0u32..100, after in proptest::option::of(0u64..600), random: u64) {
            let after = after.map(Duration::from_secs);
            let d = B.delay(attempt, after, random);
            match after {
                Some(after) => prop_assert!(d >= after && d <= after + after / 10),
                None => prop_assert!(d <= B.max),
            }
        }
    }
}
