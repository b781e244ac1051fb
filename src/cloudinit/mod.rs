//! cloud-init through VMware guestinfo: what ceso tells a guest on first boot, rendered into
//! the `guestinfo.metadata` / `guestinfo.userdata` keys that cloud-init's VMware datasource
//! reads. Pure functions; no I/O.
//!
//! - [`metadata`] (instance-id, local-hostname, public keys, a netplan v2 `network` matched to
//!   each adapter by MAC) and [`instance_id`] (a hash of everything the guest configures once per
//!   instance);
//! - [`user_data`]: the `#cloud-config` ceso generates merged with the manifest's own, refusing
//!   passwords; [`redact_user_data`] for display;
//! - [`guestinfo`] renders both into the four extraConfig keys, [`read_guestinfo`] reads them
//!   back ([`encode`] / [`decode`] are the `gzip+base64` encoding).
//!
//! The tests feed these values to cloud-init's own VMware datasource (`tests/cloudinit.rs`).

mod encoding;
mod metadata;
mod user_data;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use encoding::{DecodeError, DecodedGuestinfo, decode, encode, read_guestinfo};
pub use metadata::{instance_id, metadata};
pub use user_data::{UserDataError, UserDataInput, redact_user_data, user_data};

/// extraConfig key of the metadata (JSON).
pub const METADATA_KEY: &str = "guestinfo.metadata";
/// extraConfig key naming the encoding of [`METADATA_KEY`].
pub const METADATA_ENCODING_KEY: &str = "guestinfo.metadata.encoding";
/// extraConfig key of the user-data (`#cloud-config` YAML).
pub const USERDATA_KEY: &str = "guestinfo.userdata";
/// extraConfig key naming the encoding of [`USERDATA_KEY`].
pub const USERDATA_ENCODING_KEY: &str = "guestinfo.userdata.encoding";
/// The encoding ceso writes: gzip, then standard base64.
pub const GZIP_BASE64: &str = "gzip+base64";

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
/// order): `guestinfo.metadata` (the JSON of [`metadata`]), `guestinfo.userdata`
/// (`config.user_data`) and their `.encoding` (`gzip+base64`).
pub fn guestinfo(config: &CloudInitConfig, macs: &[String]) -> BTreeMap<String, String> {
    let metadata = metadata(config, macs).to_string();
    BTreeMap::from([
        (METADATA_KEY.to_owned(), encode(&metadata)),
        (METADATA_ENCODING_KEY.to_owned(), GZIP_BASE64.to_owned()),
        (USERDATA_KEY.to_owned(), encode(&config.user_data)),
        (USERDATA_ENCODING_KEY.to_owned(), GZIP_BASE64.to_owned()),
    ])
}
