//! `ceso completions SHELL` and `ceso man`: generated from the command-line definition.

use clap::Args;

use super::{CommandError, Outcome};

/// Arguments of `ceso completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: String,
}

/// Arguments of `ceso man`.
#[derive(Debug, Args)]
pub struct ManArgs {}

/// Prints the completion script for `args.shell`.
pub fn completions(_args: CompletionsArgs, _command: clap::Command) -> Result<Outcome, CommandError> {
    Err(CommandError::new("not yet"))
}

/// Prints the man page.
pub fn man(_args: ManArgs, _command: clap::Command) -> Result<Outcome, CommandError> {
    Err(CommandError::new("not yet"))
}
