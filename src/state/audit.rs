//! The audit log: every apply run and every step event (started, succeeded, failed, skipped),
//! append-only. Records hold descriptions and fault names, never secrets.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{RUNS, STEPS, StateError, StateStore, corrupt, to_json};

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// The process died during the run (found when the next apply took over its lock).
    Interrupted,
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
        self.write(|txn| {
            txn.open_table(RUNS)?
                .insert(run.run_id.as_str(), to_json(run).as_str())?;
            Ok(())
        })
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
            steps.insert((run_id, next), to_json(record).as_str())?;
            Ok(())
        })
    }

    /// All runs, oldest first.
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
