//! Per-operation overhead of the recorder: one thread, and two threads on the same key.
//!
//! Each contended iteration is one recording on each of two threads started together, so the
//! time per iteration is the latency each thread sees per recorded operation.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sync_metrics::{Operation, Sample, SyncRecorder, Usage};

const USAGE: Usage = Usage { items: 12, conflicts: 1, bytes_raw: 4096, bytes_sent: 1024 };

/// Durations that move between histogram buckets, as real ones do.
fn sample(i: u64) -> Sample {
    Sample::success(Duration::from_micros(200 + (i * 7919) % 50_000), USAGE)
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("record/1-thread");
    let recorder = SyncRecorder::new();
    // A few other keys so that the lookup is not into a map of one.
    for tenant in 0..50 {
        recorder.record(&format!("tenant-{tenant}"), "task", Operation::Push, &sample(0));
    }
    let mut i = 0u64;
    group.bench_function("by_name", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            recorder.record(black_box("tenant-7"), black_box("task"), Operation::Push, &sample(i));
        })
    });
    let handle = recorder.series("tenant-7", "task", Operation::Push);
    group.bench_function("handle", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            handle.record(&sample(i));
        })
    });
    group.bench_function("time_closure_by_name", |b| {
        b.iter(|| {
            recorder
                .time(black_box("tenant-7"), black_box("task"), Operation::Push, || Ok::<_, ()>(black_box(1)))
        })
    });
    group.bench_function("time_closure_handle", |b| b.iter(|| handle.time(|| Ok::<_, ()>(black_box(1)))));
    // The clock alone: what a timing wrapper pays before it records anything.
    group.bench_function("clock_two_reads", |b| b.iter(|| black_box(Instant::now()).elapsed()));
    group.finish();
}

/// Runs `op` `iters` times on each of two threads at once; the slower thread's time.
fn contended(iters: u64, op: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    thread::scope(|scope| {
        let run = || {
            barrier.wait();
            let start = Instant::now();
            for i in 0..iters {
                op(i);
            }
            start.elapsed()
        };
        let other = scope.spawn(run);
        let mine = run();
        other.join().map_or(mine, |theirs| mine.max(theirs))
    })
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("record/2-threads-same-key");
    let recorder = SyncRecorder::new();
    let handle = recorder.series("tenant-7", "task", Operation::Push);
    group.bench_function("by_name", |b| {
        b.iter_custom(|iters| {
            contended(iters, |i| {
                recorder.record(black_box("tenant-7"), black_box("task"), Operation::Push, &sample(i))
            })
        })
    });
    group
        .bench_function("handle", |b| b.iter_custom(|iters| contended(iters, |i| handle.record(&sample(i)))));
    group.bench_function("time_closure_handle", |b| {
        b.iter_custom(|iters| {
            contended(iters, |_| {
                let _ = black_box(handle.time(|| Ok::<_, ()>(black_box(1))));
            })
        })
    });
    group.bench_function("clock_two_reads", |b| {
        b.iter_custom(|iters| {
            contended(iters, |_| {
                black_box(black_box(Instant::now()).elapsed());
            })
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = single_thread, two_threads }
criterion_main!(benches);
