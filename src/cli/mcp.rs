//! `ceso mcp`: a Model Context Protocol server over stdio for AI agents.

use std::path::Path;

use clap::Args;

use super::{CommandError, Outcome};

/// `ceso mcp`
#[derive(Debug, Args)]
pub struct McpArgs {}

/// Serves MCP over standard input and output until the client hangs up.
pub async fn run(_args: McpArgs, _state: &Path) -> Result<Outcome, CommandError> {
    Err(CommandError::new("ceso mcp is not implemented yet"))
}
