//! `ceso mcp`: a Model Context Protocol server over stdio for AI agents (docs/mcp.md).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{CommandError, Outcome};
use crate::config::Config;
use crate::mcp::{Ceso, CesoServer};

/// `ceso mcp`
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The inventory the tools work on (validate, plan, apply, vm list/info, backup list).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub inventory: PathBuf,
}

/// Serves MCP over standard input and output until the client hangs up. Standard output carries
/// nothing but the protocol; messages go to standard error.
pub async fn run(args: McpArgs, state: &Path) -> Result<Outcome, CommandError> {
    if !args.inventory.exists() {
        return Err(CommandError::with_hint(
            format!("the inventory {} does not exist", args.inventory.display()),
            "pass the inventory directory with --inventory DIR (or set CESO_INVENTORY)",
        ));
    }
    let program = std::env::current_exe().map_err(|e| {
        CommandError::new(format!(
            "cannot find the ceso binary to run the tools with: {e}"
        ))
    })?;
    let inventory = absolute(&args.inventory)?;
    let state = absolute(state)?;
    // The tools' ceso processes read the same configuration file as this one, also when it
    // was given with --config.
    let arguments: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let config = match Config::discover(&arguments)
        .ok()
        .and_then(|config| config.source)
    {
        Some(source) => Some(absolute(&source)?),
        None => None,
    };
    if std::io::stdin().is_terminal() {
        eprintln!(
            "ceso mcp: serving the Model Context Protocol on standard input and output for the inventory {}; an MCP host (an AI agent's client) starts this command, see docs/mcp.md. Ctrl-D ends it.",
            inventory.display()
        );
    }
    let server = CesoServer::new(Ceso::new(program, state, config), inventory);
    server
        .serve_stdio()
        .await
        .map_err(|e| CommandError::new(e.to_string()))?;
    Ok(Outcome::Success)
}

fn absolute(path: &Path) -> Result<PathBuf, CommandError> {
    std::path::absolute(path)
        .map_err(|e| CommandError::new(format!("cannot resolve {}: {e}", path.display())))
}
