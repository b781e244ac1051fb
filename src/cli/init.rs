//! `ceso init DIR`: scaffolds an inventory.

use clap::Args;

use super::{CommandError, Outcome};

/// Arguments of `ceso init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory to create.
    pub dir: std::path::PathBuf,
}

/// Writes the inventory.
pub async fn run(_args: InitArgs) -> Result<Outcome, CommandError> {
    Err(CommandError::new("not yet"))
}
