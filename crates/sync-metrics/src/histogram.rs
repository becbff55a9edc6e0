//! Lock-free duration histograms: Prometheus buckets (exact counts at configured bounds) and a
//! log-linear histogram for quantiles with a bounded relative error.
//!
//! Two structures because they answer different questions: Prometheus needs the same `le` bounds
//! on every scrape (and humans want round ones), while p50/p95/p99 need resolution everywhere.
//! The log-linear one has 8 sub-buckets per power of two of microseconds, so a quantile read
//! from it is within 6.25 % of a value that was recorded (below 16 µs: within 0.5 µs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Values below this many microseconds get one bucket each.
const LINEAR: u64 = 16;
/// Sub-buckets per power of two (3 bits).
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// The first power of two past the linear part: 2^4 = 16 µs.
const FIRST_GROUP: u32 = 4;
/// The last power of two with its own group: 2^35 µs ≈ 9.5 h; longer goes into the last bucket.
const LAST_GROUP: u32 = 35;
pub(crate) const FINE_LEN: usize = (LINEAR + (LAST_GROUP - FIRST_GROUP + 1) as u64 * SUB) as usize;

fn fine_index(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let group = 63 - micros.leading_zeros();
    if group > LAST_GROUP {
        return FINE_LEN - 1;
    }
    let sub = (micros >> (group - SUB_BITS)) & (SUB - 1);
    (LINEAR + u64::from(group - FIRST_GROUP) * SUB + sub) as usize
}

/// The lower bound and width of a fine bucket, in microseconds.
fn fine_bucket(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < LINEAR {
        return (index, 1);
    }
    let group = (index - LINEAR) / SUB + u64::from(FIRST_GROUP);
    let sub = (index - LINEAR) % SUB;
    let width = 1u64 << (group - u64::from(SUB_BITS));
    ((SUB + sub) * width, width)
}

/// The value reported for a quantile that falls into a fine bucket: its midpoint, except for
/// the open-ended last bucket, which reports its lower bound.
fn fine_representative(index: usize) -> Duration {
    let (lower, width) = fine_bucket(index);
    let nanos = if index == FINE_LEN - 1 { lower * 1000 } else { lower * 1000 + width * 500 };
    Duration::from_nanos(nanos)
}

pub(crate) fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
pub(crate) struct DurationHistogram {
    /// Counts per Prometheus bucket (not cumulative); the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    fine: Box<[AtomicU64]>,
}

impl DurationHistogram {
    pub(crate) fn new(bucket_bounds: usize) -> Self {
        Self {
            buckets: (0..=bucket_bounds).map(|_| AtomicU64::new(0)).collect(),
            fine: (0..FINE_LEN).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// `bounds_ns` must be the bounds this histogram was made for (strictly increasing).
    #[inline]
    pub(crate) fn record(&self, bounds_ns: &[u64], nanos: u64) {
        let bucket = bounds_ns.partition_point(|&bound| bound < nanos);
        if let Some(counter) = self.buckets.get(bucket) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(counter) = self.fine.get(fine_index(nanos / 1000)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn read(&self) -> HistogramReading {
        HistogramReading {
            buckets: self.buckets.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            fine: self.fine.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
        }
    }
}

/// Plain counts read from a [`DurationHistogram`].
#[derive(Debug, Clone)]
pub(crate) struct HistogramReading {
    pub(crate) buckets: Vec<u64>,
    pub(crate) fine: Vec<u64>,
}

impl HistogramReading {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |acc, &c| acc.saturating_add(c))
    }

    /// Nearest-rank quantile from the fine histogram; `None` when nothing was recorded.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.fine.iter().fold(0u64, |acc, &c| acc.saturating_add(c));
        if total == 0 {
            return None;
        }
        let rank = nearest_rank(q, total);
        let mut seen = 0u64;
        for (index, &count) in self.fine.iter().enumerate() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return Some(fine_representative(index));
            }
        }
        Some(fine_representative(FINE_LEN - 1))
    }
}

/// The 1-based nearest rank of quantile `q` among `n` values: `ceil(q × n)`, within `1..=n`.
pub(crate) fn nearest_rank(q: f64, n: u64) -> u64 {
    let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
    let exact = q * n as f64;
    // 0.95 × 20 must be rank 19 even if the product comes out a hair above 19.
    let nearest = exact.round();
    let rank = if (exact - nearest).abs() < 1e-9 { nearest } else { exact.ceil() };
    // `as` saturates; the product is at most n.
    let rank = rank as u64;
    rank.clamp(1, n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fine_buckets_tile_the_range() {
        let mut expected_lower = 0;
        for index in 0..FINE_LEN {
            let (lower, width) = fine_bucket(index);
            assert_eq!(lower, expected_lower, "bucket {index}");
            assert_eq!(fine_index(lower), index);
            assert_eq!(fine_index(lower + width - 1), index);
            expected_lower = lower + width;
        }
        assert_eq!(fine_index(u64::MAX), FINE_LEN - 1);
    }

    #[test]
    fn representative_is_within_the_bound() {
        for micros in (0..100_000u64).chain((1..36).map(|s| 1u64 << s)).chain([3_600_000_000]) {
            let got = fine_representative(fine_index(micros)).as_nanos() as f64;
            let want = (micros * 1000) as f64;
            let err = (got - want).abs();
            assert!(err <= 500.0 || err / want <= 0.0625, "{micros} µs → {got} ns");
        }
    }

    #[test]
    fn nearest_rank_edges() {
        assert_eq!(nearest_rank(0.95, 100), 95);
        assert_eq!(nearest_rank(0.95, 1), 1);
        assert_eq!(nearest_rank(0.0, 10), 1);
        assert_eq!(nearest_rank(1.0, 10), 10);
        assert_eq!(nearest_rank(0.5, 3), 2);
    }
}
