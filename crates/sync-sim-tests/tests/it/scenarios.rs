//! Every scenario, short, on SQLite and PostgreSQL: every invariant holds, and the scenario
//! really did what it is named for.

use sync_domain::testing::TestDb;
use sync_sim::ScenarioKind;

use super::*;

async fn basic_sync(db: TestDb) {
    let url = serve(db.database(), |r| r).await;
    let report = run(&short(ScenarioKind::BasicSync), &target(url, &db, true)).await;
    assert!(report.passed, "{}", report.to_table());
    assert!(report.changes.acknowledged > 100, "{}", report.to_table());
    assert!(report.pulls.delta_records > 0, "edits reach other devices as deltas\n{}", report.to_table());
    assert!(report.bytes.saved_pct > 0.0, "{}", report.to_table());
}

async fn high_conflict(db: TestDb) {
    let url = serve(db.database(), |r| r).await;
    let report = run(&short(ScenarioKind::HighConflict), &target(url, &db, true)).await;
    assert!(report.passed, "{}", report.to_table());
    assert!(report.conflict_rate_pct > 5.0, "{}", report.to_table());
    assert!(invariant(&report, "conflicts_logged").checked > 10, "{}", report.to_table());
    assert!(report.changes.merged + report.changes.server_won > 0, "{}", report.to_table());
}

async fn network_issues(db: TestDb) {
    let url = serve(db.database(), |r| r).await;
    let report = run(&short(ScenarioKind::NetworkIssues), &target(url, &db, true)).await;
    assert!(report.passed, "{}", report.to_table());
    let p = &report.pushes;
    assert!(p.lost > 0 && p.attempts > p.acknowledged, "the network lost pushes\n{}", report.to_table());
    assert!(report.changes.acknowledged > 20, "{}", report.to_table());
}

async fn offline_burst(db: TestDb) {
    let url = serve(db.database(), |r| r).await;
    let report = run(&short(ScenarioKind::OfflineBurst), &target(url, &db, true)).await;
    assert!(report.passed, "{}", report.to_table());
    assert!(report.changes.acknowledged > 200, "big outboxes came back\n{}", report.to_table());
}

async fn initial_sync(db: TestDb) {
    let url = serve(db.database(), |r| r).await;
    let scenario = short(ScenarioKind::InitialSync);
    let report = run(&scenario, &target(url, &db, true)).await;
    assert!(report.passed, "{}", report.to_table());
    let initial = report.initial_sync.unwrap();
    // Every device pulled at least every record seeded in its unit.
    let per_unit = scenario.initial_records / scenario.units();
    assert!(initial.records >= (per_unit * scenario.devices) as u64, "{}", report.to_table());
}

/// Without database access the history invariants fall back to the final state, and say so.
async fn over_http_only(db: TestDb) {
    let url = serve(db.database(), |r| r).await;
    let report = run(&short(ScenarioKind::HighConflict), &target(url, &db, false)).await;
    assert!(report.passed, "{}", report.to_table());
    assert!(invariant(&report, "acknowledged_in_history").note.is_some());
    assert!(invariant(&report, "no_duplicate_versions").checked > 0);
}

/// Devices follow live streams instead of polling: the streams alone bring every device what
/// the server acknowledged, before the drain's pulls.
async fn live_fleet(db: TestDb) {
    let url = serve(db.database(), |r| r).await;
    let scenario = short(ScenarioKind::LiveFleet);
    let report = run(&scenario, &target(url, &db, true)).await;
    assert!(report.passed, "{}", report.to_table());
    assert!(report.pulls.streams_opened >= scenario.devices as u64, "{}", report.to_table());
    assert!(report.pulls.stream_batches > 0, "{}", report.to_table());
    assert!(report.changes.acknowledged > 50, "{}", report.to_table());
}

backend_tests!(
    live_fleet,
    basic_sync,
    high_conflict,
    network_issues,
    offline_burst,
    initial_sync,
    over_http_only
);
