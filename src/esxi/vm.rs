//! VM writes: `ConfigSpec` building for create and reconfigure, power and destroy, VM lookup
//! by name, and discovery of the VM folder and resource pool.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::EsxiClient;
use super::envelope::method_body;
use super::error::EsxiError;
use super::properties::{
    FilterSpec, ObjectContent, device_key, guest_ips, is_disk, is_nic, parse_devices,
    tools_running, traversal,
};
use super::xml::{Element, MoRef, XmlWriter, XsiType};
use crate::cloudinit::CloudInitConfig;
use crate::host::{
    APPLIED_KEY, CLONE_SNAPSHOT_PREFIX, CREATING_KEY, CloneSource, DiskChange, HostOp, MANAGED_KEY,
    NicChange, OpOutcome, POWER_KEY, PROTECT_KEY, VmCreateSpec, VmReconfigSpec,
};

/// Device key of the SCSI controller created together with a VM's disks.
const NEW_CONTROLLER_KEY: i32 = -100;
/// First temporary key of new disks (-101, -102, ...).
const NEW_DISK_KEY: i32 = -101;
/// First temporary key of new NICs (-201, -202, ...).
const NEW_NIC_KEY: i32 = -201;
/// Unit numbers per SCSI bus (0..=15; the controller itself sits on 7).
const SCSI_UNITS: i32 = 16;
/// SCSI buses per VM.
const SCSI_BUSES: i32 = 4;
/// Device types that are SCSI controllers.
const SCSI_TYPES: &[&str] = &[
    "ParaVirtualSCSIController",
    "VirtualLsiLogicController",
    "VirtualLsiLogicSASController",
    "VirtualBusLogicController",
    "VirtualSCSIController",
];

/// How often `WaitForGuestIp` reads the guest's addresses.
const GUEST_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often `WaitForGuestIp` and `ShutdownVm` report their progress.
const GUEST_PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// Why a VM cannot be shut down gracefully when its Tools do not run.
const TOOLS_NOT_RUNNING: &str = "VMware Tools are not running in the guest";

/// Where new VMs go: the datacenter's VM folder and the host's root resource pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The datacenter (the VM folder's owner), passed to `VirtualDiskManager` calls.
    pub datacenter: MoRef,
    pub vm_folder: MoRef,
    pub resource_pool: MoRef,
}

/// Disk capacity in KiB, rounded up (hosts allocate whole KiB).
fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

pub(super) fn write_extra_config(
    w: &mut XmlWriter,
    extra: &BTreeMap<String, String>,
    skip_empty: bool,
) {
    for (k, v) in extra {
        if skip_empty && v.is_empty() {
            continue;
        }
        w.start("extraConfig")
            .leaf("key", k)
            .leaf_typed("value", "xsd:string", v)
            .end("extraConfig");
    }
}

fn write_new_controller(w: &mut XmlWriter, key: i32, bus: i32) {
    w.start("deviceChange")
        .leaf("operation", "add")
        .start_typed("device", "ParaVirtualSCSIController")
        .leaf("key", &key.to_string())
        .leaf("busNumber", &bus.to_string())
        .leaf("sharedBus", "noSharing")
        .end("device")
        .end("deviceChange");
}

fn write_new_disk(w: &mut XmlWriter, key: i32, controller_key: i32, unit: i32, bytes: u64) {
    let kb = kib(bytes);
    w.start("deviceChange")
        .leaf("operation", "add")
        .leaf("fileOperation", "create")
        .start_typed("device", "VirtualDisk")
        .leaf("key", &key.to_string())
        .start_typed("backing", "VirtualDiskFlatVer2BackingInfo")
        .leaf("fileName", "")
        .leaf("diskMode", "persistent")
        .leaf("thinProvisioned", "true")
        .end("backing")
        .leaf("controllerKey", &controller_key.to_string())
        .leaf("unitNumber", &unit.to_string())
        .leaf("capacityInKB", &kb.to_string())
        .leaf("capacityInBytes", &(kb * 1024).to_string())
        .end("device")
        .end("deviceChange");
}

fn write_new_nic(w: &mut XmlWriter, key: i32, port_group: &str) {
    w.start("deviceChange")
        .leaf("operation", "add")
        .start_typed("device", "VirtualVmxnet3")
        .leaf("key", &key.to_string())
        .start_typed("backing", "VirtualEthernetCardNetworkBackingInfo")
        .leaf("deviceName", port_group)
        .end("backing")
        .start("connectable")
        .leaf("startConnected", "true")
        .leaf("allowGuestControl", "true")
        .leaf("connected", "false")
        .end("connectable")
        .leaf("addressType", "generated")
        .end("device")
        .end("deviceChange");
}

/// `<deviceChange>` sending back an existing device (edit or remove).
fn write_existing(w: &mut XmlWriter, operation: &str, file_operation: Option<&str>, dev: &Element) {
    w.start("deviceChange").leaf("operation", operation);
    if let Some(f) = file_operation {
        w.leaf("fileOperation", f);
    }
    dev.write_as("device", w);
    w.end("deviceChange");
}

/// Unit numbers 0.. on the new controller of a fresh VM, skipping the controller's unit 7.
fn fresh_units(count: usize) -> impl Iterator<Item = i32> {
    (0..SCSI_UNITS).filter(|u| *u != 7).take(count)
}

/// The disks a new VM gets as host-side copies, in order: the template disk, or every disk of
/// the VM it is cloned from. Empty for a VM with new, empty disks only.
pub(crate) fn disks_to_copy(spec: &VmCreateSpec) -> Result<Vec<&str>, EsxiError> {
    match (&spec.template_disk, &spec.clone_from) {
        (Some(_), Some(source)) => Err(EsxiError::InvalidSpec {
            vm: spec.name.clone(),
            message: format!(
                "it names both a template disk and a VM to clone ({:?}); give one source",
                source.vm
            ),
        }),
        (Some(template), None) => Ok(vec![template.as_str()]),
        (None, Some(source)) => Ok(source.disks.iter().map(String::as_str).collect()),
        (None, None) => Ok(Vec::new()),
    }
}

/// The `VirtualMachineConfigSpec` of `CreateVM_Task` (as the `config` element).
///
/// With disks to copy (a template or a clone source) the VM is created without disks (the SCSI
/// controller is still created): the copies are attached once they are in the VM's folder, and
/// the new disks are added with them so that they take the unit numbers after them.
pub(crate) fn create_config_spec(spec: &VmCreateSpec) -> Result<String, EsxiError> {
    let max_disks = fresh_units(usize::MAX).count();
    if spec.disks.len() > max_disks {
        return Err(EsxiError::InvalidSpec {
            vm: spec.name.clone(),
            message: format!(
                "{} disks requested; one SCSI controller holds at most {max_disks}",
                spec.disks.len()
            ),
        });
    }
    let new_disks: &[u64] = if disks_to_copy(spec)?.is_empty() {
        &spec.disks
    } else {
        &[]
    };
    let mut w = XmlWriter::new();
    w.start("config").leaf("name", &spec.name);
    if !spec.guest_id.is_empty() {
        w.leaf("guestId", &spec.guest_id);
    }
    // Schema order: annotation comes after guestId, before files.
    if let Some(annotation) = spec.annotation.as_deref().filter(|a| !a.is_empty()) {
        w.leaf("annotation", annotation);
    }
    w.start("files")
        .leaf("vmPathName", &format!("[{}]", spec.datastore))
        .end("files")
        .leaf("numCPUs", &spec.cpu.to_string())
        .leaf("memoryMB", &spec.memory_mib.to_string());
    write_new_controller(&mut w, NEW_CONTROLLER_KEY, 0);
    for ((i, bytes), unit) in new_disks
        .iter()
        .enumerate()
        .zip(fresh_units(new_disks.len()))
    {
        write_new_disk(
            &mut w,
            NEW_DISK_KEY - i as i32,
            NEW_CONTROLLER_KEY,
            unit,
            *bytes,
        );
    }
    for (i, pg) in spec.nics.iter().enumerate() {
        write_new_nic(&mut w, NEW_NIC_KEY - i as i32, pg);
    }
    write_extra_config(&mut w, &spec.extra_config, true);
    // Schema order: firmware comes after extraConfig.
    if let Some(firmware) = spec.firmware {
        w.leaf("firmware", &firmware.to_string());
    }
    w.end("config");
    Ok(w.finish())
}

/// The path of the VM's disk number `index` beside its `.vmx`, named as the host names new
/// disks: `[ds] web-01/web-01.vmx` → `[ds] web-01/web-01.vmdk` (index 0),
/// `[ds] web-01/web-01_1.vmdk` (index 1), ... `None` for a path that is not a
/// `[datastore] dir/name.vmx` path.
pub(crate) fn disk_path_beside_vmx(vmx_path: &str, index: usize) -> Option<String> {
    let vmx_path = vmx_path.trim();
    if !vmx_path.starts_with('[') || !vmx_path.contains(']') {
        return None;
    }
    let stem = vmx_path.strip_suffix(".vmx")?;
    let file = stem.rsplit(['/', ']']).next()?.trim();
    if file.is_empty() {
        return None;
    }
    Some(if index == 0 {
        format!("{stem}.vmdk")
    } else {
        format!("{stem}_{index}.vmdk")
    })
}

/// The arguments of `VirtualDiskManager.CopyVirtualDisk_Task`: a thin copy (without
/// `destSpec` a host writes a preallocated disk), never overwriting an existing file.
pub(crate) fn copy_disk_body(
    disk_manager: &MoRef,
    datacenter: &MoRef,
    source: &str,
    dest: &str,
) -> String {
    let mut w = method_body(disk_manager);
    w.leaf("sourceName", source)
        .moref("sourceDatacenter", datacenter)
        .leaf("destName", dest)
        .moref("destDatacenter", datacenter)
        .start_typed("destSpec", "VirtualDiskSpec")
        .leaf("diskType", "thin")
        .leaf("adapterType", "lsiLogic")
        .end("destSpec")
        .leaf("force", "false");
    w.finish()
}

/// The `ReconfigVM_Task` spec that attaches the copied disks `copies` in order (on the first
/// free units of the VM's SCSI controller, units 0, 1, ... on a fresh VM) and adds `new_disks`
/// after them.
///
/// Each copy is attached as it is (existing backing, no `fileOperation`, capacity 0: the host
/// reads the real capacity from the disk); growing it is a separate edit.
pub(crate) fn attach_disks_spec(
    vm: &str,
    copies: &[String],
    new_disks: &[u64],
    devices: &[Element],
) -> Result<String, EsxiError> {
    let mut allocator = UnitAllocator::for_devices(vm, devices)?;
    let mut w = XmlWriter::new();
    w.start("spec");
    if let Some((key, bus)) = allocator.new_controller {
        write_new_controller(&mut w, key, bus);
    }
    let mut next_key = NEW_DISK_KEY;
    for file_name in copies {
        let unit = allocator.next(vm)?;
        w.start("deviceChange")
            .leaf("operation", "add")
            .start_typed("device", "VirtualDisk")
            .leaf("key", &next_key.to_string())
            .start_typed("backing", "VirtualDiskFlatVer2BackingInfo")
            .leaf("fileName", file_name)
            .leaf("diskMode", "persistent")
            .end("backing")
            .leaf("controllerKey", &allocator.controller_key.to_string())
            .leaf("unitNumber", &unit.to_string())
            .leaf("capacityInKB", "0")
            .end("device")
            .end("deviceChange");
        next_key -= 1;
    }
    for bytes in new_disks {
        let unit = allocator.next(vm)?;
        write_new_disk(&mut w, next_key, allocator.controller_key, unit, *bytes);
        next_key -= 1;
    }
    w.end("spec");
    Ok(w.finish())
}

/// The MAC addresses of a VM's network adapters, in adapter order (as `observe` orders them).
/// Fails when the host has not assigned one yet: cloud-init matches interfaces by MAC.
pub(crate) fn nic_macs(vm: &str, devices: &[Element]) -> Result<Vec<String>, EsxiError> {
    let (_, nics) = parse_devices(devices);
    nics.into_iter()
        .map(|nic| {
            if nic.mac_address.trim().is_empty() {
                Err(EsxiError::InvalidSpec {
                    vm: vm.to_owned(),
                    message: format!(
                        "network adapter {} has no MAC address yet; cloud-init needs it to \
                         match the interface",
                        nic.key
                    ),
                })
            } else {
                Ok(nic.mac_address)
            }
        })
        .collect()
}

/// An address as the guest reports it, in canonical form (`::1`, not `0:0::1`); text that is
/// not an address stays as it is.
fn canonical_ip(address: &str) -> String {
    let plain = address.split('/').next().unwrap_or(address).trim();
    plain
        .parse::<IpAddr>()
        .map_or_else(|_| plain.to_owned(), |ip| ip.to_string())
}

/// One line of `WaitForGuestIp` progress, e.g. `waiting for web-01 to report 192.168.1.100:
/// 20 s of 300 s, Tools running, reported 10.0.0.5`.
pub(crate) fn guest_progress_line(
    vm: &str,
    expected: &[String],
    waited: Duration,
    timeout: Duration,
    tools_running: bool,
    reported: &[String],
) -> String {
    let tools = if tools_running {
        "Tools running"
    } else {
        "Tools not running"
    };
    let reported = if reported.is_empty() {
        "no address reported".to_owned()
    } else {
        format!("reported {}", reported.join(", "))
    };
    format!(
        "waiting for {vm} to report {}: {} s of {} s, {tools}, {reported}",
        expected.join(", "),
        waited.as_secs(),
        timeout.as_secs()
    )
}

/// Whether the reconfiguration has to look at the VM's current devices.
pub(crate) fn needs_devices(spec: &VmReconfigSpec) -> bool {
    !spec.disks.is_empty()
        || spec
            .nics
            .iter()
            .any(|n| !matches!(n, NicChange::Add { .. }))
}

/// Hands out free unit numbers on a SCSI controller for new disks.
struct UnitAllocator {
    controller_key: i32,
    /// A controller that has to be added first: (key, bus number).
    new_controller: Option<(i32, i32)>,
    used: BTreeSet<i32>,
}

impl UnitAllocator {
    /// Picks the SCSI controller with the lowest bus number that has a free unit, or plans a
    /// new paravirtual controller on the next free bus.
    fn for_devices(vm: &str, devices: &[Element]) -> Result<Self, EsxiError> {
        let mut controllers: Vec<(i32, i32, i32)> = devices
            .iter()
            .filter(|d| {
                d.type_name().is_some_and(|t| SCSI_TYPES.contains(&t))
                    || d.child("scsiCtlrUnitNumber").is_some()
            })
            .filter_map(|d| {
                Some((
                    d.child_parse("busNumber").unwrap_or(0),
                    device_key(d)?,
                    d.child_parse("scsiCtlrUnitNumber").unwrap_or(7),
                ))
            })
            .collect();
        controllers.sort_unstable();
        for &(_, key, own_unit) in &controllers {
            let mut used: BTreeSet<i32> = devices
                .iter()
                .filter(|d| d.child_parse::<i32>("controllerKey") == Some(key))
                .filter_map(|d| d.child_parse("unitNumber"))
                .collect();
            used.insert(own_unit);
            if used.len() < SCSI_UNITS as usize {
                return Ok(Self {
                    controller_key: key,
                    new_controller: None,
                    used,
                });
            }
        }
        let buses: BTreeSet<i32> = controllers.iter().map(|c| c.0).collect();
        let bus = (0..SCSI_BUSES)
            .find(|b| !buses.contains(b))
            .ok_or_else(|| EsxiError::InvalidSpec {
                vm: vm.to_owned(),
                message: "all SCSI controllers are full".into(),
            })?;
        Ok(Self {
            controller_key: NEW_CONTROLLER_KEY,
            new_controller: Some((NEW_CONTROLLER_KEY, bus)),
            used: BTreeSet::from([7]),
        })
    }

    fn next(&mut self, vm: &str) -> Result<i32, EsxiError> {
        let unit = (0..SCSI_UNITS)
            .find(|u| !self.used.contains(u))
            .ok_or_else(|| EsxiError::InvalidSpec {
                vm: vm.to_owned(),
                message: format!(
                    "no free unit number on SCSI controller {}",
                    self.controller_key
                ),
            })?;
        self.used.insert(unit);
        Ok(unit)
    }
}

/// The `VirtualMachineConfigSpec` of `ReconfigVM_Task` (as the `spec` element), or `None` when
/// there is nothing to change. `devices` is the VM's `config.hardware.device`.
pub(crate) fn reconfig_config_spec(
    vm: &str,
    spec: &VmReconfigSpec,
    devices: &[Element],
) -> Result<Option<String>, EsxiError> {
    let find = |key: i32, what: &'static str, pred: fn(&Element) -> bool| {
        devices
            .iter()
            .find(|d| device_key(d) == Some(key) && pred(d))
            .ok_or_else(|| EsxiError::DeviceNotFound {
                vm: vm.to_owned(),
                what,
                key,
            })
    };
    let mut changes = XmlWriter::new();
    let mut allocator: Option<UnitAllocator> = None;
    let mut new_disks = 0;
    for change in &spec.disks {
        match change {
            DiskChange::Grow { key, size_bytes } => {
                let mut dev = find(*key, "disk", is_disk)?.clone();
                let kb = kib(*size_bytes);
                dev.set_child_text("capacityInKB", &kb.to_string(), Some("unitNumber"));
                dev.set_child_text(
                    "capacityInBytes",
                    &(kb * 1024).to_string(),
                    Some("capacityInKB"),
                );
                write_existing(&mut changes, "edit", None, &dev);
            }
            DiskChange::Remove { key } => {
                let dev = find(*key, "disk", is_disk)?;
                write_existing(&mut changes, "remove", Some("destroy"), dev);
            }
            DiskChange::Add { size_bytes } => {
                if allocator.is_none() {
                    let a = UnitAllocator::for_devices(vm, devices)?;
                    if let Some((key, bus)) = a.new_controller {
                        write_new_controller(&mut changes, key, bus);
                    }
                    allocator = Some(a);
                }
                if let Some(a) = allocator.as_mut() {
                    let unit = a.next(vm)?;
                    write_new_disk(
                        &mut changes,
                        NEW_DISK_KEY - new_disks,
                        a.controller_key,
                        unit,
                        *size_bytes,
                    );
                    new_disks += 1;
                }
            }
        }
    }
    let mut new_nics = 0;
    for change in &spec.nics {
        match change {
            NicChange::SetPortGroup { key, port_group } => {
                let mut dev = find(*key, "network adapter", is_nic)?.clone();
                let mut backing = Element::new("backing");
                backing.xsi_type = Some(XsiType {
                    name: "VirtualEthernetCardNetworkBackingInfo".into(),
                    xsd: false,
                });
                backing
                    .children
                    .push(Element::leaf("deviceName", port_group));
                match dev.child_mut("backing") {
                    Some(b) => *b = backing,
                    None => {
                        // Schema order: key, deviceInfo, backing, ...
                        let at = dev
                            .children
                            .iter()
                            .rposition(|c| c.name == "key" || c.name == "deviceInfo")
                            .map_or(0, |p| p + 1);
                        dev.children.insert(at, backing);
                    }
                }
                write_existing(&mut changes, "edit", None, &dev);
            }
            NicChange::Remove { key } => {
                let dev = find(*key, "network adapter", is_nic)?;
                write_existing(&mut changes, "remove", None, dev);
            }
            NicChange::Add { port_group } => {
                write_new_nic(&mut changes, NEW_NIC_KEY - new_nics, port_group);
                new_nics += 1;
            }
        }
    }
    let device_changes = changes.finish();
    if spec.cpu.is_none()
        && spec.memory_mib.is_none()
        && spec.guest_id.is_none()
        && spec.annotation.is_none()
        && device_changes.is_empty()
        && spec.extra_config.is_empty()
    {
        return Ok(None);
    }
    let mut w = XmlWriter::new();
    w.start("spec");
    if let Some(g) = &spec.guest_id {
        w.leaf("guestId", g);
    }
    // An empty annotation clears the notes.
    if let Some(annotation) = &spec.annotation {
        w.leaf("annotation", annotation);
    }
    if let Some(c) = spec.cpu {
        w.leaf("numCPUs", &c.to_string());
    }
    if let Some(m) = spec.memory_mib {
        w.leaf("memoryMB", &m.to_string());
    }
    w.buf.push_str(&device_changes);
    write_extra_config(&mut w, &spec.extra_config, false);
    w.end("spec");
    Ok(Some(w.finish()))
}

/// The arguments of `CreateSnapshot_Task` for the snapshot a running VM is cloned from
/// ([`CLONE_SNAPSHOT_PREFIX`] + the clone's name): without memory and without quiescing, so the
/// guest is not involved; the snapshot only makes the base disks read-only for the copy.
pub(crate) fn clone_snapshot_body(source: &MoRef, clone_name: &str) -> String {
    snapshot_body(
        source,
        &format!("{CLONE_SNAPSHOT_PREFIX}{clone_name}"),
        &format!("Taken by ceso to clone this VM to {clone_name}; removed after the copy"),
        false,
    )
}

/// The arguments of `CreateSnapshot_Task` without the guest's memory; `quiesce` asks VMware
/// Tools to quiesce the guest's file systems first.
pub(crate) fn snapshot_body(vm: &MoRef, name: &str, description: &str, quiesce: bool) -> String {
    let mut w = method_body(vm);
    w.leaf("name", name)
        .leaf("description", description)
        .leaf("memory", "false")
        .leaf("quiesce", if quiesce { "true" } else { "false" });
    w.finish()
}

/// The arguments of `RemoveSnapshot_Task`: this snapshot only (its children stay), its changes
/// consolidated into the disks.
pub(crate) fn remove_snapshot_body(snapshot: &MoRef) -> String {
    let mut w = method_body(snapshot);
    w.leaf("removeChildren", "false")
        .leaf("consolidate", "true");
    w.finish()
}

/// A snapshot ceso took of a clone source and has not removed yet.
#[derive(Debug, Clone)]
struct CloneSnapshot {
    snapshot: MoRef,
    name: String,
    /// The source VM's name.
    source: String,
}

/// What a creation has made so far that destroying the new VM would not remove.
#[derive(Debug, Default)]
struct CreateLeftovers {
    /// Copied disks not yet attached to the new VM (once attached, destroying the VM deletes
    /// them).
    unattached_copies: Vec<String>,
    /// The snapshot of a running clone source, until it is removed.
    clone_snapshot: Option<CloneSnapshot>,
}

impl EsxiClient {
    /// Carries out one `HostOp`.
    pub(crate) async fn execute_op(&self, op: &HostOp) -> Result<OpOutcome, EsxiError> {
        match op {
            HostOp::CreateVm { spec } => self.create_vm(spec).await,
            HostOp::ReconfigureVm { moref, vm, spec } => {
                self.reconfigure_vm(moref.as_deref(), vm, spec).await
            }
            HostOp::PowerOn { moref, vm } => {
                self.power_task("PowerOnVM_Task", "poweredOn", moref.as_deref(), vm)
                    .await
            }
            HostOp::PowerOff { moref, vm } => {
                self.power_task("PowerOffVM_Task", "poweredOff", moref.as_deref(), vm)
                    .await
            }
            HostOp::DestroyVm { moref, vm } => self.destroy_managed(moref.as_deref(), vm).await,
            HostOp::ShutdownVm {
                moref,
                vm,
                timeout_secs,
                force,
            } => {
                self.shutdown_vm(
                    moref.as_deref(),
                    vm,
                    Duration::from_secs(*timeout_secs),
                    *force,
                )
                .await
            }
            HostOp::RemoveSnapshot {
                vm, snapshot, name, ..
            } => {
                let snapshot = MoRef::new("VirtualMachineSnapshot", snapshot);
                if self.remove_snapshot(&snapshot, vm).await? {
                    tracing::info!("{vm}: removed snapshot {name:?} ({})", snapshot.value);
                } else {
                    tracing::info!(
                        "{vm}: snapshot {name:?} ({}) was already gone",
                        snapshot.value
                    );
                }
                Ok(OpOutcome::default())
            }
            HostOp::WaitForGuestIp {
                moref,
                vm,
                addresses,
                timeout_secs,
            } => {
                self.wait_for_guest_ip(
                    moref.as_deref(),
                    vm,
                    addresses,
                    Duration::from_secs(*timeout_secs),
                )
                .await
            }
            HostOp::UpdateFirewallRuleset {
                firewall_system,
                ruleset,
                allowed,
            } => self.update_ruleset(firewall_system, ruleset, allowed).await,
        }
    }

    /// `CreateVM_Task`, then (from a template or a clone source) the disk copies, attach and
    /// grow, then (with cloud-init) the guestinfo. When a step after the creation fails, the
    /// new VM is destroyed again (and a clone snapshot removed). Never `CloneVM_Task`: a
    /// standalone host refuses it.
    async fn create_vm(&self, spec: &VmCreateSpec) -> Result<OpOutcome, EsxiError> {
        let config = create_config_spec(spec)?;
        let placement = self.placement().await?;
        if !disks_to_copy(spec)?.is_empty() && self.service.virtual_disk_manager.is_none() {
            return Err(EsxiError::Inventory {
                address: self.transport.address().to_owned(),
                message: "the host has no VirtualDiskManager to copy disks with".into(),
            });
        }
        let mut w = method_body(&placement.vm_folder);
        w.buf.push_str(&config);
        w.moref("pool", &placement.resource_pool);
        let result = self
            .run_task("CreateVM_Task", &w.finish(), &spec.name)
            .await?;
        let created = result
            .and_then(|r| r.as_moref())
            .ok_or_else(|| EsxiError::Protocol {
                address: self.transport.address().to_owned(),
                method: "CreateVM_Task".into(),
                message: "the task result holds no VM reference".into(),
            })?;
        let mut leftovers = CreateLeftovers::default();
        if let Err(cause) = self
            .finish_create(&created, spec, placement, &mut leftovers)
            .await
        {
            return Err(self
                .roll_back_create(&created, &spec.name, placement, leftovers, cause)
                .await);
        }
        Ok(OpOutcome {
            created_moref: Some(created.value),
        })
    }

    /// The steps after `CreateVM_Task`, recording in `leftovers` what the rollback would have
    /// to remove besides the VM.
    async fn finish_create(
        &self,
        vm_ref: &MoRef,
        spec: &VmCreateSpec,
        placement: &Placement,
        leftovers: &mut CreateLeftovers,
    ) -> Result<(), EsxiError> {
        let vm = spec.name.as_str();
        let sources = disks_to_copy(spec)?;
        let mut devices = None;
        if !sources.is_empty() {
            let o = self
                .read_vm(
                    vm_ref,
                    vm,
                    &["config.files.vmPathName", "config.hardware.device"],
                )
                .await?;
            let vmx_path = o.prop_text("config.files.vmPathName").unwrap_or_default();
            let dests: Vec<String> = (0..sources.len())
                .map(|i| disk_path_beside_vmx(vmx_path, i))
                .collect::<Option<_>>()
                .ok_or_else(|| EsxiError::Protocol {
                    address: self.transport.address().to_owned(),
                    method: "RetrievePropertiesEx".into(),
                    message: format!(
                        "VM {vm:?} has no usable config.files.vmPathName ({vmx_path:?})"
                    ),
                })?;
            let fresh_devices = o
                .prop("config.hardware.device")
                .map(|d| d.children.clone())
                .unwrap_or_default();

            // The source's power state now, not when the plan was made: a running VM's disks
            // are only consistent (and readable) through a snapshot.
            // A source without a VM (the disks of a backup placed on the datastore) never runs.
            let source_runs = match &spec.clone_from {
                Some(source) if !source.moref.is_empty() => {
                    let state = self
                        .read_vm(
                            &MoRef::new("VirtualMachine", &source.moref),
                            &source.vm,
                            &["runtime.powerState"],
                        )
                        .await?;
                    state.prop_text("runtime.powerState").map(str::trim) != Some("poweredOff")
                }
                _ => false,
            };
            match spec.clone_from.as_ref().filter(|_| source_runs) {
                Some(source) => {
                    self.copy_from_snapshot(source, vm, &sources, &dests, placement, leftovers)
                        .await?
                }
                None => {
                    self.copy_disks(vm, &sources, &dests, placement, leftovers)
                        .await?
                }
            }

            let attach = attach_disks_spec(
                vm,
                &dests,
                spec.disks.get(sources.len()..).unwrap_or(&[]),
                &fresh_devices,
            )?;
            self.reconfig_task(vm_ref, vm, &attach).await?;
            leftovers.unattached_copies.clear();

            let attached = self.vm_devices(vm_ref, vm).await?;
            self.grow_copies(vm_ref, vm, &sources, &dests, &spec.disks, &attached)
                .await?;
            devices = Some(attached);
        }
        // The last write also clears the "being created" marker: from then on the VM is whole.
        let finished: BTreeMap<String, String> = spec
            .extra_config
            .contains_key(CREATING_KEY)
            .then(|| (CREATING_KEY.to_owned(), String::new()))
            .into_iter()
            .collect();
        if let Some(cloud_init) = &spec.cloud_init {
            let devices = match devices {
                Some(d) => d,
                None => self.vm_devices(vm_ref, vm).await?,
            };
            self.write_guestinfo(vm_ref, vm, cloud_init, &devices, finished)
                .await?;
        } else if !finished.is_empty() {
            let spec = VmReconfigSpec {
                extra_config: finished,
                ..VmReconfigSpec::default()
            };
            if let Some(config) = reconfig_config_spec(vm, &spec, &[])? {
                self.reconfig_task(vm_ref, vm, &config).await?;
            }
        }
        Ok(())
    }

    /// Copies `sources[i]` to `dests[i]` on the host (`CopyVirtualDisk_Task`, thin), one after
    /// the other, recording each finished copy as unattached.
    async fn copy_disks(
        &self,
        vm: &str,
        sources: &[&str],
        dests: &[String],
        placement: &Placement,
        leftovers: &mut CreateLeftovers,
    ) -> Result<(), EsxiError> {
        let disk_manager =
            self.service
                .virtual_disk_manager
                .as_ref()
                .ok_or_else(|| EsxiError::Inventory {
                    address: self.transport.address().to_owned(),
                    message: "the host has no VirtualDiskManager to copy disks with".into(),
                })?;
        for (i, (source, dest)) in sources.iter().zip(dests).enumerate() {
            tracing::info!(
                "{vm}: copying disk {} of {} ({source}) to {dest}",
                i + 1,
                sources.len()
            );
            let body = copy_disk_body(disk_manager, &placement.datacenter, source, dest);
            self.run_task("CopyVirtualDisk_Task", &body, vm).await?;
            leftovers.unattached_copies.push(dest.clone());
        }
        Ok(())
    }

    /// Copies the disks of a running source: snapshot it (so its base disks are read-only and
    /// the copy consistent), copy, and remove the snapshot whether the copy worked or not.
    async fn copy_from_snapshot(
        &self,
        source: &CloneSource,
        vm: &str,
        sources: &[&str],
        dests: &[String],
        placement: &Placement,
        leftovers: &mut CreateLeftovers,
    ) -> Result<(), EsxiError> {
        let source_ref = MoRef::new("VirtualMachine", &source.moref);
        let name = format!("{CLONE_SNAPSHOT_PREFIX}{vm}");
        tracing::info!(
            "{vm}: taking snapshot {name:?} of the running {}",
            source.vm
        );
        let result = self
            .run_task(
                "CreateSnapshot_Task",
                &clone_snapshot_body(&source_ref, vm),
                &source.vm,
            )
            .await
            .map_err(|e| vm_gone(e, &source.vm))?;
        let snapshot = result
            .and_then(|r| r.as_moref())
            .ok_or_else(|| EsxiError::Protocol {
                address: self.transport.address().to_owned(),
                method: "CreateSnapshot_Task".into(),
                message: "the task result holds no snapshot reference".into(),
            })?;
        leftovers.clone_snapshot = Some(CloneSnapshot {
            snapshot: snapshot.clone(),
            name: name.clone(),
            source: source.vm.clone(),
        });
        let copied = self
            .copy_disks(vm, sources, dests, placement, leftovers)
            .await;
        let removed = self.remove_snapshot(&snapshot, &source.vm).await;
        match &removed {
            Ok(_) => {
                tracing::info!("{vm}: removed snapshot {name:?} of {}", source.vm);
                leftovers.clone_snapshot = None;
            }
            Err(e) => tracing::warn!(
                "{vm}: removing snapshot {name:?} of {} failed: {e}",
                source.vm
            ),
        }
        copied?;
        removed.map(|_| ())
    }

    /// Grows each copied disk to its declared size (one `ReconfigVM_Task` for all); a copy
    /// larger than declared is an error: disks never shrink.
    async fn grow_copies(
        &self,
        vm_ref: &MoRef,
        vm: &str,
        sources: &[&str],
        dests: &[String],
        declared: &[u64],
        attached: &[Element],
    ) -> Result<(), EsxiError> {
        let (disks, _) = parse_devices(attached);
        let mut grow = VmReconfigSpec::default();
        for (i, ((source, dest), &wanted)) in sources.iter().zip(dests).zip(declared).enumerate() {
            let disk = disks.iter().find(|d| d.file_name == *dest).ok_or_else(|| {
                EsxiError::InvalidSpec {
                    vm: vm.to_owned(),
                    message: format!("the attached copy {dest} is not among the VM's disks"),
                }
            })?;
            let wanted_bytes = kib(wanted) * 1024;
            if wanted_bytes < disk.capacity_bytes {
                return Err(EsxiError::InvalidSpec {
                    vm: vm.to_owned(),
                    message: format!(
                        "the copied disk {source} holds {} bytes, more than the {wanted} bytes \
                         declared for disk {i}; disks never shrink: declare at least the \
                         source's size",
                        disk.capacity_bytes
                    ),
                });
            }
            if wanted_bytes > disk.capacity_bytes {
                grow.disks.push(DiskChange::Grow {
                    key: disk.key,
                    size_bytes: wanted,
                });
            }
        }
        if let Some(config) = reconfig_config_spec(vm, &grow, attached)? {
            self.reconfig_task(vm_ref, vm, &config).await?;
        }
        Ok(())
    }

    /// `RemoveSnapshot_Task` (this snapshot only, consolidated). `Ok(false)` when the snapshot
    /// is already gone.
    pub(super) async fn remove_snapshot(
        &self,
        snapshot: &MoRef,
        vm: &str,
    ) -> Result<bool, EsxiError> {
        match self
            .run_task("RemoveSnapshot_Task", &remove_snapshot_body(snapshot), vm)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.fault_type() == Some("ManagedObjectNotFound") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes what a creation that failed part-way made: the clone snapshot if it is still
    /// there, the copied disks never attached, then the VM itself (with its attached disks).
    /// Returns the error to report; it names whatever could not be removed.
    async fn roll_back_create(
        &self,
        vm_ref: &MoRef,
        vm: &str,
        placement: &Placement,
        leftovers: CreateLeftovers,
        cause: EsxiError,
    ) -> EsxiError {
        tracing::warn!(
            "creating {vm} failed ({cause}); destroying the new VM {}",
            vm_ref.value
        );
        let mut remaining: Vec<String> = Vec::new();
        let mut first_failure: Option<EsxiError> = None;
        let mut failed = |error: EsxiError, what: String, remaining: &mut Vec<String>| {
            tracing::warn!("rolling back {vm}: could not remove {what}: {error}");
            remaining.push(what);
            first_failure.get_or_insert(error);
        };
        if let Some(snap) = &leftovers.clone_snapshot
            && let Err(e) = self.remove_snapshot(&snap.snapshot, &snap.source).await
        {
            failed(
                e,
                format!(
                    "the snapshot {:?} ({}) of VM {:?}",
                    snap.name, snap.snapshot.value, snap.source
                ),
                &mut remaining,
            );
        }
        if let Some(disk_manager) = &self.service.virtual_disk_manager {
            for disk in &leftovers.unattached_copies {
                let mut w = method_body(disk_manager);
                w.leaf("name", disk)
                    .moref("datacenter", &placement.datacenter);
                match self
                    .run_task("DeleteVirtualDisk_Task", &w.finish(), vm)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.fault_type() == Some("FileNotFound") => {}
                    Err(e) => failed(e, format!("the disk {disk}"), &mut remaining),
                }
            }
        }
        let w = method_body(vm_ref);
        match self.run_task("Destroy_Task", &w.finish(), vm).await {
            Ok(_) => {}
            // Already gone: nothing is left behind.
            Err(e) if e.fault_type() == Some("ManagedObjectNotFound") => {}
            Err(e) => {
                remaining.insert(0, format!("VM {vm:?} (moref {})", vm_ref.value));
                first_failure.get_or_insert(e);
            }
        }
        let cause = Box::new(cause);
        match first_failure {
            None => EsxiError::CreateRolledBack {
                vm: vm.to_owned(),
                cause,
            },
            Some(rollback) => EsxiError::RollbackFailed {
                vm: vm.to_owned(),
                cause,
                rollback: Box::new(rollback),
                leftover: remaining.join(" and "),
            },
        }
    }

    /// Shuts the guest down through VMware Tools and waits up to `timeout` for the VM to be
    /// off; without Tools, or when the time runs out, powers it off hard if `force`, otherwise
    /// refuses ([`EsxiError::ShutdownRefused`], the VM left running). A VM that is already off
    /// is fine. Records `ceso.power=off` once the VM is off.
    async fn shutdown_vm(
        &self,
        moref: Option<&str>,
        vm: &str,
        timeout: Duration,
        force: bool,
    ) -> Result<OpOutcome, EsxiError> {
        let vm_ref = self.resolve_vm(moref, vm).await?;
        let o = self
            .read_vm(
                &vm_ref,
                vm,
                &["runtime.powerState", "guest.toolsRunningStatus"],
            )
            .await?;
        let state = o
            .prop_text("runtime.powerState")
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if state == "poweredOff" {
            tracing::info!("{vm} is already poweredOff");
            self.record_power(&vm_ref, vm, "off").await;
            return Ok(OpOutcome::default());
        }
        let reason = if state != "poweredOn" {
            format!("it is {state}, and only a running guest can shut itself down")
        } else if !tools_running(o.prop_text("guest.toolsRunningStatus")) {
            TOOLS_NOT_RUNNING.to_owned()
        } else {
            tracing::info!("{vm}: asking the guest to shut down (VMware Tools)");
            let w = method_body(&vm_ref);
            match self
                .call("ShutdownGuest", &w.finish())
                .await
                .map_err(|e| vm_gone(e, vm))
            {
                Ok(_) => {
                    if self.wait_powered_off(&vm_ref, vm, timeout).await? {
                        tracing::info!("{vm}: the guest shut down");
                        self.record_power(&vm_ref, vm, "off").await;
                        return Ok(OpOutcome::default());
                    }
                    format!(
                        "the guest did not stop within {} s of the shutdown request (it may still be stopping)",
                        timeout.as_secs()
                    )
                }
                Err(e) if e.fault_type() == Some("ToolsUnavailable") => {
                    TOOLS_NOT_RUNNING.to_owned()
                }
                // It went off between the read and the request.
                Err(e) if e.fault_type() == Some("InvalidPowerState") => {
                    if self.wait_powered_off(&vm_ref, vm, Duration::ZERO).await? {
                        self.record_power(&vm_ref, vm, "off").await;
                        return Ok(OpOutcome::default());
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        };
        if !force {
            return Err(EsxiError::ShutdownRefused {
                vm: vm.to_owned(),
                reason,
            });
        }
        let line = format!("{vm}: {reason}; powering it off hard (force is set)");
        tracing::warn!("{line}");
        eprintln!("{line}");
        self.power_task("PowerOffVM_Task", "poweredOff", Some(&vm_ref.value), vm)
            .await
    }

    /// Polls `runtime.powerState` (every second at most) until the VM is off or `timeout`
    /// passes, reporting progress about every ten seconds (log and stderr). Whether it is off.
    async fn wait_powered_off(
        &self,
        vm_ref: &MoRef,
        vm: &str,
        timeout: Duration,
    ) -> Result<bool, EsxiError> {
        let start = Instant::now();
        let mut next_progress = start + GUEST_PROGRESS_INTERVAL;
        let mut pause = Duration::from_millis(200);
        loop {
            let o = self.read_vm(vm_ref, vm, &["runtime.powerState"]).await?;
            if o.prop_text("runtime.powerState").map(str::trim) == Some("poweredOff") {
                return Ok(true);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Ok(false);
            }
            if Instant::now() >= next_progress {
                let line = format!(
                    "waiting for {vm} to shut down: {} s of {} s",
                    waited.as_secs(),
                    timeout.as_secs()
                );
                tracing::info!("{line}");
                eprintln!("{line}");
                next_progress += GUEST_PROGRESS_INTERVAL;
            }
            tokio::time::sleep(pause.min(timeout - waited)).await;
            pause = (pause * 2).min(GUEST_POLL_INTERVAL);
        }
    }

    /// Records the power state ceso brought the VM to in its `ceso.power` key; a failure is
    /// only logged (the power change itself succeeded).
    async fn record_power(&self, vm_ref: &MoRef, vm: &str, reached: &str) {
        let record = VmReconfigSpec {
            extra_config: [(POWER_KEY.to_owned(), reached.to_owned())].into(),
            ..VmReconfigSpec::default()
        };
        if let Err(error) = self.reconfigure_vm(Some(&vm_ref.value), vm, &record).await {
            tracing::warn!("{vm} is {reached}, but recording it in {POWER_KEY} failed: {error}");
        }
    }

    /// Runs `ReconfigVM_Task` with a prepared `spec` element.
    pub(super) async fn reconfig_task(
        &self,
        vm_ref: &MoRef,
        vm: &str,
        spec: &str,
    ) -> Result<(), EsxiError> {
        let mut w = method_body(vm_ref);
        w.buf.push_str(spec);
        self.run_task("ReconfigVM_Task", &w.finish(), vm)
            .await
            .map_err(|e| vm_gone(e, vm))?;
        Ok(())
    }

    /// Reads `paths` of one VM; a VM that is gone is [`EsxiError::VmNotFound`].
    pub(super) async fn read_vm(
        &self,
        vm_ref: &MoRef,
        vm: &str,
        paths: &[&str],
    ) -> Result<ObjectContent, EsxiError> {
        let o = self
            .retrieve_one(vm_ref, paths)
            .await
            .map_err(|e| vm_gone(e, vm))?
            .ok_or_else(|| EsxiError::VmNotFound { vm: vm.to_owned() })?;
        if o.missing
            .iter()
            .any(|(_, f)| f.fault == "ManagedObjectNotFound")
        {
            return Err(EsxiError::VmNotFound { vm: vm.to_owned() });
        }
        Ok(o)
    }

    /// The VM's `config.hardware.device` (one read).
    async fn vm_devices(&self, vm_ref: &MoRef, vm: &str) -> Result<Vec<Element>, EsxiError> {
        let o = self
            .read_vm(vm_ref, vm, &["config.hardware.device"])
            .await?;
        Ok(o.prop("config.hardware.device")
            .map(|d| d.children.clone())
            .unwrap_or_default())
    }

    /// Renders the cloud-init guestinfo for the VM's adapters (`devices`) and writes it with
    /// one `ReconfigVM_Task`.
    async fn write_guestinfo(
        &self,
        vm_ref: &MoRef,
        vm: &str,
        config: &CloudInitConfig,
        devices: &[Element],
        also: BTreeMap<String, String>,
    ) -> Result<(), EsxiError> {
        let macs = nic_macs(vm, devices)?;
        let mut extra_config = crate::cloudinit::guestinfo(config, &macs);
        extra_config.extend(also);
        let spec = VmReconfigSpec {
            extra_config,
            ..VmReconfigSpec::default()
        };
        if let Some(config) = reconfig_config_spec(vm, &spec, &[])? {
            tracing::info!(
                "{vm}: writing cloud-init guestinfo for MAC {}",
                macs.join(", ")
            );
            self.reconfig_task(vm_ref, vm, &config).await?;
        }
        Ok(())
    }

    async fn reconfigure_vm(
        &self,
        moref: Option<&str>,
        vm: &str,
        spec: &VmReconfigSpec,
    ) -> Result<OpOutcome, EsxiError> {
        let vm_ref = self.resolve_vm(moref, vm).await?;
        let devices = if needs_devices(spec) {
            self.vm_devices(&vm_ref, vm).await?
        } else {
            Vec::new()
        };
        // With new guestinfo, the record of what was applied is written together with it: if
        // that last write fails, the next plan still sees the old record and tries again.
        let mut first = spec.clone();
        let mut with_guestinfo = BTreeMap::new();
        if spec.cloud_init.is_some()
            && let Some(applied) = first.extra_config.remove(APPLIED_KEY)
        {
            with_guestinfo.insert(APPLIED_KEY.to_owned(), applied);
        }
        if let Some(config) = reconfig_config_spec(vm, &first, &devices)? {
            self.reconfig_task(&vm_ref, vm, &config).await?;
        }
        if let Some(cloud_init) = &spec.cloud_init {
            let devices = self.vm_devices(&vm_ref, vm).await?;
            self.write_guestinfo(&vm_ref, vm, cloud_init, &devices, with_guestinfo)
                .await?;
        }
        Ok(OpOutcome::default())
    }

    /// Polls the guest's addresses (about every second) until VMware Tools reports every one
    /// of `addresses`, reporting progress about every ten seconds (log and stderr). Read-only:
    /// on timeout the VM is left as it is.
    async fn wait_for_guest_ip(
        &self,
        moref: Option<&str>,
        vm: &str,
        addresses: &[String],
        timeout: Duration,
    ) -> Result<OpOutcome, EsxiError> {
        let vm_ref = self.resolve_vm(moref, vm).await?;
        let expected: Vec<String> = addresses.iter().map(|a| canonical_ip(a)).collect();
        let start = Instant::now();
        let mut next_progress = start + GUEST_PROGRESS_INTERVAL;
        loop {
            let (reported, tools_running, powered_on) = self.guest_status(&vm_ref, vm).await?;
            if !powered_on {
                // Nothing will report an address: say so now rather than at the timeout.
                return Err(EsxiError::GuestIpTimeout {
                    vm: vm.to_owned(),
                    expected,
                    reported,
                    tools_running: false,
                    waited_secs: start.elapsed().as_secs(),
                });
            }
            if expected.iter().all(|e| reported.contains(e)) {
                tracing::info!("{vm} reports {}", reported.join(", "));
                return Ok(OpOutcome::default());
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(EsxiError::GuestIpTimeout {
                    vm: vm.to_owned(),
                    expected,
                    reported,
                    tools_running,
                    waited_secs: waited.as_secs(),
                });
            }
            if Instant::now() >= next_progress {
                let line =
                    guest_progress_line(vm, &expected, waited, timeout, tools_running, &reported);
                tracing::info!("{line}");
                eprintln!("{line}");
                next_progress += GUEST_PROGRESS_INTERVAL;
            }
            tokio::time::sleep(GUEST_POLL_INTERVAL.min(timeout - waited)).await;
        }
    }

    /// The addresses the guest reports (canonical, link-local excluded), whether VMware Tools
    /// runs, and whether the VM is powered on.
    async fn guest_status(
        &self,
        vm_ref: &MoRef,
        vm: &str,
    ) -> Result<(Vec<String>, bool, bool), EsxiError> {
        let o = self
            .read_vm(
                vm_ref,
                vm,
                &[
                    "guest.net",
                    "guest.ipAddress",
                    "guest.toolsRunningStatus",
                    "runtime.powerState",
                ],
            )
            .await?;
        let reported = guest_ips(o.prop("guest.ipAddress"), o.prop("guest.net"));
        Ok((
            reported,
            tools_running(o.prop_text("guest.toolsRunningStatus")),
            o.prop_text("runtime.powerState").map(str::trim) == Some("poweredOn"),
        ))
    }

    async fn vm_task(
        &self,
        method: &str,
        moref: Option<&str>,
        vm: &str,
    ) -> Result<OpOutcome, EsxiError> {
        let vm_ref = self.resolve_vm(moref, vm).await?;
        let w = method_body(&vm_ref);
        self.run_task(method, &w.finish(), vm)
            .await
            .map_err(|e| vm_gone(e, vm))?;
        Ok(OpOutcome::default())
    }

    /// Destroys a VM, but only one that carries ceso's marker and is not protected: the last
    /// guard against a plan that names the wrong VM (costs one extra read).
    async fn destroy_managed(&self, moref: Option<&str>, vm: &str) -> Result<OpOutcome, EsxiError> {
        let vm_ref = self.resolve_vm(moref, vm).await?;
        let found = self
            .retrieve_one(&vm_ref, &["config.extraConfig"])
            .await
            .map_err(|e| vm_gone(e, vm))?;
        let extra = found
            .as_ref()
            .and_then(|o| o.prop("config.extraConfig"))
            .map(super::properties::fold_extra_config)
            .unwrap_or_default();
        let refuse = |reason| EsxiError::DestroyRefused {
            vm: vm.to_owned(),
            moref: vm_ref.value.clone(),
            reason,
        };
        if extra.get(MANAGED_KEY).is_none_or(|name| name.is_empty()) {
            return Err(refuse("it was not created by ceso"));
        }
        // A VM left half-made by an interrupted creation never held data.
        let half_made = extra.get(CREATING_KEY).is_some_and(|v| !v.is_empty());
        if extra.get(PROTECT_KEY).map(String::as_str) == Some("true") && !half_made {
            return Err(refuse("it is protected"));
        }
        self.vm_task("Destroy_Task", Some(&vm_ref.value), vm).await
    }

    /// A power operation that succeeds when the VM is already in the wanted state (a task that
    /// an interrupted run started may have finished on the host after ceso observed it), then
    /// records the reached state in the VM's `ceso.power` key, so that the next plan can tell a
    /// power change made outside ceso from one ceso did not finish.
    async fn power_task(
        &self,
        method: &str,
        wanted: &str,
        moref: Option<&str>,
        vm: &str,
    ) -> Result<OpOutcome, EsxiError> {
        let vm_ref = self.resolve_vm(moref, vm).await?;
        match self.vm_task(method, Some(&vm_ref.value), vm).await {
            Err(error) if error.fault_type() == Some("InvalidPowerState") => {
                let now = self.retrieve_one(&vm_ref, &["runtime.powerState"]).await?;
                let state = now.as_ref().and_then(|o| o.prop_text("runtime.powerState"));
                if state.map(str::trim) != Some(wanted) {
                    return Err(error);
                }
                tracing::info!("{vm} is already {wanted}");
            }
            other => {
                other?;
            }
        }
        let reached = if wanted == "poweredOn" { "on" } else { "off" };
        self.record_power(&vm_ref, vm, reached).await;
        Ok(OpOutcome::default())
    }

    /// Every VM named `name` (one `RetrievePropertiesEx` over the whole inventory).
    pub(crate) async fn vms_named(&self, name: &str) -> Result<Vec<MoRef>, EsxiError> {
        let spec = FilterSpec::new().props("VirtualMachine", &["name"]).object(
            &self.service.root_folder,
            true,
            |w| {
                traversal(
                    w,
                    "folderChildren",
                    "Folder",
                    "childEntity",
                    &["folderChildren", "datacenterVms"],
                );
                traversal(
                    w,
                    "datacenterVms",
                    "Datacenter",
                    "vmFolder",
                    &["folderChildren"],
                );
            },
        );
        let objects = self.retrieve(&spec).await?;
        Ok(objects
            .into_iter()
            .filter(|o| o.obj.kind == "VirtualMachine" && o.prop_text("name") == Some(name))
            .map(|o| o.obj)
            .collect())
    }

    /// The VM's moref: the given one, or looked up by name (one `RetrievePropertiesEx`).
    async fn resolve_vm(&self, moref: Option<&str>, vm: &str) -> Result<MoRef, EsxiError> {
        if let Some(m) = moref {
            return Ok(MoRef::new("VirtualMachine", m));
        }
        let mut matches = self.vms_named(vm).await?;
        matches.dedup();
        match matches.len() {
            0 => Err(EsxiError::VmNotFound { vm: vm.to_owned() }),
            1 => Ok(matches.remove(0)),
            _ => Err(EsxiError::AmbiguousVm {
                vm: vm.to_owned(),
                morefs: matches.into_iter().map(|m| m.value).collect(),
            }),
        }
    }

    /// The VM folder and resource pool, discovered once (datacenter → `vmFolder`, and
    /// datacenter → `hostFolder` → compute resource → `resourcePool`).
    pub(super) async fn placement(&self) -> Result<&Placement, EsxiError> {
        self.placement
            .get_or_try_init(|| async {
                let spec = FilterSpec::new()
                    .props("Datacenter", &["vmFolder"])
                    .props("ComputeResource", &["resourcePool"])
                    .object(&self.service.root_folder, true, |w| {
                        traversal(w, "folderChildren", "Folder", "childEntity", &["folderChildren", "datacenterHosts"]);
                        traversal(w, "datacenterHosts", "Datacenter", "hostFolder", &["folderChildren"]);
                    });
                let objects = self.retrieve(&spec).await?;
                let first = |path: &str| {
                    objects.iter().find_map(|o| o.prop(path).and_then(Element::as_moref))
                };
                let datacenter = objects
                    .iter()
                    .find(|o| o.prop("vmFolder").is_some())
                    .map(|o| o.obj.clone());
                let inventory = |message: &str| EsxiError::Inventory {
                    address: self.transport.address().to_owned(),
                    message: message.to_owned(),
                };
                let placement = Placement {
                    datacenter: datacenter.ok_or_else(|| inventory("no datacenter with a VM folder"))?,
                    vm_folder: first("vmFolder").ok_or_else(|| inventory("no datacenter with a VM folder"))?,
                    resource_pool: first("resourcePool")
                        .ok_or_else(|| inventory("no compute resource with a resource pool"))?,
                };
                tracing::debug!(vm_folder = %placement.vm_folder, pool = %placement.resource_pool, "placement");
                Ok(placement)
            })
            .await
    }
}

/// A VM that disappeared under a given moref is reported as not found.
fn vm_gone(e: EsxiError, vm: &str) -> EsxiError {
    match &e {
        EsxiError::Fault { fault, .. } if fault == "ManagedObjectNotFound" => {
            EsxiError::VmNotFound { vm: vm.to_owned() }
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::xml::parse;

    fn spec() -> VmCreateSpec {
        VmCreateSpec {
            name: "web & <01>".into(),
            cpu: 2,
            memory_mib: 4096,
            guest_id: "debian12_64Guest".into(),
            datastore: "datastore 1".into(),
            disks: vec![10 << 30, 1000],
            nics: vec!["VM Network".into()],
            extra_config: BTreeMap::from([
                ("ceso.managed".to_owned(), "web".to_owned()),
                ("gone".to_owned(), String::new()),
            ]),
            template_disk: None,
            firmware: None,
            cloud_init: None,
            annotation: None,
            clone_from: None,
        }
    }

    #[test]
    fn create_spec_is_well_formed_and_ordered() {
        let xml = create_config_spec(&spec()).expect("spec");
        let wrapped = format!(
            r#"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">{xml}</r>"#
        );
        let root = parse(&wrapped).expect("well-formed");
        let config = root.child("config").expect("config");
        let names: Vec<&str> = config.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "name",
                "guestId",
                "files",
                "numCPUs",
                "memoryMB",
                "deviceChange",
                "deviceChange",
                "deviceChange",
                "deviceChange",
                "extraConfig"
            ]
        );
        assert_eq!(config.child_text("name"), Some("web & <01>"));
        assert_eq!(
            config
                .path(&["files", "vmPathName"])
                .map(|e| e.text.as_str()),
            Some("[datastore 1]")
        );
        let changes: Vec<&Element> = config.children_named("deviceChange").collect();
        let ctrl = changes[0].child("device").expect("device");
        assert_eq!(ctrl.type_name(), Some("ParaVirtualSCSIController"));
        assert_eq!(ctrl.child_text("key"), Some("-100"));
        let disk = changes[2].child("device").expect("device");
        assert_eq!(changes[2].child_text("fileOperation"), Some("create"));
        assert_eq!(disk.child_text("unitNumber"), Some("1"));
        assert_eq!(disk.child_text("capacityInKB"), Some("1"));
        assert_eq!(disk.child_text("capacityInBytes"), Some("1024"));
        let nic = changes[3].child("device").expect("device");
        assert_eq!(nic.type_name(), Some("VirtualVmxnet3"));
        assert_eq!(
            nic.path(&["backing", "deviceName"])
                .map(|e| e.text.as_str()),
            Some("VM Network")
        );
        let ec = config.child("extraConfig").expect("extraConfig");
        assert_eq!(ec.child_text("key"), Some("ceso.managed"));
        assert_eq!(
            ec.child("value").and_then(|v| v.xsi_type.clone()),
            Some(XsiType {
                name: "string".into(),
                xsd: true
            })
        );
    }

    #[test]
    fn disk_units_skip_seven() {
        let mut s = spec();
        s.disks = vec![1 << 20; 9];
        let xml = create_config_spec(&s).expect("spec");
        let root = parse(&format!(
            r#"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{xml}</r>"#
        ))
        .expect("xml");
        let units: Vec<String> = root
            .child("config")
            .expect("config")
            .children_named("deviceChange")
            .filter_map(|c| c.child("device"))
            .filter(|d| d.type_name() == Some("VirtualDisk"))
            .map(|d| d.child_text("unitNumber").unwrap_or_default().to_owned())
            .collect();
        assert_eq!(units, ["0", "1", "2", "3", "4", "5", "6", "8", "9"]);
        s.disks = vec![1 << 20; 16];
        assert!(matches!(
            create_config_spec(&s),
            Err(EsxiError::InvalidSpec { .. })
        ));
    }

    fn devices() -> Vec<Element> {
        let xml = include_str!("testdata/rpex_observe.xml");
        let root = parse(xml).expect("xml");
        let val = root
            .path(&[
                "Body",
                "RetrievePropertiesExResponse",
                "returnval",
                "objects",
            ])
            .and_then(|o| {
                o.children_named("propSet")
                    .find(|p| p.child_text("name") == Some("config.hardware.device"))
            })
            .and_then(|p| p.child("val"))
            .expect("devices");
        val.children.clone()
    }

    #[test]
    fn reconfig_grow_add_remove() {
        let spec = VmReconfigSpec {
            cpu: Some(4),
            memory_mib: None,
            guest_id: None,
            disks: vec![
                DiskChange::Grow {
                    key: 255511522,
                    size_bytes: 2 << 20,
                },
                DiskChange::Add {
                    size_bytes: 1 << 30,
                },
                DiskChange::Add {
                    size_bytes: 1 << 30,
                },
            ],
            nics: vec![
                NicChange::SetPortGroup {
                    key: 4000,
                    port_group: "Prod & Test".into(),
                },
                NicChange::Add {
                    port_group: "VM Network".into(),
                },
                NicChange::Remove { key: 4000 },
            ],
            extra_config: BTreeMap::from([("guestinfo.userdata".to_owned(), String::new())]),
            cloud_init: None,
            annotation: None,
        };
        let xml = reconfig_config_spec("vm", &spec, &devices())
            .expect("ok")
            .expect("some");
        let root = parse(&format!(
            r#"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">{xml}</r>"#
        ))
        .expect("well-formed");
        let s = root.child("spec").expect("spec");
        assert_eq!(s.child_text("numCPUs"), Some("4"));
        let changes: Vec<&Element> = s.children_named("deviceChange").collect();
        assert_eq!(changes.len(), 6);
        // Grow: the whole device comes back with the new capacity, in schema order.
        assert_eq!(changes[0].child_text("operation"), Some("edit"));
        let grown = changes[0].child("device").expect("device");
        assert_eq!(grown.type_name(), Some("VirtualDisk"));
        assert_eq!(grown.child_text("capacityInKB"), Some("2048"));
        assert_eq!(grown.child_text("capacityInBytes"), Some("2097152"));
        let order: Vec<&str> = grown.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            order[order.len() - 2..],
            ["capacityInKB", "capacityInBytes"]
        );
        // Adds: on the existing pvscsi (key 202), whose units 0 (cdrom, disk) and 7 are taken.
        let units: Vec<&str> = changes[1..3]
            .iter()
            .map(|c| {
                c.path(&["device", "unitNumber"])
                    .map_or("", |e| e.text.as_str())
            })
            .collect();
        assert_eq!(units, ["1", "2"]);
        assert_eq!(
            changes[1]
                .path(&["device", "controllerKey"])
                .map(|e| e.text.as_str()),
            Some("202")
        );
        assert_eq!(
            changes[2].path(&["device", "key"]).map(|e| e.text.as_str()),
            Some("-102")
        );
        // NIC moved to another port group.
        let moved = changes[3].path(&["device", "backing"]).expect("backing");
        assert_eq!(
            moved.type_name(),
            Some("VirtualEthernetCardNetworkBackingInfo")
        );
        assert_eq!(moved.child_text("deviceName"), Some("Prod & Test"));
        assert_eq!(
            changes[4].path(&["device", "key"]).map(|e| e.text.as_str()),
            Some("-201")
        );
        assert_eq!(changes[5].child_text("operation"), Some("remove"));
        assert_eq!(changes[5].child("fileOperation"), None);
        let ec = s.child("extraConfig").expect("extraConfig");
        assert_eq!(ec.child_text("value"), Some(""));
    }

    #[test]
    fn reconfig_remove_disk_destroys_files() {
        let spec = VmReconfigSpec {
            disks: vec![DiskChange::Remove { key: 255511522 }],
            ..Default::default()
        };
        let xml = reconfig_config_spec("vm", &spec, &devices())
            .expect("ok")
            .expect("some");
        assert!(
            xml.contains("<operation>remove</operation><fileOperation>destroy</fileOperation>"),
            "{xml}"
        );
    }

    #[test]
    fn reconfig_errors_and_noop() {
        let d = devices();
        let grow_nic = VmReconfigSpec {
            disks: vec![DiskChange::Grow {
                key: 4000,
                size_bytes: 1,
            }],
            ..Default::default()
        };
        assert!(matches!(
            reconfig_config_spec("vm", &grow_nic, &d),
            Err(EsxiError::DeviceNotFound {
                what: "disk",
                key: 4000,
                ..
            })
        ));
        assert_eq!(
            reconfig_config_spec("vm", &VmReconfigSpec::default(), &d).expect("ok"),
            None
        );
        assert!(!needs_devices(&VmReconfigSpec {
            nics: vec![NicChange::Add {
                port_group: "x".into()
            }],
            ..Default::default()
        }));
    }

    #[test]
    fn add_disk_without_scsi_controller_adds_one() {
        let spec = VmReconfigSpec {
            disks: vec![DiskChange::Add {
                size_bytes: 1 << 30,
            }],
            ..Default::default()
        };
        let xml = reconfig_config_spec("vm", &spec, &[])
            .expect("ok")
            .expect("some");
        assert!(xml.contains("<device xsi:type=\"ParaVirtualSCSIController\"><key>-100</key><busNumber>0</busNumber>"), "{xml}");
        assert!(
            xml.contains("<controllerKey>-100</controllerKey><unitNumber>0</unitNumber>"),
            "{xml}"
        );
    }

    fn wrap(xml: &str) -> Element {
        parse(&format!(
            r#"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">{xml}</r>"#
        ))
        .expect("well-formed")
    }

    #[test]
    fn create_from_template_leaves_out_every_disk_and_sets_firmware_last() {
        let mut s = spec();
        s.template_disk = Some("[datastore 1] tmpl/tmpl.vmdk".into());
        s.firmware = Some(crate::host::Firmware::Efi);
        let root = wrap(&create_config_spec(&s).expect("spec"));
        let config = root.child("config").expect("config");
        let devices: Vec<&str> = config
            .children_named("deviceChange")
            .filter_map(|c| c.child("device").and_then(Element::type_name))
            .collect();
        // The controller is still created; disk 0 comes from the copy, disk 1 is added with it.
        assert_eq!(devices, ["ParaVirtualSCSIController", "VirtualVmxnet3"]);
        let names: Vec<&str> = config.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[names.len() - 2..], ["extraConfig", "firmware"]);
        assert_eq!(config.child_text("firmware"), Some("efi"));
    }

    #[test]
    fn create_without_firmware_leaves_the_host_default() {
        let xml = create_config_spec(&spec()).expect("spec");
        assert!(!xml.contains("firmware"), "{xml}");
    }

    #[test]
    fn template_copy_goes_beside_the_vmx() {
        assert_eq!(
            disk_path_beside_vmx("[ds 1] web-01/web-01.vmx", 0).as_deref(),
            Some("[ds 1] web-01/web-01.vmdk")
        );
        assert_eq!(
            disk_path_beside_vmx("[ds 1] web-01/web-01.vmx", 2).as_deref(),
            Some("[ds 1] web-01/web-01_2.vmdk"),
            "further disks are named as the host names new disks"
        );
        assert_eq!(
            disk_path_beside_vmx("[ds] web-01_1/web-01.vmx", 0).as_deref(),
            Some("[ds] web-01_1/web-01.vmdk")
        );
        assert_eq!(
            disk_path_beside_vmx("[ds] web.vmx", 0).as_deref(),
            Some("[ds] web.vmdk")
        );
        assert_eq!(disk_path_beside_vmx("web-01/web-01.vmx", 0), None);
        assert_eq!(disk_path_beside_vmx("[ds] web-01/web-01.vmtx", 0), None);
        assert_eq!(disk_path_beside_vmx("[ds] ", 0), None);
    }

    #[test]
    fn copy_is_thin_on_the_same_datacenter_and_never_overwrites() {
        let body = copy_disk_body(
            &MoRef::new("VirtualDiskManager", "ha-vdiskmanager"),
            &MoRef::new("Datacenter", "ha-datacenter"),
            "[ds] tmpl/tmpl.vmdk",
            "[ds] web & co/web & co.vmdk",
        );
        assert_eq!(
            body,
            "<_this type=\"VirtualDiskManager\">ha-vdiskmanager</_this>\
             <sourceName>[ds] tmpl/tmpl.vmdk</sourceName>\
             <sourceDatacenter type=\"Datacenter\">ha-datacenter</sourceDatacenter>\
             <destName>[ds] web &amp; co/web &amp; co.vmdk</destName>\
             <destDatacenter type=\"Datacenter\">ha-datacenter</destDatacenter>\
             <destSpec xsi:type=\"VirtualDiskSpec\"><diskType>thin</diskType>\
             <adapterType>lsiLogic</adapterType></destSpec><force>false</force>"
        );
    }

    /// The devices of a VM just created from a template: one pvscsi controller, one NIC.
    fn fresh_devices() -> Vec<Element> {
        let root = wrap(
            r#"<val><VirtualDevice xsi:type="ParaVirtualSCSIController"><key>1000</key><busNumber>0</busNumber><scsiCtlrUnitNumber>7</scsiCtlrUnitNumber></VirtualDevice><VirtualDevice xsi:type="VirtualVmxnet3"><key>4000</key><macAddress>00:50:56:aa:bb:01</macAddress><addressType>generated</addressType></VirtualDevice><VirtualDevice xsi:type="VirtualVmxnet3"><key>4001</key><macAddress>00:50:56:aa:bb:02</macAddress><addressType>generated</addressType></VirtualDevice></val>"#,
        );
        root.child("val").expect("val").children.clone()
    }

    #[test]
    fn template_disk_is_attached_as_unit_zero_and_new_disks_follow() {
        let xml = attach_disks_spec(
            "web",
            &["[ds] web/web.vmdk".to_owned()],
            &[1 << 30, 2 << 30],
            &fresh_devices(),
        )
        .expect("spec");
        let root = wrap(&xml);
        let changes: Vec<&Element> = root
            .child("spec")
            .expect("spec")
            .children_named("deviceChange")
            .collect();
        assert_eq!(changes.len(), 3);
        // The copy: an existing backing, no file operation, capacity read from the disk.
        assert_eq!(changes[0].child("fileOperation"), None);
        let copy = changes[0].child("device").expect("device");
        assert_eq!(
            copy.path(&["backing", "fileName"]).map(|e| e.text.as_str()),
            Some("[ds] web/web.vmdk")
        );
        assert_eq!(copy.child_text("controllerKey"), Some("1000"));
        assert_eq!(copy.child_text("unitNumber"), Some("0"));
        assert_eq!(copy.child_text("capacityInKB"), Some("0"));
        let units: Vec<&str> = changes[1..]
            .iter()
            .map(|c| {
                assert_eq!(c.child_text("fileOperation"), Some("create"));
                c.path(&["device", "unitNumber"])
                    .map_or("", |e| e.text.as_str())
            })
            .collect();
        assert_eq!(units, ["1", "2"]);
        let keys: Vec<&str> = changes
            .iter()
            .map(|c| c.path(&["device", "key"]).map_or("", |e| e.text.as_str()))
            .collect();
        assert_eq!(keys, ["-101", "-102", "-103"]);
    }

    #[test]
    fn macs_in_adapter_order_and_none_missing() {
        assert_eq!(
            nic_macs("web", &fresh_devices()).expect("macs"),
            ["00:50:56:aa:bb:01", "00:50:56:aa:bb:02"]
        );
        let mut devices = fresh_devices();
        devices.reverse();
        assert_eq!(
            nic_macs("web", &devices).expect("macs"),
            ["00:50:56:aa:bb:01", "00:50:56:aa:bb:02"],
            "ordered by device key, as observe orders NICs"
        );
        devices[0].set_child_text("macAddress", "", None);
        let err = nic_macs("web", &devices).expect_err("no MAC yet");
        assert!(err.to_string().contains("no MAC address"), "{err}");
    }

    #[test]
    fn progress_line_says_what_is_awaited_and_what_is_seen() {
        let line = guest_progress_line(
            "web-01",
            &["192.168.1.100".to_owned()],
            Duration::from_millis(20_400),
            Duration::from_secs(300),
            true,
            &["10.0.0.5".to_owned()],
        );
        assert_eq!(
            line,
            "waiting for web-01 to report 192.168.1.100: 20 s of 300 s, Tools running, reported 10.0.0.5"
        );
        let line = guest_progress_line(
            "web-01",
            &["192.168.1.100".to_owned(), "2001:db8::5".to_owned()],
            Duration::from_secs(10),
            Duration::from_secs(300),
            false,
            &[],
        );
        assert!(
            line.ends_with(
                "192.168.1.100, 2001:db8::5: 10 s of 300 s, Tools not running, no address reported"
            ),
            "{line}"
        );
    }

    #[test]
    fn expected_addresses_compare_in_canonical_form() {
        assert_eq!(canonical_ip("2001:0db8:0:0::5"), "2001:db8::5");
        assert_eq!(canonical_ip(" 192.168.1.100/24 "), "192.168.1.100");
        assert_eq!(canonical_ip("not-an-ip"), "not-an-ip");
    }

    #[test]
    fn cloned_disks_are_attached_in_order_before_new_ones() {
        let copies = [
            "[ds] web/web.vmdk".to_owned(),
            "[ds] web/web_1.vmdk".to_owned(),
        ];
        let root =
            wrap(&attach_disks_spec("web", &copies, &[1 << 30], &fresh_devices()).expect("spec"));
        let attached: Vec<(String, String, String, Option<String>)> = root
            .child("spec")
            .expect("spec")
            .children_named("deviceChange")
            .map(|c| {
                let d = c.child("device").expect("device");
                (
                    d.child_text("key").unwrap_or_default().to_owned(),
                    d.child_text("unitNumber").unwrap_or_default().to_owned(),
                    d.path(&["backing", "fileName"])
                        .map_or(String::new(), |f| f.text.clone()),
                    c.child_text("fileOperation").map(str::to_owned),
                )
            })
            .collect();
        let row = |k: &str, u: &str, f: &str, op: Option<&str>| {
            (
                k.to_owned(),
                u.to_owned(),
                f.to_owned(),
                op.map(str::to_owned),
            )
        };
        assert_eq!(
            attached,
            [
                row("-101", "0", "[ds] web/web.vmdk", None),
                row("-102", "1", "[ds] web/web_1.vmdk", None),
                row("-103", "2", "", Some("create")),
            ]
        );
    }

    #[test]
    fn a_clone_is_created_without_disks_and_never_with_a_template_too() {
        let mut s = spec();
        s.annotation = Some("Cloned from web & co".into());
        s.clone_from = Some(CloneSource {
            vm: "web".into(),
            moref: "3".into(),
            disks: vec!["[ds] web/web.vmdk".into(), "[ds] web/web_1.vmdk".into()],
            running: true,
        });
        assert_eq!(
            disks_to_copy(&s).expect("sources"),
            ["[ds] web/web.vmdk", "[ds] web/web_1.vmdk"]
        );
        let root = wrap(&create_config_spec(&s).expect("spec"));
        let config = root.child("config").expect("config");
        let devices: Vec<&str> = config
            .children_named("deviceChange")
            .filter_map(|c| c.child("device").and_then(Element::type_name))
            .collect();
        assert_eq!(devices, ["ParaVirtualSCSIController", "VirtualVmxnet3"]);
        // No identity is copied: no uuid, no MAC (the NIC's address is generated by the host).
        let xml = create_config_spec(&s).expect("spec");
        assert!(!xml.contains("uuid") && !xml.contains("Uuid"), "{xml}");
        assert!(
            xml.contains("<addressType>generated</addressType>"),
            "{xml}"
        );
        // Schema order: annotation right after guestId.
        let names: Vec<&str> = config.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[..4], ["name", "guestId", "annotation", "files"]);
        assert_eq!(
            config.child_text("annotation"),
            Some("Cloned from web & co")
        );

        s.template_disk = Some("[ds] tmpl/tmpl.vmdk".into());
        let err = create_config_spec(&s).expect_err("two sources");
        assert!(err.to_string().contains("give one source"), "{err}");
        s.clone_from = None;
        assert_eq!(
            disks_to_copy(&s).expect("template"),
            ["[ds] tmpl/tmpl.vmdk"]
        );
        s.template_disk = None;
        assert!(disks_to_copy(&s).expect("none").is_empty());
        s.annotation = Some(String::new());
        assert!(!create_config_spec(&s).expect("spec").contains("annotation"));
    }

    #[test]
    fn annotation_is_set_or_cleared_by_reconfigure() {
        let set = VmReconfigSpec {
            annotation: Some("Owner: ops".into()),
            memory_mib: Some(512),
            ..Default::default()
        };
        assert_eq!(
            reconfig_config_spec("vm", &set, &[])
                .expect("ok")
                .as_deref(),
            Some("<spec><annotation>Owner: ops</annotation><memoryMB>512</memoryMB></spec>")
        );
        let clear = VmReconfigSpec {
            annotation: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            reconfig_config_spec("vm", &clear, &[])
                .expect("ok")
                .as_deref(),
            Some("<spec><annotation></annotation></spec>"),
            "an empty annotation is sent (and clears the notes), not skipped"
        );
    }

    #[test]
    fn clone_snapshot_without_memory_or_quiescing_and_removal_consolidates() {
        assert_eq!(
            clone_snapshot_body(&MoRef::new("VirtualMachine", "3"), "web & 02"),
            "<_this type=\"VirtualMachine\">3</_this><name>ceso-clone-web &amp; 02</name>\
             <description>Taken by ceso to clone this VM to web &amp; 02; removed after the \
             copy</description><memory>false</memory><quiesce>false</quiesce>"
        );
        assert_eq!(
            remove_snapshot_body(&MoRef::new("VirtualMachineSnapshot", "snapshot-7")),
            "<_this type=\"VirtualMachineSnapshot\">snapshot-7</_this>\
             <removeChildren>false</removeChildren><consolidate>true</consolidate>"
        );
    }
}
