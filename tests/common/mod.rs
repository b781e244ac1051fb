//! An in-memory ESXi host for planner and executor tests that need no simulator: it applies
//! [`HostOp`]s to an [`ObservedHost`] the way a real host would.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use ceso::apply::{ApplyHook, ApplyReport, execute};
use ceso::desired::{DesiredHost, DesiredState, DesiredVm, HostConnection, VmSettings};
use ceso::host::{
    DiskChange, Host, HostAbout, HostOp, NicChange, ObservedDisk, ObservedHost, ObservedNic,
    ObservedVm, OpOutcome, POWER_KEY, PowerState,
};
use ceso::manifest::{Power, SecretRef};
use ceso::plan::{ObservedState, Plan, PlanMeta, PlanOptions, Step, diff};
use std::time::Duration;

pub const GIB: u64 = 1 << 30;

/// An error of the fake host.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FakeError(pub String);

/// A host kept in memory; `fail_on` names VMs whose operations fail.
#[derive(Default)]
pub struct FakeHost {
    pub state: RefCell<ObservedHost>,
    pub fail_on: BTreeSet<String>,
    /// Every reconfiguration fails.
    pub fail_reconfigure: bool,
    pub next_moref: RefCell<u32>,
    pub log: RefCell<Vec<String>>,
}

pub fn empty_host() -> ObservedHost {
    ObservedHost {
        about: HostAbout {
            full_name: "fake".into(),
            api_version: "8.0".into(),
            api_type: "HostAgent".into(),
        },
        datastores: vec!["datastore1".into()],
        networks: vec!["VM Network".into(), "Storage".into()],
        vms: vec![],
        access: None,
    }
}

impl FakeHost {
    pub fn new(state: ObservedHost) -> Self {
        Self {
            state: RefCell::new(state),
            next_moref: RefCell::new(100),
            ..Default::default()
        }
    }

    /// What the host looks like now.
    pub fn observe_now(&self) -> ObservedHost {
        self.state.borrow().clone()
    }

    fn find(&self, moref: &Option<String>, name: &str) -> Result<usize, FakeError> {
        let state = self.state.borrow();
        state
            .vms
            .iter()
            .position(|vm| match moref {
                Some(moref) => &vm.moref == moref,
                None => vm.name == name,
            })
            .ok_or_else(|| FakeError(format!("VM {name} not found")))
    }

    /// Powers a VM on or off; like ESXi, refuses when it already is.
    fn set_power(
        &self,
        moref: &Option<String>,
        vm: &str,
        power: PowerState,
    ) -> Result<OpOutcome, FakeError> {
        let index = self.find(moref, vm)?;
        let mut state = self.state.borrow_mut();
        if state.vms[index].power == Some(power) {
            return Err(FakeError("InvalidPowerState".into()));
        }
        state.vms[index].power = Some(power);
        let reached = if power == PowerState::PoweredOn {
            "on"
        } else {
            "off"
        };
        state.vms[index]
            .extra_config
            .insert(POWER_KEY.to_owned(), reached.to_owned());
        Ok(OpOutcome::default())
    }

    pub fn apply(&self, op: &HostOp) -> Result<OpOutcome, FakeError> {
        let vm_name = match op {
            HostOp::CreateVm { spec } => spec.name.clone(),
            HostOp::ReconfigureVm { vm, .. }
            | HostOp::PowerOn { vm, .. }
            | HostOp::PowerOff { vm, .. }
            | HostOp::DestroyVm { vm, .. }
            | HostOp::ShutdownVm { vm, .. }
            | HostOp::RemoveSnapshot { vm, .. }
            | HostOp::WaitForGuestIp { vm, .. } => vm.clone(),
            HostOp::UpdateFirewallRuleset { ruleset, .. } => ruleset.clone(),
        };
        self.log.borrow_mut().push(format!("{op:?}"));
        if self.fail_on.contains(&vm_name)
            || (self.fail_reconfigure && matches!(op, HostOp::ReconfigureVm { .. }))
        {
            return Err(FakeError(format!("injected fault for {vm_name}")));
        }
        match op {
            HostOp::CreateVm { spec } => {
                let mut next = self.next_moref.borrow_mut();
                *next += 1;
                let moref = format!("{}", *next);
                let vm = ObservedVm {
                    moref: moref.clone(),
                    name: spec.name.clone(),
                    template: false,
                    cpu: spec.cpu,
                    memory_mib: spec.memory_mib,
                    guest_id: spec.guest_id.clone(),
                    power: Some(PowerState::PoweredOff),
                    vmx_path: format!("[{}] {}/{}.vmx", spec.datastore, spec.name, spec.name),
                    disks: spec
                        .disks
                        .iter()
                        .enumerate()
                        .map(|(i, size)| ObservedDisk {
                            key: 2000 + i as i32,
                            capacity_bytes: *size,
                            file_name: format!(
                                "[{}] {}/{}_{i}.vmdk",
                                spec.datastore, spec.name, spec.name
                            ),
                            controller_key: 1000,
                            unit_number: i as i32,
                        })
                        .collect(),
                    nics: spec
                        .nics
                        .iter()
                        .enumerate()
                        .map(|(i, pg)| ObservedNic {
                            key: 4000 + i as i32,
                            port_group: pg.clone(),
                            mac_address: format!("00:50:56:00:00:{i:02x}"),
                            adapter: "VirtualVmxnet3".into(),
                        })
                        .collect(),
                    extra_config: spec.extra_config.clone(),
                    firmware: spec.firmware,
                    annotation: spec.annotation.clone().unwrap_or_default(),
                    ..ObservedVm::default()
                };
                let mut vm = vm;
                // The fake finishes every creation at once.
                vm.extra_config.remove(ceso::host::CREATING_KEY);
                if let Some(template) = &spec.template_disk
                    && let Some(disk) = vm.disks.first_mut()
                {
                    // Disk 0 is a copy of the template disk, in the VM's own folder.
                    assert!(template.ends_with(".vmdk"));
                    disk.file_name =
                        format!("[{}] {}/{}.vmdk", spec.datastore, spec.name, spec.name);
                }
                if let Some(config) = &spec.cloud_init {
                    let macs: Vec<String> = vm.nics.iter().map(|n| n.mac_address.clone()).collect();
                    vm.extra_config
                        .extend(ceso::cloudinit::guestinfo(config, &macs));
                }
                let mut state = self.state.borrow_mut();
                state.vms.push(vm);
                state
                    .vms
                    .sort_by(|a, b| (&a.name, &a.moref).cmp(&(&b.name, &b.moref)));
                Ok(OpOutcome {
                    created_moref: Some(moref),
                })
            }
            HostOp::ReconfigureVm { moref, vm, spec } => {
                let index = self.find(moref, vm)?;
                let mut state = self.state.borrow_mut();
                let target = &mut state.vms[index];
                if let Some(cpu) = spec.cpu {
                    target.cpu = cpu;
                }
                if let Some(memory) = spec.memory_mib {
                    target.memory_mib = memory;
                }
                if let Some(guest) = &spec.guest_id {
                    target.guest_id = guest.clone();
                }
                if let Some(annotation) = &spec.annotation {
                    target.annotation = annotation.clone();
                }
                for change in &spec.disks {
                    match change {
                        DiskChange::Grow { key, size_bytes } => {
                            target
                                .disks
                                .iter_mut()
                                .find(|d| d.key == *key)
                                .expect("disk")
                                .capacity_bytes = *size_bytes
                        }
                        DiskChange::Add { size_bytes } => {
                            let key = 2000 + target.disks.len() as i32 + 50;
                            target.disks.push(ObservedDisk {
                                key,
                                capacity_bytes: *size_bytes,
                                ..Default::default()
                            })
                        }
                        DiskChange::Remove { key } => target.disks.retain(|d| d.key != *key),
                    }
                }
                for change in &spec.nics {
                    match change {
                        NicChange::SetPortGroup { key, port_group } => {
                            target
                                .nics
                                .iter_mut()
                                .find(|n| n.key == *key)
                                .expect("nic")
                                .port_group = port_group.clone()
                        }
                        NicChange::Add { port_group } => {
                            let key = 4000 + target.nics.len() as i32 + 50;
                            target.nics.push(ObservedNic {
                                key,
                                port_group: port_group.clone(),
                                mac_address: format!("00:50:56:00:01:{:02x}", target.nics.len()),
                                ..Default::default()
                            })
                        }
                        NicChange::Remove { key } => target.nics.retain(|n| n.key != *key),
                    }
                }
                let mut entries = spec.extra_config.clone();
                if let Some(config) = &spec.cloud_init {
                    let macs: Vec<String> =
                        target.nics.iter().map(|n| n.mac_address.clone()).collect();
                    entries.extend(ceso::cloudinit::guestinfo(config, &macs));
                }
                for (key, value) in &entries {
                    if value.is_empty() {
                        target.extra_config.remove(key);
                    } else {
                        target.extra_config.insert(key.clone(), value.clone());
                    }
                }
                Ok(OpOutcome::default())
            }
            HostOp::WaitForGuestIp { moref, vm, .. } => {
                self.find(moref, vm)?;
                Ok(OpOutcome::default())
            }
            // The fake guest always has Tools: a shutdown is a power-off.
            HostOp::ShutdownVm { moref, vm, .. } => {
                self.set_power(moref, vm, PowerState::PoweredOff)
            }
            HostOp::RemoveSnapshot {
                moref,
                vm,
                snapshot,
                ..
            } => {
                let index = self.find(moref, vm)?;
                self.state.borrow_mut().vms[index]
                    .snapshots
                    .retain(|s| &s.moref != snapshot);
                Ok(OpOutcome::default())
            }
            HostOp::PowerOn { moref, vm } => self.set_power(moref, vm, PowerState::PoweredOn),
            HostOp::PowerOff { moref, vm } => self.set_power(moref, vm, PowerState::PoweredOff),
            HostOp::DestroyVm { moref, vm } => {
                let index = self.find(moref, vm)?;
                let mut state = self.state.borrow_mut();
                if state.vms[index].power == Some(PowerState::PoweredOn) {
                    return Err(FakeError("InvalidPowerState".into()));
                }
                state.vms.remove(index);
                Ok(OpOutcome::default())
            }
            // Like ESXi's UpdateRuleset: the list is replaced; an unknown ruleset is NotFound.
            HostOp::UpdateFirewallRuleset {
                ruleset, allowed, ..
            } => {
                let mut state = self.state.borrow_mut();
                let target = state
                    .access
                    .as_mut()
                    .and_then(|access| access.rulesets.get_mut(ruleset))
                    .ok_or_else(|| FakeError(format!("NotFound: firewall ruleset {ruleset}")))?;
                target.allowed = allowed.clone();
                Ok(OpOutcome::default())
            }
        }
    }
}

impl Host for FakeHost {
    type Error = FakeError;

    async fn observe(&self) -> Result<ObservedHost, FakeError> {
        Ok(self.state.borrow().clone())
    }

    async fn execute(&self, op: &HostOp) -> Result<OpOutcome, FakeError> {
        self.apply(op)
    }
}

/// A declared host named `esxi-01`.
pub fn desired_host(prune: bool) -> DesiredHost {
    DesiredHost {
        name: "esxi-01".into(),
        connection: HostConnection {
            address: "https://esxi-01.lab.example".into(),
            thumbprint: Some("AB".repeat(32)),
            insecure: false,
            username: "root".into(),
            password: SecretRef::env("ESXI_PASSWORD"),
            secret_base: ".".into(),
        },
        datastore: "datastore1".into(),
        network: "VM Network".into(),
        prune,
        allowed_networks: None,
        ssh: None,
    }
}

/// A declared VM on `esxi-01` with one disk and one NIC.
pub fn desired_vm(name: &str, cpu: u32, memory_gib: u64, power: Power) -> DesiredVm {
    DesiredVm {
        name: name.into(),
        host: "esxi-01".into(),
        datastore_declared: false,
        config: VmSettings {
            cpu,
            memory_mib: memory_gib * 1024,
            guest_id: "ubuntu64Guest".into(),
            datastore: "datastore1".into(),
            disks: vec![20 * GIB],
            networks: vec!["VM Network".into()],
            power,
            protect: false,
            template: None,
            firmware: None,
            cloud_init: None,
            annotation: None,
            source: None,
        },
        addressing: vec![],
        cloud_init: None,
        shutdown: Default::default(),
        backup_policy: None,
    }
}

pub fn desired(vms: Vec<DesiredVm>, prune: bool) -> DesiredState {
    DesiredState {
        hosts: BTreeMap::from([("esxi-01".to_owned(), desired_host(prune))]),
        vms: vms.into_iter().map(|vm| (vm.name.clone(), vm)).collect(),
        ..DesiredState::default()
    }
}

pub fn observed(host: ObservedHost) -> ObservedState {
    BTreeMap::from([("esxi-01".to_owned(), host)])
}

pub fn meta() -> PlanMeta {
    PlanMeta {
        plan_id: "00000000-0000-4000-8000-000000000000".into(),
        created_at: "2026-11-27T09:00:00Z".into(),
        ceso_version: "0.0.0-test".into(),
        inventory: Some("examples/inventory".into()),
    }
}

pub fn plan(desired: &DesiredState, host: &ObservedHost, prune: bool) -> Plan {
    diff(
        desired,
        &observed(host.clone()),
        &PlanOptions {
            prune,
            ..PlanOptions::default()
        },
        meta(),
    )
}

/// A hook that records the events as text.
#[derive(Default)]
pub struct RecordingHook {
    pub events: RefCell<Vec<String>>,
}

impl ApplyHook for RecordingHook {
    fn step_started(&self, step: &Step) {
        self.events
            .borrow_mut()
            .push(format!("started {}", step.description));
    }
    fn step_succeeded(&self, step: &Step, _: Duration) {
        self.events
            .borrow_mut()
            .push(format!("succeeded {}", step.description));
    }
    fn step_failed(&self, step: &Step, _: Duration, error: &str) {
        self.events
            .borrow_mut()
            .push(format!("failed {}: {error}", step.description));
    }
    fn step_skipped(&self, step: &Step, reason: &str) {
        self.events
            .borrow_mut()
            .push(format!("skipped {}: {reason}", step.description));
    }
}

/// Runs a plan through the real executor against `fake` (host `esxi-01`).
pub fn execute_plan(
    fake: &FakeHost,
    plan: &Plan,
    parallelism: usize,
) -> (ApplyReport, Vec<String>) {
    let hosts = BTreeMap::from([("esxi-01".to_owned(), fake)]);
    let hook = RecordingHook::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(execute(
        plan,
        &hosts,
        parallelism,
        &hook,
        std::future::pending(),
    ));
    (report, hook.events.into_inner())
}

/// Applies a plan through the executor, panicking when a step does not succeed.
pub fn apply_all(fake: &FakeHost, plan: &Plan) {
    let (report, events) = execute_plan(fake, plan, 4);
    assert!(report.is_success(), "{events:#?}");
}

/// An unmanaged VM, as the simulator's default inventory has.
pub fn unmanaged_vm(name: &str, moref: &str) -> ObservedVm {
    ObservedVm {
        moref: moref.into(),
        name: name.into(),
        cpu: 1,
        memory_mib: 32,
        guest_id: "otherGuest".into(),
        power: Some(PowerState::PoweredOn),
        vmx_path: format!("[datastore1] {name}/{name}.vmx"),
        extra_config: BTreeMap::from([("govcsim".to_owned(), "TRUE".to_owned())]),
        ..Default::default()
    }
}
