//! `ceso secret ...`: the encrypted secret store and the OS keyring.

use std::path::Path;

use clap::Subcommand;

use super::{CommandError, Outcome};

/// `ceso secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret (read from the terminal without echo, or from standard input).
    Set { name: String },
    /// The names of the stored secrets (never their values).
    List,
    /// Remove a secret.
    Rm { name: String },
}

/// Runs a `ceso secret` command.
pub async fn run(_command: SecretCommand, _state: &Path) -> Result<Outcome, CommandError> {
    Err(CommandError::new("ceso secret is not implemented yet"))
}
