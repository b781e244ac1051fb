//! `ceso status [DIR]`: whether `ceso watch` runs, what its last reconcile did, the changes it
//! left pending, and the next backups. Reads the state file and the manifests only: no host is
//! contacted, so it answers at once.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::{CommandError, Outcome};
use crate::desired::DesiredState;
use crate::manifest::load_valid_inventory;
use crate::state::{PendingChange, ReconcileRecord, ReconcileResult, StateStore, WatcherRecord};

/// How many recent reconciles are searched for the last one that made a plan.
const PLANNED_LOOKBACK: usize = 100;

/// Arguments of `ceso status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Inventory directory (for the backup schedules).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Also list the last N reconciles.
    #[arg(long, value_name = "N")]
    pub history: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `ceso status --json` prints.
#[derive(Debug, Serialize)]
struct Status {
    /// The running watcher, `null` when none runs on this state file.
    watcher: Option<WatcherRecord>,
    last_reconcile: Option<ReconcileRecord>,
    /// The changes the last reconcile that made a plan found and did not apply.
    pending: Vec<PendingChange>,
    /// Suspended resources that differ from their manifests (left alone).
    suspended: Vec<PendingChange>,
    /// Due ones first, then by time.
    next_backups: Vec<NextBackup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<ReconcileRecord>>,
    /// Why the backup schedules are not shown, if they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct NextBackup {
    vm: String,
    policy: String,
    /// When it is (or became) due.
    at: String,
    due: bool,
}

/// Prints the status.
pub fn run(args: StatusArgs, state: &Path) -> Result<Outcome, CommandError> {
    if !state.exists() {
        return Err(CommandError::with_hint(
            format!("no state file at {}", state.display()),
            "ceso has not run with this state file yet (start `ceso watch DIR`), or pass --state",
        ));
    }
    let store = StateStore::open(state)?;
    let recent = store.reconciles(args.history.unwrap_or(0).max(PLANNED_LOOKBACK))?;
    let last_reconcile = recent.last().cloned();
    // The pending changes are those of the last reconcile that got as far as a plan (an
    // invalid edit or an unreachable host since then does not make them go away).
    let planned = recent.iter().rev().find(|r| {
        let planless = r.result == ReconcileResult::InvalidManifests
            || (r.result == ReconcileResult::Failed && r.pending.is_empty());
        !planless
    });
    let history_from = recent.len().saturating_sub(args.history.unwrap_or(0));
    let (next_backups, note) = match next_backups(&args.path, &store) {
        Ok(next) => (next, None),
        Err(note) => (vec![], Some(note)),
    };
    let status = Status {
        watcher: store.running_watcher()?,
        pending: planned.map(|r| r.pending.clone()).unwrap_or_default(),
        suspended: planned.map(|r| r.suspended.clone()).unwrap_or_default(),
        last_reconcile,
        next_backups,
        history: args.history.map(|_| recent[history_from..].to_vec()),
        note,
    };
    if args.json {
        super::inspect::print_json(&status);
    } else {
        print!("{}", human(&status));
    }
    Ok(Outcome::Success)
}

/// The backup outlook from the manifests and the catalog the state file holds.
fn next_backups(path: &Path, store: &StateStore) -> Result<Vec<NextBackup>, String> {
    let (inventory, _) = load_valid_inventory(path).map_err(|diagnostics| {
        format!(
            "the manifests in {} have {} problem(s) (`ceso validate {}`); backup schedules not shown",
            path.display(),
            diagnostics.iter().filter(|d| d.is_error()).count(),
            path.display()
        )
    })?;
    let desired = DesiredState::from_inventory(&inventory);
    let catalog = store.backups().map_err(|e| e.to_string())?;
    let outlook = crate::plan::backups::outlook(&desired, &catalog, jiff::Timestamp::now());
    let mut next: Vec<NextBackup> = outlook
        .due
        .into_iter()
        .map(|d| NextBackup {
            vm: d.vm,
            policy: d.policy,
            at: d.due_since.to_string(),
            due: true,
        })
        .collect();
    let mut upcoming = outlook.upcoming;
    upcoming.sort_by_key(|u| u.at);
    next.extend(upcoming.into_iter().map(|u| NextBackup {
        vm: u.vm,
        policy: u.policy,
        at: u.at.to_string(),
        due: false,
    }));
    Ok(next)
}

fn human(status: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match &status.watcher {
        Some(w) => {
            let _ = writeln!(
                out,
                "Watch:     running (pid {} on {}, since {}), {} mode, drift check every {} s, inventory {}",
                w.pid, w.hostname, w.started_at, w.mode, w.interval_secs, w.inventory
            );
        }
        None => {
            let _ = writeln!(out, "Watch:     not running");
        }
    }
    match &status.last_reconcile {
        Some(r) => {
            let _ = writeln!(
                out,
                "Last:      {} ({}): {}: {}",
                r.finished_at,
                r.reason,
                r.result.as_str().replace('_', " "),
                r.message
            );
            if let Some(run) = r
                .run_id
                .as_ref()
                .filter(|run| !r.message.contains(run.as_str()))
            {
                let _ = writeln!(out, "           apply run {run} (`ceso audit show {run}`)");
            }
        }
        None => {
            let _ = writeln!(out, "Last:      no reconcile recorded yet");
        }
    }
    if status.pending.is_empty() {
        let _ = writeln!(out, "Pending:   none");
    } else {
        let _ = writeln!(out, "Pending:   {} resource(s)", status.pending.len());
        for change in &status.pending {
            let _ = writeln!(out, "  {} {}", change.action, change.address);
            for field in &change.fields {
                let _ = writeln!(out, "      {field}");
            }
        }
    }
    if !status.suspended.is_empty() {
        let _ = writeln!(
            out,
            "Suspended: {} resource(s) differ from their manifests, left alone",
            status.suspended.len()
        );
        for change in &status.suspended {
            let _ = writeln!(out, "  {} {}", change.action, change.address);
        }
    }
    if let Some(note) = &status.note {
        let _ = writeln!(out, "Backups:   {note}");
    } else if status.next_backups.is_empty() {
        let _ = writeln!(out, "Backups:   no VM has a backup policy");
    } else {
        let _ = writeln!(out, "Backups:");
        for next in &status.next_backups {
            let when = if next.due {
                format!("due since {}", next.at)
            } else {
                next.at.clone()
            };
            let _ = writeln!(out, "  {} ({}): {when}", next.vm, next.policy);
        }
    }
    if let Some(history) = &status.history {
        let _ = writeln!(out, "History:");
        for r in history {
            let _ = writeln!(
                out,
                "  {}  {:<17} {}: {}",
                r.started_at,
                r.result.as_str(),
                r.reason,
                r.message
            );
        }
    }
    out
}
