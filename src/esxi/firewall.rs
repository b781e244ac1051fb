//! The host's firewall: reading its rulesets (`HostFirewallSystem.firewallInfo`, found through
//! the HostSystem's `configManager.firewallSystem`), the address ceso reaches the host from, and
//! replacing a ruleset's allowed hosts (`UpdateRuleset`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::EsxiClient;
use super::envelope::method_body;
use super::error::EsxiError;
use super::properties::{FilterSpec, traversal};
use super::xml::{Element, MoRef, XmlWriter};
use crate::host::{AllowedHosts, ObservedAccess, ObservedRuleset, OpOutcome};

/// The managed object type of a host's firewall.
const FIREWALL_SYSTEM: &str = "HostFirewallSystem";

/// How long the probe connection that finds ceso's own address may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl EsxiClient {
    /// One `RetrievePropertiesEx` from the root folder down to the host's firewall system
    /// (`Folder.childEntity` → `Datacenter.hostFolder` → `ComputeResource.host` →
    /// `HostSystem.configManager.firewallSystem`), reading its `firewallInfo`; then one TCP
    /// connection to the host's API port, whose local address is the address the host's firewall
    /// sees ceso come from. `Ok(None)` when the host has no firewall system.
    pub(crate) async fn read_access(&self) -> Result<Option<ObservedAccess>, EsxiError> {
        let spec = FilterSpec::new()
            .props(FIREWALL_SYSTEM, &["firewallInfo"])
            .object(&self.service.root_folder, true, |w| {
                traversal(
                    w,
                    "folderChildren",
                    "Folder",
                    "childEntity",
                    &["folderChildren", "datacenterHosts", "computeHosts"],
                );
                traversal(
                    w,
                    "datacenterHosts",
                    "Datacenter",
                    "hostFolder",
                    &["folderChildren"],
                );
                traversal(
                    w,
                    "computeHosts",
                    "ComputeResource",
                    "host",
                    &["hostFirewall"],
                );
                traversal(
                    w,
                    "hostFirewall",
                    "HostSystem",
                    "configManager.firewallSystem",
                    &[],
                );
            });
        let objects = self.retrieve(&spec).await?;
        let mut systems = objects.iter().filter(|o| o.obj.kind == FIREWALL_SYSTEM);
        let Some(system) = systems.next() else {
            return Ok(None);
        };
        if systems.next().is_some() {
            return Err(EsxiError::Inventory {
                address: self.transport.address().to_owned(),
                message: "more than one host firewall: ceso manages standalone hosts, not vCenter"
                    .into(),
            });
        }
        let rulesets = system
            .prop("firewallInfo")
            .map(rulesets_of)
            .unwrap_or_default();
        Ok(Some(ObservedAccess {
            firewall_system: system.obj.value.clone(),
            rulesets,
            client_address: self.client_address().await,
        }))
    }

    /// The local address of a TCP connection to the host's API port (closed again at once,
    /// before anything is sent). `None` when the connection cannot be made.
    async fn client_address(&self) -> Option<IpAddr> {
        let url = reqwest::Url::parse(self.transport.address()).ok()?;
        // `host_str` keeps an IPv6 address in brackets, as `host:port` needs it.
        let target = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
        let connect = tokio::net::TcpStream::connect(target);
        match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream.local_addr().ok().map(|a| a.ip().to_canonical()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot tell the address ceso reaches the host from");
                None
            }
            Err(_) => {
                tracing::warn!("cannot tell the address ceso reaches the host from: timed out");
                None
            }
        }
    }

    /// `UpdateRuleset`: the ruleset's allowed hosts become exactly `allowed`. An unknown
    /// ruleset is the host's `NotFound` fault, named.
    pub(crate) async fn update_ruleset(
        &self,
        firewall_system: &str,
        ruleset: &str,
        allowed: &AllowedHosts,
    ) -> Result<OpOutcome, EsxiError> {
        let this = MoRef::new(FIREWALL_SYSTEM, firewall_system);
        let mut w = method_body(&this);
        write_update_ruleset(&mut w, ruleset, allowed);
        match self.call("UpdateRuleset", &w.finish()).await {
            Ok(_) => {
                tracing::info!("firewall ruleset {ruleset}: allowed hosts set to {allowed}");
                Ok(OpOutcome::default())
            }
            Err(EsxiError::Fault { method, fault, .. }) if fault == "NotFound" => {
                Err(EsxiError::Fault {
                    method,
                    fault,
                    message: format!("the host has no firewall ruleset {ruleset:?}"),
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// The arguments of `UpdateRuleset` after `_this`: the ruleset id and a
/// `HostFirewallRulesetRulesetSpec` (single addresses as `ipAddress`, networks as `ipNetwork`,
/// in the schema's order).
fn write_update_ruleset(w: &mut XmlWriter, ruleset: &str, allowed: &AllowedHosts) {
    w.leaf("id", ruleset).start("spec").start("allowedHosts");
    let single = |net: &IpNet| net.prefix_len() == net.max_prefix_len();
    for net in allowed.networks.iter().filter(|n| single(n)) {
        w.leaf("ipAddress", &net.addr().to_string());
    }
    for net in allowed.networks.iter().filter(|n| !single(n)) {
        w.start("ipNetwork")
            .leaf("network", &net.network().to_string())
            .leaf("prefixLength", &net.prefix_len().to_string())
            .end("ipNetwork");
    }
    w.leaf("allIp", if allowed.all_ip { "true" } else { "false" })
        .end("allowedHosts")
        .end("spec");
}

/// The rulesets of a `HostFirewallInfo`, by key.
fn rulesets_of(info: &Element) -> BTreeMap<String, ObservedRuleset> {
    info.children_named("ruleset")
        .filter_map(|ruleset| {
            let key = ruleset.child_text("key")?.trim().to_owned();
            let observed = ObservedRuleset {
                label: ruleset.child_text("label").unwrap_or_default().to_owned(),
                enabled: ruleset.child_text("enabled").map(str::trim) == Some("true"),
                allowed: ruleset
                    .child("allowedHosts")
                    .map(allowed_hosts_of)
                    // Hosts before API 5.0 had no lists: every address passes.
                    .unwrap_or_else(AllowedHosts::any),
            };
            Some((key, observed))
        })
        .collect()
}

/// A `HostFirewallRulesetIpList`: single addresses become /32 (/128) networks, anything
/// unreadable is kept aside as it was.
fn allowed_hosts_of(list: &Element) -> AllowedHosts {
    let mut allowed = AllowedHosts {
        all_ip: list.child_text("allIp").map(str::trim) == Some("true"),
        ..AllowedHosts::default()
    };
    for address in list.children_named("ipAddress") {
        let text = address.text.trim();
        match text.parse::<IpAddr>() {
            Ok(ip) => {
                allowed.networks.insert(IpNet::from(ip.to_canonical()));
            }
            Err(_) => allowed.unrecognized.push(text.to_owned()),
        }
    }
    for network in list.children_named("ipNetwork") {
        let address = network.child_text("network").unwrap_or_default().trim();
        let prefix = network
            .child_text("prefixLength")
            .unwrap_or_default()
            .trim();
        let parsed = address
            .parse::<IpAddr>()
            .ok()
            .zip(prefix.parse::<u8>().ok())
            .and_then(|(ip, len)| IpNet::new(ip.to_canonical(), len).ok());
        match parsed {
            Some(net) => {
                allowed.networks.insert(net);
            }
            None => allowed.unrecognized.push(format!("{address}/{prefix}")),
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::xml::parse;

    const INFO: &str = r#"<val xmlns:x="http://www.w3.org/2001/XMLSchema-instance" x:type="HostFirewallInfo">
        <defaultPolicy><incomingBlocked>true</incomingBlocked><outgoingBlocked>true</outgoingBlocked></defaultPolicy>
        <ruleset><key>sshServer</key><label>SSH Server</label><required>true</required>
          <rule><port>22</port><direction>inbound</direction><portType>dst</portType><protocol>tcp</protocol></rule>
          <service></service><enabled>true</enabled><allowedHosts><allIp>true</allIp></allowedHosts></ruleset>
        <ruleset><key>vSphereClient</key><label>vSphere Web Client</label><required>true</required>
          <enabled>true</enabled><allowedHosts>
            <ipAddress>192.168.1.5</ipAddress><ipAddress>fd00:0::5</ipAddress><ipAddress>::ffff:10.1.1.1</ipAddress>
            <ipNetwork><network>10.0.0.0</network><prefixLength>24</prefixLength></ipNetwork>
            <ipNetwork><network>10.0.9.9</network><prefixLength>32</prefixLength></ipNetwork>
            <ipNetwork><network>nonsense</network><prefixLength>8</prefixLength></ipNetwork>
            <allIp>false</allIp></allowedHosts></ruleset>
        <ruleset><key>DVFilter</key><label>DVFilter</label><enabled>false</enabled></ruleset>
        </val>"#;

    fn net(text: &str) -> IpNet {
        text.parse().expect("network")
    }

    #[test]
    fn firewall_info_is_read_per_ruleset_with_addresses_as_networks() {
        let rulesets = rulesets_of(&parse(INFO).expect("xml"));
        assert_eq!(
            rulesets.keys().collect::<Vec<_>>(),
            ["DVFilter", "sshServer", "vSphereClient"]
        );
        let ssh = &rulesets["sshServer"];
        assert_eq!(
            (ssh.label.as_str(), ssh.enabled, &ssh.allowed),
            ("SSH Server", true, &AllowedHosts::any())
        );
        let api = &rulesets["vSphereClient"].allowed;
        assert!(!api.all_ip);
        assert_eq!(
            api.networks.iter().copied().collect::<Vec<_>>(),
            [
                net("10.0.0.0/24"),
                net("10.0.9.9/32"),
                net("10.1.1.1/32"),
                net("192.168.1.5/32"),
                net("fd00::5/128")
            ]
        );
        assert_eq!(api.unrecognized, ["nonsense/8"]);
        assert_eq!(
            api.to_string(),
            "10.0.0.0/24, 10.0.9.9, 10.1.1.1, 192.168.1.5, fd00::5, \"nonsense/8\""
        );
        // A ruleset without a list (an old host) lets every address in.
        let old = &rulesets["DVFilter"];
        assert!(!old.enabled && old.allowed.all_ip);
    }

    #[test]
    fn update_ruleset_writes_addresses_then_networks_then_all_ip() {
        let mut w = XmlWriter::new();
        let allowed = AllowedHosts::only([
            net("10.0.0.0/24"),
            net("127.0.0.1/32"),
            net("fd00::/64"),
            net("fd00::5/128"),
        ]);
        write_update_ruleset(&mut w, "vSphereClient", &allowed);
        assert_eq!(
            w.finish(),
            "<id>vSphereClient</id><spec><allowedHosts>\
             <ipAddress>127.0.0.1</ipAddress><ipAddress>fd00::5</ipAddress>\
             <ipNetwork><network>10.0.0.0</network><prefixLength>24</prefixLength></ipNetwork>\
             <ipNetwork><network>fd00::</network><prefixLength>64</prefixLength></ipNetwork>\
             <allIp>false</allIp></allowedHosts></spec>"
        );
        let mut w = XmlWriter::new();
        write_update_ruleset(&mut w, "sshServer", &AllowedHosts::any());
        assert_eq!(
            w.finish(),
            "<id>sshServer</id><spec><allowedHosts><allIp>true</allIp></allowedHosts></spec>"
        );
    }
}
