//! Developer tasks: `cargo xtask ci | test | tidy | migration-template | bench | simulate`.

mod tidy;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci                      fmt --check, clippy -D warnings, every test, tidy, cargo deny (when installed)
  test [sqlite|postgres|all]
                          the workspace tests; persistence tests on the named backends (default all)
  tidy                    house-style checks (also run as a test)
  migration-template --table T --backend sqlite|postgres [--with-conflicts] [--tenant-column C]
                          print the SQL that adds the sync columns to an existing table
  simulate --scenario NAME [--devices N] [--duration 30s] [--database sqlite|postgres|all] [--url URL]
           [--json report.json] [--html report.html]
                          run a device-fleet scenario against a server (started here unless --url),
                          print the report, exit non-zero if an invariant fails (`-- --help`: all options)
  bench [--database sqlite|postgres|all] [--quick]
                          the end-to-end benchmark; writes its section of docs/benchmarks.md
                          and its SVG charts next to it
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((task, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    match task.as_str() {
        "ci" => ci(),
        "test" => test(rest.first().map(String::as_str).unwrap_or("all")),
        "tidy" => {
            let problems = tidy::check(&root())?;
            report_tidy(&problems)
        }
        "migration-template" => migration_template(rest),
        "simulate" => sync_sim("simulate", rest),
        "bench" => sync_sim("bench", rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n{USAGE}"),
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(args: &[&str]) -> Result<()> {
    cargo_env(args, &[])
}

fn cargo_env(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    // `cargo run` described xtask itself in these; build scripts that watch them (ring's does)
    // would otherwise rebuild whenever a plain `cargo build` and `cargo xtask` take turns.
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_PACKAGE"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name.as_ref());
        }
    }
    let status = command
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])?;
    test("all")?;
    report_tidy(&tidy::check(&root())?)?;
    let has_deny =
        Command::new("cargo").args(["deny", "--version"]).output().is_ok_and(|o| o.status.success());
    if has_deny {
        cargo(&["deny", "check", "bans", "licenses", "sources"])?;
    } else {
        eprintln!("cargo-deny is not installed: skipping `cargo deny check`");
    }
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// Runs the workspace tests. `backend` selects the persistence backends through
/// `SYNC_TEST_BACKENDS`, which the sync-domain test harness reads.
fn test(backend: &str) -> Result<()> {
    if !matches!(backend, "sqlite" | "postgres" | "all") {
        bail!("unknown backend `{backend}` (expected sqlite, postgres or all)");
    }
    cargo_env(&["test", "--workspace", "--locked"], &[("SYNC_TEST_BACKENDS", backend)])
}

/// Builds the release server and simulator, then runs `sync-sim <command> <args>` from the
/// workspace root (the simulator starts the server itself unless given `--url`).
fn sync_sim(command: &str, args: &[String]) -> Result<()> {
    cargo(&["build", "--release", "--locked", "-p", "sync-server", "-p", "sync-sim"])?;
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let binary = target.join("release").join(format!("sync-sim{}", env::consts::EXE_SUFFIX));
    let server = target.join("release").join(format!("sync-server{}", env::consts::EXE_SUFFIX));
    let status = Command::new(&binary)
        .arg(command)
        .args(args)
        .arg("--server-bin")
        .arg(&server)
        .current_dir(root())
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(2) => bail!("sync-sim {command}: bad arguments"),
        _ => bail!("sync-sim {command} failed ({status})"),
    }
}

fn report_tidy(problems: &[String]) -> Result<()> {
    if problems.is_empty() {
        eprintln!("tidy: ok");
        return Ok(());
    }
    for problem in problems {
        eprintln!("tidy: {problem}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

fn migration_template(args: &[String]) -> Result<()> {
    use sync_model::migration::{Backend, MigrationOptions, sync_migration};

    let mut table = None;
    let mut backend = None;
    let mut with_conflicts = false;
    let mut tenant_column = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--table" => table = it.next().cloned(),
            "--backend" => backend = it.next().cloned(),
            "--with-conflicts" => with_conflicts = true,
            "--tenant-column" => tenant_column = it.next().cloned(),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    let table = table.context("--table is required")?;
    let backend: Backend = backend.context("--backend is required")?.parse().map_err(anyhow::Error::msg)?;
    let mut options = MigrationOptions::new(table, backend);
    options.with_conflicts = with_conflicts;
    options.tenant_column = tenant_column;
    print!("{}", sync_migration(&options)?);
    Ok(())
}
