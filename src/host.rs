//! The one abstraction over an ESXi host: reading its state (`observe`) and carrying out one
//! operation at a time (`execute`). The vSphere SOAP client in [`crate::esxi`] implements it;
//! the planner only ever sees the plain data types defined here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::net::IpAddr;

use ipnet::IpNet;
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
    /// The firewall and the address ceso reaches the host from ([`Host::observe_access`]);
    /// `None` when they were not read, or the host has no firewall system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<ObservedAccess>,
}

/// The firewall ruleset of SSH (TCP 22).
pub const SSH_RULESET: &str = "sshServer";
/// The firewall ruleset of the API and the host client (TCP 443, and 902 for consoles and
/// NFC): the one ceso itself needs.
pub const API_RULESET: &str = "vSphereClient";
/// The firewall ruleset of plain HTTP (TCP 80), which only redirects to 443.
pub const WEB_RULESET: &str = "webAccess";

/// Who may reach the host, as far as ceso manages it: the firewall's rulesets
/// (`HostFirewallSystem.firewallInfo`) and the address ceso itself comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedAccess {
    /// Managed object reference value of the host's `HostFirewallSystem`
    /// (`configManager.firewallSystem`), e.g. `ha-firewallSystem`.
    pub firewall_system: String,
    /// Every ruleset of the firewall, by key (`sshServer`, `vSphereClient`, ...).
    pub rulesets: BTreeMap<String, ObservedRuleset>,
    /// The local address of a TCP connection ceso made to the host's API port: the address
    /// the host's firewall sees ceso come from (unless NAT or a proxy sits in between).
    /// `None` when it could not be determined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<IpAddr>,
}

/// One firewall ruleset as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedRuleset {
    /// Display label, e.g. `SSH Server`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Whether the ruleset's ports are open at all.
    pub enabled: bool,
    /// Who may connect to them.
    pub allowed: AllowedHosts,
}

/// Who may connect to the ports of a firewall ruleset (`HostFirewallRulesetIpList`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllowedHosts {
    /// `allIp`: any address may connect (the lists do not matter then).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_ip: bool,
    /// The `ipAddress` and `ipNetwork` entries; a single address is a /32 (IPv4) or /128
    /// (IPv6) network.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub networks: BTreeSet<IpNet>,
    /// Entries the host reported that are neither an address nor a network (kept so that a
    /// list holding them never looks like the declared one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrecognized: Vec<String>,
}

impl AllowedHosts {
    /// Exactly these networks (and single addresses), not every address.
    pub fn only(networks: impl IntoIterator<Item = IpNet>) -> Self {
        AllowedHosts {
            all_ip: false,
            networks: networks.into_iter().collect(),
            unrecognized: Vec::new(),
        }
    }

    /// Every address (`allIp`), the host's default.
    pub fn any() -> Self {
        AllowedHosts {
            all_ip: true,
            ..AllowedHosts::default()
        }
    }

    /// Whether a connection from `address` passes.
    pub fn allows(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.all_ip || self.networks.iter().any(|net| net.contains(&address))
    }

    /// Whether no address at all may connect.
    pub fn allows_nothing(&self) -> bool {
        !self.all_ip && self.networks.is_empty()
    }
}

/// `any address`, `no address`, or the entries (single addresses without a prefix length),
/// e.g. `10.0.0.0/24, 192.168.1.5`.
impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.all_ip {
            return f.write_str("any address");
        }
        if self.networks.is_empty() && self.unrecognized.is_empty() {
            return f.write_str("no address");
        }
        let entries: Vec<String> = self
            .networks
            .iter()
            .map(|net| network_text(*net))
            .chain(self.unrecognized.iter().map(|entry| format!("{entry:?}")))
            .collect();
        f.write_str(&entries.join(", "))
    }
}

/// A network as people write it: a single address without its prefix length.
pub fn network_text(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// Why an entry of `spec.access.allowedNetworks` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedNetworkError {
    /// Neither an address nor a network in CIDR notation.
    #[error("{text:?} is neither an IP address nor a network in CIDR notation")]
    Invalid {
        /// The entry as written.
        text: String,
    },
    /// A network whose address has bits set beyond its prefix length, e.g. `10.0.0.5/24`.
    #[error("{text:?} has host bits set: {network} is the network, {address} the single address")]
    HostBitsSet {
        /// The entry as written.
        text: String,
        /// The network it lies in.
        network: IpNet,
        /// The single address it names.
        address: IpAddr,
    },
    /// A prefix length of 0: every address of its family.
    #[error("{text:?} allows every {family} address: that is not a restriction")]
    Everything {
        /// The entry as written.
        text: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
}

/// Reads one entry of `spec.access.allowedNetworks`: an IPv4 or IPv6 address (`10.0.0.5`,
/// `fd00::5`) or a network in CIDR notation (`10.0.0.0/24`, `fd00::/64`). A network must be
/// written with its host bits clear, and `/0` is refused.
pub fn parse_allowed_network(text: &str) -> Result<IpNet, AllowedNetworkError> {
    let trimmed = text.trim();
    if let Ok(address) = trimmed.parse::<IpAddr>() {
        return Ok(IpNet::from(address.to_canonical()));
    }
    let net: IpNet = trimmed.parse().map_err(|_| AllowedNetworkError::Invalid {
        text: text.to_owned(),
    })?;
    if net.prefix_len() == 0 {
        return Err(AllowedNetworkError::Everything {
            text: text.to_owned(),
            family: match net {
                IpNet::V4(_) => "IPv4",
                IpNet::V6(_) => "IPv6",
            },
        });
    }
    if net.addr() != net.network() {
        return Err(AllowedNetworkError::HostBitsSet {
            text: text.to_owned(),
            network: net.trunc(),
            address: net.addr(),
        });
    }
    Ok(net)
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
    /// Replace who may connect to a firewall ruleset (`UpdateRuleset` on the host's
    /// `HostFirewallSystem`, moref value `firewall_system`).
    UpdateFirewallRuleset {
        firewall_system: String,
        /// The ruleset key, e.g. `sshServer`.
        ruleset: String,
        allowed: AllowedHosts,
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

    /// Reads the firewall's rulesets and the address ceso reaches the host from (a read of
    /// its own, apart from the bulk read of `observe`). `Ok(None)`: the host has no firewall
    /// to manage; so says this default, for implementations that cannot read one.
    fn observe_access(&self) -> impl Future<Output = Result<Option<ObservedAccess>, Self::Error>> {
        async { Ok(None) }
    }
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

    fn observe_access(&self) -> impl Future<Output = Result<Option<ObservedAccess>, Self::Error>> {
        (**self).observe_access()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().expect("network")
    }

    #[test]
    fn allowed_network_entries_are_addresses_or_networks_with_clear_host_bits() {
        assert_eq!(parse_allowed_network("10.0.0.5"), Ok(net("10.0.0.5/32")));
        assert_eq!(
            parse_allowed_network(" 10.0.0.0/24 "),
            Ok(net("10.0.0.0/24"))
        );
        assert_eq!(parse_allowed_network("fd00::5"), Ok(net("fd00::5/128")));
        assert_eq!(parse_allowed_network("fd00::/64"), Ok(net("fd00::/64")));
        // An IPv4 address written as IPv6 is the IPv4 address the firewall sees.
        assert_eq!(
            parse_allowed_network("::ffff:10.0.0.5"),
            Ok(net("10.0.0.5/32"))
        );
        assert_eq!(
            parse_allowed_network("10.0.0.5/24"),
            Err(AllowedNetworkError::HostBitsSet {
                text: "10.0.0.5/24".into(),
                network: net("10.0.0.0/24"),
                address: "10.0.0.5".parse().expect("ip"),
            })
        );
        assert!(matches!(
            parse_allowed_network("0.0.0.0/0"),
            Err(AllowedNetworkError::Everything { family: "IPv4", .. })
        ));
        assert!(matches!(
            parse_allowed_network("::/0"),
            Err(AllowedNetworkError::Everything { family: "IPv6", .. })
        ));
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "esxi-01",
            "fe80::1%eth0",
            "10.0.0.0/x",
        ] {
            assert!(
                matches!(
                    parse_allowed_network(bad),
                    Err(AllowedNetworkError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn allowed_hosts_tell_who_passes_and_read_as_people_write_them() {
        let list =
            AllowedHosts::only([net("10.0.0.0/24"), net("192.168.1.5/32"), net("fd00::/64")]);
        assert!(list.allows("10.0.0.77".parse().expect("ip")));
        assert!(list.allows("192.168.1.5".parse().expect("ip")));
        assert!(list.allows("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(list.allows("fd00::1234".parse().expect("ip")));
        assert!(!list.allows("192.168.1.6".parse().expect("ip")));
        assert!(!list.allows("127.0.0.1".parse().expect("ip")));
        assert_eq!(list.to_string(), "10.0.0.0/24, 192.168.1.5, fd00::/64");
        assert!(AllowedHosts::any().allows("203.0.113.9".parse().expect("ip")));
        assert_eq!(AllowedHosts::any().to_string(), "any address");
        assert!(AllowedHosts::only([]).allows_nothing());
        assert_eq!(AllowedHosts::only([]).to_string(), "no address");
    }
}
