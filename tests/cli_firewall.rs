//! End to end: `spec.access.allowedNetworks` reconciled into the ESXi firewall by the real `ceso`
//! binary against the simulator. The firewall is always read back from the host over SOAP. The
//! simulator listens on 127.0.0.1, so that is the address ceso reaches it from.
//!
//! The simulator has no `UpdateRuleset`; the project's launcher answers it (see
//! `tests/esxsim/main.go`), with a real host's semantics, which the first tests pin down.

mod support;

use std::collections::BTreeMap;

use support::inventory::Inventory;
use support::{Simulator, retrieve_properties, soap_query_response, xml_escape};

/// The allowed hosts of one ruleset as the host reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    all_ip: bool,
    /// `ipAddress` entries, then `ipNetwork` ones as `network/prefixLength`.
    entries: Vec<String>,
}

impl Allowed {
    fn any() -> Self {
        Allowed {
            all_ip: true,
            entries: vec![],
        }
    }

    fn only(entries: &[&str]) -> Self {
        Allowed {
            all_ip: false,
            entries: entries.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

/// The moref value of the simulated host's firewall system.
fn firewall_system(sim: &Simulator) -> String {
    let props = retrieve_properties(
        sim,
        "HostSystem",
        "ha-host",
        &["configManager.firewallSystem"],
    );
    props["configManager.firewallSystem"].text.clone()
}

/// Every ruleset's allowed hosts, read from the host.
fn rulesets(sim: &Simulator) -> BTreeMap<String, Allowed> {
    let props = retrieve_properties(
        sim,
        "HostFirewallSystem",
        &firewall_system(sim),
        &["firewallInfo"],
    );
    let info = &props["firewallInfo"];
    info.children_named("ruleset")
        .map(|ruleset| {
            let key = ruleset.child("key").expect("key").text.clone();
            let list = ruleset.child("allowedHosts").expect("allowedHosts");
            let mut entries: Vec<String> = list
                .children_named("ipAddress")
                .map(|a| a.text.clone())
                .collect();
            entries.extend(list.children_named("ipNetwork").map(|n| {
                format!(
                    "{}/{}",
                    n.child("network").expect("network").text,
                    n.child("prefixLength").expect("prefixLength").text
                )
            }));
            let all_ip = list.child("allIp").is_some_and(|a| a.text == "true");
            (key, Allowed { all_ip, entries })
        })
        .collect()
}

/// `UpdateRuleset` sent by hand (as an administrator in the host client would), logged in.
fn update_ruleset(sim: &Simulator, id: &str, addresses: &[&str]) -> support::SoapResponse {
    let entries: String = addresses
        .iter()
        .map(|a| format!("<ipAddress>{}</ipAddress>", xml_escape(a)))
        .collect();
    soap_query_response(
        sim,
        &format!(
            r#"<UpdateRuleset xmlns="urn:vim25"><_this type="HostFirewallSystem">{}</_this><id>{}</id><spec><allowedHosts>{entries}<allIp>false</allIp></allowedHosts></spec></UpdateRuleset>"#,
            xml_escape(&firewall_system(sim)),
            xml_escape(id)
        ),
    )
}

/// An inventory of one Host (no VMs) declaring `access` lines (empty: no `spec.access`).
fn inventory(sim: &Simulator, access: &str) -> Inventory {
    let inv = Inventory::new(sim, "");
    let hosts = inv.path().join("hosts.yaml");
    let mut text = std::fs::read_to_string(&hosts).expect("hosts.yaml");
    text.push_str(access);
    std::fs::write(&hosts, text).expect("hosts.yaml");
    inv
}

const GOVERNED: [&str; 3] = ["sshServer", "vSphereClient", "webAccess"];

#[test]
fn the_launchers_update_ruleset_replaces_the_list_and_refuses_an_unknown_ruleset() {
    let sim = Simulator::start();
    assert_eq!(rulesets(&sim)["sshServer"], Allowed::any(), "as ESXi ships");
    let r = update_ruleset(&sim, "sshServer", &["10.1.1.1", "10.1.1.2"]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        rulesets(&sim)["sshServer"],
        Allowed::only(&["10.1.1.1", "10.1.1.2"])
    );
    // Replaced, not merged.
    update_ruleset(&sim, "sshServer", &["10.1.1.3"]);
    assert_eq!(rulesets(&sim)["sshServer"], Allowed::only(&["10.1.1.3"]));

    let unknown = update_ruleset(&sim, "noSuchRuleset", &["10.1.1.1"]);
    assert_eq!(
        unknown.fault().as_deref(),
        Some("NotFound"),
        "{}",
        unknown.body
    );
    let invalid = update_ruleset(&sim, "sshServer", &["not-an-address"]);
    assert_eq!(
        invalid.fault().as_deref(),
        Some("InvalidArgument"),
        "{}",
        invalid.body
    );
    assert_eq!(
        rulesets(&sim)["sshServer"],
        Allowed::only(&["10.1.1.3"]),
        "unchanged"
    );
    // Without a session the simulator's own check answers.
    let anonymous = support::soap_post(
        &sim,
        None,
        &format!(
            r#"<UpdateRuleset xmlns="urn:vim25"><_this type="HostFirewallSystem">{}</_this><id>sshServer</id><spec><allowedHosts><allIp>true</allIp></allowedHosts></spec></UpdateRuleset>"#,
            firewall_system(&sim)
        ),
    );
    assert_eq!(anonymous.fault().as_deref(), Some("NotAuthenticated"));
    assert_eq!(rulesets(&sim)["sshServer"], Allowed::only(&["10.1.1.3"]));
}

#[test]
fn plan_shows_the_change_apply_makes_it_and_the_host_then_matches() {
    let sim = Simulator::start();
    let inv = inventory(
        &sim,
        "  access:\n    allowedNetworks: [ 10.0.0.0/24, 127.0.0.1, \"fd00::/64\" ]\n",
    );

    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    let out = plan.stdout();
    assert!(
        out.contains("# Host/esxi-01 will be updated in place (host esxi-01)"),
        "{out}"
    );
    for ruleset in GOVERNED {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("~ firewall.{ruleset} ")))
            .unwrap_or_else(|| panic!("{ruleset}: {out}"));
        assert!(
            line.ends_with("= any address → 10.0.0.0/24, 127.0.0.1, fd00::/64"),
            "{line}"
        );
    }
    assert!(
        out.contains("# this machine reaches the host from 127.0.0.1, which the new list allows"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete."),
        "{out}"
    );
    let json = inv.ceso(&sim, &["plan", "DIR", "--json"]).json();
    let ops: Vec<&str> = json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["op"]["ruleset"].as_str().expect("a firewall step"))
        .collect();
    assert_eq!(ops, ["webAccess", "sshServer", "vSphereClient"]);
    assert_eq!(json["changes"][0]["address"], "Host/esxi-01");
    let markdown = inv.ceso(&sim, &["plan", "DIR", "--format", "markdown"]);
    assert!(
        markdown.stdout().contains("`firewall.vSphereClient`"),
        "{}",
        markdown.stdout()
    );
    assert!(
        rulesets(&sim).values().all(|allowed| allowed.all_ip),
        "plan changes nothing"
    );

    let apply = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    apply.expect(0);
    assert_eq!(sim.method_count("UpdateRuleset"), 3);
    let after = rulesets(&sim);
    for ruleset in GOVERNED {
        assert_eq!(
            after[ruleset],
            Allowed::only(&["127.0.0.1", "10.0.0.0/24", "fd00::/64"]),
            "{ruleset}"
        );
    }
    let others: Vec<&String> = after
        .iter()
        .filter(|(key, allowed)| !GOVERNED.contains(&key.as_str()) && !allowed.all_ip)
        .map(|(key, _)| key)
        .collect();
    assert!(
        others.is_empty(),
        "only the governed rulesets change: {others:?}"
    );

    let again = inv.ceso(&sim, &["plan", "DIR"]);
    again.expect(0);
    assert!(again.stdout().contains("No changes."), "{}", again.stdout());

    // Audited like every other step.
    let runs = inv.ceso(&sim, &["audit", "list", "--json"]).json();
    assert_eq!(runs.as_array().expect("runs").len(), 1);
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["steps_succeeded"], 3);
    let run_id = runs[0]["run_id"].as_str().expect("run id");
    let shown = inv.ceso(&sim, &["audit", "show", run_id]);
    shown.expect(0);
    assert!(
        shown.stdout().contains("firewall ruleset vSphereClient"),
        "{}",
        shown.stdout()
    );
}

#[test]
fn a_list_that_would_lock_out_this_machine_is_refused_and_the_host_is_untouched() {
    let sim = Simulator::start();
    let inv = inventory(&sim, "  access:\n    allowedNetworks: [ 10.0.0.0/24 ]\n");
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(1);
    let text = format!("{}{}", plan.stdout(), plan.stderr());
    assert!(
        text.contains("refusing to change firewall ruleset vSphereClient of host esxi-01: it would lock out this machine, which reaches the host from 127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("add 127.0.0.1"), "{text}");
    assert!(
        text.contains("hosts.yaml:"),
        "the error points into the Host manifest: {text}"
    );

    let apply = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    apply.expect(1);
    assert_eq!(sim.method_count("UpdateRuleset"), 0);
    assert!(
        rulesets(&sim).values().all(|allowed| allowed.all_ip),
        "nothing changed"
    );
}

#[test]
fn without_spec_access_ceso_leaves_the_firewall_as_it_is() {
    let sim = Simulator::start();
    let r = update_ruleset(&sim, "sshServer", &["10.9.9.9"]);
    assert_eq!(r.status, 200, "{}", r.body);
    let before = rulesets(&sim);
    let inv = inventory(&sim, "");
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(0);
    assert!(!plan.stdout().contains("firewall"), "{}", plan.stdout());
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(rulesets(&sim), before);
    // (the change made by hand above is not counted: the support helpers' calls are hidden)
    assert_eq!(sim.method_count("UpdateRuleset"), 0, "ceso sent none");
}

#[test]
fn a_saved_plan_is_refused_when_the_firewall_changed_since() {
    let sim = Simulator::start();
    let inv = inventory(&sim, "  access:\n    allowedNetworks: [ 127.0.0.1 ]\n");
    let saved = inv.dir.path().join("plan.json");
    let saved = saved.to_str().expect("path");
    inv.ceso(&sim, &["plan", "DIR", "--out", saved]).expect(2);
    update_ruleset(&sim, "sshServer", &["10.9.9.9"]);
    let apply = inv.ceso(&sim, &["apply", saved, "--auto-approve"]);
    apply.expect(1);
    assert!(
        apply.stderr().contains(
            "firewall ruleset sshServer of host esxi-01 changed since the plan was made: any address → 10.9.9.9"
        ),
        "{}",
        apply.stderr()
    );
    let now = rulesets(&sim);
    assert_eq!(now["sshServer"], Allowed::only(&["10.9.9.9"]));
    assert!(now["vSphereClient"].all_ip, "nothing applied");
}

#[test]
fn invalid_entries_are_reported_at_their_line_with_a_fix() {
    let sim = Simulator::start();
    let inv = inventory(
        &sim,
        "  access:\n    allowedNetworks:\n      - 10.0.0.5/24\n      - esxi-admin\n      - 0.0.0.0/0\n",
    );
    let run = inv.ceso(&sim, &["validate", "DIR"]);
    run.expect(1);
    let text = format!("{}{}", run.stdout(), run.stderr());
    for expected in [
        "spec.access.allowedNetworks[0]",
        "has host bits set",
        "write 10.0.0.0/24 to allow the whole network, or 10.0.0.5 to allow that one address",
        "spec.access.allowedNetworks[1]",
        "is neither an IP address nor a network",
        "spec.access.allowedNetworks[2]",
        "allows every IPv4 address",
        "hosts.yaml:13:9:",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }

    let empty = inventory(&sim, "  access:\n    allowedNetworks: []\n");
    let run = empty.ceso(&sim, &["validate", "DIR"]);
    run.expect(1);
    let text = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        text.contains("the list of allowed networks is empty"),
        "{text}"
    );
}
