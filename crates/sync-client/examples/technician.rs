//! A technician's command line: tasks in a local file, worked on offline, synced when asked.
//!
//! ```sh
//! cargo run -p sync-server -- serve &
//! export SYNC_TOKEN=$(cargo run -q -p sync-server -- token create --tenant acme --user alice --role device)
//! alias tech='cargo run -q -p sync-client --example technician -- --file alice.db'
//! tech add "Check pump"          # offline: stored in alice.db
//! tech list                      # 7af5c195  ASSIGNED     pending_sync  v0   Check pump
//! tech start 7af5                # by id prefix
//! tech sync                      # pushed 2 changes (2 batches), pulled 1 records …
//! tech list                      # 7af5c195  INPROGRESS   synced        v2   Check pump
//! tech done 7af5 && tech sync
//! ```

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sync_client::{Client, Options, Remote, Store};
use sync_model::{SyncMeta, SyncableModel};

#[derive(Debug, Serialize, Deserialize, SyncableModel)]
#[sync(domain = "task", workflow = "task", critical_fields(status))]
struct Task {
    #[serde(skip)]
    #[sync(meta)]
    meta: SyncMeta,
    title: String,
    status: String,
}

#[derive(Parser)]
#[command(about = "A technician's tasks, offline first")]
struct Cli {
    /// The account file (created on first use).
    #[arg(long, default_value = "technician.db")]
    file: std::path::PathBuf,
    /// This device's id (used when the file is created).
    #[arg(long, default_value = "technician-1")]
    device: String,
    #[arg(long, env = "SYNC_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A device token (`sync-server token create … --role device`).
    #[arg(long, env = "SYNC_TOKEN", default_value = "")]
    token: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A new task, ASSIGNED.
    Add { title: String },
    /// Start a task (INPROGRESS).
    Start { id: String },
    /// Complete a task (COMPLETED).
    Done { id: String },
    /// Remove a task.
    Delete { id: String },
    /// Every task, with where it stands.
    List,
    /// Push local edits and pull what is new.
    Sync,
    /// Conflicts and refused edits so far.
    Notices,
}

fn find(client: &Client, prefix: &str) -> anyhow::Result<uuid::Uuid> {
    let matches: Vec<uuid::Uuid> = client
        .query::<Task>()?
        .into_iter()
        .map(|t| t.meta.mobile_id)
        .filter(|id| id.to_string().starts_with(prefix))
        .collect();
    match matches.as_slice() {
        [id] => Ok(*id),
        [] => bail!("no task starts with {prefix}"),
        _ => bail!("{prefix} names several tasks"),
    }
}

fn set_status(client: &Client, prefix: &str, status: &str) -> anyhow::Result<()> {
    let id = find(client, prefix)?;
    client.patch::<Task>(id, json!([{"op": "replace", "path": "/status", "value": status}]))?;
    println!("{id}: {status}");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let store =
        Store::open(&cli.file, &cli.device).with_context(|| format!("opening {}", cli.file.display()))?;
    let client = Client::new(store, Remote::new(&cli.server, cli.token.clone())?, Options::default())?;
    match cli.command {
        Command::Add { title } => {
            let task = Task { meta: SyncMeta::new(uuid::Uuid::new_v4()), title, status: "ASSIGNED".into() };
            client.put(&task)?;
            println!("{}", task.meta.mobile_id);
        }
        Command::Start { id } => set_status(&client, &id, "INPROGRESS")?,
        Command::Done { id } => set_status(&client, &id, "COMPLETED")?,
        Command::Delete { id } => client.delete::<Task>(find(&client, &id)?)?,
        Command::List => {
            for task in client.query::<Task>()? {
                let id = task.meta.mobile_id.to_string();
                println!(
                    "{}  {:<11}  {:<12}  v{:<3} {}",
                    &id[..8],
                    task.status,
                    task.meta.sync_status.as_str(),
                    task.meta.version,
                    task.title
                );
            }
        }
        Command::Sync => {
            if cli.token.is_empty() {
                bail!("no token: pass --token or set SYNC_TOKEN");
            }
            let report = client.sync().await?;
            println!(
                "pushed {} changes ({} batches), pulled {} records ({} as deltas), {} retries",
                report.pushed, report.batches, report.pulled, report.deltas, report.retries
            );
        }
        Command::Notices => {
            for notice in client.notices()? {
                let why = notice
                    .error
                    .map(|e| e.message)
                    .or(notice.conflict.map(|c| c.strategy.to_string()))
                    .unwrap_or_default();
                println!("{}  {:<16} {}", notice.id, notice.outcome.as_str(), why);
            }
        }
    }
    Ok(())
}
