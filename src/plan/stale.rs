//! Is a saved plan still valid? It is when every VM it depends on looks exactly as it did when
//! the plan was made.

use std::collections::BTreeSet;

use super::diff::{ObservedState, host_fingerprints};
use super::model::Plan;

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
            .filter(|c| &c.host == host)
            .map(|c| c.name.as_str())
            .collect();
        let now = host_fingerprints(now_host, &names);
        for (vm, fingerprint) in then {
            match now.get(vm) {
                None => reasons.push(format!("VM {vm} on host {host} no longer exists")),
                Some(current) if current != fingerprint => reasons.push(format!(
                    "VM {vm} on host {host} changed since the plan was made"
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
    reasons
}
