//! Storage throughput on SQLite and PostgreSQL: the raw batched upsert that the engine's
//! 100-change push is measured against, and the batched reads a push and a pull make.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use diesel::connection::SimpleConnection;
use sync_domain::store::{self, PullFilter, RecordKey, RecordRow, VersionRow};
use sync_domain::testing::TestDb;
use sync_model::Priority;

const BATCH: i64 = 100;
const T: &str = "bench-tenant";

fn row(id: i64, version: i64, seq: i64) -> RecordRow {
    RecordRow {
        tenant_id: T.into(),
        domain: if id % 3 == 0 { "ticket" } else { "task" }.into(),
        mobile_id: format!("00000000-0000-4000-8000-{id:012}"),
        version,
        data: format!(
            concat!(
                r#"{{"title":"Check pump {}","status":"INPROGRESS","#,
                r#""description":"Inspect the pump and replace the seal if it leaks.","#,
                r#""assigned_to":"tech-7","location":{{"lat":52.52,"lng":13.405}}}}"#
            ),
            id
        ),
        deleted: false,
        modified_at: 1_795_341_605_000_000 + seq,
        server_modified_at: 1_795_341_606_000_000 + seq,
        modified_by_device: "3f0c2b9e-1111-4222-8333-444455556666".into(),
        bu: Some("north".into()),
        priority: Priority::Medium,
        seq,
    }
}

/// The versions that `rows` supersede: each row's previous version (none for a first version).
fn superseded(rows: &[RecordRow]) -> Vec<VersionRow> {
    rows.iter()
        .filter(|r| r.version > 1)
        .map(|r| RecordRow { version: r.version - 1, ..r.clone() }.to_version())
        .collect()
}

/// Records already in the tenant before measuring (so that reads and updates hit a realistic
/// index, not a handful of rows updated thousands of times), each at version 2 with version 1
/// in history.
const EXISTING: i64 = 10_000;

fn bench_backend(c: &mut Criterion, test_db: &TestDb) {
    let db = test_db.database().clone();
    let name = db.backend().as_str();
    for start in (0..EXISTING).step_by(1_000) {
        let rows: Vec<RecordRow> = (start..start + 1_000).map(|i| row(i, 2, i + 1)).collect();
        let versions = superseded(&rows);
        db.run_sync(|c| store::raw_upsert_baseline(c, &rows, &versions)).unwrap();
    }
    // Steady state: the planner has statistics (autovacuum's job in production).
    db.run_sync(|c| Ok(c.batch_execute("ANALYZE")?)).unwrap();
    let next_seq = Cell::new(EXISTING + 1);
    let take_seqs = || {
        let first = next_seq.get();
        next_seq.set(first + BATCH);
        first
    };

    let mut group = c.benchmark_group(format!("storage/{name}"));
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(BATCH as u64));

    // A push's reads: 100 records spread over the tenant, and one base version of each.
    let keys: Vec<RecordKey> = (0..BATCH).map(|i| row(i * (EXISTING / BATCH), 1, 0).key()).collect();
    group.bench_function("get_records_100", |b| {
        b.iter(|| {
            let found = db.run_sync(|c| store::get_records(c, T, &keys)).unwrap();
            assert_eq!(found.len(), BATCH as usize);
            black_box(found)
        });
    });
    let wanted: Vec<(RecordKey, i64)> = keys.iter().map(|k| (k.clone(), 1)).collect();
    group.bench_function("get_versions_100", |b| {
        b.iter(|| {
            let found = db.run_sync(|c| store::get_versions(c, T, &wanted)).unwrap();
            assert_eq!(found.len(), BATCH as usize);
            black_box(found)
        });
    });
    // A pull's page.
    group.bench_function("pull_page_100", |b| {
        b.iter(|| {
            let page = db.run_sync(|c| store::pull_page(c, T, 5_000, BATCH, &PullFilter::default())).unwrap();
            assert_eq!(page.len(), BATCH as usize);
            black_box(page)
        });
    });

    // The baseline for a push of 100 new records: rows and first versions, one transaction.
    let next_id = Cell::new(EXISTING);
    group.bench_function("raw_upsert_baseline/insert_100", |b| {
        b.iter_batched(
            || {
                let (id0, seq0) = (next_id.get(), take_seqs());
                next_id.set(id0 + BATCH);
                let rows: Vec<RecordRow> = (0..BATCH).map(|i| row(id0 + i, 1, seq0 + i)).collect();
                let versions = superseded(&rows);
                (rows, versions)
            },
            |(rows, versions)| db.run_sync(|c| store::raw_upsert_baseline(c, &rows, &versions)).unwrap(),
            BatchSize::SmallInput,
        );
    });

    // The baseline for a push of 100 changes to existing records: the next window of 100
    // records each gets its next version.
    let round = Cell::new(0_i64);
    group.bench_function("raw_upsert_baseline/update_100", |b| {
        b.iter_batched(
            || {
                let k = round.get();
                round.set(k + 1);
                let windows = EXISTING / BATCH;
                let (id0, version) = ((k % windows) * BATCH, k / windows + 3);
                let seq0 = take_seqs();
                let rows: Vec<RecordRow> = (0..BATCH).map(|i| row(id0 + i, version, seq0 + i)).collect();
                let versions = superseded(&rows);
                (rows, versions)
            },
            |(rows, versions)| db.run_sync(|c| store::raw_upsert_baseline(c, &rows, &versions)).unwrap(),
            BatchSize::SmallInput,
        );
    });

    // One write transaction that only takes sequence numbers: the fixed cost of a commit.
    group.throughput(Throughput::Elements(1));
    group.bench_function("allocate_seqs_tx", |b| {
        b.iter(|| black_box(db.write_tx_sync(|c| store::allocate_seqs(c, "bench-counter", 100)).unwrap()));
    });
    group.finish();
}

fn storage(c: &mut Criterion) {
    bench_backend(c, &TestDb::sqlite());
    if let Some(pg) = TestDb::postgres() {
        bench_backend(c, &pg);
    }
}

criterion_group!(benches, storage);
criterion_main!(benches);
