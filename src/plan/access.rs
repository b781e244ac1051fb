//! The firewall part of a plan: a host's `spec.access.allowedNetworks` against the allowed
//! hosts of its firewall rulesets. Pure, like the rest of the planner.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::model::{Action, FieldChange, ResourceChange};
use crate::diagnostic::Diagnostic;
use crate::host::{
    API_RULESET, AllowedHosts, HostOp, ObservedAccess, ObservedHost, SSH_RULESET, WEB_RULESET,
};

/// The field of the manifest the firewall changes come from.
pub const ACCESS_FIELD: &str = "spec.access.allowedNetworks";

/// A ruleset `allowedNetworks` governs.
struct Governed {
    key: &'static str,
    /// What it opens, for people.
    what: &'static str,
    /// A host without it is an error (otherwise the ruleset is simply not there to restrict).
    required: bool,
}

/// The rulesets `allowedNetworks` governs, in the order their steps run: the API's last, since
/// it is the one ceso itself needs.
const GOVERNED: [Governed; 3] = [
    Governed {
        key: WEB_RULESET,
        what: "plain HTTP, port 80",
        required: false,
    },
    Governed {
        key: SSH_RULESET,
        what: "SSH, port 22",
        required: true,
    },
    Governed {
        key: API_RULESET,
        what: "the API and host client, ports 443 and 902",
        required: true,
    },
];

/// The rulesets `spec.access.allowedNetworks` governs, in the order ceso updates them.
pub fn governed_rulesets() -> impl Iterator<Item = &'static str> {
    GOVERNED.iter().map(|g| g.key)
}

/// What a plan depends on of one host's firewall: the allowed hosts of the governed rulesets
/// when the plan was made, and the rulesets ceso itself needs to reach the host (a saved plan
/// is re-checked against both before it runs).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlannedAccess {
    /// Allowed hosts per governed ruleset, as observed.
    pub rulesets: BTreeMap<String, AllowedHosts>,
    /// The rulesets ceso uses to reach the host: `vSphereClient`, and `sshServer` when the Host
    /// declares `spec.ssh`.
    pub needed_by_ceso: Vec<String>,
}

/// The firewall's part of the plan of one host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct AccessPlan {
    /// The `Host/<name>` change: `None` when the firewall already matches.
    pub change: Option<ResourceChange>,
    /// `(description, operation)` of each ruleset update, in order.
    pub steps: Vec<(String, HostOp)>,
    /// Why the change cannot be made (errors), with positions in the Host manifest.
    pub diagnostics: Vec<Diagnostic>,
    /// What the plan depends on; `None` when the firewall was not observed.
    pub planned: Option<PlannedAccess>,
}

/// Plans the firewall of host `host` to allow exactly `allowed` on the governed rulesets.
/// `uses_ssh`: ceso reaches the host over SSH too (the Host declares `spec.ssh`), so the SSH
/// ruleset must keep allowing it as well.
pub(super) fn plan_access(
    host: &str,
    allowed: &[IpNet],
    uses_ssh: bool,
    observed: &ObservedHost,
) -> AccessPlan {
    let mut plan = AccessPlan::default();
    let error = |message: String, hint: String| {
        Diagnostic::error(message)
            .resource(format!("Host/{host}"))
            .field(ACCESS_FIELD)
            .hint(hint)
    };
    let Some(access) = &observed.access else {
        plan.diagnostics.push(error(
            format!("the firewall of host {host} could not be read: it reports no firewall system (configManager.firewallSystem)"),
            "remove `spec.access` from the Host manifest: ceso cannot restrict access to this host".to_owned(),
        ));
        return plan;
    };
    let wanted = AllowedHosts::only(allowed.iter().copied());
    let needed: Vec<&str> = if uses_ssh {
        vec![SSH_RULESET, API_RULESET]
    } else {
        vec![API_RULESET]
    };
    plan.planned = Some(PlannedAccess {
        rulesets: GOVERNED
            .iter()
            .filter_map(|g| {
                let observed = access.rulesets.get(g.key)?;
                Some((g.key.to_owned(), observed.allowed.clone()))
            })
            .collect(),
        needed_by_ceso: needed.iter().map(|key| (*key).to_owned()).collect(),
    });
    if wanted.allows_nothing() {
        plan.diagnostics.push(error(
            format!("the allowed networks of host {host} are empty: no one could reach its API or SSH, ceso included"),
            "list the addresses or networks that may manage the host, at least the one ceso runs from; or remove `spec.access` to leave the firewall as it is".to_owned(),
        ));
        return plan;
    }
    let mut fields = Vec::new();
    for governed in &GOVERNED {
        let Some(ruleset) = access.rulesets.get(governed.key) else {
            if governed.required {
                plan.diagnostics.push(error(
                    format!(
                        "host {host} has no firewall ruleset {} ({}): ceso cannot restrict it",
                        governed.key, governed.what
                    ),
                    "check the host's firewall (Host client: Networking → Firewall rules); remove `spec.access` to leave the firewall as it is".to_owned(),
                ));
            }
            continue;
        };
        if ruleset.allowed == wanted {
            continue;
        }
        if needed.contains(&governed.key)
            && let Some(refusal) = lockout(host, governed.key, &wanted, access)
        {
            plan.diagnostics.push(refusal);
        }
        fields.push(FieldChange {
            field: format!("firewall.{}", governed.key),
            before: Some(ruleset.allowed.to_string()),
            after: Some(wanted.to_string()),
            drift: false,
            requires_power_off: false,
            forces_replacement: false,
        });
        plan.steps.push((
            format!(
                "firewall ruleset {} ({}): allow {wanted}",
                governed.key, governed.what
            ),
            HostOp::UpdateFirewallRuleset {
                firewall_system: access.firewall_system.clone(),
                ruleset: governed.key.to_owned(),
                allowed: wanted.clone(),
            },
        ));
    }
    let mut notes = Vec::new();
    if let Some(address) = access.client_address
        && fields.iter().any(|f| {
            needed
                .iter()
                .any(|key| f.field == format!("firewall.{key}"))
        })
        && wanted.allows(address)
    {
        notes.push(format!(
            "this machine reaches the host from {address}, which the new list allows"
        ));
    }
    if !fields.is_empty() {
        plan.change = Some(ResourceChange {
            address: format!("Host/{host}"),
            host: host.to_owned(),
            name: host.to_owned(),
            action: Action::Update,
            fields,
            power_cycle: false,
            undeclared: false,
            notes,
        });
    }
    plan
}

/// The refusal of a new list of `ruleset` (one ceso needs) that would not let ceso in any more;
/// `None` when it would.
fn lockout(
    host: &str,
    ruleset: &str,
    wanted: &AllowedHosts,
    access: &ObservedAccess,
) -> Option<Diagnostic> {
    let diagnostic = |message: String, hint: String| {
        Diagnostic::error(message)
            .resource(format!("Host/{host}"))
            .field(ACCESS_FIELD)
            .hint(hint)
    };
    match access.client_address {
        Some(address) if wanted.allows(address) => None,
        Some(address) => Some(diagnostic(
            format!(
                "refusing to change firewall ruleset {ruleset} of host {host}: it would lock out this machine, which reaches the host from {address}, an address the new list ({wanted}) does not allow"
            ),
            format!(
                "add {address} (or a network holding it, e.g. {}) to spec.access.allowedNetworks",
                example_network(address)
            ),
        )),
        None => Some(diagnostic(
            format!(
                "refusing to change firewall ruleset {ruleset} of host {host}: ceso could not tell which address this machine reaches the host from, so it cannot check that the new list keeps it in"
            ),
            "check that the host's API port can be reached from here, then plan again".to_owned(),
        )),
    }
}

/// The /24 (IPv4) or /64 (IPv6) network around an address, as an example for a hint.
fn example_network(address: IpAddr) -> String {
    let prefix = if address.is_ipv4() { 24 } else { 64 };
    IpNet::new(address, prefix)
        .map(|net| net.trunc().to_string())
        .unwrap_or_else(|_| address.to_string())
}

/// Why a saved plan's firewall changes no longer fit the host: the governed rulesets changed
/// since the plan was made, or this machine (now observed at `access.client_address`) would be
/// locked out by them.
pub(super) fn stale_access(
    host: &str,
    planned: &PlannedAccess,
    steps: &[&HostOp],
    now: Option<&ObservedAccess>,
) -> Vec<String> {
    let Some(now) = now else {
        return vec![format!("the firewall of host {host} could not be read")];
    };
    let mut reasons = Vec::new();
    for (key, then) in &planned.rulesets {
        match now.rulesets.get(key) {
            Some(current) if &current.allowed != then => reasons.push(format!(
                "firewall ruleset {key} of host {host} changed since the plan was made: {then} → {}",
                current.allowed
            )),
            Some(_) => {}
            None => reasons.push(format!(
                "firewall ruleset {key} of host {host} no longer exists"
            )),
        }
    }
    for op in steps {
        let HostOp::UpdateFirewallRuleset {
            ruleset, allowed, ..
        } = op
        else {
            continue;
        };
        if !planned.needed_by_ceso.contains(ruleset) {
            continue;
        }
        match now.client_address {
            Some(address) if allowed.allows(address) => {}
            Some(address) => reasons.push(format!(
                "the new list of firewall ruleset {ruleset} of host {host} ({allowed}) would lock out this machine, which reaches the host from {address}"
            )),
            None => reasons.push(format!(
                "ceso could not tell which address this machine reaches host {host} from, so it cannot check that the new list of firewall ruleset {ruleset} keeps it in"
            )),
        }
    }
    reasons
}
