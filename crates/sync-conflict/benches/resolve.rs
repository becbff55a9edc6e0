//! Resolutions per second: simple policies on a small record, merges on 50-field records.

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use sync_conflict::{ConflictInput, Policy, RecordState, resolve};
use sync_state_machine::workflow;
use time::macros::datetime;

fn state(data: Value, minute: u8, device: &str) -> RecordState {
    let at = datetime!(2026-11-22 10:00 UTC) + time::Duration::minutes(i64::from(minute));
    match data {
        Value::Object(map) => RecordState::new(map, at, device),
        _ => RecordState::new(Map::new(), at, device),
    }
}

/// A task as a device sends it: five fields.
fn small() -> (RecordState, RecordState, RecordState) {
    let base = json!({"title": "Check pump", "status": "ASSIGNED", "assigned_to": "ann",
                      "due_at": "2026-11-23T09:00:00Z", "location": {"lat": 51.5, "lng": -0.1}});
    let mut server = base.clone();
    server["assigned_to"] = json!("bob");
    let mut client = base.clone();
    client["status"] = json!("INPROGRESS");
    (state(base, 0, "dev-a"), state(server, 2, "dev-b"), state(client, 3, "dev-a"))
}

/// A 50-field ticket: each side changed 5 fields of its own, and 3 fields both changed.
fn wide() -> (RecordState, RecordState, RecordState) {
    let mut base = Map::new();
    for i in 0..44 {
        let value = match i % 4 {
            0 => json!(format!("text value number {i}")),
            1 => json!(i),
            2 => json!({"nested": i, "label": format!("n{i}")}),
            _ => json!([i, i + 1, i + 2]),
        };
        base.insert(format!("field_{i:02}"), value);
    }
    for (k, v) in [
        ("title", json!("Pump failure")),
        ("status", json!("OPEN")),
        ("priority", json!("MEDIUM")),
        ("escalation_level", json!(1)),
        ("assigned_to", json!("ann")),
        ("comments", json!([{"id": "c1", "at": "2026-11-22T08:00:00Z", "text": "seen", "author": "ann"}])),
    ] {
        base.insert(k.to_owned(), v);
    }
    let (mut server, mut client) = (base.clone(), base.clone());
    for i in 0..5 {
        server.insert(format!("field_{i:02}"), json!("server edit"));
        client.insert(format!("field_{:02}", 10 + i), json!("client edit"));
    }
    for i in 20..23 {
        server.insert(format!("field_{i:02}"), json!("both: server"));
        client.insert(format!("field_{i:02}"), json!("both: client"));
    }
    server.insert("escalation_level".into(), json!(3));
    server.insert("priority".into(), json!("HIGH"));
    client.insert("status".into(), json!("INPROGRESS"));
    client.insert(
        "comments".into(),
        json!([{"id": "c1", "at": "2026-11-22T08:00:00Z", "text": "seen", "author": "ann"},
               {"id": "c2", "at": "2026-11-22T09:00:00Z", "text": "on it", "author": "bob"}]),
    );
    (
        state(Value::Object(base), 0, "dev-a"),
        state(Value::Object(server), 2, "dev-b"),
        state(Value::Object(client), 3, "dev-a"),
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resolve");
    group.throughput(Throughput::Elements(1));

    let (base, server, client) = small();
    let input = ConflictInput::new(&server, &client).with_base(Some(&base)).with_workflow(workflow("task"));
    for policy in [Policy::ClientWins, Policy::ServerWins, Policy::MostRecentWins] {
        group.bench_function(format!("small/{policy}"), |b| b.iter(|| resolve(policy, black_box(&input))));
    }
    group.bench_function("small/most_recent_wins+into_owned", |b| {
        b.iter(|| resolve(Policy::MostRecentWins, black_box(&input)).into_owned())
    });
    group.bench_function("small/field_merge", |b| b.iter(|| resolve(Policy::FieldMerge, black_box(&input))));

    let (base, server, client) = wide();
    let input = ConflictInput::new(&server, &client).with_base(Some(&base)).with_workflow(workflow("ticket"));
    for policy in [Policy::MostRecentWins, Policy::FieldMerge, Policy::PreserveEscalation] {
        group
            .bench_function(format!("50_fields/{policy}"), |b| b.iter(|| resolve(policy, black_box(&input))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
