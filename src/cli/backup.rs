//! `ceso backup ...`: take a backup now, list the catalog, verify, prune by retention, and
//! restore in place or as a new VM.

use std::collections::{BTreeMap, BTreeSet};

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::HumanBytes;

use super::apply::{AuditedOperation, RestoredDisks, acquire_lock};
use super::connect::{Hosts, connect, disconnect, load_inventory};
use super::progress::TransferDisplay;
use super::vm::{NewVmArgs, write_and_apply};
use super::{CommandError, Outcome, known};
use crate::backup::datastore::DatastoreTarget;
use crate::backup::directory::DirectoryTarget;
use crate::backup::engine::{self, BackupRequest, ShutdownPolicy};
use crate::backup::policy::TargetSpec;
use crate::backup::record::BackupRecord;
use crate::backup::target::{BackupTarget, Listed};
use crate::backup::{Target, error::BackupError};
use crate::desired::DesiredState;
use crate::manifest::{
    API_VERSION, CloudInitSpec, DiskSpec, Document, Inventory, Metadata, NetworkSpec, Power, Size,
    VirtualMachineSpec,
};
use crate::plan::{Action, DEFAULT_GUEST_IP_TIMEOUT_SECS, ResourceChange};
use crate::state::StateStore;

/// `ceso backup ...`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up a VM now, under its policy (or `--policy`), with a progress bar.
    Create(CreateArgs),
    /// The backups in the catalog (read again from the targets when the state file has never
    /// seen them, or with `--rescan`).
    List(ListArgs),
    /// Re-read and re-hash every file of a backup.
    Verify(VerifyArgs),
    /// Delete the backups retention no longer keeps, and what no backup uses any more.
    Prune(PruneArgs),
    /// Take every backup that is due under its policy's schedule (what `ceso plan` lists as
    /// due); for cron or a systemd timer.
    Run(RunArgs),
    /// Restore a backup over its VM (power off, replace disks and settings, power back as it
    /// was), or with `--as-new NAME` as a new VM with a new identity.
    Restore(RestoreArgs),
}

/// Arguments of `ceso backup create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The VM (its manifest name).
    pub vm: String,
    /// The policy whose target and quiescing to use (default: the VM's `backupPolicy`).
    #[arg(long)]
    pub policy: Option<String>,
    /// The inventory directory.
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
}

/// Arguments of `ceso backup list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this VM's backups.
    pub vm: Option<String>,
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
    /// Read every target again instead of trusting the catalog.
    #[arg(long)]
    pub rescan: bool,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ceso backup verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup id (`ceso backup list` shows them).
    pub id: String,
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
}

/// Arguments of `ceso backup prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
    /// Only show what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `ceso backup run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
    /// Only show which backups are due.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `ceso backup restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup id (`ceso backup list` shows them).
    pub id: String,
    /// Restore as a new VM of this name (its manifest is written to the inventory) instead of
    /// over the original.
    #[arg(long, value_name = "NAME")]
    pub as_new: Option<String>,
    /// With --as-new: the new VM's address, `auto` (from --pool) or a static one with prefix
    /// length. Default: a new address from the original's pool, or DHCP.
    #[arg(long, requires = "as_new")]
    pub ip: Option<String>,
    /// With --as-new: the IpPool for `--ip auto` (given alone, it implies `--ip auto`).
    #[arg(long, requires = "as_new")]
    pub pool: Option<String>,
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
    /// Restore without asking (needed without a terminal).
    #[arg(long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// Power the VM off hard if its guest cannot be shut down through VMware Tools.
    #[arg(long)]
    pub force_power_off: bool,
    /// With --as-new: how long to wait for the guest to report its IP address.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_GUEST_IP_TIMEOUT_SECS)]
    pub guest_ip_timeout: u64,
}

/// Runs a `ceso backup` command.
pub async fn run(command: BackupCommand, state: &Path) -> Result<Outcome, CommandError> {
    match command {
        BackupCommand::Create(args) => create(args, state).await,
        BackupCommand::List(args) => list(args, state).await,
        BackupCommand::Verify(args) => verify(args, state).await,
        BackupCommand::Prune(args) => prune(args, state).await,
        BackupCommand::Run(args) => run_due(args, state).await,
        BackupCommand::Restore(args) => restore(args, state).await,
    }
}

/// A target the inventory's policies name: a directory, or a datastore folder on one host.
#[derive(Debug, Clone)]
struct TargetEntry {
    spec: TargetSpec,
    /// The host of a datastore target.
    host: Option<String>,
}

impl TargetEntry {
    fn key(&self) -> String {
        match (&self.spec, &self.host) {
            (TargetSpec::Directory { path }, _) => DirectoryTarget::key_for(path),
            (TargetSpec::Datastore { datastore, folder }, host) => {
                DatastoreTarget::new(host.as_deref().unwrap_or_default(), datastore, folder)
                    .key()
                    .to_owned()
            }
        }
    }

    fn open(&self) -> Result<Target, CommandError> {
        match (&self.spec, &self.host) {
            (TargetSpec::Directory { path }, _) => DirectoryTarget::open(path)
                .map(Target::Directory)
                .map_err(|e| backup_error(e, None)),
            (TargetSpec::Datastore { datastore, folder }, host) => Ok(Target::Datastore(
                DatastoreTarget::new(host.as_deref().unwrap_or_default(), datastore, folder),
            )),
        }
    }
}

/// The inventory, resolved, and the targets its policies name.
pub(super) struct Setup {
    inventory: Inventory,
    desired: DesiredState,
    /// By target key.
    targets: BTreeMap<String, TargetEntry>,
}

impl Setup {
    fn load(path: &Path) -> Result<Self, CommandError> {
        Ok(Setup::of(load_inventory(path)?))
    }

    /// The targets of an inventory already loaded.
    pub(super) fn of(inventory: Inventory) -> Self {
        let desired = DesiredState::from_inventory(&inventory);
        let mut targets = BTreeMap::new();
        for (name, policy) in &desired.backup_policies {
            let hosts: BTreeSet<&String> = desired
                .vms
                .values()
                .filter(|vm| vm.backup_policy.as_deref() == Some(name.as_str()))
                .map(|vm| &vm.host)
                .collect();
            match &policy.target {
                TargetSpec::Directory { .. } => {
                    let entry = TargetEntry {
                        spec: policy.target.clone(),
                        host: None,
                    };
                    targets.insert(entry.key(), entry);
                }
                TargetSpec::Datastore { .. } => {
                    for host in hosts {
                        let entry = TargetEntry {
                            spec: policy.target.clone(),
                            host: Some(host.clone()),
                        };
                        targets.insert(entry.key(), entry);
                    }
                }
            }
        }
        Setup {
            inventory,
            desired,
            targets,
        }
    }

    /// The catalog of every target `hosts` give access to (directory targets always,
    /// datastore targets of connected hosts), read again where the state file has not.
    pub(super) async fn catalog(
        &self,
        store: &StateStore,
        hosts: &Hosts,
    ) -> Result<Vec<BackupRecord>, CommandError> {
        let reachable: BTreeMap<String, TargetEntry> = self
            .targets
            .iter()
            .filter(|(_, e)| e.host.as_ref().is_none_or(|h| hosts.contains_key(h)))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        refresh_catalog(&reachable, store, hosts, false).await
    }

    /// The inventory.
    pub(super) fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The resolved inventory.
    pub(super) fn desired(&self) -> &DesiredState {
        &self.desired
    }

    /// The target of `policy` for a VM on `host`.
    fn target_for(&self, policy: &str, host: &str) -> Result<TargetEntry, CommandError> {
        let policy = self.desired.backup_policies.get(policy).ok_or_else(|| {
            CommandError::with_hint(
                format!("no BackupPolicy named {policy:?} in the inventory"),
                known("policies", self.desired.backup_policies.keys()),
            )
        })?;
        Ok(TargetEntry {
            spec: policy.target.clone(),
            host: matches!(policy.target, TargetSpec::Datastore { .. }).then(|| host.to_owned()),
        })
    }

    async fn connect(&self, names: &BTreeSet<String>) -> Result<Hosts, CommandError> {
        let connections = names
            .iter()
            .filter_map(|name| {
                self.desired
                    .hosts
                    .get(name)
                    .map(|h| (name.clone(), h.connection.clone()))
            })
            .collect();
        connect(&connections).await
    }
}

fn backup_error(error: BackupError, subject: Option<&str>) -> CommandError {
    let message = match subject {
        Some(s) => format!("{s}: {error}"),
        None => error.to_string(),
    };
    match error {
        BackupError::Refused { message, hint } => CommandError::with_hint(message, hint),
        _ => CommandError::new(message),
    }
}

fn host_of<'a>(hosts: &'a Hosts, name: &str) -> Result<&'a crate::esxi::EsxiClient, CommandError> {
    hosts
        .get(name)
        .ok_or_else(|| CommandError::new(format!("host {name:?} is not connected")))
}

/// Reads into the catalog every target it has not seen (all with `rescan`), then returns the
/// catalog. Incomplete backups found are reported on stderr.
async fn refresh_catalog(
    targets: &BTreeMap<String, TargetEntry>,
    store: &StateStore,
    hosts: &Hosts,
    rescan: bool,
) -> Result<Vec<BackupRecord>, CommandError> {
    for (key, entry) in targets {
        if !rescan && store.target_was_scanned(key)? {
            continue;
        }
        let listed = match (&entry.spec, &entry.host) {
            (TargetSpec::Directory { path }, _) => {
                if !path.exists() {
                    Vec::new()
                } else {
                    let target = DirectoryTarget::open(path).map_err(|e| backup_error(e, None))?;
                    target
                        .list_local()
                        .await
                        .map_err(|e| backup_error(e, None))?
                }
            }
            (TargetSpec::Datastore { .. }, Some(host)) => {
                let Some(client) = hosts.get(host) else {
                    continue;
                };
                entry
                    .open()?
                    .list(client)
                    .await
                    .map_err(|e| backup_error(e, None))?
            }
            (TargetSpec::Datastore { .. }, None) => continue,
        };
        let mut complete = Vec::new();
        for item in listed {
            match item {
                Listed::Complete(record) => complete.push(*record),
                Listed::Incomplete { id, reason } => {
                    eprintln!(
                        "note: {key}: {id} is not a usable backup ({reason}); `ceso backup prune` removes it"
                    );
                }
            }
        }
        store.replace_target_backups(key, &complete, &super::apply::now())?;
    }
    Ok(store.backups()?)
}

/// Hosts whose datastore targets the catalog has not read yet (all of them with `rescan`).
fn hosts_to_scan(
    setup: &Setup,
    store: &StateStore,
    rescan: bool,
) -> Result<BTreeSet<String>, CommandError> {
    let mut names = BTreeSet::new();
    for (key, entry) in &setup.targets {
        if let Some(host) = &entry.host
            && (rescan || !store.target_was_scanned(key)?)
        {
            names.insert(host.clone());
        }
    }
    Ok(names)
}

/// The record of backup `id`, from the catalog.
fn find_backup<'a>(
    records: &'a [BackupRecord],
    id: &str,
) -> Result<&'a BackupRecord, CommandError> {
    records.iter().find(|r| r.id == id).ok_or_else(|| {
        CommandError::with_hint(
            format!("no backup {id:?} in the catalog"),
            "`ceso backup list` shows the backups; `--rescan` reads the targets again",
        )
    })
}

/// The target entry a record lives on.
fn entry_of(setup: &Setup, record: &BackupRecord) -> Result<TargetEntry, CommandError> {
    setup.targets.get(&record.target).cloned().ok_or_else(|| {
        CommandError::with_hint(
            format!(
                "backup {} is on {}, which no BackupPolicy of the inventory names any more",
                record.id, record.target
            ),
            "declare a policy with that target again to reach it",
        )
    })
}

/// `ceso backup create`
async fn create(args: CreateArgs, state: &Path) -> Result<Outcome, CommandError> {
    let setup = Setup::load(&args.inventory)?;
    let Some(vm) = setup.desired.vms.get(&args.vm) else {
        return Err(CommandError::with_hint(
            format!(
                "VM {:?} is not declared in {}",
                args.vm,
                args.inventory.display()
            ),
            known("VMs", setup.desired.vms.keys()),
        ));
    };
    let policy_name = match args.policy.clone().or_else(|| vm.backup_policy.clone()) {
        Some(p) => p,
        None => {
            return Err(CommandError::with_hint(
                format!("VM {:?} has no backup policy", args.vm),
                "add `backupPolicy: NAME` to its manifest, or pass --policy NAME",
            ));
        }
    };
    setup.target_for(&policy_name, &vm.host)?;
    let store = StateStore::open(state)?;
    let (lock, _) = acquire_lock(&store)?;
    let result = match setup.connect(&BTreeSet::from([vm.host.clone()])).await {
        Ok(hosts) => {
            let result = back_up(
                &setup,
                &store,
                &hosts,
                &args.vm,
                &policy_name,
                super::interrupted(),
                false,
            )
            .await
            .map(|_| Outcome::Success);
            disconnect(&hosts).await;
            result
        }
        Err(e) => Err(e),
    };
    if let Err(e) = store.release_apply_lock(lock) {
        eprintln!("warning: could not release the apply lock: {e}");
    }
    result
}

/// `ceso backup run`
async fn run_due(args: RunArgs, state: &Path) -> Result<Outcome, CommandError> {
    let setup = Setup::load(&args.inventory)?;
    let store = StateStore::open(state)?;
    let lock = if args.dry_run {
        None
    } else {
        Some(acquire_lock(&store)?.0)
    };
    let needed: BTreeSet<String> = setup
        .desired
        .vms
        .values()
        .filter(|vm| vm.backup_policy.is_some())
        .map(|vm| vm.host.clone())
        .collect();
    let hosts = setup.connect(&needed).await?;
    let result = async {
        let catalog = refresh_catalog(&setup.targets, &store, &hosts, false).await?;
        let outlook =
            crate::plan::backups::outlook(&setup.desired, &catalog, jiff::Timestamp::now());
        if outlook.due.is_empty() {
            println!("No backup is due.");
        }
        let mut failed = Vec::new();
        for due in &outlook.due {
            if args.dry_run {
                println!("would back up {} (policy {})", due.vm, due.policy);
                continue;
            }
            if let Err(e) = back_up(
                &setup,
                &store,
                &hosts,
                &due.vm,
                &due.policy,
                super::interrupted(),
                false,
            )
            .await
            {
                report(&e);
                failed.push(due.vm.clone());
            }
        }
        if !failed.is_empty() {
            return Err(CommandError::with_hint(
                format!("the backups of {} failed", failed.join(", ")),
                "the next `ceso backup run` tries them again",
            ));
        }
        Ok(Outcome::Success)
    }
    .await;
    disconnect(&hosts).await;
    if let Some(lock) = lock
        && let Err(e) = store.release_apply_lock(lock)
    {
        eprintln!("warning: could not release the apply lock: {e}");
    }
    result
}

/// Prints a command error without stopping (one VM's failure does not stop the others).
pub(super) fn report(error: &CommandError) {
    match error {
        CommandError::Failed { message, hint } => {
            eprintln!("error: {message}");
            if let Some(hint) = hint {
                eprintln!("  hint: {hint}");
            }
        }
        CommandError::Diagnostics(diagnostics) => {
            for d in diagnostics {
                eprintln!("{d}");
            }
        }
    }
}

/// Backs up VM `vm` under `policy_name` (the caller holds the lock and the connection),
/// audited, recorded in the catalog, with progress and a summary (on standard error when
/// standard output carries JSON events).
pub(super) async fn back_up(
    setup: &Setup,
    store: &StateStore,
    hosts: &Hosts,
    vm_name: &str,
    policy_name: &str,
    stop: impl std::future::Future<Output = ()>,
    json_events: bool,
) -> Result<BackupRecord, CommandError> {
    let vm = setup.desired.vms.get(vm_name).ok_or_else(|| {
        CommandError::with_hint(
            format!("VM {vm_name:?} is not declared in the inventory"),
            known("VMs", setup.desired.vms.keys()),
        )
    })?;
    let entry = setup.target_for(policy_name, &vm.host)?;
    let policy = &setup.desired.backup_policies[policy_name];
    let client = host_of(hosts, &vm.host)?;
    let target = entry.open()?;
    let key = entry.key();
    let single = BTreeMap::from([(key.clone(), entry.clone())]);
    let catalog = refresh_catalog(&single, store, hosts, false).await?;
    let request = BackupRequest {
        vm: vm_name.to_owned(),
        host: vm.host.clone(),
        policy: Some(policy_name.to_owned()),
        quiesce: policy.quiesce,
        manifest: manifest_text(&setup.inventory, vm_name),
        taken_ids: catalog
            .iter()
            .filter(|r| r.target == key)
            .map(|r| r.id.clone())
            .collect(),
    };
    let audit = AuditedOperation::start(
        store,
        format!("backup create {vm_name}"),
        ResourceChange {
            address: format!("Backup/{vm_name}"),
            host: vm.host.clone(),
            name: vm_name.to_owned(),
            action: Action::Create,
            fields: vec![],
            power_cycle: false,
            undeclared: false,
            notes: vec![format!("back up to {key} (policy {policy_name})")],
        },
        format!("back up {vm_name}"),
    )?;
    eprintln!("Backing up {vm_name} to {key}");
    let started = Instant::now();
    let display = TransferDisplay::new("reading");
    let outcome =
        engine::create_backup(client, &target, &request, &|p| display.report(p), stop).await;
    display.finish();
    audit.finish(
        outcome.as_ref().map(|_| ()).map_err(ToString::to_string),
        started.elapsed(),
    )?;
    let outcome = outcome.map_err(|e| backup_error(e, None))?;
    for warning in &outcome.warnings {
        eprintln!("warning: {warning}");
    }
    store.save_backup(&outcome.record)?;
    let r = &outcome.record;
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    let print = |line: String| {
        if json_events {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    print(format!(
        "Backup {} of {} done: {} read, {} stored anew, in {:.1} s ({}/s){}.",
        r.id,
        r.vm,
        HumanBytes(r.bytes_read),
        HumanBytes(r.bytes_new),
        seconds,
        HumanBytes((r.bytes_read as f64 / seconds) as u64),
        if r.quiesced { ", quiesced" } else { "" }
    ));
    Ok(outcome.record)
}

/// The YAML of VM `name`'s manifest, as the inventory declares it.
fn manifest_text(inventory: &Inventory, name: &str) -> Option<String> {
    let vm = inventory.vms.get(name)?;
    let document = Document {
        api_version: API_VERSION.to_owned(),
        kind: "VirtualMachine".to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            labels: vm.labels.clone(),
        },
        spec: vm.spec.clone(),
    };
    serde_yaml::to_string(&document).ok()
}

/// `ceso backup list`
async fn list(args: ListArgs, state: &Path) -> Result<Outcome, CommandError> {
    let setup = Setup::load(&args.inventory)?;
    let store = StateStore::open(state)?;
    let needed = hosts_to_scan(&setup, &store, args.rescan)?;
    let hosts = setup.connect(&needed).await?;
    let catalog = refresh_catalog(&setup.targets, &store, &hosts, args.rescan).await;
    disconnect(&hosts).await;
    let mut records: Vec<BackupRecord> = catalog?
        .into_iter()
        .filter(|r| args.vm.as_ref().is_none_or(|vm| &r.vm == vm))
        .collect();
    records.sort_by(|a, b| (&a.vm, a.started).cmp(&(&b.vm, b.started)));
    if args.json {
        // The guest's cloud-init data stay in the backup (a restore needs them); the listing
        // does not show them.
        for record in &mut records {
            for (key, value) in record.config.extra_config.iter_mut() {
                if key.starts_with("guestinfo.") && !key.ends_with(".encoding") {
                    *value = format!("<{} bytes, not shown>", value.len());
                }
            }
        }
        let text =
            serde_json::to_string_pretty(&records).map_err(|e| CommandError::new(e.to_string()))?;
        println!("{text}");
        return Ok(Outcome::Success);
    }
    if records.is_empty() {
        println!("No backups.");
        return Ok(Outcome::Success);
    }
    println!(
        "{:<36} {:<16} {:<20} {:>10} {:>10} {:<10} TARGET",
        "ID", "VM", "TAKEN (UTC)", "SIZE", "NEW", "POLICY"
    );
    for r in &records {
        println!(
            "{:<36} {:<16} {:<20} {:>10} {:>10} {:<10} {}",
            r.id,
            r.vm,
            r.started.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            HumanBytes(r.bytes_read).to_string(),
            HumanBytes(r.bytes_new).to_string(),
            r.policy.as_deref().unwrap_or("-"),
            r.target
        );
    }
    Ok(Outcome::Success)
}

/// `ceso backup verify`
async fn verify(args: VerifyArgs, state: &Path) -> Result<Outcome, CommandError> {
    let setup = Setup::load(&args.inventory)?;
    let store = StateStore::open(state)?;
    let mut needed = hosts_to_scan(&setup, &store, false)?;
    let catalog_hint = store.backups()?;
    if let Some(r) = catalog_hint.iter().find(|r| r.id == args.id)
        && r.target.starts_with("datastore:")
    {
        needed.insert(r.host.clone());
    }
    let hosts = setup.connect(&needed).await?;
    let result = async {
        let catalog = refresh_catalog(&setup.targets, &store, &hosts, false).await?;
        let record = find_backup(&catalog, &args.id)?;
        let entry = entry_of(&setup, record)?;
        let target = entry.open()?;
        let display = TransferDisplay::new("verifying");
        let report = |p: crate::backup::target::TransferProgress<'_>| display.report(p);
        let problems = match &entry.host {
            Some(h) => target.verify(host_of(&hosts, h)?, record, &report).await,
            None => match target {
                Target::Directory(t) => t.verify_local(record, &report).await,
                Target::Datastore(_) => unreachable!("datastore targets have a host"),
            },
        };
        display.finish();
        let problems = problems.map_err(|e| backup_error(e, Some(&record.id)))?;
        let files = record.all_files().count();
        let bytes: u64 = record.all_files().map(|f| f.size).sum();
        if problems.is_empty() {
            println!(
                "Backup {} is intact: {files} files, {} re-read and re-hashed.",
                record.id,
                HumanBytes(bytes)
            );
            return Ok(Outcome::Success);
        }
        for p in &problems {
            eprintln!("  {p}");
        }
        Err(CommandError::with_hint(
            format!("backup {} is damaged: {} problem(s)", record.id, problems.len()),
            "do not restore from it; take a new backup, and `ceso backup prune` once it is no longer kept",
        ))
    }
    .await;
    disconnect(&hosts).await;
    result
}

/// `ceso backup prune`
async fn prune(args: PruneArgs, state: &Path) -> Result<Outcome, CommandError> {
    let setup = Setup::load(&args.inventory)?;
    let store = StateStore::open(state)?;
    let lock = if args.dry_run {
        None
    } else {
        Some(acquire_lock(&store)?.0)
    };
    let needed: BTreeSet<String> = setup
        .targets
        .values()
        .filter_map(|e| e.host.clone())
        .collect();
    let hosts = setup.connect(&needed).await?;
    let result = async {
        let catalog = refresh_catalog(&setup.targets, &store, &hosts, true).await?;
        for r in &catalog {
            if !r
                .policy
                .as_ref()
                .is_some_and(|p| setup.desired.backup_policies.contains_key(p))
            {
                eprintln!(
                    "note: keeping {}: its policy {} is not in the inventory",
                    r.id,
                    r.policy.as_deref().unwrap_or("(none)")
                );
            }
        }
        let outlook =
            crate::plan::backups::outlook(&setup.desired, &catalog, jiff::Timestamp::now());
        let doomed: Vec<&BackupRecord> = outlook
            .expiring
            .iter()
            .filter_map(|e| catalog.iter().find(|r| r.id == e.id))
            .collect();
        if doomed.is_empty() {
            println!("Retention keeps every backup.");
        }
        for r in &doomed {
            println!(
                "{} {} ({} of {}, taken {})",
                if args.dry_run {
                    "would delete"
                } else {
                    "deleting"
                },
                r.id,
                HumanBytes(r.bytes_read),
                r.vm,
                r.started.strftime("%Y-%m-%d %H:%M UTC")
            );
        }
        if args.dry_run {
            return Ok(Outcome::Success);
        }
        let mut failed = 0;
        for r in &doomed {
            let entry = entry_of(&setup, r)?;
            let target = entry.open()?;
            let audit = AuditedOperation::start(
                &store,
                "backup prune".to_owned(),
                ResourceChange {
                    address: format!("Backup/{}", r.id),
                    host: r.host.clone(),
                    name: r.vm.clone(),
                    action: Action::Delete,
                    fields: vec![],
                    power_cycle: false,
                    undeclared: false,
                    notes: vec![format!(
                        "retention of policy {}",
                        r.policy.as_deref().unwrap_or("-")
                    )],
                },
                format!("delete backup {}", r.id),
            )?;
            let started = Instant::now();
            let deleted = match (&target, &entry.host) {
                (Target::Directory(t), _) => t.delete_local(&r.id).await,
                (_, Some(h)) => target.delete(host_of(&hosts, h)?, &r.id).await,
                (Target::Datastore(_), None) => unreachable!("datastore targets have a host"),
            };
            audit.finish(
                deleted.as_ref().map(|_| ()).map_err(ToString::to_string),
                started.elapsed(),
            )?;
            match deleted {
                Ok(()) => store.remove_backup(&r.id)?,
                Err(e) => {
                    failed += 1;
                    eprintln!("error: deleting {}: {e}", r.id);
                }
            }
        }
        // Then what nothing uses any more, target by target.
        let remaining = store.backups()?;
        let mut freed = 0;
        for (key, entry) in &setup.targets {
            let live: Vec<BackupRecord> = remaining
                .iter()
                .filter(|r| &r.target == key)
                .cloned()
                .collect();
            let target = match (&entry.spec, entry.host.as_ref()) {
                (TargetSpec::Directory { path }, _) if !path.exists() => continue,
                _ => entry.open()?,
            };
            let result = match (&target, &entry.host) {
                (Target::Directory(t), _) => t.collect_garbage_local(&live).await,
                (_, Some(h)) => target.collect_garbage(host_of(&hosts, h)?, &live).await,
                (Target::Datastore(_), None) => continue,
            };
            freed += result.map_err(|e| backup_error(e, Some(key)))?;
        }
        println!(
            "Deleted {} backup(s); {} freed.",
            doomed.len() - failed,
            HumanBytes(freed)
        );
        if failed > 0 {
            return Err(CommandError::new(format!(
                "{failed} backup(s) could not be deleted"
            )));
        }
        Ok(Outcome::Success)
    }
    .await;
    disconnect(&hosts).await;
    if let Some(lock) = lock
        && let Err(e) = store.release_apply_lock(lock)
    {
        eprintln!("warning: could not release the apply lock: {e}");
    }
    result
}

/// `ceso backup restore`
async fn restore(args: RestoreArgs, state: &Path) -> Result<Outcome, CommandError> {
    let setup = Setup::load(&args.inventory)?;
    let store = StateStore::open(state)?;
    let needed = hosts_to_scan(&setup, &store, false)?;
    let hosts = setup.connect(&needed).await?;
    let catalog = refresh_catalog(&setup.targets, &store, &hosts, false).await;
    disconnect(&hosts).await;
    let catalog = catalog?;
    let record = find_backup(&catalog, &args.id)?.clone();
    let entry = entry_of(&setup, &record)?;
    match args.as_new.clone() {
        Some(name) => restore_as_new(&args, &setup, &record, &entry, &name, state).await,
        None => restore_in_place(&args, &setup, &record, &entry, &store).await,
    }
}

/// Asks on a terminal; without one, `--yes` is needed.
fn confirm(question: &str, yes: bool) -> Result<(), CommandError> {
    if yes {
        return Ok(());
    }
    match super::ask_yes(&format!("{question} Type yes to go on: "))? {
        Some(true) => Ok(()),
        Some(false) => Err(CommandError::new("not confirmed; nothing was changed")),
        None => Err(CommandError::with_hint(
            "not confirmed: there is no terminal to ask on",
            "pass --yes",
        )),
    }
}

async fn restore_in_place(
    args: &RestoreArgs,
    setup: &Setup,
    record: &BackupRecord,
    entry: &TargetEntry,
    store: &StateStore,
) -> Result<Outcome, CommandError> {
    if !setup.desired.hosts.contains_key(&record.host) {
        return Err(CommandError::with_hint(
            format!(
                "backup {} is of a VM on host {:?}, which the inventory does not declare",
                record.id, record.host
            ),
            "restore it --as-new NAME on a declared host",
        ));
    }
    let declared = setup.desired.vms.get(&record.vm);
    let shutdown = declared.map(|vm| vm.shutdown).unwrap_or_default();
    confirm(
        &format!(
            "Restore {} over VM {} (taken {})? Its disks and settings are replaced; a running VM is shut down and started again.",
            record.id,
            record.vm,
            record.started.strftime("%Y-%m-%d %H:%M UTC")
        ),
        args.yes,
    )?;
    let (lock, _) = acquire_lock(store)?;
    let hosts = setup
        .connect(&BTreeSet::from([record.host.clone()]))
        .await?;
    let result = async {
        let client = host_of(&hosts, &record.host)?;
        let target = entry.open()?;
        let audit = AuditedOperation::start(
            store,
            format!("backup restore {}", record.id),
            ResourceChange {
                address: format!("VirtualMachine/{}", record.vm),
                host: record.host.clone(),
                name: record.vm.clone(),
                action: Action::Update,
                fields: vec![],
                power_cycle: true,
                undeclared: declared.is_none(),
                notes: vec![format!("restore backup {} in place", record.id)],
            },
            format!("restore {} from {}", record.vm, record.id),
        )?;
        let started = Instant::now();
        let display = TransferDisplay::new("restoring");
        let outcome = engine::restore_in_place(
            client,
            &target,
            record,
            ShutdownPolicy {
                timeout_secs: shutdown.timeout_seconds,
                force: shutdown.force || args.force_power_off,
            },
            &|p| display.report(p),
        )
        .await;
        display.finish();
        audit.finish(
            outcome.as_ref().map(|_| ()).map_err(ToString::to_string),
            started.elapsed(),
        )?;
        let outcome = outcome.map_err(|e| backup_error(e, None))?;
        println!(
            "Restored {} from {}: {} disk(s) and its settings, in {:.1} s{}.",
            record.vm,
            record.id,
            outcome.disks_restored,
            started.elapsed().as_secs_f64(),
            if outcome.powered_on {
                "; powered back on"
            } else {
                ""
            }
        );
        Ok(Outcome::Success)
    }
    .await;
    disconnect(&hosts).await;
    if let Err(e) = store.release_apply_lock(lock) {
        eprintln!("warning: could not release the apply lock: {e}");
    }
    result
}

async fn restore_as_new(
    args: &RestoreArgs,
    setup: &Setup,
    record: &BackupRecord,
    entry: &TargetEntry,
    name: &str,
    state: &Path,
) -> Result<Outcome, CommandError> {
    if let Some(existing) = setup.inventory.vms.get(name) {
        return Err(CommandError::with_hint(
            format!(
                "VM {name:?} is already declared in {}",
                existing.file.display()
            ),
            "choose another name for the restored VM",
        ));
    }
    let Some(host) = setup.desired.hosts.get(&record.host) else {
        return Err(CommandError::with_hint(
            format!(
                "backup {} is of a VM on host {:?}, which the inventory does not declare",
                record.id, record.host
            ),
            "declare that host in the inventory",
        ));
    };
    let spec = restored_spec(record, args)?;
    let staging = format!("[{}] ceso-restore-{name}", host.datastore);
    let hosts = setup
        .connect(&BTreeSet::from([record.host.clone()]))
        .await?;
    let client = host_of(&hosts, &record.host)?;
    let target = entry.open()?;
    eprintln!("Placing the disks of {} on {}", record.id, record.host);
    let display = TransferDisplay::new("writing");
    let placed =
        engine::place_disks_for_new_vm(client, &target, record, &staging, &|p| display.report(p))
            .await;
    display.finish();
    let result = match placed {
        Ok(disks) => {
            let new_vm = NewVmArgs {
                power: spec.power,
                inventory: args.inventory.clone(),
                yes: args.yes,
                guest_ip_timeout: args.guest_ip_timeout,
            };
            let restored = RestoredDisks {
                backup: record.id.clone(),
                vm: name.to_owned(),
                disks,
                firmware: record.config.firmware,
            };
            write_and_apply(&new_vm, name, spec, state, Some(restored)).await
        }
        Err(e) => Err(backup_error(e, Some(&record.id))),
    };
    if let Target::Directory(_) = target
        && let Err(e) = crate::backup::BackupHost::delete_path(client, &staging).await
    {
        eprintln!("warning: could not remove the staging folder {staging}: {e}");
    }
    disconnect(&hosts).await;
    result
}

/// The manifest of a VM restored as new: the backed-up hardware and adapters, the original's
/// cloud-init settings without its host name, and a new address.
fn restored_spec(
    record: &BackupRecord,
    args: &RestoreArgs,
) -> Result<VirtualMachineSpec, CommandError> {
    let original: Option<VirtualMachineSpec> = record
        .manifest
        .as_deref()
        .and_then(|text| serde_yaml::from_str::<Document<VirtualMachineSpec>>(text).ok())
        .map(|d| d.spec);
    let mut networks: Vec<NetworkSpec> = match original.as_ref().and_then(|s| s.networks.clone()) {
        Some(n) => n,
        None => record
            .config
            .nics
            .iter()
            .map(|n| NetworkSpec {
                port_group: Some(n.port_group.clone()),
                ..NetworkSpec::default()
            })
            .collect(),
    };
    for (index, network) in networks.iter_mut().enumerate() {
        if index == 0 && (args.ip.is_some() || args.pool.is_some()) {
            network.ip = Some(args.ip.clone().unwrap_or_else(|| "auto".to_owned()));
            network.pool = args.pool.clone();
        } else {
            network.ip = network.pool.as_ref().map(|_| "auto".to_owned());
        }
    }
    let size = |bytes: u64| -> Result<Size, CommandError> {
        Size::format_bytes(bytes)
            .parse()
            .map_err(|e| CommandError::new(format!("size {bytes}: {e}")))
    };
    let disks = record
        .disks
        .iter()
        .map(|d| size(d.capacity_bytes.max(d.data.size)).map(|size| DiskSpec { size }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VirtualMachineSpec {
        host: record.host.clone(),
        template: None,
        source: None,
        cpu: Some(record.config.cpu),
        memory: Some(size(record.config.memory_mib * 1024 * 1024)?),
        disks,
        networks: Some(networks),
        power: if record.power == Some(crate::host::PowerState::PoweredOn) {
            Power::On
        } else {
            Power::Off
        },
        guest_id: Some(record.config.guest_id.clone()).filter(|g| !g.is_empty()),
        datastore: original.as_ref().and_then(|s| s.datastore.clone()),
        protect: false,
        suspend: false,
        cloud_init: original
            .as_ref()
            .and_then(|s| s.cloud_init.clone())
            .map(|c| CloudInitSpec {
                hostname: None,
                ..c
            }),
        annotation: Some(format!(
            "restored from backup {} of {}",
            record.id, record.vm
        )),
        shutdown: original.as_ref().and_then(|s| s.shutdown),
        backup_policy: None,
    })
}

/// The catalog for `ceso plan`: directory targets the state file has not read yet are read
/// (no host needed); a datastore target is read by `ceso backup list`. An inventory that does
/// not load gives an empty catalog (the plan reports the inventory's problems).
pub(super) async fn catalog_for_plan(
    inventory: &Path,
    state: &Path,
) -> Result<Vec<BackupRecord>, CommandError> {
    let Ok(setup) = Setup::load(inventory) else {
        return Ok(Vec::new());
    };
    if setup.targets.is_empty() {
        return Ok(Vec::new());
    }
    let store = StateStore::open(state)?;
    let local: BTreeMap<String, TargetEntry> = setup
        .targets
        .into_iter()
        .filter(|(_, e)| e.host.is_none())
        .collect();
    refresh_catalog(&local, &store, &Hosts::new(), false).await
}
