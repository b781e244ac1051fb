//! The audit log: every apply run and every step event (started, succeeded, failed, skipped),
//! append-only. Records hold descriptions and fault names, never secrets.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::chain::EntryKind;
use super::{LockHolder, RUNS, STEPS, StateError, StateStore, corrupt, to_json};
use crate::plan::{Action, Plan, ResourceChange};

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// The process died during the run: the lock it held was released without the run being
    /// finished (recorded when the next apply takes the lock; `ceso audit` infers it before).
    Interrupted,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        })
    }
}

/// One apply run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub plan_id: String,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub os_user: String,
    pub hostname: String,
    pub pid: u32,
    /// The inventory directory or saved plan file that was applied.
    pub source: String,
    pub steps_total: usize,
    #[serde(default)]
    pub steps_succeeded: usize,
    #[serde(default)]
    pub steps_failed: usize,
    #[serde(default)]
    pub steps_skipped: usize,
    /// What the run was to change: the plan's resource changes, `NoOp` ones left out. Empty in
    /// runs recorded before ceso kept them.
    #[serde(default)]
    pub changes: Vec<ResourceChange>,
}

impl RunRecord {
    /// The record of a run that starts now: `running`, no step done yet, the plan's changes.
    /// `source` is the inventory directory or saved plan file being applied.
    pub fn running(holder: &LockHolder, plan: &Plan, source: impl Into<String>) -> Self {
        RunRecord {
            run_id: holder.run_id.clone(),
            plan_id: plan.plan_id.clone(),
            started_at: holder.started_at.clone(),
            finished_at: None,
            status: RunStatus::Running,
            os_user: holder.os_user.clone(),
            hostname: holder.hostname.clone(),
            pid: holder.pid,
            source: source.into(),
            steps_total: plan.steps.len(),
            steps_succeeded: 0,
            steps_failed: 0,
            steps_skipped: 0,
            changes: recorded_changes(&plan.changes),
        }
    }
}

/// The changes worth recording from a plan's: every one whose action is not `NoOp`.
pub fn recorded_changes(changes: &[ResourceChange]) -> Vec<ResourceChange> {
    changes
        .iter()
        .filter(|change| change.action != Action::NoOp)
        .cloned()
        .collect()
}

/// What happened to a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum StepEvent {
    Started,
    Succeeded { duration_ms: u64 },
    Failed { duration_ms: u64, fault: String },
    Skipped { reason: String },
}

/// One event of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub resource: String,
    pub host: String,
    pub description: String,
    pub at: String,
    #[serde(flatten)]
    pub event: StepEvent,
}

impl StateStore {
    /// Creates or replaces the record of a run.
    pub fn save_run(&self, run: &RunRecord) -> Result<(), StateError> {
        self.write(|txn| record_run(txn, run))
    }

    /// Appends a step event to a run.
    pub fn append_step(&self, run_id: &str, record: &StepRecord) -> Result<(), StateError> {
        self.write(|txn| {
            let mut steps = txn.open_table(STEPS)?;
            let next = steps
                .range((run_id, 0)..=(run_id, u64::MAX))?
                .next_back()
                .transpose()?
                .map_or(0, |(key, _)| key.value().1 + 1);
            let text = to_json(record);
            steps.insert((run_id, next), text.as_str())?;
            drop(steps);
            super::chain::append(txn, EntryKind::Step, run_id, Some(next), &text)
        })
    }

    /// All runs, oldest first: by `started_at` (fixed-width UTC timestamps sort as text), then
    /// run id.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StateError> {
        self.read(|txn| {
            let runs = txn.open_table(RUNS)?;
            let mut out = Vec::new();
            for entry in runs.iter()? {
                let (_, value) = entry?;
                out.push(serde_json::from_str(value.value()).map_err(corrupt)?);
            }
            out.sort_by(|a: &RunRecord, b: &RunRecord| {
                (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id))
            });
            Ok(out)
        })
    }

    /// One run and its step events in order.
    pub fn run(&self, run_id: &str) -> Result<(RunRecord, Vec<StepRecord>), StateError> {
        let found = self.read(|txn| {
            let runs = txn.open_table(RUNS)?;
            let Some(run) = runs.get(run_id)? else {
                return Ok(None);
            };
            let run: RunRecord = serde_json::from_str(run.value()).map_err(corrupt)?;
            let steps = txn.open_table(STEPS)?;
            let mut events = Vec::new();
            for entry in steps.range((run_id, 0)..=(run_id, u64::MAX))? {
                let (_, value) = entry?;
                events.push(serde_json::from_str(value.value()).map_err(corrupt)?);
            }
            Ok(Some((run, events)))
        })?;
        found.ok_or_else(|| StateError::UnknownRun {
            path: self.path.clone(),
            run_id: run_id.to_owned(),
        })
    }
}

/// Writes a run record and its chain entry in `txn` (the only way run records are written).
/// A run recorded by a process that runs under a promotion is linked to it by a
/// `promotion_run` security event, written with the run's first record.
pub(super) fn record_run(txn: &redb::WriteTransaction, run: &RunRecord) -> Result<(), redb::Error> {
    let text = to_json(run);
    let new = txn.open_table(RUNS)?.get(run.run_id.as_str())?.is_none();
    // The chain first: a chain that starts now lists the runs recorded before, not this one.
    super::chain::append(txn, EntryKind::Run, &run.run_id, None, &text)?;
    txn.open_table(RUNS)?
        .insert(run.run_id.as_str(), text.as_str())?;
    if new && let Some(acting) = super::promotions::acting_promotion() {
        let event = super::promotions::SecurityEvent {
            event: super::promotions::SecurityEventKind::PromotionRun,
            at: run.started_at.clone(),
            actor: acting.actor.clone(),
            command: Some(acting.command.clone()),
            promotion: Some(acting.id.clone()),
            run_id: Some(run.run_id.clone()),
            reason: None,
            record: None,
        };
        super::promotions::record_event(txn, &event)?;
    }
    Ok(())
}
