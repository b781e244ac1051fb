//! The desired state: a validated inventory with every default filled in, in the units the
//! host speaks. This (with the observed state) is all the planner sees.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backup::policy::BackupPolicy;
use crate::cloudinit::{CloudInitConfig, UserDataInput, user_data};
use crate::host::Firmware;
use crate::ipam;
use crate::manifest::{DEFAULT_GUEST_ID, HostSshSpec, Inventory, Power, SecretRef, ShutdownSpec};
use crate::secret::Secret;

/// How to reach a host. Holds a reference to the password, never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostConnection {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    pub username: String,
    pub password: SecretRef,
    /// Directory that relative `password: { file: ... }` paths start from.
    pub secret_base: PathBuf,
}

/// The password of a host could not be read. Names the host and the reference, never a value.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the password of host {host}: {source}")]
pub struct SecretError {
    pub host: String,
    #[source]
    pub source: crate::secret::ResolveError,
}

impl SecretError {
    /// What to do about it (e.g. `ceso secret set NAME`).
    pub fn hint(&self) -> String {
        self.source.hint()
    }
}

impl HostConnection {
    /// Reads the password from where the manifest says it is (`{ env }`, `{ file }` relative to
    /// the manifest, `{ secret }` in ceso's encrypted store, `{ keyring }` in the OS keyring).
    /// Refused when the manifest's directory may have been written by another account.
    pub fn resolve_password(&self, host: &str) -> Result<Secret, SecretError> {
        crate::secret::check_written_by_caller(&self.secret_base)
            .and_then(|()| crate::secret::resolve(&self.password, &self.secret_base))
            .map_err(|source| SecretError {
                host: host.to_owned(),
                source,
            })
    }
}

/// `dir` as an absolute path, so a saved plan finds password files from any working directory.
fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// A host as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredHost {
    pub name: String,
    pub connection: HostConnection,
    pub datastore: String,
    pub network: String,
    /// The manifest asks to delete managed VMs that are no longer declared.
    pub prune: bool,
    /// `spec.access.allowedNetworks`: who may reach SSH and the API, in manifest order
    /// (`None`: ceso leaves the firewall as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_networks: Option<Vec<ipnet::IpNet>>,
    /// `spec.ssh`: the pinned SSH host key and port (`None`: ceso does not use SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<HostSshSpec>,
}

/// A VM as declared, defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredVm {
    pub name: String,
    pub host: String,
    /// The manifest names the datastore (rather than inheriting the host's default).
    #[serde(default)]
    pub datastore_declared: bool,
    #[serde(flatten)]
    pub config: VmSettings,
    /// How each adapter gets its address (`None`: DHCP), in adapter order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addressing: Vec<Option<ipam::Request>>,
    /// What the guest is told at first boot; the planner completes it into
    /// `config.cloud_init` once addresses are allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInitRequest>,
    /// How to power the VM off.
    #[serde(default)]
    pub shutdown: ShutdownSpec,
    /// The name of the backup policy (in [`DesiredState::backup_policies`]) that backs it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_policy: Option<String>,
}

/// The parts of a VM's cloud-init configuration that come straight from its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudInitRequest {
    pub hostname: String,
    pub ssh_authorized_keys: Vec<String>,
    /// The merged user-data (cloud-config).
    pub user_data: String,
}

/// A template as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredTemplate {
    pub name: String,
    pub host: String,
    /// `[datastore] path.vmdk`
    pub disk: String,
    pub guest_id: String,
    pub firmware: Firmware,
    pub cpu: u32,
    pub memory_mib: u64,
    /// Default size of disk 0 in bytes; `None`: the template disk's own size.
    pub disk_size: Option<u64>,
}

/// The settings of a VM that ceso keeps as declared. Also written (as JSON) to the VM's
/// `ceso.applied` extraConfig key, so drift can be told from manifest changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmSettings {
    pub cpu: u32,
    pub memory_mib: u64,
    pub guest_id: String,
    pub datastore: String,
    /// Disk sizes in bytes, in order.
    pub disks: Vec<u64>,
    /// Port group of each adapter, in order.
    pub networks: Vec<String>,
    /// Not part of `ceso.applied`: the power state ceso last reached is recorded separately
    /// (`ceso.power`), by the power operation itself once it succeeded.
    #[serde(skip_serializing, default)]
    pub power: Power,
    pub protect: bool,
    /// The template disk 0 was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Boot firmware (from the template); `None`: the host's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    /// What cloud-init is told, addresses included (filled by the planner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInitConfig>,
    /// The VM's notes; `None`: not managed by ceso.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// The VM this one was cloned from. While planning, a cpu or memory of 0, an empty guestId
    /// and missing disks stand for "the source's".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Everything the operator declared, ready for the planner.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DesiredState {
    pub hosts: BTreeMap<String, DesiredHost>,
    pub vms: BTreeMap<String, DesiredVm>,
    #[serde(default)]
    pub templates: BTreeMap<String, DesiredTemplate>,
    #[serde(default)]
    pub pools: BTreeMap<String, ipam::Pool>,
    /// Backup policies by name, schedules parsed and target directories absolute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backup_policies: BTreeMap<String, BackupPolicy>,
    /// What `suspend: true` pauses: the plan changes nothing about those VMs (it only shows
    /// what it would change) and their backups are not due.
    #[serde(default, skip_serializing_if = "Suspensions::is_empty")]
    pub suspended: Suspensions,
}

/// The hosts and VMs whose manifests say `suspend: true`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Suspensions {
    /// Hosts suspended as a whole: every VM on them, declared or not.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub hosts: BTreeSet<String>,
    /// VMs suspended by their own manifest, by name.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub vms: BTreeSet<String>,
}

impl Suspensions {
    /// Whether nothing is suspended.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.vms.is_empty()
    }

    /// The resource whose `suspend: true` pauses the VM named `vm` on `host`
    /// (`VirtualMachine/<vm>` before `Host/<host>`); `None` when the VM is not suspended.
    pub fn suspended_by(&self, vm: &str, host: &str) -> Option<String> {
        if self.vms.contains(vm) {
            Some(format!("VirtualMachine/{vm}"))
        } else if self.hosts.contains(host) {
            Some(format!("Host/{host}"))
        } else {
            None
        }
    }

    /// Whether a declared VM is suspended, by its own manifest or its host's.
    pub fn contains(&self, vm: &DesiredVm) -> bool {
        self.vms.contains(&vm.name) || self.hosts.contains(&vm.host)
    }
}

impl DesiredState {
    /// Resolves defaults of a validated inventory.
    pub fn from_inventory(inventory: &Inventory) -> Self {
        let hosts: BTreeMap<String, DesiredHost> = inventory
            .hosts
            .values()
            .map(|host| {
                let spec = &host.spec;
                let desired = DesiredHost {
                    name: host.name.clone(),
                    connection: HostConnection {
                        address: spec.address.clone(),
                        thumbprint: spec.thumbprint.clone(),
                        insecure: spec.insecure,
                        username: spec.username.clone(),
                        password: spec.password.clone(),
                        secret_base: absolute(host.file.parent().unwrap_or(Path::new("."))),
                    },
                    datastore: spec.datastore.clone(),
                    network: spec.network.clone(),
                    prune: spec.prune,
                    // Validation refused every entry that does not parse.
                    allowed_networks: spec.access.as_ref().map(|access| {
                        access
                            .allowed_networks
                            .iter()
                            .filter_map(|entry| crate::host::parse_allowed_network(entry).ok())
                            .collect()
                    }),
                    ssh: spec.ssh.clone(),
                };
                (host.name.clone(), desired)
            })
            .collect();
        let templates: BTreeMap<String, DesiredTemplate> = inventory
            .templates
            .values()
            .map(|template| {
                let spec = &template.spec;
                let desired = DesiredTemplate {
                    name: template.name.clone(),
                    host: spec.host.clone(),
                    disk: spec.disk.clone(),
                    guest_id: spec.guest_id.clone(),
                    firmware: spec.firmware,
                    cpu: spec.cpu,
                    memory_mib: spec.memory.mib(),
                    disk_size: spec.disk_size.map(|s| s.bytes()),
                };
                (template.name.clone(), desired)
            })
            .collect();
        let pools = inventory
            .pools
            .values()
            .filter_map(|pool| {
                crate::manifest::parse_pool(&pool.name, &pool.spec)
                    .ok()
                    .map(|p| (pool.name.clone(), p))
            })
            .collect();
        let backup_policies = inventory
            .backup_policies
            .values()
            .filter_map(|policy| {
                crate::manifest::parse_backup_policy(&policy.name, &policy.spec, &inventory.root)
                    .ok()
                    .map(|p| (policy.name.clone(), p))
            })
            .collect();
        let vms = inventory
            .vms
            .values()
            .filter_map(|vm| {
                let spec = &vm.spec;
                let host = hosts.get(&spec.host)?;
                let template = spec.template.as_ref().and_then(|t| templates.get(t));
                let declared_networks = spec
                    .networks
                    .clone()
                    .unwrap_or_else(|| vec![Default::default()]);
                let networks = declared_networks
                    .iter()
                    .map(|n| n.port_group.clone().unwrap_or_else(|| host.network.clone()))
                    .collect();
                let addressing: Vec<Option<ipam::Request>> = declared_networks
                    .iter()
                    .map(|n| match n.ip.as_deref().map(str::trim) {
                        None => None,
                        Some("auto") => n.pool.clone().map(|pool| ipam::Request::Auto { pool }),
                        Some(text) => {
                            crate::manifest::parse_interface_address(text)
                                .ok()
                                .map(|address| ipam::Request::Static {
                                    address,
                                    pool: n.pool.clone(),
                                })
                        }
                    })
                    .collect();
                let mut disks: Vec<u64> = spec.disks.iter().map(|d| d.size.bytes()).collect();
                if let Some(template) = template
                    && disks.is_empty()
                {
                    // 0: the template disk's own size, known only once the host is observed.
                    disks.push(template.disk_size.unwrap_or(0));
                }
                // A clone always gets a new identity: a new instance-id, hostname and addresses.
                let wants_cloud_init = spec.cloud_init.is_some()
                    || template.is_some()
                    || spec.source.is_some()
                    || addressing.iter().any(Option::is_some);
                let cloud_init = wants_cloud_init.then(|| {
                    let section = spec.cloud_init.clone().unwrap_or_default();
                    let hostname = section.hostname.clone().unwrap_or_else(|| vm.name.clone());
                    let input = UserDataInput {
                        hostname: &hostname,
                        users: &section.users,
                        packages: &section.packages,
                        extra: section.user_data.as_ref(),
                    };
                    CloudInitRequest {
                        user_data: user_data(&input).unwrap_or_default(),
                        ssh_authorized_keys: inventory
                            .ssh_keys
                            .get(&vm.name)
                            .cloned()
                            .unwrap_or_default(),
                        hostname,
                    }
                });
                let cloned = spec.source.is_some();
                let config = VmSettings {
                    cpu: spec
                        .cpu
                        .or(template.map(|t| t.cpu))
                        .unwrap_or(if cloned { 0 } else { 1 }),
                    memory_mib: spec
                        .memory
                        .map(|m| m.mib())
                        .or(template.map(|t| t.memory_mib))
                        .unwrap_or(if cloned { 0 } else { 4 }),
                    guest_id: spec
                        .guest_id
                        .clone()
                        .or(template.map(|t| t.guest_id.clone()))
                        .unwrap_or_else(|| {
                            if cloned {
                                String::new()
                            } else {
                                DEFAULT_GUEST_ID.to_owned()
                            }
                        }),
                    datastore: spec
                        .datastore
                        .clone()
                        .unwrap_or_else(|| host.datastore.clone()),
                    disks,
                    networks,
                    power: spec.power,
                    protect: spec.protect,
                    template: template.map(|t| t.name.clone()),
                    firmware: template.map(|t| t.firmware),
                    cloud_init: None,
                    annotation: spec.annotation.clone(),
                    source: spec.source.as_ref().map(|s| s.vm.clone()),
                };
                Some((
                    vm.name.clone(),
                    DesiredVm {
                        name: vm.name.clone(),
                        host: spec.host.clone(),
                        datastore_declared: spec.datastore.is_some(),
                        config,
                        addressing,
                        cloud_init,
                        shutdown: spec.shutdown.unwrap_or_default(),
                        backup_policy: spec.backup_policy.clone(),
                    },
                ))
            })
            .collect();
        let suspended = Suspensions {
            hosts: inventory
                .hosts
                .values()
                .filter(|host| host.spec.suspend)
                .map(|host| host.name.clone())
                .collect(),
            vms: inventory
                .vms
                .values()
                .filter(|vm| vm.spec.suspend)
                .map(|vm| vm.name.clone())
                .collect(),
        };
        DesiredState {
            hosts,
            vms,
            templates,
            pools,
            backup_policies,
            suspended,
        }
    }
}
