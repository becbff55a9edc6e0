//! Sync-window evaluation: a fleet of devices with regular connectivity (office Wi-Fi, field
//! workers on cellular who are home on Wi-Fi in the evening, night shifts, new devices), two
//! weeks of their syncs, and the fleet's peak hourly load with and without following the advice
//! at the same daily volume; then two weeks of their syncs after the advice through the server
//! as a queue (see `queue`), with its depth and the syncs' wait in the peak hour.

use serde::{Deserialize, Serialize};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::EvalConfig;
use super::queue::{quantile, simulate_queue, spread_arrivals};
use crate::stats::SplitMix64;
use crate::{Basis, DeviceHistory, InsightError, Network, SyncAttempt, WindowConfig, plan_windows};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub devices: usize,
    /// Syncs per day, the same with and without the advice.
    pub daily_volume: f64,
    /// The busiest hour's syncs, averaged over the days of history.
    pub peak_without_advice: f64,
    pub peak_with_advice: f64,
    /// 1 − with / without.
    pub peak_reduction: f64,
    /// The share of advice (device or fleet basis) that falls in an hour the device is
    /// actually connected; advice outside it cannot be followed and the sync stays where it was.
    pub advice_in_connected_hour: f64,
    pub basis_device_history: usize,
    pub basis_fleet: usize,
    pub basis_rule: usize,
    /// The server as one FIFO queue stepped every second over this many simulated days.
    pub queue_days: usize,
    /// Its service capacity in syncs per second: the unadvised fleet's busiest hour (its
    /// syncs averaged over the simulated days) at [`QUEUE_UTILISATION`]. Derived from the
    /// unadvised run alone and the same for both fleets.
    pub queue_capacity_per_s: f64,
    pub queue_without_advice: QueueFigures,
    pub queue_with_advice: QueueFigures,
    /// 1 − with / without of the peak hour's p99 wait, and of its p99 depth.
    pub wait_p99_reduction: f64,
    pub depth_p99_reduction: f64,
}

/// One fleet's run through the server queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueFigures {
    /// Syncs over all simulated days (the same with and without the advice).
    pub syncs: u64,
    /// The fleet's own busiest hour of the day (UTC) and its syncs per day there.
    pub peak_hour: u8,
    pub peak_hour_syncs: f64,
    /// Over the syncs arriving in the peak hour: the p99 wait before service, in seconds.
    pub wait_p99_s: f64,
    /// Over the seconds of the peak hour on every day: p99 and max queue depth, in syncs.
    pub depth_p99: f64,
    pub depth_max: f64,
    /// The highest p99 wait of any hour of the day, and that hour, so that a peak moved
    /// elsewhere is seen.
    pub worst_hour: u8,
    pub worst_hour_wait_p99_s: f64,
}

/// The unadvised fleet's busiest hour loads the server to this share of its capacity.
pub const QUEUE_UTILISATION: f64 = 0.9;
const SECONDS_PER_HOUR: usize = 3600;

const HISTORY_DAYS: i64 = 14;

#[derive(Debug, Clone)]
struct Device {
    /// Per hour: the network when connected.
    connected: [Option<Network>; 24],
    /// Per hour: the share of its syncs it makes then, left to itself.
    natural: [f64; 24],
    daily_syncs: f64,
    /// Only this many days of history (new devices).
    history_days: i64,
}

fn device(rng: &mut SplitMix64) -> Device {
    let mut connected = [None; 24];
    let mut weight = [0.0; 24];
    let kind = rng.uniform();
    let work = |h: usize| if (9..17).contains(&h) { 1.0 } else { 0.35 };
    if kind < 0.4 {
        // Office: Wi-Fi 07–19, syncing mostly in working hours.
        for h in 7..19 {
            connected[h] = Some(Network::Wifi);
            weight[h] = work(h);
        }
    } else if kind < 0.75 {
        // Field: cellular 07–19, home Wi-Fi 19–23, syncing mostly at work.
        for h in 7..19 {
            connected[h] = Some(Network::Cellular);
            weight[h] = work(h);
        }
        for h in 19..23 {
            connected[h] = Some(Network::Wifi);
            weight[h] = 0.1;
        }
    } else if kind < 0.88 {
        // Night shift: Wi-Fi 20–07.
        for h in (20..24).chain(0..7) {
            connected[h] = Some(Network::Wifi);
            weight[h] = 1.0;
        }
    } else {
        // Always-on kiosk: Wi-Fi all day, busy when people are.
        for h in 0..24 {
            connected[h] = Some(Network::Wifi);
            weight[h] = work(h);
        }
    }
    let total: f64 = weight.iter().sum();
    let mut natural = [0.0; 24];
    for h in 0..24 {
        natural[h] = weight[h] / total;
    }
    let history_days = if rng.chance(0.1) { 1 + rng.below(2) as i64 } else { HISTORY_DAYS };
    Device { connected, natural, daily_syncs: 10.0 + 30.0 * rng.uniform(), history_days }
}

fn history(rng: &mut SplitMix64, id: usize, d: &Device, now: OffsetDateTime) -> DeviceHistory {
    let mut attempts = Vec::new();
    for day in (1..=d.history_days).rev() {
        let midnight = now.replace_time(time::Time::MIDNIGHT) - Duration::days(day);
        for h in 0..24 {
            let Some(network) = d.connected[h] else { continue };
            for _ in 0..rng.poisson(d.daily_syncs * d.natural[h]) {
                let at = midnight + Duration::hours(h as i64) + Duration::seconds(rng.below(3600) as i64);
                let (ok, ms) = match network {
                    Network::Wifi => (0.97, 400.0),
                    _ => (0.88, 1200.0),
                };
                attempts.push(SyncAttempt {
                    at,
                    succeeded: rng.chance(ok),
                    duration_ms: ms * (0.3 * rng.normal()).exp(),
                    network,
                });
            }
        }
    }
    DeviceHistory { device_id: format!("device-{id:05}"), attempts }
}

pub(super) fn evaluate(config: &EvalConfig) -> Result<WindowReport, InsightError> {
    let mut rng = SplitMix64::new(config.seed ^ 0x0517_0E00);
    let now = datetime!(2026-02-02 06:00 UTC);
    let devices: Vec<Device> = (0..config.devices).map(|_| device(&mut rng)).collect();
    let histories: Vec<DeviceHistory> =
        devices.iter().enumerate().map(|(i, d)| history(&mut rng, i, d, now)).collect();
    // Each device's syncs per day in each hour, as its history shows.
    let own: Vec<[f64; 24]> = histories
        .iter()
        .zip(&devices)
        .map(|(h, d)| {
            let mut load = [0.0; 24];
            for a in &h.attempts {
                load[usize::from(a.at.hour())] += 1.0 / d.history_days as f64;
            }
            load
        })
        .collect();
    let mut without = [0.0; 24];
    for l in &own {
        for h in 0..24 {
            without[h] += l[h];
        }
    }
    let window_config = WindowConfig::default();
    let advice = plan_windows(&histories, &without, now, &window_config)?;
    let s = window_config.deferrable_share;
    let mut with = [0.0; 24];
    let (mut followed, mut advised) = (0usize, 0usize);
    let mut basis = [0usize; 3];
    let mut follow = Vec::with_capacity(devices.len());
    for ((a, l), d) in advice.iter().zip(&own).zip(&devices) {
        basis[a.basis as usize] += 1;
        let hour = usize::from(a.hour);
        let can_follow = a.basis != Basis::Rule && d.connected[hour].is_some();
        follow.push(can_follow.then_some(hour));
        if a.basis != Basis::Rule {
            advised += 1;
            followed += usize::from(can_follow);
        }
        let total: f64 = l.iter().sum();
        for h in 0..24 {
            with[h] += if can_follow { (1.0 - s) * l[h] } else { l[h] };
        }
        if can_follow {
            with[hour] += s * total;
        }
    }
    let peak = |curve: &[f64; 24]| curve.iter().copied().fold(0.0, f64::max);
    let (before, after) = (peak(&without), peak(&with));
    let queue = server_queue(config.seed ^ 0x0517_0E01, &devices, &follow, s)?;
    Ok(WindowReport {
        devices: devices.len(),
        daily_volume: without.iter().sum(),
        peak_without_advice: before,
        peak_with_advice: after,
        peak_reduction: if before > 0.0 { 1.0 - after / before } else { 0.0 },
        advice_in_connected_hour: if advised > 0 { followed as f64 / advised as f64 } else { 0.0 },
        basis_device_history: basis[Basis::DeviceHistory as usize],
        basis_fleet: basis[Basis::Fleet as usize],
        basis_rule: basis[Basis::Rule as usize],
        queue_days: QUEUE_DAYS,
        queue_capacity_per_s: queue.capacity_per_s,
        wait_p99_reduction: reduction(queue.without.wait_p99_s, queue.with.wait_p99_s),
        depth_p99_reduction: reduction(queue.without.depth_p99, queue.with.depth_p99),
        queue_without_advice: queue.without,
        queue_with_advice: queue.with,
    })
}

fn reduction(before: f64, after: f64) -> f64 {
    if before > 0.0 { 1.0 - after / before } else { 0.0 }
}

const QUEUE_DAYS: usize = 14;

struct ServerQueue {
    capacity_per_s: f64,
    without: QueueFigures,
    with: QueueFigures,
}

/// Simulates the fleet's syncs for [`QUEUE_DAYS`] days after the advice, each device left to
/// itself and, in the second fleet, moving each deferrable sync to its advised hour of the same
/// day when it can follow it; the same syncs in both, so the daily volume is the same. Each
/// hour's syncs are spread over its seconds and fed to one queue per fleet.
fn server_queue(
    seed: u64,
    devices: &[Device],
    follow: &[Option<usize>],
    deferrable: f64,
) -> Result<ServerQueue, InsightError> {
    let mut rng = SplitMix64::new(seed);
    let hours = QUEUE_DAYS * 24;
    let (mut without, mut with) = (vec![0u32; hours], vec![0u32; hours]);
    for day in 0..QUEUE_DAYS {
        for (d, advised) in devices.iter().zip(follow) {
            for h in 0..24 {
                if d.connected[h].is_none() {
                    continue;
                }
                for _ in 0..rng.poisson(d.daily_syncs * d.natural[h]) {
                    let deferred = rng.chance(deferrable);
                    without[day * 24 + h] += 1;
                    with[day * 24 + advised.filter(|_| deferred).unwrap_or(h)] += 1;
                }
            }
        }
    }
    let per_hour_of_day = |counts: &[u32]| {
        let mut mean = [0.0; 24];
        for (i, &n) in counts.iter().enumerate() {
            mean[i % 24] += f64::from(n) / QUEUE_DAYS as f64;
        }
        mean
    };
    let busiest = per_hour_of_day(&without).iter().copied().fold(0.0, f64::max);
    let capacity = (busiest / SECONDS_PER_HOUR as f64 / QUEUE_UTILISATION).max(f64::MIN_POSITIVE);
    let mut figures = |counts: &[u32]| -> Result<QueueFigures, InsightError> {
        let arrivals = spread_arrivals(rng.next_u64(), counts, SECONDS_PER_HOUR)?;
        let run = simulate_queue(&arrivals, capacity)?;
        Ok(queue_figures(&arrivals, &run.depth, &run.waits, &per_hour_of_day(counts)))
    };
    Ok(ServerQueue { capacity_per_s: capacity, without: figures(&without)?, with: figures(&with)? })
}

/// A fleet's figures from its run: the peak hour is its busiest hour of the day by syncs.
fn queue_figures(arrivals: &[u32], depth: &[f64], waits: &[f64], per_hour: &[f64; 24]) -> QueueFigures {
    let hour_of = |step: usize| (step / SECONDS_PER_HOUR) % 24;
    let mut waits_by_hour: Vec<Vec<f64>> = vec![Vec::new(); 24];
    let mut next = 0;
    for (step, &a) in arrivals.iter().enumerate() {
        let a = a as usize;
        waits_by_hour[hour_of(step)].extend_from_slice(&waits[next..next + a]);
        next += a;
    }
    let wait_p99: Vec<f64> = waits_by_hour.iter().map(|w| quantile(w, 0.99).unwrap_or(0.0)).collect();
    let peak = (0..24).fold(0, |best, h| if per_hour[h] > per_hour[best] { h } else { best });
    let worst = (0..24).fold(0, |best, h| if wait_p99[h] > wait_p99[best] { h } else { best });
    let peak_depth: Vec<f64> =
        depth.iter().enumerate().filter(|&(step, _)| hour_of(step) == peak).map(|(_, &q)| q).collect();
    QueueFigures {
        syncs: arrivals.iter().map(|&a| u64::from(a)).sum(),
        peak_hour: peak as u8,
        peak_hour_syncs: per_hour[peak],
        wait_p99_s: wait_p99[peak],
        depth_p99: quantile(&peak_depth, 0.99).unwrap_or(0.0),
        depth_max: peak_depth.iter().copied().fold(0.0, f64::max),
        worst_hour: worst as u8,
        worst_hour_wait_p99_s: wait_p99[worst],
    }
}
