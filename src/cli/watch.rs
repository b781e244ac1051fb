//! `ceso watch DIR`: the controller. Triggers (a manifest change, the periodic drift check, a
//! backup's scheduled time, a retry after an error) feed one reconcile function; every
//! reconcile is printed and recorded (`ceso status`) with its reason, every change it makes is
//! an apply run in the audit log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use jiff::Timestamp;
use tokio::sync::watch as signal_channel;
use tokio::time::Instant;

use super::apply::{ApplyArgs, acquire_lock, now, refuse_creates_in_flight, run_steps};
use super::backup::{Setup, back_up};
use super::connect::{Hosts, disconnect, plan_inventory};
use super::plan::print_plan;
use super::{CommandError, Outcome};
use crate::apply::DEFAULT_PARALLELISM;
use crate::diagnostic::Diagnostic;
use crate::manifest::{Inventory, load_valid_inventory};
use crate::plan::{Action, DEFAULT_GUEST_IP_TIMEOUT_SECS, Plan, PlanOptions, ResourceChange};
use crate::state::{
    ApplyLock, BackupAttempt, LockHolder, PendingChange, ReconcileRecord, ReconcileResult,
    StateStore, WatchLockError, WatcherRecord,
};
use crate::watch::{Backoff, Debounce, Trigger, is_inventory_file, jittered, parse_duration};

/// The first delay after a failed reconcile; it doubles up to `--interval` (at most 5 minutes).
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LONGEST_RETRY: Duration = Duration::from_secs(300);
/// How many times in a row watch applies the same changes when they fail, before it only
/// reports them (until the manifests, the hosts' state or watch itself change).
const APPLY_ATTEMPTS: u32 = 3;

/// Arguments of `ceso watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Inventory directory (or one manifest file).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Apply changes and correct drift. Without it, watch only reports them.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: delete managed VMs that are no longer in the manifests (never protected
    /// ones).
    #[arg(long, requires = "apply")]
    pub prune: bool,
    /// Time between drift checks (give or take 10 %), e.g. 30s, 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub interval: Duration,
    /// How long the inventory must be quiet after a change before it is reconciled.
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = parse_duration)]
    pub debounce: Duration,
    /// Take no backups (by default watch takes every backup its policy's schedule makes due,
    /// also in report-only mode).
    #[arg(long)]
    pub no_backups: bool,
    /// With --apply: power VMs off hard where a guest cannot be shut down through VMware Tools.
    #[arg(long, requires = "apply")]
    pub force_power_off: bool,
    /// How many steps an apply runs at the same time.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// How long to wait for a new VM's guest to report its declared IP address.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_GUEST_IP_TIMEOUT_SECS)]
    pub guest_ip_timeout: u64,
    /// One JSON object per line for every event, instead of text.
    #[arg(long)]
    pub json: bool,
}

impl WatchArgs {
    fn mode(&self) -> &'static str {
        if self.apply { "apply" } else { "report" }
    }
}

/// Runs until SIGTERM or Ctrl-C (exit 0): a running apply step finishes first.
pub async fn run(args: WatchArgs, state: &Path) -> Result<Outcome, CommandError> {
    if args.interval < Duration::from_secs(1) {
        return Err(CommandError::with_hint(
            format!("--interval {:?} is too short", args.interval),
            "give at least 1s (every drift check reads every host); 5m is the default",
        ));
    }
    // The inventory is checked before anything is written.
    let (events, _file_watcher) = watch_files(&args.path)?;
    let store = StateStore::open(state)?;
    let watcher = WatcherRecord {
        pid: std::process::id(),
        hostname: super::apply::hostname(),
        started_at: now(),
        inventory: args.path.display().to_string(),
        mode: args.mode().to_owned(),
        interval_secs: args.interval.as_secs(),
    };
    let _watch_lock = store.acquire_watch_lock(&watcher).map_err(|error| match error {
        WatchLockError::Held(current) => {
            let who = current.map_or("a process whose record cannot be read".to_owned(), |w| {
                format!(
                    "pid {} on {} (since {}, watching {})",
                    w.pid, w.hostname, w.started_at, w.inventory
                )
            });
            CommandError::with_hint(
                format!(
                    "another `ceso watch` uses the state file {}: {who}",
                    state.display()
                ),
                "stop that one first (SIGTERM), or give this one its own state file with --state",
            )
        }
        WatchLockError::Io(e) => CommandError::with_hint(
            format!("cannot take the watch lock: {e}"),
            "check that the state file's directory is writable and that <state>.watch.lock is a plain file",
        ),
    })?;
    let stop = stop_on_signal();
    let mut controller = Controller {
        out: Printer { json: args.json },
        args: &args,
        store,
        last_good: None,
        last_pending: None,
        last_plan_errors: None,
        stale_manifests: false,
        failed_applies: (vec![], 0),
        stop,
    };
    controller.out.started(&args);
    controller.run(events).await;
    controller.out.event(
        "watch_stopped",
        "stopped; the next `ceso watch` continues from where the hosts are",
        serde_json::json!({}),
    );
    Ok(Outcome::Success)
}

/// Watches the inventory for changes (recursively), sending every changed path.
fn watch_files(
    path: &Path,
) -> Result<
    (
        tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
        notify::RecommendedWatcher,
    ),
    CommandError,
> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let root = std::fs::canonicalize(path).map_err(|e| {
        CommandError::with_hint(
            format!("cannot watch {}: {e}", path.display()),
            "give the inventory directory (or one manifest file)",
        )
    })?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let (watched, mode) = if root.is_dir() {
        (root.clone(), RecursiveMode::Recursive)
    } else {
        // A single file: its directory, so that an editor's save-by-rename is seen too.
        let parent = root
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.clone());
        (parent, RecursiveMode::NonRecursive)
    };
    let only = (!root.is_dir()).then(|| root.clone());
    let base = watched.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // Reading a file (ceso itself loads the manifests) is not a change.
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            let wanted = match &only {
                Some(file) => &path == file,
                None => is_inventory_file(&base, &path),
            };
            if wanted {
                let relative = path
                    .strip_prefix(&base)
                    .map(Path::to_path_buf)
                    .unwrap_or(path);
                let _ = sender.send(relative);
            }
        }
    })
    .map_err(|e| CommandError::new(format!("cannot watch {}: {e}", path.display())))?;
    watcher.watch(&watched, mode).map_err(|e| {
        CommandError::with_hint(
            format!("cannot watch {}: {e}", path.display()),
            "on Linux, raise fs.inotify.max_user_watches if the inventory is very large",
        )
    })?;
    Ok((receiver, watcher))
}

/// A channel that turns `true` on the first SIGTERM or Ctrl-C. Later signals are ignored (the
/// running step is finishing); SIGKILL still ends ceso, and the next start converges.
fn stop_on_signal() -> signal_channel::Receiver<bool> {
    let (sender, receiver) = signal_channel::channel(false);
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match terminate.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let which = tokio::select! {
            () = super::interrupted() => "Ctrl-C",
            () = terminated => "SIGTERM",
        };
        eprintln!(
            "{which}: stopping after the running step (further signals are ignored; the next start converges)"
        );
        let _ = sender.send(true);
        // Keep the handlers installed so that further signals do not kill ceso mid-step.
        std::future::pending::<()>().await;
    });
    receiver
}

/// Resolves once a stop was asked for.
fn stopped(
    receiver: &signal_channel::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + use<> {
    let mut receiver = receiver.clone();
    async move {
        if receiver.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// When something is due: never (`None`) or at an instant.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Prints events: a line of text each, or a JSON object per line.
struct Printer {
    json: bool,
}

impl Printer {
    fn event(&self, event: &str, message: &str, mut fields: serde_json::Value) {
        let at = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        if self.json {
            fields["at"] = at.into();
            fields["event"] = event.into();
            fields["message"] = message.into();
            println!("{fields}");
        } else {
            println!("{at} {message}");
        }
    }

    fn started(&self, args: &WatchArgs) {
        let mode = if args.apply {
            "applying changes and correcting drift"
        } else {
            "reporting changes and drift only (--apply applies them)"
        };
        let backups = if args.no_backups {
            "no backups"
        } else {
            "backups on schedule"
        };
        self.event(
            "watch_started",
            &format!(
                "watching {}: {mode}; drift check every {}; {backups}. Stop with Ctrl-C or SIGTERM.",
                args.path.display(),
                humanize(args.interval)
            ),
            serde_json::json!({
                "inventory": args.path.display().to_string(),
                "mode": args.mode(),
                "interval_secs": args.interval.as_secs(),
                "backups": !args.no_backups,
            }),
        );
    }

    fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        if self.json {
            self.event(
                "diagnostics",
                &format!("{} problem(s) in the manifests", diagnostics.len()),
                serde_json::json!({ "diagnostics": diagnostics }),
            );
        } else {
            for diagnostic in diagnostics {
                eprintln!("{diagnostic}");
            }
        }
    }
}

/// `5m`, `30s`, `1h 30m`.
fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0 => format!("{}ms", duration.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s if s > 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{s}s"),
    }
}

/// The watch loop's state.
struct Controller<'a> {
    args: &'a WatchArgs,
    out: Printer,
    store: StateStore,
    /// The last manifests that were valid: drift checks and backups go on with them while an
    /// edit is broken.
    last_good: Option<Inventory>,
    /// The pending changes last printed (a drift check that finds the same ones says so in one
    /// line).
    last_pending: Option<Vec<PendingChange>>,
    /// The plan errors last shown (shown again only when they change).
    last_plan_errors: Option<Vec<Diagnostic>>,
    /// The manifests on disk are invalid; the last valid ones are used.
    stale_manifests: bool,
    /// The changes whose apply failed, and how many times in a row.
    failed_applies: (Vec<PendingChange>, u32),
    stop: signal_channel::Receiver<bool>,
}

/// What one reconcile did, and when the next backup is due.
struct Reconciled {
    result: ReconcileResult,
    message: String,
    pending: Vec<PendingChange>,
    suspended: Vec<PendingChange>,
    run_id: Option<String>,
    backups: Vec<BackupAttempt>,
    next_backup: Option<(Timestamp, String, String)>,
}

impl Reconciled {
    fn new(result: ReconcileResult, message: impl Into<String>) -> Self {
        Reconciled {
            result,
            message: message.into(),
            pending: vec![],
            suspended: vec![],
            run_id: None,
            backups: vec![],
            next_backup: None,
        }
    }
}

impl Controller<'_> {
    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    async fn run(&mut self, mut files: tokio::sync::mpsc::UnboundedReceiver<PathBuf>) {
        let mut debounce = Debounce::new(self.args.debounce);
        let mut backoff = Backoff::new(FIRST_RETRY, self.args.interval.min(LONGEST_RETRY));
        let mut next: Option<Trigger> = Some(Trigger::Start);
        let mut drift_check = Instant::now();
        let mut retry: Option<Instant> = None;
        let mut backup: Option<(Instant, String, String)> = None;
        loop {
            if let Some(trigger) = next.take() {
                let done = self.reconcile(&trigger).await;
                drift_check = Instant::now() + jittered(self.args.interval, fastrand::f64());
                retry = if done.result == ReconcileResult::Failed {
                    Some(Instant::now() + backoff.failed())
                } else {
                    backoff.succeeded();
                    None
                };
                // A reconcile that did not get as far as the backups keeps the timer it had.
                if let Some(next) = done.next_backup.as_ref().map(|(at, vm, policy)| {
                    let wait = at.duration_since(Timestamp::now());
                    let wait = Duration::try_from(wait).unwrap_or_default();
                    (
                        Instant::now() + wait + Duration::from_secs(1),
                        vm.clone(),
                        policy.clone(),
                    )
                }) {
                    backup = Some(next);
                }
                if self.stop_requested() {
                    return;
                }
                continue;
            }
            tokio::select! {
                () = stopped(&self.stop) => return,
                Some(path) = files.recv() => debounce.changed(path, Instant::now()),
                () = until(debounce.deadline()) => {
                    let changed = lasting_changes(&self.args.path, debounce.take());
                    if !changed.is_empty() {
                        next = Some(Trigger::ManifestChanged(changed));
                    }
                }
                () = tokio::time::sleep_until(drift_check) => next = Some(Trigger::DriftCheck),
                () = until(retry) => next = Some(Trigger::Retry { attempt: backoff.next_attempt() }),
                () = until(backup.as_ref().map(|b| b.0)) => {
                    if let Some((_, vm, policy)) = backup.take() {
                        next = Some(Trigger::BackupDue { vm, policy });
                    }
                }
            }
        }
    }

    /// One reconcile: load, plan, apply (with --apply), take due backups; printed and recorded.
    async fn reconcile(&mut self, trigger: &Trigger) -> Reconciled {
        let started_at = now();
        let id = super::apply::new_run_id();
        let done = match self.reconcile_inner(trigger).await {
            Ok(done) => done,
            Err(error) => {
                let message = match error.hint() {
                    Some(hint) => format!("{} (hint: {hint})", error.message()),
                    None => error.message(),
                };
                let result = if self.stop_requested() {
                    ReconcileResult::Interrupted
                } else {
                    ReconcileResult::Failed
                };
                Reconciled::new(result, message)
            }
        };
        let record = ReconcileRecord {
            id,
            started_at,
            finished_at: now(),
            reason: trigger.to_string(),
            mode: self.args.mode().to_owned(),
            result: done.result,
            message: done.message.clone(),
            pending: done.pending.clone(),
            suspended: done.suspended.clone(),
            run_id: done.run_id.clone(),
            backups: done.backups.clone(),
        };
        if let Err(e) = self.store.save_reconcile(&record) {
            eprintln!("error: state file: recording the reconcile: {e}");
        }
        // The event is the record (its `message` becomes the printed line) and the next backup.
        let mut event = serde_json::to_value(&record).unwrap_or_default();
        event["next_backup"] = done
            .next_backup
            .as_ref()
            .map_or(serde_json::Value::Null, |(at, vm, policy)| {
                serde_json::json!({ "vm": vm, "policy": policy, "at": at.to_string() })
            });
        let retry = if done.result == ReconcileResult::Failed {
            "; tried again after a delay"
        } else {
            ""
        };
        let next = done
            .next_backup
            .as_ref()
            .map(|(at, vm, policy)| format!("; next backup: {vm} ({policy}) at {at}"))
            .unwrap_or_default();
        self.out.event(
            "reconcile",
            &format!(
                "reconcile ({trigger}): {}: {}{retry}{next}",
                done.result.as_str().replace('_', " "),
                done.message
            ),
            event,
        );
        done
    }

    async fn reconcile_inner(&mut self, trigger: &Trigger) -> Result<Reconciled, CommandError> {
        tracing::debug!(%trigger, "reconcile: loading the manifests");
        match load_valid_inventory(&self.args.path) {
            Ok((inventory, warnings)) => {
                let emptied = match (&self.last_good, self.args.prune) {
                    (Some(previous), true) => emptied_files(previous, &inventory),
                    _ => vec![],
                };
                if !emptied.is_empty() {
                    let names: Vec<String> =
                        emptied.iter().map(|f| f.display().to_string()).collect();
                    return Ok(Reconciled::new(
                        ReconcileResult::InvalidManifests,
                        format!(
                            "{} declared VMs and now declare none (a save cut short?); with --prune that would delete them, so nothing was done and the last valid manifests are kept. To delete those VMs, remove the file(s) instead",
                            names.join(", ")
                        ),
                    ));
                }
                if !warnings.is_empty()
                    && matches!(trigger, Trigger::Start | Trigger::ManifestChanged(_))
                {
                    self.out.diagnostics(&warnings);
                }
                self.last_good = Some(inventory);
                self.stale_manifests = false;
            }
            Err(diagnostics) => {
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                let fresh = matches!(trigger, Trigger::Start | Trigger::ManifestChanged(_));
                if fresh {
                    self.out.diagnostics(&diagnostics);
                }
                self.stale_manifests = true;
                if fresh || self.last_good.is_none() {
                    let kept = if self.last_good.is_some() {
                        "the last valid manifests are kept"
                    } else {
                        "waiting for a valid edit"
                    };
                    return Ok(Reconciled::new(
                        ReconcileResult::InvalidManifests,
                        format!("{errors} error(s) in the manifests; nothing was done, {kept}"),
                    ));
                }
            }
        }
        let Some(inventory) = self.last_good.clone() else {
            return Ok(Reconciled::new(
                ReconcileResult::InvalidManifests,
                "no valid manifests yet",
            ));
        };
        let setup = Setup::of(inventory);
        tracing::debug!("reconcile: planning");
        let options = PlanOptions {
            prune: self.args.prune,
            recorded_addresses: self.store.recorded_holdings()?,
            guest_ip_timeout_secs: self.args.guest_ip_timeout,
            force_power_off: self.args.force_power_off,
            ..PlanOptions::default()
        };
        // With --apply the lock is taken before the hosts are observed, as `ceso apply` does:
        // no other apply can change them between the plan and its steps.
        let mut lock = None;
        if self.args.apply {
            take_lock(&self.store, &mut lock)?;
        }
        let result = match plan_inventory(setup.inventory(), &self.args.path, &options).await {
            Ok((plan, hosts)) => {
                let result = self.act(trigger, &setup, &plan, &hosts, &mut lock).await;
                disconnect(&hosts).await;
                result
            }
            Err(e) => Err(e),
        };
        if let Some((lock, _)) = lock
            && let Err(e) = self.store.release_apply_lock(lock)
        {
            eprintln!("warning: could not release the apply lock: {e}");
        }
        let mut result = result?;
        if self.stale_manifests {
            result.message = format!(
                "{} (checked against the last valid manifests: those on disk are invalid)",
                result.message
            );
        }
        Ok(result)
    }

    /// Everything a reconcile does with the hosts connected.
    async fn act(
        &mut self,
        trigger: &Trigger,
        setup: &Setup,
        plan: &Plan,
        hosts: &Hosts,
        lock: &mut Option<(ApplyLock, LockHolder)>,
    ) -> Result<Reconciled, CommandError> {
        let errors: Vec<Diagnostic> = plan
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        let pending = pending_changes(plan);
        let mut done = if !errors.is_empty() {
            // Shown once, not on every check: they stay until the manifests or hosts change.
            if self.last_plan_errors.as_ref() != Some(&errors) {
                if self.out.json {
                    self.out.diagnostics(&errors);
                } else {
                    print_plan(plan, false);
                }
            }
            let first = &errors[0];
            let mut done = Reconciled::new(
                ReconcileResult::PlanErrors,
                format!(
                    "the plan has {} error(s), e.g. {}{}; nothing was changed (`ceso plan` shows them)",
                    errors.len(),
                    first
                        .resource
                        .as_deref()
                        .map(|r| format!("{r}: "))
                        .unwrap_or_default(),
                    first.message
                ),
            );
            done.pending = pending.clone();
            self.last_plan_errors = Some(errors);
            done
        } else if !plan.has_changes() {
            self.last_pending = None;
            Reconciled::new(ReconcileResult::InSync, "the hosts are as declared")
        } else if !self.args.apply {
            if self.last_pending.as_ref() != Some(&pending) && !self.out.json {
                print_plan(plan, false);
            }
            self.last_pending = Some(pending.clone());
            let mut done = Reconciled::new(
                ReconcileResult::ChangesPending,
                format!(
                    "{} resource(s) differ from the manifests; not applied (report only: `ceso watch --apply` or `ceso apply` applies them)",
                    pending.len()
                ),
            );
            done.pending = pending.clone();
            done
        } else if self.failed_applies.0 == pending && self.failed_applies.1 >= APPLY_ATTEMPTS {
            // The same changes failed again and again: stop disrupting the VMs (a change that
            // needs a power cycle would shut them down every time) until something changes.
            let mut done = Reconciled::new(
                ReconcileResult::ChangesPending,
                format!(
                    "{} resource(s) differ; not applied again: applying these changes failed {} times (fix the cause, then edit the manifests or restart watch)",
                    pending.len(),
                    self.failed_applies.1
                ),
            );
            done.pending = pending.clone();
            done
        } else {
            let done = self.apply(trigger, plan, hosts, lock).await?;
            if done.result == ReconcileResult::Failed {
                if self.failed_applies.0 == pending {
                    self.failed_applies.1 += 1;
                } else {
                    self.failed_applies = (pending.clone(), 1);
                }
            } else {
                self.failed_applies = (vec![], 0);
            }
            done
        };
        if done.result != ReconcileResult::PlanErrors {
            self.last_plan_errors = None;
        }
        done.suspended = summarize(
            plan.suspended
                .iter()
                .filter(|s| s.differs())
                .map(|s| &s.change),
        );
        if !done.suspended.is_empty() {
            done.message = format!(
                "{}; {} suspended resource(s) differ from their manifests (left alone)",
                done.message,
                done.suspended.len()
            );
        }
        if !self.args.no_backups && !self.stop_requested() {
            self.take_due_backups(setup, plan, hosts, lock, &mut done)
                .await?;
        }
        Ok(done)
    }

    async fn apply(
        &mut self,
        trigger: &Trigger,
        plan: &Plan,
        hosts: &Hosts,
        lock: &mut Option<(ApplyLock, LockHolder)>,
    ) -> Result<Reconciled, CommandError> {
        let holder = take_lock(&self.store, lock)?;
        refuse_creates_in_flight(plan, &self.store)?;
        if !self.out.json {
            print_plan(plan, false);
        }
        let args = ApplyArgs {
            auto_approve: true,
            prune: self.args.prune,
            parallelism: self.args.parallelism,
            guest_ip_timeout: self.args.guest_ip_timeout,
            force_power_off: self.args.force_power_off,
            json_events: self.out.json,
            ..ApplyArgs::new(&self.args.path)
        };
        let source = format!("watch {} ({trigger})", self.args.path.display());
        let outcome = run_steps(
            plan,
            hosts,
            &args,
            &self.store,
            &holder,
            &source,
            stopped(&self.stop),
        )
        .await;
        self.last_pending = None;
        let run_id = args.run_id.borrow().clone();
        let steps = plan.steps.len();
        let mut done = match outcome {
            Ok(_) => Reconciled::new(
                ReconcileResult::Applied,
                format!(
                    "applied {steps} step(s) (`ceso audit show {}`)",
                    run_id.as_deref().unwrap_or("?")
                ),
            ),
            Err(error) => {
                let result = if self.stop_requested() {
                    ReconcileResult::Interrupted
                } else {
                    ReconcileResult::Failed
                };
                let mut message = error.message();
                if let Some(run) = run_id.as_deref() {
                    let faults = self.failed_steps(run);
                    if !faults.is_empty() {
                        message = format!("{message}: {}", faults.join("; "));
                    }
                }
                let mut done = Reconciled::new(result, message);
                done.pending = pending_changes(plan);
                done
            }
        };
        done.run_id = run_id;
        Ok(done)
    }

    /// `RESOURCE: step: fault` of every step of `run` that failed.
    fn failed_steps(&self, run: &str) -> Vec<String> {
        let Ok((_, events)) = self.store.run(run) else {
            return vec![];
        };
        events
            .iter()
            .filter_map(|e| match &e.event {
                crate::state::StepEvent::Failed { fault, .. } => {
                    Some(format!("{}: {}: {fault}", e.resource, e.description))
                }
                _ => None,
            })
            .collect()
    }

    /// Takes every backup that is due (not of VMs the plan has yet to create) and finds when
    /// the next one is.
    async fn take_due_backups(
        &mut self,
        setup: &Setup,
        plan: &Plan,
        hosts: &Hosts,
        lock: &mut Option<(ApplyLock, LockHolder)>,
        done: &mut Reconciled,
    ) -> Result<(), CommandError> {
        let desired = setup.desired();
        if desired.vms.values().all(|vm| vm.backup_policy.is_none()) {
            return Ok(());
        }
        let catalog = setup.catalog(&self.store, hosts).await?;
        let outlook = crate::plan::backups::outlook(desired, &catalog, Timestamp::now());
        let not_created: BTreeSet<&str> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Create && done.result != ReconcileResult::Applied)
            .map(|c| c.name.as_str())
            .collect();
        for due in &outlook.due {
            if self.stop_requested() {
                break;
            }
            let address = format!("VirtualMachine/{}", due.vm);
            let in_error = plan
                .diagnostics
                .iter()
                .any(|d| d.is_error() && d.resource.as_deref() == Some(address.as_str()));
            if not_created.contains(due.vm.as_str()) || in_error {
                continue;
            }
            take_lock(&self.store, lock)?;
            let taken = back_up(
                setup,
                &self.store,
                hosts,
                &due.vm,
                &due.policy,
                stopped(&self.stop),
                self.out.json,
            )
            .await;
            let attempt = match taken {
                Ok(record) => BackupAttempt {
                    vm: due.vm.clone(),
                    policy: due.policy.clone(),
                    id: Some(record.id),
                    error: None,
                },
                Err(error) => {
                    super::backup::report(&error);
                    let message = error.message();
                    BackupAttempt {
                        vm: due.vm.clone(),
                        policy: due.policy.clone(),
                        id: None,
                        error: Some(message),
                    }
                }
            };
            done.backups.push(attempt);
        }
        let failed: Vec<&str> = done
            .backups
            .iter()
            .filter(|b| b.error.is_some())
            .map(|b| b.vm.as_str())
            .collect();
        if !failed.is_empty() && done.result != ReconcileResult::Failed {
            done.result = if self.stop_requested() {
                ReconcileResult::Interrupted
            } else {
                ReconcileResult::Failed
            };
            done.message = format!(
                "{}; the backups of {} failed",
                done.message,
                failed.join(", ")
            );
        } else if !done.backups.is_empty() {
            done.message = format!("{}; {} backup(s) taken", done.message, done.backups.len());
        }
        let catalog = self.store.backups()?;
        let later = crate::plan::backups::outlook(desired, &catalog, Timestamp::now());
        done.next_backup = later
            .upcoming
            .into_iter()
            .min_by_key(|u| u.at)
            .map(|u| (u.at, u.vm, u.policy));
        Ok(())
    }
}

/// The changed paths that matter: those that exist now, and removed manifests. A temporary
/// file that came and went (`sed -i`, an editor's swap file) changes nothing.
fn lasting_changes(inventory: &Path, changed: Vec<PathBuf>) -> Vec<PathBuf> {
    let base = if inventory.is_dir() {
        inventory
    } else {
        inventory.parent().unwrap_or(inventory)
    };
    changed
        .into_iter()
        .filter(|path| {
            let manifest = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            manifest || base.join(path).exists()
        })
        .collect()
}

/// The apply lock, taken the first time a reconcile needs it.
fn take_lock(
    store: &StateStore,
    lock: &mut Option<(ApplyLock, LockHolder)>,
) -> Result<LockHolder, CommandError> {
    if let Some((_, holder)) = lock {
        return Ok(holder.clone());
    }
    let (taken, holder) = acquire_lock(store)?;
    *lock = Some((taken, holder.clone()));
    Ok(holder)
}

/// The plan's changes, one line per field.
fn pending_changes(plan: &Plan) -> Vec<PendingChange> {
    summarize(plan.changes.iter().filter(|c| c.action != Action::NoOp))
}

/// Changes as records: one line per field.
fn summarize<'a>(changes: impl Iterator<Item = &'a ResourceChange>) -> Vec<PendingChange> {
    changes
        .map(|c| PendingChange {
            address: c.address.clone(),
            action: format!("{:?}", c.action).to_lowercase(),
            fields: c
                .fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: {} -> {}{}",
                        f.field,
                        f.before.as_deref().unwrap_or("(none)"),
                        f.after.as_deref().unwrap_or("(none)"),
                        if f.drift { " (drift)" } else { "" }
                    )
                })
                .collect(),
        })
        .collect()
}

/// Files that declared VMs in `previous`, still exist, but declare none in `current`, while
/// those VMs are declared nowhere else: an empty or truncated file, which `--prune` would take
/// as the VMs' removal.
fn emptied_files(previous: &Inventory, current: &Inventory) -> Vec<PathBuf> {
    let now: BTreeSet<&PathBuf> = current.vms.values().map(|vm| &vm.file).collect();
    let mut emptied: BTreeSet<PathBuf> = BTreeSet::new();
    for (name, vm) in &previous.vms {
        if vm.file.exists() && !now.contains(&vm.file) && !current.vms.contains_key(name) {
            emptied.insert(vm.file.clone());
        }
    }
    emptied.into_iter().collect()
}
