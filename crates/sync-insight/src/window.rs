//! Sync windows: when each device should sync next, from its own history (when its syncs
//! succeed, how fast, on what network) and the fleet's load by hour, spreading devices over
//! their good hours with a capacity-aware greedy so that the fleet's peak falls.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, Time};

use crate::InsightError;
use crate::stats::wilson_interval;

/// The network a sync ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    Wifi,
    Cellular,
    Unknown,
}

/// One sync a device attempted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncAttempt {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub succeeded: bool,
    pub duration_ms: f64,
    pub network: Network,
}

/// A device and its recent sync attempts (any order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceHistory {
    pub device_id: String,
    pub attempts: Vec<SyncAttempt>,
}

/// Where a recommendation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The device's own history.
    DeviceHistory,
    /// The fleet's history, for a device with too little of its own.
    Fleet,
    /// The peak-hours rule, when there is no history at all.
    Rule,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::DeviceHistory => "device_history",
            Basis::Fleet => "fleet",
            Basis::Rule => "rule",
        }
    }
}

/// A time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// One device's advice: section 12's `next_window`, `confidence` and `basis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowAdvice {
    pub device_id: String,
    pub next_window: TimeWindow,
    /// 0..=1: how sure the history makes us that a sync then succeeds (0 for the rule).
    pub confidence: f64,
    pub basis: Basis,
    /// The hour of the day (in `now`'s offset) the window opens in.
    pub hour: u8,
}

/// The planner's knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowConfig {
    pub window_minutes: u32,
    /// A device's own history counts from this many attempts...
    pub min_device_attempts: usize,
    /// ...over this many distinct days.
    pub min_device_days: usize,
    /// An hour is one of a device's good hours with at least this many successes there...
    pub min_hour_successes: u64,
    /// ...and a quality at least this share of its best hour's.
    pub good_hour_tolerance: f64,
    /// The share of a device's syncs that can wait for its window (background syncs); the
    /// planner moves only this share when it balances the fleet's load.
    pub deferrable_share: f64,
    /// The rule's peak hours `[start, end)`: outside them sync now, inside wait for their end.
    pub peak_start_hour: u8,
    pub peak_end_hour: u8,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            window_minutes: 60,
            min_device_attempts: 10,
            min_device_days: 3,
            min_hour_successes: 2,
            good_hour_tolerance: 0.6,
            deferrable_share: 0.6,
            peak_start_hour: 9,
            peak_end_hour: 18,
        }
    }
}

impl WindowConfig {
    fn validate(&self) -> Result<(), InsightError> {
        if self.window_minutes == 0 || self.window_minutes > 24 * 60 {
            return Err(InsightError::OutOfRange {
                field: "window_minutes",
                value: f64::from(self.window_minutes),
            });
        }
        for (field, v) in
            [("good_hour_tolerance", self.good_hour_tolerance), ("deferrable_share", self.deferrable_share)]
        {
            if !v.is_finite() {
                return Err(InsightError::NotFinite { field, value: v });
            }
            if !(0.0..=1.0).contains(&v) {
                return Err(InsightError::OutOfRange { field, value: v });
            }
        }
        for (field, h) in [("peak_start_hour", self.peak_start_hour), ("peak_end_hour", self.peak_end_hour)] {
            if h > 24 {
                return Err(InsightError::OutOfRange { field, value: f64::from(h) });
            }
        }
        Ok(())
    }
}

/// What one device's (or the fleet's) history says about each hour of the day.
#[derive(Debug, Clone)]
struct HourProfile {
    attempts: [u64; 24],
    successes: [u64; 24],
    /// Per hour: quality in 0..=1 (success lower bound × speed × network).
    quality: [f64; 24],
    days: usize,
    total_attempts: usize,
}

impl HourProfile {
    fn of(attempts: &[&SyncAttempt], now: OffsetDateTime) -> Self {
        let offset = now.offset();
        let mut counts = [0u64; 24];
        let mut successes = [0u64; 24];
        let mut durations: Vec<Vec<f64>> = vec![Vec::new(); 24];
        let mut wifi = [0u64; 24];
        let mut days: Vec<time::Date> = Vec::new();
        for a in attempts {
            let at = a.at.to_offset(offset);
            let h = usize::from(at.hour());
            counts[h] += 1;
            days.push(at.date());
            if a.succeeded {
                successes[h] += 1;
                durations[h].push(a.duration_ms);
                if a.network == Network::Wifi {
                    wifi[h] += 1;
                }
            }
        }
        days.sort();
        days.dedup();
        let mut all: Vec<f64> = durations.iter().flatten().copied().collect();
        let overall = crate::stats::median(&mut all).unwrap_or(0.0);
        let mut quality = [0.0; 24];
        for h in 0..24 {
            let (lower, _) = wilson_interval(successes[h], counts[h], 1.64);
            let speed = match crate::stats::median(&mut durations[h]) {
                Some(d) if d > overall && d > 0.0 => (overall / d).max(0.25),
                _ => 1.0,
            };
            let wifi_share = if successes[h] > 0 { wifi[h] as f64 / successes[h] as f64 } else { 0.0 };
            quality[h] = lower * speed * (0.8 + 0.2 * wifi_share);
        }
        Self { attempts: counts, successes, quality, days: days.len(), total_attempts: attempts.len() }
    }

    fn good_hours(&self, config: &WindowConfig) -> Vec<usize> {
        let best = self.quality.iter().copied().fold(0.0, f64::max);
        if best <= 0.0 {
            return Vec::new();
        }
        (0..24)
            .filter(|&h| {
                self.successes[h] >= config.min_hour_successes
                    && self.quality[h] >= config.good_hour_tolerance * best
            })
            .collect()
    }

    /// Syncs per day in each hour.
    fn load(&self) -> [f64; 24] {
        let days = self.days.max(1) as f64;
        let mut load = [0.0; 24];
        for (l, &a) in load.iter_mut().zip(&self.attempts) {
            *l = a as f64 / days;
        }
        load
    }
}

/// The next time the clock reads `hour`:00, or now if it already does (a window of
/// `minutes`): how a stored plan's hour becomes a window at a later moment.
pub fn next_window(now: OffsetDateTime, hour: u8, minutes: u32) -> TimeWindow {
    let width = Duration::minutes(i64::from(minutes));
    let start = if now.hour() == hour {
        now
    } else {
        let today = now.replace_time(Time::MIDNIGHT) + Duration::hours(i64::from(hour));
        if today > now { today } else { today + Duration::days(1) }
    };
    TimeWindow { start, end: start + width }
}

/// The plan for one device before it is placed.
struct Candidate<'a> {
    device_id: &'a str,
    basis: Basis,
    /// Hours it may be placed in, with their quality.
    hours: Vec<(usize, f64)>,
    /// Deferrable syncs per day the placement moves.
    load: f64,
    own_load: [f64; 24],
    profile: Option<HourProfile>,
}

/// Recommends each device's next window. `fleet_load` is the fleet's syncs per hour of the day
/// (in `now`'s offset) as observed; the result is in the order of `devices` and depends only on
/// the inputs.
pub fn plan_windows(
    devices: &[DeviceHistory],
    fleet_load: &[f64; 24],
    now: OffsetDateTime,
    config: &WindowConfig,
) -> Result<Vec<WindowAdvice>, InsightError> {
    config.validate()?;
    for &l in fleet_load {
        if !l.is_finite() {
            return Err(InsightError::NotFinite { field: "fleet_load", value: l });
        }
        if l < 0.0 {
            return Err(InsightError::OutOfRange { field: "fleet_load", value: l });
        }
    }
    for d in devices {
        for a in &d.attempts {
            if !a.duration_ms.is_finite() || a.duration_ms < 0.0 {
                return Err(InsightError::OutOfRange { field: "duration_ms", value: a.duration_ms });
            }
        }
    }
    let all: Vec<&SyncAttempt> = devices.iter().flat_map(|d| d.attempts.iter()).collect();
    let fleet = HourProfile::of(&all, now);
    let fleet_hours: Vec<(usize, f64)> =
        fleet.good_hours(config).into_iter().map(|h| (h, fleet.quality[h])).collect();
    let candidates: Vec<Candidate<'_>> =
        devices.iter().map(|d| candidate(d, &fleet_hours, now, config)).collect();

    // The load nobody moves: the fleet's, minus the deferrable part of the planned devices.
    let mut load = *fleet_load;
    for c in &candidates {
        for (l, own) in load.iter_mut().zip(&c.own_load) {
            *l = (*l - config.deferrable_share * own).max(0.0);
        }
    }
    let capacity = (fleet_load.iter().sum::<f64>() / 24.0).max(1e-9);

    // Most constrained first, then the heaviest, then by id: a fixed order.
    let mut order: Vec<usize> =
        (0..candidates.len()).filter(|&i| candidates[i].basis != Basis::Rule).collect();
    order.sort_by(|&a, &b| {
        let (ca, cb) = (&candidates[a], &candidates[b]);
        ca.basis
            .cmp(&cb.basis)
            .then(ca.hours.len().cmp(&cb.hours.len()))
            .then(cb.load.total_cmp(&ca.load))
            .then(ca.device_id.cmp(cb.device_id))
    });
    // Per hour, how many devices with a history have synced successfully then.
    let mut reach = ([0u64; 24], 0u64);
    for p in candidates.iter().filter_map(|c| c.profile.as_ref()).filter(|p| p.total_attempts > 0) {
        reach.1 += 1;
        for (r, &s) in reach.0.iter_mut().zip(&p.successes) {
            *r += u64::from(s > 0);
        }
    }
    let mut chosen: Vec<Option<usize>> = vec![None; candidates.len()];
    for i in order {
        let c = &candidates[i];
        let best_quality = c.hours.iter().map(|h| h.1).fold(0.0, f64::max).max(1e-9);
        let pick = c.hours.iter().copied().min_by(|&(ha, qa), &(hb, qb)| {
            let cost = |h: usize, q: f64| (load[h] + c.load) / capacity - 0.25 * q / best_quality;
            cost(ha, qa).total_cmp(&cost(hb, qb)).then(ha.cmp(&hb))
        });
        if let Some((h, _)) = pick {
            load[h] += c.load;
            chosen[i] = Some(h);
        }
    }
    Ok(candidates.iter().zip(chosen).map(|(c, hour)| advice(c, hour, &fleet, &reach, now, config)).collect())
}

fn candidate<'a>(
    device: &'a DeviceHistory,
    fleet_hours: &[(usize, f64)],
    now: OffsetDateTime,
    config: &WindowConfig,
) -> Candidate<'a> {
    let attempts: Vec<&SyncAttempt> = device.attempts.iter().collect();
    let profile = HourProfile::of(&attempts, now);
    let own_load = profile.load();
    let load = config.deferrable_share * own_load.iter().sum::<f64>();
    let good = profile.good_hours(config);
    let enough =
        profile.total_attempts >= config.min_device_attempts && profile.days >= config.min_device_days;
    let (basis, hours) = if enough && !good.is_empty() {
        (Basis::DeviceHistory, good.iter().map(|&h| (h, profile.quality[h])).collect())
    } else if !fleet_hours.is_empty() {
        (Basis::Fleet, fleet_hours.to_vec())
    } else {
        (Basis::Rule, Vec::new())
    };
    Candidate { device_id: &device.device_id, basis, hours, load, own_load, profile: Some(profile) }
}

fn advice(
    c: &Candidate<'_>,
    hour: Option<usize>,
    fleet: &HourProfile,
    fleet_reach: &([u64; 24], u64),
    now: OffsetDateTime,
    config: &WindowConfig,
) -> WindowAdvice {
    let (basis, hour, confidence) = match (c.basis, hour) {
        (Basis::DeviceHistory, Some(h)) => {
            let p = c.profile.as_ref();
            let (lower, _) = p.map_or((0.0, 1.0), |p| wilson_interval(p.successes[h], p.attempts[h], 1.64));
            let days = p.map_or(0, |p| p.days) as f64;
            (Basis::DeviceHistory, h, lower * (days / 14.0).min(1.0))
        }
        (Basis::Fleet, Some(h)) => {
            // How surely a sync then succeeds, times how many of the fleet's devices sync then.
            let (lower, _) = wilson_interval(fleet.successes[h], fleet.attempts[h], 1.64);
            let (spread, _) = wilson_interval(fleet_reach.0[h], fleet_reach.1, 1.64);
            (Basis::Fleet, h, lower * spread)
        }
        _ => return rule_advice(c.device_id, now, config),
    };
    let hour = u8::try_from(hour).unwrap_or(0);
    WindowAdvice {
        device_id: c.device_id.to_owned(),
        next_window: next_window(now, hour, config.window_minutes),
        confidence: confidence.clamp(0.0, 1.0),
        basis,
        hour,
    }
}

/// Section 6's rule: outside the peak hours sync now, inside them wait for their end.
fn rule_advice(device_id: &str, now: OffsetDateTime, config: &WindowConfig) -> WindowAdvice {
    let in_peak = (config.peak_start_hour..config.peak_end_hour).contains(&now.hour());
    let hour = if in_peak { config.peak_end_hour % 24 } else { now.hour() };
    WindowAdvice {
        device_id: device_id.to_owned(),
        next_window: next_window(now, hour, config.window_minutes),
        confidence: 0.0,
        basis: Basis::Rule,
        hour,
    }
}
