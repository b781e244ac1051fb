//! Backups: declared policies, two targets (a folder on the host's datastore, or a local
//! directory of content-addressed chunks), a catalog kept in the state file and rebuildable from
//! the targets, and restore in place or as a new VM.

pub mod chunks;
pub mod host;
pub mod policy;
pub mod retention;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::host::{Firmware, ObservedVm};

pub use host::{BackupHost, DatastoreEntry, Download};

/// The settings of a VM that a backup records and an in-place restore puts back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmConfig {
    pub name: String,
    pub guest_id: String,
    pub cpu: u32,
    pub memory_mib: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    #[serde(default)]
    pub annotation: String,
    /// Every extraConfig key, folded (last value wins, empty = absent).
    #[serde(default)]
    pub extra_config: BTreeMap<String, String>,
    /// The network adapters: port group, MAC and adapter type, in device order.
    #[serde(default)]
    pub nics: Vec<NicConfig>,
    /// `[datastore] dir/name.vmx`
    pub vmx_path: String,
}

/// A network adapter as backed up.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicConfig {
    pub port_group: String,
    pub mac_address: String,
    pub adapter: String,
}

impl From<&ObservedVm> for VmConfig {
    fn from(vm: &ObservedVm) -> Self {
        VmConfig {
            name: vm.name.clone(),
            guest_id: vm.guest_id.clone(),
            cpu: vm.cpu,
            memory_mib: vm.memory_mib,
            firmware: vm.firmware,
            annotation: vm.annotation.clone(),
            extra_config: vm.extra_config.clone(),
            nics: vm
                .nics
                .iter()
                .map(|n| NicConfig {
                    port_group: n.port_group.clone(),
                    mac_address: n.mac_address.clone(),
                    adapter: n.adapter.clone(),
                })
                .collect(),
            vmx_path: vm.vmx_path.clone(),
        }
    }
}
