//! The evaluation's server queue: its laws (no arrivals, no queue; arrivals within capacity
//! wait less than a step; more capacity never waits longer; the same seed, the same run).

use proptest::prelude::*;
use sync_insight::InsightError;
use sync_insight::eval::queue::{quantile, simulate_queue, spread_arrivals};

fn p99_wait(arrivals: &[u32], capacity: f64) -> f64 {
    quantile(&simulate_queue(arrivals, capacity).unwrap().waits, 0.99).unwrap_or(0.0)
}

#[test]
fn a_burst_waits_its_turn_and_drains() {
    // Three syncs at once on a server of one per step: they wait 0, 1 and 2 steps, and the
    // backlog falls by one a step.
    let run = simulate_queue(&[3, 0, 0, 0], 1.0).unwrap();
    assert_eq!(run.waits, [0.0, 1.0, 2.0]);
    assert_eq!(run.depth, [2.0, 1.0, 0.0, 0.0]);
    // A sync arriving behind a backlog waits for it.
    assert_eq!(simulate_queue(&[4, 1], 2.0).unwrap().waits, [0.0, 0.5, 1.0, 1.5, 1.0]);
}

#[test]
fn capacity_must_be_positive_and_finite() {
    assert!(matches!(simulate_queue(&[1], 0.0), Err(InsightError::OutOfRange { field: "capacity", .. })));
    assert!(matches!(simulate_queue(&[1], -1.0), Err(InsightError::OutOfRange { .. })));
    assert!(matches!(simulate_queue(&[1], f64::NAN), Err(InsightError::NotFinite { .. })));
    assert!(spread_arrivals(1, &[1], 0).is_err());
}

#[test]
fn nearest_rank_quantile() {
    assert_eq!(quantile(&[], 0.99), None);
    let values: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(quantile(&values, 0.99), Some(99.0));
    assert_eq!(quantile(&values, 1.0), Some(100.0));
    assert_eq!(quantile(&values, 0.0), Some(1.0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn no_arrivals_no_queue(steps in 0usize..2_000, capacity in 0.01f64..100.0) {
        let run = simulate_queue(&vec![0; steps], capacity).unwrap();
        prop_assert!(run.waits.is_empty());
        prop_assert_eq!(run.depth.len(), steps);
        prop_assert!(run.depth.iter().all(|&q| q == 0.0));
    }

    #[test]
    fn arrivals_within_capacity_wait_less_than_a_step(
        per_step in 1u32..20,
        // Spare capacity, none included: the law must hold at exactly the arrival rate too.
        spare in prop_oneof![Just(0.0), 0.0f64..5.0],
        steps in 1usize..500,
        every in 1usize..4,
    ) {
        // Spread evenly: `per_step` syncs every `every` steps on a server that does at least
        // that many a step.
        let arrivals: Vec<u32> = (0..steps).map(|t| if t % every == 0 { per_step } else { 0 }).collect();
        let run = simulate_queue(&arrivals, f64::from(per_step) + spare).unwrap();
        prop_assert!(run.waits.iter().all(|&w| w < 1.0), "{:?}", run.waits);
        prop_assert!(run.depth.iter().all(|&q| q == 0.0));
    }

    #[test]
    fn doubling_capacity_never_waits_longer(
        arrivals in prop::collection::vec(0u32..8, 0..600),
        capacity in 0.05f64..6.0,
    ) {
        let slow = simulate_queue(&arrivals, capacity).unwrap();
        let fast = simulate_queue(&arrivals, 2.0 * capacity).unwrap();
        // Sync by sync and step by step, and so at the p99.
        prop_assert!(fast.waits.iter().zip(&slow.waits).all(|(f, s)| f <= s));
        prop_assert!(fast.depth.iter().zip(&slow.depth).all(|(f, s)| f <= s));
        prop_assert!(p99_wait(&arrivals, 2.0 * capacity) <= p99_wait(&arrivals, capacity));
    }

    #[test]
    fn the_same_seed_gives_the_same_run(
        seed in any::<u64>(),
        per_hour in prop::collection::vec(0u32..200, 1..30),
        capacity in 0.01f64..1.0,
    ) {
        let arrivals = spread_arrivals(seed, &per_hour, 3600).unwrap();
        prop_assert_eq!(&arrivals, &spread_arrivals(seed, &per_hour, 3600).unwrap());
        // Every sync lands in its own hour.
        for (hour, &n) in per_hour.iter().enumerate() {
            prop_assert_eq!(arrivals[hour * 3600..(hour + 1) * 3600].iter().sum::<u32>(), n);
        }
        prop_assert_eq!(simulate_queue(&arrivals, capacity).unwrap(), simulate_queue(&arrivals, capacity).unwrap());
    }
}
