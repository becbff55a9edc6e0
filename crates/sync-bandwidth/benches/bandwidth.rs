//! Benchmarks: compression speed and ratio on a realistic push batch, and delta size for a one-field edit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use sync_bandwidth::{
    CompressionConfig, CompressionMode, DeltaKind, Encoding, apply, decompress, diff, serialized_len,
    smallest_delta, smallest_delta_of,
};

/// xorshift64*: deterministic, so every run measures the same batch.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
    fn time(&mut self) -> String {
        format!(
            "2026-11-{:02}T{:02}:{:02}:{:02}Z",
            15 + self.below(8),
            self.below(24),
            self.below(60),
            self.below(60)
        )
    }
}

const VERBS: &[&str] = &[
    "inspect",
    "replace",
    "check",
    "tighten",
    "clean",
    "calibrate",
    "repair",
    "test",
    "lubricate",
    "reset",
    "photograph",
    "measure",
    "document",
    "isolate",
    "flush",
    "reseal",
    "swap",
    "verify",
    "realign",
    "drain",
];
const THINGS: &[&str] = &[
    "pump",
    "valve",
    "compressor",
    "filter",
    "gasket",
    "breaker panel",
    "thermostat",
    "pressure gauge",
    "fan belt",
    "water heater",
    "backflow preventer",
    "sump",
    "chiller",
    "boiler",
    "meter",
    "control board",
    "duct",
    "seal",
    "drain line",
    "fire damper",
    "generator",
    "transfer switch",
    "HVAC unit",
    "condensate pump",
    "relay",
];
const PLACES: &[&str] = &[
    "in the basement",
    "on the roof",
    "behind building C",
    "at the north entrance",
    "in plant room 2",
    "near loading dock 4",
    "on level 3",
    "in the east stairwell",
    "at the car park gate",
    "in the kitchen",
    "beside the server room",
    "under the mezzanine",
    "at substation 7",
    "in the laundry",
    "at the pump house",
];
const OBSERVATIONS: &[&str] = &[
    "Customer reports an intermittent leak since Monday.",
    "Noise gets worse when the system starts in the morning.",
    "Previous visit replaced the seal but the fault came back.",
    "Site contact is the facilities manager; call before arrival.",
    "Access needs a key from reception, ask for the duty officer.",
    "Pressure drops to about half of nominal under load.",
    "Error code shows on the display after roughly ten minutes.",
    "Parts were ordered last week and should be on the van.",
    "Readings were outside tolerance during the quarterly check.",
    "Tenant complained about temperature swings on the upper floors.",
    "Wear visible on the coupling; may need a full replacement.",
    "Bring the ladder, the unit is mounted high on the wall.",
];
const NAMES: &[&str] = &[
    "Pump",
    "Valve",
    "Boiler",
    "Chiller",
    "Panel",
    "Filter",
    "Meter",
    "Generator",
    "Fan",
    "Heater",
    "Compressor",
];
const TASK_STATUS: &[&str] = &["ASSIGNED", "INPROGRESS", "STANDBY", "PARTIALLYCOMPLETED", "COMPLETED"];
const TICKET_STATUS: &[&str] = &["NEW", "OPEN", "INPROGRESS", "ONHOLD", "RESOLVED"];
const PRIORITIES: &[&str] = &["high", "medium", "low"];
const UNITS: &[&str] = &["north", "south", "east", "west", "central"];

fn sentence(rng: &mut Rng) -> String {
    let mut s = format!("{} the {} {}", rng.pick(VERBS), rng.pick(THINGS), rng.pick(PLACES));
    if rng.below(2) == 0 {
        s.push_str(&format!(" and {} the {}", rng.pick(VERBS), rng.pick(THINGS)));
    }
    if rng.below(3) == 0 {
        s.push_str(&format!(", reading {}.{} bar", rng.below(12), rng.below(10)));
    }
    let mut chars = s.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or(' ');
    format!("{first}{}.", chars.as_str())
}

fn description(rng: &mut Rng) -> String {
    let mut parts: Vec<String> = (0..1 + rng.below(3)).map(|_| sentence(rng)).collect();
    if rng.below(2) == 0 {
        parts.insert(rng.below(parts.len() + 1), rng.pick(OBSERVATIONS).to_owned());
    }
    parts.join(" ")
}

fn title(rng: &mut Rng) -> String {
    format!("{} {} {}: {}", rng.pick(NAMES), 1 + rng.below(40), rng.pick(UNITS), rng.pick(THINGS))
}

/// The people of a field team: who tasks are assigned to and who writes comments. A device's
/// push comes from one technician whose work involves a handful of colleagues, so these ids
/// repeat across records; record and comment ids (`mobile_id`, `id`) are all unique.
struct World {
    rng: Rng,
    team: Vec<String>,
}

impl World {
    fn new(seed: u64, team_size: usize) -> Self {
        let mut rng = Rng(seed);
        let team = (0..team_size).map(|_| rng.uuid()).collect();
        World { rng, team }
    }
    /// A team member's id, or a fresh id when the team is empty (the worst case: nothing repeats).
    fn person(&mut self) -> String {
        if self.team.is_empty() {
            self.rng.uuid()
        } else {
            self.team[self.rng.below(self.team.len())].clone()
        }
    }
}

fn task(w: &mut World) -> Value {
    let assigned_to = w.person();
    let rng = &mut w.rng;
    json!({
        "title": title(rng),
        "status": rng.pick(TASK_STATUS),
        "description": description(rng),
        "assigned_to": assigned_to,
        "due_at": rng.time(),
        // Degrees with 6 decimals, as a phone's GPS fix is usually sent.
        "location": {"lat": (51_000_000 + rng.below(1_000_000)) as f64 / 1e6, "lng": (rng.below(1_000_000) as f64 - 500_000.0) / 1e6},
    })
}

fn ticket(w: &mut World) -> Value {
    let comments: Vec<Value> = (0..w.rng.below(3))
        .map(|_| {
            let author = w.person();
            let rng = &mut w.rng;
            json!({"id": rng.uuid(), "at": rng.time(), "text": sentence(rng), "author": author})
        })
        .collect();
    let assigned_to = w.person();
    let rng = &mut w.rng;
    json!({
        "title": title(rng),
        "status": rng.pick(TICKET_STATUS),
        "description": description(rng),
        "priority": rng.pick(&["LOW", "MEDIUM", "HIGH", "CRITICAL"]),
        "escalation_level": rng.below(3),
        "assigned_to": assigned_to,
        "comments": comments,
    })
}

/// A push body of 100 task and ticket changes as in PROTOCOL.md section 3, people drawn from a
/// team of `team_size` (0: every id unique).
fn push_batch(team_size: usize) -> Vec<u8> {
    let mut w = World::new(0x5eed_cafe_f00d_beef, team_size);
    let changes: Vec<Value> = (0..100)
        .map(|i| {
            let is_task = i % 5 < 3;
            let mobile_id = w.rng.uuid();
            let data = if is_task { task(&mut w) } else { ticket(&mut w) };
            let rng = &mut w.rng;
            let mut change = json!({
                "domain": if is_task { "task" } else { "ticket" },
                "mobile_id": mobile_id,
                "base_version": rng.below(6),
                "op": "upsert",
                "data": data,
                "modified_at": rng.time(),
                "priority": rng.pick(PRIORITIES),
            });
            if rng.below(3) > 0 {
                change["bu"] = json!(rng.pick(UNITS));
            }
            change
        })
        .collect();
    serde_json::to_vec(
        &json!({"device_id": Rng(7).uuid(), "client_time": "2026-11-22T10:00:05Z", "changes": changes}),
    )
    .unwrap()
}

const TEAM_SIZE: usize = 12;

fn config(encoding: Encoding, level: u32) -> CompressionConfig {
    let always = CompressionConfig::with_mode(CompressionMode::Always);
    match encoding {
        #[cfg(feature = "zstd")]
        Encoding::Zstd => CompressionConfig { zstd_level: level as i32, ..always },
        _ => CompressionConfig { gzip_level: level, ..always },
    }
}

type Levels = Vec<(Encoding, u32)>;

/// The codings and levels timed, and those whose ratio alone is reported.
fn encodings() -> (Levels, Levels) {
    #[allow(unused_mut)]
    let (mut timed, mut ratio_only) =
        (vec![(Encoding::Gzip, 1), (Encoding::Gzip, 6)], vec![(Encoding::Gzip, 9)]);
    #[cfg(feature = "zstd")]
    {
        timed.extend([(Encoding::Zstd, 1), (Encoding::Zstd, 3), (Encoding::Zstd, 6)]);
        ratio_only.extend([(Encoding::Zstd, 9), (Encoding::Zstd, 19)]);
    }
    (timed, ratio_only)
}

fn report(label: &str, body: &[u8], encoding: Encoding, level: u32) -> Vec<u8> {
    let out = config(encoding, level).compress_as(body.to_vec(), encoding).unwrap();
    assert!(out.is_compressed());
    println!(
        "{label} {encoding}-{level}: {} -> {} bytes, ratio {:.2}x (compressed/original {:.3})",
        body.len(),
        out.body.len(),
        body.len() as f64 / out.body.len() as f64,
        out.ratio()
    );
    out.body
}

fn compression(c: &mut Criterion) {
    let (timed, ratio_only) = encodings();
    let worst = push_batch(0);
    for &(encoding, level) in timed.iter().chain(&ratio_only) {
        report("all ids unique,", &worst, encoding, level);
    }
    let body = push_batch(TEAM_SIZE);
    println!("push batch: 100 changes, team of {TEAM_SIZE}, {} bytes of JSON", body.len());
    for &(encoding, level) in &ratio_only {
        report("push batch", &body, encoding, level);
    }
    let mut group = c.benchmark_group("compress_push_batch");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for (encoding, level) in timed {
        let compressed = report("push batch", &body, encoding, level);
        let config = config(encoding, level);
        let name = format!("{encoding}-{level}");
        group.bench_with_input(BenchmarkId::new("compress", &name), &body, |b, body| {
            b.iter(|| config.compress_as(black_box(body.clone()), encoding).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("decompress", &name), &compressed, |b, compressed| {
            b.iter(|| decompress(black_box(compressed), encoding, 8 << 20).unwrap().len())
        });
    }
    group.finish();
}

fn deltas(c: &mut Criterion) {
    let mut world = World::new(42, TEAM_SIZE);
    let old = ticket(&mut world);
    let mut new = old.clone();
    new["status"] = json!("INPROGRESS");
    let patch = smallest_delta_of(&old, &new, &[DeltaKind::JsonPatch]);
    let any = smallest_delta(&old, &new);
    println!(
        "one-field edit of a ticket: full record {} bytes, JSON Patch {} bytes ({:.1}%), merge patch {} bytes ({:.1}%)",
        patch.full_bytes,
        patch.bytes,
        100.0 * patch.bytes as f64 / patch.full_bytes as f64,
        any.bytes,
        100.0 * any.bytes as f64 / any.full_bytes as f64,
    );
    println!("  patch: {}", patch.delta.to_value());
    assert_eq!(serialized_len(&new), patch.full_bytes);

    let mut group = c.benchmark_group("delta_one_field_edit");
    group.bench_function("diff", |b| b.iter(|| diff(black_box(&old), black_box(&new))));
    let p = diff(&old, &new);
    group.bench_function("apply", |b| {
        b.iter(|| {
            let mut doc = old.clone();
            apply(&mut doc, black_box(&p)).unwrap();
            doc
        })
    });
    group.bench_function("smallest_delta", |b| b.iter(|| smallest_delta(black_box(&old), black_box(&new))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = compression, deltas
}
criterion_main!(benches);
