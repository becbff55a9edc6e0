//! The recorder: per (tenant, domain, operation) counters and duration histograms, shared by
//! cloning, recorded from any thread without locks on the hot path of a cached handle.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::histogram::{DurationHistogram, HistogramReading, saturating_nanos};
use crate::{MetricsError, Operation};

/// The tenant and domain label of the series that take samples once `max_series` is reached.
pub const OVERFLOW_LABEL: &str = "_overflow";

/// What an operation moved, besides its outcome and duration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Records synced.
    pub items: u64,
    pub conflicts: u64,
    /// What would have been sent uncompressed and as full records.
    pub bytes_raw: u64,
    /// What went on the wire.
    pub bytes_sent: u64,
}

/// One recorded operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub success: bool,
    pub duration: Duration,
    pub usage: Usage,
}

impl Sample {
    pub fn success(duration: Duration, usage: Usage) -> Self {
        Self { success: true, duration, usage }
    }

    pub fn failure(duration: Duration) -> Self {
        Self { success: false, duration, usage: Usage::default() }
    }
}

/// How a recorder is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecorderConfig {
    /// Upper bounds (`le`) of the Prometheus duration buckets, in seconds, strictly increasing;
    /// `+Inf` is implied.
    pub duration_buckets_seconds: Vec<f64>,
    /// At most this many (tenant, domain, operation) series; samples for new keys past it go to
    /// the `_overflow` series of their operation, so a flood of tenants cannot exhaust memory.
    pub max_series: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            duration_buckets_seconds: vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ],
            max_series: 10_000,
        }
    }
}

impl RecorderConfig {
    fn bounds_ns(&self) -> Result<Vec<u64>, MetricsError> {
        let invalid = || MetricsError::InvalidBuckets(self.duration_buckets_seconds.clone());
        let mut bounds = Vec::with_capacity(self.duration_buckets_seconds.len());
        for &seconds in &self.duration_buckets_seconds {
            if !seconds.is_finite() || seconds <= 0.0 {
                return Err(invalid());
            }
            // `as` saturates; a bound of more than 584 years is as good as +Inf.
            let nanos = (seconds * 1e9).round() as u64;
            if bounds.last().is_some_and(|&last| last >= nanos) {
                return Err(invalid());
            }
            bounds.push(nanos);
        }
        Ok(bounds)
    }
}

/// Per-series counters in one cache line, apart from other series' lines.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counters {
    successes: AtomicU64,
    failures: AtomicU64,
    conflicts: AtomicU64,
    items: AtomicU64,
    bytes_raw: AtomicU64,
    bytes_sent: AtomicU64,
    duration_ns: AtomicU64,
}

#[derive(Debug)]
struct Series {
    counters: Counters,
    histogram: DurationHistogram,
    bounds_ns: Arc<[u64]>,
}

#[inline]
fn add(counter: &AtomicU64, value: u64) {
    if value != 0 {
        counter.fetch_add(value, Ordering::Relaxed);
    }
}

impl Series {
    fn new(bounds_ns: Arc<[u64]>) -> Self {
        Self { counters: Counters::default(), histogram: DurationHistogram::new(bounds_ns.len()), bounds_ns }
    }

    #[inline]
    fn record(&self, sample: &Sample) {
        let c = &self.counters;
        add(if sample.success { &c.successes } else { &c.failures }, 1);
        add(&c.conflicts, sample.usage.conflicts);
        add(&c.items, sample.usage.items);
        add(&c.bytes_raw, sample.usage.bytes_raw);
        add(&c.bytes_sent, sample.usage.bytes_sent);
        let nanos = saturating_nanos(sample.duration);
        add(&c.duration_ns, nanos);
        self.histogram.record(&self.bounds_ns, nanos);
    }

    fn read(&self, key: &OwnedKey) -> SeriesSnapshot {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let histogram = self.histogram.read();
        SeriesSnapshot {
            tenant: key.tenant.to_string(),
            domain: key.domain.to_string(),
            operation: key.operation,
            successes: load(&c.successes),
            failures: load(&c.failures),
            conflicts: load(&c.conflicts),
            items: load(&c.items),
            bytes_raw: load(&c.bytes_raw),
            bytes_sent: load(&c.bytes_sent),
            duration_sum: Duration::from_nanos(load(&c.duration_ns)),
            bucket_bounds_ns: Arc::clone(&self.bounds_ns),
            histogram,
        }
    }
}

/// What the recorder holds for one (tenant, domain, operation), read at one moment.
///
/// Counters are read one by one while other threads may record, so a reading taken under load
/// can be a few samples apart between fields; each field is exact once recording stops.
#[derive(Debug, Clone)]
pub struct SeriesSnapshot {
    pub tenant: String,
    pub domain: String,
    pub operation: Operation,
    pub successes: u64,
    pub failures: u64,
    pub conflicts: u64,
    pub items: u64,
    pub bytes_raw: u64,
    pub bytes_sent: u64,
    pub duration_sum: Duration,
    bucket_bounds_ns: Arc<[u64]>,
    histogram: HistogramReading,
}

impl SeriesSnapshot {
    /// Operations recorded (successes + failures).
    pub fn count(&self) -> u64 {
        self.successes.saturating_add(self.failures)
    }

    /// Cumulative Prometheus buckets: `(upper bound, operations at or below it)`, ending with
    /// `(None, total)` for `+Inf`.
    pub fn buckets(&self) -> Vec<(Option<Duration>, u64)> {
        let mut cumulative = 0u64;
        self.histogram
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &count)| {
                cumulative = cumulative.saturating_add(count);
                (self.bucket_bounds_ns.get(i).map(|&ns| Duration::from_nanos(ns)), cumulative)
            })
            .collect()
    }

    /// The nearest-rank quantile `q` (0..=1) of the recorded durations, within 6.25 % (or 0.5 µs)
    /// of a recorded value; `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        self.histogram.quantile(q)
    }

    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.5)
    }

    pub fn p95(&self) -> Option<Duration> {
        self.quantile(0.95)
    }

    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    /// The histogram's own count (sum of its buckets), consistent with [`Self::buckets`].
    pub(crate) fn histogram_count(&self) -> u64 {
        self.histogram.count()
    }
}

// Map keys: owned in the map, looked up with borrowed parts without allocating, through
// `Borrow<dyn KeyView>` (both sides hash and compare the same `parts()`).
#[derive(Debug, Clone)]
struct OwnedKey {
    // `Arc` so that copying the map to add a series is cheap.
    tenant: Arc<str>,
    domain: Arc<str>,
    operation: Operation,
}

trait KeyView {
    fn parts(&self) -> (&str, &str, Operation);
}

impl KeyView for OwnedKey {
    fn parts(&self) -> (&str, &str, Operation) {
        (&self.tenant, &self.domain, self.operation)
    }
}

impl KeyView for (&str, &str, Operation) {
    fn parts(&self) -> (&str, &str, Operation) {
        *self
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for OwnedKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

impl Hash for OwnedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for OwnedKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for OwnedKey {}

type SeriesMap = HashMap<OwnedKey, Arc<Series>, foldhash::fast::RandomState>;

#[derive(Debug)]
struct Inner {
    /// Read without locking; replaced whole (copy on write) when a series is added, which
    /// happens once per key.
    series: ArcSwap<SeriesMap>,
    /// Serialises the writers of `series`.
    adding: Mutex<()>,
    bounds_ns: Arc<[u64]>,
    max_series: usize,
    overflowed: AtomicU64,
}

/// Records sync operations keyed by tenant, domain and operation.
///
/// Cheap to clone (an `Arc`), `Send + Sync`; every recording is a few relaxed atomic additions.
/// Recording by name finds its series in a map read without a lock; a [`SeriesHandle`] from
/// [`SyncRecorder::series`] skips even the lookup.
#[derive(Debug, Clone)]
pub struct SyncRecorder {
    inner: Arc<Inner>,
}

impl Default for SyncRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncRecorder {
    /// A recorder with [`RecorderConfig::default`].
    pub fn new() -> Self {
        // The default configuration is valid, so this is its only path; an empty bucket list
        // is the fallback that cannot be reached.
        Self::with_config(&RecorderConfig::default()).unwrap_or_else(|_| Self::build(Vec::new(), 10_000))
    }

    pub fn with_config(config: &RecorderConfig) -> Result<Self, MetricsError> {
        if config.max_series == 0 {
            return Err(MetricsError::ZeroMaxSeries);
        }
        Ok(Self::build(config.bounds_ns()?, config.max_series))
    }

    fn build(bounds_ns: Vec<u64>, max_series: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                series: ArcSwap::from_pointee(SeriesMap::default()),
                adding: Mutex::new(()),
                bounds_ns: bounds_ns.into(),
                max_series,
                overflowed: AtomicU64::new(0),
            }),
        }
    }

    /// Records one operation.
    #[inline]
    pub fn record(&self, tenant: &str, domain: &str, operation: Operation, sample: &Sample) {
        let map = self.inner.series.load();
        if let Some(series) = map.get(&(tenant, domain, operation) as &dyn KeyView) {
            series.record(sample);
            return;
        }
        if map.len() >= self.inner.max_series
            && let Some(series) = map.get(&(OVERFLOW_LABEL, OVERFLOW_LABEL, operation) as &dyn KeyView)
        {
            self.inner.overflowed.fetch_add(1, Ordering::Relaxed);
            series.record(sample);
            return;
        }
        drop(map);
        self.series(tenant, domain, operation).series.record(sample);
    }

    /// The series of a key, made if needed, to record into without looking it up again.
    ///
    /// Once the recorder holds `max_series` keys, a new key gets the `_overflow` series of its
    /// operation (and counts in [`SyncRecorder::overflowed_samples`] when recorded by name).
    pub fn series(&self, tenant: &str, domain: &str, operation: Operation) -> SeriesHandle {
        let lookup = (tenant, domain, operation);
        let found = |map: &SeriesMap| {
            map.get(&lookup as &dyn KeyView).map(|series| SeriesHandle { series: Arc::clone(series) })
        };
        if let Some(handle) = found(&self.inner.series.load()) {
            return handle;
        }
        let _adding = self.inner.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.inner.series.load_full();
        if let Some(handle) = found(&current) {
            return handle;
        }
        let key = if current.len() < self.inner.max_series {
            OwnedKey { tenant: tenant.into(), domain: domain.into(), operation }
        } else {
            self.inner.overflowed.fetch_add(1, Ordering::Relaxed);
            OwnedKey { tenant: OVERFLOW_LABEL.into(), domain: OVERFLOW_LABEL.into(), operation }
        };
        if let Some(series) = current.get(&key) {
            return SeriesHandle { series: Arc::clone(series) };
        }
        let series = Arc::new(Series::new(Arc::clone(&self.inner.bounds_ns)));
        let mut next = SeriesMap::clone(&current);
        next.insert(key, Arc::clone(&series));
        self.inner.series.store(Arc::new(next));
        SeriesHandle { series }
    }

    /// Starts timing an operation; see [`OpTimer`].
    pub fn start<'a>(&'a self, tenant: &'a str, domain: &'a str, operation: Operation) -> OpTimer<'a> {
        OpTimer::new(Target::Named { recorder: self, tenant, domain, operation })
    }

    /// Runs `f`, records its duration and whether it returned `Ok`, and returns its result.
    /// A panic in `f` is recorded as a failure before it unwinds on.
    pub fn time<T, E>(
        &self,
        tenant: &str,
        domain: &str,
        operation: Operation,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.time_with(tenant, domain, operation, f, |_| Usage::default())
    }

    /// As [`Self::time`], with the usage of a successful result read by `usage`.
    pub fn time_with<T, E>(
        &self,
        tenant: &str,
        domain: &str,
        operation: Operation,
        f: impl FnOnce() -> Result<T, E>,
        usage: impl FnOnce(&T) -> Usage,
    ) -> Result<T, E> {
        self.start(tenant, domain, operation).run(f, usage)
    }

    /// Wraps a future: when it completes, its duration and outcome are recorded; if it is
    /// dropped before completing (cancelled), that is recorded as a failure.
    pub fn time_future<F, T, E>(
        &self,
        tenant: &str,
        domain: &str,
        operation: Operation,
        future: F,
    ) -> impl Future<Output = Result<T, E>> + use<F, T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.series(tenant, domain, operation).time_future_with(future, |_| Usage::default())
    }

    /// As [`Self::time_future`], with the usage of a successful result read by `usage`.
    pub fn time_future_with<F, T, E, U>(
        &self,
        tenant: &str,
        domain: &str,
        operation: Operation,
        future: F,
        usage: U,
    ) -> impl Future<Output = Result<T, E>> + use<F, T, E, U>
    where
        F: Future<Output = Result<T, E>>,
        U: FnOnce(&T) -> Usage,
    {
        self.series(tenant, domain, operation).time_future_with(future, usage)
    }

    /// Reads one series, if anything was recorded for it.
    pub fn get(&self, tenant: &str, domain: &str, operation: Operation) -> Option<SeriesSnapshot> {
        let map = self.inner.series.load();
        let lookup = (tenant, domain, operation);
        map.get_key_value(&lookup as &dyn KeyView).map(|(key, series)| series.read(key))
    }

    /// Reads every series, ordered by tenant, domain and operation.
    pub fn snapshot(&self) -> Vec<SeriesSnapshot> {
        let map = self.inner.series.load_full();
        let mut snapshots: Vec<SeriesSnapshot> = map.iter().map(|(key, series)| series.read(key)).collect();
        snapshots.sort_by(|a, b| {
            (a.tenant.as_str(), a.domain.as_str(), a.operation).cmp(&(
                b.tenant.as_str(),
                b.domain.as_str(),
                b.operation,
            ))
        });
        snapshots
    }

    /// Samples (and handles) that found the recorder full and went to `_overflow` instead.
    pub fn overflowed_samples(&self) -> u64 {
        self.inner.overflowed.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4) of everything recorded.
    pub fn render_prometheus(&self) -> String {
        crate::prometheus::render(&self.snapshot(), self.overflowed_samples())
    }
}

/// A series to record into directly: an `Arc` to its counters, no lookup, no lock.
/// Hold one where the key is known up front (per request handler, per tenant worker).
#[derive(Debug, Clone)]
pub struct SeriesHandle {
    series: Arc<Series>,
}

impl SeriesHandle {
    #[inline]
    pub fn record(&self, sample: &Sample) {
        self.series.record(sample);
    }

    pub fn start(&self) -> OpTimer<'_> {
        OpTimer::new(Target::Series(&self.series))
    }

    /// See [`SyncRecorder::time`].
    pub fn time<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.start().run(f, |_| Usage::default())
    }

    /// See [`SyncRecorder::time_with`].
    pub fn time_with<T, E>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
        usage: impl FnOnce(&T) -> Usage,
    ) -> Result<T, E> {
        self.start().run(f, usage)
    }

    /// See [`SyncRecorder::time_future`].
    pub fn time_future<F, T, E>(&self, future: F) -> impl Future<Output = Result<T, E>> + use<F, T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.time_future_with(future, |_| Usage::default())
    }

    /// See [`SyncRecorder::time_future_with`].
    pub fn time_future_with<F, T, E, U>(
        &self,
        future: F,
        usage: U,
    ) -> impl Future<Output = Result<T, E>> + use<F, T, E, U>
    where
        F: Future<Output = Result<T, E>>,
        U: FnOnce(&T) -> Usage,
    {
        let handle = self.clone();
        async move {
            // The timer starts at the first poll: time spent before that is not the operation's.
            let timer = handle.start();
            let result = future.await;
            timer.finish(&result, usage);
            result
        }
    }
}

#[derive(Debug)]
enum Target<'a> {
    Series(&'a Series),
    Named { recorder: &'a SyncRecorder, tenant: &'a str, domain: &'a str, operation: Operation },
}

/// A running operation. Finish it with [`OpTimer::success`] or [`OpTimer::failure`]; dropping
/// it unfinished (an early return, a panic, a cancelled future) records a failure.
#[derive(Debug)]
#[must_use = "an OpTimer dropped at once records a failed operation of no duration"]
pub struct OpTimer<'a> {
    target: Target<'a>,
    started: Instant,
    finished: bool,
}

impl<'a> OpTimer<'a> {
    fn new(target: Target<'a>) -> Self {
        Self { target, started: Instant::now(), finished: false }
    }

    pub fn success(mut self, usage: Usage) {
        self.complete(true, usage);
    }

    pub fn failure(mut self) {
        self.complete(false, Usage::default());
    }

    /// Records `Ok` as a success (with the usage read from it) and `Err` as a failure.
    pub fn finish<T, E>(self, result: &Result<T, E>, usage: impl FnOnce(&T) -> Usage) {
        match result {
            Ok(value) => self.success(usage(value)),
            Err(_) => self.failure(),
        }
    }

    fn run<T, E>(self, f: impl FnOnce() -> Result<T, E>, usage: impl FnOnce(&T) -> Usage) -> Result<T, E> {
        let result = f();
        self.finish(&result, usage);
        result
    }

    fn complete(&mut self, success: bool, usage: Usage) {
        if self.finished {
            return;
        }
        self.finished = true;
        let sample = Sample { success, duration: self.started.elapsed(), usage };
        match self.target {
            Target::Series(series) => series.record(&sample),
            Target::Named { recorder, tenant, domain, operation } => {
                recorder.record(tenant, domain, operation, &sample);
            }
        }
    }
}

impl Drop for OpTimer<'_> {
    fn drop(&mut self) {
        self.complete(false, Usage::default());
    }
}
