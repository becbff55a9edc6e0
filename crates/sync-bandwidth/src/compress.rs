//! Body compression with thresholds, and decompression that refuses bombs.

use std::{borrow::Cow, fmt, io::Read, io::Write, str::FromStr};

use flate2::{Compression, read::MultiGzDecoder, write::GzEncoder};
use serde::{Deserialize, Serialize};

use crate::BandwidthError;

/// Bodies smaller than this are sent as they are in [`CompressionMode::Adaptive`].
pub const DEFAULT_COMPRESSION_THRESHOLD_BYTES: usize = 1024;
/// Keep a body uncompressed unless compression brings it below this fraction of its size.
pub const DEFAULT_MIN_COMPRESSION_RATIO: f64 = 0.8;
/// The gzip level used unless configured: zlib's own default, a good ratio at a fair speed.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// The gzip level for when CPU time matters more than bytes (the HTTP layer may choose it).
pub const FAST_GZIP_LEVEL: u32 = 1;
/// The zstd level used unless configured (with the `zstd` feature).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// The protocol's `max_body_bytes`: the most a request body may hold after decoding.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 8 * 1024 * 1024;

/// Input is fed to the encoder in slices of this size, so that an incompressible body can be
/// given up on before all of it has been compressed.
const CHUNK: usize = 64 * 1024;

/// When to compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionMode {
    /// Compress bodies of at least `compression_threshold_bytes`.
    #[default]
    Adaptive,
    /// Try every body, however small.
    Always,
    /// Never compress.
    Never,
}

impl CompressionMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            CompressionMode::Adaptive => "adaptive",
            CompressionMode::Always => "always",
            CompressionMode::Never => "never",
        }
    }
}

impl fmt::Display for CompressionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompressionMode {
    type Err = BandwidthError;

    /// Case-insensitive, surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        [CompressionMode::Adaptive, CompressionMode::Always, CompressionMode::Never]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| BandwidthError::UnknownCompressionMode(s.to_owned()))
    }
}

/// A content coding this crate can produce and read (`Content-Encoding` / `Accept-Encoding`).
///
/// Non-exhaustive: `Zstd` exists only with the `zstd` feature, which another crate of the build
/// may turn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    Identity,
    Gzip,
    #[cfg(feature = "zstd")]
    Zstd,
}

impl Encoding {
    /// Every coding of this build, most preferred first (identity last).
    pub const SUPPORTED: &'static [Encoding] = &[
        #[cfg(feature = "zstd")]
        Encoding::Zstd,
        Encoding::Gzip,
        Encoding::Identity,
    ];

    /// The token used in HTTP headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            #[cfg(feature = "zstd")]
            Encoding::Zstd => "zstd",
        }
    }

    /// The coding named by a request's `Content-Encoding` header (absent or empty: identity).
    ///
    /// Only a single coding is accepted; a stacked list such as `gzip, gzip` is unsupported,
    /// since no client of this protocol has a reason to send one.
    pub fn from_content_encoding(header: Option<&str>) -> Result<Self, BandwidthError> {
        let Some(raw) = header else { return Ok(Encoding::Identity) };
        let token = raw.trim();
        if token.is_empty() {
            return Ok(Encoding::Identity);
        }
        if token.eq_ignore_ascii_case("x-gzip") {
            return Ok(Encoding::Gzip);
        }
        Encoding::SUPPORTED
            .iter()
            .copied()
            .find(|e| e.as_str().eq_ignore_ascii_case(token))
            .ok_or_else(|| BandwidthError::UnsupportedEncoding(raw.to_owned()))
    }

    /// The best coding of this build that an `Accept-Encoding` header allows (RFC 9110 §12.5.3):
    /// the highest `q`, ties going to the server's preference ([`Encoding::SUPPORTED`] order).
    /// `*` stands for every coding not named; `q=0` refuses. Absent header: identity.
    pub fn negotiate(accept_encoding: Option<&str>) -> Self {
        let Some(header) = accept_encoding else { return Encoding::Identity };
        let mut best = (Encoding::Identity, 0u16);
        for &candidate in Encoding::SUPPORTED {
            if candidate == Encoding::Identity {
                continue;
            }
            let q = accepted_q(header, candidate.as_str());
            if q > best.1 {
                best = (candidate, q);
            }
        }
        best.0
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The q-value (in thousandths) that `header` gives to `coding`: its own entry, else `*`, else 0.
fn accepted_q(header: &str, coding: &str) -> u16 {
    let mut own = None;
    let mut wildcard = None;
    for entry in header.split(',') {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1000), |(_, v)| parse_q(v.trim()));
        let Some(q) = q else { continue };
        if name.eq_ignore_ascii_case(coding) || (coding == "gzip" && name.eq_ignore_ascii_case("x-gzip")) {
            own = Some(own.map_or(q, |o: u16| o.max(q)));
        } else if name == "*" {
            wildcard = Some(q);
        }
    }
    own.or(wildcard).unwrap_or(0)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, as thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac.bytes().fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'))
        * 10u16.pow(3 - u32::try_from(frac.len()).unwrap_or(3));
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// How bodies are compressed. Deserializes from the server's configuration with defaults for
/// missing keys (`compression_threshold_bytes = 1024`, `min_compression_ratio = 0.8`, level 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    pub mode: CompressionMode,
    /// In `Adaptive` mode, bodies shorter than this are not compressed.
    pub compression_threshold_bytes: usize,
    /// A body stays uncompressed when `compressed / original >= min_compression_ratio`, in every mode.
    pub min_compression_ratio: f64,
    /// gzip level, 0..=9. 6 by default; 1 trades about a tenth of the savings for several times the speed.
    pub gzip_level: u32,
    /// zstd level, 1..=22 (3 by default). Present in every build so that the struct has the same
    /// fields whichever features are on; used only with the `zstd` feature.
    pub zstd_level: i32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            mode: CompressionMode::Adaptive,
            compression_threshold_bytes: DEFAULT_COMPRESSION_THRESHOLD_BYTES,
            min_compression_ratio: DEFAULT_MIN_COMPRESSION_RATIO,
            gzip_level: DEFAULT_GZIP_LEVEL,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// Why a body was or was not compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Compressed, and it paid.
    Compressed,
    /// `Adaptive` and shorter than the threshold: not tried.
    BelowThreshold,
    /// `Never`, or the peer accepts only identity: not tried.
    Disabled,
    /// Tried, but the result was not below `min_compression_ratio` of the original.
    /// `compressed_bytes` is a lower bound when compression was given up part way.
    NotWorthIt { compressed_bytes: usize },
}

/// A body ready to send, and what compression did to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Compressed {
    /// The bytes to send: compressed when `encoding` is not identity, else the original.
    pub body: Vec<u8>,
    /// The `Content-Encoding` of `body`.
    pub encoding: Encoding,
    /// Size of the original body.
    pub original_bytes: usize,
    pub decision: Decision,
}

impl fmt::Debug for Compressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressed")
            .field("encoding", &self.encoding)
            .field("original_bytes", &self.original_bytes)
            .field("encoded_bytes", &self.body.len())
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

impl Compressed {
    pub fn is_compressed(&self) -> bool {
        self.encoding != Encoding::Identity
    }

    /// Size of `body`, the bytes on the wire.
    pub fn encoded_bytes(&self) -> usize {
        self.body.len()
    }

    /// `encoded / original` (1.0 for an uncompressed or empty body).
    pub fn ratio(&self) -> f64 {
        if self.original_bytes == 0 { 1.0 } else { self.body.len() as f64 / self.original_bytes as f64 }
    }

    pub fn bytes_saved(&self) -> usize {
        self.original_bytes.saturating_sub(self.body.len())
    }

    /// The `Content-Encoding` header to send, if any.
    pub fn content_encoding(&self) -> Option<&'static str> {
        self.is_compressed().then(|| self.encoding.as_str())
    }
}

impl CompressionConfig {
    /// A config with the given mode and defaults elsewhere.
    pub fn with_mode(mode: CompressionMode) -> Self {
        CompressionConfig { mode, ..CompressionConfig::default() }
    }

    /// Checks the numeric settings; `compress` does this too.
    pub fn validate(&self) -> Result<(), BandwidthError> {
        if !(self.min_compression_ratio > 0.0 && self.min_compression_ratio <= 1.0) {
            return Err(BandwidthError::InvalidRatio(self.min_compression_ratio.to_string()));
        }
        if self.gzip_level > 9 {
            return Err(BandwidthError::InvalidLevel {
                encoding: "gzip",
                level: i32::try_from(self.gzip_level).unwrap_or(i32::MAX),
                min: 0,
                max: 9,
            });
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err(BandwidthError::InvalidLevel {
                encoding: "zstd",
                level: self.zstd_level,
                min: 1,
                max: 22,
            });
        }
        Ok(())
    }

    /// Gzip `body` if the mode, the threshold and the ratio say so; otherwise hand it back as it is.
    pub fn compress(&self, body: Vec<u8>) -> Result<Compressed, BandwidthError> {
        self.compress_as(body, Encoding::Gzip)
    }

    /// Like [`compress`](Self::compress), with the coding negotiated with the peer
    /// (see [`Encoding::negotiate`]); `Identity` means "do not compress".
    pub fn compress_as(&self, body: Vec<u8>, encoding: Encoding) -> Result<Compressed, BandwidthError> {
        self.validate()?;
        let original_bytes = body.len();
        let keep = |body: Vec<u8>, decision| Compressed {
            body,
            encoding: Encoding::Identity,
            original_bytes,
            decision,
        };
        if self.mode == CompressionMode::Never || encoding == Encoding::Identity {
            return Ok(keep(body, Decision::Disabled));
        }
        if self.mode == CompressionMode::Adaptive && original_bytes < self.compression_threshold_bytes {
            return Ok(keep(body, Decision::BelowThreshold));
        }
        // The output must stay strictly below this many bytes to be worth sending.
        let bound = self.min_compression_ratio * original_bytes as f64;
        match encode(&body, encoding, self, bound)? {
            Encoded::Done(out) if (out.len() as f64) < bound => {
                Ok(Compressed { body: out, encoding, original_bytes, decision: Decision::Compressed })
            }
            Encoded::Done(out) => Ok(keep(body, Decision::NotWorthIt { compressed_bytes: out.len() })),
            Encoded::GaveUp(at_least) => Ok(keep(body, Decision::NotWorthIt { compressed_bytes: at_least })),
        }
    }
}

enum Encoded {
    Done(Vec<u8>),
    /// The output had already reached the bound after part of the input: the final size is at least this.
    GaveUp(usize),
}

fn encode(
    body: &[u8],
    encoding: Encoding,
    config: &CompressionConfig,
    bound: f64,
) -> Result<Encoded, BandwidthError> {
    let name = encoding.as_str();
    let fail = |e: std::io::Error| BandwidthError::Encoder { encoding: name, reason: e.to_string() };
    let capacity = body.len() / 4 + 64;
    match encoding {
        Encoding::Identity => Ok(Encoded::Done(body.to_vec())),
        Encoding::Gzip => {
            let mut encoder =
                GzEncoder::new(Vec::with_capacity(capacity), Compression::new(config.gzip_level));
            for chunk in body.chunks(CHUNK) {
                encoder.write_all(chunk).map_err(fail)?;
                let so_far = encoder.get_ref().len();
                if so_far as f64 >= bound {
                    return Ok(Encoded::GaveUp(so_far));
                }
            }
            encoder.finish().map(Encoded::Done).map_err(fail)
        }
        #[cfg(feature = "zstd")]
        Encoding::Zstd => {
            let mut encoder =
                zstd::stream::write::Encoder::new(Vec::with_capacity(capacity), config.zstd_level)
                    .map_err(fail)?;
            encoder.include_contentsize(true).map_err(fail)?;
            encoder.set_pledged_src_size(Some(body.len() as u64)).map_err(fail)?;
            for chunk in body.chunks(CHUNK) {
                encoder.write_all(chunk).map_err(fail)?;
                let so_far = encoder.get_ref().len();
                if so_far as f64 >= bound {
                    return Ok(Encoded::GaveUp(so_far));
                }
            }
            encoder.finish().map(Encoded::Done).map_err(fail)
        }
    }
}

/// A reader of the decoded bytes of `body`. Gzip is read with a multi-member decoder: RFC 1952
/// defines a gzip file as a series of members, and concatenated members (`cat a.gz b.gz`) are what
/// some streaming clients send, so they decode to the concatenation of their contents, as with
/// `gunzip`. Bytes after the last member that are not a gzip member make the body corrupt.
pub fn decoder<'a>(encoding: Encoding, body: &'a [u8]) -> Result<Box<dyn Read + 'a>, BandwidthError> {
    match encoding {
        Encoding::Identity => Ok(Box::new(body)),
        Encoding::Gzip => Ok(Box::new(MultiGzDecoder::new(body))),
        #[cfg(feature = "zstd")]
        Encoding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(body)
                .map_err(|e| BandwidthError::Corrupt { encoding: "zstd", reason: e.to_string() })?;
            // A frame may ask for a window of up to 2^31 bytes; nothing we accept needs more than 8 MiB.
            decoder
                .window_log_max(23)
                .map_err(|e| BandwidthError::Corrupt { encoding: "zstd", reason: e.to_string() })?;
            Ok(Box::new(decoder))
        }
    }
}

/// Reads `reader` to its end, but never more than `limit + 1` bytes from it: one byte past the
/// limit is how a body that is too large is told from one that is exactly at the limit.
/// A read error (corrupt or truncated input) is [`BandwidthError::Corrupt`].
pub fn read_limited<R: Read>(reader: R, limit: usize, encoding: Encoding) -> Result<Vec<u8>, BandwidthError> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    match reader.take(cap).read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(BandwidthError::TooLarge { limit }),
        Ok(_) => Ok(out),
        Err(e) => Err(BandwidthError::Corrupt { encoding: encoding.as_str(), reason: e.to_string() }),
    }
}

/// Decodes a request body of the given coding, refusing more than `limit` decoded bytes
/// (a gzip bomb stops after `limit + 1` bytes of output) and any corrupt or truncated stream.
/// An identity body is borrowed, not copied. An empty gzip body is corrupt (not even a header).
pub fn decompress(body: &[u8], encoding: Encoding, limit: usize) -> Result<Cow<'_, [u8]>, BandwidthError> {
    if encoding == Encoding::Identity {
        return if body.len() > limit {
            Err(BandwidthError::TooLarge { limit })
        } else {
            Ok(Cow::Borrowed(body))
        };
    }
    if body.is_empty() {
        return Err(BandwidthError::Corrupt { encoding: encoding.as_str(), reason: "empty body".to_owned() });
    }
    read_limited(decoder(encoding, body)?, limit, encoding).map(Cow::Owned)
}

/// [`decompress`] with the coding named by a `Content-Encoding` header (unsupported: an error).
pub fn decode_body<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, BandwidthError> {
    decompress(body, Encoding::from_content_encoding(content_encoding)?, limit)
}
