//! The metadata document (`guestinfo.metadata`) and the instance-id.

use ring::digest;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{CloudInitConfig, InterfaceConfig};

/// The metadata cloud-init's VMware datasource reads from `guestinfo.metadata`:
///
/// - `instance-id`, `local-hostname`;
/// - `public-keys-data`: the keys joined by `"\n"` (cloud-init gives them to the distro's
///   default user); absent when there are none;
/// - `network`: netplan v2 (`{"version": 2, "ethernets": {...}}`), one entry `nic<N>` per
///   adapter N that has a MAC in `macs`, matched by that MAC (lowercased) and renamed
///   `set-name: nic<N>`, as cloud-init itself renders MAC-matched adapters. A static address
///   gives `addresses`, no address gives `dhcp4: true`; a gateway gives the route
///   `to: 0.0.0.0/0` (`::/0` for IPv6; never `default`, which Debian's cloud-init 22.4 rejects);
///   nameservers and search domains give `nameservers`.
///
/// The caller passes one MAC per adapter, in adapter order. An adapter without one (fewer
/// `macs` than interfaces) is left out, because a netplan entry that cannot be matched would
/// configure an interface named `nic<N>` that does not exist; extra MACs are ignored. When no
/// adapter is left, `network` is absent and cloud-init falls back to DHCP on the first NIC.
pub fn metadata(config: &CloudInitConfig, macs: &[String]) -> Value {
    let mut document = Map::new();
    document.insert("instance-id".into(), config.instance_id.clone().into());
    document.insert("local-hostname".into(), config.hostname.clone().into());
    if !config.ssh_authorized_keys.is_empty() {
        document.insert(
            "public-keys-data".into(),
            config.ssh_authorized_keys.join("\n").into(),
        );
    }
    let ethernets: Map<String, Value> = config
        .interfaces
        .iter()
        .zip(macs)
        .enumerate()
        .map(|(index, (interface, mac))| {
            let name = format!("nic{index}");
            let ethernet = netplan_ethernet(&name, interface, mac);
            (name, ethernet)
        })
        .collect();
    if !ethernets.is_empty() {
        document.insert(
            "network".into(),
            json!({ "version": 2, "ethernets": ethernets }),
        );
    }
    Value::Object(document)
}

/// One `ethernets` entry of netplan v2.
fn netplan_ethernet(name: &str, interface: &InterfaceConfig, mac: &str) -> Value {
    let mut ethernet = Map::new();
    ethernet.insert(
        "match".into(),
        json!({ "macaddress": mac.to_ascii_lowercase() }),
    );
    ethernet.insert("set-name".into(), name.into());
    match &interface.address {
        Some(address) => ethernet.insert("addresses".into(), json!([address])),
        None => ethernet.insert("dhcp4".into(), true.into()),
    };
    if let Some(gateway) = &interface.gateway {
        let default_route = if gateway.contains(':') {
            "::/0"
        } else {
            "0.0.0.0/0"
        };
        ethernet.insert(
            "routes".into(),
            json!([{ "to": default_route, "via": gateway }]),
        );
    }
    let mut nameservers = Map::new();
    if !interface.nameservers.is_empty() {
        nameservers.insert("addresses".into(), json!(interface.nameservers));
    }
    if !interface.search.is_empty() {
        nameservers.insert("search".into(), json!(interface.search));
    }
    if !nameservers.is_empty() {
        ethernet.insert("nameservers".into(), Value::Object(nameservers));
    }
    Value::Object(ethernet)
}

/// What the instance-id is a hash of: everything the guest applies once per instance (its
/// hostname and the network configuration it is told), and nothing else. The IP pool an
/// address came from is not part of it: the guest never sees it.
///
/// Its serialization is the canonical form: changing it changes every VM's instance-id (and
/// makes every guest re-run its first-boot configuration), so it must stay as it is.
#[derive(Serialize)]
struct InstanceIdentity<'a> {
    hostname: &'a str,
    interfaces: Vec<InterfaceIdentity<'a>>,
}

#[derive(Serialize)]
struct InterfaceIdentity<'a> {
    address: Option<&'a str>,
    gateway: Option<&'a str>,
    nameservers: &'a [String],
    search: &'a [String],
}

/// The instance-id of VM `vm`: `"<vm>-<8 hex digits>"`, the digits being the start of the
/// SHA-256 of a canonical serialization of `hostname` and `interfaces` (address, gateway,
/// nameservers and search domains, in adapter order). Deterministic; it changes exactly when
/// the hostname or the network configuration changes (not with packages, users or keys), so a
/// guest re-applies its hostname and network on the next boot after either changed.
pub fn instance_id(vm: &str, hostname: &str, interfaces: &[InterfaceConfig]) -> String {
    let identity = InstanceIdentity {
        hostname,
        interfaces: interfaces
            .iter()
            .map(|interface| InterfaceIdentity {
                address: interface.address.as_deref(),
                gateway: interface.gateway.as_deref(),
                nameservers: &interface.nameservers,
                search: &interface.search,
            })
            .collect(),
    };
    let canonical = serde_json::to_vec(&identity)
        .expect("strings, options and string slices always serialize to JSON");
    let hash = digest::digest(&digest::SHA256, &canonical);
    let hex: String = hash.as_ref()[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{vm}-{hex}")
}
