//! Is a saved plan still valid? It is when every VM it depends on looks exactly as it did when
//! the plan was made, and so do the firewall rulesets it changes (whose new lists must still let
//! this machine in).

use std::collections::BTreeSet;

use super::access::stale_access;
use super::diff::ObservedState;
use super::fingerprint::{differences, host_fingerprints};
use super::model::Plan;
use crate::host::{CLONE_SNAPSHOT_PREFIX, HostOp};

/// Why a saved plan no longer fits the hosts; empty when it still does.
pub fn stale_reasons(plan: &Plan, observed: &ObservedState) -> Vec<String> {
    let mut reasons = Vec::new();
    for (host, then) in &plan.observed {
        let Some(now_host) = observed.get(host) else {
            reasons.push(format!("host {host} was not observed"));
            continue;
        };
        let names: BTreeSet<&str> = plan
            .changes
            .iter()
            .filter(|c| &c.host == host && !c.undeclared)
            .map(|c| c.name.as_str())
            .collect();
        let now = host_fingerprints(now_host, &names);
        for (vm, fingerprint) in then {
            match now.get(vm) {
                None => reasons.push(format!("VM {vm} on host {host} no longer exists")),
                Some(current) if current != fingerprint => reasons.push(format!(
                    "VM {vm} on host {host} changed since the plan was made: {}",
                    differences(fingerprint, current).join(", ")
                )),
                Some(_) => {}
            }
        }
        for vm in now.keys().filter(|vm| !then.contains_key(*vm)) {
            reasons.push(format!(
                "VM {vm} appeared on host {host} since the plan was made"
            ));
        }
    }
    for (host, planned) in &plan.firewall {
        let Some(now_host) = observed.get(host) else {
            if !plan.observed.contains_key(host) {
                reasons.push(format!("host {host} was not observed"));
            }
            continue;
        };
        let steps: Vec<&HostOp> = plan
            .steps
            .iter()
            .filter(|step| &step.host == host)
            .map(|step| &step.op)
            .collect();
        reasons.extend(stale_access(
            host,
            planned,
            &steps,
            now_host.access.as_ref(),
        ));
    }
    reasons
}

/// What is wrong with the shape of a plan read from a file (edited by hand or damaged): steps
/// out of order, dependencies that point nowhere or forward, or operations on VMs the plan never
/// observed. A plan made by `ceso plan` has none of these.
pub fn structure_problems(plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    let observed_morefs: BTreeSet<&str> = plan
        .observed
        .values()
        .flat_map(|vms| vms.values())
        .map(|fingerprint| fingerprint.moref.as_str())
        .collect();
    for (index, step) in plan.steps.iter().enumerate() {
        if step.id != index {
            problems.push(format!("step {index} has id {}", step.id));
        }
        if !plan.hosts.contains_key(&step.host) {
            problems.push(format!(
                "step {index} is for host {}, which the plan does not list",
                step.host
            ));
        }
        for dep in step.depends_on.iter().chain(&step.after) {
            if *dep >= index {
                problems.push(format!(
                    "step {index} waits for step {dep}, which does not come before it"
                ));
            }
        }
        let moref = match &step.op {
            HostOp::CreateVm { .. } => None,
            HostOp::UpdateFirewallRuleset {
                firewall_system,
                ruleset,
                ..
            } => {
                let governed = plan
                    .firewall
                    .get(&step.host)
                    .is_some_and(|planned| planned.rulesets.contains_key(ruleset));
                if !governed {
                    problems.push(format!(
                        "step {index} ({}) changes firewall ruleset {ruleset} ({firewall_system}) of host {}, which the plan did not observe as one it may change",
                        step.description, step.host
                    ));
                }
                None
            }
            // ceso's own clone snapshot, left by an interrupted run, may be on any VM.
            HostOp::RemoveSnapshot { name, .. } if name.starts_with(CLONE_SNAPSHOT_PREFIX) => None,
            HostOp::ReconfigureVm { moref, .. }
            | HostOp::PowerOn { moref, .. }
            | HostOp::PowerOff { moref, .. }
            | HostOp::DestroyVm { moref, .. }
            | HostOp::ShutdownVm { moref, .. }
            | HostOp::RemoveSnapshot { moref, .. }
            | HostOp::WaitForGuestIp { moref, .. } => moref.as_deref(),
        };
        if let Some(moref) = moref
            && !observed_morefs.contains(moref)
        {
            problems.push(format!(
                "step {index} ({}) acts on VM {moref}, which the plan did not observe as one it may change",
                step.description
            ));
        }
    }
    problems
}
