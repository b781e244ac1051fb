//! `ceso status`: what watch did last.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{CommandError, Outcome};

/// Arguments of `ceso status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Inventory directory.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints the status.
pub fn run(_args: StatusArgs, _state: &Path) -> Result<Outcome, CommandError> {
    Err(CommandError::new("not yet"))
}
