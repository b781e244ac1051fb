//! The manifest format (`apiVersion: ceso/v1`): one serde + schemars type per kind.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

use super::size::Size;

/// The only API version this release understands.
pub const API_VERSION: &str = "ceso/v1";

/// The Kubernetes-style envelope every manifest document has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document<S> {
    /// Always `ceso/v1`.
    pub api_version: String,
    /// The kind of resource: `Host` or `VirtualMachine`.
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

/// Where a secret comes from: `{ env: NAME }` or `{ file: path }`. Literal secrets are never
/// accepted in manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretRef {
    /// Name of an environment variable holding the secret.
    Env(EnvSecret),
    /// Path of a file holding the secret (relative to the manifest file); one trailing newline is ignored.
    File(FileSecret),
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
    /// The password: `{ env: NAME }` or `{ file: path }`.
    pub password: SecretRef,
    /// Default datastore for VMs on this host.
    pub datastore: String,
    /// Default port group for VM network adapters.
    pub network: String,
    /// Delete managed VMs of this host that are missing from the manifests (like `--prune`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub prune: bool,
}

/// `kind: VirtualMachine` — a VM ceso creates and keeps as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualMachineSpec {
    /// Name of the `Host` resource the VM lives on.
    pub host: String,
    /// Number of virtual CPUs.
    pub cpu: u32,
    /// Memory, a multiple of 4MiB, e.g. `4GiB`.
    pub memory: Size,
    /// Virtual disks in order; they can grow but never shrink in place.
    #[serde(default)]
    pub disks: Vec<DiskSpec>,
    /// Network adapters in order. Omitted: one adapter on the host's default network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkSpec>>,
    /// Desired power state.
    #[serde(default)]
    pub power: Power,
    /// vSphere guest OS identifier, e.g. `ubuntu64Guest`.
    #[serde(default = "default_guest_id")]
    pub guest_id: String,
    /// Datastore for the VM's files. Omitted: the host's default datastore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    /// `true`: ceso never deletes or replaces this VM.
    #[serde(default)]
    pub protect: bool,
}

/// One virtual disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskSpec {
    /// Capacity, e.g. `20GiB`.
    pub size: Size,
}

/// One network adapter (vmxnet3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// Port group name. Omitted: the host's default network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_group: Option<String>,
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

fn default_guest_id() -> String {
    "otherGuest64".to_owned()
}

fn is_false(value: &bool) -> bool {
    !*value
}
