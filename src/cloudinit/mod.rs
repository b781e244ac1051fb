//! cloud-init through VMware guestinfo: what ceso tells a guest on first boot, rendered into
//! the `guestinfo.metadata` / `guestinfo.userdata` keys that cloud-init's VMware datasource
//! reads. Pure functions; no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What ceso tells cloud-init about one VM: everything needed to render its guestinfo, except
/// the adapters' MAC addresses (the host assigns those when it creates the adapters).
///
/// Also recorded (inside `ceso.applied`) on the VM, which is how addresses are rebuilt from
/// the host. Holds no secrets: manifests may not carry passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudInitConfig {
    /// `instance-id`; a new one makes the guest re-run its per-instance configuration.
    pub instance_id: String,
    /// `local-hostname`.
    pub hostname: String,
    /// Public keys for the default user (`public-keys-data`), one key per entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
    /// One entry per network adapter, in adapter order.
    pub interfaces: Vec<InterfaceConfig>,
    /// The complete user-data (cloud-config YAML, starting with `#cloud-config`).
    pub user_data: String,
}

/// The network configuration of one adapter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceConfig {
    /// Static address with prefix length, e.g. `192.168.1.100/24`; `None` means DHCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The IP pool the address was allocated from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Default gateway (a route to `0.0.0.0/0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

/// The `guestinfo.*` extraConfig entries for `config`, the adapters having `macs` (in adapter
/// order): `guestinfo.metadata`, `guestinfo.userdata` and their `.encoding` (`gzip+base64`).
pub fn guestinfo(config: &CloudInitConfig, macs: &[String]) -> BTreeMap<String, String> {
    let _ = (config, macs);
    todo!("rendered by the cloudinit module")
}
