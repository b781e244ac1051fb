//! The command line: argument parsing, and the one place where outcomes become exit codes.

mod apply;
mod audit;
mod backup;
mod completions;
mod connect;
mod files;
mod help;
mod host;
mod init;
mod inspect;
mod ip;
mod mcp;
mod plan;
mod progress;
mod promote;
mod schema;
mod secret;
mod status;
mod template;
mod validate;
mod vm;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{Config, OutputFormat};
use crate::diagnostic::Diagnostic;

pub use schema::{SCHEMA_FILE, manifest_schema, manifest_schema_text};

/// ceso (ESXi Commander): declarative management of standalone VMware ESXi hosts.
#[derive(Debug, Parser)]
#[command(name = "ceso", version, about, long_about = None)]
pub struct Cli {
    /// The state file (audit log, IP addresses, backup catalog, locks).
    #[arg(long, global = true, env = "CESO_STATE", default_value = crate::state::DEFAULT_STATE_FILE)]
    pub state: PathBuf,
    /// The configuration file (default: .ceso/config.yaml, else ~/.config/ceso/config.yaml).
    #[arg(long, global = true, value_name = "FILE", env = crate::config::CONFIG_VARIABLE)]
    pub config: Option<PathBuf>,
    /// How results are printed; `json` is what `--json` asks of one command.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: OutputFormat,
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
    /// Reconcile continuously: on every manifest change, every --interval (drift), when a backup
    /// is due, and after an error. Plan-only unless --apply.
    Watch(watch::WatchArgs),
    /// What `ceso watch` did last, the drift it found, and the next backups.
    Status(status::StatusArgs),
    /// Scaffold an inventory: a Host (after showing its certificate thumbprint), an IpPool, an
    /// Ubuntu template and a VM, ready to commit.
    Init(init::InitArgs),
    /// Print the shell completion script.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff).
    Man(completions::ManArgs),
    /// Secrets for the manifests (`{ secret: NAME }`): the encrypted store and the OS keyring.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Ask for, approve and list promotions of the restricted (agent) role.
    #[command(subcommand)]
    Promote(promote::PromoteCommand),
    /// Serve the Model Context Protocol over stdio for AI agents (restricted role).
    Mcp(mcp::McpArgs),
    /// Check the hosts themselves: connections and pinned keys.
    #[command(subcommand)]
    Host(host::HostCommand),
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

    /// What went wrong, in one line (without the hint).
    pub fn message(&self) -> String {
        match self {
            CommandError::Failed { message, .. } => message.clone(),
            CommandError::Diagnostics(diagnostics) => {
                format!("{} problem(s) in the manifests", diagnostics.len())
            }
        }
    }

    /// What to do about it, if there is something.
    pub fn hint(&self) -> Option<&str> {
        match self {
            CommandError::Failed { hint, .. } => hint.as_deref(),
            CommandError::Diagnostics(_) => None,
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
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let config = match Config::discover(&args) {
        Ok(config) => config,
        // Help, the version, completions and man pages do not depend on the configuration:
        // a broken file must not keep anyone from reading how to fix it.
        Err(error) if needs_no_configuration(&args) => {
            eprintln!("warning: {error} (ignored here)");
            Config::default()
        }
        Err(error) => {
            eprintln!("error: {error}");
            eprintln!("  hint: {}", error.hint());
            return ExitCode::from(1);
        }
    };
    let parsed = command_line(&config)
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
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

/// Whether the command line only asks for help, the version, completions or a man page.
fn needs_no_configuration(args: &[std::ffi::OsString]) -> bool {
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    words
        .iter()
        .any(|w| matches!(*w, "--help" | "-h" | "--version" | "-V"))
        || matches!(
            words.iter().find(|w| !w.starts_with('-')),
            Some(&"help" | &"completions" | &"man")
        )
}

/// The command line as clap sees it: the derived definition with the configuration's defaults
/// and an example for every command.
pub fn command_line(config: &Config) -> clap::Command {
    help::with_examples(config.apply_to(Cli::command()))
}

async fn dispatch(mut cli: Cli) -> Result<Outcome, CommandError> {
    if cli.output == OutputFormat::Json {
        ask_for_json(&mut cli.command);
    }
    if let Err(refused) = crate::access::authorize(&cli.command, &cli.state) {
        return Err(CommandError::new(refused.to_string()));
    }
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
        Command::Watch(args) => watch::run(args, &cli.state).await,
        Command::Status(args) => status::run(args, &cli.state),
        Command::Init(args) => init::run(args).await,
        Command::Completions(args) => {
            completions::completions(args, command_line(&Config::default()))
        }
        Command::Man(args) => completions::man(args, command_line(&Config::default())),
        Command::Secret(command) => secret::run(command, &cli.state).await,
        Command::Promote(command) => promote::run(command, &cli.state).await,
        Command::Mcp(args) => mcp::run(args, &cli.state).await,
        Command::Host(command) => host::run(command, &cli.state).await,
    }
}

/// `--output json`: every command that can print JSON does.
fn ask_for_json(command: &mut Command) {
    match command {
        Command::Validate(args) => args.json = true,
        Command::Plan(args) => args.json = true,
        Command::Audit(audit::AuditCommand::List { json, .. })
        | Command::Audit(audit::AuditCommand::Show { json, .. })
        | Command::Audit(audit::AuditCommand::Verify { json, .. }) => *json = true,
        Command::Vm(VmCommand::List(args)) => args.json = true,
        Command::Vm(VmCommand::Info(args)) => args.json = true,
        Command::Ip(ip::IpCommand::List(args)) => args.json = true,
        Command::Backup(backup::BackupCommand::List(args)) => args.json = true,
        Command::Watch(args) => args.json = true,
        Command::Status(args) => args.json = true,
        Command::Host(host::HostCommand::Check(args)) => args.json = true,
        Command::Secret(secret::SecretCommand::List(args)) => args.json = true,
        Command::Promote(promote::PromoteCommand::Request { json, .. })
        | Command::Promote(promote::PromoteCommand::List { json })
        | Command::Promote(promote::PromoteCommand::Status { json }) => *json = true,
        _ => {}
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
