//! The executor: the only code that changes a host. It runs a plan's steps in dependency order
//! with bounded concurrency; a failed step stops what depends on it while independent steps go
//! on. Every step event goes through one [`ApplyHook`] (the audit log implements it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::host::{Host, HostOp};
use crate::plan::{Plan, Step};

/// Why steps were skipped after Ctrl-C.
pub const INTERRUPTED: &str = "the run was interrupted before this step started";
/// Why a wait (a read-only step) ended early.
pub const STOPPED_WAITING: &str =
    "the run was interrupted: stopped waiting (the VM is left as it is)";

/// Default number of steps run at the same time.
pub const DEFAULT_PARALLELISM: usize = 4;

/// Receives every step event, in the order they happen.
pub trait ApplyHook {
    fn step_started(&self, step: &Step);
    fn step_succeeded(&self, step: &Step, duration: Duration);
    fn step_failed(&self, step: &Step, duration: Duration, error: &str);
    fn step_skipped(&self, step: &Step, reason: &str);
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Succeeded,
    Failed(String),
    Skipped(String),
}

/// The result of a run: one outcome per step of the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub outcomes: BTreeMap<usize, StepOutcome>,
}

impl ApplyReport {
    fn count(&self, pick: fn(&StepOutcome) -> bool) -> usize {
        self.outcomes.values().filter(|o| pick(o)).count()
    }
    pub fn succeeded(&self) -> usize {
        self.count(|o| matches!(o, StepOutcome::Succeeded))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, StepOutcome::Failed(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, StepOutcome::Skipped(_)))
    }
    /// Whether every step succeeded.
    pub fn is_success(&self) -> bool {
        self.failed() == 0 && self.skipped() == 0
    }

    /// Whether the run was stopped (Ctrl-C) before every step could start.
    pub fn was_interrupted(&self) -> bool {
        self.outcomes.values().any(|o| {
            matches!(o, StepOutcome::Skipped(r) if r == INTERRUPTED)
                || matches!(o, StepOutcome::Failed(r) if r == STOPPED_WAITING)
        })
    }
}

/// Fills in the moref of a VM created earlier in the same run.
fn with_moref(op: &HostOp, created: &BTreeMap<String, String>, resource: &str) -> HostOp {
    let mut op = op.clone();
    if let HostOp::ReconfigureVm { moref, .. }
    | HostOp::PowerOn { moref, .. }
    | HostOp::PowerOff { moref, .. }
    | HostOp::DestroyVm { moref, .. }
    | HostOp::ShutdownVm { moref, .. }
    | HostOp::RemoveSnapshot { moref, .. }
    | HostOp::WaitForGuestIp { moref, .. } = &mut op
        && moref.is_none()
    {
        *moref = created.get(resource).cloned();
    }
    op
}

/// Runs the plan's steps against `hosts` (by host name). `stop` resolves when the run must stop
/// starting new steps (e.g. Ctrl-C); steps already running finish and the rest are skipped.
pub async fn execute<H: Host>(
    plan: &Plan,
    hosts: &BTreeMap<String, H>,
    parallelism: usize,
    hook: &dyn ApplyHook,
    stop: impl std::future::Future<Output = ()>,
) -> ApplyReport {
    let parallelism = parallelism.max(1);
    let mut report = ApplyReport::default();
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: BTreeSet<usize> = plan.steps.iter().map(|s| s.id).collect();
    let mut running = FuturesUnordered::new();
    // Steps that change a host, running now (read-only waits do not count).
    let mut writing = 0usize;
    let mut abandon: Vec<futures::future::AbortHandle> = Vec::new();
    let mut stopping = false;
    let stop = std::pin::pin!(stop);
    let mut stop = stop;
    loop {
        // Skip what can no longer run, then start what is ready.
        let mut progress = true;
        while progress {
            progress = false;
            for id in pending.clone() {
                let step = &plan.steps[id];
                let blocked =
                    step.depends_on
                        .iter()
                        .find_map(|dep| match report.outcomes.get(dep) {
                            Some(StepOutcome::Failed(_)) | Some(StepOutcome::Skipped(_)) => {
                                Some(*dep)
                            }
                            _ => None,
                        });
                let reason = if let Some(dep) = blocked {
                    Some(format!(
                        "step {dep} ({}) did not succeed",
                        plan.steps[dep].description
                    ))
                } else if stopping && !step.compensating {
                    Some(INTERRUPTED.to_owned())
                } else if !hosts.contains_key(&step.host) {
                    Some(format!("host {} is not connected", step.host))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    hook.step_skipped(step, &reason);
                    report.outcomes.insert(id, StepOutcome::Skipped(reason));
                    pending.remove(&id);
                    progress = true;
                    continue;
                }
                let ready =
                    step.depends_on.iter().all(|dep| {
                        matches!(report.outcomes.get(dep), Some(StepOutcome::Succeeded))
                    }) && step
                        .after
                        .iter()
                        .all(|dep| report.outcomes.contains_key(dep));
                let read_only = step.op.is_read_only();
                if ready && (read_only || writing < parallelism) {
                    pending.remove(&id);
                    let op = with_moref(&step.op, &created, &step.resource);
                    let host = &hosts[&step.host];
                    hook.step_started(step);
                    let (handle, registration) = futures::future::AbortHandle::new_pair();
                    if read_only {
                        abandon.push(handle);
                    } else {
                        writing += 1;
                    }
                    running.push(async move {
                        let started = Instant::now();
                        let result =
                            futures::future::Abortable::new(host.execute(&op), registration).await;
                        let result = match result {
                            Ok(result) => result.map_err(|e| e.to_string()),
                            Err(futures::future::Aborted) => Err(STOPPED_WAITING.to_owned()),
                        };
                        (id, started.elapsed(), result)
                    });
                    progress = true;
                }
            }
        }
        if running.is_empty() {
            // Whatever is still pending waits for a step that can never finish (a malformed
            // plan): say so rather than leaving it unaccounted for.
            for id in std::mem::take(&mut pending) {
                let reason = "its dependencies can never be satisfied (malformed plan)";
                hook.step_skipped(&plan.steps[id], reason);
                report
                    .outcomes
                    .insert(id, StepOutcome::Skipped(reason.to_owned()));
            }
            break;
        }
        let finished = tokio::select! {
            finished = running.next() => finished,
            () = &mut stop, if !stopping => {
                stopping = true;
                // Waiting changes nothing: stop waiting rather than hold the run up.
                for handle in abandon.drain(..) {
                    handle.abort();
                }
                continue;
            }
        };
        let Some((id, elapsed, result)) = finished else {
            break;
        };
        let step = &plan.steps[id];
        if !step.op.is_read_only() {
            writing -= 1;
        }
        match result {
            Ok(outcome) => {
                if let Some(moref) = outcome.created_moref {
                    created.insert(step.resource.clone(), moref);
                }
                hook.step_succeeded(step, elapsed);
                report.outcomes.insert(id, StepOutcome::Succeeded);
            }
            Err(error) => {
                hook.step_failed(step, elapsed, &error);
                report.outcomes.insert(id, StepOutcome::Failed(error));
            }
        }
    }
    report
}
