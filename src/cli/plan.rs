//! `ceso plan DIR`

use std::path::{Path, PathBuf};

use clap::Args;

use super::connect::{disconnect, make_plan, recorded_addresses};
use super::{CommandError, Outcome};
use crate::diagnostic::has_errors;
use crate::plan::{Plan, PlanOptions, render};

/// Arguments of `ceso plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Inventory directory (or one manifest file).
    pub path: PathBuf,
    /// Print the machine-readable plan (docs/plan-format.md) instead of the human one.
    #[arg(long)]
    pub json: bool,
    /// Save the plan to this file, for `ceso apply FILE`.
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
    print_plan(&plan, args.json);
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

/// Prints a plan as text (colour on a terminal) or JSON.
pub fn print_plan(plan: &Plan, json: bool) {
    if json {
        print!("{}", render::json(plan));
    } else {
        print!("{}", render::human(plan, render::Colour::for_stdout()));
    }
}

fn save_plan(plan: &Plan, out: &std::path::Path) -> Result<(), CommandError> {
    std::fs::write(out, render::json(plan))
        .map_err(|e| CommandError::new(format!("cannot write the plan to {}: {e}", out.display())))
}
