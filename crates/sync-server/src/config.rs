//! Configuration: defaults, then a TOML file, then environment variables, then flags.
//!
//! With no file and no variables the server runs on `sqlite://sync.db` at `127.0.0.1:8080`
//! with the protocol's defaults. The file has two tables, both optional:
//!
//! ```toml
//! [server]
//! bind = "0.0.0.0:8080"
//! database_url = "postgres://sync@db/sync"
//!
//! cors_allowed_origins = ["https://app.example.com"]
//! group_commit = 32           # most concurrent pushes sharing one transaction; 1 = off
//!                             # (default 32 on SQLite, 1 on PostgreSQL)
//!
//! [sync]                      # every field of sync_domain::SyncConfig
//! max_push_changes = 500
//! peak_hours_start = 8
//!
//! [limits]                    # sync_api::LimitsConfig: rate limits, per node
//! rate_limit_per_minute = 600
//! rate_limit_burst = 120
//! max_concurrent_pushes_per_tenant = 32
//! tenants.acme = { per_minute = 1200, burst = 240 }
//! ```
//!
//! An optional `[jobs]` table sets when `serve` runs the scheduled jobs (`health_check_at`,
//! `conflict_report_at`, `report_dir`, `every_seconds`; `SYNC_JOBS_<KEY>` in the environment).
//! An optional `[http]` table bounds what one connection may hold ([`HttpConfig`]: the header,
//! body and idle timeouts and the header size; `SYNC_HTTP_<KEY>` in the environment).
//!
//! Environment: `SYNC_CONFIG` (the file's path), `SYNC_DATABASE_URL`, `SYNC_BIND`,
//! `SYNC_JWT_SECRET`, `SYNC_CORS_ALLOWED_ORIGINS` (comma-separated), `SYNC_GROUP_COMMIT`, `SYNC_RATE_LIMIT_PER_MINUTE`,
//! `SYNC_RATE_LIMIT_BURST`, `SYNC_MAX_CONCURRENT_PUSHES_PER_TENANT`, and `SYNC_<FIELD>` for any
//! top-level field of `[sync]` (`SYNC_MAX_PUSH_CHANGES=100`). Unknown keys in the file are errors; environment variables
//! that name no field are ignored (other tools share the `SYNC_` prefix).

use std::net::SocketAddr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_api::LimitsConfig;
use sync_domain::SyncConfig;
use sync_live::LiveConfig;

use crate::error::CliError;
use crate::jobs::JobsConfig;

/// The database when nothing else is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sync.db";
/// The listen address when nothing else is configured.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Environment variables with a meaning of their own (not `[sync]` overrides).
const RESERVED_ENV: &[&str] = &[
    "CONFIG",
    "DATABASE_URL",
    "BIND",
    "JWT_SECRET",
    "LOG",
    "CORS_ALLOWED_ORIGINS",
    "GROUP_COMMIT",
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_BURST",
    "MAX_CONCURRENT_PUSHES_PER_TENANT",
];

/// `[server]` of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub jwt_secret: Option<String>,
    /// Origins whose browser apps get CORS answers (PROTOCOL.md section 9).
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Most concurrent pushes of a tenant committed in one transaction, each in a savepoint
    /// of its own; 1 gives every push a transaction of its own. Default: the backend's
    /// (`sync_domain::ConnectOptions::max_group`).
    pub group_commit: Option<usize>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub server: ServerSection,
    pub sync: SyncConfig,
    pub limits: LimitsConfig,
    /// When `serve` runs the scheduled jobs (see `jobs.rs`).
    pub jobs: JobsConfig,
    /// Live streams (`sync_live::LiveConfig`): limits and timings.
    pub live: LiveConfig,
    /// Timeouts and sizes of the HTTP connections.
    pub http: HttpConfig,
}

/// `[http]`: how long a client may take and how much header it may send, so that a slow, silent
/// or oversized client holds a connection for a bounded time (see `http.rs`). A timeout of 0
/// turns that timeout off. Live streams (SSE, WebSocket, `pull?wait=`) are requests in progress
/// and are cut by none of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a request's headers may take to arrive: counted from the accept for a
    /// connection's first request, from the first byte for a later one. Past it the connection
    /// is closed without an answer.
    pub header_read_timeout_secs: u64,
    /// Seconds a request's body may take to arrive, counted from the end of its headers. Past it
    /// the request is answered 408 `request_timeout` and the connection closed.
    pub body_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may wait for its next request, with nothing in progress
    /// and no byte either way. Past it the connection is closed.
    pub idle_timeout_secs: u64,
    /// Most bytes of a request's head (request line and headers): hyper's read buffer. Beyond
    /// it: 431, and the connection is closed. At least 8192.
    pub max_header_bytes: usize,
}

/// The longest any `[http]` timeout may be (a day).
const MAX_HTTP_TIMEOUT_SECS: u64 = 86_400;
/// The smallest head buffer hyper accepts.
const MIN_HEADER_BYTES: usize = 8192;
/// The largest `max_header_bytes` (16 MiB).
const MAX_HEADER_BYTES: usize = 16 << 20;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_header_bytes: 64 * 1024,
        }
    }
}

impl HttpConfig {
    /// Problems that make the settings unusable, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, secs) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if secs > MAX_HTTP_TIMEOUT_SECS {
                problems.push(format!("http.{name} must be at most {MAX_HTTP_TIMEOUT_SECS} (0: off)"));
            }
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&self.max_header_bytes) {
            problems.push(format!("http.max_header_bytes must be {MIN_HEADER_BYTES} to {MAX_HEADER_BYTES}"));
        }
        problems
    }
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub jwt_secret: Option<String>,
    pub sync: SyncConfig,
    pub limits: LimitsConfig,
    pub cors_allowed_origins: Vec<String>,
    /// See [`ServerSection::group_commit`].
    pub group_commit: Option<usize>,
    pub jobs: JobsConfig,
    pub live: LiveConfig,
    pub http: HttpConfig,
}

/// Flags that override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides<'a> {
    pub config_path: Option<&'a Path>,
    pub database_url: Option<&'a str>,
    pub bind: Option<&'a str>,
}

impl Config {
    /// Resolves the configuration from `overrides`, the file and `env` (name, value pairs).
    pub fn load(overrides: &Overrides<'_>, env: &[(String, String)]) -> Result<Config, CliError> {
        let var = |name: &str| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
        };
        let path =
            overrides.config_path.map(Path::to_path_buf).or_else(|| var("SYNC_CONFIG").map(Into::into));
        let file = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::Config(format!("cannot read config file {}: {e}", path.display()))
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    CliError::Config(format!("config file {}: {}", path.display(), one_line(&e)))
                })?
            }
            None => FileConfig::default(),
        };
        let sync = apply_env(file.sync, env)?;
        let live = apply_table_env(file.live, "SYNC_LIVE_", env)?;
        let http = apply_table_env(file.http, "SYNC_HTTP_", env)?;
        let mut problems = sync.problems();
        problems.extend(live.problems());
        problems.extend(http.problems());
        if !problems.is_empty() {
            return Err(CliError::Config(format!("invalid configuration: {}", problems.join("; "))));
        }
        let bind_text = overrides
            .bind
            .map(str::to_owned)
            .or_else(|| var("SYNC_BIND"))
            .or(file.server.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text.parse().map_err(|_| {
            CliError::Config(format!("invalid bind address `{bind_text}` (expected HOST:PORT)"))
        })?;
        let database_url = overrides
            .database_url
            .map(str::to_owned)
            .or_else(|| var("SYNC_DATABASE_URL"))
            .or(file.server.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let jwt_secret = var("SYNC_JWT_SECRET").or(file.server.jwt_secret).filter(|s| !s.is_empty());
        let cors_allowed_origins = match var("SYNC_CORS_ALLOWED_ORIGINS") {
            Some(list) => {
                list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect()
            }
            None => file.server.cors_allowed_origins.unwrap_or_default(),
        };
        let group_commit = match var("SYNC_GROUP_COMMIT") {
            Some(text) => Some(text.trim().parse::<usize>().map_err(|_| {
                CliError::Config(format!("SYNC_GROUP_COMMIT must be a whole number of pushes (got `{text}`)"))
            })?),
            None => file.server.group_commit,
        };
        if group_commit == Some(0) {
            return Err(CliError::Config(
                "group_commit must be at least 1 (1 turns group commit off)".into(),
            ));
        }
        let limits = limits_from_env(file.limits, &var)?;
        let problems = limits.problems();
        if !problems.is_empty() {
            return Err(CliError::Config(format!("invalid configuration: {}", problems.join("; "))));
        }
        let jobs = file.jobs.resolve(env)?;
        Ok(Config {
            bind,
            database_url,
            jwt_secret,
            sync,
            limits,
            cors_allowed_origins,
            group_commit,
            jobs,
            live,
            http,
        })
    }
}

/// Applies `SYNC_RATE_LIMIT_PER_MINUTE`, `SYNC_RATE_LIMIT_BURST` and
/// `SYNC_MAX_CONCURRENT_PUSHES_PER_TENANT` to `limits`.
fn limits_from_env(
    mut limits: LimitsConfig,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<LimitsConfig, CliError> {
    let number = |name: &str| -> Result<Option<u32>, CliError> {
        var(name)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| CliError::Config(format!("{name} must be a whole number (got `{v}`)")))
            })
            .transpose()
    };
    if let Some(n) = number("SYNC_RATE_LIMIT_PER_MINUTE")? {
        limits.rate_limit_per_minute = n;
    }
    if let Some(n) = number("SYNC_RATE_LIMIT_BURST")? {
        limits.rate_limit_burst = n;
    }
    if let Some(n) = number("SYNC_MAX_CONCURRENT_PUSHES_PER_TENANT")? {
        limits.max_concurrent_pushes_per_tenant = n;
    }
    Ok(limits)
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Applies `<prefix><FIELD>` variables to the fields of a table (`SYNC_LIVE_` to `[live]`,
/// `SYNC_HTTP_` to `[http]`).
fn apply_table_env<T: Serialize + DeserializeOwned>(
    table: T,
    prefix: &str,
    env: &[(String, String)],
) -> Result<T, CliError> {
    let Value::Object(mut fields) =
        serde_json::to_value(&table).map_err(|e| CliError::Config(format!("configuration: {e}")))?
    else {
        return Ok(table);
    };
    let mut changed = false;
    for (name, raw) in env {
        let Some(field) = name.strip_prefix(prefix) else { continue };
        let Some(slot) = fields.get_mut(&field.to_ascii_lowercase()) else { continue };
        *slot = serde_json::from_str::<Value>(raw.trim())
            .ok()
            .filter(Value::is_number)
            .unwrap_or_else(|| Value::String(raw.clone()));
        changed = true;
    }
    if !changed {
        return Ok(table);
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| CliError::Config(format!("invalid {prefix}* environment override: {e}")))
}

/// Applies `SYNC_<FIELD>` variables to the top-level fields of `sync`.
fn apply_env(sync: SyncConfig, env: &[(String, String)]) -> Result<SyncConfig, CliError> {
    let Value::Object(mut fields) =
        serde_json::to_value(&sync).map_err(|e| CliError::Config(format!("configuration: {e}")))?
    else {
        return Ok(sync);
    };
    let mut changed = false;
    for (name, raw) in env {
        let Some(field) = name.strip_prefix("SYNC_") else { continue };
        if RESERVED_ENV.contains(&field) {
            continue;
        }
        let key = field.to_ascii_lowercase();
        let Some(slot) = fields.get_mut(&key) else { continue };
        if slot.is_object() {
            continue;
        }
        // Numbers and booleans are JSON; anything else is taken as a string.
        *slot = serde_json::from_str::<Value>(raw.trim())
            .ok()
            .filter(|v| v.is_number() || v.is_boolean())
            .unwrap_or_else(|| Value::String(raw.clone()));
        changed = true;
    }
    if !changed {
        return Ok(sync);
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| CliError::Config(format!("invalid SYNC_* environment override: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(&Overrides::default(), &[]).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.bind.to_string(), DEFAULT_BIND);
        assert_eq!(config.sync, SyncConfig::default());
        assert_eq!(config.live, LiveConfig::default());
        assert_eq!(config.jwt_secret, None);
        assert_eq!(config.limits, LimitsConfig::default());
        assert_eq!((config.limits.rate_limit_per_minute, config.limits.rate_limit_burst), (600, 120));
        assert!(config.cors_allowed_origins.is_empty());
    }

    #[test]
    fn limits_and_cors_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.toml");
        std::fs::write(
            &path,
            "[server]\ncors_allowed_origins = [\"https://a.example\"]\n[limits]\nrate_limit_burst = 10\nmax_concurrent_pushes_per_tenant = 4\ntenants.acme = { per_minute = 60, burst = 5 }\n",
        )
        .unwrap();
        let overrides = Overrides { config_path: Some(&path), ..Overrides::default() };
        let config = Config::load(&overrides, &[]).unwrap();
        assert_eq!(config.cors_allowed_origins, ["https://a.example"]);
        assert_eq!((config.limits.rate_limit_burst, config.limits.max_concurrent_pushes_per_tenant), (10, 4));
        assert_eq!(config.limits.rate_for("acme"), sync_api::Rate { per_minute: 60, burst: 5 });
        assert_eq!(config.limits.rate_for("other"), sync_api::Rate { per_minute: 600, burst: 10 });

        let config = Config::load(
            &overrides,
            &env(&[
                ("SYNC_CORS_ALLOWED_ORIGINS", "https://b.example, http://localhost:3000"),
                ("SYNC_RATE_LIMIT_PER_MINUTE", "1200"),
                ("SYNC_MAX_CONCURRENT_PUSHES_PER_TENANT", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(config.cors_allowed_origins, ["https://b.example", "http://localhost:3000"]);
        assert_eq!(config.limits.rate_limit_per_minute, 1200);
        assert_eq!(config.limits.max_concurrent_pushes_per_tenant, 0);
        assert!(matches!(
            Config::load(&Overrides::default(), &env(&[("SYNC_RATE_LIMIT_BURST", "lots")])),
            Err(CliError::Config(_))
        ));
        assert!(matches!(
            Config::load(&Overrides::default(), &env(&[("SYNC_RATE_LIMIT_BURST", "0")])),
            Err(CliError::Config(_))
        ));
    }

    #[test]
    fn http_timeouts_default_and_overrides() {
        let config = Config::load(&Overrides::default(), &[]).unwrap();
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!((config.http.header_read_timeout_secs, config.http.body_read_timeout_secs), (10, 30));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.toml");
        std::fs::write(&path, "[http]\nidle_timeout_secs = 5\nmax_header_bytes = 16384\n").unwrap();
        let overrides = Overrides { config_path: Some(&path), ..Overrides::default() };
        let config = Config::load(
            &overrides,
            &env(&[("SYNC_HTTP_HEADER_READ_TIMEOUT_SECS", "0"), ("SYNC_HTTP_BODY_READ_TIMEOUT_SECS", "2")]),
        )
        .unwrap();
        assert_eq!(
            config.http,
            HttpConfig {
                header_read_timeout_secs: 0,
                body_read_timeout_secs: 2,
                idle_timeout_secs: 5,
                max_header_bytes: 16384
            }
        );
        for (name, value) in [
            ("SYNC_HTTP_MAX_HEADER_BYTES", "1024"),
            ("SYNC_HTTP_IDLE_TIMEOUT_SECS", "soon"),
            ("SYNC_HTTP_HEADER_READ_TIMEOUT_SECS", "-1"),
            ("SYNC_HTTP_BODY_READ_TIMEOUT_SECS", "100000"),
        ] {
            assert!(
                matches!(
                    Config::load(&Overrides::default(), &env(&[(name, value)])),
                    Err(CliError::Config(_))
                ),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn group_commit_defaults_and_overrides() {
        assert_eq!(Config::load(&Overrides::default(), &[]).unwrap().group_commit, None);
        let off = Config::load(&Overrides::default(), &env(&[("SYNC_GROUP_COMMIT", "1")])).unwrap();
        assert_eq!(off.group_commit, Some(1));
        for bad in ["0", "lots", "-3"] {
            assert!(
                matches!(
                    Config::load(&Overrides::default(), &env(&[("SYNC_GROUP_COMMIT", bad)])),
                    Err(CliError::Config(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.toml");
        std::fs::write(
            &path,
            "[server]\nbind = \"0.0.0.0:9000\"\ndatabase_url = \"sqlite://file.db\"\n[sync]\nmax_push_changes = 10\npeak_hours_start = 8\n",
        )
        .unwrap();
        let overrides = Overrides { config_path: Some(&path), ..Overrides::default() };
        let config =
            Config::load(&overrides, &env(&[("SYNC_PEAK_HOURS_START", "7"), ("SYNC_JWT_SECRET", "s")]))
                .unwrap();
        assert_eq!(config.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(config.database_url, "sqlite://file.db");
        assert_eq!(config.sync.max_push_changes, 10);
        assert_eq!(config.sync.peak_hours_start, 7);
        assert_eq!(config.jwt_secret.as_deref(), Some("s"));

        let overrides =
            Overrides { config_path: Some(&path), database_url: Some("sqlite://flag.db"), bind: None };
        let config = Config::load(&overrides, &env(&[("SYNC_DATABASE_URL", "sqlite://env.db")])).unwrap();
        assert_eq!(config.database_url, "sqlite://flag.db");
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../README.md");
        let start = readme.find("# sync.toml").expect("the README has an example config");
        let example = &readme[start..readme[start..].find("```").map_or(readme.len(), |end| start + end)];
        let file: FileConfig = toml::from_str(example).unwrap();
        assert_eq!(file.sync.batch_sizes.poor, 10);
        assert_eq!(file.server.bind.as_deref(), Some("0.0.0.0:8080"));
        assert!(file.http.problems().is_empty());
        assert_eq!(file.http, HttpConfig::default());
        assert!(file.sync.problems().is_empty());
        assert!(file.limits.problems().is_empty());
        assert_eq!(file.limits.rate_for("acme"), sync_api::Rate { per_minute: 1200, burst: 240 });
        assert_eq!(
            file.server.cors_allowed_origins.as_deref(),
            Some(&["https://app.example.com".to_owned()][..])
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.toml");
        std::fs::write(&path, "[sync]\nno_such_field = 1\n").unwrap();
        let overrides = Overrides { config_path: Some(&path), ..Overrides::default() };
        assert!(matches!(Config::load(&overrides, &[]), Err(CliError::Config(_))));
        assert!(matches!(
            Config::load(&Overrides::default(), &env(&[("SYNC_MAX_PUSH_CHANGES", "many")])),
            Err(CliError::Config(_))
        ));
        assert!(matches!(
            Config::load(&Overrides::default(), &env(&[("SYNC_MIN_COMPRESSION_RATIO", "3")])),
            Err(CliError::Config(_))
        ));
        assert!(matches!(
            Config::load(&Overrides { bind: Some("nowhere"), ..Overrides::default() }, &[]),
            Err(CliError::Config(_))
        ));
        for (name, value) in [
            ("SYNC_JOBS_HEALTH_CHECK_AT", "25:00"),
            ("SYNC_JOBS_CONFLICT_REPORT_AT", "someday 03:00"),
            ("SYNC_JOBS_EVERY_SECONDS", "0"),
            ("SYNC_JOBS_EVERY_SECONDS", "soon"),
        ] {
            assert!(
                matches!(
                    Config::load(&Overrides::default(), &env(&[(name, value)])),
                    Err(CliError::Config(_))
                ),
                "{name}={value}"
            );
        }
        // Variables of other tools are not ours to refuse.
        assert!(Config::load(&Overrides::default(), &env(&[("SYNC_TEST_DATABASE_URL", "x")])).is_ok());
    }
}
