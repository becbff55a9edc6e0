//! The server as a single FIFO queue with a fixed service capacity, stepped at a fixed time
//! step: what turns the sync-window evaluation's hourly load into a queue depth and a wait.

use crate::InsightError;
use crate::stats::SplitMix64;

/// What the queue did over a run.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRun {
    /// The work left waiting at the end of each step, in syncs, one entry per step.
    pub depth: Vec<f64>,
    /// Each sync's wait before its service starts, in steps, in order of arrival (step by step,
    /// and in order within a step).
    pub waits: Vec<f64>,
}

/// Runs a FIFO server that does `capacity` syncs' work per step on `arrivals[t]` syncs arriving
/// in step t. The server is fluid (part of a sync's work may fall in one step and the rest in
/// the next), so a capacity below one sync per step is a slow server, not a stalled one. A
/// sync's wait is the work ahead of it (the backlog carried into its step and the syncs before
/// it in that step) divided by the capacity: the first sync at an empty queue waits 0, the k-th
/// of a step waits k / capacity steps.
pub fn simulate_queue(arrivals: &[u32], capacity: f64) -> Result<QueueRun, InsightError> {
    if !capacity.is_finite() {
        return Err(InsightError::NotFinite { field: "capacity", value: capacity });
    }
    if capacity <= 0.0 {
        return Err(InsightError::OutOfRange { field: "capacity", value: capacity });
    }
    let mut backlog = 0.0_f64;
    let mut depth = Vec::with_capacity(arrivals.len());
    let mut waits = Vec::with_capacity(arrivals.iter().map(|&a| a as usize).sum());
    for &a in arrivals {
        for k in 0..a {
            waits.push((backlog + f64::from(k)) / capacity);
        }
        backlog = (backlog + f64::from(a) - capacity).max(0.0);
        depth.push(backlog);
    }
    Ok(QueueRun { depth, waits })
}

/// Spreads each slot's syncs (an hour's, say) over its `steps_per_slot` steps, each sync at a
/// uniformly drawn step: arrivals per step, `per_slot.len() × steps_per_slot` of them, the
/// same for the same seed.
pub fn spread_arrivals(seed: u64, per_slot: &[u32], steps_per_slot: usize) -> Result<Vec<u32>, InsightError> {
    if steps_per_slot == 0 {
        return Err(InsightError::OutOfRange { field: "steps_per_slot", value: 0.0 });
    }
    let mut rng = SplitMix64::new(seed);
    let mut arrivals = vec![0u32; per_slot.len() * steps_per_slot];
    for (slot, &n) in per_slot.iter().enumerate() {
        for _ in 0..n {
            let step = rng.below(steps_per_slot as u64) as usize;
            arrivals[slot * steps_per_slot + step] += 1;
        }
    }
    Ok(arrivals)
}

/// The nearest-rank quantile (`q` in 0..=1) of some values; `None` for none.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
