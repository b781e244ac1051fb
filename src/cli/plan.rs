//! `ceso plan DIR`: the plan for people, as JSON, or as Markdown for a pull-request comment.

use std::path::{Path, PathBuf};

use clap::Args;

use super::connect::{disconnect, make_plan, recorded_addresses};
use super::{CommandError, Outcome};
use crate::diagnostic::has_errors;
use crate::plan::{Plan, PlanOptions, markdown, render};

/// How `ceso plan` prints the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// Text for people (colour on a terminal).
    Human,
    /// The versioned JSON plan (docs/plan-format.md).
    Json,
    /// Markdown for a pull-request comment, within GitHub's 65536-character limit (docs/ci.md).
    Markdown,
}

/// Arguments of `ceso plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Inventory directory (or one manifest file).
    pub path: PathBuf,
    /// How to print the plan [default: human, or json with --json / --output json].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<PlanFormat>,
    /// Print the machine-readable plan (docs/plan-format.md): `--format json`. An explicit
    /// `--format` wins over it.
    #[arg(long)]
    pub json: bool,
    /// Save the JSON plan to this file, for `ceso apply FILE` (whatever --format prints).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Delete managed VMs that are no longer in the manifests (never protected ones).
    #[arg(long)]
    pub prune: bool,
    /// Plan hard power-offs where a guest cannot be shut down through VMware Tools.
    #[arg(long)]
    pub force_power_off: bool,
}

pub async fn run(args: PlanArgs, state: &Path) -> Result<Outcome, CommandError> {
    let options = PlanOptions {
        prune: args.prune,
        recorded_addresses: recorded_addresses(state)?,
        force_power_off: args.force_power_off,
        backup_catalog: super::backup::catalog_for_plan(&args.path, state).await?,
        backups_at: Some(jiff::Timestamp::now()),
        ..PlanOptions::default()
    };
    let (plan, hosts) = make_plan(&args.path, &options).await?;
    disconnect(&hosts).await;
    print_plan_as(&plan, args.printed_format());
    if has_errors(&plan.diagnostics) {
        return Err(CommandError::new(
            "the plan has errors (see above); nothing can be applied",
        ));
    }
    if let Some(out) = &args.out {
        save_plan(&plan, out)?;
        eprintln!(
            "Saved the plan to {}. Apply exactly this plan with `ceso apply {}`.",
            out.display(),
            out.display()
        );
    }
    Ok(if plan.has_changes() {
        Outcome::ChangesPending
    } else {
        Outcome::Success
    })
}

impl PlanArgs {
    /// The format to print: `--format` when given, else JSON for `--json` (or the global
    /// `--output json`), else human.
    pub fn printed_format(&self) -> PlanFormat {
        match (self.format, self.json) {
            (Some(format), _) => format,
            (None, true) => PlanFormat::Json,
            (None, false) => PlanFormat::Human,
        }
    }
}

/// Prints a plan as text (colour on a terminal) or JSON.
pub fn print_plan(plan: &Plan, json: bool) {
    print_plan_as(
        plan,
        if json {
            PlanFormat::Json
        } else {
            PlanFormat::Human
        },
    );
}

/// Prints a plan in `format` on standard output.
pub fn print_plan_as(plan: &Plan, format: PlanFormat) {
    match format {
        PlanFormat::Human => print!("{}", render::human(plan, render::Colour::for_stdout())),
        PlanFormat::Json => print!("{}", render::json(plan)),
        PlanFormat::Markdown => print!("{}", markdown::markdown(plan)),
    }
}

fn save_plan(plan: &Plan, out: &std::path::Path) -> Result<(), CommandError> {
    super::files::write_atomically(out, &render::json(plan))
}
