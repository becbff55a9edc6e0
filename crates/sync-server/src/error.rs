//! How the command line fails: bad arguments or configuration (exit 2) or anything else (exit 1).

use std::process::ExitCode;

/// A failure of a subcommand.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or configuration: exit status 2, with a one-line reason.
    #[error("{0}")]
    Config(String),
    /// Any other failure: exit status 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// The process exit status.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) => ExitCode::from(2),
            CliError::Other(_) => ExitCode::from(1),
        }
    }
}

impl From<sync_domain::Error> for CliError {
    fn from(e: sync_domain::Error) -> Self {
        match e {
            sync_domain::Error::InvalidUrl(url) => CliError::Config(format!("invalid database url: {url}")),
            sync_domain::Error::InvalidArgument(reason) => CliError::Config(reason),
            other => CliError::Other(other.into()),
        }
    }
}
