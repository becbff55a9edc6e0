//! Batch sizing: sizes by network quality, byte budgets, and the law that batching keeps every
//! item exactly once and in order.

use proptest::prelude::*;
use serde_json::{Value, json};
use sync_bandwidth::{
    BandwidthError, BatchLimits, BatchSizes, NetworkQuality, adaptive_batch_sizing, batch_by, batch_json,
};

fn lens<T>(batches: &[&[T]]) -> Vec<usize> {
    batches.iter().map(|b| b.len()).collect()
}

#[test]
fn sizes_by_quality() {
    let items: Vec<usize> = (0..230).collect();
    assert_eq!(lens(&adaptive_batch_sizing(&items, NetworkQuality::Excellent)), [100, 100, 30]);
    assert_eq!(lens(&adaptive_batch_sizing(&items, NetworkQuality::Good)), [50, 50, 50, 50, 30]);
    assert_eq!(lens(&adaptive_batch_sizing(&items[..60], NetworkQuality::Fair)), [25, 25, 10]);
    assert_eq!(lens(&adaptive_batch_sizing(&items[..25], NetworkQuality::Poor)), [10, 10, 5]);
    assert_eq!(lens(&adaptive_batch_sizing(&items[..60], NetworkQuality::Unknown)), [25, 25, 10]);
    assert!(adaptive_batch_sizing::<u8>(&[], NetworkQuality::Good).is_empty());
}

#[test]
fn network_quality_parses_case_insensitively() {
    assert_eq!("EXCELLENT".parse::<NetworkQuality>().unwrap(), NetworkQuality::Excellent);
    assert_eq!(" Good ".parse::<NetworkQuality>().unwrap(), NetworkQuality::Good);
    assert_eq!("fAiR".parse::<NetworkQuality>().unwrap(), NetworkQuality::Fair);
    assert_eq!("poor".parse::<NetworkQuality>().unwrap(), NetworkQuality::Poor);
    let err = "5g".parse::<NetworkQuality>().unwrap_err();
    assert_eq!(err, BandwidthError::UnknownNetworkQuality("5g".to_owned()));
    assert!("unknown".parse::<NetworkQuality>().is_err());
    assert_eq!(NetworkQuality::from_header("5g"), NetworkQuality::Unknown);
    assert_eq!(NetworkQuality::from_header("POOR"), NetworkQuality::Poor);
    assert_eq!(NetworkQuality::Unknown.batch_size(), 25);
    assert_eq!(serde_json::from_value::<NetworkQuality>(json!("good")).unwrap(), NetworkQuality::Good);
}

#[test]
fn batch_sizes_for_headers_follow_the_protocol() {
    let sizes = BatchSizes::default();
    assert_eq!(sizes.for_header(None), 50);
    assert_eq!(sizes.for_header(Some("Excellent")), 100);
    assert_eq!(sizes.for_header(Some("poor")), 10);
    assert_eq!(sizes.for_header(Some("satellite")), 25);
    let custom: BatchSizes = serde_json::from_value(json!({"poor": 5})).unwrap();
    assert_eq!((custom.poor, custom.good), (5, 50));
}

#[test]
fn a_byte_budget_closes_batches_and_an_oversized_item_goes_alone() {
    let sizes = [40usize, 40, 30, 500, 10, 10, 90];
    let batches = batch_by(&sizes, BatchLimits { max_items: 10, max_bytes: Some(100) }, |s| *s);
    assert_eq!(batches, [&[40, 40][..], &[30], &[500], &[10, 10], &[90]]);
}

#[test]
fn json_batches_fit_the_budget_as_serialized_arrays() {
    let items: Vec<Value> = (0..40).map(|i| json!({"n": i, "title": "x".repeat(i % 7 * 10)})).collect();
    let budget = 300;
    let batches = batch_json(&items, BatchLimits::for_quality(NetworkQuality::Good).with_max_bytes(budget));
    for batch in &batches {
        let bytes = serde_json::to_vec(batch).unwrap().len();
        assert!(bytes <= budget || batch.len() == 1, "{bytes}");
    }
    // Tight: the array `[a]` is exactly its item plus two brackets.
    let one = json!({"n": 1});
    let exact = serde_json::to_vec(&[&one, &one]).unwrap().len();
    let same = vec![one.clone(), one.clone(), one];
    assert_eq!(lens(&batch_json(&same, BatchLimits { max_items: 10, max_bytes: Some(exact) })), [2, 1]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every item exactly once, in order; no empty batch; every batch within the count limit,
    /// and within the byte budget unless it is a single oversized item; only the last batch of a
    /// count-only split is short.
    #[test]
    fn batching_keeps_every_item_once_and_in_order(
        sizes in prop::collection::vec(0usize..300, 0..400),
        max_items in 0usize..120,
        max_bytes in prop::option::of(0usize..1000),
    ) {
        let items: Vec<(usize, usize)> = sizes.into_iter().enumerate().collect();
        let limits = BatchLimits { max_items, max_bytes };
        let batches = batch_by(&items, limits, |(_, s)| *s);
        let flat: Vec<(usize, usize)> = batches.iter().flat_map(|b| b.iter().copied()).collect();
        prop_assert_eq!(&flat, &items);
        for batch in &batches {
            prop_assert!(!batch.is_empty());
            prop_assert!(batch.len() <= max_items.max(1));
            if let Some(max) = max_bytes {
                let bytes: usize = batch.iter().map(|(_, s)| s).sum();
                prop_assert!(bytes <= max || batch.len() == 1);
            }
        }
        if max_bytes.is_none() {
            for batch in batches.iter().rev().skip(1) {
                prop_assert_eq!(batch.len(), max_items.max(1));
            }
        }
    }

    #[test]
    fn adaptive_batches_keep_every_item_once_and_in_order(
        n in 0usize..500,
        quality in prop::sample::select(vec![NetworkQuality::Excellent, NetworkQuality::Good, NetworkQuality::Fair, NetworkQuality::Poor, NetworkQuality::Unknown]),
    ) {
        let items: Vec<usize> = (0..n).collect();
        let batches = adaptive_batch_sizing(&items, quality);
        prop_assert_eq!(batches.concat(), items.clone());
        prop_assert_eq!(batches.len(), n.div_ceil(quality.batch_size()));
        prop_assert!(batches.iter().all(|b| b.len() <= quality.batch_size()));
    }
}
