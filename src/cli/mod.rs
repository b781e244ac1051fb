//! The command line: argument parsing, and the one place where outcomes become exit codes.

mod apply;
mod audit;
mod backup;
mod connect;
mod files;
mod inspect;
mod ip;
mod plan;
mod progress;
mod schema;
mod template;
mod validate;
mod vm;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diagnostic::Diagnostic;

pub use schema::{SCHEMA_FILE, manifest_schema, manifest_schema_text};

/// ceso (ESXi Commander): declarative management of standalone VMware ESXi hosts.
#[derive(Debug, Parser)]
#[command(name = "ceso", version, about, long_about = None)]
pub struct Cli {
    /// The state file (audit log, locks).
    #[arg(long, global = true, env = "CESO_STATE", default_value = crate::state::DEFAULT_STATE_FILE)]
    pub state: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests without touching any host; reports every problem at once.
    Validate(validate::ValidateArgs),
    /// Show what apply would change. Exit code 0: no changes, 2: changes pending, 1: error.
    Plan(plan::PlanArgs),
    /// Carry out a plan (from an inventory directory, or a saved plan file).
    Apply(apply::ApplyArgs),
    /// What every apply did.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Write the JSON Schema of the manifests.
    Schema(schema::SchemaArgs),
    /// Create, list, inspect and delete VMs (the manifest is written into the inventory).
    #[command(subcommand)]
    Vm(VmCommand),
    /// Import templates (the disks VMs are made from).
    #[command(subcommand)]
    Template(TemplateCommand),
    /// IP address management: pools and the addresses in use.
    #[command(subcommand)]
    Ip(ip::IpCommand),
    /// Backups: take, list, verify, prune and restore.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
}

/// `ceso template ...`
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Import an OVA (e.g. Ubuntu's cloud image) onto a host and write its Template manifest.
    Import(template::TemplateImportArgs),
}

/// `ceso vm ...`
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Write a VM's manifest into the inventory, then plan and apply just that VM.
    Create(vm::VmCreateArgs),
    /// Clone a VM on its host (no vCenter needed): write the clone's manifest, then plan and
    /// apply it. The clone gets a new identity: MACs, UUIDs, cloud-init instance-id, host name
    /// and address.
    Clone(vm::VmCloneArgs),
    /// Delete a VM and its disks, remove its manifest and release its IP addresses.
    Delete(vm::VmDeleteArgs),
    /// Every VM of every host: power, cpu, memory, address, and whether ceso manages it.
    List(inspect::VmListArgs),
    /// One VM in detail: hardware, disks, adapters, decoded cloud-init (secrets redacted).
    Info(inspect::VmInfoArgs),
}

/// The outcome of a command, mapped to an exit code in [`run`].
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 2: `plan` found changes.
    ChangesPending,
}

/// Why a command failed (exit code 1).
#[derive(Debug)]
pub enum CommandError {
    /// Problems in the manifests (already collected, each with its location).
    Diagnostics(Vec<Diagnostic>),
    /// Anything else, with a hint when there is something to do about it.
    Failed {
        message: String,
        hint: Option<String>,
    },
}

impl CommandError {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        CommandError::Failed {
            message: message.into(),
            hint: None,
        }
    }

    /// A failure with a message and what to do about it.
    pub fn with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CommandError::Failed {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl From<crate::state::StateError> for CommandError {
    fn from(error: crate::state::StateError) -> Self {
        let hint = match &error {
            crate::state::StateError::LockHeld { .. } => Some(
                "wait for that apply to finish; a holder that was killed is detected and taken over automatically",
            ),
            crate::state::StateError::UnknownRun { .. } => Some("`ceso audit list` shows the runs"),
            _ => None,
        };
        CommandError::Failed {
            message: error.to_string(),
            hint: hint.map(str::to_owned),
        }
    }
}

/// Parses the command line, runs the command and returns the exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Usage errors exit 1, never 2: 2 means "changes pending" for `plan`.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::ChangesPending) => ExitCode::from(2),
        Err(CommandError::Diagnostics(diagnostics)) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!("\n{errors} error(s) found.");
            ExitCode::from(1)
        }
        Err(CommandError::Failed { message, hint }) => {
            eprintln!("error: {message}");
            if let Some(hint) = hint {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<Outcome, CommandError> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(args, &cli.state).await,
        Command::Apply(args) => apply::run(&args, &cli.state).await,
        Command::Audit(command) => audit::run(command, &cli.state),
        Command::Schema(args) => schema::run(args),
        Command::Vm(VmCommand::Create(args)) => vm::create(args, &cli.state).await,
        Command::Vm(VmCommand::Clone(args)) => vm::clone(args, &cli.state).await,
        Command::Vm(VmCommand::Delete(args)) => vm::delete(args, &cli.state).await,
        Command::Vm(VmCommand::List(args)) => inspect::list(args).await,
        Command::Vm(VmCommand::Info(args)) => inspect::info(args).await,
        Command::Template(TemplateCommand::Import(args)) => {
            template::import(args, &cli.state).await
        }
        Command::Ip(command) => ip::run(command, &cli.state).await,
        Command::Backup(command) => backup::run(command, &cli.state).await,
    }
}

/// Asks `prompt` on the terminal: `Some(true)` when the answer is `yes`, `None` when standard
/// input is not a terminal (nobody to ask).
pub(crate) fn ask_yes(prompt: &str) -> Result<Option<bool>, CommandError> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CommandError::new(format!("reading the answer: {e}")))?;
    Ok(Some(answer.trim() == "yes"))
}

/// The names of the inventory's `what`, for a hint (or that it declares none).
pub(crate) fn known<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        format!("the inventory declares no {what}")
    } else {
        format!("{what} in the inventory: {}", names.join(", "))
    }
}

/// Completes when the user presses Ctrl-C (never, if the signal cannot be watched).
pub(crate) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CESO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
