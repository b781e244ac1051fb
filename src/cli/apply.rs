//! `ceso apply DIR|FILE`

use std::cell::Cell;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::connect::{Hosts, TASK_TIMEOUT, connect, disconnect, make_plan, observe};
use super::plan::print_plan;
use super::{CommandError, Outcome};
use crate::apply::{ApplyHook, DEFAULT_PARALLELISM, execute};
use crate::cloudinit::CloudInitConfig;
use crate::diagnostic::has_errors;
use crate::host::HostOp;
use crate::plan::{
    CREATE_VM, DEFAULT_GUEST_IP_TIMEOUT_SECS, PLAN_FORMAT_VERSION, Plan, PlanOptions,
    ResourceChange, Step, stale_reasons, structure_problems,
};
use crate::state::{
    AddressRecord, LockHolder, RunRecord, RunStatus, StateStore, StepEvent, StepRecord,
};

/// Arguments of `ceso apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Inventory directory (plan, confirm, apply), or a plan file saved by `ceso plan --out`.
    pub path: PathBuf,
    /// Apply without asking (for pipelines). Without a terminal, apply refuses unless this is given.
    #[arg(long)]
    pub auto_approve: bool,
    /// Delete managed VMs that are no longer in the manifests (never protected ones).
    #[arg(long)]
    pub prune: bool,
    /// How many steps may run at the same time.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// How long to wait for a new VM's guest to report its declared IP address (VMware Tools).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_GUEST_IP_TIMEOUT_SECS)]
    pub guest_ip_timeout: u64,
    /// Where a guest cannot be shut down through VMware Tools (none running, or it does not stop
    /// in time), power the VM off hard instead of failing that step.
    #[arg(long)]
    pub force_power_off: bool,
    /// Apply only the changes of this resource (`VirtualMachine/NAME`); set by `ceso vm`.
    #[arg(skip)]
    pub only: Option<String>,
    /// Set once steps started running (so a caller knows whether anything may have changed).
    #[arg(skip)]
    pub steps_ran: Cell<bool>,
    /// The disks a VM restored from a backup is made from; set by `ceso backup restore --as-new`.
    #[arg(skip)]
    pub restore_disks: Option<RestoredDisks>,
    /// Step events as JSON lines (`ceso watch --json`) instead of text.
    #[arg(skip)]
    pub json_events: bool,
    /// The audit run the steps were recorded in, once they ran.
    #[arg(skip)]
    pub run_id: std::cell::RefCell<Option<String>>,
}

impl ApplyArgs {
    /// The arguments of a plain `ceso apply PATH` (no flags), for commands that apply.
    pub(super) fn new(path: &Path) -> Self {
        ApplyArgs {
            path: path.to_path_buf(),
            auto_approve: false,
            prune: false,
            parallelism: DEFAULT_PARALLELISM as u16,
            guest_ip_timeout: DEFAULT_GUEST_IP_TIMEOUT_SECS,
            force_power_off: false,
            only: None,
            steps_ran: Cell::new(false),
            restore_disks: None,
            json_events: false,
            run_id: std::cell::RefCell::new(None),
        }
    }
}

/// The disks of a backup, placed on the host, that a new VM is made from (copied into its
/// folder like a clone's).
#[derive(Debug, Clone)]
pub struct RestoredDisks {
    pub backup: String,
    /// The new VM's name.
    pub vm: String,
    /// `[ds] folder/name.vmdk`, in disk order.
    pub disks: Vec<String>,
    pub firmware: Option<crate::host::Firmware>,
}

impl RestoredDisks {
    /// Makes the plan's creation of the VM copy these disks.
    fn patch(&self, plan: &mut crate::plan::Plan) -> Result<(), CommandError> {
        let create = plan.steps.iter_mut().find_map(|step| match &mut step.op {
            HostOp::CreateVm { spec } if spec.name == self.vm => Some(spec),
            _ => None,
        });
        let Some(spec) = create else {
            return Err(CommandError::new(format!(
                "the plan does not create VM {:?}; nothing was restored",
                self.vm
            )));
        };
        spec.template_disk = None;
        spec.clone_from = Some(crate::host::CloneSource {
            vm: format!("backup {}", self.backup),
            moref: String::new(),
            disks: self.disks.clone(),
            running: false,
        });
        if self.firmware.is_some() {
            spec.firmware = self.firmware;
        }
        spec.extra_config.insert(
            crate::host::CREATING_KEY.to_owned(),
            format!("restore of {}", self.backup),
        );
        let address = format!("VirtualMachine/{}", self.vm);
        if let Some(change) = plan.changes.iter_mut().find(|c| c.address == address) {
            change
                .notes
                .push(format!("its disks are copies of backup {}", self.backup));
        }
        Ok(())
    }
}

/// Takes the apply lock (backups and restores hold it too), saying when it took over the lock
/// of a run that was killed.
pub(super) fn acquire_lock(
    store: &StateStore,
) -> Result<(crate::state::ApplyLock, LockHolder), CommandError> {
    let holder = LockHolder {
        run_id: new_run_id(),
        pid: std::process::id(),
        hostname: hostname(),
        os_user: os_user(),
        started_at: now(),
    };
    let (lock, stale) = store.acquire_apply_lock(&holder)?;
    if let Some(stale) = stale {
        eprintln!(
            "warning: took over the apply lock of run {} (pid {} on {} ended without releasing it); that run is marked interrupted",
            stale.run_id, stale.pid, stale.hostname
        );
    }
    Ok((lock, holder))
}

pub async fn run(args: &ApplyArgs, state: &Path) -> Result<Outcome, CommandError> {
    let store = StateStore::open(state)?;
    let (lock, holder) = acquire_lock(&store)?;
    let result = plan_and_execute(args, &store, &holder).await;
    if let Err(e) = store.release_apply_lock(lock) {
        eprintln!("warning: could not release the apply lock: {e}");
    }
    result
}

/// A saved plan is a JSON document with a `format_version`; an inventory is a directory or YAML.
fn is_saved_plan(path: &Path) -> bool {
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    path.is_file()
        && !yaml
        && std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|value| value.get("format_version").is_some())
}

async fn plan_and_execute(
    args: &ApplyArgs,
    store: &StateStore,
    holder: &LockHolder,
) -> Result<Outcome, CommandError> {
    let saved = is_saved_plan(&args.path);
    let (plan, hosts) = if saved {
        if args.prune {
            return Err(CommandError::with_hint(
                "--prune cannot change a saved plan: it applies exactly what it says",
                "make the plan with pruning: `ceso plan DIR --prune --out FILE`",
            ));
        }
        let mut plan = read_saved_plan(&args.path)?;
        refuse_reapplied(&plan, store)?;
        for step in &mut plan.steps {
            match &mut step.op {
                HostOp::WaitForGuestIp { timeout_secs, .. } => {
                    *timeout_secs = args.guest_ip_timeout
                }
                HostOp::ShutdownVm { force, .. } => *force |= args.force_power_off,
                _ => {}
            }
        }
        let hosts = connect(&plan.hosts).await?;
        (plan, hosts)
    } else {
        let options = PlanOptions {
            prune: args.prune,
            recorded_addresses: store.recorded_holdings()?,
            guest_ip_timeout_secs: args.guest_ip_timeout,
            force_power_off: args.force_power_off,
            ..PlanOptions::default()
        };
        let (mut plan, hosts) = make_plan(&args.path, &options).await?;
        if let Some(address) = &args.only {
            let others = plan.restrict_to(address);
            if others > 0 {
                eprintln!(
                    "note: {others} other resource(s) of the inventory have pending changes; they are not applied now (`ceso plan {}` shows them)",
                    args.path.display()
                );
            }
        }
        if let Some(restored) = &args.restore_disks {
            restored.patch(&mut plan)?;
        }
        (plan, hosts)
    };
    let result = review_and_run(saved, &plan, &hosts, args, store, holder).await;
    disconnect(&hosts).await;
    result
}

/// Everything between having a plan and the end of the run, with the hosts connected.
async fn review_and_run(
    saved: bool,
    plan: &Plan,
    hosts: &Hosts,
    args: &ApplyArgs,
    store: &StateStore,
    holder: &LockHolder,
) -> Result<Outcome, CommandError> {
    if saved {
        check_saved_plan(plan, hosts).await?;
    }
    print_plan(plan, false);
    if has_errors(&plan.diagnostics) {
        return Err(CommandError::new(
            "the plan has errors (see above); nothing was changed",
        ));
    }
    refuse_creates_in_flight(plan, store)?;
    if !plan.has_changes() {
        return Ok(Outcome::Success);
    }
    if !saved {
        confirm(args.auto_approve)?;
    }
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!(
            "\ninterrupted: letting running steps finish (each waits for its host task), starting no new ones\n  except powering back on VMs that were powered off for a change. Further Ctrl-C is ignored;\n  killing ceso loses nothing either: the next apply continues."
        );
    };
    let source = args.path.display().to_string();
    run_steps(plan, hosts, args, store, holder, &source, stop).await
}

/// A saved plan is applied once: after that, the hosts are no longer what it was made against.
fn refuse_reapplied(plan: &Plan, store: &StateStore) -> Result<(), CommandError> {
    match store
        .runs()?
        .into_iter()
        .find(|run| run.plan_id == plan.plan_id)
    {
        Some(run) => Err(CommandError::with_hint(
            format!(
                "plan {} was already applied in run {} ({})",
                plan.plan_id, run.run_id, run.status
            ),
            "make a new plan: `ceso plan DIR --out FILE`",
        )),
        None => Ok(()),
    }
}

/// Refuses to create a VM that an interrupted run was still creating when it died, while the
/// host may still be finishing that task: creating it again could make a second VM.
pub(super) fn refuse_creates_in_flight(
    plan: &Plan,
    store: &StateStore,
) -> Result<(), CommandError> {
    let horizon =
        jiff::Timestamp::now() - jiff::SignedDuration::try_from(TASK_TIMEOUT).unwrap_or_default();
    let recent = |at: &str| at.parse::<jiff::Timestamp>().is_ok_and(|t| t > horizon);
    for run in store.runs()? {
        if matches!(run.status, RunStatus::Succeeded | RunStatus::Failed) {
            continue;
        }
        let (_, events) = store.run(&run.run_id)?;
        for started in events
            .iter()
            .filter(|e| matches!(e.event, StepEvent::Started))
        {
            let finished = events
                .iter()
                .any(|e| e.step == started.step && !matches!(e.event, StepEvent::Started));
            let creates = plan.steps.iter().any(|step| {
                matches!(step.op, HostOp::CreateVm { .. })
                    && step.resource == started.resource
                    && step.host == started.host
            });
            if !finished
                && recent(&started.at)
                && started.description.starts_with(CREATE_VM)
                && creates
            {
                return Err(CommandError::with_hint(
                    format!(
                        "run {} was interrupted at {} while creating {} on host {}: the host may still be creating it, so nothing was changed",
                        run.run_id, started.at, started.resource, started.host
                    ),
                    format!(
                        "wait until that task has ended (Recent Tasks in the host client), then plan again; after {} minutes this check no longer applies",
                        TASK_TIMEOUT.as_secs() / 60
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn read_saved_plan(path: &Path) -> Result<Plan, CommandError> {
    // A saved plan names the hosts ceso logs in to: one another account could have written
    // could send the caller's passwords to an address of its choosing.
    crate::secret::check_written_by_caller(path)
        .map_err(|e| CommandError::with_hint(e.to_string(), e.hint()))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CommandError::new(format!("cannot read plan file {}: {e}", path.display())))?;
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format_version").and_then(|v| v.as_u64()));
    if version != Some(u64::from(PLAN_FORMAT_VERSION)) {
        let found = version.map_or("no format version".to_owned(), |v| {
            format!("format version {v}")
        });
        return Err(CommandError::with_hint(
            format!(
                "{} has {found}; this ceso applies plans of format version {PLAN_FORMAT_VERSION}",
                path.display()
            ),
            "make the plan with this version of ceso: `ceso plan DIR --out FILE`",
        ));
    }
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| CommandError::new(format!("plan file {} is damaged: {e}", path.display())))?;
    if has_errors(&plan.diagnostics) {
        return Err(CommandError::new(format!(
            "plan file {} has errors; it cannot be applied",
            path.display()
        )));
    }
    let problems = structure_problems(&plan);
    if !problems.is_empty() {
        return Err(CommandError::with_hint(
            format!(
                "plan file {} is malformed; nothing was changed:\n  - {}",
                path.display(),
                problems.join("\n  - ")
            ),
            "plan files are written by `ceso plan DIR --out FILE` and must not be edited",
        ));
    }
    Ok(plan)
}

async fn check_saved_plan(plan: &Plan, hosts: &Hosts) -> Result<(), CommandError> {
    // The firewall is read for the hosts whose manifests declared `spec.access`.
    let firewalls = plan.firewall.keys().cloned().collect();
    let observed = observe(hosts, &firewalls).await?;
    let reasons = stale_reasons(plan, &observed);
    if reasons.is_empty() {
        return Ok(());
    }
    Err(CommandError::with_hint(
        format!(
            "the saved plan {} is stale: the hosts changed since it was made ({}):\n  - {}",
            plan.plan_id,
            plan.created_at,
            reasons.join("\n  - ")
        ),
        "nothing was changed; make and review a new plan with `ceso plan DIR --out FILE`",
    ))
}

fn confirm(auto_approve: bool) -> Result<(), CommandError> {
    if auto_approve {
        return Ok(());
    }
    match super::ask_yes(
        "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ",
    )? {
        Some(true) => Ok(()),
        Some(false) => Err(CommandError::new("apply cancelled; nothing was changed")),
        None => Err(CommandError::with_hint(
            "refusing to apply without confirmation: standard input is not a terminal",
            "review the plan and pass --auto-approve, or apply a saved plan (`ceso plan DIR --out FILE`, then `ceso apply FILE`)",
        )),
    }
}

/// Runs the plan's steps (the caller holds the lock and has the plan approved), recording the
/// run with `source` (what was applied, or why) in the audit log. `stop` resolving lets running
/// steps finish and starts no new ones.
pub(super) async fn run_steps(
    plan: &Plan,
    hosts: &Hosts,
    args: &ApplyArgs,
    store: &StateStore,
    holder: &LockHolder,
    source: &str,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Outcome, CommandError> {
    args.steps_ran.set(true);
    let mut run = RunRecord::running(holder, plan, source);
    store.save_run(&run)?;
    if !args.json_events {
        println!("\nApplying plan {} (run {}).", plan.plan_id, run.run_id);
    }
    let hook = AuditHook {
        store,
        run_id: &run.run_id,
        audit_failed: Cell::new(false),
        json_events: args.json_events,
        display: super::progress::StepDisplay::new(args.json_events),
    };
    let report = execute(plan, hosts, usize::from(args.parallelism), &hook, stop).await;
    run.finished_at = Some(now());
    run.steps_succeeded = report.succeeded();
    run.steps_failed = report.failed();
    run.steps_skipped = report.skipped();
    run.status = if report.is_success() {
        RunStatus::Succeeded
    } else if report.was_interrupted() {
        RunStatus::Interrupted
    } else {
        RunStatus::Failed
    };
    store.save_run(&run)?;
    args.run_id.replace(Some(run.run_id.clone()));
    if !args.json_events {
        println!(
            "\nApply {}: {} step(s) succeeded, {} failed, {} skipped. Audit: `ceso audit show {}`.",
            if report.is_success() {
                "complete"
            } else {
                "finished with errors"
            },
            run.steps_succeeded,
            run.steps_failed,
            run.steps_skipped,
            run.run_id
        );
    }
    if hook.audit_failed.get() {
        return Err(CommandError::new(
            "some audit records could not be written (see above)",
        ));
    }
    if report.is_success() {
        Ok(Outcome::Success)
    } else if report.was_interrupted() {
        Err(CommandError::with_hint(
            format!(
                "apply interrupted: {} step(s) succeeded, {} failed, {} not started",
                run.steps_succeeded, run.steps_failed, run.steps_skipped
            ),
            "run apply again when ready: it continues from where the hosts are now",
        ))
    } else {
        Err(CommandError::with_hint(
            format!(
                "{} step(s) failed, {} skipped",
                run.steps_failed, run.steps_skipped
            ),
            "fix the cause shown above and run apply again: it continues from where the hosts are now",
        ))
    }
}

/// Prints progress and writes every step event to the audit log.
struct AuditHook<'a> {
    store: &'a StateStore,
    run_id: &'a str,
    audit_failed: Cell<bool>,
    /// Print step events as JSON lines.
    json_events: bool,
    display: super::progress::StepDisplay,
}

impl AuditHook<'_> {
    fn record(&self, step: &Step, event: StepEvent) {
        let record = StepRecord {
            step: step.id,
            resource: step.resource.clone(),
            host: step.host.clone(),
            description: step.description.clone(),
            at: now(),
            event,
        };
        if let Err(e) = self.store.append_step(self.run_id, &record) {
            eprintln!("error: audit log: {e}");
            self.audit_failed.set(true);
        }
    }
}

impl AuditHook<'_> {
    /// Keeps the state file's IP allocations in step with what a successful step did to a VM.
    fn track_addresses(&self, step: &Step) {
        let vm = step
            .resource
            .strip_prefix("VirtualMachine/")
            .unwrap_or(&step.resource);
        let result = match &step.op {
            HostOp::CreateVm { spec } => spec.cloud_init.as_ref().map(|c| {
                self.store
                    .record_addresses(vm, &address_records(vm, step, c, self.run_id))
            }),
            HostOp::ReconfigureVm { spec, .. } => spec.cloud_init.as_ref().map(|c| {
                self.store
                    .record_addresses(vm, &address_records(vm, step, c, self.run_id))
            }),
            HostOp::DestroyVm { .. } => Some(self.store.release_addresses(vm)),
            _ => None,
        };
        if let Some(Err(e)) = result {
            eprintln!("error: state file: recording the IP addresses of {vm}: {e}");
            self.audit_failed.set(true);
        }
    }
}

/// The static addresses a cloud-init configuration gives a VM, as state records.
fn address_records(
    vm: &str,
    step: &Step,
    config: &CloudInitConfig,
    run_id: &str,
) -> Vec<AddressRecord> {
    config
        .interfaces
        .iter()
        .enumerate()
        .filter_map(|(nic, interface)| {
            let cidr = interface.address.as_ref()?;
            let net: ipnet::Ipv4Net = cidr.parse().ok()?;
            Some(AddressRecord {
                vm: vm.to_owned(),
                host: step.host.clone(),
                nic,
                address: net.addr(),
                cidr: cidr.clone(),
                pool: interface.pool.clone(),
                run_id: run_id.to_owned(),
            })
        })
        .collect()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl AuditHook<'_> {
    /// Prints one step event: a line of text, or a JSON line with `ceso watch --json`.
    fn print(&self, step: &Step, event: &str, text: String, detail: Option<(&str, String)>) {
        if self.json_events {
            let mut line = serde_json::json!({
                "at": now(),
                "event": event,
                "run_id": self.run_id,
                "step": step.id,
                "resource": step.resource,
                "description": step.description,
            });
            if let Some((key, value)) = detail {
                line[key] = serde_json::Value::String(value);
            }
            println!("{line}");
        } else if event == "step_started" {
            self.display.started(
                step.id,
                format!("{}: {}", step.resource, step.description),
                &text,
            );
        } else {
            self.display.ended(step.id, &text);
        }
    }
}

impl ApplyHook for AuditHook<'_> {
    fn step_started(&self, step: &Step) {
        self.print(
            step,
            "step_started",
            format!("{}: {}...", step.resource, step.description),
            None,
        );
        self.record(step, StepEvent::Started);
    }

    fn step_succeeded(&self, step: &Step, duration: Duration) {
        self.print(
            step,
            "step_succeeded",
            format!(
                "{}: {} done ({:.1}s)",
                step.resource,
                step.description,
                duration.as_secs_f64()
            ),
            Some(("seconds", format!("{:.1}", duration.as_secs_f64()))),
        );
        self.record(
            step,
            StepEvent::Succeeded {
                duration_ms: millis(duration),
            },
        );
        self.track_addresses(step);
    }

    fn step_failed(&self, step: &Step, duration: Duration, error: &str) {
        self.print(
            step,
            "step_failed",
            format!("{}: {} FAILED: {error}", step.resource, step.description),
            Some(("error", error.to_owned())),
        );
        self.record(
            step,
            StepEvent::Failed {
                duration_ms: millis(duration),
                fault: error.to_owned(),
            },
        );
    }

    fn step_skipped(&self, step: &Step, reason: &str) {
        self.print(
            step,
            "step_skipped",
            format!("{}: {} skipped: {reason}", step.resource, step.description),
            Some(("reason", reason.to_owned())),
        );
        self.record(
            step,
            StepEvent::Skipped {
                reason: reason.to_owned(),
            },
        );
    }
}

/// An operation made outside a plan (a template import), recorded in the audit log as a run of
/// one step, so that every change ceso makes to a host is audited.
pub(super) struct AuditedOperation<'a> {
    store: &'a StateStore,
    run: RunRecord,
    change: ResourceChange,
    description: String,
}

impl<'a> AuditedOperation<'a> {
    /// Records the run as started.
    pub(super) fn start(
        store: &'a StateStore,
        source: String,
        change: ResourceChange,
        description: String,
    ) -> Result<Self, CommandError> {
        let run_id = new_run_id();
        let run = RunRecord {
            plan_id: format!("{}-{run_id}", change.address),
            run_id,
            started_at: now(),
            finished_at: None,
            status: RunStatus::Running,
            os_user: os_user(),
            hostname: hostname(),
            pid: std::process::id(),
            source,
            steps_total: 1,
            steps_succeeded: 0,
            steps_failed: 0,
            steps_skipped: 0,
            changes: vec![change.clone()],
        };
        store.save_run(&run)?;
        let operation = Self {
            store,
            run,
            change,
            description,
        };
        operation.record(StepEvent::Started)?;
        Ok(operation)
    }

    fn record(&self, event: StepEvent) -> Result<(), CommandError> {
        let record = StepRecord {
            step: 0,
            resource: self.change.address.clone(),
            host: self.change.host.clone(),
            description: self.description.clone(),
            at: now(),
            event,
        };
        Ok(self.store.append_step(&self.run.run_id, &record)?)
    }

    /// Records how it ended (`Err` holds the fault).
    pub(super) fn finish(
        mut self,
        outcome: Result<(), String>,
        duration: Duration,
    ) -> Result<(), CommandError> {
        let duration_ms = millis(duration);
        let (event, status) = match outcome {
            Ok(()) => {
                self.run.steps_succeeded = 1;
                (StepEvent::Succeeded { duration_ms }, RunStatus::Succeeded)
            }
            Err(fault) => {
                self.run.steps_failed = 1;
                (StepEvent::Failed { duration_ms, fault }, RunStatus::Failed)
            }
        };
        self.record(event)?;
        self.run.status = status;
        self.run.finished_at = Some(now());
        Ok(self.store.save_run(&self.run)?)
    }
}

/// Current time, RFC 3339 with milliseconds (fixed width, so it sorts as text).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A run id that sorts by time: `20261127T093000.123Z-1a2b3c`.
pub(super) fn new_run_id() -> String {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S%.3fZ")
        .to_string();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{stamp}-{}", &random[..6])
}

/// The OS user running ceso: `$USER`, else the name of the process's uid in `/etc/passwd`.
fn os_user() -> String {
    if let Ok(user) = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        return user;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_owned))
        });
    let Some(uid) = uid else {
        return "unknown".to_owned();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_owned())
            })
        })
        .unwrap_or(format!("uid {uid}"))
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}
