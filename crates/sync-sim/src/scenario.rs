//! Scenarios: a fleet, a workload and network conditions, with named presets.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::device::Behaviour;
use crate::error::{Error, Result};
use crate::network::NetworkProfile;
use crate::workload::DOMAINS;

/// The named scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// A healthy fleet on a good network; few conflicts.
    BasicSync,
    /// Every device edits the same few records of tasks and tickets.
    HighConflict,
    /// A poor network: latency, lost requests and responses, duplicates, reordered retries,
    /// offline periods, skewed clocks.
    NetworkIssues,
    /// Devices work offline for most of the run and all come back at once with big outboxes.
    OfflineBurst,
    /// New devices pull a large tenant from nothing.
    InitialSync,
    /// Devices hold a live stream (server-sent events) instead of polling; every change
    /// acknowledged before the drain must reach every device that may see it through its
    /// stream alone.
    LiveFleet,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 6] = [
        ScenarioKind::BasicSync,
        ScenarioKind::HighConflict,
        ScenarioKind::NetworkIssues,
        ScenarioKind::OfflineBurst,
        ScenarioKind::InitialSync,
        ScenarioKind::LiveFleet,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::BasicSync => "basic_sync",
            ScenarioKind::HighConflict => "high_conflict",
            ScenarioKind::NetworkIssues => "network_issues",
            ScenarioKind::OfflineBurst => "offline_burst",
            ScenarioKind::InitialSync => "initial_sync",
            ScenarioKind::LiveFleet => "live_fleet",
        }
    }
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScenarioKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ScenarioKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = ScenarioKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::Config(format!("unknown scenario `{s}` (expected one of {})", names.join(", ")))
        })
    }
}

/// Everything a run needs to know. Start from [`Scenario::preset`] and adjust.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub kind: ScenarioKind,
    pub devices: usize,
    /// Devices per business unit; each device's token is limited to its unit.
    pub devices_per_unit: usize,
    /// How long devices work before the final drain.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    pub domains: Vec<String>,
    /// Chance that an edit goes to one of the unit's shared records.
    pub conflict_probability: f64,
    /// Shared records per unit, created before the devices start.
    pub shared_records: usize,
    /// Records created before the devices start (spread over the units), for `initial_sync`.
    pub initial_records: usize,
    pub network: NetworkProfile,
    /// Each device's clock is off by up to this much, either way.
    #[serde(serialize_with = "ser_secs")]
    pub max_clock_skew: Duration,
    /// In `offline_burst`: the share of `duration` devices spend offline before they all come back.
    pub offline_share: f64,
    pub edits_per_action: u32,
    pub pull_probability: f64,
    #[serde(serialize_with = "ser_pair_ms")]
    pub think_time: (Duration, Duration),
    pub create_probability: f64,
    pub delete_probability: f64,
    pub patch_probability: f64,
    /// Pull with `delta=true`.
    pub delta: bool,
    /// Devices follow a live stream (PROTOCOL.md section 11) while online instead of polling.
    pub live: bool,
    /// Live: how long after the drain's pushes the streams may take to bring every device what
    /// the server acknowledged.
    #[serde(serialize_with = "ser_secs")]
    pub live_delivery_timeout: Duration,
    /// Seeds every device's random choices.
    pub seed: u64,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_pair_ms<S: serde::Serializer>(d: &(Duration, Duration), s: S) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeTuple;
    let mut t = s.serialize_tuple(2)?;
    t.serialize_element(&d.0.as_secs_f64())?;
    t.serialize_element(&d.1.as_secs_f64())?;
    t.end()
}

impl Scenario {
    /// The preset of `kind`, at its default size.
    pub fn preset(kind: ScenarioKind) -> Scenario {
        let base = Scenario {
            kind,
            devices: 10,
            devices_per_unit: 20,
            duration: Duration::from_secs(30),
            domains: DOMAINS.iter().map(|d| (*d).to_owned()).collect(),
            conflict_probability: 0.05,
            shared_records: 20,
            initial_records: 0,
            network: NetworkProfile::good(),
            max_clock_skew: Duration::from_secs(1),
            offline_share: 0.0,
            edits_per_action: 3,
            pull_probability: 0.5,
            think_time: (Duration::from_millis(50), Duration::from_millis(250)),
            create_probability: 0.3,
            delete_probability: 0.03,
            patch_probability: 0.3,
            delta: true,
            live: false,
            live_delivery_timeout: Duration::from_secs(15),
            seed: 1,
        };
        match kind {
            ScenarioKind::BasicSync => base,
            ScenarioKind::HighConflict => Scenario {
                domains: vec!["task".into(), "ticket".into(), "journal".into()],
                conflict_probability: 0.7,
                shared_records: 8,
                ..base
            },
            ScenarioKind::NetworkIssues => Scenario {
                network: NetworkProfile::flaky(),
                max_clock_skew: Duration::from_secs(600),
                conflict_probability: 0.2,
                ..base
            },
            ScenarioKind::OfflineBurst => Scenario {
                offline_share: 0.7,
                edits_per_action: 5,
                think_time: (Duration::from_millis(20), Duration::from_millis(80)),
                conflict_probability: 0.1,
                ..base
            },
            ScenarioKind::InitialSync => {
                Scenario { devices: 5, initial_records: 20_000, duration: Duration::from_secs(5), ..base }
            }
            ScenarioKind::LiveFleet => Scenario {
                devices: 20,
                devices_per_unit: 10,
                pull_probability: 0.0,
                live: true,
                conflict_probability: 0.1,
                ..base
            },
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Config(m));
        if self.devices == 0 || self.devices_per_unit == 0 {
            return fail("devices and devices_per_unit must be at least 1".into());
        }
        if self.domains.is_empty() {
            return fail("at least one domain is needed".into());
        }
        if let Some(unknown) = self.domains.iter().find(|d| !DOMAINS.contains(&d.as_str())) {
            return fail(format!("unknown domain `{unknown}` (expected some of {})", DOMAINS.join(", ")));
        }
        for (name, p) in [
            ("conflict_probability", self.conflict_probability),
            ("offline_share", self.offline_share),
            ("pull_probability", self.pull_probability),
            ("create_probability", self.create_probability),
            ("delete_probability", self.delete_probability),
            ("patch_probability", self.patch_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return fail(format!("{name} must be between 0 and 1 (got {p})"));
            }
        }
        self.network.validate().map_err(Error::Config)
    }

    /// The number of business units.
    pub fn units(&self) -> usize {
        self.devices.div_ceil(self.devices_per_unit)
    }

    pub(crate) fn behaviour(&self) -> Behaviour {
        Behaviour {
            domains: self.domains.clone(),
            conflict_probability: self.conflict_probability,
            create_probability: self.create_probability,
            delete_probability: self.delete_probability,
            patch_probability: self.patch_probability,
            edits_per_action: self.edits_per_action,
            pull_probability: self.pull_probability,
            think_time: self.think_time,
            delta: self.delta,
            live: self.live,
        }
    }
}

/// Parses `30s`, `2m`, `500ms` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("bad duration `{text}` (e.g. 30s, 2m, 500ms)")))?;
    if !value.is_finite() || value < 0.0 {
        return Err(Error::Config(format!("bad duration `{text}`")));
    }
    Ok(Duration::from_secs_f64(value * scale))
}
