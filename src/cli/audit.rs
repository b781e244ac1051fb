//! `ceso audit list` and `ceso audit show RUN`

use std::path::Path;

use clap::Subcommand;

use super::{CommandError, Outcome};
use crate::state::{RunRecord, RunStatus, StateStore, StepEvent, process_is_alive};

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List every apply run, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run and every step event.
    Show {
        /// The run id (from `ceso audit list`).
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: AuditCommand, state: &Path) -> Result<Outcome, CommandError> {
    if !state.exists() {
        return Err(CommandError::with_hint(
            format!("no state file at {}", state.display()),
            "nothing has been applied with this state file yet; pass --state to use another",
        ));
    }
    let store = StateStore::open(state)?;
    match command {
        AuditCommand::List { json } => {
            let runs: Vec<RunRecord> = store
                .runs()?
                .into_iter()
                .map(with_effective_status)
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs).expect("runs serialize")
                );
            } else if runs.is_empty() {
                println!("No runs recorded in {}.", state.display());
            } else {
                println!(
                    "{:<24} {:<11} {:<25} {:<10} {:>5} {:>6} {:>7}  SOURCE",
                    "RUN", "STATUS", "STARTED", "USER", "OK", "FAILED", "SKIPPED"
                );
                for run in &runs {
                    println!(
                        "{:<24} {:<11} {:<25} {:<10} {:>5} {:>6} {:>7}  {}",
                        run.run_id,
                        status(run),
                        run.started_at,
                        run.os_user,
                        run.steps_succeeded,
                        run.steps_failed,
                        run.steps_skipped,
                        run.source
                    );
                }
            }
        }
        AuditCommand::Show { run, json } => {
            let (record, steps) = store.run(&run)?;
            let record = with_effective_status(record);
            if json {
                let value = serde_json::json!({ "run": record, "steps": steps });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).expect("audit serializes")
                );
            } else {
                println!("Run {} ({})", record.run_id, status(&record));
                println!("  plan:     {}", record.plan_id);
                println!("  source:   {}", record.source);
                println!(
                    "  by:       {} on {} (pid {})",
                    record.os_user, record.hostname, record.pid
                );
                println!("  started:  {}", record.started_at);
                if let Some(finished) = &record.finished_at {
                    println!("  finished: {finished}");
                }
                println!(
                    "  steps:    {} planned, {} succeeded, {} failed, {} skipped\n",
                    record.steps_total,
                    record.steps_succeeded,
                    record.steps_failed,
                    record.steps_skipped
                );
                for step in steps {
                    let what = match &step.event {
                        StepEvent::Started => "started".to_owned(),
                        StepEvent::Succeeded { duration_ms } => {
                            format!("succeeded in {duration_ms} ms")
                        }
                        StepEvent::Failed { duration_ms, fault } => {
                            format!("FAILED after {duration_ms} ms: {fault}")
                        }
                        StepEvent::Skipped { reason } => format!("skipped: {reason}"),
                    };
                    println!(
                        "  {} step {} {} ({}, host {}): {what}",
                        step.at, step.step, step.description, step.resource, step.host
                    );
                }
            }
        }
    }
    Ok(Outcome::Success)
}

fn status(run: &RunRecord) -> String {
    serde_json::to_value(run.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A run still marked running whose process is gone was interrupted (killed before it could
/// say so; the next apply records it too when it takes over the lock).
fn with_effective_status(mut run: RunRecord) -> RunRecord {
    if run.status == RunStatus::Running && !process_is_alive(run.pid) {
        run.status = RunStatus::Interrupted;
    }
    run
}
