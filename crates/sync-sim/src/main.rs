//! `sync-sim`: run a scenario against a server, or the end-to-end benchmark.
//! `cargo xtask simulate` and `cargo xtask bench` build it and call it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sync_sim::bench::{self, BenchOptions};
use sync_sim::db::{Backend, Database};
use sync_sim::faults::{FaultKind, FaultOptions};
use sync_sim::scenario::parse_duration;
use sync_sim::server::ServerProcess;
use sync_sim::{Error, Report, Result, RunOptions, Scenario, ScenarioKind, Target, TokenIssuer};

/// Marks the benchmark's section in docs/benchmarks.md.
const BEGIN: &str = "<!-- cargo xtask bench: begin -->";
const END: &str = "<!-- cargo xtask bench: end -->";

#[derive(Parser)]
#[command(name = "sync-sim", about = "Simulated device fleets and the end-to-end benchmark for syncforge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and check the invariants (exit 1 if one fails).
    Simulate(SimulateArgs),
    /// Run the end-to-end benchmark and write docs/benchmarks.md.
    Bench(BenchArgs),
    /// Run a fault scenario under load and check the invariants (exit 1 if one fails).
    Faults(FaultArgs),
    /// Run a mixed fleet for a long while; memory, descriptors, connections and latency must
    /// stay flat (exit 1 if not, or if an invariant fails).
    Soak(SoakArgs),
}

#[derive(Args)]
struct SoakArgs {
    /// How long, e.g. 30m.
    #[arg(long, default_value = "30m")]
    duration: String,
    #[arg(long, value_enum, default_value = "postgres")]
    database: DbChoice,
    /// Seconds between samples (default: 10, fewer for short runs).
    #[arg(long)]
    every: Option<u64>,
    /// Also write the reports (with every sample) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DbChoice {
    Sqlite,
    Postgres,
    All,
}

impl DbChoice {
    fn backends(self) -> Vec<Backend> {
        match self {
            DbChoice::Sqlite => vec![Backend::Sqlite],
            DbChoice::Postgres => vec![Backend::Postgres],
            DbChoice::All => vec![Backend::Sqlite, Backend::Postgres],
        }
    }
}

#[derive(Args)]
struct SimulateArgs {
    /// basic_sync, high_conflict, network_issues, offline_burst, initial_sync or live_fleet.
    #[arg(long)]
    scenario: String,
    #[arg(long)]
    devices: Option<usize>,
    /// How long the devices work, e.g. 30s or 2m (the final drain comes after).
    #[arg(long)]
    duration: Option<String>,
    /// The backend of the server to start (ignored with --url).
    #[arg(long, value_enum, default_value = "sqlite")]
    database: DbChoice,
    /// Use the server at this URL instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// With --url: the server's JWT secret, to sign the fleet's tokens.
    #[arg(long, env = "SYNC_JWT_SECRET")]
    jwt_secret: Option<String>,
    /// With --url: the server's database URL, so the history invariants can read it.
    #[arg(long)]
    database_url: Option<String>,
    /// Comma-separated domains the devices edit.
    #[arg(long, value_delimiter = ',')]
    domains: Option<Vec<String>>,
    #[arg(long)]
    conflict_probability: Option<f64>,
    /// Records created before the devices start (initial_sync).
    #[arg(long)]
    records: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the report as a self-contained HTML page with charts to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// The sync-server binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// `serve` processes to start on one database (PostgreSQL only beyond 1); the devices
    /// are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long, value_enum, default_value = "all")]
    database: DbChoice,
    /// A short run that checks the benchmark works; does not write docs/benchmarks.md.
    #[arg(long)]
    quick: bool,
    /// The Markdown file whose benchmark section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the SVG charts to this directory (default: next to --out, on a full run).
    #[arg(long)]
    charts: Option<PathBuf>,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Only these cases, printed (writes nothing): for measuring one change quickly.
    #[arg(long, value_enum)]
    only: Option<BenchCases>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchCases {
    /// The push-throughput cases and the raw baseline.
    Push,
    /// The initial sync of a large tenant.
    InitialSync,
    /// The live-changes cases.
    Live,
}

#[derive(Args)]
struct FaultArgs {
    /// crash, db-restart (PostgreSQL), disk-full (SQLite, needs root to mount a tmpfs) or
    /// hostile (slow and abusive clients; the server's timeouts from SYNC_HTTP_* here).
    #[arg(long)]
    scenario: String,
    /// How long faults are injected under load, e.g. 30s (the fleet's drain comes after).
    #[arg(long, default_value = "30s")]
    duration: String,
    /// The backends to run on; `all` runs each backend the scenario applies to.
    #[arg(long, value_enum, default_value = "all")]
    database: DbChoice,
    #[arg(long, default_value_t = 32)]
    devices: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// db-restart: stop and start the whole PostgreSQL cluster (pg_ctlcluster) instead of
    /// terminating the server's connections. Nothing else may use the cluster meanwhile.
    #[arg(long)]
    restart_cluster: bool,
    /// Also write the reports as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sync-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Simulate(args) => simulate(args).await,
            Command::Bench(args) => bench(args).await,
            Command::Faults(args) => faults(args).await,
            Command::Soak(args) => soak(args).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e @ Error::Config(_)) => {
            eprintln!("sync-sim: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("sync-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|e| Error::Server(format!("cannot find this binary: {e}")))?;
    let path = exe.with_file_name(format!("sync-server{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        return Err(Error::Config(format!(
            "{} does not exist: build it (cargo build --release -p sync-server) or pass --server-bin",
            path.display()
        )));
    }
    Ok(path)
}

fn scenario_of(args: &SimulateArgs) -> Result<Scenario> {
    let kind: ScenarioKind = args.scenario.parse()?;
    let mut scenario = Scenario::preset(kind);
    if let Some(devices) = args.devices {
        scenario.devices = devices;
    }
    if let Some(duration) = &args.duration {
        scenario.duration = parse_duration(duration)?;
    }
    if let Some(domains) = &args.domains {
        scenario.domains = domains.clone();
    }
    if let Some(p) = args.conflict_probability {
        scenario.conflict_probability = p;
    }
    if let Some(records) = args.records {
        scenario.initial_records = records;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    scenario.validate()?;
    Ok(scenario)
}

async fn simulate(args: SimulateArgs) -> Result<bool> {
    let scenario = scenario_of(&args)?;
    let options = RunOptions { tenant: None, progress: true };
    let mut reports = Vec::new();
    if let Some(url) = &args.url {
        let secret = args
            .jwt_secret
            .clone()
            .ok_or_else(|| Error::Config("--url needs --jwt-secret (or SYNC_JWT_SECRET)".into()))?;
        let database = match &args.database_url {
            Some(db_url) => Some(Database::at(db_url)?),
            None => None,
        };
        let target = Target {
            base_url: url.clone(),
            other_nodes: Vec::new(),
            issuer: TokenIssuer::new(&secret),
            database,
        };
        reports.push(sync_sim::run(&scenario, &target, &options).await?);
    } else {
        let binary = server_binary(args.server_bin.clone())?;
        for backend in args.database.backends() {
            if args.nodes > 1 && backend != Backend::Postgres {
                return Err(Error::Config(format!(
                    "--nodes {} needs --database postgres (several servers share one PostgreSQL database)",
                    args.nodes
                )));
            }
            let server = ServerProcess::start(&binary, backend).await?;
            let mut others = Vec::new();
            for _ in 1..args.nodes {
                others.push(server.another_node().await?);
            }
            eprintln!(
                "{} on {backend} at {} and {} other node(s)",
                scenario.kind,
                server.base_url(),
                others.len()
            );
            let mut target = server.target();
            target.other_nodes = others.iter().map(|node| node.base_url().to_owned()).collect();
            let mut report = sync_sim::run(&scenario, &target, &options).await?;
            report.backend = Some(backend.to_string());
            drop(others);
            server.stop();
            reports.push(report);
        }
    }
    for report in &reports {
        print!("{}", report.to_table());
    }
    if let Some(path) = &args.json {
        let json = if reports.len() == 1 {
            reports[0].to_json()
        } else {
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        };
        write(path, &json)?;
    }
    if let Some(path) = &args.html {
        write(path, &sync_sim::charts::report_html(&reports)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(reports.iter().all(|r: &Report| r.passed))
}

async fn bench(args: BenchArgs) -> Result<bool> {
    let binary = server_binary(args.server_bin)?;
    let options = if args.quick { BenchOptions::quick() } else { BenchOptions::full() };
    if let Some(cases) = args.only {
        for backend in args.database.backends() {
            let server = ServerProcess::start(&binary, backend).await?;
            let tenant = bench::new_tenant();
            let name = backend.to_string();
            let mut out = String::new();
            match cases {
                BenchCases::Push => {
                    let push = bench::run_push(&server, &tenant, &options).await?;
                    bench::push_lines(&mut out, &name, &push);
                }
                BenchCases::InitialSync => {
                    let (case, _, _) = bench::run_initial_sync(&server, &tenant, &options).await?;
                    bench::pull_lines(&mut out, &name, "initial sync", &case);
                }
                BenchCases::Live => {
                    let other_node = match backend {
                        Backend::Postgres => Some(server.another_node().await?),
                        Backend::Sqlite => None,
                    };
                    let live = sync_sim::live_bench::run(&server, other_node.as_ref(), &options).await?;
                    sync_sim::live_bench::markdown(&mut out, &[(name.as_str(), &live)]);
                }
            }
            server.stop();
            print!("{out}");
        }
        return Ok(true);
    }
    let mut results = Vec::new();
    for backend in args.database.backends() {
        let server = ServerProcess::start(&binary, backend).await?;
        // PostgreSQL: a second node on the same database for the cross-node live case.
        let other_node = match backend {
            Backend::Postgres => Some(server.another_node().await?),
            Backend::Sqlite => None,
        };
        eprintln!("benchmarking {backend} at {}", server.base_url());
        let result = bench::run_backend(&server, other_node.as_ref(), &options).await?;
        drop(other_node);
        server.stop();
        results.push(result);
    }
    let date = time::OffsetDateTime::now_utc().date().to_string();
    let section = bench::markdown(&results, &machine(), &date, &options);
    print!("{section}");
    if let Some(path) = &args.json {
        write(path, &serde_json::to_string_pretty(&results).unwrap_or_default())?;
    }
    if !args.quick {
        let old = std::fs::read_to_string(&args.out).unwrap_or_default();
        write(&args.out, &replace_section(&old, &section))?;
        eprintln!("wrote {}", args.out.display());
    }
    // The charts go next to the Markdown that links them, or where asked.
    let charts = match &args.charts {
        Some(dir) => Some(dir.clone()),
        None if !args.quick => Some(args.out.parent().unwrap_or_else(|| Path::new(".")).to_path_buf()),
        None => None,
    };
    if let Some(dir) = charts {
        std::fs::create_dir_all(&dir)
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        for (file, svg) in sync_sim::charts::bench_charts(&results)? {
            write(&dir.join(file), &svg)?;
            eprintln!("wrote {}", dir.join(file).display());
        }
    }
    Ok(true)
}

async fn faults(args: FaultArgs) -> Result<bool> {
    let kind: FaultKind = args.scenario.parse()?;
    let options = FaultOptions {
        duration: parse_duration(&args.duration)?,
        devices: args.devices,
        seed: args.seed,
        restart_cluster: args.restart_cluster,
        ..FaultOptions::new(kind)
    };
    let backends: Vec<Backend> = args.database.backends().into_iter().filter(|b| kind.runs_on(*b)).collect();
    if backends.is_empty() {
        return Err(Error::Config(format!("the {kind} scenario does not run on the chosen database")));
    }
    let binary = server_binary(args.server_bin)?;
    let mut reports = Vec::new();
    for backend in backends {
        eprintln!("fault scenario {kind} on {backend} for {:?}", options.duration);
        let report = sync_sim::faults::run(&binary, backend, &options).await?;
        print!("{}", report.to_table());
        reports.push(report);
    }
    if let Some(path) = &args.json {
        write(path, &serde_json::to_string_pretty(&reports).unwrap_or_default())?;
    }
    Ok(reports.iter().all(|r| r.passed))
}

async fn soak(args: SoakArgs) -> Result<bool> {
    let duration = parse_duration(&args.duration)?;
    // About 60 samples in a short run, one every 10 s in a long one.
    let every = args.every.map_or_else(
        || (duration / 60).clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(10)),
        std::time::Duration::from_secs,
    );
    let binary = server_binary(args.server_bin)?;
    let mut reports = Vec::new();
    for backend in args.database.backends() {
        eprintln!("soak on {backend} for {duration:?}, a sample every {every:?}");
        let report = sync_sim::soak::run(&binary, backend, duration, every).await?;
        print!("{}", report.to_table());
        reports.push(report);
    }
    if let Some(path) = &args.json {
        write(path, &serde_json::to_string_pretty(&reports).unwrap_or_default())?;
    }
    Ok(reports.iter().all(|r| r.passed))
}

/// `old` with the benchmark's section replaced by `section` (appended when absent).
fn replace_section(old: &str, section: &str) -> String {
    let block = format!("{BEGIN}\n{section}{END}\n");
    match (old.find(BEGIN), old.find(END)) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{block}{}", &old[..start], old[end + END.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{block}", old.trim_end()),
    }
}

/// The CPU model, core count and memory of this machine, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    format!("{model}, {cores} cores, {mem_gib:.0} GiB")
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io { path: path.display().to_string(), source })
}
