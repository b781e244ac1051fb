//! The one abstraction over an ESXi host: reading its state (`observe`) and carrying out one
//! operation at a time (`execute`). The vSphere SOAP client in [`crate::esxi`] implements it;
//! the planner only ever sees the plain data types defined here.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

pub use crate::cloudinit::CloudInitConfig;

/// extraConfig key that marks a VM as created and managed by ceso. Its value is the manifest name.
pub const MANAGED_KEY: &str = "ceso.managed";
/// extraConfig key holding `true` when the manifest protected the VM (survives manifest deletion).
pub const PROTECT_KEY: &str = "ceso.protect";
/// extraConfig key holding the power state (`on`/`off`) ceso last brought the VM to, written by
/// the power operation once it succeeded (so a failed or interrupted run is not mistaken for a
/// change made outside ceso).
pub const POWER_KEY: &str = "ceso.power";
/// extraConfig key marking a VM as the holder of a template's disk; its value is the template name.
pub const TEMPLATE_KEY: &str = "ceso.template";
/// extraConfig key set while a VM is being made from copies (a template or clone) and cleared by
/// the last step of its creation: a VM that still carries it was left half-made by an
/// interrupted run, and the next plan re-creates it.
pub const CREATING_KEY: &str = "ceso.creating";
/// extraConfig key holding the JSON of the spec ceso last applied (no secrets), used to tell
/// changes made outside ceso (drift) from changes made in the manifests.
pub const APPLIED_KEY: &str = "ceso.applied";

/// Power state of a VM as the host reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PowerState {
    PoweredOn,
    PoweredOff,
    Suspended,
}

/// Product facts about the host (from `ServiceContent.about`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostAbout {
    pub full_name: String,
    pub api_version: String,
    pub api_type: String,
}

/// Everything the planner needs to know about one host, read in one bulk call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedHost {
    pub about: HostAbout,
    /// Datastore names.
    pub datastores: Vec<String>,
    /// Network (port group) names visible as Network entities.
    pub networks: Vec<String>,
    /// All VMs (and templates) on the host, sorted by name then moref.
    pub vms: Vec<ObservedVm>,
}

/// One virtual machine as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedVm {
    /// Managed object reference value, e.g. `vm-12` (simulator) or `3` (real ESXi).
    pub moref: String,
    pub name: String,
    pub template: bool,
    pub cpu: u32,
    pub memory_mib: u64,
    pub guest_id: String,
    pub power: Option<PowerState>,
    /// `[datastore] dir/name.vmx`
    pub vmx_path: String,
    pub disks: Vec<ObservedDisk>,
    pub nics: Vec<ObservedNic>,
    /// extraConfig with append-only duplicates already folded (last value wins, empty = absent).
    pub extra_config: BTreeMap<String, String>,
    /// Firmware as configured (`config.firmware`), when the host reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    /// IPv4 and IPv6 addresses VMware Tools reports from inside the guest (`guest.ipAddress`
    /// and `guest.net[].ipAddress`), deduplicated, in the order reported. Empty without Tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guest_ips: Vec<String>,
    /// `config.annotation` (the notes shown in the host client).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub annotation: String,
    /// CPUs can be added while the VM runs (`config.cpuHotAddEnabled`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cpu_hot_add: bool,
    /// Memory can be added while the VM runs (`config.memoryHotAddEnabled`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory_hot_add: bool,
    /// VMware Tools run in the guest (`guest.toolsRunningStatus` is `guestToolsRunning`), so it
    /// can be shut down gracefully.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tools_running: bool,
    /// Every snapshot of the VM (the tree flattened, parents first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<ObservedSnapshot>,
}

/// A snapshot of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedSnapshot {
    /// Managed object reference value, e.g. `snapshot-3`.
    pub moref: String,
    pub name: String,
}

/// Name prefix of the snapshot ceso takes of a running VM to clone it; removed right after the
/// copy (a snapshot with this prefix found later was left by an interrupted run).
pub const CLONE_SNAPSHOT_PREFIX: &str = "ceso-clone-";

impl ObservedVm {
    /// The manifest name this VM is managed under, if ceso created it.
    pub fn managed_name(&self) -> Option<&str> {
        self.extra_config.get(MANAGED_KEY).map(String::as_str)
    }

    /// Whether the host-side marker says the VM is protected from deletion.
    pub fn is_protected(&self) -> bool {
        self.extra_config.get(PROTECT_KEY).map(String::as_str) == Some("true")
    }
}

/// A virtual disk device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedDisk {
    pub key: i32,
    pub capacity_bytes: u64,
    /// Backing file, e.g. `[datastore1] web-01/web-01.vmdk`.
    pub file_name: String,
    pub controller_key: i32,
    pub unit_number: i32,
}

/// A virtual network adapter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedNic {
    pub key: i32,
    /// Port group name (backing `deviceName`).
    pub port_group: String,
    pub mac_address: String,
    /// vSphere device type, e.g. `VirtualVmxnet3`.
    pub adapter: String,
}

/// The boot firmware of a VM: `bios` or `efi`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Efi,
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "bios",
            Firmware::Efi => "efi",
        })
    }
}

/// Everything needed to create a VM: one `CreateVM_Task`, plus (for a VM made from a template)
/// the copy of the template disk, and (with cloud-init) the guestinfo written once the host
/// has given the adapters their MAC addresses. A failure part-way destroys the new VM again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmCreateSpec {
    pub name: String,
    pub cpu: u32,
    pub memory_mib: u64,
    pub guest_id: String,
    /// Datastore name; the VM's files go to `[datastore] name/`.
    pub datastore: String,
    /// Disk sizes in bytes, in order (attached to one paravirtual SCSI controller).
    pub disks: Vec<u64>,
    /// Port group names, in order (one vmxnet3 adapter each).
    pub nics: Vec<String>,
    pub extra_config: BTreeMap<String, String>,
    /// `[datastore] path.vmdk` of a template disk: disk 0 is a host-side copy of it
    /// (`CopyVirtualDisk_Task`) into the VM's folder, grown to `disks[0]`, instead of a new
    /// empty disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_disk: Option<String>,
    /// Boot firmware; `None` leaves the host's default (BIOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    /// cloud-init configuration, rendered into `guestinfo.*` keys with the MAC addresses the
    /// host assigned (see [`crate::cloudinit::guestinfo`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInitConfig>,
    /// Notes shown in the host client (`config.annotation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// Every disk is a host-side copy of this VM's disks (a clone without vCenter): disk `i` is a
    /// copy of `clone_from.disks[i]`, grown to `disks[i]`. Exclusive with `template_disk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_from: Option<CloneSource>,
}

/// The VM a new VM is cloned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneSource {
    /// Its name on the host.
    pub vm: String,
    pub moref: String,
    /// Its disks' backing files (`[datastore] dir/file.vmdk`), in order.
    pub disks: Vec<String>,
    /// The source runs: copy from a snapshot (named [`CLONE_SNAPSHOT_PREFIX`] + the new VM's
    /// name) taken for the purpose and removed afterwards, also when the copy fails.
    pub running: bool,
}

/// One change to a VM's devices or settings, applied together in one `ReconfigVM_Task`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VmReconfigSpec {
    pub cpu: Option<u32>,
    pub memory_mib: Option<u64>,
    pub guest_id: Option<String>,
    pub disks: Vec<DiskChange>,
    pub nics: Vec<NicChange>,
    /// Keys to set; an empty value removes the key.
    pub extra_config: BTreeMap<String, String>,
    /// Rewrite the `guestinfo.*` cloud-init keys from this configuration, with the MAC
    /// addresses the adapters have after the other changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInitConfig>,
    /// New notes (`config.annotation`); an empty string clears them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
}

/// A disk change inside a reconfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum DiskChange {
    /// Grow an existing disk (device key) to a new size in bytes.
    Grow { key: i32, size_bytes: u64 },
    /// Add a new disk of this size on the VM's SCSI controller.
    Add { size_bytes: u64 },
    /// Detach and delete the disk's files.
    Remove { key: i32 },
}

/// A network adapter change inside a reconfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum NicChange {
    /// Move an existing adapter (device key) to another port group.
    SetPortGroup { key: i32, port_group: String },
    /// Add a vmxnet3 adapter on this port group.
    Add { port_group: String },
    /// Remove the adapter.
    Remove { key: i32 },
}

/// One write to a host. The executor is the only code that sends these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum HostOp {
    CreateVm {
        spec: VmCreateSpec,
    },
    ReconfigureVm {
        moref: Option<String>,
        vm: String,
        spec: VmReconfigSpec,
    },
    PowerOn {
        moref: Option<String>,
        vm: String,
    },
    PowerOff {
        moref: Option<String>,
        vm: String,
    },
    DestroyVm {
        moref: Option<String>,
        vm: String,
    },
    /// Shut the guest down through VMware Tools (`ShutdownGuest`) and wait up to
    /// `timeout_secs` for the VM to be off. When Tools do not run or the time runs out: a hard
    /// power-off if `force`, otherwise an error that says how to allow one. Records
    /// `ceso.power=off` once the VM is off.
    ShutdownVm {
        moref: Option<String>,
        vm: String,
        timeout_secs: u64,
        force: bool,
    },
    /// Remove one snapshot (consolidating it into the disks), e.g. one left by an interrupted
    /// clone.
    RemoveSnapshot {
        moref: Option<String>,
        vm: String,
        snapshot: String,
        name: String,
    },
    /// Wait (read-only) until VMware Tools in the guest reports every one of `addresses`
    /// (plain IPs, no prefix length). Fails on timeout, naming what the guest reported instead.
    WaitForGuestIp {
        moref: Option<String>,
        vm: String,
        addresses: Vec<String>,
        timeout_secs: u64,
    },
}

impl HostOp {
    /// Whether the operation only reads (waiting for the guest): such steps do not count
    /// against the run's parallelism and are abandoned, not awaited, when the run is stopped.
    pub fn is_read_only(&self) -> bool {
        matches!(self, HostOp::WaitForGuestIp { .. })
    }
}

/// What a successful operation reports back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpOutcome {
    /// The moref of a VM the operation created.
    pub created_moref: Option<String>,
}

/// The host abstraction: one bulk read and single writes. Implemented by the SOAP client.
pub trait Host {
    /// The error type of this implementation.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads every VM and the properties the planner needs (one bulk read).
    fn observe(&self) -> impl Future<Output = Result<ObservedHost, Self::Error>>;

    /// Carries out one operation and waits for it to finish.
    fn execute(&self, op: &HostOp) -> impl Future<Output = Result<OpOutcome, Self::Error>>;
}

/// A shared reference to a host is a host too (lets callers keep ownership while the executor runs).
impl<H: Host> Host for &H {
    type Error = H::Error;

    fn observe(&self) -> impl Future<Output = Result<ObservedHost, Self::Error>> {
        (**self).observe()
    }

    fn execute(&self, op: &HostOp) -> impl Future<Output = Result<OpOutcome, Self::Error>> {
        (**self).execute(op)
    }
}
