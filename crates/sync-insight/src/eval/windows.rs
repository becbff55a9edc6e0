//! Sync-window evaluation: a fleet of devices with regular connectivity (office Wi-Fi, field
//! workers on cellular who are home on Wi-Fi in the evening, night shifts, new devices), two
//! weeks of their syncs, and the fleet's peak hourly load with and without following the advice
//! at the same daily volume.

use serde::{Deserialize, Serialize};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::EvalConfig;
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
}

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
    for ((a, l), d) in advice.iter().zip(&own).zip(&devices) {
        basis[a.basis as usize] += 1;
        let hour = usize::from(a.hour);
        let can_follow = a.basis != Basis::Rule && d.connected[hour].is_some();
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
    })
}
