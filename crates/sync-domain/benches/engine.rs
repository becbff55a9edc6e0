//! The engine's push throughput on SQLite and PostgreSQL, next to the raw batched upsert of
//! the same rows (`benches/storage.rs`, `raw_upsert_baseline`): 100-change pushes of new
//! records and of edits to existing ones.
#![allow(clippy::unwrap_used)]

use std::{cell::Cell, time::Duration};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sync_domain::{
    SyncConfig, SyncEngine,
    domains::DomainRegistry,
    protocol::{Change, Op, PushRequest},
    store::{Principal, Role},
    testing::TestDb,
};
use time::macros::datetime;
use uuid::Uuid;

const BATCH: u64 = 100;

fn change(id: u64, base: i64, round: u64) -> Change {
    Change {
        domain: if id.is_multiple_of(3) { "ticket" } else { "task" }.into(),
        mobile_id: Uuid::from_u64_pair(0x4000, id),
        base_version: base,
        op: Op::Upsert,
        data: Some(json!({
            "title": format!("Check pump {id} ({round})"),
            "status": if id.is_multiple_of(3) { "NEW" } else { "ASSIGNED" },
            "description": "Inspect the pump and replace the seal if it leaks.",
            "assigned_to": "tech-7",
            "location": {"lat": 52.52, "lng": 13.405},
        })),
        patch: None,
        modified_at: datetime!(2026-11-22 10:00:00 UTC),
        priority: None,
        bu: Some("north".into()),
    }
}

fn bench_backend(c: &mut Criterion, test_db: &TestDb) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let engine =
        SyncEngine::new(test_db.database().clone(), SyncConfig::default(), DomainRegistry::builtin());
    let who =
        Principal { tenant: "bench-tenant".into(), user: "tech-7".into(), role: Role::Device, units: None };
    let name = test_db.backend().as_str();
    let key = Cell::new(0_u64);
    let next_key = || {
        key.set(key.get() + 1);
        format!("k{}", key.get())
    };
    let push = |changes: Vec<Change>, key: String| {
        let request = PushRequest { device_id: "3f0c2b9e-bench".into(), client_time: None, changes };
        runtime.block_on(engine.push(&who, &key, request, None)).unwrap()
    };

    // 10,000 records already in the tenant, as in the storage baseline.
    const EXISTING: u64 = 10_000;
    for start in (0..EXISTING).step_by(500) {
        push((start..start + 500).map(|i| change(i, 0, 0)).collect(), next_key());
    }

    // As in the storage baseline: measure with table statistics present (autovacuum would
    // have analysed a table of this size in production).
    test_db
        .database()
        .run_sync(|conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query("ANALYZE").execute(conn)?;
            Ok(())
        })
        .unwrap();

    let mut group = c.benchmark_group(format!("engine/{name}"));
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(BATCH));

    let next_id = Cell::new(EXISTING);
    group.bench_function("push_100/insert", |b| {
        b.iter_batched(
            || {
                let id0 = next_id.get();
                next_id.set(id0 + BATCH);
                ((id0..id0 + BATCH).map(|i| change(i, 0, 0)).collect::<Vec<_>>(), next_key())
            },
            |(changes, key)| push(changes, key),
            BatchSize::SmallInput,
        );
    });

    // Edits of the next window of 100 existing records, each based on its current version.
    let round = Cell::new(0_u64);
    group.bench_function("push_100/update", |b| {
        b.iter_batched(
            || {
                let k = round.get();
                round.set(k + 1);
                let windows = EXISTING / BATCH;
                let (id0, version) = ((k % windows) * BATCH, i64::try_from(k / windows).unwrap() + 1);
                ((id0..id0 + BATCH).map(|i| change(i, version, k + 1)).collect::<Vec<_>>(), next_key())
            },
            |(changes, key)| push(changes, key),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn engine(c: &mut Criterion) {
    let sqlite = TestDb::sqlite();
    bench_backend(c, &sqlite);
    if let Some(postgres) = TestDb::postgres() {
        bench_backend(c, &postgres);
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
