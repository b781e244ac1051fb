//! The firewall part of the planner, specified without any host: `spec.access.allowedNetworks`
//! against the allowed hosts of the rulesets `webAccess`, `sshServer` and `vSphereClient`, the
//! refusal of a list that would lock out the machine ceso runs on, and saved plans re-checked
//! against the firewall.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ceso::desired::DesiredState;
use ceso::diagnostic::Diagnostic;
use ceso::host::{AllowedHosts, HostOp, ObservedAccess, ObservedHost, ObservedRuleset};
use ceso::manifest::Power;
use ceso::plan::{Action, Plan, markdown::markdown, render, stale_reasons};
use common::*;
use ipnet::IpNet;
use proptest::prelude::*;

const THIS_MACHINE: &str = "192.168.1.50";

fn net(text: &str) -> IpNet {
    text.parse().expect("network")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

/// A ruleset whose allowed hosts are `allowed`.
fn ruleset(label: &str, allowed: AllowedHosts) -> ObservedRuleset {
    ObservedRuleset {
        label: label.into(),
        enabled: true,
        allowed,
    }
}

/// An empty host whose firewall lets every address in on SSH, the API and port 80 (as ESXi ships),
/// reached by ceso from `client`.
fn open_host(client: Option<&str>) -> ObservedHost {
    let mut host = empty_host();
    host.access = Some(ObservedAccess {
        firewall_system: "ha-firewallSystem".into(),
        rulesets: BTreeMap::from([
            ("NFC".to_owned(), ruleset("NFC", AllowedHosts::any())),
            (
                "sshServer".to_owned(),
                ruleset("SSH Server", AllowedHosts::any()),
            ),
            (
                "vSphereClient".to_owned(),
                ruleset("vSphere Web Client", AllowedHosts::any()),
            ),
            (
                "webAccess".to_owned(),
                ruleset("vSphere Web Access", AllowedHosts::any()),
            ),
        ]),
        client_address: client.map(ip),
    });
    host
}

/// One host declaring `allowed` (`None`: no `spec.access`), plus `vms`.
fn declaring(allowed: Option<&[&str]>, vms: Vec<ceso::desired::DesiredVm>) -> DesiredState {
    let mut state = desired(vms, false);
    let host = state.hosts.get_mut("esxi-01").expect("host");
    host.allowed_networks = allowed.map(|list| {
        list.iter()
            .map(|entry| ceso::host::parse_allowed_network(entry).expect("valid entry"))
            .collect()
    });
    state
}

fn errors(plan: &Plan) -> Vec<&Diagnostic> {
    plan.diagnostics.iter().filter(|d| d.is_error()).collect()
}

fn descriptions(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.description.as_str()).collect()
}

#[test]
fn an_open_firewall_gets_ssh_the_api_and_port_80_restricted_to_the_declared_networks() {
    let desired = declaring(Some(&["192.168.1.0/24", "10.0.0.5", "fd00::/64"]), vec![]);
    let plan = plan(&desired, &open_host(Some(THIS_MACHINE)), false);
    assert!(errors(&plan).is_empty(), "{:?}", plan.diagnostics);
    assert_eq!(plan.summary.update, 1);
    assert!(plan.has_changes());
    insta::assert_snapshot!(
        "open_firewall_human",
        render::human(&plan, render::Colour::Never)
    );
    insta::assert_snapshot!("open_firewall_markdown", markdown(&plan));
    // The JSON plan: the Host change, the three steps (the API's last), what it depends on.
    insta::assert_json_snapshot!(
        "open_firewall_json",
        serde_json::json!({
            "summary": plan.summary,
            "changes": plan.changes,
            "steps": plan.steps,
            "firewall": plan.firewall,
        })
    );
}

#[test]
fn applied_the_plan_is_empty_and_only_the_governed_rulesets_changed() {
    let desired = declaring(Some(&["192.168.1.0/24", "10.0.0.5"]), vec![]);
    let fake = FakeHost::new(open_host(Some(THIS_MACHINE)));
    apply_all(&fake, &plan(&desired, &fake.observe_now(), false));
    let after = fake.observe_now();
    let rulesets = &after.access.as_ref().expect("access").rulesets;
    let wanted = AllowedHosts::only([net("10.0.0.5/32"), net("192.168.1.0/24")]);
    for key in ["sshServer", "vSphereClient", "webAccess"] {
        assert_eq!(rulesets[key].allowed, wanted, "{key}");
    }
    assert_eq!(rulesets["NFC"].allowed, AllowedHosts::any(), "not governed");
    let again = plan(&desired, &after, false);
    assert!(
        !again.has_changes(),
        "{}",
        render::human(&again, render::Colour::Never)
    );
    assert!(again.steps.is_empty());
    assert!(again.changes.iter().all(|c| c.address != "Host/esxi-01"));
}

#[test]
fn without_spec_access_the_firewall_is_left_as_it_is() {
    let desired = declaring(None, vec![]);
    let plan = plan(&desired, &open_host(Some(THIS_MACHINE)), false);
    assert!(!plan.has_changes());
    assert!(plan.steps.is_empty() && plan.firewall.is_empty());
    // Nor does a host without a firewall matter then.
    let plan = common::plan(&desired, &empty_host(), false);
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
}

#[test]
fn only_the_rulesets_that_differ_are_updated() {
    let mut host = open_host(Some(THIS_MACHINE));
    let wanted = AllowedHosts::only([net("192.168.1.0/24")]);
    for key in ["vSphereClient", "webAccess"] {
        host.access
            .as_mut()
            .expect("access")
            .rulesets
            .get_mut(key)
            .expect("ruleset")
            .allowed = wanted.clone();
    }
    let plan = plan(&declaring(Some(&["192.168.1.0/24"]), vec![]), &host, false);
    assert_eq!(
        descriptions(&plan),
        ["firewall ruleset sshServer (SSH, port 22): allow 192.168.1.0/24"]
    );
    let fields: Vec<(&str, Option<&str>, Option<&str>)> = plan.changes[0]
        .fields
        .iter()
        .map(|f| (f.field.as_str(), f.before.as_deref(), f.after.as_deref()))
        .collect();
    assert_eq!(
        fields,
        [(
            "firewall.sshServer",
            Some("any address"),
            Some("192.168.1.0/24")
        )]
    );
}

#[test]
fn a_list_that_would_lock_out_this_machine_is_refused_naming_the_host_the_address_and_the_fix() {
    let desired = declaring(Some(&["10.0.0.0/24"]), vec![]);
    let plan = plan(&desired, &open_host(Some(THIS_MACHINE)), false);
    let errors = errors(&plan);
    assert_eq!(errors.len(), 1, "{:?}", plan.diagnostics);
    let error = errors[0];
    assert_eq!(error.resource.as_deref(), Some("Host/esxi-01"));
    assert_eq!(error.field.as_deref(), Some("spec.access.allowedNetworks"));
    insta::assert_snapshot!("lockout_refused", error.to_string());
    assert!(error.to_string().contains("192.168.1.50"));
    assert!(
        error.hint.as_deref().is_some_and(
            |h| h.contains("add 192.168.1.50 (or a network holding it, e.g. 192.168.1.0/24)")
        ),
        "{error:?}"
    );
    // Nothing is done: no step, the host's change is left alone.
    assert!(plan.steps.is_empty());
    let change = plan
        .changes
        .iter()
        .find(|c| c.address == "Host/esxi-01")
        .expect("host change");
    assert_eq!(change.action, Action::NoOp);
    assert!(change.fields.is_empty() && !change.notes.is_empty());
}

#[test]
fn ssh_counts_for_the_lockout_only_when_ceso_uses_ssh_to_the_host() {
    // The API already allows this machine; only SSH would exclude it.
    let mut host = open_host(Some(THIS_MACHINE));
    host.access
        .as_mut()
        .expect("access")
        .rulesets
        .get_mut("vSphereClient")
        .expect("api")
        .allowed = AllowedHosts::only([net("10.0.0.0/24"), net("192.168.1.50/32")]);
    let mut desired = declaring(Some(&["10.0.0.0/24", "192.168.1.50"]), vec![]);
    let plan_without_ssh = plan(&desired, &host, false);
    assert!(errors(&plan_without_ssh).is_empty());
    // With `spec.ssh`, the list still lets this machine in on SSH: fine too.
    desired.hosts.get_mut("esxi-01").expect("host").ssh = Some(ceso::manifest::HostSshSpec {
        host_key: "SHA256:x".into(),
        port: None,
    });
    assert!(errors(&plan(&desired, &host, false)).is_empty());
    // A list that leaves this machine out of SSH is refused once ceso uses SSH.
    let mut narrow = declaring(Some(&["10.0.0.0/24"]), vec![]);
    host.access
        .as_mut()
        .expect("access")
        .rulesets
        .get_mut("vSphereClient")
        .expect("api")
        .allowed = AllowedHosts::only([net("10.0.0.0/24")]);
    // (the API already excludes it: ceso would have come in through NAT; only SSH changes now)
    assert!(errors(&plan(&narrow, &host, false)).is_empty());
    narrow.hosts.get_mut("esxi-01").expect("host").ssh = desired.hosts["esxi-01"].ssh.clone();
    let refused = plan(&narrow, &host, false);
    assert_eq!(errors(&refused).len(), 1);
    assert!(
        errors(&refused)[0]
            .message
            .contains("firewall ruleset sshServer of host esxi-01"),
        "{:?}",
        refused.diagnostics
    );
}

#[test]
fn an_unknown_address_of_this_machine_refuses_the_api_change() {
    let plan = plan(
        &declaring(Some(&["192.168.1.0/24"]), vec![]),
        &open_host(None),
        false,
    );
    assert_eq!(errors(&plan).len(), 1);
    assert!(
        errors(&plan)[0]
            .message
            .contains("could not tell which address this machine reaches the host from")
    );
    assert!(plan.steps.is_empty());
}

#[test]
fn a_list_that_allows_nothing_is_refused() {
    let plan = plan(
        &declaring(Some(&[]), vec![]),
        &open_host(Some(THIS_MACHINE)),
        false,
    );
    assert_eq!(errors(&plan).len(), 1, "{:?}", plan.diagnostics);
    assert!(errors(&plan)[0].message.contains("are empty"));
    assert!(plan.steps.is_empty() && !plan.has_changes());
}

#[test]
fn a_host_without_a_firewall_or_without_a_required_ruleset_is_an_error_port_80_is_optional() {
    let desired = declaring(Some(&["192.168.1.0/24"]), vec![]);
    let plan_without = plan(&desired, &empty_host(), false);
    assert_eq!(errors(&plan_without).len(), 1);
    assert!(
        errors(&plan_without)[0]
            .message
            .contains("could not be read")
    );

    let mut host = open_host(Some(THIS_MACHINE));
    host.access
        .as_mut()
        .expect("access")
        .rulesets
        .remove("webAccess");
    let plan_no_web = plan(&desired, &host, false);
    assert!(errors(&plan_no_web).is_empty());
    assert_eq!(
        plan_no_web.steps.len(),
        2,
        "{:?}",
        descriptions(&plan_no_web)
    );

    host.access
        .as_mut()
        .expect("access")
        .rulesets
        .remove("sshServer");
    let plan_no_ssh = plan(&desired, &host, false);
    assert_eq!(errors(&plan_no_ssh).len(), 1);
    assert!(
        errors(&plan_no_ssh)[0]
            .message
            .contains("has no firewall ruleset sshServer")
    );
    assert!(plan_no_ssh.steps.is_empty());
}

#[test]
fn the_firewall_is_changed_after_every_other_step_of_its_host() {
    let desired = declaring(
        Some(&["192.168.1.0/24"]),
        vec![desired_vm("web-01", 2, 4, Power::On)],
    );
    let plan = plan(&desired, &open_host(Some(THIS_MACHINE)), false);
    let vm_steps: Vec<usize> = plan
        .steps
        .iter()
        .filter(|s| s.resource == "VirtualMachine/web-01")
        .map(|s| s.id)
        .collect();
    assert_eq!(vm_steps.len(), 2, "{:?}", descriptions(&plan));
    let firewall: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.op, HostOp::UpdateFirewallRuleset { .. }))
        .collect();
    assert_eq!(firewall.len(), 3);
    for step in &firewall {
        assert_eq!(step.resource, "Host/esxi-01");
        for id in &vm_steps {
            assert!(step.after.contains(id), "{step:?}");
        }
    }
    let last = firewall.last().expect("a step");
    assert!(
        matches!(&last.op, HostOp::UpdateFirewallRuleset { ruleset, .. } if ruleset == "vSphereClient")
    );
    // `ceso vm create web-01` applies only the VM: no firewall step, and no firewall error
    // (there is none here) would hold it up either.
    let mut only_vm = plan.clone();
    only_vm.restrict_to("VirtualMachine/web-01");
    assert!(
        only_vm
            .steps
            .iter()
            .all(|s| s.resource == "VirtualMachine/web-01")
    );
    assert!(only_vm.firewall.is_empty());
}

#[test]
fn a_lockout_does_not_hold_up_creating_one_vm() {
    let desired = declaring(
        Some(&["10.0.0.0/24"]),
        vec![desired_vm("web-01", 2, 4, Power::Off)],
    );
    let mut plan = plan(&desired, &open_host(Some(THIS_MACHINE)), false);
    assert_eq!(errors(&plan).len(), 1);
    plan.restrict_to("VirtualMachine/web-01");
    assert!(errors(&plan).is_empty(), "{:?}", plan.diagnostics);
    assert_eq!(plan.steps.len(), 1);
}

#[test]
fn on_a_suspended_host_the_firewall_change_is_only_shown() {
    let mut desired = declaring(Some(&["192.168.1.0/24"]), vec![]);
    desired.suspended.hosts.insert("esxi-01".into());
    let plan = plan(&desired, &open_host(Some(THIS_MACHINE)), false);
    assert!(!plan.has_changes());
    assert!(plan.steps.is_empty());
    let suspended = plan
        .suspended
        .iter()
        .find(|s| s.change.address == "Host/esxi-01")
        .expect("suspended firewall change");
    assert_eq!(suspended.suspended_by, "Host/esxi-01");
    assert_eq!(suspended.change.fields.len(), 3);
    // A lockout there is only a warning.
    let locked = declaring(Some(&["10.0.0.0/24"]), vec![]);
    let mut locked = locked;
    locked.suspended.hosts.insert("esxi-01".into());
    let plan = common::plan(&locked, &open_host(Some(THIS_MACHINE)), false);
    assert!(errors(&plan).is_empty());
    assert_eq!(plan.diagnostics.len(), 1);
}

#[test]
fn a_saved_plan_is_stale_when_a_ruleset_changed_or_the_applying_machine_would_be_locked_out() {
    let desired = declaring(Some(&["192.168.1.0/24"]), vec![]);
    let host = open_host(Some(THIS_MACHINE));
    let saved = plan(&desired, &host, false);
    let now = |host: ObservedHost| observed(host);
    assert!(stale_reasons(&saved, &now(host.clone())).is_empty());

    // Someone narrowed SSH by hand since.
    let mut changed = host.clone();
    changed
        .access
        .as_mut()
        .expect("access")
        .rulesets
        .get_mut("sshServer")
        .expect("ssh")
        .allowed = AllowedHosts::only([net("10.9.9.9/32")]);
    assert_eq!(
        stale_reasons(&saved, &now(changed)),
        [
            "firewall ruleset sshServer of host esxi-01 changed since the plan was made: any address → 10.9.9.9"
        ]
    );

    // Applied from another machine, outside the new list of the API ruleset.
    let mut elsewhere = host.clone();
    elsewhere.access.as_mut().expect("access").client_address = Some(ip("172.16.0.9"));
    let reasons = stale_reasons(&saved, &now(elsewhere));
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("would lock out this machine, which reaches the host from 172.16.0.9"),
        "{reasons:?}"
    );

    // The saved JSON reads back with what it depends on.
    let json = render::json(&saved);
    let read: Plan = serde_json::from_str(&json).expect("plan JSON");
    assert_eq!(read.firewall, saved.firewall);
    assert!(ceso::plan::structure_problems(&read).is_empty());
}

#[test]
fn a_plan_file_changing_a_ruleset_it_did_not_observe_is_malformed() {
    let desired = declaring(Some(&["192.168.1.0/24"]), vec![]);
    let mut saved = plan(&desired, &open_host(Some(THIS_MACHINE)), false);
    if let HostOp::UpdateFirewallRuleset { ruleset, .. } = &mut saved.steps[0].op {
        *ruleset = "NFC".into();
    }
    let problems = ceso::plan::structure_problems(&saved);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("changes firewall ruleset NFC"));
}

fn any_network() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 8u8..=32).prop_map(|(bits, len)| IpNet::new(
            IpAddr::V4(std::net::Ipv4Addr::from(bits)),
            len
        )
        .expect("prefix")
        .trunc()),
        (any::<u128>(), 16u8..=128).prop_map(|(bits, len)| IpNet::new(
            IpAddr::V6(std::net::Ipv6Addr::from(bits)),
            len
        )
        .expect("prefix")
        .trunc()),
    ]
}

proptest! {
    /// The same networks, in any order and with repeats, on the host and in the manifest: no
    /// change. And whatever the list, applying its plan converges (the next plan is empty), and
    /// this machine is either allowed by the new list or the plan refuses it.
    #[test]
    fn equal_sets_in_any_order_plan_nothing_and_any_list_converges(
        networks in proptest::collection::vec(any_network(), 1..6),
        shuffle in any::<u64>(),
        include_this_machine in any::<bool>(),
    ) {
        let mut declared = networks.clone();
        if include_this_machine {
            declared.push(net("192.168.1.50/32"));
        }
        let mut reordered = declared.clone();
        reordered.extend(declared.iter().step_by(2).copied());
        let rotate = (shuffle as usize) % reordered.len();
        reordered.rotate_left(rotate);
        reordered.reverse();

        let fake = FakeHost::new(open_host(Some(THIS_MACHINE)));
        let mut desired = declaring(None, vec![]);
        desired.hosts.get_mut("esxi-01").expect("host").allowed_networks = Some(declared.clone());
        let first = plan(&desired, &fake.observe_now(), false);
        let allowed = AllowedHosts::only(declared.iter().copied());
        if !allowed.allows(ip(THIS_MACHINE)) {
            prop_assert_eq!(errors(&first).len(), 1);
            prop_assert!(first.steps.is_empty());
            return Ok(());
        }
        prop_assert!(errors(&first).is_empty());
        apply_all(&fake, &first);
        let again = plan(&desired, &fake.observe_now(), false);
        prop_assert!(!again.has_changes());

        desired.hosts.get_mut("esxi-01").expect("host").allowed_networks = Some(reordered);
        let reordered_plan = plan(&desired, &fake.observe_now(), false);
        prop_assert!(!reordered_plan.has_changes());
        prop_assert!(reordered_plan.steps.is_empty());
    }
}
