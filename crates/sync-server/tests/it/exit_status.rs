//! The command line on PostgreSQL never ends by a signal: 200 runs each of `token create` and
//! `conflict-report` (a connection still opening or closing on a pool worker while the process
//! exited used to crash about 3 % of them with SIGSEGV, after their output).

use std::os::unix::process::ExitStatusExt;

use sync_domain::testing::TestDb;

const RUNS: usize = 200;

#[test]
fn postgres_cli_runs_never_end_by_a_signal() {
    let Some(db) = TestDb::postgres() else { return };
    let url = db.url().to_owned();
    // Four runs at a time, as a script or a benchmark's setup might.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let url = url.clone();
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for run in (worker..RUNS).step_by(4) {
                        let user = format!("u{run}");
                        for args in [
                            &["token", "create", "--tenant", "acme", "--user", &user, "--role", "device"][..],
                            &["conflict-report", "--format", "json"],
                        ] {
                            let out = crate::run(&url, args);
                            if !out.status.success() {
                                failures.push(format!(
                                    "{args:?} run {run}: {:?} (signal {:?}): {}",
                                    out.status,
                                    out.status.signal(),
                                    String::from_utf8_lossy(&out.stderr)
                                ));
                            }
                        }
                    }
                    failures
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} of {} runs failed:\n{}", failures.len(), 2 * RUNS, failures.join("\n"));
    // Every `token create` did its work.
    let out = crate::run(&url, &["token", "list", "--tenant", "acme", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), RUNS);
}
