//! `ceso audit list` and `ceso audit show RUN`

use std::path::Path;

use clap::Subcommand;

use super::{CommandError, Outcome};
use crate::plan::ResourceChange;
use crate::state::{RunRecord, RunStatus, StateStore, StepEvent};

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
    let lock = LockState::of(&store);
    match command {
        AuditCommand::List { json } => {
            let runs: Vec<RunRecord> = store
                .runs()?
                .into_iter()
                .map(|run| lock.effective_status(run))
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
            let record = lock.effective_status(record);
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
                if !record.changes.is_empty() {
                    println!("  changes:");
                    for change in &record.changes {
                        print_change(change);
                    }
                    println!();
                }
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

fn print_change(change: &ResourceChange) {
    println!(
        "  {:>3} {} (host {})",
        change.action.glyph(),
        change.address,
        change.host
    );
    for field in &change.fields {
        let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
        println!(
            "        {}: {} → {}",
            field.field,
            value(&field.before),
            value(&field.after)
        );
    }
}

/// Who holds the apply lock while the audit is read, as far as runs still marked `running` go.
enum LockState {
    /// Nobody: every run still marked `running` was interrupted.
    Free,
    /// This run: only it can still be running.
    HeldBy(String),
    /// Someone whose record cannot be read: runs marked `running` are left as they are.
    HeldUnnamed,
}

impl LockState {
    fn of(store: &StateStore) -> Self {
        if !store.apply_lock_is_held() {
            return LockState::Free;
        }
        match store.apply_lock_holder() {
            Ok(Some(holder)) => LockState::HeldBy(holder.run_id),
            Ok(None) | Err(_) => LockState::HeldUnnamed,
        }
    }

    /// A run still marked running that does not hold the apply lock was interrupted (its process
    /// died before it could say so; the next apply records it too when it takes the lock).
    fn effective_status(&self, mut run: RunRecord) -> RunRecord {
        let running = match self {
            LockState::Free => false,
            LockState::HeldBy(run_id) => *run_id == run.run_id,
            LockState::HeldUnnamed => true,
        };
        if run.status == RunStatus::Running && !running {
            run.status = RunStatus::Interrupted;
        }
        run
    }
}
