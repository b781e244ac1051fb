//! `ceso host ...`: checks of the hosts themselves.

use std::path::Path;

use clap::Subcommand;

use super::{CommandError, Outcome};

/// `ceso host ...`
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Connect to a host the way ceso does (API and SSH) and check every pin.
    Check,
}

/// Runs a `ceso host` command.
pub async fn run(_command: HostCommand, _state: &Path) -> Result<Outcome, CommandError> {
    Err(CommandError::new("ceso host is not implemented yet"))
}
