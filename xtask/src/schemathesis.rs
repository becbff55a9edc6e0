//! `cargo xtask schemathesis`: the OpenAPI document against the running server.
//!
//! Builds `sync-server`, and for SQLite (a temporary file) and PostgreSQL (a fresh schema)
//! migrates a database, creates an admin and a device token with `sync-server token create`,
//! starts `serve` on a free port and runs `schemathesis run --checks all` once with each token;
//! any finding fails the task. The server is killed and the database dropped afterwards,
//! whatever happened.
//!
//! schemathesis comes from PyPI: `.ci/run` installs the pinned version into a virtualenv under
//! the target directory (see [`VENV_DIR`]); `schemathesis` on the PATH works too. Without it,
//! the task fails under `CI=true` and is skipped otherwise.

use std::{
    env, fs,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

/// The schemathesis version `.ci/run` installs (checked to work with our document).
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// The virtualenv, relative to the target directory.
pub const VENV_DIR: &str = "schemathesis-venv";
/// Generated cases per operation and phase, as admin (every route's logic) and as a device
/// (mostly the 403s of admin routes): enough to find what the fuzzer found before, small
/// enough that both backends take about two minutes on two cores.
const MAX_EXAMPLES_ADMIN: &str = "30";
const MAX_EXAMPLES_DEVICE: &str = "10";
/// A fixed seed, so that CI is reproducible; `SCHEMATHESIS_SEED` explores others.
const DEFAULT_SEED: &str = "1";
/// The PostgreSQL server to create the schema in (as the persistence tests use).
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| crate::root().join("target"), PathBuf::from)
}

/// The schemathesis executable: the virtualenv's, else one on the PATH.
fn find_schemathesis() -> Option<PathBuf> {
    let venv = target_dir().join(VENV_DIR).join("bin").join("schemathesis");
    if venv.is_file() {
        return Some(venv);
    }
    let on_path = Command::new("schemathesis").arg("--version").output().is_ok_and(|o| o.status.success());
    on_path.then(|| PathBuf::from("schemathesis"))
}

fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `cargo xtask schemathesis [sqlite|postgres|all]`; `envs` are those of the build to reuse
/// (`xtask ci` builds with clippy as the workspace's compiler).
pub fn run(backend: &str, envs: &[(&str, &str)]) -> Result<()> {
    if !matches!(backend, "sqlite" | "postgres" | "all") {
        bail!("unknown backend `{backend}` (expected sqlite, postgres or all)");
    }
    let Some(schemathesis) = find_schemathesis() else {
        let hint = format!(
            "schemathesis is not installed (expected {}; `.ci/run` makes it: python3 -m venv … && pip install schemathesis=={SCHEMATHESIS_VERSION})",
            target_dir().join(VENV_DIR).display()
        );
        if in_ci() {
            bail!("{hint}");
        }
        eprintln!("xtask schemathesis: skipped: {hint}");
        return Ok(());
    };
    // The workspace's test build makes `target/debug/sync-server` too, with the features the
    // tests unify; building it this way reuses what `xtask ci` just built for the tests (a plain
    // `cargo build -p sync-server` would resolve other features and compile much again).
    crate::cargo_env(&["test", "--workspace", "--locked", "--no-run"], envs)?;
    let server = target_dir().join("debug").join(format!("sync-server{}", env::consts::EXE_SUFFIX));
    let started = Instant::now();
    if matches!(backend, "sqlite" | "all") {
        let dir = tempdir()?;
        let url = format!("sqlite://{}", dir.path.join("schemathesis.db").display());
        against(&schemathesis, &server, "sqlite", &url, &dir.path)?;
    }
    if matches!(backend, "postgres" | "all") {
        match PostgresSchema::create()? {
            Some(schema) => {
                let dir = tempdir()?;
                against(&schemathesis, &server, "postgres", &schema.url, &dir.path)?;
            }
            None if in_ci() => bail!("PostgreSQL is unreachable at {DEFAULT_POSTGRES_URL} (psql)"),
            None => eprintln!("xtask schemathesis: PostgreSQL unreachable: skipping its run"),
        }
    }
    eprintln!("xtask schemathesis: no findings ({:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Migrates `url`, makes the tokens, serves, and runs schemathesis with each token.
fn against(schemathesis: &Path, server: &Path, name: &str, url: &str, dir: &Path) -> Result<()> {
    eprintln!("xtask schemathesis: {name}");
    let config = dir.join("sync.toml");
    // The server is configured for a fuzzer: the run sends a few thousand requests in a
    // minute from two tokens.
    // Its rate limits are off (0), so that schemathesis is not answered 429 into noise; the
    // 429 answers themselves are tested in sync-api.
    fs::write(&config, "[sync]\n\n[limits]\nrate_limit_per_minute = 0\nrate_limit_burst = 0\nmax_concurrent_pushes_per_tenant = 0\n")
        .context("writing the server's config")?;
    let sync_server = |args: &[&str]| -> Result<String> {
        let output = Command::new(server)
            .args(args)
            .args(["--database", url])
            .output()
            .with_context(|| format!("running {}", server.display()))?;
        if !output.status.success() {
            bail!(
                "sync-server {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    sync_server(&["migrate"])?;
    let token = |user: &str, role: &str| {
        sync_server(&["token", "create", "--tenant", "schemathesis", "--user", user, "--role", role])
    };
    let admin = token("admin", "admin")?;
    let device = token("device", "device")?;

    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).context("no free port")?.port();
    let address = format!("127.0.0.1:{port}");
    let log = fs::File::create(dir.join("server.log")).context("creating the server log")?;
    let child = Command::new(server)
        .args(["serve", "--bind", &address, "--database", url, "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    let guard = ServerGuard(child);
    wait_ready(&address, Duration::from_secs(30))?;

    let seed = env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| DEFAULT_SEED.to_owned());
    let schema_url = format!("http://{address}/api/openapi.json");
    for (who, token, max_examples) in
        [("admin", &admin, MAX_EXAMPLES_ADMIN), ("device", &device, MAX_EXAMPLES_DEVICE)]
    {
        eprintln!("$ schemathesis run {schema_url} --checks all (as {who}, {name})");
        // The token through the document's `bearer` scheme (not a raw header), so that
        // schemathesis knows it is the credential and can leave it out to test 401s.
        let config = dir.join(format!("schemathesis-{who}.toml"));
        fs::write(&config, format!("[auth.openapi.bearer]\nbearer = \"{token}\"\n"))
            .context("writing schemathesis' config")?;
        let status = Command::new(schemathesis)
            .arg("--config-file")
            .arg(&config)
            .args(["run", &schema_url, "--checks", "all", "--max-examples", max_examples, "--seed", &seed])
            .args(["--wait-for-schema", "30", "--no-color"])
            // Unique idempotency keys (see the hooks' docstring); imported from the hooks' folder.
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", crate::root().join("xtask").join("schemathesis"))
            .current_dir(dir)
            .status()
            .with_context(|| format!("running {}", schemathesis.display()))?;
        if !status.success() {
            let log = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("server log (last lines):");
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
            bail!("schemathesis found problems on {name} as {who} ({status})");
        }
    }
    drop(guard);
    Ok(())
}

/// Polls `/readyz` until it answers 200.
fn wait_ready(address: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut stream) = TcpStream::connect(address) {
            let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the server at {address} was not ready within {} s", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Kills the server when dropped.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn unique() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn tempdir() -> Result<TempDir> {
    let path = env::temp_dir().join(format!("xtask-schemathesis-{}", unique()));
    fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(TempDir { path })
}

/// A fresh PostgreSQL schema, dropped when dropped; selected through the URL's
/// `options=-c search_path=…` as the persistence tests do.
struct PostgresSchema {
    name: String,
    url: String,
}

impl PostgresSchema {
    fn psql(sql: &str) -> Result<bool> {
        let output = Command::new("psql")
            .args([DEFAULT_POSTGRES_URL, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(output) if output.status.success() => Ok(true),
            Ok(output) => {
                eprintln!("psql: {}", String::from_utf8_lossy(&output.stderr).trim());
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).context("running psql"),
        }
    }

    /// `None` when PostgreSQL cannot be reached.
    fn create() -> Result<Option<Self>> {
        let name = format!("xst_{}", unique());
        if !Self::psql(&format!("CREATE SCHEMA {name}"))? {
            return Ok(None);
        }
        let url = format!("{DEFAULT_POSTGRES_URL}?options=-c%20search_path%3D{name}");
        Ok(Some(Self { name, url }))
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let _ = Self::psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}
