//! The planner's IP address pass: what every host already holds, the allocation of the declared
//! adapters' addresses ([`crate::ipam`]), and the cloud-init configuration that results. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::diff::ObservedState;
use crate::cloudinit::{CloudInitConfig, InterfaceConfig, instance_id};
use crate::desired::{DesiredState, DesiredVm, VmSettings};
use crate::diagnostic::Diagnostic;
use crate::host::{APPLIED_KEY, ObservedVm};
use crate::ipam::{self, Allocation, Assignment, HolderKind, Holding, NicRequest};

/// The outcome of the address pass.
#[derive(Debug, Clone, Default)]
pub struct Addressing {
    pub allocation: Allocation,
    /// Every address already in use, as fed to the allocation.
    pub holdings: Vec<Holding>,
    /// Errors, with the resource and manifest field they are about.
    pub diagnostics: Vec<Diagnostic>,
    /// VMs the errors are about (the plan leaves them alone).
    pub failed_vms: BTreeSet<String>,
    /// What the adapters of suspended VMs that do not exist yet would get, by (VM name,
    /// adapter index): shown in the plan, but not allocated (not in `allocation`), so they
    /// take no address from any other VM.
    pub previewed: BTreeMap<(String, usize), Assignment>,
}

/// The settings ceso last recorded on a VM (`ceso.applied`), if readable.
pub fn applied_settings(vm: &ObservedVm) -> Option<VmSettings> {
    vm.extra_config
        .get(APPLIED_KEY)
        .and_then(|json| serde_json::from_str(json).ok())
}

/// The address of an adapter as recorded (`192.168.1.100/24`).
fn recorded_address(interface: &InterfaceConfig) -> Option<Ipv4Addr> {
    interface
        .address
        .as_deref()
        .and_then(|a| a.parse::<Ipv4Net>().ok())
        .map(|net| net.addr())
}

/// Every address in use on the observed hosts: those ceso recorded on its VMs, those the guests
/// of other VMs report, and (for VMs that still exist or are declared) those in the state file.
pub fn holdings(
    desired: &DesiredState,
    observed: &ObservedState,
    recorded: &[Holding],
) -> Vec<Holding> {
    let mut out = Vec::new();
    let mut existing: BTreeSet<&str> = BTreeSet::new();
    for (host, observed_host) in observed {
        for vm in &observed_host.vms {
            match vm.managed_name() {
                Some(name) => {
                    existing.insert(name);
                    let interfaces = applied_settings(vm)
                        .and_then(|s| s.cloud_init)
                        .map(|c| c.interfaces)
                        .unwrap_or_default();
                    let mut recorded = BTreeSet::new();
                    for (nic, interface) in interfaces.iter().enumerate() {
                        if let Some(address) = recorded_address(interface) {
                            recorded.insert(address);
                            out.push(Holding {
                                host: host.clone(),
                                vm: name.to_owned(),
                                nic: Some(nic),
                                address,
                                kind: HolderKind::Managed,
                            });
                        }
                    }
                    // What the guest still uses (an address it has not yet given up for a new
                    // one, a DHCP lease) stays taken too.
                    for ip in &vm.guest_ips {
                        if let Ok(address) = ip.parse::<Ipv4Addr>()
                            && recorded.insert(address)
                        {
                            out.push(Holding {
                                host: host.clone(),
                                vm: name.to_owned(),
                                nic: None,
                                address,
                                kind: HolderKind::Managed,
                            });
                        }
                    }
                }
                None => {
                    let mut seen = BTreeSet::new();
                    for ip in &vm.guest_ips {
                        if let Ok(address) = ip.parse::<Ipv4Addr>()
                            && seen.insert(address)
                        {
                            out.push(Holding {
                                host: host.clone(),
                                vm: vm.name.clone(),
                                nic: None,
                                address,
                                kind: HolderKind::Unmanaged,
                            });
                        }
                    }
                }
            }
        }
    }
    // A record of a VM that is neither declared nor on any host is released: the VM was deleted.
    out.extend(
        recorded
            .iter()
            .filter(|h| existing.contains(h.vm.as_str()) || desired.vms.contains_key(&h.vm))
            .cloned(),
    );
    out
}

/// Allocates the declared adapters' addresses and completes every VM's cloud-init configuration
/// (`config.cloud_init`) in `desired`.
pub fn assign_addresses(
    desired: &mut DesiredState,
    observed: &ObservedState,
    recorded: &[Holding],
) -> Addressing {
    let holdings = holdings(desired, observed, recorded);
    let pools: Vec<ipam::Pool> = desired.pools.values().cloned().collect();
    let existing: BTreeSet<&str> = observed
        .values()
        .flat_map(|host| &host.vms)
        .filter_map(ObservedVm::managed_name)
        .collect();
    // A suspended VM that does not exist yet is not created, so it takes no address.
    let waiting: BTreeSet<String> = desired
        .vms
        .values()
        .filter(|vm| desired.suspended.contains(vm) && !existing.contains(vm.name.as_str()))
        .map(|vm| vm.name.clone())
        .collect();
    let (waiting_requests, requests): (Vec<NicRequest>, Vec<NicRequest>) = desired
        .vms
        .values()
        .flat_map(|vm| {
            vm.addressing
                .iter()
                .enumerate()
                .filter_map(move |(nic, request)| {
                    request.clone().map(|request| NicRequest {
                        host: vm.host.clone(),
                        vm: vm.name.clone(),
                        nic,
                        request,
                    })
                })
        })
        .partition(|request| waiting.contains(&request.vm));
    let allocation = ipam::allocate(&pools, &requests, &holdings);
    // What they would get were they resumed now, around everything allocated above.
    let preview = if waiting_requests.is_empty() {
        Allocation::default()
    } else {
        let mut taken = holdings.clone();
        taken.extend(
            allocation
                .assigned
                .iter()
                .map(|((vm, nic), assignment)| Holding {
                    host: assignment.host.clone(),
                    vm: vm.clone(),
                    nic: Some(*nic),
                    address: assignment.address.addr(),
                    kind: HolderKind::Managed,
                }),
        );
        let mut preview = ipam::allocate(&pools, &waiting_requests, &taken);
        // Problems of the pools and the holdings themselves were reported above already.
        preview.errors.retain(|e| {
            e.vm.as_ref().is_some_and(|vm| waiting.contains(vm)) && !allocation.errors.contains(e)
        });
        preview
    };
    let mut diagnostics = Vec::new();
    let mut failed_vms = BTreeSet::new();
    for error in allocation.errors.iter().chain(&preview.errors) {
        let mut diagnostic = Diagnostic::error(error.message.clone()).hint(error.hint.clone());
        match (&error.vm, error.nic) {
            (Some(vm), nic) if desired.vms.contains_key(vm) => {
                failed_vms.insert(vm.clone());
                diagnostic = diagnostic.resource(format!("VirtualMachine/{vm}"));
                diagnostic = match nic {
                    Some(nic) => diagnostic.field(format!("spec.networks[{nic}].{}", error.field)),
                    None => diagnostic.field("spec.networks"),
                };
            }
            _ => {
                if let Some(pool) = &error.pool {
                    diagnostic = diagnostic
                        .resource(format!("IpPool/{pool}"))
                        .field(format!("spec.{}", error.field));
                }
            }
        }
        diagnostics.push(diagnostic);
    }
    for vm in desired.vms.values_mut() {
        let assigned = if waiting.contains(&vm.name) {
            &preview.assigned
        } else {
            &allocation.assigned
        };
        vm.config.cloud_init = cloud_init_config(vm, assigned);
    }
    Addressing {
        allocation,
        holdings,
        diagnostics,
        failed_vms,
        previewed: preview.assigned,
    }
}

/// The full cloud-init configuration of a VM that wants one.
fn cloud_init_config(
    vm: &DesiredVm,
    assigned: &BTreeMap<(String, usize), Assignment>,
) -> Option<CloudInitConfig> {
    let request = vm.cloud_init.as_ref()?;
    let interfaces: Vec<InterfaceConfig> = (0..vm.config.networks.len())
        .map(|nic| match assigned.get(&(vm.name.clone(), nic)) {
            Some(assigned) => InterfaceConfig {
                address: Some(assigned.address.to_string()),
                pool: assigned.pool.clone(),
                gateway: assigned.gateway.map(|g| g.to_string()),
                nameservers: assigned.nameservers.iter().map(|n| n.to_string()).collect(),
                search: assigned.search.clone(),
            },
            None => InterfaceConfig::default(),
        })
        .collect();
    Some(CloudInitConfig {
        instance_id: instance_id(&vm.name, &request.hostname, &interfaces),
        hostname: request.hostname.clone(),
        ssh_authorized_keys: request.ssh_authorized_keys.clone(),
        interfaces,
        user_data: request.user_data.clone(),
    })
}
