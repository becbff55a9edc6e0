//! Compression decisions, round trips, and decompression limits (bombs, corruption, multi-member).

use std::io::{self, Read, Write};

use flate2::{Compression, write::GzEncoder};
use proptest::prelude::*;
use rand::RngCore;
use serde_json::json;
use sync_bandwidth::{
    BandwidthError, CompressionConfig, CompressionMode, DEFAULT_MAX_DECOMPRESSED_BYTES, Decision, Encoding,
    decode_body, decoder, decompress, read_limited,
};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Counts the bytes a reader hands out.
struct Counting<R> {
    inner: R,
    read: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

fn repetitive_records(n: usize) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "domain": "task", "mobile_id": format!("7d3c1e52-0c4b-4a8e-9d1f-{i:012}"), "base_version": 0,
                "op": "upsert", "modified_at": "2026-11-22T09:58:00Z", "priority": "high", "bu": "north",
                "data": {"title": "Check pump", "status": "ASSIGNED", "description": "Inspect the pump and report."}
            })
        })
        .collect();
    serde_json::to_vec(
        &json!({"device_id": "3f0c", "client_time": "2026-11-22T10:00:05Z", "changes": records}),
    )
    .unwrap()
}

#[test]
fn random_data_is_not_compressed() {
    let mut data = vec![0u8; 64 * 1024];
    rand::rng().fill_bytes(&mut data);
    for mode in [CompressionMode::Adaptive, CompressionMode::Always] {
        let out = CompressionConfig::with_mode(mode).compress(data.clone()).unwrap();
        assert!(!out.is_compressed(), "{out:?}");
        assert_eq!(out.body, data);
        assert_eq!(out.encoding, Encoding::Identity);
        assert_eq!(out.content_encoding(), None);
        assert!(
            matches!(out.decision, Decision::NotWorthIt { compressed_bytes } if compressed_bytes as f64 >= 0.8 * data.len() as f64)
        );
        assert!((out.ratio() - 1.0).abs() < f64::EPSILON);
    }
}

#[test]
fn fifty_repetitive_records_compress_below_a_tenth() {
    let body = repetitive_records(50);
    let out = CompressionConfig::default().compress(body.clone()).unwrap();
    assert!(out.is_compressed());
    assert_eq!(out.decision, Decision::Compressed);
    assert_eq!(out.content_encoding(), Some("gzip"));
    assert_eq!(out.original_bytes, body.len());
    assert_eq!(out.encoded_bytes(), out.body.len());
    assert!(out.ratio() < 0.1, "ratio {}", out.ratio());
    assert_eq!(out.bytes_saved(), body.len() - out.body.len());
    assert_eq!(decompress(&out.body, Encoding::Gzip, body.len()).unwrap().as_ref(), body.as_slice());
}

#[test]
fn adaptive_skips_bodies_below_the_threshold() {
    let config = CompressionConfig::default();
    let below = vec![b'a'; 1023];
    let out = config.compress(below.clone()).unwrap();
    assert_eq!((out.decision, out.body), (Decision::BelowThreshold, below));
    let at = vec![b'a'; 1024];
    assert_eq!(config.compress(at).unwrap().decision, Decision::Compressed);
}

#[test]
fn always_compresses_small_bodies_when_it_pays_and_never_never_does() {
    let small = vec![b'a'; 200];
    let always = CompressionConfig::with_mode(CompressionMode::Always).compress(small.clone()).unwrap();
    assert!(always.is_compressed());
    // Tiny bodies do not pay even in `Always`: the gzip header and trailer alone are 18 bytes.
    let tiny = CompressionConfig::with_mode(CompressionMode::Always).compress(b"hi".to_vec()).unwrap();
    assert!(matches!(tiny.decision, Decision::NotWorthIt { .. }));
    let empty = CompressionConfig::with_mode(CompressionMode::Always).compress(Vec::new()).unwrap();
    assert!(!empty.is_compressed());
    assert!((empty.ratio() - 1.0).abs() < f64::EPSILON);
    let never = CompressionConfig::with_mode(CompressionMode::Never).compress(vec![b'a'; 100_000]).unwrap();
    assert_eq!(never.decision, Decision::Disabled);
    let identity = CompressionConfig::default().compress_as(vec![b'a'; 100_000], Encoding::Identity).unwrap();
    assert_eq!(identity.decision, Decision::Disabled);
}

#[test]
fn the_ratio_bound_is_exclusive() {
    let body = repetitive_records(5);
    let gz_len = CompressionConfig::default().compress(body.clone()).unwrap().body.len();
    let exact = gz_len as f64 / body.len() as f64;
    let at = CompressionConfig { min_compression_ratio: exact, ..CompressionConfig::default() };
    assert_eq!(
        at.compress(body.clone()).unwrap().decision,
        Decision::NotWorthIt { compressed_bytes: gz_len }
    );
    let above = CompressionConfig { min_compression_ratio: exact + 1e-9, ..CompressionConfig::default() };
    assert_eq!(above.compress(body).unwrap().decision, Decision::Compressed);
}

#[test]
fn levels_are_configurable_and_checked() {
    let body = repetitive_records(20);
    for level in 0..=9 {
        let config = CompressionConfig { gzip_level: level, ..CompressionConfig::default() };
        let out = config.compress(body.clone()).unwrap();
        assert_eq!(decompress(&out.body, out.encoding, usize::MAX).unwrap().as_ref(), body.as_slice());
    }
    let bad = CompressionConfig { gzip_level: 10, ..CompressionConfig::default() };
    assert!(matches!(bad.compress(body.clone()), Err(BandwidthError::InvalidLevel { level: 10, .. })));
    for ratio in [0.0, -1.0, 1.5, f64::NAN] {
        let bad = CompressionConfig { min_compression_ratio: ratio, ..CompressionConfig::default() };
        assert!(matches!(bad.compress(body.clone()), Err(BandwidthError::InvalidRatio(_))), "{ratio}");
    }
}

#[test]
fn config_deserializes_with_defaults() {
    let config: CompressionConfig =
        serde_json::from_value(json!({"gzip_level": 1, "mode": "always"})).unwrap();
    assert_eq!(config.gzip_level, 1);
    assert_eq!(config.mode, CompressionMode::Always);
    assert_eq!(config.compression_threshold_bytes, 1024);
    assert!((config.min_compression_ratio - 0.8).abs() < f64::EPSILON);
    assert!(serde_json::from_value::<CompressionConfig>(json!({"levle": 1})).is_err());
    assert_eq!("ALWAYS".parse::<CompressionMode>().unwrap(), CompressionMode::Always);
    assert!(matches!("sometimes".parse::<CompressionMode>(), Err(BandwidthError::UnknownCompressionMode(_))));
}

#[test]
fn content_encoding_header_parsing() {
    assert_eq!(Encoding::from_content_encoding(None).unwrap(), Encoding::Identity);
    assert_eq!(Encoding::from_content_encoding(Some("")).unwrap(), Encoding::Identity);
    assert_eq!(Encoding::from_content_encoding(Some(" GZip ")).unwrap(), Encoding::Gzip);
    assert_eq!(Encoding::from_content_encoding(Some("x-gzip")).unwrap(), Encoding::Gzip);
    assert_eq!(Encoding::from_content_encoding(Some("identity")).unwrap(), Encoding::Identity);
    for bad in ["br", "deflate", "gzip, gzip", "compress"] {
        let err = Encoding::from_content_encoding(Some(bad)).unwrap_err();
        assert_eq!(err, BandwidthError::UnsupportedEncoding(bad.to_owned()));
        assert_eq!(err.code(), "unsupported_encoding");
    }
}

#[test]
fn accept_encoding_negotiation() {
    assert_eq!(Encoding::negotiate(None), Encoding::Identity);
    assert_eq!(Encoding::negotiate(Some("gzip")), Encoding::Gzip);
    assert_eq!(Encoding::negotiate(Some("br, GZIP;q=0.5")), Encoding::Gzip);
    assert_eq!(Encoding::negotiate(Some("gzip;q=0")), Encoding::Identity);
    assert_eq!(Encoding::negotiate(Some("gzip; q=0.000")), Encoding::Identity);
    assert_eq!(Encoding::negotiate(Some("*")), Encoding::SUPPORTED[0]);
    // Anything but gzip: identity unless zstd is built in.
    let not_gzip =
        if Encoding::SUPPORTED[0] == Encoding::Gzip { Encoding::Identity } else { Encoding::SUPPORTED[0] };
    assert_eq!(Encoding::negotiate(Some("*;q=0.1, gzip;q=0")), not_gzip);
    assert_eq!(Encoding::negotiate(Some("identity")), Encoding::Identity);
    assert_eq!(Encoding::negotiate(Some("br")), Encoding::Identity);
    // A malformed q-value makes its entry void rather than an error.
    assert_eq!(Encoding::negotiate(Some("gzip;q=2")), Encoding::Identity);
    assert_eq!(Encoding::negotiate(Some("gzip;q=abc, deflate")), Encoding::Identity);
}

#[test]
fn a_gzip_bomb_is_refused_after_limit_plus_one_bytes() {
    // 32 MiB of zeros in about 32 KiB.
    let mut e = GzEncoder::new(Vec::new(), Compression::new(9));
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..32 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 64 * 1024);

    let err = decompress(&bomb, Encoding::Gzip, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap_err();
    assert_eq!(err, BandwidthError::TooLarge { limit: DEFAULT_MAX_DECOMPRESSED_BYTES });
    assert_eq!(err.code(), "payload_too_large");

    let mut counting = Counting { inner: decoder(Encoding::Gzip, &bomb).unwrap(), read: 0 };
    assert!(read_limited(&mut counting, DEFAULT_MAX_DECOMPRESSED_BYTES, Encoding::Gzip).is_err());
    assert_eq!(counting.read, DEFAULT_MAX_DECOMPRESSED_BYTES + 1);
}

#[test]
fn a_multi_member_bomb_is_refused_too() {
    let member = gzip(&vec![0u8; 1024 * 1024]);
    let bomb: Vec<u8> = member.iter().copied().cycle().take(member.len() * 1000).collect();
    let mut counting = Counting { inner: decoder(Encoding::Gzip, &bomb).unwrap(), read: 0 };
    let err = read_limited(&mut counting, DEFAULT_MAX_DECOMPRESSED_BYTES, Encoding::Gzip).unwrap_err();
    assert_eq!(err, BandwidthError::TooLarge { limit: DEFAULT_MAX_DECOMPRESSED_BYTES });
    assert_eq!(counting.read, DEFAULT_MAX_DECOMPRESSED_BYTES + 1);
}

#[test]
fn an_endless_stream_is_cut_at_the_limit() {
    let mut counting = Counting { inner: io::repeat(7), read: 0 };
    assert_eq!(
        read_limited(&mut counting, 1000, Encoding::Identity),
        Err(BandwidthError::TooLarge { limit: 1000 })
    );
    assert_eq!(counting.read, 1001);
}

#[test]
fn multi_member_gzip_decodes_to_the_concatenation() {
    let mut body = gzip(b"{\"changes\": [");
    body.extend(gzip(b"1, 2"));
    body.extend(gzip(b"]}"));
    assert_eq!(decompress(&body, Encoding::Gzip, 1024).unwrap().as_ref(), b"{\"changes\": [1, 2]}");
}

#[test]
fn corrupt_truncated_and_trailing_garbage_bodies_are_typed_errors() {
    let good = gzip(&repetitive_records(3));
    let is_corrupt =
        |r: Result<_, BandwidthError>| matches!(r, Err(BandwidthError::Corrupt { encoding: "gzip", .. }));
    assert!(is_corrupt(decompress(b"", Encoding::Gzip, 1 << 20)));
    assert!(is_corrupt(decompress(b"{\"not\": \"gzip\"}", Encoding::Gzip, 1 << 20)));
    assert!(is_corrupt(decompress(&good[..good.len() - 1], Encoding::Gzip, 1 << 20)));
    assert!(is_corrupt(decompress(&good[..10], Encoding::Gzip, 1 << 20)));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage");
    assert!(is_corrupt(decompress(&trailing, Encoding::Gzip, 1 << 20)));
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 0xff;
    assert!(is_corrupt(decompress(&bad_crc, Encoding::Gzip, 1 << 20)));
    assert!(decompress(&good, Encoding::Gzip, 1 << 20).is_ok());
    let err = decompress(b"x", Encoding::Gzip, 10).unwrap_err();
    assert_eq!(err.code(), "malformed_body");
}

#[test]
fn identity_bodies_are_borrowed_and_limited() {
    let body = b"{\"changes\": []}";
    assert!(matches!(decode_body(None, body, 100).unwrap(), std::borrow::Cow::Borrowed(_)));
    assert_eq!(decode_body(Some("identity"), body, body.len()).unwrap().as_ref(), body);
    assert_eq!(
        decode_body(None, body, body.len() - 1),
        Err(BandwidthError::TooLarge { limit: body.len() - 1 })
    );
    assert!(matches!(decode_body(Some("br"), body, 100), Err(BandwidthError::UnsupportedEncoding(_))));
    assert_eq!(decode_body(Some("gzip"), &gzip(body), 100).unwrap().as_ref(), body);
}

/// Bytes that compress: short runs over a small alphabet.
fn compressible() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((prop::sample::select(b"{}\":,abc 0123".to_vec()), 1usize..40), 0..400)
        .prop_map(|runs| runs.into_iter().flat_map(|(b, n)| std::iter::repeat_n(b, n)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// compress → decompress is the identity, whatever was decided.
    #[test]
    fn compress_then_decompress_is_identity(
        data in prop_oneof![compressible(), prop::collection::vec(any::<u8>(), 0..4096)],
        mode in prop::sample::select(vec![CompressionMode::Adaptive, CompressionMode::Always, CompressionMode::Never]),
        level in 0u32..=9,
        threshold in 0usize..2048,
    ) {
        let config = CompressionConfig { mode, gzip_level: level, compression_threshold_bytes: threshold, ..CompressionConfig::default() };
        let out = config.compress(data.clone()).unwrap();
        prop_assert_eq!(out.original_bytes, data.len());
        if out.is_compressed() {
            prop_assert!((out.body.len() as f64) < 0.8 * data.len() as f64);
        } else {
            prop_assert_eq!(&out.body, &data);
        }
        let back = decompress(&out.body, out.encoding, data.len()).unwrap();
        prop_assert_eq!(back.as_ref(), data.as_slice());
    }

    /// Decoding never hands out more than `limit + 1` bytes, and succeeds exactly when the
    /// content fits.
    #[test]
    fn decompression_never_reads_past_its_limit(data in compressible(), limit in 0usize..20_000, members in 1usize..4) {
        let body: Vec<u8> = (0..members).flat_map(|_| gzip(&data)).collect();
        let total = data.len() * members;
        let mut counting = Counting { inner: decoder(Encoding::Gzip, &body).unwrap(), read: 0 };
        let result = read_limited(&mut counting, limit, Encoding::Gzip);
        prop_assert!(counting.read <= limit + 1);
        if total <= limit {
            prop_assert_eq!(result.unwrap(), data.repeat(members));
        } else {
            prop_assert_eq!(result, Err(BandwidthError::TooLarge { limit }));
            prop_assert_eq!(counting.read, limit + 1);
        }
    }

    /// Damaged input never panics: any strict prefix is an error, any byte flip is an error or
    /// (when it survives the CRC, practically never) decodes to something within the limit.
    #[test]
    fn damaged_gzip_never_panics(data in compressible(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bits in 1u8..=255) {
        let good = gzip(&data);
        let prefix = &good[..cut.index(good.len())];
        let is_corrupt = matches!(decompress(prefix, Encoding::Gzip, 1 << 20), Err(BandwidthError::Corrupt { .. }));
        prop_assert!(is_corrupt);
        let mut flipped = good.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= bits;
        if let Ok(out) = decompress(&flipped, Encoding::Gzip, 1 << 20) {
            prop_assert!(out.len() <= 1 << 20);
        }
    }
}

#[cfg(not(feature = "zstd"))]
#[test]
fn zstd_is_unsupported_without_the_feature() {
    assert!(matches!(
        Encoding::from_content_encoding(Some("zstd")),
        Err(BandwidthError::UnsupportedEncoding(_))
    ));
    assert_eq!(Encoding::negotiate(Some("zstd, gzip")), Encoding::Gzip);
}

#[cfg(feature = "zstd")]
mod zstd_coding {
    use super::*;

    fn zstd(data: &[u8]) -> Vec<u8> {
        let config = CompressionConfig::with_mode(CompressionMode::Always);
        let out = config.compress_as(data.to_vec(), Encoding::Zstd).unwrap();
        assert_eq!(out.encoding, Encoding::Zstd);
        out.body
    }

    #[test]
    fn zstd_is_negotiated_and_round_trips() {
        assert_eq!(Encoding::from_content_encoding(Some("ZSTD")).unwrap(), Encoding::Zstd);
        assert_eq!(Encoding::negotiate(Some("gzip, zstd")), Encoding::Zstd);
        assert_eq!(Encoding::negotiate(Some("gzip, zstd;q=0.5")), Encoding::Gzip);
        let body = repetitive_records(50);
        let packed = zstd(&body);
        assert!(packed.len() * 10 < body.len());
        assert_eq!(decode_body(Some("zstd"), &packed, body.len()).unwrap().as_ref(), body.as_slice());
    }

    #[test]
    fn zstd_bombs_and_damage_are_refused() {
        let zeros = vec![0u8; 32 << 20];
        let bomb = zstd(&zeros);
        let mut counting = Counting { inner: decoder(Encoding::Zstd, &bomb).unwrap(), read: 0 };
        let err = read_limited(&mut counting, DEFAULT_MAX_DECOMPRESSED_BYTES, Encoding::Zstd).unwrap_err();
        assert_eq!(err, BandwidthError::TooLarge { limit: DEFAULT_MAX_DECOMPRESSED_BYTES });
        assert_eq!(counting.read, DEFAULT_MAX_DECOMPRESSED_BYTES + 1);

        let good = zstd(&repetitive_records(3));
        let corrupt =
            |r: Result<_, BandwidthError>| matches!(r, Err(BandwidthError::Corrupt { encoding: "zstd", .. }));
        assert!(corrupt(decompress(b"", Encoding::Zstd, 1 << 20)));
        assert!(corrupt(decompress(b"not zstd at all", Encoding::Zstd, 1 << 20)));
        for cut in [1, 4, good.len() / 2, good.len() - 1] {
            assert!(corrupt(decompress(&good[..cut], Encoding::Zstd, 1 << 20)), "cut at {cut}");
        }
        // Concatenated frames decode to the concatenation, like gzip members.
        let (hello, world) = (b"hello ".repeat(50), b"world".repeat(50));
        let mut two = zstd(&hello);
        two.extend(zstd(&world));
        assert_eq!(decompress(&two, Encoding::Zstd, 1000).unwrap().as_ref(), [hello, world].concat());
    }

    proptest! {
        #[test]
        fn zstd_compress_then_decompress_is_identity(data in prop_oneof![compressible(), prop::collection::vec(any::<u8>(), 0..4096)], level in 1i32..=19) {
            let config = CompressionConfig { mode: CompressionMode::Always, zstd_level: level, ..CompressionConfig::default() };
            let out = config.compress_as(data.clone(), Encoding::Zstd).unwrap();
            let back = decompress(&out.body, out.encoding, data.len()).unwrap();
            prop_assert_eq!(back.as_ref(), data.as_slice());
        }
    }
}
