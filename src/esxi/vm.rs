//! VM writes: `ConfigSpec` building for create and reconfigure, power and destroy, VM lookup
//! by name, and discovery of the VM folder and resource pool.

use std::collections::{BTreeMap, BTreeSet};

use super::EsxiClient;
use super::envelope::method_body;
use super::error::EsxiError;
use super::properties::{FilterSpec, device_key, is_disk, is_nic, traversal};
use super::xml::{Element, MoRef, XmlWriter, XsiType};
use crate::host::{
    DiskChange, HostOp, MANAGED_KEY, NicChange, OpOutcome, POWER_KEY, PROTECT_KEY, VmCreateSpec,
    VmReconfigSpec,
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

/// Where new VMs go: the datacenter's VM folder and the host's root resource pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    pub vm_folder: MoRef,
    pub resource_pool: MoRef,
}

/// Disk capacity in KiB, rounded up (hosts allocate whole KiB).
fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

fn write_extra_config(w: &mut XmlWriter, extra: &BTreeMap<String, String>, skip_empty: bool) {
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

/// The `VirtualMachineConfigSpec` of `CreateVM_Task` (as the `config` element).
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
    let mut w = XmlWriter::new();
    w.start("config").leaf("name", &spec.name);
    if !spec.guest_id.is_empty() {
        w.leaf("guestId", &spec.guest_id);
    }
    w.start("files")
        .leaf("vmPathName", &format!("[{}]", spec.datastore))
        .end("files")
        .leaf("numCPUs", &spec.cpu.to_string())
        .leaf("memoryMB", &spec.memory_mib.to_string());
    write_new_controller(&mut w, NEW_CONTROLLER_KEY, 0);
    for ((i, bytes), unit) in spec
        .disks
        .iter()
        .enumerate()
        .zip(fresh_units(spec.disks.len()))
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
    w.end("config");
    Ok(w.finish())
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
            HostOp::WaitForGuestIp { vm, .. } => Err(EsxiError::InvalidSpec {
                vm: vm.clone(),
                message: "waiting for the guest IP is not implemented yet".into(),
            }),
        }
    }

    async fn create_vm(&self, spec: &VmCreateSpec) -> Result<OpOutcome, EsxiError> {
        let config = create_config_spec(spec)?;
        let placement = self.placement().await?;
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
        Ok(OpOutcome {
            created_moref: Some(created.value),
        })
    }

    async fn reconfigure_vm(
        &self,
        moref: Option<&str>,
        vm: &str,
        spec: &VmReconfigSpec,
    ) -> Result<OpOutcome, EsxiError> {
        let vm_ref = self.resolve_vm(moref, vm).await?;
        let devices = if needs_devices(spec) {
            let o = self
                .retrieve_one(&vm_ref, &["config.hardware.device"])
                .await
                .map_err(|e| vm_gone(e, vm))?
                .ok_or_else(|| EsxiError::VmNotFound { vm: vm.to_owned() })?;
            if o.missing
                .iter()
                .any(|(_, f)| f.fault == "ManagedObjectNotFound")
            {
                return Err(EsxiError::VmNotFound { vm: vm.to_owned() });
            }
            o.prop("config.hardware.device")
                .map(|d| d.children.clone())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let Some(config) = reconfig_config_spec(vm, spec, &devices)? else {
            return Ok(OpOutcome::default());
        };
        let mut w = method_body(&vm_ref);
        w.buf.push_str(&config);
        self.run_task("ReconfigVM_Task", &w.finish(), vm)
            .await
            .map_err(|e| vm_gone(e, vm))?;
        Ok(OpOutcome::default())
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
        if extra.get(PROTECT_KEY).map(String::as_str) == Some("true") {
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
        let record = VmReconfigSpec {
            extra_config: [(POWER_KEY.to_owned(), reached.to_owned())].into(),
            ..VmReconfigSpec::default()
        };
        if let Err(error) = self.reconfigure_vm(Some(&vm_ref.value), vm, &record).await {
            tracing::warn!("{vm} is {wanted}, but recording it in {POWER_KEY} failed: {error}");
        }
        Ok(OpOutcome::default())
    }

    /// The VM's moref: the given one, or looked up by name (one `RetrievePropertiesEx`).
    async fn resolve_vm(&self, moref: Option<&str>, vm: &str) -> Result<MoRef, EsxiError> {
        if let Some(m) = moref {
            return Ok(MoRef::new("VirtualMachine", m));
        }
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
        let mut matches: Vec<MoRef> = objects
            .into_iter()
            .filter(|o| o.obj.kind == "VirtualMachine" && o.prop_text("name") == Some(vm))
            .map(|o| o.obj)
            .collect();
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
    async fn placement(&self) -> Result<&Placement, EsxiError> {
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
                let inventory = |message: &str| EsxiError::Inventory {
                    address: self.transport.address().to_owned(),
                    message: message.to_owned(),
                };
                let placement = Placement {
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
}
