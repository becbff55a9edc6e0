//! Bandwidth tools for sync: compression, JSON deltas, batching and priority order. Sans-IO.
#![doc = include_str!("../README.md")]

mod batch;
mod compress;
mod delta;
mod error;
mod priority;

pub use batch::{BatchLimits, BatchSizes, NetworkQuality, adaptive_batch_sizing, batch_by, batch_json};
pub use compress::{
    Compressed, CompressionConfig, CompressionMode, DEFAULT_COMPRESSION_THRESHOLD_BYTES, DEFAULT_GZIP_LEVEL,
    DEFAULT_MAX_DECOMPRESSED_BYTES, DEFAULT_MIN_COMPRESSION_RATIO, DEFAULT_ZSTD_LEVEL, Decision, Encoding,
    FAST_GZIP_LEVEL, decode_body, decoder, decompress, read_limited,
};
pub use delta::{
    Delta, DeltaChoice, DeltaKind, JsonPatch, apply, diff, merge_apply, merge_diff, serialized_len,
    smallest_delta, smallest_delta_of,
};
pub use error::BandwidthError;
pub use priority::{prioritize_by, prioritize_items};
