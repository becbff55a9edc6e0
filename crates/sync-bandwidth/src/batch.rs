//! Batch sizes by network quality, with an optional byte budget per batch.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BandwidthError, delta::serialized_len};

/// The quality a device reports in `X-Network-Quality`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkQuality {
    Excellent,
    Good,
    Fair,
    Poor,
    /// A value that names none of the above (a newer client, a typo): treated like `fair`.
    Unknown,
}

impl NetworkQuality {
    pub const KNOWN: [NetworkQuality; 4] =
        [NetworkQuality::Excellent, NetworkQuality::Good, NetworkQuality::Fair, NetworkQuality::Poor];

    pub const fn as_str(self) -> &'static str {
        match self {
            NetworkQuality::Excellent => "excellent",
            NetworkQuality::Good => "good",
            NetworkQuality::Fair => "fair",
            NetworkQuality::Poor => "poor",
            NetworkQuality::Unknown => "unknown",
        }
    }

    /// Reads a header value leniently: case-insensitive, blanks ignored, anything else `Unknown`.
    pub fn from_header(value: &str) -> Self {
        value.parse().unwrap_or(NetworkQuality::Unknown)
    }

    /// Items per batch: excellent 100, good 50, fair 25, poor 10, unknown 25.
    pub const fn batch_size(self) -> usize {
        BatchSizes::DEFAULT.for_quality(self)
    }
}

impl fmt::Display for NetworkQuality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NetworkQuality {
    type Err = BandwidthError;

    /// Strict: case-insensitive and trimmed, but only the four known words.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        NetworkQuality::KNOWN
            .into_iter()
            .find(|q| q.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| BandwidthError::UnknownNetworkQuality(s.to_owned()))
    }
}

/// Items per batch for each quality (the seeds' `batch_sizes`), configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSizes {
    pub excellent: usize,
    pub good: usize,
    pub fair: usize,
    pub poor: usize,
    /// For a header value that names no known quality.
    pub unknown: usize,
    /// For a request without the header: the protocol's pull `limit` default (50).
    pub absent: usize,
}

impl BatchSizes {
    pub const DEFAULT: BatchSizes =
        BatchSizes { excellent: 100, good: 50, fair: 25, poor: 10, unknown: 25, absent: 50 };

    pub const fn for_quality(&self, quality: NetworkQuality) -> usize {
        match quality {
            NetworkQuality::Excellent => self.excellent,
            NetworkQuality::Good => self.good,
            NetworkQuality::Fair => self.fair,
            NetworkQuality::Poor => self.poor,
            NetworkQuality::Unknown => self.unknown,
        }
    }

    /// The size for an `X-Network-Quality` header value, or for its absence.
    pub fn for_header(&self, header: Option<&str>) -> usize {
        header.map_or(self.absent, |h| self.for_quality(NetworkQuality::from_header(h)))
    }
}

impl Default for BatchSizes {
    fn default() -> Self {
        BatchSizes::DEFAULT
    }
}

/// How big one batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchLimits {
    /// At most this many items per batch (0 is taken as 1).
    pub max_items: usize,
    /// At most this many bytes per batch, unless a single item is larger (it then goes alone).
    pub max_bytes: Option<usize>,
}

impl BatchLimits {
    pub const fn for_quality(quality: NetworkQuality) -> Self {
        BatchLimits { max_items: quality.batch_size(), max_bytes: None }
    }

    #[must_use]
    pub const fn with_max_bytes(self, max_bytes: usize) -> Self {
        BatchLimits { max_bytes: Some(max_bytes), ..self }
    }
}

/// Splits `items` into consecutive batches of the size for `quality`
/// (excellent 100, good 50, fair 25, poor 10, unknown 25). Every item is in exactly one batch,
/// in order; only the last batch may be short.
pub fn adaptive_batch_sizing<T>(items: &[T], quality: NetworkQuality) -> Vec<&[T]> {
    batch_by(items, BatchLimits::for_quality(quality), |_| 0)
}

/// Splits `items` into consecutive batches within `limits`, where an item weighs `size_of(item)`
/// bytes and a batch weighs the sum of its items. Greedy: a batch is closed when the next item
/// would break either limit. An item heavier than `max_bytes` on its own forms a batch of one.
pub fn batch_by<T>(items: &[T], limits: BatchLimits, size_of: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let max_items = limits.max_items.max(1);
    let mut batches = Vec::with_capacity(items.len().div_ceil(max_items));
    let mut start = 0;
    let mut bytes = 0usize;
    for (i, item) in items.iter().enumerate() {
        let size = if limits.max_bytes.is_some() { size_of(item) } else { 0 };
        let count = i - start;
        let over_bytes = limits.max_bytes.is_some_and(|max| bytes.saturating_add(size) > max);
        if count > 0 && (count == max_items || over_bytes) {
            batches.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
    }
    if start < items.len() {
        batches.push(&items[start..]);
    }
    batches
}

/// [`batch_by`] for JSON items sent as a JSON array: a batch's weight is the exact length of
/// its compact serialization, `[a,b,c]`, brackets and commas included.
pub fn batch_json(items: &[Value], limits: BatchLimits) -> Vec<&[Value]> {
    // `[` + items joined by `,` + `]` is 1 + Σ(len + 1) bytes: count one separator (or the closing
    // bracket) with each item, and the opening bracket against the budget.
    let limits = BatchLimits { max_bytes: limits.max_bytes.map(|m| m.saturating_sub(1)), ..limits };
    batch_by(items, limits, |v| serialized_len(v) + 1)
}
