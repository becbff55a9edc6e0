//! Rate limits of PROTOCOL.md section 9, counted per node: a request budget per token (a
//! token bucket) and a ceiling on each tenant's concurrent pushes.
//!
//! The bucket is the generic cell rate algorithm on integer nanoseconds: with an emission
//! interval `T = 60 s / per_minute` and room for `burst` requests at once, it keeps one
//! "theoretical arrival time" per token and admits a request when that time is at most
//! `T × (burst − 1)` ahead of now. Its law, property-tested: in any window of length `t`, at
//! most `burst + t / T` requests are admitted. Time is passed in, so the maths is pure.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const NANOS_PER_MINUTE: u128 = 60_000_000_000;

/// A request budget: `per_minute` on average, `burst` at once. `per_minute = 0` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    /// PROTOCOL.md's default: 600 requests a minute with a burst of 120.
    pub const DEFAULT: Rate = Rate { per_minute: 600, burst: 120 };
    /// No limit.
    pub const UNLIMITED: Rate = Rate { per_minute: 0, burst: 0 };

    pub fn is_unlimited(&self) -> bool {
        self.per_minute == 0
    }

    /// Nanoseconds between two requests at the average rate.
    fn interval_ns(&self) -> u128 {
        NANOS_PER_MINUTE / u128::from(self.per_minute.max(1))
    }

    /// How far ahead of now the theoretical arrival time may run: room for `burst` at once.
    fn tolerance_ns(&self) -> u128 {
        self.interval_ns() * u128::from(self.burst.max(1) - 1)
    }
}

impl Default for Rate {
    fn default() -> Self {
        Rate::DEFAULT
    }
}

/// One token's bucket (the generic cell rate algorithm's state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Theoretical arrival time of the next request, in nanoseconds on the caller's clock.
    tat: u128,
}

impl Bucket {
    /// A full bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits a request at `now_ns` (nanoseconds on a clock that never goes back), or says
    /// how long until one would be admitted.
    pub fn take(&mut self, rate: Rate, now_ns: u128) -> Result<(), Duration> {
        if rate.is_unlimited() {
            return Ok(());
        }
        let tat = self.tat.max(now_ns);
        let ahead = tat - now_ns;
        let tolerance = rate.tolerance_ns();
        if ahead > tolerance {
            let wait = ahead - tolerance;
            return Err(Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX)));
        }
        self.tat = tat + rate.interval_ns();
        Ok(())
    }

    /// Whether the bucket is full again at `now_ns` (so forgetting it changes nothing).
    pub fn is_full(&self, now_ns: u128) -> bool {
        self.tat <= now_ns
    }
}

/// The limits an API enforces, with PROTOCOL.md's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests a minute per token (0: no limit).
    pub rate_limit_per_minute: u32,
    /// Requests a token may make at once.
    pub rate_limit_burst: u32,
    /// Pushes a tenant may have in progress at once on this node (0: no ceiling).
    pub max_concurrent_pushes_per_tenant: u32,
    /// Per-tenant budgets that replace the default one.
    pub tenants: BTreeMap<String, Rate>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: Rate::DEFAULT.per_minute,
            rate_limit_burst: Rate::DEFAULT.burst,
            max_concurrent_pushes_per_tenant: 32,
            tenants: BTreeMap::new(),
        }
    }
}

impl LimitsConfig {
    /// No budget and no ceiling (for benchmarks and simulations that measure the engine).
    pub fn unlimited() -> Self {
        Self {
            rate_limit_per_minute: 0,
            rate_limit_burst: 0,
            max_concurrent_pushes_per_tenant: 0,
            tenants: BTreeMap::new(),
        }
    }

    /// The budget of a token of `tenant`.
    pub fn rate_for(&self, tenant: &str) -> Rate {
        self.tenants
            .get(tenant)
            .copied()
            .unwrap_or(Rate { per_minute: self.rate_limit_per_minute, burst: self.rate_limit_burst })
    }

    /// Problems that make the limits unusable, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let rates = std::iter::once(("default".to_owned(), self.rate_for("")))
            .chain(self.tenants.iter().map(|(tenant, rate)| (format!("tenant `{tenant}`"), *rate)));
        for (name, rate) in rates {
            if !rate.is_unlimited() && rate.burst == 0 {
                problems.push(format!("the {name} rate limit needs a burst of at least 1"));
            }
        }
        problems
    }
}

/// Why a request was refused with 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// The token spent its budget.
    TokenBudget,
    /// The tenant has as many pushes in progress as it may.
    ConcurrentPushes,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TokenBudget => "token_budget",
            Refusal::ConcurrentPushes => "concurrent_pushes",
        }
    }
}

/// Forget full buckets once this many tokens are tracked.
const PRUNE_ABOVE: usize = 10_000;

/// The per-node limiter: one bucket per token, one push count per tenant, and counts of
/// refusals for `/metrics`. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct Limiter {
    inner: Arc<LimiterInner>,
}

#[derive(Debug)]
struct LimiterInner {
    config: LimitsConfig,
    epoch: Instant,
    hasher: RandomState,
    buckets: Mutex<HashMap<u64, Bucket>>,
    pushes: Mutex<HashMap<String, u32>>,
    refused: Mutex<BTreeMap<(String, Refusal), u64>>,
    admitted: AtomicU64,
}

impl Limiter {
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            inner: Arc::new(LimiterInner {
                config,
                epoch: Instant::now(),
                hasher: RandomState::new(),
                buckets: Mutex::new(HashMap::new()),
                pushes: Mutex::new(HashMap::new()),
                refused: Mutex::new(BTreeMap::new()),
                admitted: AtomicU64::new(0),
            }),
        }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.inner.config
    }

    fn count_refusal(&self, tenant: &str, refusal: Refusal) {
        let mut refused = self.inner.refused.lock().unwrap_or_else(PoisonError::into_inner);
        *refused.entry((tenant.to_owned(), refusal)).or_default() += 1;
    }

    /// Spends one request of `credential`'s budget (a token of `tenant`), or says how long to
    /// wait. Only a hash of the credential is kept.
    pub fn admit(&self, tenant: &str, credential: &str) -> Result<(), Duration> {
        let rate = self.inner.config.rate_for(tenant);
        if rate.is_unlimited() {
            return Ok(());
        }
        let key = self.inner.hasher.hash_one(credential);
        let now = self.inner.epoch.elapsed().as_nanos();
        let result = {
            let mut buckets = self.inner.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            if buckets.len() > PRUNE_ABOVE {
                buckets.retain(|_, bucket| !bucket.is_full(now));
            }
            buckets.entry(key).or_default().take(rate, now)
        };
        match result {
            Ok(()) => {
                self.inner.admitted.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => self.count_refusal(tenant, Refusal::TokenBudget),
        }
        result
    }

    /// A place among `tenant`'s concurrent pushes, held until the permit is dropped; `None`
    /// when the tenant is at its ceiling.
    pub fn push_permit(&self, tenant: &str) -> Option<PushPermit> {
        let ceiling = self.inner.config.max_concurrent_pushes_per_tenant;
        if ceiling == 0 {
            return Some(PushPermit { limiter: None, tenant: String::new() });
        }
        let mut pushes = self.inner.pushes.lock().unwrap_or_else(PoisonError::into_inner);
        let active = pushes.entry(tenant.to_owned()).or_default();
        if *active >= ceiling {
            drop(pushes);
            self.count_refusal(tenant, Refusal::ConcurrentPushes);
            return None;
        }
        *active += 1;
        Some(PushPermit { limiter: Some(self.clone()), tenant: tenant.to_owned() })
    }

    /// Refusals so far, by tenant and reason.
    pub fn refusals(&self) -> Vec<(String, Refusal, u64)> {
        let refused = self.inner.refused.lock().unwrap_or_else(PoisonError::into_inner);
        refused.iter().map(|((tenant, refusal), n)| (tenant.clone(), *refusal, *n)).collect()
    }

    /// The Prometheus text of the limiter's counters.
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str("# HELP sync_rate_limited_total Requests refused with 429, by tenant and reason.\n");
        out.push_str("# TYPE sync_rate_limited_total counter\n");
        for (tenant, refusal, n) in self.refusals() {
            let tenant = sync_metrics::escape_label_value(&tenant);
            let _ = writeln!(
                out,
                "sync_rate_limited_total{{tenant=\"{tenant}\",reason=\"{}\"}} {n}",
                refusal.as_str()
            );
        }
        out.push_str("# HELP sync_rate_limit_admitted_total Requests admitted by a token budget.\n");
        out.push_str("# TYPE sync_rate_limit_admitted_total counter\n");
        let _ =
            writeln!(out, "sync_rate_limit_admitted_total {}", self.inner.admitted.load(Ordering::Relaxed));
        out
    }
}

/// A tenant's place among its concurrent pushes; dropping it frees the place.
#[derive(Debug)]
pub struct PushPermit {
    limiter: Option<Limiter>,
    tenant: String,
}

impl Drop for PushPermit {
    fn drop(&mut self) {
        if let Some(limiter) = &self.limiter {
            let mut pushes = limiter.inner.pushes.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(active) = pushes.get_mut(&self.tenant) {
                *active = active.saturating_sub(1);
                if *active == 0 {
                    pushes.remove(&self.tenant);
                }
            }
        }
    }
}

/// Whole seconds to wait, at least 1 (the `Retry-After` value).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}
