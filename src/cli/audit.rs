//! `ceso audit list` and `ceso audit show RUN`

use std::collections::BTreeMap;
use std::path::Path;

use clap::Subcommand;

use super::{CommandError, Outcome};
use crate::plan::ResourceChange;
use crate::state::{RunRecord, RunStatus, StateStore, StepEvent, StepRecord};

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List every apply run, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the audit log's hash chain: reports an entry changed, removed or reordered, and a
    /// run or step that differs from what was recorded. Exit code 1 when anything is wrong.
    Verify {
        /// The head hash a previous verify printed: also check that the log still contains it
        /// (nothing was cut off or rewritten from there).
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every audit entry as a JSON line (oldest first), for a log collector.
    Export {
        /// Write into this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
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
        AuditCommand::Verify { expect_head, json } => {
            return verify(&store, expect_head.as_deref(), json);
        }
        AuditCommand::Export { out } => return export(&store, out.as_deref()),
        AuditCommand::List { json } => {
            let mut runs = Vec::new();
            for run in store.runs()? {
                let run = lock.effective_status(run);
                let run = if run.finished_at.is_none() {
                    let (_, events) = store.run(&run.run_id)?;
                    counted(run, &events).0
                } else {
                    run
                };
                runs.push(run);
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs).expect("runs serialize")
                );
            } else if runs.is_empty() {
                println!("No runs recorded in {}.", state.display());
            } else {
                println!(
                    "{:<27} {:<11} {:<24} {:<10} {:>5} {:>6} {:>7}  SOURCE",
                    "RUN", "STATUS", "STARTED", "USER", "OK", "FAILED", "SKIPPED"
                );
                for run in &runs {
                    println!(
                        "{:<27} {:<11} {:<24} {:<10} {:>5} {:>6} {:>7}  {}",
                        run.run_id,
                        run.status,
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
            let (record, unknown) = counted(lock.effective_status(record), &steps);
            if json {
                let value = serde_json::json!({ "run": record, "steps": steps });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).expect("audit serializes")
                );
            } else {
                println!("Run {} ({})", record.run_id, record.status);
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
                if unknown > 0 {
                    println!(
                        "\n  {unknown} step(s) started but never reported an outcome: the run ended while they ran.\n  The host has the last word: `ceso plan` shows what is left."
                    );
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// A run that never finished (it was killed) has no totals: count them from its step events.
/// Also returns how many steps started without an outcome.
fn counted(mut run: RunRecord, events: &[StepRecord]) -> (RunRecord, usize) {
    let mut last: BTreeMap<usize, &StepEvent> = BTreeMap::new();
    for event in events {
        last.insert(event.step, &event.event);
    }
    let count = |pick: fn(&StepEvent) -> bool| last.values().filter(|e| pick(e)).count();
    if run.finished_at.is_some() {
        return (run, 0);
    }
    run.steps_succeeded = count(|e| matches!(e, StepEvent::Succeeded { .. }));
    run.steps_failed = count(|e| matches!(e, StepEvent::Failed { .. }));
    run.steps_skipped = count(|e| matches!(e, StepEvent::Skipped { .. }));
    (run, count(|e| matches!(e, StepEvent::Started)))
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

/// `ceso audit verify`
fn verify(
    store: &StateStore,
    expect_head: Option<&str>,
    json: bool,
) -> Result<Outcome, CommandError> {
    let mut report = store.verify_audit()?;
    if let Some(expected) = expect_head {
        let chain = store.audit_chain()?;
        // Entries after the expected head are new since then; its absence is the problem.
        if !chain.iter().any(|e| e.hash.eq_ignore_ascii_case(expected)) {
            report.problems.push(format!(
                "the expected head {expected} is not in the chain: entries were removed or the log was rewritten since it was taken"
            ));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        println!(
            "{} entries; head {}",
            report.entries,
            if report.head.is_empty() {
                "(none)"
            } else {
                &report.head
            }
        );
        if !report.uncovered_runs.is_empty() {
            let runs = &report.uncovered_runs;
            let shown = if runs.len() > 3 {
                format!(
                    "{} ... {} (`--json` lists them all)",
                    runs[0],
                    runs[runs.len() - 1]
                )
            } else {
                runs.join(", ")
            };
            println!(
                "{} run(s) were recorded before the chain began and are not covered: {shown}",
                runs.len()
            );
        }
        for problem in &report.problems {
            println!("  - {problem}");
        }
    }
    if report.problems.is_empty() {
        if !json {
            println!(
                "The audit log is intact. Keep the head hash elsewhere and pass it to `--expect-head` next time."
            );
        }
        Ok(Outcome::Success)
    } else {
        Err(CommandError::with_hint(
            format!(
                "the audit log does not match its hash chain: {} problem(s)",
                report.problems.len()
            ),
            "the state file was changed outside ceso; compare with a backup of it or with an export (`ceso audit export`)",
        ))
    }
}

/// `ceso audit export`
fn export(store: &StateStore, out: Option<&std::path::Path>) -> Result<Outcome, CommandError> {
    let mut text = String::new();
    for entry in store.audit_chain()? {
        let record: serde_json::Value =
            serde_json::from_str(&entry.record).unwrap_or(serde_json::Value::Null);
        let line = serde_json::json!({
            "seq": entry.seq,
            "kind": entry.kind,
            "run_id": entry.run_id,
            "step_seq": entry.step_seq,
            "record": record,
            "prev": entry.prev,
            "hash": entry.hash,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    match out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| CommandError::new(format!("cannot write {}: {e}", path.display())))?,
        None => print!("{text}"),
    }
    Ok(Outcome::Success)
}
