//! The desired state: a validated inventory with every default filled in, in the units the
//! host speaks. This (with the observed state) is all the planner sees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::{EnvSecret, FileSecret, Inventory, Power, SecretRef};
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

/// A secret reference that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {name} is not set (password of host {host})")]
    MissingEnv { host: String, name: String },
    #[error("cannot read password file {path} of host {host}: {source}")]
    File {
        host: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the password of host {host} ({from}) is empty")]
    Empty { host: String, from: String },
}

impl HostConnection {
    /// Reads the password from where the manifest says it is.
    pub fn resolve_password(&self, host: &str) -> Result<Secret, SecretError> {
        let value = match &self.password {
            SecretRef::Env(EnvSecret { env }) => {
                std::env::var(env).map_err(|_| SecretError::MissingEnv {
                    host: host.to_owned(),
                    name: env.clone(),
                })?
            }
            SecretRef::File(FileSecret { file }) => {
                let path = self.secret_base.join(file);
                let mut text =
                    std::fs::read_to_string(&path).map_err(|source| SecretError::File {
                        host: host.to_owned(),
                        path: path.clone(),
                        source,
                    })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty {
                host: host.to_owned(),
                from: self.password.to_string(),
            });
        }
        Ok(Secret::new(value))
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
}

/// Everything the operator declared, ready for the planner.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DesiredState {
    pub hosts: BTreeMap<String, DesiredHost>,
    pub vms: BTreeMap<String, DesiredVm>,
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
                };
                (host.name.clone(), desired)
            })
            .collect();
        let vms = inventory
            .vms
            .values()
            .filter_map(|vm| {
                let spec = &vm.spec;
                let host = hosts.get(&spec.host)?;
                let networks = match &spec.networks {
                    None => vec![host.network.clone()],
                    Some(list) => list
                        .iter()
                        .map(|n| n.port_group.clone().unwrap_or_else(|| host.network.clone()))
                        .collect(),
                };
                let config = VmSettings {
                    cpu: spec.cpu,
                    memory_mib: spec.memory.mib(),
                    guest_id: spec.guest_id.clone(),
                    datastore: spec
                        .datastore
                        .clone()
                        .unwrap_or_else(|| host.datastore.clone()),
                    disks: spec.disks.iter().map(|d| d.size.bytes()).collect(),
                    networks,
                    power: spec.power,
                    protect: spec.protect,
                };
                Some((
                    vm.name.clone(),
                    DesiredVm {
                        name: vm.name.clone(),
                        host: spec.host.clone(),
                        datastore_declared: spec.datastore.is_some(),
                        config,
                    },
                ))
            })
            .collect();
        DesiredState { hosts, vms }
    }
}
