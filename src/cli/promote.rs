//! `ceso promote ...`: an agent asks for the right to change things; a human approves.

use std::path::Path;

use clap::Subcommand;

use super::{CommandError, Outcome};

/// `ceso promote ...`
#[derive(Debug, Subcommand)]
pub enum PromoteCommand {
    /// Ask for a promotion.
    Request,
    /// Approve a promotion (interactive terminal only).
    Approve { id: String },
    /// Promotions and their state.
    List,
}

/// Runs a `ceso promote` command.
pub async fn run(_command: PromoteCommand, _state: &Path) -> Result<Outcome, CommandError> {
    Err(CommandError::new("ceso promote is not implemented yet"))
}
