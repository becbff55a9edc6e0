//! Network conditions of one simulated device: latency with jitter, lost requests and lost
//! responses, duplicate delivery, retries out of order, offline periods and its network
//! quality (which sets its batch size and the server's default page size).

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use sync_bandwidth::NetworkQuality;

/// How a device's network behaves. Rates are probabilities per request (per action for
/// `offline_rate`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkProfile {
    /// Added before every request.
    #[serde(serialize_with = "ser_ms")]
    pub latency: Duration,
    /// Latency varies uniformly by up to this much either way.
    #[serde(serialize_with = "ser_ms")]
    pub jitter: Duration,
    /// A request is lost: half of the time before it reaches the server, half of the time
    /// its response is lost after the server handled it. The device retries with the same key.
    pub drop_rate: f64,
    /// The network delivers a request twice, concurrently.
    pub duplicate_rate: f64,
    /// After a failed push the device sends its next batch first and retries the failed one after.
    pub reorder_rate: f64,
    /// Before each action the device may go offline for a while (it keeps editing).
    pub offline_rate: f64,
    /// How long an offline period lasts, at most.
    #[serde(serialize_with = "ser_ms")]
    pub max_offline: Duration,
    /// Sent as `X-Network-Quality`; it sets the push batch size.
    #[serde(serialize_with = "ser_quality")]
    pub quality: NetworkQuality,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ser_quality<S: serde::Serializer>(q: &NetworkQuality, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(q.as_str())
}

/// What the network does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered once, and the response comes back.
    Once,
    /// Delivered twice at the same time; the device reads the first response.
    Twice,
    /// Lost before it reached the server.
    LostRequest,
    /// The server handled it but the response was lost.
    LostResponse,
}

impl NetworkProfile {
    /// A LAN: no latency, nothing lost.
    pub fn perfect() -> Self {
        NetworkProfile {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            offline_rate: 0.0,
            max_offline: Duration::ZERO,
            quality: NetworkQuality::Excellent,
        }
    }

    /// A good mobile network: a few milliseconds, rarely a lost response.
    pub fn good() -> Self {
        NetworkProfile {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(3),
            drop_rate: 0.01,
            quality: NetworkQuality::Good,
            ..Self::perfect()
        }
    }

    /// A poor field network: slow, lossy, duplicating, reordering, often offline.
    pub fn flaky() -> Self {
        NetworkProfile {
            latency: Duration::from_millis(40),
            jitter: Duration::from_millis(30),
            drop_rate: 0.15,
            duplicate_rate: 0.05,
            reorder_rate: 0.5,
            offline_rate: 0.05,
            max_offline: Duration::from_secs(3),
            quality: NetworkQuality::Poor,
        }
    }

    /// Checks that every rate is a probability.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("reorder_rate", self.reorder_rate),
            ("offline_rate", self.offline_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1 (got {rate})"));
            }
        }
        Ok(())
    }

    /// This request's latency.
    pub fn delay(&self, rng: &mut impl Rng) -> Duration {
        if self.jitter.is_zero() {
            return self.latency;
        }
        let jitter = self.jitter.as_secs_f64();
        let offset = rng.random_range(-jitter..=jitter);
        Duration::from_secs_f64((self.latency.as_secs_f64() + offset).max(0.0))
    }

    /// What happens to this request.
    pub fn delivery(&self, rng: &mut impl Rng) -> Delivery {
        if self.drop_rate > 0.0 && rng.random_bool(self.drop_rate) {
            if rng.random_bool(0.5) { Delivery::LostRequest } else { Delivery::LostResponse }
        } else if self.duplicate_rate > 0.0 && rng.random_bool(self.duplicate_rate) {
            Delivery::Twice
        } else {
            Delivery::Once
        }
    }

    /// Whether to reorder retries after this failure.
    pub fn reorders(&self, rng: &mut impl Rng) -> bool {
        self.reorder_rate > 0.0 && rng.random_bool(self.reorder_rate)
    }

    /// An offline period starting now, if the device goes offline.
    pub fn offline_period(&self, rng: &mut impl Rng) -> Option<Duration> {
        (self.offline_rate > 0.0 && !self.max_offline.is_zero() && rng.random_bool(self.offline_rate))
            .then(|| self.max_offline.mul_f64(rng.random_range(0.2..=1.0)))
    }
}
