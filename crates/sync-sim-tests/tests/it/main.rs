//! sync-sim against an in-process server on each backend: every scenario keeps every
//! invariant, devices built on sync-client included, and deliberately broken servers are
//! caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Runs each `async fn(TestDb)` on a fresh database of each backend (sync-domain's
/// `backend_tests!` hands over only the handle; the simulator needs the URL too).
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !sync_domain::testing::backend_selected(sync_domain::Backend::Sqlite) {
                        return;
                    }
                    super::$name(sync_domain::testing::TestDb::sqlite()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !sync_domain::testing::backend_selected(sync_domain::Backend::Postgres) {
                        return;
                    }
                    let Some(test_db) = sync_domain::testing::TestDb::postgres() else { return };
                    super::$name(test_db).await;
                }
            )+
        }
    };
}

mod broken;
mod scenarios;
mod workload;

use std::time::Duration;

use axum::Router;
use sync_api::{ApiOptions, SyncApi};
use sync_domain::domains::DomainRegistry;
use sync_domain::testing::TestDb;
use sync_domain::{Database, SyncConfig, SyncEngine};
use sync_sim::{Report, RunOptions, Scenario, ScenarioKind, Target, TokenIssuer};

const JWT_SECRET: &str = "sim-test-secret";

/// Serves `db` on a free local port, the router passed through `wrap`; returns its URL.
async fn serve(db: &Database, wrap: impl FnOnce(Router) -> Router) -> String {
    let engine = SyncEngine::new(db.clone(), SyncConfig::default(), DomainRegistry::builtin());
    // The simulations compress a fleet's day into seconds: no per-node rate limits.
    let api = SyncApi::new(
        engine,
        ApiOptions {
            jwt_secret: Some(JWT_SECRET.into()),
            limits: sync_api::LimitsConfig::unlimited(),
            ..ApiOptions::default()
        },
    );
    let router = wrap(sync_api::router(api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    url
}

/// The simulator reads the database through its own URL (`TestDb::url`), as it would a
/// server's it started.
fn target(url: String, db: &TestDb, with_database: bool) -> Target {
    Target {
        base_url: url,
        other_nodes: Vec::new(),
        issuer: TokenIssuer::new(JWT_SECRET),
        database: with_database.then(|| sync_sim::db::Database::at(db.url()).unwrap()),
    }
}

/// The preset of `kind`, small enough for CI.
fn short(kind: ScenarioKind) -> Scenario {
    let mut scenario = Scenario::preset(kind);
    scenario.devices = 6;
    scenario.devices_per_unit = 4;
    scenario.duration = Duration::from_millis(2500);
    scenario.initial_records = scenario.initial_records.min(1500);
    scenario
}

async fn run(scenario: &Scenario, target: &Target) -> Report {
    sync_sim::run(scenario, target, &RunOptions::default()).await.unwrap()
}

fn invariant<'r>(report: &'r Report, name: &str) -> &'r sync_sim::invariants::Invariant {
    report.invariants.iter().find(|i| i.name == name).unwrap()
}
