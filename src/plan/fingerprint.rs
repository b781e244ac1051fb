//! What a plan depends on: for each VM it may act on, a hash of everything ceso reads about it
//! plus the facts a person recognises, so a stale saved plan can say what changed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::host::{ObservedHost, ObservedVm, PowerState};
use crate::manifest::Size;

/// One VM as the plan saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmFingerprint {
    pub moref: String,
    /// SHA-256 (first 8 bytes, hex) of the observed VM, counting only ceso's own extraConfig keys
    /// and leaving out what VMware Tools reports (the guest's addresses, whether Tools run): those
    /// change on their own.
    pub hash: String,
    /// Facts for people: cpu, memory, guestId, power, disks, networks, protect.
    pub facts: BTreeMap<String, String>,
}

/// The fingerprint of one observed VM.
pub fn fingerprint(vm: &ObservedVm) -> VmFingerprint {
    let mut relevant = vm.clone();
    relevant
        .extra_config
        .retain(|key, _| key.starts_with("ceso."));
    // What VMware Tools reports changes on its own, as the guest boots and runs.
    relevant.guest_ips.clear();
    relevant.tools_running = false;
    let json = serde_json::to_vec(&relevant).expect("observed VMs serialize");
    let digest = ring::digest::digest(&ring::digest::SHA256, &json);
    let hash = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let power = match vm.power {
        Some(PowerState::PoweredOn) => "on",
        Some(PowerState::Suspended) => "suspended",
        Some(PowerState::PoweredOff) | None => "off",
    };
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    let facts = BTreeMap::from([
        ("cpu".to_owned(), vm.cpu.to_string()),
        ("memory".to_owned(), Size::format_bytes(vm.memory_mib << 20)),
        ("guestId".to_owned(), vm.guest_id.clone()),
        ("power".to_owned(), power.to_owned()),
        (
            "disks".to_owned(),
            list(
                vm.disks
                    .iter()
                    .map(|d| Size::format_bytes(d.capacity_bytes))
                    .collect(),
            ),
        ),
        (
            "networks".to_owned(),
            list(vm.nics.iter().map(|n| n.port_group.clone()).collect()),
        ),
        ("protect".to_owned(), vm.is_protected().to_string()),
    ]);
    VmFingerprint {
        moref: vm.moref.clone(),
        hash,
        facts,
    }
}

/// Fingerprints of the VMs a plan of this host depends on: every VM ceso manages, and every VM
/// whose name is one of `names` (the VMs the plan declares). Keyed by VM name.
pub fn host_fingerprints(
    host: &ObservedHost,
    names: &BTreeSet<&str>,
) -> BTreeMap<String, VmFingerprint> {
    let mut fingerprints = BTreeMap::new();
    for vm in &host.vms {
        if vm.managed_name().is_some() || names.contains(vm.name.as_str()) {
            let key = if fingerprints.contains_key(&vm.name) {
                format!("{} ({})", vm.name, vm.moref)
            } else {
                vm.name.clone()
            };
            fingerprints.insert(key, fingerprint(vm));
        }
    }
    fingerprints
}

/// What differs between two fingerprints of a VM, e.g. `cpu 2 → 3`.
pub fn differences(then: &VmFingerprint, now: &VmFingerprint) -> Vec<String> {
    let mut out = Vec::new();
    if then.moref != now.moref {
        out.push(format!(
            "it is another VM now ({} → {})",
            then.moref, now.moref
        ));
    }
    for (fact, before) in &then.facts {
        match now.facts.get(fact) {
            Some(after) if after != before => out.push(format!("{fact} {before} → {after}")),
            _ => {}
        }
    }
    if out.is_empty() && then.hash != now.hash {
        out.push("its configuration changed (devices or ceso's extraConfig keys)".to_owned());
    }
    out
}
