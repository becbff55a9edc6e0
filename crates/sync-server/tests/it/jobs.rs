//! The scheduled jobs across a cluster: two `serve` processes on one PostgreSQL database run
//! each job once per period between them (one node holds the leader lock), and when the leader
//! is killed (SIGKILL) the survivor takes over within 15 s. The jobs run every 2 s here
//! (`SYNC_JOBS_EVERY_SECONDS`), aligned to multiples of 2 s; the snapshot rows they write are
//! the evidence.

use std::time::{Duration, Instant};

use sync_domain::store;
use sync_domain::testing::TestDb;

use crate::{Server, create_token};

const PERIOD_MS: i64 = 2_000;

fn snapshot_times(db: &TestDb) -> Vec<i64> {
    db.database()
        .run_sync(|c| store::list_snapshots(c, "acme", 0))
        .unwrap()
        .into_iter()
        .map(|s| s.created_at / 1_000)
        .collect()
}

/// Runs of one boundary by two nodes would be milliseconds apart; runs of consecutive
/// boundaries are a period apart.
fn assert_once_per_period(times: &[i64]) {
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= PERIOD_MS / 2, "two runs {} ms apart: {times:?}", pair[1] - pair[0]);
    }
}

fn leader_of(servers: &mut [&mut Server]) -> Option<usize> {
    let mut leader = None;
    for (i, server) in servers.iter_mut().enumerate() {
        if server.early_log.iter().any(|line| line.contains("this node now runs the scheduled jobs")) {
            leader = Some(i);
        }
        while let Ok(line) = server.log.try_recv() {
            if line.contains("this node now runs the scheduled jobs") {
                leader = Some(i);
            }
        }
    }
    leader
}

fn now_ms() -> i64 {
    sync_domain::micros::now() / 1_000
}

#[test]
fn jobs_run_once_per_period_and_fail_over() {
    let Some(db) = TestDb::postgres() else { return };
    let url = db.url();
    create_token(url, "acme", "u1", "device");
    let env = [("SYNC_JOBS_EVERY_SECONDS", "2")];
    let mut a = Server::start(url, &env);
    // `a` started its scheduler before it logged its address.
    let started = now_ms();
    let mut b = Server::start(url, &env);

    // Both serve for a while: one run per boundary between them.
    std::thread::sleep(Duration::from_secs(9));
    let times = snapshot_times(&db);
    let periods = (now_ms() - started) / PERIOD_MS;
    assert!(
        times.len() as i64 >= periods - 2 && times.len() as i64 <= periods + 1,
        "{periods} periods: {times:?}"
    );
    assert_once_per_period(&times);
    // The first run came at the first boundary after start, not a period later.
    assert!(times[0] - started <= PERIOD_MS + 1_000, "first run {} ms after start", times[0] - started);

    // Kill the leader: the survivor takes over within 15 s.
    let leader = leader_of(&mut [&mut a, &mut b]).expect("one node logged that it leads");
    let (killed, survivor) = if leader == 0 { (a, b) } else { (b, a) };
    drop(killed); // SIGKILL, then wait
    let killed_at = now_ms();
    let deadline = Instant::now() + Duration::from_secs(15);
    let resumed = loop {
        if let Some(t) = snapshot_times(&db).into_iter().find(|t| *t > killed_at) {
            break t;
        }
        assert!(Instant::now() < deadline, "no job ran within 15 s of killing the leader");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(resumed - killed_at <= 15_000);
    // And keeps running them, once per period.
    std::thread::sleep(Duration::from_secs(5));
    let after: Vec<i64> = snapshot_times(&db).into_iter().filter(|t| *t > killed_at).collect();
    assert!(after.len() >= 3, "{after:?}");
    assert_once_per_period(&snapshot_times(&db));
    assert!(survivor.terminate().success());
}
