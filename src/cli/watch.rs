//! `ceso watch DIR`: the reconcile loop.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{CommandError, Outcome};

/// Arguments of `ceso watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Inventory directory.
    pub path: PathBuf,
    /// Apply changes and correct drift (default: only report them).
    #[arg(long)]
    pub apply: bool,
    /// One JSON object per event instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(_args: WatchArgs, _state: &Path) -> Result<Outcome, CommandError> {
    Err(CommandError::new("not yet"))
}
