//! Benchmarks of the HTTP layer: request decoding and parsing, and push and pull through the
//! whole router (`Router::oneshot`, no socket) on a SQLite test database.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use sync_api::{ApiOptions, SyncApi};
use sync_domain::domains::DomainRegistry;
use sync_domain::protocol::PushRequest;
use sync_domain::store::{self, Role};
use sync_domain::{SyncConfig, SyncEngine};
use tower::ServiceExt;

fn push_body(first_id: u64, n: u64) -> Value {
    let changes: Vec<Value> = (first_id..first_id + n)
        .map(|i| {
            json!({"domain": "task", "mobile_id": format!("00000000-0000-4000-8000-{i:012}"), "base_version": 0,
                   "op": "upsert", "modified_at": "2026-11-22T09:58:00Z",
                   "data": {"title": format!("Inspect pump {i}"), "status": "ASSIGNED", "description": "Check the seals and the pressure gauge."}})
        })
        .collect();
    json!({"device_id": "bench-device", "changes": changes})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn decoding(c: &mut Criterion) {
    let body = serde_json::to_vec(&push_body(0, 500)).unwrap();
    let compressed = gzip(&body);
    let mut group = c.benchmark_group("decode_push_500");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("identity", |b| {
        b.iter(|| sync_api::http::parse_json::<PushRequest>(black_box(&body)).unwrap())
    });
    group.bench_function("gzip", |b| {
        b.iter(|| {
            let plain =
                sync_bandwidth::decompress(black_box(&compressed), sync_bandwidth::Encoding::Gzip, 8 << 20)
                    .unwrap();
            sync_api::http::parse_json::<PushRequest>(&plain).unwrap()
        })
    });
    group.finish();
}

fn router(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let test_db = sync_domain::testing::TestDb::sqlite();
    let db = test_db.database().clone();
    let token = db
        .write_tx_sync(|c| {
            store::create_token(c, "acme", "bench", Role::Device, None, None, sync_domain::micros::now())
        })
        .unwrap();
    let engine = SyncEngine::new(db, SyncConfig::default(), DomainRegistry::builtin());
    let app = sync_api::router(SyncApi::new(
        engine,
        ApiOptions { limits: sync_api::LimitsConfig::unlimited(), ..ApiOptions::default() },
    ));
    let send = |request: Request<Body>| {
        let app = app.clone();
        runtime.block_on(async move {
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
            axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()
        })
    };

    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(50));
    let mut next_id = 0_u64;
    group.bench_function("push_50_new_tasks_sqlite", |b| {
        b.iter(|| {
            let body = serde_json::to_vec(&push_body(next_id, 50)).unwrap();
            next_id += 50;
            let request = Request::post("/api/v1/sync/push")
                .header("authorization", format!("Bearer {token}"))
                .header("idempotency-key", format!("k{next_id}"))
                .body(Body::from(body))
                .unwrap();
            send(request)
        })
    });
    group.throughput(Throughput::Elements(100));
    for (name, encoding) in [("pull_100_identity_sqlite", "identity"), ("pull_100_gzip_sqlite", "gzip")] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = Request::get("/api/v1/sync/pull?limit=100")
                    .header("authorization", format!("Bearer {token}"))
                    .header("accept-encoding", encoding)
                    .body(Body::empty())
                    .unwrap();
                send(request)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = decoding, router
}
criterion_main!(benches);
