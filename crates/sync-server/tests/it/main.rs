//! End-to-end tests of the `sync-server` binary: the real process on a free port, on SQLite
//! and on PostgreSQL, driven over HTTP; the command line's subcommands and exit codes; token
//! lifecycle; the scheduled jobs across two nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod console;
mod e2e;
mod exit_status;
mod hostile;
mod jobs;
mod nodes;
mod secrets;
mod tokens;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to start (migrations on a cold CI machine included).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The binary under test, with no `SYNC_*` variable of the caller's environment.
pub fn command(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sync-server"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SYNC_") {
            command.env_remove(name);
        }
    }
    command.env("SYNC_DATABASE_URL", database_url).env("SYNC_LOG", "info");
    command
}

pub fn run(database_url: &str, args: &[&str]) -> Output {
    command(database_url).args(args).output().unwrap()
}

pub fn create_token(database_url: &str, tenant: &str, user: &str, role: &str) -> String {
    let out = run(database_url, &["token", "create", "--tenant", tenant, "--user", user, "--role", role]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.trim();
    assert!(token.starts_with("sf_") && !token.contains('\n'), "{token}");
    token.to_owned()
}

/// A running server; killed on drop if the test did not stop it.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: mpsc::Receiver<String>,
    /// What the server logged before its address (a scheduler may start first).
    pub early_log: Vec<String>,
}

impl Server {
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut command = command(database_url);
        command.args(["serve", "--bind", "127.0.0.1:0"]).envs(env.iter().copied());
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut early_log = Vec::new();
        let base = loop {
            let line = rx.recv_timeout(START_TIMEOUT).expect("the server did not log its address");
            if let Some((_, rest)) = line.split_once("listening on ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            early_log.push(line);
        };
        Server { child, base, log: rx, early_log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.terminate_with_log().0
    }

    /// Sends SIGTERM, waits for the exit status, and returns what the server logged after its
    /// address (until its stderr closed).
    pub fn terminate_with_log(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let mut lines = Vec::new();
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        (status, lines)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
