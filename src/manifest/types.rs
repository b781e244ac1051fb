//! The manifest format (`apiVersion: ceso/v1`): one serde + schemars type per kind.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

use super::size::Size;
pub use crate::host::Firmware;

/// The only API version this release understands.
pub const API_VERSION: &str = "ceso/v1";

/// The Kubernetes-style envelope every manifest document has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document<S> {
    /// Always `ceso/v1`.
    pub api_version: String,
    /// The kind of resource: `Host`, `VirtualMachine`, `Template`, `IpPool` or `BackupPolicy`.
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
}

/// Name and labels of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Unique among resources of the same kind. For a VM this is also its name on the host.
    pub name: String,
    /// Free-form labels, for people and selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Where a secret comes from: `{ env: NAME }`, `{ file: path }`, `{ secret: NAME }` (ceso's
/// encrypted secret store) or `{ keyring: NAME }` (the OS keyring). Literal secrets are never
/// accepted in manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretRef {
    /// Name of an environment variable holding the secret.
    Env(EnvSecret),
    /// Path of a file holding the secret (relative to the manifest file); one trailing newline is ignored.
    File(FileSecret),
    /// Name of a secret in ceso's encrypted secret store (`ceso secret set NAME`).
    Store(StoreSecret),
    /// Name of an entry in the OS keyring (`ceso secret set NAME --keyring`).
    Keyring(KeyringSecret),
}

/// `{ secret: NAME }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSecret {
    /// Name of a secret in ceso's encrypted secret store (`ceso secret list` shows them).
    pub secret: String,
}

/// `{ keyring: NAME }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyringSecret {
    /// Name of an entry of service `ceso` in the OS keyring.
    pub keyring: String,
}

/// `{ env: NAME }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvSecret {
    /// Name of an environment variable holding the secret.
    pub env: String,
}

/// `{ file: path }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSecret {
    /// Path of a file holding the secret, relative to the manifest file.
    pub file: PathBuf,
}

impl SecretRef {
    /// A reference to an environment variable.
    pub fn env(name: impl Into<String>) -> Self {
        SecretRef::Env(EnvSecret { env: name.into() })
    }

    /// A reference to a file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SecretRef::File(FileSecret { file: path.into() })
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(EnvSecret { env }) => write!(f, "environment variable {env}"),
            SecretRef::File(FileSecret { file }) => write!(f, "file {}", file.display()),
            SecretRef::Store(StoreSecret { secret }) => write!(f, "secret {secret}"),
            SecretRef::Keyring(KeyringSecret { keyring }) => write!(f, "keyring entry {keyring}"),
        }
    }
}

/// `kind: Host` — a standalone ESXi host and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSpec {
    /// URL of the host, e.g. `https://esxi-01.lab.example:443` (`/sdk` is added when no path is given).
    pub address: String,
    /// SHA-256 thumbprint of the host's certificate, `AB:CD:...` (pinning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// Skip certificate verification. Explicit, and warned about on every run.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Login user, e.g. `root`.
    pub username: String,
    /// The password: `{ env: NAME }`, `{ file: path }`, `{ secret: NAME }` or `{ keyring: NAME }`.
    pub password: SecretRef,
    /// Default datastore for VMs on this host.
    pub datastore: String,
    /// Default port group for VM network adapters.
    pub network: String,
    /// Delete managed VMs of this host that are missing from the manifests (like `--prune`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub prune: bool,
    /// `true`: ceso leaves every VM of this host as it is (declared or not) until this is
    /// removed; `ceso plan` still shows what it would change.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
    /// Who may reach the host's management services (the ESXi firewall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<HostAccessSpec>,
    /// SSH to the host, where ceso uses it: the pinned host key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<HostSshSpec>,
}

/// `spec.access` of a Host: who may reach its management services. Omitted, ceso leaves the
/// firewall as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostAccessSpec {
    /// IPv4 and IPv6 addresses and networks in CIDR notation (`10.0.0.5`, `10.0.0.0/24`,
    /// `fd00::/64`; host bits clear, no `/0`), at least one. ceso keeps the allowed hosts of
    /// the ESXi firewall rulesets `sshServer` (SSH), `vSphereClient` (API and host client:
    /// 443, 902) and `webAccess` (80) to exactly these, and refuses a list that would not
    /// allow the machine ceso runs on.
    pub allowed_networks: Vec<String>,
}

/// `spec.ssh` of a Host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSshSpec {
    /// Fingerprint of one of the host's SSH keys as `ssh-keygen -lf` prints it (`SHA256:...`);
    /// ceso refuses any other key before logging in.
    pub host_key: String,
    /// SSH port. Omitted: 22.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `kind: VirtualMachine` — a VM ceso creates and keeps as declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualMachineSpec {
    /// Name of the `Host` resource the VM lives on.
    pub host: String,
    /// Name of a `Template`: disk 0 is a copy of the template's disk, and cpu, memory,
    /// guestId, firmware and disk 0's size default to the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Clone another VM of the same host instead (`{ vm: NAME }`): every disk is a host-side
    /// copy of the source's (from a snapshot taken for the purpose when it runs), with a new
    /// identity. cpu, memory, guestId, firmware and disk sizes default to the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<CloneSourceSpec>,
    /// Number of virtual CPUs. Required without a template or source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Memory, a multiple of 4MiB, e.g. `4GiB`. Required without a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Size")]
    pub memory: Option<Size>,
    /// Virtual disks in order; they can grow but never shrink in place. With a template, disk 0
    /// is the template's copy (omitted: the template's `diskSize`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskSpec>,
    /// Network adapters in order. Omitted: one adapter on the host's default network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkSpec>>,
    /// Desired power state.
    #[serde(default)]
    pub power: Power,
    /// vSphere guest OS identifier, e.g. `ubuntu64Guest`. Omitted: the template's, or
    /// `otherGuest64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_id: Option<String>,
    /// Datastore for the VM's files. Omitted: the host's default datastore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    /// `true`: ceso never deletes or replaces this VM.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protect: bool,
    /// `true`: ceso leaves the VM as it is (no creation, change, power change, replacement or
    /// deletion, no scheduled backups) until this is removed; `ceso plan` still shows what it
    /// would change.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
    /// First-boot configuration of the guest by cloud-init (through VMware guestinfo). A VM made
    /// from a template, or with an `ip` on an adapter, gets it even when this is omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInitSpec>,
    /// Notes shown in the host client. Omitted: ceso leaves the VM's notes alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// How ceso powers the VM off when a change needs it, or the manifest says `power: off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<ShutdownSpec>,
    /// Name of the `BackupPolicy` that backs the VM up. Omitted: no scheduled backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_policy: Option<String>,
}

/// Shutting a VM down: through VMware Tools, waiting up to `timeoutSeconds`; a hard power-off
/// only when `force` (or `--force-power-off`) allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShutdownSpec {
    /// How long the guest may take to shut down (default 300).
    #[serde(default = "default_shutdown_timeout")]
    pub timeout_seconds: u64,
    /// `true`: when the guest has no running VMware Tools or does not stop in time, power the
    /// VM off hard (like pulling the plug).
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
}

/// How long a guest may take to shut down when the manifest does not say.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 300;

fn default_shutdown_timeout() -> u64 {
    DEFAULT_SHUTDOWN_TIMEOUT_SECS
}

impl Default for ShutdownSpec {
    fn default() -> Self {
        Self {
            timeout_seconds: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            force: false,
        }
    }
}

/// The VM a clone is made from: `{ vm: NAME }` (its manifest name, or its name on the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneSourceSpec {
    pub vm: String,
}

/// One virtual disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskSpec {
    /// Capacity, e.g. `20GiB`.
    pub size: Size,
}

/// One network adapter (vmxnet3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// Port group name. Omitted: the host's default network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_group: Option<String>,
    /// `auto` (an address from `pool`), or a static address with prefix length such as
    /// `192.168.1.100/24`. Omitted: DHCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The `IpPool` to take the address from (`ip: auto`), or whose gateway and DNS servers a
    /// static address uses (omitted: the pool whose network contains the address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

/// What cloud-init sets up in the guest at first boot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudInitSpec {
    /// Host name of the guest. Omitted: the VM's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// SSH public keys for the image's default user (e.g. `ubuntu`): a key, or
    /// `{ file: path }` (relative to the manifest file; every key line of the file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<SshKeySource>,
    /// cloud-config `users` entries, as cloud-init documents them (list `default` to keep the
    /// image's default user). Passwords are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<serde_json::Value>,
    /// Packages to install at first boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Free-form cloud-config merged into what ceso generates (lists such as `runcmd` are
    /// appended). Passwords are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<serde_json::Value>,
}

/// An SSH public key, written inline or read from a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SshKeySource {
    /// The key itself, e.g. `ssh-ed25519 AAAA... ops@example`.
    Inline(String),
    /// `{ file: path }`: a public key file such as `~/.ssh/id_ed25519.pub`.
    File(FileSecret),
}

/// `kind: Template` — a disk on a host that VMs are made from (imported with
/// `ceso template import`), and the defaults for those VMs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSpec {
    /// Name of the `Host` resource whose datastore holds the disk.
    pub host: String,
    /// The source disk, e.g. `"[datastore1] ubuntu-24.04/ubuntu-24.04.vmdk"`.
    pub disk: String,
    /// vSphere guest OS identifier of the image, e.g. `ubuntu64Guest`.
    #[serde(default = "default_guest_id")]
    pub guest_id: String,
    /// Boot firmware the image needs: `bios` or `efi`.
    #[serde(default = "default_firmware")]
    pub firmware: Firmware,
    /// Default number of virtual CPUs of VMs made from it.
    pub cpu: u32,
    /// Default memory of VMs made from it.
    pub memory: Size,
    /// Default size of disk 0 of VMs made from it. Omitted: the size of the template disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Size")]
    pub disk_size: Option<Size>,
}

/// `kind: IpPool` — an IPv4 subnet and the addresses ceso may hand out in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPoolSpec {
    /// The subnet, e.g. `192.168.1.0/24`.
    pub cidr: String,
    /// Default gateway, e.g. `192.168.1.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_domains: Vec<String>,
    /// Where `ip: auto` addresses come from (inclusive ranges). Omitted: the pool serves only
    /// static addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<IpRangeSpec>,
    /// Addresses ceso never hands out (used by something outside ceso).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<ReservationSpec>,
}

/// An inclusive address range, e.g. `{ start: 192.168.1.100, end: 192.168.1.199 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpRangeSpec {
    pub start: String,
    pub end: String,
}

/// A reserved address: `192.168.1.10`, or `{ address: 192.168.1.10, note: printer }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ReservationSpec {
    Address(String),
    Described(DescribedReservation),
}

/// `{ address: 192.168.1.10, note: printer }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribedReservation {
    pub address: String,
    /// What uses the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ReservationSpec {
    /// The reserved address as written.
    pub fn address(&self) -> &str {
        match self {
            ReservationSpec::Address(address) => address,
            ReservationSpec::Described(described) => &described.address,
        }
    }
}

/// `kind: BackupPolicy` — when the VMs naming it are backed up, which backups are kept, and
/// where they go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupPolicySpec {
    /// When backups are due.
    pub schedule: ScheduleSpec,
    /// How many backups are kept (at least one count above 0).
    pub retention: RetentionSpec,
    /// Where backups are written: exactly one of `directory` and `datastore`.
    pub target: BackupTargetSpec,
    /// Quiesce the guest file systems for the snapshot when VMware Tools run (default `true`).
    #[serde(default = "default_true")]
    pub quiesce: bool,
}

/// A cron schedule in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Standard 5-field cron expression (minute hour day-of-month month day-of-week), e.g.
    /// `30 2 * * *`, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    pub cron: String,
    /// IANA time zone the expression is read in, e.g. `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// How many backups of each VM are kept, restic style; a backup kept by any rule is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionSpec {
    /// The newest N backups.
    #[serde(default)]
    pub keep_last: u32,
    /// The newest backup of each of the N most recent days that have backups.
    #[serde(default)]
    pub keep_daily: u32,
    /// The newest backup of each of the N most recent ISO weeks that have backups.
    #[serde(default)]
    pub keep_weekly: u32,
    /// The newest backup of each of the N most recent months that have backups.
    #[serde(default)]
    pub keep_monthly: u32,
}

/// Where backups are written: `directory` or `datastore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupTargetSpec {
    /// A directory on the machine running ceso; disks are streamed from the host and stored as
    /// content-addressed chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryTargetSpec>,
    /// A folder on a datastore of the VM's own host; disks are copied on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<DatastoreTargetSpec>,
}

/// `{ path: ../backups }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryTargetSpec {
    /// The directory; a relative path is relative to the inventory directory.
    pub path: PathBuf,
}

/// `{ datastore: datastore1, folder: ceso-backups }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatastoreTargetSpec {
    /// Name of a datastore of the VM's host, e.g. `datastore1`.
    pub datastore: String,
    /// Folder on the datastore, relative to its root, e.g. `ceso-backups`.
    pub folder: String,
}

/// Desired power state: `on` or `off` (YAML 1.1 booleans `true`/`false` are accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    #[default]
    On,
    Off,
}

impl fmt::Display for Power {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Power::On => "on",
            Power::Off => "off",
        })
    }
}

impl<'de> Deserialize<'de> for Power {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Power;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`on` or `off`")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Power, E> {
                Ok(if v { Power::On } else { Power::Off })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Power, E> {
                if v == "on" || POWER_ON.contains(&v) {
                    Ok(Power::On)
                } else if v == "off" || POWER_OFF.contains(&v) {
                    Ok(Power::Off)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Spellings of the power states the loader accepts besides `on`, `off`, `true` and `false`.
const POWER_ON: [&str; 4] = ["On", "ON", "true", "yes"];
const POWER_OFF: [&str; 4] = ["Off", "OFF", "false", "no"];

impl JsonSchema for Power {
    fn schema_name() -> Cow<'static, str> {
        "Power".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let others: Vec<&str> = POWER_ON.iter().chain(&POWER_OFF).copied().collect();
        json_schema!({
            "description": "Desired power state: `on` or `off` (YAML 1.1 booleans `true`/`false` are accepted too).",
            "anyOf": [
                { "type": "string", "enum": ["on", "off"] },
                { "type": "boolean", "description": "`true` is on, `false` off." },
                { "type": "string", "enum": others, "description": "Other spellings accepted for `on` and `off`." }
            ]
        })
    }
}

/// The guest OS identifier of a VM that declares none and has no template.
pub const DEFAULT_GUEST_ID: &str = "otherGuest64";

fn default_guest_id() -> String {
    DEFAULT_GUEST_ID.to_owned()
}

fn default_firmware() -> Firmware {
    Firmware::Bios
}

fn default_true() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !*value
}
