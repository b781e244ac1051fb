//! The planner: `(desired, observed) -> Plan`. Pure, synchronous and deterministic: no I/O,
//! no clock, no randomness (the plan id and time come in through [`PlanMeta`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::access::{AccessPlan, PlannedAccess, plan_access};
use super::addressing::{applied_settings, assign_addresses};
use super::fingerprint::host_fingerprints;
use super::model::{
    Action, FieldChange, ObservedFingerprints, PLAN_FORMAT_VERSION, Plan, ResourceChange, Step,
    Summary, SuspendedChange, UnmanagedVm,
};
use crate::cloudinit::{CloudInitConfig, METADATA_KEY};
use crate::desired::{DesiredState, DesiredTemplate, DesiredVm, Suspensions, VmSettings};
use crate::diagnostic::{Diagnostic, Severity};
use crate::host::{
    APPLIED_KEY, CLONE_SNAPSHOT_PREFIX, CREATING_KEY, CloneSource, DiskChange, HostOp, MANAGED_KEY,
    NicChange, ObservedHost, ObservedVm, POWER_KEY, PROTECT_KEY, PowerState, TEMPLATE_KEY,
    VmCreateSpec, VmReconfigSpec,
};
use crate::ipam::Holding;
use crate::manifest::{Power, ShutdownSpec, Size};

/// How a create step's description starts (`create VM web-01`).
pub const CREATE_VM: &str = "create VM";

/// The note on a VM the plan leaves alone because of an error about it.
const LEFT_ALONE: &str = "left as it is because of the errors in the plan";

/// The same note for a suspended VM (its errors are warnings).
const LEFT_ALONE_SUSPENDED: &str =
    "what would change is unknown because of the warnings in the plan";

/// What every host looks like now, by host name.
pub type ObservedState = BTreeMap<String, ObservedHost>;

/// How long apply waits, by default, for a new VM's guest to report its declared address.
pub const DEFAULT_GUEST_IP_TIMEOUT_SECS: u64 = 300;

/// Choices the operator makes on the command line, and what ceso remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Delete managed VMs that are missing from the manifests (`--prune`).
    pub prune: bool,
    /// Addresses recorded in the state file (kind `Recorded`), held besides those the hosts show.
    pub recorded_addresses: Vec<Holding>,
    /// How long to wait for a guest to report its address; 0 means the default
    /// ([`DEFAULT_GUEST_IP_TIMEOUT_SECS`]).
    pub guest_ip_timeout_secs: u64,
    /// `--force-power-off`: power VMs off hard where shutting the guest down does not work.
    pub force_power_off: bool,
    /// The complete backups in the catalog, for the backup outlook.
    pub backup_catalog: Vec<crate::backup::record::BackupRecord>,
    /// The time the backup outlook is made for; `None`: no outlook (e.g. for `apply`, which
    /// takes no backups).
    pub backups_at: Option<jiff::Timestamp>,
}

/// Identity of the plan being made, supplied by the caller so the planner stays pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanMeta {
    pub plan_id: String,
    pub created_at: String,
    pub ceso_version: String,
    pub inventory: Option<PathBuf>,
}

/// Computes the plan that takes `observed` to `desired`.
pub fn diff(
    desired: &DesiredState,
    observed: &ObservedState,
    options: &PlanOptions,
    meta: PlanMeta,
) -> Plan {
    let mut desired = desired.clone();
    let addressing = assign_addresses(&mut desired, observed, &options.recorded_addresses);
    let desired = &desired;
    let mut planner = Planner {
        failed_vms: addressing.failed_vms,
        diagnostics: addressing.diagnostics,
        templates: desired.templates.clone(),
        suspensions: desired.suspended.clone(),
        force_power_off: options.force_power_off,
        guest_ip_timeout_secs: match options.guest_ip_timeout_secs {
            0 => DEFAULT_GUEST_IP_TIMEOUT_SECS,
            secs => secs,
        },
        ..Planner::default()
    };
    for (host_name, host) in &desired.hosts {
        let vms: Vec<&DesiredVm> = desired
            .vms
            .values()
            .filter(|vm| &vm.host == host_name)
            .collect();
        let Some(observed_host) = observed.get(host_name) else {
            planner.host_not_observed(host_name, &vms);
            continue;
        };
        let prune = options.prune || host.prune;
        planner.plan_host(host_name, &vms, observed_host, prune);
        if let Some(allowed) = &host.allowed_networks {
            let access = plan_access(host_name, allowed, host.ssh.is_some(), observed_host);
            planner.add_access(host_name, access);
        }
    }
    let Planner {
        changes,
        suspended,
        steps,
        unmanaged,
        mut diagnostics,
        observed: fingerprints,
        firewall,
        ..
    } = planner;
    // What is wrong with a suspended resource blocks nothing, since nothing is done about it.
    let suspended_resources: BTreeSet<String> = suspended
        .iter()
        .map(|s| s.change.address.clone())
        .chain(
            desired
                .suspended
                .hosts
                .iter()
                .map(|host| format!("Host/{host}")),
        )
        .collect();
    for diagnostic in &mut diagnostics {
        if diagnostic.is_error()
            && diagnostic
                .resource
                .as_ref()
                .is_some_and(|resource| suspended_resources.contains(resource))
        {
            demote_for_suspension(diagnostic);
        }
    }
    diagnostics.sort_by(|a, b| a.resource.cmp(&b.resource));
    let summary = Summary::of_plan(&changes, &suspended);
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        plan_id: meta.plan_id,
        created_at: meta.created_at,
        ceso_version: meta.ceso_version,
        inventory: meta.inventory,
        hosts: desired
            .hosts
            .iter()
            .map(|(name, host)| (name.clone(), host.connection.clone()))
            .collect(),
        summary,
        changes,
        suspended,
        steps,
        unmanaged,
        diagnostics,
        observed: fingerprints,
        firewall,
        backups: options
            .backups_at
            .map(|now| super::backups::outlook(desired, &options.backup_catalog, now))
            .unwrap_or_default(),
    }
}

/// The datastore named in a `[datastore] dir/file.vmx` path.
pub fn datastore_of(vmx_path: &str) -> Option<&str> {
    let rest = vmx_path.strip_prefix('[')?;
    rest.find(']').map(|end| &rest[..end])
}

#[derive(Default)]
struct Planner {
    changes: Vec<ResourceChange>,
    /// What suspended resources would get (no steps).
    suspended: Vec<SuspendedChange>,
    steps: Vec<Step>,
    unmanaged: Vec<UnmanagedVm>,
    diagnostics: Vec<Diagnostic>,
    observed: ObservedFingerprints,
    /// VMs with address errors: left alone.
    failed_vms: BTreeSet<String>,
    templates: BTreeMap<String, DesiredTemplate>,
    /// What `suspend: true` pauses.
    suspensions: Suspensions,
    guest_ip_timeout_secs: u64,
    /// `--force-power-off`: a hard power-off is allowed wherever a shutdown does not work.
    force_power_off: bool,
    /// Steps so far, by the VM they act on.
    steps_by_vm: BTreeMap<String, Vec<usize>>,
    /// Clone creations so far, by the VM they copy: a source is worked on by one step at a time
    /// (a host refuses a second snapshot, and consolidation needs the disks a copy reads).
    clones_by_source: BTreeMap<String, Vec<usize>>,
    /// Snapshots left by interrupted clones, by VM.
    stray_notes: Vec<StrayNotes>,
    /// What the plan depends on of each host's firewall, for hosts that declare `spec.access`.
    firewall: BTreeMap<String, PlannedAccess>,
}

/// The snapshots an interrupted clone left on one VM, as notes for its change.
struct StrayNotes {
    /// The VM's manifest name (its name on the host when ceso does not manage it).
    name: String,
    host: String,
    unmanaged: bool,
    notes: Vec<String>,
    /// The resource whose `suspend: true` keeps the snapshots (no step removes them).
    suspended_by: Option<String>,
}

/// How much the plan held before a resource was planned: what planning it added can be taken
/// back when the resource turns out to be suspended.
#[derive(Clone, Copy)]
struct Checkpoint {
    steps: usize,
    changes: usize,
}

/// Where a new VM's disks come from, as found on its host.
enum DiskOrigin {
    /// Disk 0 is a copy of a template's disk.
    Template { path: String },
    /// Every disk is a copy of another VM's.
    Clone(CloneSource),
}

fn address(name: &str) -> String {
    format!("VirtualMachine/{name}")
}

fn power_word(power: Option<PowerState>) -> String {
    match power {
        Some(PowerState::PoweredOn) => "on",
        Some(PowerState::PoweredOff) | None => "off",
        Some(PowerState::Suspended) => "suspended",
    }
    .to_owned()
}

fn size(bytes: u64) -> String {
    Size::format_bytes(bytes)
}

impl Planner {
    fn plan_host(&mut self, host: &str, vms: &[&DesiredVm], observed: &ObservedHost, prune: bool) {
        let desired_names: BTreeSet<&str> = vms.iter().map(|vm| vm.name.as_str()).collect();
        // A suspended VM is not one the plan depends on (besides being managed): its change is
        // not among `changes`, which is where a saved plan's check finds the declared names.
        let depended_on: BTreeSet<&str> = vms
            .iter()
            .filter(|vm| !self.suspensions.contains(vm))
            .map(|vm| vm.name.as_str())
            .collect();
        let mut managed: BTreeMap<&str, Vec<&ObservedVm>> = BTreeMap::new();
        self.observed
            .insert(host.to_owned(), host_fingerprints(observed, &depended_on));
        for vm in &observed.vms {
            match vm.managed_name() {
                Some(name) => managed.entry(name).or_default().push(vm),
                None => self.unmanaged.push(UnmanagedVm {
                    host: host.to_owned(),
                    name: vm.name.clone(),
                    moref: vm.moref.clone(),
                    template: vm.extra_config.get(TEMPLATE_KEY).cloned(),
                }),
            }
        }
        // First, so that whatever else acts on those VMs comes after.
        for vm in &observed.vms {
            self.remove_stray_snapshots(host, vm);
        }
        for vm in vms {
            let checkpoint = self.checkpoint();
            self.plan_vm(host, vm, observed, &managed);
            if let Some(by) = self.suspensions.suspended_by(&vm.name, host) {
                self.suspend_since(checkpoint, by);
            }
        }
        for (name, claimed) in &managed {
            if desired_names.contains(name) {
                continue;
            }
            for vm in claimed {
                let checkpoint = self.checkpoint();
                self.orphan(host, name, vm, prune);
                if let Some(by) = self.suspensions.suspended_by(name, host) {
                    self.suspend_since(checkpoint, by);
                }
            }
        }
        self.note_stray_snapshots();
    }

    /// Plans one declared VM of `host`.
    fn plan_vm(
        &mut self,
        host: &str,
        vm: &DesiredVm,
        observed: &ObservedHost,
        managed: &BTreeMap<&str, Vec<&ObservedVm>>,
    ) {
        if self.failed_vms.contains(&vm.name) || !self.check_host_objects(vm, observed) {
            self.changes.push(left_alone(vm));
            return;
        }
        let claimed = managed
            .get(vm.name.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let resolved = match vm.config.source {
            Some(_) => self.resolve_source(vm, observed, claimed),
            None => self.resolve_template(vm, observed, claimed),
        };
        let Some((vm, origin)) = resolved else {
            self.changes.push(left_alone(vm));
            return;
        };
        let vm = &vm;
        match claimed {
            [] => {
                if let Some(other) = observed.vms.iter().find(|o| o.name == vm.name) {
                    let diagnostic = match other.managed_name() {
                        Some(owner) => Diagnostic::error(format!(
                            "a VM named {:?} already exists on host {host} ({}): it is ceso's VM {owner:?}, renamed on the host",
                            vm.name, other.moref
                        ))
                        .hint(format!("rename it back to {owner:?} in the host client, or choose another name")),
                        None => Diagnostic::error(format!(
                            "a VM named {:?} already exists on host {host} ({}) and was not created by ceso",
                            vm.name, other.moref
                        ))
                        .hint("ceso never takes over VMs it did not create: choose another name, or rename or remove the existing VM"),
                    };
                    self.diagnostics.push(
                        diagnostic
                            .resource(address(&vm.name))
                            .field("metadata.name"),
                    );
                    self.changes.push(left_alone(vm));
                } else {
                    self.create(vm, origin.as_ref());
                }
            }
            [existing] => self.update(vm, existing, origin.as_ref()),
            several => {
                let named: Vec<String> = several
                    .iter()
                    .map(|o| format!("{} ({})", o.name, o.moref))
                    .collect();
                self.diagnostics.push(
                    Diagnostic::error(format!(
                        "{} VMs on host {host} carry the ceso marker for {:?}: {}",
                        several.len(),
                        vm.name,
                        named.join(", ")
                    ))
                    .resource(address(&vm.name))
                    .hint("keep one: remove the others in the host client after checking which holds the data (a copy made by hand carries the marker too), then plan again"),
                );
                self.changes.push(left_alone(vm));
            }
        }
    }

    /// Adds the firewall's part of the plan of `host`: its change and ruleset updates (after
    /// every other step of the host, since the API ruleset is the one ceso itself goes
    /// through), or only what would be done when the host is suspended, or the change left
    /// alone when it cannot be made.
    fn add_access(&mut self, host: &str, access: AccessPlan) {
        let AccessPlan {
            change,
            steps,
            diagnostics,
            planned,
        } = access;
        if let Some(planned) = planned {
            self.firewall.insert(host.to_owned(), planned);
        }
        let refused = !diagnostics.is_empty();
        self.diagnostics.extend(diagnostics);
        let suspended_by = self
            .suspensions
            .hosts
            .contains(host)
            .then(|| format!("Host/{host}"));
        let Some(mut change) = change else {
            return;
        };
        if refused {
            let note = if suspended_by.is_some() {
                LEFT_ALONE_SUSPENDED
            } else {
                LEFT_ALONE
            };
            change.action = Action::NoOp;
            change.fields.clear();
            change.notes.push(note.to_owned());
        }
        if let Some(suspended_by) = suspended_by {
            self.suspended.push(SuspendedChange {
                suspended_by,
                change,
            });
            return;
        }
        if !refused {
            let mut earlier: Vec<usize> = self
                .steps
                .iter()
                .filter(|step| step.host == host)
                .map(|step| step.id)
                .collect();
            for (description, op) in steps {
                let id = self.steps.len();
                self.steps.push(Step {
                    id,
                    resource: change.address.clone(),
                    host: host.to_owned(),
                    description,
                    depends_on: vec![],
                    after: earlier.clone(),
                    compensating: false,
                    op,
                });
                earlier.push(id);
            }
        }
        self.changes.push(change);
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            steps: self.steps.len(),
            changes: self.changes.len(),
        }
    }

    /// Takes back the steps planned since `checkpoint` and moves the changes planned since then
    /// to the suspended ones: `by` pauses them.
    fn suspend_since(&mut self, checkpoint: Checkpoint, by: String) {
        self.steps.truncate(checkpoint.steps);
        for ids in self
            .steps_by_vm
            .values_mut()
            .chain(self.clones_by_source.values_mut())
        {
            ids.retain(|id| *id < checkpoint.steps);
        }
        let changes: Vec<ResourceChange> = self.changes.drain(checkpoint.changes..).collect();
        for mut change in changes {
            for note in &mut change.notes {
                if note == LEFT_ALONE {
                    *note = LEFT_ALONE_SUSPENDED.to_owned();
                }
            }
            if change.action == Action::Create
                && change.fields.iter().any(|f| f.field.ends_with(".ip"))
            {
                change.notes.push(
                    "no address is taken while it is suspended: the addresses shown are those it would get now".to_owned(),
                );
            }
            self.suspended.push(SuspendedChange {
                suspended_by: by.clone(),
                change,
            });
        }
    }

    /// A host that could not be observed: an error, unless it is suspended (then its VMs are
    /// listed as suspended, with nothing known about what would change).
    fn host_not_observed(&mut self, host: &str, vms: &[&DesiredVm]) {
        self.diagnostics.push(
            Diagnostic::error(format!("host {host} was not observed"))
                .resource(format!("Host/{host}")),
        );
        for vm in vms {
            if let Some(by) = self.suspensions.suspended_by(&vm.name, host) {
                let mut change = unchanged(vm);
                change.notes.push(format!(
                    "host {host} was not observed: what would change is unknown"
                ));
                self.suspended.push(SuspendedChange {
                    suspended_by: by,
                    change,
                });
            }
        }
    }

    /// Plans the removal of the snapshots ceso takes to clone a running VM that an interrupted
    /// run left behind (a VM must not keep running on a snapshot nobody wants).
    fn remove_stray_snapshots(&mut self, host: &str, vm: &ObservedVm) {
        let stray: Vec<_> = vm
            .snapshots
            .iter()
            .filter(|s| s.name.starts_with(CLONE_SNAPSHOT_PREFIX))
            .collect();
        if stray.is_empty() {
            return;
        }
        let name = vm.managed_name().unwrap_or(&vm.name).to_owned();
        let suspended_by = match vm.managed_name() {
            Some(managed) => self.suspensions.suspended_by(managed, host),
            None => self
                .suspensions
                .hosts
                .contains(host)
                .then(|| format!("Host/{host}")),
        };
        let mut notes = Vec::new();
        for snapshot in stray {
            if suspended_by.is_some() {
                notes.push(format!(
                    "the snapshot {:?} ({}) of {} was left by an interrupted clone: it would be removed",
                    snapshot.name, snapshot.moref, vm.name
                ));
                continue;
            }
            notes.push(format!(
                "the snapshot {:?} ({}) of {} was left by an interrupted clone: it is removed",
                snapshot.name, snapshot.moref, vm.name
            ));
            let op = HostOp::RemoveSnapshot {
                moref: Some(vm.moref.clone()),
                vm: vm.name.clone(),
                snapshot: snapshot.moref.clone(),
                name: snapshot.name.clone(),
            };
            let description = format!("remove snapshot {} of {}", snapshot.name, vm.name);
            self.push_step(&name, host, description, op, None);
        }
        self.stray_notes.push(StrayNotes {
            name,
            host: host.to_owned(),
            unmanaged: vm.managed_name().is_none(),
            notes,
            suspended_by,
        });
    }

    /// Adds the notes of the stray snapshots to the changes of their VMs (made afterwards).
    fn note_stray_snapshots(&mut self) {
        for stray in std::mem::take(&mut self.stray_notes) {
            let vm_address = address(&stray.name);
            let existing = self
                .changes
                .iter_mut()
                .chain(self.suspended.iter_mut().map(|s| &mut s.change))
                .find(|c| c.address == vm_address);
            match existing {
                Some(change) => {
                    if change.action == Action::NoOp {
                        change.action = Action::Update;
                    }
                    change.notes.extend(stray.notes);
                }
                None => {
                    let change = ResourceChange {
                        address: vm_address,
                        host: stray.host,
                        name: stray.name,
                        action: Action::Update,
                        fields: vec![],
                        power_cycle: false,
                        undeclared: stray.unmanaged,
                        notes: stray.notes,
                    };
                    match stray.suspended_by {
                        Some(suspended_by) => self.suspended.push(SuspendedChange {
                            suspended_by,
                            change,
                        }),
                        None => self.changes.push(change),
                    }
                }
            }
        }
    }

    /// Finds the template disk of a VM made from a template on its host, and sizes disk 0 when
    /// the manifests leave that to the template. `None` (with a diagnostic) when the VM needs the
    /// template disk (to be created) and it is missing or larger than disk 0.
    fn resolve_template(
        &mut self,
        vm: &DesiredVm,
        observed: &ObservedHost,
        claimed: &[&ObservedVm],
    ) -> Option<(DesiredVm, Option<DiskOrigin>)> {
        let mut vm = vm.clone();
        let Some(template) = vm
            .config
            .template
            .as_ref()
            .and_then(|name| self.templates.get(name))
        else {
            return Some((vm, None));
        };
        let found = observed
            .vms
            .iter()
            .flat_map(|o| &o.disks)
            .find(|disk| disk.file_name == template.disk)
            .map(|disk| (disk.file_name.clone(), disk.capacity_bytes));
        // A VM left half-made by an interrupted run needs the template again.
        let existing = claimed
            .iter()
            .copied()
            .find(|e| !e.extra_config.contains_key(CREATING_KEY));
        let Some(found) = found else {
            if let Some(existing) = existing {
                // The VM exists: its disk 0 no longer depends on the template.
                if vm.config.disks.first() == Some(&0) {
                    vm.config.disks[0] = existing.disks.first().map_or(0, |d| d.capacity_bytes);
                }
                return Some((vm, None));
            }
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "the disk {} of template {:?} is not on host {}",
                    template.disk, template.name, vm.host
                ))
                .resource(address(&vm.name))
                .field("spec.template")
                .hint(format!(
                    "import the image with `ceso template import FILE --name {} --host {}`, or correct `disk` in Template/{} (the disk must belong to a VM registered on the host)",
                    template.name, vm.host, template.name
                )),
            );
            return None;
        };
        let (path, capacity_bytes) = found;
        if vm.config.disks.first() == Some(&0) {
            vm.config.disks[0] = capacity_bytes;
        }
        let disk0 = vm.config.disks.first().copied().unwrap_or(0);
        if existing.is_none() && disk0 < capacity_bytes {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "disk 0 is declared {}, smaller than the {} disk of template {:?}: disks never shrink",
                    size(disk0),
                    size(capacity_bytes),
                    template.name
                ))
                .resource(address(&vm.name))
                .field("spec.disks[0].size")
                .hint(format!("declare at least {}", size(capacity_bytes))),
            );
            return None;
        }
        Some((vm, Some(DiskOrigin::Template { path })))
    }

    /// Fills what a clone leaves to its source (cpu, memory, guestId, firmware, disk sizes) from
    /// the source VM, or, once the clone exists, from the clone itself. `None` (with a
    /// diagnostic) when a clone to be made has no source on its host, or a declared disk is
    /// smaller than the source's.
    fn resolve_source(
        &mut self,
        vm: &DesiredVm,
        observed: &ObservedHost,
        claimed: &[&ObservedVm],
    ) -> Option<(DesiredVm, Option<DiskOrigin>)> {
        let mut vm = vm.clone();
        let source_name = vm.config.source.clone().unwrap_or_default();
        let source = observed
            .vms
            .iter()
            .find(|o| o.managed_name() == Some(source_name.as_str()))
            .or_else(|| observed.vms.iter().find(|o| o.name == source_name));
        // A VM left half-made by an interrupted run is made again from the source.
        let claimed: Vec<&ObservedVm> = claimed
            .iter()
            .copied()
            .filter(|e| !e.extra_config.contains_key(CREATING_KEY))
            .collect();
        let model = match (claimed.first(), source) {
            (Some(existing), _) => *existing,
            (None, Some(source)) => source,
            (None, None) => {
                self.diagnostics.push(
                    Diagnostic::error(format!(
                        "the source VM {source_name:?} is not on host {}",
                        vm.host
                    ))
                    .resource(address(&vm.name))
                    .field("spec.source.vm")
                    .hint("name a VM of the same host (its manifest name or its name on the host)"),
                );
                return None;
            }
        };
        let c = &mut vm.config;
        if c.cpu == 0 {
            c.cpu = model.cpu;
        }
        if c.memory_mib == 0 {
            c.memory_mib = model.memory_mib;
        }
        if c.guest_id.is_empty() {
            c.guest_id = model.guest_id.clone();
        }
        if c.firmware.is_none() {
            c.firmware = model.firmware;
        }
        for (index, disk) in model.disks.iter().enumerate() {
            match c.disks.get(index) {
                None => c.disks.push(disk.capacity_bytes),
                Some(&want) if claimed.is_empty() && want < disk.capacity_bytes => {
                    self.diagnostics.push(
                        Diagnostic::error(format!(
                            "disk {index} is declared {}, smaller than the {} disk of the source VM {source_name:?}: disks never shrink",
                            size(want),
                            size(disk.capacity_bytes)
                        ))
                        .resource(address(&vm.name))
                        .field(format!("spec.disks[{index}].size"))
                        .hint(format!("declare at least {}", size(disk.capacity_bytes))),
                    );
                    return None;
                }
                Some(_) => {}
            }
        }
        if !claimed.is_empty() {
            return Some((vm, None));
        }
        let source = model;
        let origin = DiskOrigin::Clone(CloneSource {
            vm: source.name.clone(),
            moref: source.moref.clone(),
            disks: source.disks.iter().map(|d| d.file_name.clone()).collect(),
            running: source.power == Some(PowerState::PoweredOn),
        });
        Some((vm, Some(origin)))
    }

    /// Checks that the datastore and port groups a VM needs exist; false (with diagnostics) when not.
    fn check_host_objects(&mut self, vm: &DesiredVm, observed: &ObservedHost) -> bool {
        let before = self.diagnostics.len();
        let datastore = &vm.config.datastore;
        if !observed.datastores.contains(datastore) {
            self.diagnostics.push(
                Diagnostic::error(format!(
                    "datastore {datastore:?} does not exist on host {}",
                    vm.host
                ))
                .resource(address(&vm.name))
                .field("spec.datastore")
                .hint(format!(
                    "datastores on the host: {}",
                    observed.datastores.join(", ")
                )),
            );
        }
        for (index, network) in vm.config.networks.iter().enumerate() {
            if !observed.networks.contains(network) {
                self.diagnostics.push(
                    Diagnostic::error(format!(
                        "port group {network:?} does not exist on host {}",
                        vm.host
                    ))
                    .resource(address(&vm.name))
                    .field(format!("spec.networks[{index}].portGroup"))
                    .hint(format!(
                        "networks on the host: {}",
                        observed.networks.join(", ")
                    )),
                );
            }
        }
        self.diagnostics.len() == before
    }

    /// Adds a step described as `<verb> <vm name>`.
    fn vm_step(&mut self, vm: &DesiredVm, verb: &str, op: HostOp, after: Option<usize>) -> usize {
        self.push_step(&vm.name, &vm.host, format!("{verb} {}", vm.name), op, after)
    }

    fn push_step(
        &mut self,
        vm: &str,
        host: &str,
        description: String,
        op: HostOp,
        after: Option<usize>,
    ) -> usize {
        let id = self.steps.len();
        self.steps.push(Step {
            id,
            resource: address(vm),
            host: host.to_owned(),
            description,
            depends_on: after.into_iter().collect(),
            after: self.clones_by_source.get(vm).cloned().unwrap_or_default(),
            compensating: false,
            op,
        });
        self.steps_by_vm.entry(vm.to_owned()).or_default().push(id);
        id
    }

    fn create_steps(&mut self, vm: &DesiredVm, origin: Option<&DiskOrigin>, after: Option<usize>) {
        let spec = VmCreateSpec {
            name: vm.name.clone(),
            cpu: vm.config.cpu,
            memory_mib: vm.config.memory_mib,
            guest_id: vm.config.guest_id.clone(),
            datastore: vm.config.datastore.clone(),
            disks: vm.config.disks.clone(),
            nics: vm.config.networks.clone(),
            extra_config: {
                let mut config = marker_config(vm);
                config.insert(POWER_KEY.to_owned(), Power::Off.to_string());
                if origin.is_some() {
                    // Cleared by the creation's last step (copies take a while).
                    config.insert(CREATING_KEY.to_owned(), "true".to_owned());
                }
                config
            },
            template_disk: match origin {
                Some(DiskOrigin::Template { path, .. }) => Some(path.clone()),
                _ => None,
            },
            firmware: vm.config.firmware,
            cloud_init: vm.config.cloud_init.clone(),
            annotation: vm.config.annotation.clone(),
            clone_from: match origin {
                Some(DiskOrigin::Clone(source)) => Some(source.clone()),
                _ => None,
            },
        };
        let source = spec.clone_from.as_ref().map(|s| s.vm.clone());
        let created = self.vm_step(vm, CREATE_VM, HostOp::CreateVm { spec }, after);
        if let Some(source) = source {
            let earlier: Vec<usize> = self
                .steps_by_vm
                .get(&source)
                .into_iter()
                .flatten()
                .chain(self.clones_by_source.get(&source).into_iter().flatten())
                .copied()
                .filter(|id| *id != created)
                .collect();
            let step = &mut self.steps[created];
            step.after.extend(earlier);
            step.after.sort_unstable();
            step.after.dedup();
            self.clones_by_source
                .entry(source)
                .or_default()
                .push(created);
        }
        if vm.config.power == Power::On {
            let powered_on = self.vm_step(
                vm,
                "power on",
                HostOp::PowerOn {
                    moref: None,
                    vm: vm.name.clone(),
                },
                Some(created),
            );
            let addresses = static_addresses(vm.config.cloud_init.as_ref());
            if !addresses.is_empty() {
                let description =
                    format!("wait for {} to report {}", vm.name, addresses.join(", "));
                let op = HostOp::WaitForGuestIp {
                    moref: None,
                    vm: vm.name.clone(),
                    addresses,
                    timeout_secs: self.guest_ip_timeout_secs,
                };
                self.push_step(&vm.name, &vm.host, description, op, Some(powered_on));
            }
        }
    }

    fn create(&mut self, vm: &DesiredVm, origin: Option<&DiskOrigin>) {
        let c = &vm.config;
        let mut fields = vec![];
        match (&c.template, origin) {
            (Some(name), Some(DiskOrigin::Template { path, .. })) => {
                fields.push(added("template", format!("{name} ({path})")));
            }
            (_, Some(DiskOrigin::Clone(source))) => fields.push(added(
                "source",
                if source.running {
                    format!(
                        "{} ({}, running: its disks are copied from a snapshot taken for the purpose and removed afterwards)",
                        source.vm, source.moref
                    )
                } else {
                    format!("{} ({})", source.vm, source.moref)
                },
            )),
            _ => {}
        }
        fields.extend([
            added("cpu", c.cpu.to_string()),
            added("memory", size(c.memory_mib << 20)),
            added("guestId", c.guest_id.clone()),
            added("datastore", c.datastore.clone()),
        ]);
        if let Some(firmware) = c.firmware {
            fields.push(added("firmware", firmware.to_string()));
        }
        for (i, disk) in c.disks.iter().enumerate() {
            fields.push(added(&format!("disks[{i}].size"), size(*disk)));
        }
        for (i, network) in c.networks.iter().enumerate() {
            fields.push(added(&format!("networks[{i}].portGroup"), network.clone()));
        }
        if let Some(cloud_init) = &c.cloud_init {
            for (i, interface) in cloud_init.interfaces.iter().enumerate() {
                fields.push(added(
                    &format!("networks[{i}].ip"),
                    interface_text(interface),
                ));
            }
            fields.extend(
                cloud_init_fields(cloud_init)
                    .into_iter()
                    .map(|(field, value)| added(&field, value)),
            );
        }
        fields.push(added("power", c.power.to_string()));
        if c.protect {
            fields.push(added("protect", "true".to_owned()));
        }
        self.changes.push(ResourceChange {
            address: address(&vm.name),
            host: vm.host.clone(),
            name: vm.name.clone(),
            action: Action::Create,
            fields,
            power_cycle: false,
            undeclared: false,
            notes: vec![],
        });
        self.create_steps(vm, origin, None);
    }

    fn update(&mut self, declared: &DesiredVm, observed: &ObservedVm, origin: Option<&DiskOrigin>) {
        let vm = &effective(declared, observed);
        // What a half-made VM lacks is not drift: nothing was changed outside ceso.
        let applied: Option<VmSettings> = applied_settings(observed)
            .filter(|_| !observed.extra_config.contains_key(CREATING_KEY));
        let comparison = compare(&vm.config, observed, applied.as_ref());
        for problem in &comparison.problems {
            self.diagnostics.push(
                Diagnostic::error(problem.message.clone())
                    .resource(address(&vm.name))
                    .field(format!("spec.{}", problem.field))
                    .hint(problem.hint.clone()),
            );
        }
        // A VM left half-made never held data: re-making it is not losing it.
        let half_made = observed.extra_config.contains_key(CREATING_KEY);
        let protected = !half_made && (vm.config.protect || observed.is_protected());
        let mut change = ResourceChange {
            address: address(&vm.name),
            host: vm.host.clone(),
            name: vm.name.clone(),
            action: Action::NoOp,
            fields: comparison.fields.clone(),
            power_cycle: false,
            undeclared: false,
            notes: vec![],
        };
        if !comparison.problems.is_empty() {
            change.notes.push(LEFT_ALONE.to_owned());
            self.changes.push(change);
            return;
        }
        let moref = Some(observed.moref.clone());
        let running = matches!(
            observed.power,
            Some(PowerState::PoweredOn | PowerState::Suspended)
        );
        if comparison.fields.iter().any(|f| f.forces_replacement) {
            change.action = Action::Replace;
            if protected {
                self.diagnostics.push(
                    Diagnostic::error(format!("VM {} is protected and cannot be replaced", vm.name))
                        .resource(address(&vm.name))
                        .field("spec.protect")
                        .hint("revert the change that forces replacement (see the plan); if losing the VM is intended, first apply `protect: false` on its own, then the change"),
                );
            } else if (vm.config.template.is_some() || vm.config.source.is_some())
                && origin.is_none()
            {
                self.diagnostics.push(
                    Diagnostic::error(format!(
                        "VM {} must be re-created, but the disks it is made from (its template's or source's) are not on the host",
                        vm.name
                    ))
                    .resource(address(&vm.name))
                    .field(if vm.config.source.is_some() {
                        "spec.source"
                    } else {
                        "spec.template"
                    })
                    .hint("import the template again (`ceso template import`) or restore the source VM, or revert the change that forces replacement"),
                );
                change.action = Action::NoOp;
                change.notes.push(LEFT_ALONE.to_owned());
            } else {
                change.power_cycle = running;
                let mut last = None;
                if change.power_cycle {
                    let op = shut_down(&moref, &vm.name, vm.shutdown, self.force_power_off);
                    last = Some(self.vm_step(vm, "shut down", op, None));
                }
                let destroy = HostOp::DestroyVm {
                    moref: moref.clone(),
                    vm: vm.name.clone(),
                };
                let description = format!("destroy VM {} ({})", vm.name, observed.moref);
                let destroyed = self.push_step(&vm.name, &vm.host, description, destroy, last);
                self.create_steps(vm, origin, Some(destroyed));
            }
            self.changes.push(change);
            return;
        }
        let needs_settings = applied
            .as_ref()
            .is_none_or(|a| !same_settings(a, &vm.config));
        let mut reconfig = comparison.reconfig;
        if comparison.cloud_init_changed {
            reconfig.cloud_init = vm.config.cloud_init.clone();
            change.notes.extend(cloud_init_notes(
                applied.as_ref().and_then(|a| a.cloud_init.as_ref()),
                vm.config.cloud_init.as_ref(),
            ));
        }
        if needs_settings
            || reconfig != VmReconfigSpec::default()
            || observed.is_protected() != vm.config.protect
        {
            reconfig.extra_config.extend(marker_config(vm));
            if !vm.config.protect && observed.is_protected() {
                reconfig
                    .extra_config
                    .insert(PROTECT_KEY.to_owned(), String::new());
            }
        }
        let has_reconfig = reconfig != VmReconfigSpec::default();
        let want_on = vm.config.power == Power::On;
        change.power_cycle = comparison.needs_power_off && running;
        if !has_reconfig && change.fields.is_empty() {
            self.changes.push(change);
            return;
        }
        change.action = Action::Update;
        if comparison.fields.is_empty() {
            change
                .notes
                .push("records the declared settings on the VM (ceso.applied)".to_owned());
        }
        let mut on = observed.power == Some(PowerState::PoweredOn);
        let mut powered_off = None;
        if change.power_cycle {
            let op = shut_down(&moref, &vm.name, vm.shutdown, self.force_power_off);
            powered_off = Some(self.vm_step(vm, "shut down", op, None));
            on = false;
        }
        let reconfigured = has_reconfig.then(|| {
            let op = HostOp::ReconfigureVm {
                moref: moref.clone(),
                vm: vm.name.clone(),
                spec: reconfig,
            };
            self.vm_step(vm, "reconfigure", op, powered_off)
        });
        let suspended = observed.power == Some(PowerState::Suspended) && !change.power_cycle;
        if want_on && !on {
            let power_on = HostOp::PowerOn {
                moref,
                vm: vm.name.clone(),
            };
            // A declared-on VM is powered on whatever became of the reconfiguration. After a
            // power cycle this undoes ceso's own power-off, so it runs even when the run is
            // interrupted.
            let id = self.vm_step(vm, "power on", power_on, powered_off);
            self.steps[id].after = reconfigured.into_iter().collect();
            self.steps[id].compensating = powered_off.is_some() && reconfigured.is_some();
        } else if !want_on && (on || suspended) {
            let op = shut_down(&moref, &vm.name, vm.shutdown, self.force_power_off);
            self.vm_step(vm, "shut down", op, reconfigured);
        }
        self.changes.push(change);
    }

    fn orphan(&mut self, host: &str, name: &str, vm: &ObservedVm, prune: bool) {
        let mut change = ResourceChange {
            address: address(name),
            host: host.to_owned(),
            name: name.to_owned(),
            action: Action::NoOp,
            fields: vec![],
            power_cycle: false,
            undeclared: true,
            notes: vec![],
        };
        if vm.is_protected() {
            change.notes.push(
                "no longer in the manifests, but protected: ceso never deletes it".to_owned(),
            );
        } else if !prune {
            change.notes.push("managed by ceso but no longer in the manifests: deleted only with --prune (or `prune: true` on the host)".to_owned());
        } else {
            change.action = Action::Delete;
            change.fields = removed_fields(vm);
            let suspended = self.suspensions.suspended_by(name, host).is_some();
            change.notes.push(format!(
                "{} ({}) {} destroyed with all its disks{}",
                vm.name,
                vm.moref,
                if suspended { "would be" } else { "is" },
                if vm.power == Some(PowerState::PoweredOff) {
                    ""
                } else {
                    ", after its guest is shut down"
                }
            ));
            let moref = Some(vm.moref.clone());
            let mut last = None;
            if vm.power != Some(PowerState::PoweredOff) && vm.power.is_some() {
                let op = shut_down(
                    &moref,
                    &vm.name,
                    ShutdownSpec::default(),
                    self.force_power_off,
                );
                last = Some(self.push_step(name, host, format!("shut down {name}"), op, None));
            }
            self.push_step(
                name,
                host,
                format!("destroy VM {name} ({})", vm.moref),
                HostOp::DestroyVm {
                    moref,
                    vm: vm.name.clone(),
                },
                last,
            );
        }
        self.changes.push(change);
    }
}

/// The change of a VM the plan does not touch because of an error about it.
fn left_alone(vm: &DesiredVm) -> ResourceChange {
    let mut change = unchanged(vm);
    change.notes.push(LEFT_ALONE.to_owned());
    change
}

/// No change to a declared VM.
fn unchanged(vm: &DesiredVm) -> ResourceChange {
    ResourceChange {
        address: address(&vm.name),
        host: vm.host.clone(),
        name: vm.name.clone(),
        action: Action::NoOp,
        fields: vec![],
        power_cycle: false,
        undeclared: false,
        notes: vec![],
    }
}

/// Makes an error about a suspended resource a warning: nothing is done about the resource, so
/// the error blocks nothing (it is still worth fixing before `suspend` is removed).
fn demote_for_suspension(diagnostic: &mut Diagnostic) {
    diagnostic.severity = Severity::Warning;
    diagnostic.message.push_str(
        " (suspended: it blocks nothing until `suspend: true` is removed, then it is an error)",
    );
}

/// Shutting an existing VM down as `policy` says (a hard power-off only where allowed).
fn shut_down(moref: &Option<String>, vm: &str, policy: ShutdownSpec, force: bool) -> HostOp {
    HostOp::ShutdownVm {
        moref: moref.clone(),
        vm: vm.to_owned(),
        timeout_secs: policy.timeout_seconds,
        force: policy.force || force,
    }
}

/// The settings to hold an existing VM to: as declared, except that a datastore the VM merely
/// inherited from its host's default stays where the VM is (changing a host's default must not
/// replace every VM on it).
fn effective(declared: &DesiredVm, observed: &ObservedVm) -> DesiredVm {
    let mut vm = declared.clone();
    if !vm.datastore_declared
        && let Some(current) = datastore_of(&observed.vmx_path)
    {
        vm.config.datastore = current.to_owned();
    }
    vm
}

/// Whether the recorded settings equal the declared ones (power is recorded separately).
fn same_settings(applied: &VmSettings, declared: &VmSettings) -> bool {
    VmSettings {
        power: declared.power,
        ..applied.clone()
    } == *declared
}

/// The extraConfig that marks a VM as ceso's and records what was applied.
fn marker_config(vm: &DesiredVm) -> BTreeMap<String, String> {
    let mut config = BTreeMap::new();
    config.insert(MANAGED_KEY.to_owned(), vm.name.clone());
    config.insert(
        APPLIED_KEY.to_owned(),
        serde_json::to_string(&vm.config).expect("settings serialize"),
    );
    if vm.config.protect {
        config.insert(PROTECT_KEY.to_owned(), "true".to_owned());
    }
    config
}

/// What a deleted VM had, as fields that go away.
fn removed_fields(vm: &ObservedVm) -> Vec<FieldChange> {
    let removed = |field: String, before: String| FieldChange {
        field,
        before: Some(before),
        after: None,
        drift: false,
        requires_power_off: false,
        forces_replacement: false,
    };
    let mut fields = vec![
        removed("cpu".into(), vm.cpu.to_string()),
        removed("memory".into(), size(vm.memory_mib << 20)),
    ];
    for (i, disk) in vm.disks.iter().enumerate() {
        fields.push(removed(
            format!("disks[{i}].size"),
            size(disk.capacity_bytes),
        ));
    }
    for (i, nic) in vm.nics.iter().enumerate() {
        fields.push(removed(
            format!("networks[{i}].portGroup"),
            nic.port_group.clone(),
        ));
    }
    fields.push(removed("power".into(), power_word(vm.power)));
    fields
}

fn added(field: &str, after: String) -> FieldChange {
    FieldChange {
        field: field.to_owned(),
        before: None,
        after: Some(after),
        drift: false,
        requires_power_off: false,
        forces_replacement: false,
    }
}

/// A difference ceso refuses to resolve (it would lose data).
struct Problem {
    field: String,
    message: String,
    hint: String,
}

#[derive(Default)]
struct Comparison {
    fields: Vec<FieldChange>,
    problems: Vec<Problem>,
    reconfig: VmReconfigSpec,
    needs_power_off: bool,
    /// The guestinfo must be rewritten.
    cloud_init_changed: bool,
}

impl Comparison {
    fn field(
        &mut self,
        field: String,
        before: Option<String>,
        after: Option<String>,
        drift: bool,
    ) -> &mut FieldChange {
        self.fields.push(FieldChange {
            field,
            before,
            after,
            drift,
            requires_power_off: false,
            forces_replacement: false,
        });
        self.fields.last_mut().expect("just pushed")
    }

    /// A changed field whose change needs the VM powered off.
    fn offline_field(&mut self, field: &str, before: String, after: String, drift: bool) {
        self.field(field.to_owned(), Some(before), Some(after), drift)
            .requires_power_off = true;
        self.needs_power_off = true;
    }
}

/// Compares one VM; a field is drift when the host differs from what ceso last applied while
/// the manifest still says the same.
fn compare(
    desired: &VmSettings,
    observed: &ObservedVm,
    applied: Option<&VmSettings>,
) -> Comparison {
    let mut out = Comparison::default();
    if observed.extra_config.contains_key(CREATING_KEY) {
        out.field(
            "creation".into(),
            Some("left half-made by an interrupted run".into()),
            Some("made again".into()),
            false,
        )
        .forces_replacement = true;
    }
    let unchanged_since_apply =
        |pick: &dyn Fn(&VmSettings) -> String| applied.is_some_and(|a| pick(a) == pick(desired));
    // Added while the VM runs when the VM has hot-add enabled; removed only when it is off.
    let running = observed.power == Some(PowerState::PoweredOn);
    if observed.cpu != desired.cpu {
        let drift = unchanged_since_apply(&|s| s.cpu.to_string());
        let (before, after) = (observed.cpu.to_string(), desired.cpu.to_string());
        if running && observed.cpu_hot_add && desired.cpu > observed.cpu {
            out.field("cpu".into(), Some(before), Some(after), drift);
        } else {
            out.offline_field("cpu", before, after, drift);
        }
        out.reconfig.cpu = Some(desired.cpu);
    }
    if observed.memory_mib != desired.memory_mib {
        let drift = unchanged_since_apply(&|s| s.memory_mib.to_string());
        let (before, after) = (
            size(observed.memory_mib << 20),
            size(desired.memory_mib << 20),
        );
        if running && observed.memory_hot_add && desired.memory_mib > observed.memory_mib {
            out.field("memory".into(), Some(before), Some(after), drift);
        } else {
            out.offline_field("memory", before, after, drift);
        }
        out.reconfig.memory_mib = Some(desired.memory_mib);
    }
    if let Some(want) = &desired.annotation
        && &observed.annotation != want
    {
        let drift = unchanged_since_apply(&|s| format!("{:?}", s.annotation));
        out.field(
            "annotation".into(),
            Some(observed.annotation.clone()),
            Some(want.clone()),
            drift,
        );
        out.reconfig.annotation = Some(want.clone());
    }
    if observed.guest_id != desired.guest_id {
        let drift = unchanged_since_apply(&|s| s.guest_id.clone());
        out.offline_field(
            "guestId",
            observed.guest_id.clone(),
            desired.guest_id.clone(),
            drift,
        );
        out.reconfig.guest_id = Some(desired.guest_id.clone());
    }
    let observed_datastore = datastore_of(&observed.vmx_path).unwrap_or_default();
    if observed_datastore != desired.datastore {
        let drift = unchanged_since_apply(&|s| s.datastore.clone());
        out.field(
            "datastore".into(),
            Some(observed_datastore.to_owned()),
            Some(desired.datastore.clone()),
            drift,
        )
        .forces_replacement = true;
    }
    for index in 0..observed.disks.len().max(desired.disks.len()) {
        let field = format!("disks[{index}].size");
        let drift = unchanged_since_apply(&|s| format!("{:?}", s.disks.get(index)));
        match (observed.disks.get(index), desired.disks.get(index)) {
            (Some(disk), Some(&want)) if disk.capacity_bytes < want => {
                out.field(field, Some(size(disk.capacity_bytes)), Some(size(want)), drift);
                out.reconfig.disks.push(DiskChange::Grow { key: disk.key, size_bytes: want });
            }
            (Some(disk), Some(&want)) if disk.capacity_bytes > want => out.problems.push(Problem {
                field,
                message: format!(
                    "disk {index} is {} on the host, the manifest says {}: disks never shrink",
                    size(disk.capacity_bytes),
                    size(want)
                ),
                hint: format!(
                    "declare at least {}; to get a smaller disk, add a new one and move the data",
                    size(disk.capacity_bytes)
                ),
            }),
            (Some(_), Some(_)) | (None, None) => {}
            (None, Some(&want)) => {
                out.field(field, None, Some(size(want)), drift);
                out.reconfig.disks.push(DiskChange::Add { size_bytes: want });
            }
            (Some(disk), None) => out.problems.push(Problem {
                field: "disks".to_owned(),
                message: format!(
                    "the VM has a disk {index} of {} ({}) that the manifest does not declare",
                    size(disk.capacity_bytes),
                    disk.file_name
                ),
                hint: format!(
                    "ceso never deletes disks: declare it (`- size: {}`), or detach it in the host client after saving its data",
                    size(disk.capacity_bytes)
                ),
            }),
        }
    }
    for index in 0..observed.nics.len().max(desired.networks.len()) {
        let field = format!("networks[{index}].portGroup");
        let drift = unchanged_since_apply(&|s| format!("{:?}", s.networks.get(index)));
        match (observed.nics.get(index), desired.networks.get(index)) {
            (Some(nic), Some(want)) if &nic.port_group != want => {
                out.field(
                    field,
                    Some(nic.port_group.clone()),
                    Some(want.clone()),
                    drift,
                );
                out.reconfig.nics.push(NicChange::SetPortGroup {
                    key: nic.key,
                    port_group: want.clone(),
                });
            }
            (Some(_), Some(_)) | (None, None) => {}
            (None, Some(want)) => {
                out.field(field, None, Some(want.clone()), drift);
                out.reconfig.nics.push(NicChange::Add {
                    port_group: want.clone(),
                });
            }
            (Some(nic), None) => {
                out.field(field, Some(nic.port_group.clone()), None, drift);
                out.reconfig.nics.push(NicChange::Remove { key: nic.key });
            }
        }
    }
    if let (Some(applied), Some(want)) = (applied, &desired.template)
        && applied.template.as_ref() != Some(want)
    {
        let before = applied
            .template
            .clone()
            .unwrap_or_else(|| "none".to_owned());
        out.field("template".into(), Some(before), Some(want.clone()), false)
            .forces_replacement = true;
    }
    compare_cloud_init(&mut out, desired, observed, applied);
    let observed_power = power_word(observed.power);
    if observed_power != desired.power.to_string() {
        let drift = observed.extra_config.get(POWER_KEY) == Some(&desired.power.to_string());
        out.field(
            "power".into(),
            Some(observed_power),
            Some(desired.power.to_string()),
            drift,
        );
    }
    if observed.is_protected() != desired.protect {
        let drift = unchanged_since_apply(&|s| s.protect.to_string());
        out.field(
            "protect".into(),
            Some(observed.is_protected().to_string()),
            Some(desired.protect.to_string()),
            drift,
        );
    }
    out
}

/// Compares what cloud-init was told (recorded in `ceso.applied`) with what it should be told,
/// and notices guestinfo removed on the host.
fn compare_cloud_init(
    out: &mut Comparison,
    desired: &VmSettings,
    observed: &ObservedVm,
    applied: Option<&VmSettings>,
) {
    let Some(want) = &desired.cloud_init else {
        return;
    };
    let before = applied.and_then(|a| a.cloud_init.as_ref());
    let mut changed = false;
    let empty = Vec::new();
    let before_interfaces = before.map_or(&empty, |b| &b.interfaces);
    for index in 0..want.interfaces.len().max(before_interfaces.len()) {
        let was = before_interfaces.get(index).map(interface_text);
        let will = want.interfaces.get(index).map(interface_text);
        if was != will && will.is_some() {
            out.field(format!("networks[{index}].ip"), was, will, false);
            changed = true;
        }
    }
    let before_fields: BTreeMap<String, String> = before
        .map(cloud_init_fields)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (field, value) in cloud_init_fields(want) {
        let was = before_fields.get(&field).cloned();
        if was.as_ref() != Some(&value) {
            out.field(field, was, Some(value), false);
            changed = true;
        }
    }
    if !changed && !observed.extra_config.contains_key(METADATA_KEY) {
        out.field(
            "cloudInit".into(),
            Some("missing on the host".into()),
            Some("guestinfo rewritten".into()),
            true,
        );
        changed = true;
    }
    out.cloud_init_changed = changed;
}

/// How an adapter's address is shown: `192.168.1.100/24 (pool lan)` or `dhcp`.
fn interface_text(interface: &crate::cloudinit::InterfaceConfig) -> String {
    match (&interface.address, &interface.pool) {
        (Some(address), Some(pool)) => format!("{address} (pool {pool})"),
        (Some(address), None) => address.clone(),
        (None, _) => "dhcp".to_owned(),
    }
}

/// The cloud-init settings shown in a plan (no user-data content: only its digest).
fn cloud_init_fields(config: &CloudInitConfig) -> Vec<(String, String)> {
    let digest = ring::digest::digest(&ring::digest::SHA256, config.user_data.as_bytes());
    let hex: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keys = config.ssh_authorized_keys.len();
    vec![
        ("cloudInit.hostname".to_owned(), config.hostname.clone()),
        (
            "cloudInit.sshAuthorizedKeys".to_owned(),
            format!("{keys} key{}", if keys == 1 { "" } else { "s" }),
        ),
        (
            "cloudInit.userData".to_owned(),
            format!("sha256:{hex} ({} bytes)", config.user_data.len()),
        ),
        (
            "cloudInit.instanceId".to_owned(),
            config.instance_id.clone(),
        ),
    ]
}

/// What a guestinfo rewrite means for the running guest.
fn cloud_init_notes(
    before: Option<&CloudInitConfig>,
    after: Option<&CloudInitConfig>,
) -> Vec<String> {
    let Some(after) = after else {
        return vec![];
    };
    let new_instance = before.is_none_or(|b| b.instance_id != after.instance_id);
    let mut notes = vec![];
    if new_instance {
        notes.push(format!(
            "guestinfo is rewritten with instance-id {}: cloud-init applies the hostname and network at the guest's next boot (ceso does not reboot it)",
            after.instance_id
        ));
    }
    if let Some(before) = before
        && !new_instance
        && (before.user_data != after.user_data
            || before.ssh_authorized_keys != after.ssh_authorized_keys)
    {
        notes.push(
            "cloud-init applies user-data and SSH keys once per instance: the running guest does not pick up this change (a new hostname or network, or re-creating the VM, does)".to_owned(),
        );
    }
    notes
}

/// The static addresses (without prefix length) a guest should report.
fn static_addresses(config: Option<&CloudInitConfig>) -> Vec<String> {
    config
        .map(|c| {
            c.interfaces
                .iter()
                .filter_map(|i| i.address.as_deref())
                .map(|a| a.split('/').next().unwrap_or(a).to_owned())
                .collect()
        })
        .unwrap_or_default()
}
