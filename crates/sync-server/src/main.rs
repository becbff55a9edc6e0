//! The syncforge server binary (placeholder until the API issue lands the real one).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "sync-server: the HTTP server is not built yet; the workspace currently ships the sync libraries \
         (sync-model, sync-state-machine, sync-conflict, sync-bandwidth, sync-metrics). See README.md."
    );
    ExitCode::from(1)
}
