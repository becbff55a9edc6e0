//! The syncforge server: `serve`, `migrate`, `token create|list|revoke` and the scheduled jobs.
//!
//! The command line is fixed by PROTOCOL.md section 10. Exit status: 0 on success, 2 on bad
//! arguments or configuration (one line on stderr), 1 on any other failure.
#![doc = include_str!("../README.md")]

mod alloc;
mod config;
mod error;
mod http;
mod jobs;
mod tokens;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sync_api::{ApiOptions, SyncApi};
use sync_domain::domains::DomainRegistry;
use sync_domain::store::{self, Role};
use sync_domain::{ConnectOptions, Database, SyncEngine};
use tokio::sync::watch;

use crate::config::{Config, Overrides};
use crate::error::CliError;

/// The syncforge offline-first sync server.
#[derive(Debug, Parser)]
#[command(name = "sync-server", version, about)]
struct Cli {
    /// Database URL: sqlite://PATH or postgres://… [default: sqlite://sync.db]
    #[arg(long, global = true, env = "SYNC_DATABASE_URL")]
    database: Option<String>,
    /// TOML configuration file.
    #[arg(long, global = true, env = "SYNC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run migrations, then serve HTTP until SIGINT or SIGTERM.
    Serve {
        /// Listen address [default: 127.0.0.1:8080]
        #[arg(long, env = "SYNC_BIND")]
        bind: Option<String>,
    },
    /// Run pending migrations and exit.
    Migrate,
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Create an analytics snapshot.
    Snapshot {
        /// A tenant id, or `all`.
        #[arg(long, default_value = "all")]
        tenant: String,
        /// Hours back from now (1 to the engine's bound, 8784).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(MIN_SNAPSHOT_WINDOW_HOURS..=MAX_SNAPSHOT_WINDOW_HOURS))]
        window_hours: i64,
    },
    /// List devices whose health score is below the threshold.
    CheckDeviceHealth {
        /// Health score threshold [default: the configured device_health_threshold, 70]
        #[arg(long)]
        threshold: Option<f64>,
    },
    /// Conflicts per tenant and domain over the last days.
    ConflictReport {
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i64).range(1..=3660))]
        days: i64,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

// The snapshot window bounds of the engine, so that the command line refuses what the engine
// would (exit 2, not 1).
use sync_domain::engine::{MAX_SNAPSHOT_WINDOW_HOURS, MIN_SNAPSHOT_WINDOW_HOURS};

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token (and the tenant and user if needed); prints only the token.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Business units the token is limited to (comma-separated); none: every unit.
        #[arg(long, value_delimiter = ',')]
        units: Option<Vec<String>>,
        /// Lifetime, like 90s, 15m, 12h or 30d [default: no expiry]
        #[arg(long, value_name = "DURATION", value_parser = tokens::parse_duration)]
        expires_in: Option<i64>,
    },
    /// List a tenant's tokens (ids, never the tokens).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Revoke one token by id, or every token of a user.
    Revoke {
        /// The token's id (from `token list`).
        #[arg(required_unless_present = "user", conflicts_with_all = ["tenant", "user"])]
        id: Option<String>,
        #[arg(long, requires = "user")]
        tenant: Option<String>,
        #[arg(long, requires = "tenant")]
        user: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Device,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Csv,
}

fn main() -> ExitCode {
    alloc::limit_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sync-server: {}", usage_error_line(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = match &e {
                CliError::Config(reason) => reason.clone(),
                CliError::Other(err) => format!("{err:#}"),
            };
            eprintln!("sync-server: {}", line.replace('\n', " "));
            e.exit_code()
        }
    }
}

/// A usage error on one line: clap's message and its hints, without the usage block.
fn usage_error_line(e: &clap::Error) -> String {
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "a subcommand is required (see --help)".to_owned();
    }
    let rendered = e.render().to_string();
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    parts.join(" ")
}

fn run(cli: Cli) -> Result<(), CliError> {
    let bind = match &cli.command {
        Command::Serve { bind } => bind.as_deref(),
        _ => None,
    };
    let overrides =
        Overrides { config_path: cli.config.as_deref(), database_url: cli.database.as_deref(), bind };
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("SYNC_")).collect();
    let config = Config::load(&overrides, &env)?;
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(command(cli.command, config));
    // No database connection may outlive `main`: a thread still inside libpq or OpenSSL while
    // `exit` runs their `atexit` cleanup crashes the process (SIGSEGV after the output; see
    // `Drop for Inner` in sync-domain's db.rs for the whole story). Every `Database` handle
    // lives in `command`'s future or in a task of this runtime; dropping the runtime drops
    // the tasks and waits for its blocking threads, and the last handle's drop closes the
    // pool and waits for the pool's workers.
    drop(runtime);
    result
}

async fn command(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate => {
            let db = connect(&config).await?;
            let applied = migrate(&db).await?;
            tracing::info!(applied = applied.len(), "migrations done");
            Ok(())
        }
        Command::Token { command: TokenCommand::Create { tenant, user, role, units, expires_in } } => {
            let db = connect(&config).await?;
            migrate(&db).await?;
            let role = match role {
                RoleArg::Device => Role::Device,
                RoleArg::Admin => Role::Admin,
            };
            let units: Option<Vec<String>> =
                units.map(|u| u.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
            let token = db
                .write_tx(move |conn| {
                    let now = sync_domain::micros::now();
                    let expires_at = expires_in.map(|lifetime| now.saturating_add(lifetime));
                    store::create_token(conn, &tenant, &user, role, units.as_deref(), expires_at, now)
                })
                .await?;
            println!("{token}");
            Ok(())
        }
        Command::Token { command: TokenCommand::List { tenant, format } } => {
            let db = connect(&config).await?;
            migrate(&db).await?;
            let rows = db.run(move |conn| store::list_tokens(conn, &tenant)).await?;
            let text = match format {
                ListFormat::Text => tokens::text(&rows, sync_domain::micros::now()),
                ListFormat::Json => tokens::json(&rows)?,
            };
            print!("{text}");
            Ok(())
        }
        Command::Token { command: TokenCommand::Revoke { id, tenant, user } } => {
            let db = connect(&config).await?;
            migrate(&db).await?;
            let now = sync_domain::micros::now();
            match (id, tenant, user) {
                (Some(id), _, _) => {
                    let (revoked, known) = db
                        .write_tx(move |conn| {
                            let revoked = store::revoke_token_id(conn, &id, now)?;
                            let known = revoked || store::token_by_id(conn, &id)?.is_some();
                            Ok((revoked, known))
                        })
                        .await?;
                    if !known {
                        return Err(CliError::Other(anyhow::anyhow!("no token with that id")));
                    }
                    println!("{}", if revoked { "revoked" } else { "already revoked" });
                }
                (None, Some(tenant), Some(user)) => {
                    let revoked =
                        db.write_tx(move |conn| store::revoke_user_tokens(conn, &tenant, &user, now)).await?;
                    println!("revoked {revoked} token(s)");
                }
                // clap requires an id or both --tenant and --user.
                _ => return Err(CliError::Config("token revoke takes ID or --tenant T --user U".into())),
            }
            Ok(())
        }
        Command::Snapshot { tenant, window_hours } => {
            let engine = engine(&config).await?;
            let tenant = (tenant != "all").then_some(tenant);
            for (tenant, id) in jobs::run::snapshots(&engine, tenant.as_deref(), window_hours).await? {
                println!("{tenant}\t{id}");
            }
            Ok(())
        }
        Command::CheckDeviceHealth { threshold } => {
            let engine = engine(&config).await?;
            let threshold = threshold.unwrap_or(engine.config().device_health_threshold);
            if !(0.0..=100.0).contains(&threshold) {
                return Err(CliError::Config("--threshold must be between 0 and 100".into()));
            }
            let unhealthy = engine.check_device_health(threshold).await?;
            for (tenant, device) in &unhealthy {
                println!("{tenant}\t{}\t{:.1}", device.device_id, device.health_score);
            }
            eprintln!("{} device(s) below {threshold}", unhealthy.len());
            Ok(())
        }
        Command::ConflictReport { days, format } => {
            let engine = engine(&config).await?;
            let rows = engine.conflict_report(days).await?;
            print_report(&rows, format)?;
            Ok(())
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("SYNC_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn connect(config: &Config) -> Result<Database, CliError> {
    let url = config.database_url.clone();
    let options = ConnectOptions { max_group: config.group_commit, ..ConnectOptions::default() };
    let db = tokio::task::spawn_blocking(move || Database::connect(&url, options))
        .await
        .context("connecting to the database")??;
    Ok(db)
}

async fn migrate(db: &Database) -> Result<Vec<String>, CliError> {
    let db = db.clone();
    Ok(tokio::task::spawn_blocking(move || db.migrate()).await.context("running migrations")??)
}

async fn engine(config: &Config) -> Result<SyncEngine, CliError> {
    let db = connect(config).await?;
    migrate(&db).await?;
    Ok(SyncEngine::new(db, config.sync.clone(), DomainRegistry::builtin()))
}

async fn serve(config: Config) -> Result<(), CliError> {
    let db = connect(&config).await?;
    let applied = migrate(&db).await?;
    if !applied.is_empty() {
        tracing::info!(applied = applied.len(), "migrations applied");
    }
    let engine = SyncEngine::new(db.clone(), config.sync.clone(), DomainRegistry::builtin());
    // Live changes: the hub hears this node's commits; on PostgreSQL a LISTEN connection
    // hears the other nodes'.
    let live = sync_live::Live::new(engine, config.live.clone());
    live.start_listener();
    let engine = live.engine().clone();
    let api = SyncApi::with_live(
        live.clone(),
        ApiOptions {
            jwt_secret: config.jwt_secret.clone(),
            limits: config.limits.clone(),
            cors_allowed_origins: config.cors_allowed_origins.clone(),
        },
    );
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let address = listener.local_addr().context("reading the listen address")?;

    let (stop_jobs, jobs_stopped) = watch::channel(false);
    let schedule = config.jobs.schedule(config.sync.analytics_snapshot_interval_hours)?;
    let leadership = jobs::Leadership::start(&db);
    let scheduler = tokio::spawn(jobs::schedule(
        engine,
        leadership,
        schedule,
        config.jobs.report_dir.clone(),
        jobs_stopped,
    ));

    tracing::info!(backend = %db.backend(), "listening on http://{address}");
    let closing = live.clone();
    // One router for every connection, its routes made once: serving a `Router` as it is would
    // rebuild its routes for each connection (about 40 KiB each, held for as long as a live
    // stream stays open).
    let router = sync_api::router(api).with_state(());
    http::serve(listener, router, &config.http, async move {
        shutdown_signal().await;
        // Live streams close with "reconnect" (1012) so that graceful shutdown can finish.
        closing.shutdown();
    })
    .await;
    // Stop the scheduler (and join its leader-lock thread, which holds a connection) whether
    // or not serving failed.
    let _ = stop_jobs.send(true);
    let _ = scheduler.await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received; finishing in-flight requests"),
        () = terminate => tracing::info!("SIGTERM received; finishing in-flight requests"),
    }
}

fn print_report(rows: &[sync_domain::engine::ConflictReportRow], format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(rows).context("serialising the report")?;
            println!("{text}");
        }
        Format::Csv => {
            println!("tenant,domain,conflict_count");
            for row in rows {
                println!("{},{},{}", csv_field(&row.tenant), csv_field(&row.domain), row.conflict_count);
            }
        }
        Format::Text => {
            if rows.is_empty() {
                println!("no conflicts");
            }
            for row in rows {
                println!("{:<24} {:<16} {:>8}", row.tenant, row.domain, row.conflict_count);
            }
        }
    }
    Ok(())
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}
