//! The command line: subcommands, output and exit codes (0 success, 2 bad arguments or
//! configuration, 1 other failures).

use sync_domain::testing::TestDb;

use crate::run;

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap()
}

#[test]
fn bad_arguments_and_configuration_exit_2() {
    let db = TestDb::sqlite();
    let url = db.url();
    for args in [
        &["serve", "--bind", "nowhere"][..],
        &["serve", "--no-such-flag"],
        &["token", "create", "--tenant", "t", "--user", "u", "--role", "root"],
        &["conflict-report", "--format", "xml"],
        &["snapshot", "--window-hours", "0"],
        // Beyond the engine's bound (8784 h): refused as a bad argument, not a failure.
        &["snapshot", "--window-hours", "8785"],
        &["conflict-report", "--days", "0"],
        &["check-device-health", "--threshold", "101"],
        &["check-device-health", "--threshold", "NaN"],
        &["check-device-health", "--threshold", "lots"],
        &["token", "create", "--tenant", "", "--user", "u", "--role", "device"],
        &["token", "create", "--tenant", "t", "--user", "u", "--role", "device", "--expires-in", "0s"],
        &["token", "create", "--tenant", "t", "--user", "u", "--role", "device", "--expires-in", "5y"],
        &["token", "create", "--tenant", "t", "--user", "u", "--role", "device", "--expires-in", "99999d"],
        &["token", "list"],
        &["token", "list", "--tenant", "t", "--format", "csv"],
        &["token", "revoke"],
        &["token", "revoke", "--tenant", "t"],
        &["token", "revoke", "some-id", "--tenant", "t", "--user", "u"],
        &["no-such-command"],
        &[],
        &["token"],
        &["migrate", "--database", "mysql://localhost/x"],
        &["migrate", "--config", "/nonexistent/sync.toml"],
    ] {
        let out = run(url, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line, got {stderr}");
        assert!(stderr.starts_with("sync-server: "), "{stderr}");
    }
    for args in [&["--help"][..], &["--version"], &["token", "list", "--help"]] {
        let out = run(url, args);
        assert_eq!(code(&out), 0, "{args:?}");
        assert!(!out.stdout.is_empty());
    }
    for (name, value) in [("SYNC_MAX_PUSH_CHANGES", "lots"), ("SYNC_JOBS_HEALTH_CHECK_AT", "2am")] {
        let out = crate::command(url).env(name, value).arg("migrate").output().unwrap();
        assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn other_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // A database path inside a directory that does not exist.
    let url = format!("sqlite://{}/missing/dir/sync.db", dir.path().display());
    let out = run(&url, &["migrate"]);
    assert_eq!(code(&out), 1, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn migrate_token_and_jobs() {
    let db = TestDb::sqlite();
    let url = db.url();
    assert_eq!(code(&run(url, &["migrate"])), 0);
    let a = crate::create_token(url, "acme", "u1", "device");
    let b = crate::create_token(url, "acme", "u1", "device");
    assert_ne!(a, b);
    let out = run(
        url,
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--user",
            "boss",
            "--role",
            "admin",
            "--units",
            "north,south",
        ],
    );
    assert_eq!(code(&out), 0);

    let out = run(url, &["snapshot", "--tenant", "all", "--window-hours", "2"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("acme\t"), "{stdout}");
    assert_eq!(code(&run(url, &["check-device-health", "--threshold", "70"])), 0);
    let out = run(url, &["conflict-report", "--days", "7", "--format", "csv"]);
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("tenant,domain,conflict_count"));
    let out = run(url, &["conflict-report", "--format", "json"]);
    assert_eq!(code(&out), 0);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.is_array());
}
