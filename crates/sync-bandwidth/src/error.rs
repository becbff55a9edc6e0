//! The crate's error type: every way a body, a patch or a setting can be refused.
//!
//! Policy: nothing reachable from input panics. Decoding failures say which limit or which
//! kind of damage stopped them; patch failures say which operation failed, and the document
//! they were applied to is left as it was. `code()` gives the protocol's snake_case error code;
//! mapping to HTTP statuses is the API layer's business.

/// Errors of sync-bandwidth.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BandwidthError {
    /// The decoded body would be larger than the limit. Decoding stopped after `limit + 1` bytes.
    #[error("body exceeds the limit of {limit} bytes after decoding")]
    TooLarge { limit: usize },
    /// The body is not a valid stream of its encoding (corrupt, truncated, trailing garbage).
    #[error("corrupt or truncated {encoding} body: {reason}")]
    Corrupt { encoding: &'static str, reason: String },
    /// A `Content-Encoding` this build cannot decode.
    #[error("unsupported content encoding `{0}`")]
    UnsupportedEncoding(String),
    /// A compression level outside what the encoder accepts.
    #[error("compression level {level} is out of range for {encoding} ({min}..={max})")]
    InvalidLevel { encoding: &'static str, level: i32, min: i32, max: i32 },
    /// `min_compression_ratio` must be a number in (0, 1].
    #[error("min_compression_ratio must be in (0, 1], got {0}")]
    InvalidRatio(String),
    /// The encoder failed (not expected when writing to memory; reported rather than unwrapped).
    #[error("{encoding} encoder failed: {reason}")]
    Encoder { encoding: &'static str, reason: String },
    /// A JSON Patch document that is not a valid RFC 6902 patch (unknown op, missing member, bad pointer).
    #[error("invalid JSON Patch: {0}")]
    InvalidPatch(String),
    /// A JSON Patch operation could not be applied; the document is unchanged.
    #[error("JSON Patch operation {index} failed at `{path}`: {reason}")]
    PatchFailed { index: usize, path: String, reason: String },
    /// RFC 7396 cannot express this change: it would have to set a member to `null`,
    /// but `null` in a merge patch means "remove".
    #[error("a merge patch cannot set `{pointer}` to null")]
    MergePatchUnrepresentable { pointer: String },
    /// Not one of `excellent`, `good`, `fair`, `poor`.
    #[error("unknown network quality `{0}` (expected excellent, good, fair or poor)")]
    UnknownNetworkQuality(String),
    /// Not one of `adaptive`, `always`, `never`.
    #[error("unknown compression mode `{0}` (expected adaptive, always or never)")]
    UnknownCompressionMode(String),
}

impl BandwidthError {
    /// The protocol's snake_case error code for this error.
    pub const fn code(&self) -> &'static str {
        match self {
            BandwidthError::TooLarge { .. } => "payload_too_large",
            BandwidthError::Corrupt { .. } => "malformed_body",
            BandwidthError::UnsupportedEncoding(_) => "unsupported_encoding",
            BandwidthError::InvalidLevel { .. }
            | BandwidthError::InvalidRatio(_)
            | BandwidthError::UnknownCompressionMode(_) => "invalid_configuration",
            BandwidthError::Encoder { .. } => "internal",
            BandwidthError::InvalidPatch(_) => "invalid_patch",
            BandwidthError::PatchFailed { .. } => "patch_failed",
            BandwidthError::MergePatchUnrepresentable { .. } => "merge_patch_unrepresentable",
            BandwidthError::UnknownNetworkQuality(_) => "invalid_network_quality",
        }
    }
}
