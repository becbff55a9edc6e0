//! The recorder: counting, timing wrappers (sync and async, errors, panics, cancellation),
//! quantiles, the series limit, and exact totals from many threads.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use sync_metrics::{MetricsError, OVERFLOW_LABEL, Operation, RecorderConfig, Sample, SyncRecorder, Usage};

fn usage(items: u64, conflicts: u64, bytes_raw: u64, bytes_sent: u64) -> Usage {
    Usage { items, conflicts, bytes_raw, bytes_sent }
}

/// Polls a future to completion on this thread (the futures here only yield, never wait).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Pending once, then ready.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|_| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            Poll::Pending
        }
    })
    .await;
}

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn the_recorder_is_cheap_to_share() {
    assert_send_sync_clone::<SyncRecorder>();
    assert_send_sync_clone::<sync_metrics::SeriesHandle>();
}

#[test]
fn record_counts_everything_per_key() {
    let recorder = SyncRecorder::new();
    recorder.record(
        "acme",
        "task",
        Operation::Push,
        &Sample::success(Duration::from_millis(20), usage(5, 1, 1000, 300)),
    );
    recorder.record("acme", "task", Operation::Push, &Sample::failure(Duration::from_millis(40)));
    recorder.record(
        "acme",
        "task",
        Operation::Pull,
        &Sample::success(Duration::from_millis(5), usage(9, 0, 50, 50)),
    );
    recorder.record("globex", "task", Operation::Push, &Sample::success(Duration::ZERO, Usage::default()));

    let push = recorder.get("acme", "task", Operation::Push).unwrap();
    assert_eq!((push.count(), push.successes, push.failures), (2, 1, 1));
    assert_eq!((push.items, push.conflicts, push.bytes_raw, push.bytes_sent), (5, 1, 1000, 300));
    assert_eq!(push.duration_sum, Duration::from_millis(60));
    assert_eq!(recorder.get("acme", "task", Operation::Pull).unwrap().items, 9);
    assert!(recorder.get("acme", "task", Operation::Resolve).is_none());
    assert!(recorder.get("acme", "ticket", Operation::Push).is_none());

    let keys: Vec<(String, String, Operation)> =
        recorder.snapshot().into_iter().map(|s| (s.tenant, s.domain, s.operation)).collect();
    assert_eq!(
        keys,
        [
            ("acme".into(), "task".into(), Operation::Push),
            ("acme".into(), "task".into(), Operation::Pull),
            ("globex".into(), "task".into(), Operation::Push)
        ]
    );
}

#[test]
fn clones_share_one_store() {
    let recorder = SyncRecorder::new();
    let clone = recorder.clone();
    clone.record("t", "d", Operation::Resolve, &Sample::failure(Duration::from_millis(1)));
    assert_eq!(recorder.get("t", "d", Operation::Resolve).unwrap().failures, 1);
}

#[test]
fn time_records_ok_and_err() {
    let recorder = SyncRecorder::new();
    let ok: Result<u32, String> = recorder.time("t", "task", Operation::Push, || Ok(7));
    assert_eq!(ok, Ok(7));
    let err: Result<u32, String> = recorder.time("t", "task", Operation::Push, || Err("boom".into()));
    assert_eq!(err, Err("boom".into()));
    let with: Result<Vec<u8>, ()> = recorder.time_with(
        "t",
        "task",
        Operation::Push,
        || Ok(vec![1, 2, 3]),
        |v| usage(v.len() as u64, 0, 0, 0),
    );
    assert_eq!(with.unwrap().len(), 3);

    let s = recorder.get("t", "task", Operation::Push).unwrap();
    assert_eq!((s.successes, s.failures, s.items), (2, 1, 3));
}

#[test]
fn a_panic_is_recorded_as_a_failure() {
    let recorder = SyncRecorder::new();
    let handle = recorder.series("t", "task", Operation::Pull);
    let outcome = std::panic::catch_unwind(|| {
        let _: Result<(), ()> = handle.time(|| panic!("inside the operation"));
    });
    assert!(outcome.is_err());
    let outcome = std::panic::catch_unwind(|| {
        let _: Result<(), ()> = recorder.time("t", "task", Operation::Pull, || panic!("again"));
    });
    assert!(outcome.is_err());
    let s = recorder.get("t", "task", Operation::Pull).unwrap();
    assert_eq!((s.successes, s.failures), (0, 2));
}

#[test]
fn a_timer_records_once() {
    let recorder = SyncRecorder::new();
    recorder.start("t", "d", Operation::Partial).success(usage(1, 0, 0, 0));
    recorder.start("t", "d", Operation::Partial).failure();
    drop(recorder.start("t", "d", Operation::Partial));
    let handle = recorder.series("t", "d", Operation::Partial);
    handle.start().finish(&Ok::<u64, ()>(4), |&n| usage(n, 0, 0, 0));
    let s = recorder.get("t", "d", Operation::Partial).unwrap();
    assert_eq!((s.count(), s.successes, s.failures, s.items), (4, 2, 2, 5));
}

#[test]
fn time_future_records_the_outcome_and_is_send() {
    let recorder = SyncRecorder::new();
    let future = recorder.time_future_with(
        "t",
        "ticket",
        Operation::Push,
        async {
            yield_now().await;
            Ok::<_, String>(3u64)
        },
        |&n| usage(n, 1, 10, 5),
    );
    assert_send(&future);
    assert_eq!(block_on(future), Ok(3));
    let failed = recorder.time_future("t", "ticket", Operation::Push, async { Err::<(), _>("offline") });
    assert_eq!(block_on(failed), Err("offline"));

    let s = recorder.get("t", "ticket", Operation::Push).unwrap();
    assert_eq!(
        (s.successes, s.failures, s.items, s.conflicts, s.bytes_raw, s.bytes_sent),
        (1, 1, 3, 1, 10, 5)
    );
}

#[test]
fn a_cancelled_future_is_a_failure_and_an_unpolled_one_is_nothing() {
    let recorder = SyncRecorder::new();
    {
        let mut future = Box::pin(recorder.time_future("t", "task", Operation::Pull, async {
            yield_now().await;
            Ok::<(), ()>(())
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }
    drop(recorder.time_future("t", "task", Operation::Pull, async { Ok::<(), ()>(()) }));
    let s = recorder.get("t", "task", Operation::Pull).unwrap();
    assert_eq!((s.successes, s.failures), (0, 1));
}

#[test]
fn quantiles_are_close_to_recorded_values() {
    let recorder = SyncRecorder::new();
    let handle = recorder.series("t", "d", Operation::Push);
    for ms in 1..=1000u64 {
        handle.record(&Sample::success(Duration::from_millis(ms), Usage::default()));
    }
    let s = recorder.get("t", "d", Operation::Push).unwrap();
    for (got, want) in [(s.p50(), 500.0), (s.p95(), 950.0), (s.p99(), 990.0)] {
        let got = got.unwrap().as_secs_f64() * 1000.0;
        assert!((got - want).abs() / want <= 0.0625, "{got} vs {want}");
    }
    let buckets = s.buckets();
    assert_eq!(buckets.last(), Some(&(None, 1000)));
    let at_100ms = buckets.iter().find(|(b, _)| *b == Some(Duration::from_millis(100))).unwrap();
    assert_eq!(at_100ms.1, 100);
}

#[test]
fn bucket_bounds_are_inclusive() {
    let config = RecorderConfig { duration_buckets_seconds: vec![0.5, 1.0], ..RecorderConfig::default() };
    let recorder = SyncRecorder::with_config(&config).unwrap();
    for ms in [500, 500, 501, 1000, 1001] {
        recorder.record(
            "t",
            "d",
            Operation::Pull,
            &Sample::success(Duration::from_millis(ms), Usage::default()),
        );
    }
    let buckets = recorder.get("t", "d", Operation::Pull).unwrap().buckets();
    assert_eq!(
        buckets,
        [(Some(Duration::from_millis(500)), 2), (Some(Duration::from_secs(1)), 4), (None, 5)]
    );
}

#[test]
fn bad_configs_are_refused() {
    for buckets in
        [vec![1.0, 1.0], vec![2.0, 1.0], vec![0.0], vec![-1.0], vec![f64::NAN], vec![f64::INFINITY]]
    {
        let config =
            RecorderConfig { duration_buckets_seconds: buckets.clone(), ..RecorderConfig::default() };
        assert!(
            matches!(SyncRecorder::with_config(&config), Err(MetricsError::InvalidBuckets(_))),
            "{buckets:?}"
        );
    }
    let config = RecorderConfig { max_series: 0, ..RecorderConfig::default() };
    assert_eq!(SyncRecorder::with_config(&config).unwrap_err(), MetricsError::ZeroMaxSeries);
    let empty = RecorderConfig { duration_buckets_seconds: vec![], ..RecorderConfig::default() };
    assert!(SyncRecorder::with_config(&empty).is_ok());
    let parsed: RecorderConfig = serde_json::from_str(r#"{"max_series": 5}"#).unwrap();
    assert_eq!(parsed.duration_buckets_seconds, RecorderConfig::default().duration_buckets_seconds);
}

#[test]
fn keys_past_the_limit_go_to_overflow() {
    let config = RecorderConfig { max_series: 2, ..RecorderConfig::default() };
    let recorder = SyncRecorder::with_config(&config).unwrap();
    let one = Sample::success(Duration::from_millis(1), Usage::default());
    for tenant in ["a", "b", "c", "d"] {
        recorder.record(tenant, "task", Operation::Push, &one);
    }
    recorder.record("a", "task", Operation::Push, &one);
    assert_eq!(recorder.get("a", "task", Operation::Push).unwrap().count(), 2);
    assert!(recorder.get("c", "task", Operation::Push).is_none());
    assert_eq!(recorder.get(OVERFLOW_LABEL, OVERFLOW_LABEL, Operation::Push).unwrap().count(), 2);
    assert_eq!(recorder.overflowed_samples(), 2);
    assert_eq!(recorder.snapshot().len(), 3);
}

#[test]
fn operations_parse_and_display() {
    for op in Operation::ALL {
        assert_eq!(op.to_string().parse::<Operation>().unwrap(), op);
    }
    assert_eq!(
        "merge".parse::<Operation>().unwrap_err().to_string(),
        "unknown sync operation `merge` (expected push, pull, partial or resolve)"
    );
}

#[test]
fn many_threads_give_exact_totals() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 20_000;
    let recorder = SyncRecorder::new();
    thread::scope(|scope| {
        for t in 0..THREADS {
            let recorder = recorder.clone();
            scope.spawn(move || {
                let handle = recorder.series("shared", "task", Operation::Push);
                for i in 0..PER_THREAD {
                    let sample = if i % 4 == 0 {
                        Sample::failure(Duration::from_micros(i % 1000))
                    } else {
                        Sample::success(Duration::from_micros(i % 1000), usage(2, 1, 100, 40))
                    };
                    // 50 keys made while 8 threads record into them (the map is replaced under
                    // the readers' feet), and one shared key half by name, half by handle.
                    let own = format!("tenant-{}", (t + i) % 50);
                    if i % 2 == 0 {
                        recorder.record(&own, "task", Operation::Push, &sample);
                        recorder.record("shared", "task", Operation::Push, &sample);
                    } else {
                        recorder.record(&own, "task", Operation::Push, &sample);
                        handle.record(&sample);
                    }
                }
            });
        }
    });

    let total = THREADS * PER_THREAD;
    let failures = total / 4;
    let successes = total - failures;
    let shared = recorder.get("shared", "task", Operation::Push).unwrap();
    assert_eq!((shared.count(), shared.successes, shared.failures), (total, successes, failures));
    assert_eq!((shared.items, shared.conflicts), (2 * successes, successes));
    assert_eq!((shared.bytes_raw, shared.bytes_sent), (100 * successes, 40 * successes));
    assert_eq!(shared.buckets().last(), Some(&(None, total)));
    let sum_per_thread: u64 = (0..PER_THREAD).map(|i| i % 1000).sum();
    assert_eq!(shared.duration_sum, Duration::from_micros(THREADS * sum_per_thread));

    for k in 0..50 {
        let series = recorder.get(&format!("tenant-{k}"), "task", Operation::Push).unwrap();
        assert_eq!(series.count(), THREADS * PER_THREAD / 50, "tenant-{k}");
    }
    assert_eq!(recorder.snapshot().len(), 51);
}

proptest! {
    #[test]
    fn counts_and_buckets_agree(samples in prop::collection::vec((any::<bool>(), 0u64..120_000_000), 1..200)) {
        let recorder = SyncRecorder::new();
        for &(success, micros) in &samples {
            let sample = Sample { success, duration: Duration::from_micros(micros), usage: Usage::default() };
            recorder.record("t", "d", Operation::Push, &sample);
        }
        let s = recorder.get("t", "d", Operation::Push).unwrap();
        prop_assert_eq!(s.count(), samples.len() as u64);
        prop_assert_eq!(s.successes, samples.iter().filter(|(ok, _)| *ok).count() as u64);
        let buckets = s.buckets();
        prop_assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1));
        for (bound, cumulative) in &buckets {
            let expected = samples.iter().filter(|(_, us)| bound.is_none_or(|b| Duration::from_micros(*us) <= b)).count();
            prop_assert_eq!(*cumulative, expected as u64);
        }
        // Each quantile is within 6.25 % (or 0.5 µs) of the nearest-rank value.
        let mut micros: Vec<u64> = samples.iter().map(|&(_, us)| us).collect();
        micros.sort_unstable();
        for q in [0.5, 0.95, 0.99] {
            let rank = ((q * micros.len() as f64 - 1e-9).ceil() as usize).clamp(1, micros.len());
            let want = micros[rank - 1] as f64;
            let got = s.quantile(q).unwrap().as_nanos() as f64 / 1000.0;
            prop_assert!((got - want).abs() <= 0.5 || (got - want).abs() / want <= 0.0625, "q{} {} vs {}", q, got, want);
        }
    }
}
