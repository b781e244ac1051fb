//! IP address management, specified: what a pool may look like, which addresses a VM adapter
//! may have, how automatic addresses are chosen and kept, and — by property tests — that no
//! two VMs ever share an address whatever the sequence of creates and deletes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ceso::ipam::{
    AddressRange, Allocation, HolderKind, Holding, IpamError, NicRequest, Pool, Request,
    UsageEntry, UsageState, allocate, check_pools, usage,
};
use ipnet::Ipv4Net;
use proptest::prelude::*;

const HOST: &str = "esxi-01";

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

fn net(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn range(start: &str, end: &str) -> AddressRange {
    AddressRange {
        start: ip(start),
        end: ip(end),
    }
}

/// `lan`: 192.168.1.0/24, gateway .1, addresses .100-.199 for `ip: auto`, .150 reserved.
fn lan() -> Pool {
    Pool {
        name: "lan".into(),
        network: net("192.168.1.0/24"),
        gateway: Some(ip("192.168.1.1")),
        nameservers: vec![IpAddr::V4(ip("192.168.1.53"))],
        search: vec!["example.test".into()],
        ranges: vec![range("192.168.1.100", "192.168.1.199")],
        reservations: vec![ip("192.168.1.150")],
    }
}

/// `dmz`: 10.0.0.0/29 with a single range of three addresses, .1-.3, no gateway.
fn dmz() -> Pool {
    Pool {
        name: "dmz".into(),
        network: net("10.0.0.0/29"),
        gateway: None,
        nameservers: vec![],
        search: vec![],
        ranges: vec![range("10.0.0.1", "10.0.0.3")],
        reservations: vec![],
    }
}

fn auto(vm: &str, nic: usize, pool: &str) -> NicRequest {
    NicRequest {
        host: HOST.into(),
        vm: vm.into(),
        nic,
        request: Request::Auto { pool: pool.into() },
    }
}

fn fixed(vm: &str, nic: usize, address: &str) -> NicRequest {
    NicRequest {
        host: HOST.into(),
        vm: vm.into(),
        nic,
        request: Request::Static {
            address: net(address),
            pool: None,
        },
    }
}

fn fixed_in(vm: &str, nic: usize, address: &str, pool: &str) -> NicRequest {
    NicRequest {
        request: Request::Static {
            address: net(address),
            pool: Some(pool.into()),
        },
        ..fixed(vm, nic, address)
    }
}

fn holding(kind: HolderKind, vm: &str, nic: Option<usize>, address: &str) -> Holding {
    Holding {
        host: HOST.into(),
        vm: vm.into(),
        nic,
        address: ip(address),
        kind,
    }
}

fn managed(vm: &str, nic: usize, address: &str) -> Holding {
    holding(HolderKind::Managed, vm, Some(nic), address)
}

fn recorded(vm: &str, nic: usize, address: &str) -> Holding {
    holding(HolderKind::Recorded, vm, Some(nic), address)
}

fn unmanaged(vm: &str, address: &str) -> Holding {
    holding(HolderKind::Unmanaged, vm, None, address)
}

/// The address given to `nic` of `vm`, as written in manifests.
fn address_of(allocation: &Allocation, vm: &str, nic: usize) -> Option<String> {
    allocation
        .assigned
        .get(&(vm.to_owned(), nic))
        .map(|assignment| assignment.address.to_string())
}

fn is_new(allocation: &Allocation, vm: &str, nic: usize) -> bool {
    allocation.assigned[&(vm.to_owned(), nic)].new
}

/// The only error of an allocation (fails listing them all otherwise).
fn only_error(allocation: &Allocation) -> &IpamError {
    assert_eq!(
        allocation.errors.len(),
        1,
        "expected exactly one error, got {:#?}",
        allocation.errors
    );
    &allocation.errors[0]
}

fn only_pool_error(pools: &[Pool]) -> IpamError {
    let errors = check_pools(pools);
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got {errors:#?}"
    );
    errors.into_iter().next().unwrap()
}

fn assert_mentions(error: &IpamError, words: &[&str]) {
    for word in words {
        assert!(
            error.message.contains(word),
            "message {:?} should mention {word:?}",
            error.message
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Pools on their own
// ---------------------------------------------------------------------------------------------

#[test]
fn well_formed_pools_pass() {
    assert_eq!(check_pools(&[lan(), dmz()]), vec![]);
}

#[test]
fn pool_without_ranges_is_valid() {
    let pool = Pool {
        ranges: vec![],
        ..lan()
    };
    assert_eq!(check_pools(&[pool]), vec![]);
}

#[test]
fn pool_cidr_with_host_bits_is_refused_suggesting_the_network_address() {
    let error = only_pool_error(&[Pool {
        network: net("192.168.1.5/24"),
        ..lan()
    }]);
    assert_eq!(
        (error.pool.as_deref(), error.field.as_str()),
        (Some("lan"), "cidr")
    );
    assert_mentions(&error, &["192.168.1.5/24", "host bits"]);
    assert!(error.hint.contains("192.168.1.0/24"), "{}", error.hint);
}

#[test]
fn pool_gateway_outside_the_subnet_is_refused() {
    let error = only_pool_error(&[Pool {
        gateway: Some(ip("192.168.2.1")),
        ..lan()
    }]);
    assert_eq!(error.field, "gateway");
    assert_mentions(&error, &["192.168.2.1", "outside", "192.168.1.0/24"]);
}

#[test]
fn pool_gateway_equal_to_the_network_address_is_refused() {
    let error = only_pool_error(&[Pool {
        gateway: Some(ip("192.168.1.0")),
        ..lan()
    }]);
    assert_eq!(error.field, "gateway");
    assert_mentions(&error, &["192.168.1.0", "network address"]);
}

#[test]
fn pool_gateway_equal_to_the_broadcast_address_is_refused() {
    let error = only_pool_error(&[Pool {
        gateway: Some(ip("192.168.1.255")),
        ..lan()
    }]);
    assert_eq!(error.field, "gateway");
    assert_mentions(&error, &["192.168.1.255", "broadcast address"]);
}

#[test]
fn pool_range_starting_after_its_end_is_refused() {
    let error = only_pool_error(&[Pool {
        ranges: vec![
            range("192.168.1.10", "192.168.1.20"),
            range("192.168.1.90", "192.168.1.80"),
        ],
        ..lan()
    }]);
    assert_eq!(error.field, "ranges[1]");
    assert_mentions(
        &error,
        &["192.168.1.90-192.168.1.80", "starts after it ends"],
    );
    assert!(
        error.hint.contains("192.168.1.80-192.168.1.90"),
        "{}",
        error.hint
    );
}

#[test]
fn pool_range_reaching_outside_the_subnet_is_refused() {
    let error = only_pool_error(&[Pool {
        ranges: vec![
            range("192.168.1.10", "192.168.1.20"),
            range("192.168.1.200", "192.168.2.10"),
        ],
        ..lan()
    }]);
    assert_eq!(error.field, "ranges[1].end");
    assert_mentions(
        &error,
        &["192.168.2.10", "outside the subnet 192.168.1.0/24"],
    );
}

#[test]
fn pool_range_including_the_network_address_is_refused() {
    let error = only_pool_error(&[Pool {
        ranges: vec![range("192.168.1.0", "192.168.1.20")],
        ..lan()
    }]);
    assert_eq!(error.field, "ranges[0].start");
    assert_mentions(&error, &["network address 192.168.1.0"]);
}

#[test]
fn pool_range_including_the_broadcast_address_is_refused() {
    let error = only_pool_error(&[Pool {
        ranges: vec![range("192.168.1.200", "192.168.1.255")],
        ..lan()
    }]);
    assert_eq!(error.field, "ranges[0].end");
    assert_mentions(&error, &["broadcast address 192.168.1.255"]);
}

#[test]
fn pool_ranges_overlapping_each_other_are_refused() {
    let error = only_pool_error(&[Pool {
        ranges: vec![
            range("192.168.1.100", "192.168.1.199"),
            range("192.168.1.150", "192.168.1.220"),
        ],
        ..lan()
    }]);
    assert_eq!(error.field, "ranges[1]");
    assert_mentions(
        &error,
        &[
            "192.168.1.150-192.168.1.220",
            "overlaps",
            "192.168.1.100-192.168.1.199",
        ],
    );
}

#[test]
fn pool_reservation_outside_the_subnet_is_refused() {
    let error = only_pool_error(&[Pool {
        reservations: vec![ip("192.168.1.150"), ip("10.9.9.9")],
        ..lan()
    }]);
    assert_eq!(error.field, "reservations[1]");
    assert_mentions(&error, &["10.9.9.9", "outside"]);
}

#[test]
fn overlapping_pools_are_refused_naming_both() {
    let wide = Pool {
        name: "wide".into(),
        network: net("192.168.0.0/16"),
        gateway: None,
        ranges: vec![],
        reservations: vec![],
        ..lan()
    };
    let error = only_pool_error(&[lan(), wide]);
    assert_eq!(
        (error.pool.as_deref(), error.field.as_str()),
        (Some("wide"), "cidr")
    );
    assert_mentions(&error, &["wide", "192.168.0.0/16", "lan", "192.168.1.0/24"]);
}

#[test]
fn pools_with_the_same_name_are_refused() {
    let error = only_pool_error(&[
        dmz(),
        Pool {
            name: "dmz".into(),
            ..lan()
        },
    ]);
    assert_eq!(error.field, "name");
    assert_mentions(&error, &["dmz", "twice"]);
}

#[test]
fn point_to_point_subnets_have_no_network_or_broadcast_address() {
    let link = Pool {
        name: "link".into(),
        network: net("10.9.0.0/31"),
        gateway: Some(ip("10.9.0.0")),
        nameservers: vec![],
        search: vec![],
        ranges: vec![range("10.9.0.1", "10.9.0.1")],
        reservations: vec![],
    };
    assert_eq!(check_pools(std::slice::from_ref(&link)), vec![]);
    let allocation = allocate(&[link], &[auto("router", 0, "link")], &[]);
    assert_eq!(
        address_of(&allocation, "router", 0).as_deref(),
        Some("10.9.0.1/31")
    );
}

// ---------------------------------------------------------------------------------------------
// Static addresses
// ---------------------------------------------------------------------------------------------

#[test]
fn static_address_comes_with_the_settings_of_the_pool_covering_it() {
    let allocation = allocate(&[lan(), dmz()], &[fixed("web", 0, "192.168.1.10/24")], &[]);
    assert_eq!(allocation.errors, vec![]);
    let assignment = &allocation.assigned[&("web".into(), 0)];
    assert_eq!(assignment.address, net("192.168.1.10/24"));
    assert_eq!(assignment.pool.as_deref(), Some("lan"));
    assert_eq!(assignment.host, HOST);
    assert_eq!(assignment.gateway, Some(ip("192.168.1.1")));
    assert_eq!(assignment.nameservers, vec![IpAddr::V4(ip("192.168.1.53"))]);
    assert_eq!(assignment.search, vec!["example.test".to_owned()]);
    assert!(assignment.new);
}

#[test]
fn static_address_outside_the_ranges_is_allowed() {
    let allocation = allocate(&[lan()], &[fixed("web", 0, "192.168.1.250/24")], &[]);
    assert_eq!(allocation.errors, vec![]);
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.250/24")
    );
}

#[test]
fn static_address_the_nic_already_holds_is_not_new() {
    let allocation = allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.10/24")],
        &[managed("web", 0, "192.168.1.10")],
    );
    assert_eq!(allocation.errors, vec![]);
    assert!(!is_new(&allocation, "web", 0));
}

#[test]
fn static_address_in_a_pool_that_does_not_exist_is_refused() {
    let allocation = allocate(
        &[lan()],
        &[fixed_in("web", 0, "192.168.1.10/24", "lann")],
        &[],
    );
    let error = only_error(&allocation);
    assert_eq!(
        (error.vm.as_deref(), error.nic, error.field.as_str()),
        (Some("web"), Some(0), "pool")
    );
    assert_mentions(error, &["lann", "does not exist"]);
    assert!(error.hint.contains("lan"), "{}", error.hint);
    assert!(allocation.assigned.is_empty());
}

#[test]
fn static_address_outside_the_subnet_of_its_named_pool_is_refused() {
    let allocation = allocate(
        &[lan(), dmz()],
        &[fixed_in("web", 0, "10.0.0.2/29", "lan")],
        &[],
    );
    let error = only_error(&allocation);
    assert_eq!(error.field, "ip");
    assert_mentions(
        error,
        &["10.0.0.2/29", "outside the subnet 192.168.1.0/24", "lan"],
    );
}

#[test]
fn static_address_with_another_prefix_length_than_its_subnet_is_refused() {
    let allocation = allocate(&[lan()], &[fixed("web", 0, "192.168.1.10/16")], &[]);
    let error = only_error(&allocation);
    assert_eq!(error.field, "ip");
    assert_mentions(error, &["192.168.1.10/16", "192.168.1.0/24", "/24"]);
    assert!(error.hint.contains("192.168.1.10/24"), "{}", error.hint);
}

#[test]
fn static_address_in_no_pool_is_refused_with_a_hint_to_declare_one() {
    let allocation = allocate(&[lan()], &[fixed("web", 0, "172.16.5.10/24")], &[]);
    let error = only_error(&allocation);
    assert_eq!((error.field.as_str(), error.pool.as_deref()), ("ip", None));
    assert_mentions(error, &["172.16.5.10/24", "no IP pool"]);
    assert!(
        error.hint.contains("IpPool") && error.hint.contains("172.16.5.0/24"),
        "{}",
        error.hint
    );
}

#[test]
fn static_address_equal_to_the_network_address_is_refused() {
    let error = only_error(&allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.0/24")],
        &[],
    ))
    .clone();
    assert_mentions(&error, &["192.168.1.0", "network address", "lan"]);
}

#[test]
fn static_address_equal_to_the_broadcast_address_is_refused() {
    let error = only_error(&allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.255/24")],
        &[],
    ))
    .clone();
    assert_mentions(&error, &["192.168.1.255", "broadcast address"]);
}

#[test]
fn static_address_equal_to_the_gateway_is_refused() {
    let error = only_error(&allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.1/24")],
        &[],
    ))
    .clone();
    assert_eq!(
        (
            error.vm.as_deref(),
            error.pool.as_deref(),
            error.field.as_str()
        ),
        (Some("web"), Some("lan"), "ip")
    );
    assert_mentions(&error, &["192.168.1.1", "gateway of pool lan"]);
}

#[test]
fn static_address_that_is_reserved_is_refused() {
    let error = only_error(&allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.150/24")],
        &[],
    ))
    .clone();
    assert_mentions(&error, &["192.168.1.150", "reserved", "reservations[0]"]);
}

#[test]
fn static_address_requested_by_two_vms_is_refused_naming_both() {
    let allocation = allocate(
        &[lan()],
        &[
            fixed("web", 0, "192.168.1.10/24"),
            fixed("db", 1, "192.168.1.10/24"),
        ],
        &[],
    );
    let error = only_error(&allocation);
    assert_eq!((error.vm.as_deref(), error.nic), (Some("web"), Some(0)));
    assert_mentions(error, &["192.168.1.10", "VM web", "VM db"]);
    assert_eq!(
        allocation.assigned.len(),
        1,
        "the address goes to one NIC only"
    );
}

#[test]
fn static_address_duplicated_by_a_newcomer_stays_with_the_vm_holding_it() {
    let allocation = allocate(
        &[lan()],
        &[
            fixed("web", 0, "192.168.1.10/24"),
            fixed("api", 0, "192.168.1.10/24"),
        ],
        &[managed("web", 0, "192.168.1.10")],
    );
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.10/24")
    );
    let error = only_error(&allocation);
    assert_eq!(error.vm.as_deref(), Some("api"));
    assert_mentions(error, &["192.168.1.10", "VM api", "VM web"]);
}

#[test]
fn static_address_held_by_another_managed_vm_is_refused() {
    let allocation = allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.10/24")],
        &[managed("old-web", 0, "192.168.1.10")],
    );
    let error = only_error(&allocation);
    assert_eq!(error.vm.as_deref(), Some("web"));
    assert_mentions(error, &["192.168.1.10", "VM old-web", "managed by ceso"]);
    assert!(error.hint.contains("deleted"), "{}", error.hint);
    assert!(allocation.assigned.is_empty());
}

#[test]
fn static_address_used_by_an_unmanaged_vm_is_refused() {
    let allocation = allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.10/24")],
        &[unmanaged("legacy-app", "192.168.1.10")],
    );
    let error = only_error(&allocation);
    assert_eq!(
        error.message,
        "192.168.1.10 of NIC 0 of VM web is used by VM legacy-app, not managed by ceso, on host esxi-01"
    );
    assert!(allocation.assigned.is_empty());
}

#[test]
fn static_address_recorded_for_another_vm_in_the_state_file_is_refused() {
    let allocation = allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.10/24")],
        &[recorded("old-web", 0, "192.168.1.10")],
    );
    assert_mentions(only_error(&allocation), &["VM old-web", "state file"]);
}

// ---------------------------------------------------------------------------------------------
// Automatic addresses
// ---------------------------------------------------------------------------------------------

#[test]
fn auto_address_from_a_pool_that_does_not_exist_is_refused() {
    let allocation = allocate(&[lan()], &[auto("web", 0, "lab")], &[]);
    let error = only_error(&allocation);
    assert_eq!(
        (
            error.vm.as_deref(),
            error.pool.as_deref(),
            error.field.as_str()
        ),
        (Some("web"), Some("lab"), "pool")
    );
    assert_mentions(error, &["pool lab", "does not exist"]);
}

#[test]
fn auto_address_from_a_pool_without_ranges_is_refused() {
    let static_only = Pool {
        ranges: vec![],
        ..lan()
    };
    let allocation = allocate(&[static_only], &[auto("web", 0, "lan")], &[]);
    assert_mentions(only_error(&allocation), &["pool lan has no ranges"]);
}

#[test]
fn auto_address_is_the_lowest_free_one_of_the_ranges_in_range_order() {
    let pool = Pool {
        ranges: vec![
            range("192.168.1.200", "192.168.1.201"),
            range("192.168.1.100", "192.168.1.109"),
        ],
        ..lan()
    };
    let allocation = allocate(
        &[pool],
        &[
            auto("a", 0, "lan"),
            auto("b", 0, "lan"),
            auto("c", 0, "lan"),
        ],
        &[],
    );
    assert_eq!(allocation.errors, vec![]);
    let addresses: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|vm| address_of(&allocation, vm, 0).unwrap())
        .collect();
    assert_eq!(
        addresses,
        ["192.168.1.200/24", "192.168.1.201/24", "192.168.1.100/24"]
    );
    assert!(is_new(&allocation, "a", 0));
}

#[test]
fn auto_address_skips_gateway_reservations_holdings_statics_and_earlier_assignments() {
    let pool = Pool {
        ranges: vec![range("192.168.1.1", "192.168.1.8")],
        reservations: vec![ip("192.168.1.2")],
        ..lan()
    };
    let allocation = allocate(
        &[pool],
        &[
            auto("a", 0, "lan"),
            auto("a", 1, "lan"),
            fixed("z-static", 0, "192.168.1.5/24"),
        ],
        &[
            managed("gone", 0, "192.168.1.3"),
            unmanaged("legacy", "192.168.1.4"),
            recorded("elsewhere", 0, "192.168.1.6"),
        ],
    );
    assert_eq!(allocation.errors, vec![]);
    assert_eq!(
        address_of(&allocation, "a", 0).as_deref(),
        Some("192.168.1.7/24")
    );
    assert_eq!(
        address_of(&allocation, "a", 1).as_deref(),
        Some("192.168.1.8/24")
    );
}

#[test]
fn auto_address_keeps_the_address_the_nic_holds() {
    let allocation = allocate(
        &[lan()],
        &[auto("web", 0, "lan")],
        &[managed("web", 0, "192.168.1.120")],
    );
    assert_eq!(allocation.errors, vec![]);
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.120/24")
    );
    assert!(!is_new(&allocation, "web", 0));
}

#[test]
fn auto_address_is_kept_after_the_ranges_were_edited_away_from_it() {
    let moved = Pool {
        ranges: vec![range("192.168.1.200", "192.168.1.210")],
        ..lan()
    };
    let allocation = allocate(
        &[moved],
        &[auto("web", 0, "lan")],
        &[managed("web", 0, "192.168.1.120")],
    );
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.120/24")
    );
}

#[test]
fn auto_address_recorded_only_in_the_state_file_is_kept() {
    let allocation = allocate(
        &[lan()],
        &[auto("web", 0, "lan")],
        &[recorded("web", 0, "192.168.1.120")],
    );
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.120/24")
    );
    assert!(!is_new(&allocation, "web", 0));
}

#[test]
fn auto_address_on_the_host_is_preferred_over_the_state_file() {
    let allocation = allocate(
        &[lan()],
        &[auto("web", 0, "lan")],
        &[
            recorded("web", 0, "192.168.1.110"),
            managed("web", 0, "192.168.1.120"),
        ],
    );
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.120/24")
    );
}

#[test]
fn auto_address_that_became_reserved_is_replaced() {
    let allocation = allocate(
        &[lan()],
        &[auto("web", 0, "lan")],
        &[managed("web", 0, "192.168.1.150")],
    );
    assert_eq!(allocation.errors, vec![]);
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.100/24")
    );
    assert!(is_new(&allocation, "web", 0));
}

#[test]
fn auto_address_that_became_the_gateway_is_replaced() {
    let allocation = allocate(
        &[Pool {
            gateway: Some(ip("192.168.1.120")),
            ..lan()
        }],
        &[auto("web", 0, "lan")],
        &[managed("web", 0, "192.168.1.120")],
    );
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.100/24")
    );
}

#[test]
fn auto_address_held_in_another_pool_is_replaced_when_the_nic_changes_pool() {
    let allocation = allocate(
        &[lan(), dmz()],
        &[auto("web", 0, "dmz")],
        &[managed("web", 0, "192.168.1.120")],
    );
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("10.0.0.1/29")
    );
}

#[test]
fn auto_address_shared_with_a_copy_made_by_hand_is_reported_and_not_kept() {
    let allocation = allocate(
        &[lan()],
        &[auto("web", 0, "lan")],
        &[
            managed("web", 0, "192.168.1.120"),
            unmanaged("web-copy", "192.168.1.120"),
        ],
    );
    let error = only_error(&allocation);
    assert_mentions(
        error,
        &[
            "192.168.1.120",
            "VM web",
            "VM web-copy",
            "not managed by ceso",
        ],
    );
    assert_ne!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.120/24")
    );
}

#[test]
fn auto_address_taken_by_a_static_request_of_the_same_vm_is_replaced() {
    let allocation = allocate(
        &[lan()],
        &[fixed("web", 0, "192.168.1.100/24"), auto("web", 1, "lan")],
        &[managed("web", 1, "192.168.1.100")],
    );
    assert_eq!(allocation.errors, vec![]);
    assert_eq!(
        address_of(&allocation, "web", 0).as_deref(),
        Some("192.168.1.100/24")
    );
    assert_eq!(
        address_of(&allocation, "web", 1).as_deref(),
        Some("192.168.1.101/24")
    );
}

#[test]
fn exhausted_pool_is_refused_naming_the_pool_and_its_size() {
    let allocation = allocate(
        &[dmz()],
        &[
            auto("a", 0, "dmz"),
            auto("b", 0, "dmz"),
            auto("c", 0, "dmz"),
            auto("d", 0, "dmz"),
        ],
        &[],
    );
    let error = only_error(&allocation);
    assert_eq!(
        (error.vm.as_deref(), error.pool.as_deref()),
        (Some("d"), Some("dmz"))
    );
    assert_mentions(error, &["pool dmz is exhausted", "all 3 addresses", "VM d"]);
    assert_eq!(allocation.assigned.len(), 3);
}

#[test]
fn new_auto_addresses_follow_vm_and_nic_order_whatever_the_request_order() {
    let requests = [
        auto("b", 0, "lan"),
        auto("a", 1, "lan"),
        auto("a", 0, "lan"),
    ];
    let allocation = allocate(&[lan()], &requests, &[]);
    assert_eq!(
        address_of(&allocation, "a", 0).as_deref(),
        Some("192.168.1.100/24")
    );
    assert_eq!(
        address_of(&allocation, "a", 1).as_deref(),
        Some("192.168.1.101/24")
    );
    assert_eq!(
        address_of(&allocation, "b", 0).as_deref(),
        Some("192.168.1.102/24")
    );
}

#[test]
fn static_requests_are_decided_before_automatic_ones() {
    let allocation = allocate(
        &[lan()],
        &[auto("a", 0, "lan"), fixed("z", 0, "192.168.1.100/24")],
        &[],
    );
    assert_eq!(
        address_of(&allocation, "z", 0).as_deref(),
        Some("192.168.1.100/24")
    );
    assert_eq!(
        address_of(&allocation, "a", 0).as_deref(),
        Some("192.168.1.101/24")
    );
}

#[test]
fn a_nic_requested_twice_is_refused() {
    let mut twice = auto("web", 0, "lan");
    twice.host = "esxi-02".into();
    let allocation = allocate(&[lan()], &[auto("web", 0, "lan"), twice], &[]);
    assert_mentions(only_error(&allocation), &["NIC 0 of VM web", "twice"]);
    assert_eq!(allocation.assigned.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Holdings
// ---------------------------------------------------------------------------------------------

#[test]
fn address_of_a_vm_no_longer_declared_stays_taken_while_it_exists() {
    let allocation = allocate(
        &[lan()],
        &[auto("new", 0, "lan")],
        &[managed("removed-from-git", 0, "192.168.1.100")],
    );
    assert_eq!(
        address_of(&allocation, "new", 0).as_deref(),
        Some("192.168.1.101/24")
    );
}

#[test]
fn two_vms_holding_the_same_address_are_reported_naming_both() {
    let allocation = allocate(
        &[lan()],
        &[],
        &[
            managed("web", 0, "192.168.1.120"),
            managed("web-clone", 0, "192.168.1.120"),
        ],
    );
    let error = only_error(&allocation);
    assert_eq!(error.pool.as_deref(), Some("lan"));
    assert_mentions(error, &["192.168.1.120", "VM web ", "VM web-clone"]);
    assert!(error.hint.contains("copy"), "{}", error.hint);
}

#[test]
fn a_vm_recorded_both_on_the_host_and_in_the_state_file_holds_its_address_once() {
    let allocation = allocate(
        &[lan()],
        &[],
        &[
            managed("web", 0, "192.168.1.120"),
            recorded("web", 0, "192.168.1.120"),
        ],
    );
    assert_eq!(allocation.errors, vec![]);
}

#[test]
fn unmanaged_vms_sharing_an_address_are_not_ceso_business() {
    // Every guest running Docker reports the same bridge address.
    let allocation = allocate(
        &[lan()],
        &[],
        &[
            unmanaged("ci-1", "172.17.0.1"),
            unmanaged("ci-2", "172.17.0.1"),
        ],
    );
    assert_eq!(allocation.errors, vec![]);
}

// ---------------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------------

#[test]
fn usage_counts_the_ranges_and_lists_every_address_in_use() {
    let pools = [lan(), dmz()];
    let holdings = [
        managed("web", 0, "192.168.1.100"),
        recorded("web", 0, "192.168.1.100"),
        managed("retired", 0, "192.168.1.101"),
        unmanaged("legacy", "192.168.1.20"),
        unmanaged("printer", "192.168.1.199"),
    ];
    let allocation = allocate(
        &pools,
        &[auto("web", 0, "lan"), auto("db", 0, "lan")],
        &holdings,
    );
    assert_eq!(allocation.errors, vec![]);
    let report = usage(&pools, &allocation, &holdings);
    let names: Vec<_> = report.iter().map(|pool| pool.pool.as_str()).collect();
    assert_eq!(names, ["dmz", "lan"]);

    let lan_usage = &report[1];
    assert_eq!(lan_usage.network, net("192.168.1.0/24"));
    // .100-.199 minus the reservation .150
    assert_eq!(
        (lan_usage.size, lan_usage.used, lan_usage.free),
        (99, 4, 95),
        "web, retired, db and the printer are in the range, legacy is not"
    );
    let entry = |address: &str, vm: &str, nic: Option<usize>, state| UsageEntry {
        address: ip(address),
        vm: vm.into(),
        host: if vm.is_empty() {
            String::new()
        } else {
            HOST.into()
        },
        nic,
        state,
    };
    assert_eq!(
        lan_usage.entries,
        vec![
            entry("192.168.1.20", "legacy", None, UsageState::Unmanaged),
            entry("192.168.1.100", "web", Some(0), UsageState::Allocated),
            entry("192.168.1.101", "retired", Some(0), UsageState::Held),
            entry("192.168.1.102", "db", Some(0), UsageState::Planned),
            entry("192.168.1.150", "", None, UsageState::Reserved),
            entry("192.168.1.199", "printer", None, UsageState::Unmanaged),
        ]
    );
    assert_eq!(
        (report[0].size, report[0].used, report[0].entries.len()),
        (3, 0, 0)
    );
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Who holds an address: a ceso VM by name, an unmanaged VM by host and name.
fn identity(holding: &Holding) -> (bool, String, String) {
    match holding.kind {
        HolderKind::Unmanaged => (true, holding.host.clone(), holding.vm.clone()),
        HolderKind::Managed | HolderKind::Recorded => (false, String::new(), holding.vm.clone()),
    }
}

/// No address is assigned twice, and none is assigned over a holding of another VM.
fn assert_no_shared_address(allocation: &Allocation, holdings: &[Holding]) {
    let mut owner: BTreeMap<Ipv4Addr, &(String, usize)> = BTreeMap::new();
    for (key, assignment) in &allocation.assigned {
        let address = assignment.address.addr();
        if let Some(first) = owner.insert(address, key) {
            panic!("{address} assigned to both {first:?} and {key:?}");
        }
        for holding in holdings.iter().filter(|holding| holding.address == address) {
            assert_eq!(
                identity(holding),
                (false, String::new(), key.0.clone()),
                "{address} assigned to {key:?} but held by {holding:?}"
            );
        }
    }
}

/// Two small pools, so that runs exhaust them: `lan` has 11 addresses for `ip: auto` (two
/// ranges, declared high one first, a reservation inside one of them), `dmz` 6.
fn simulation_pools() -> Vec<Pool> {
    vec![
        Pool {
            name: "lan".into(),
            network: net("10.0.0.0/28"),
            gateway: Some(ip("10.0.0.1")),
            nameservers: vec![],
            search: vec![],
            ranges: vec![
                range("10.0.0.8", "10.0.0.14"),
                range("10.0.0.2", "10.0.0.6"),
            ],
            reservations: vec![ip("10.0.0.4")],
        },
        Pool {
            name: "dmz".into(),
            network: net("10.0.1.0/29"),
            gateway: None,
            nameservers: vec![],
            search: vec![],
            ranges: vec![range("10.0.1.1", "10.0.1.6")],
            reservations: vec![],
        },
    ]
}

const POOL_NAMES: [&str; 2] = ["lan", "dmz"];

/// An address of either simulation subnet (or just past them), usable or not.
fn any_simulation_address() -> impl Strategy<Value = Ipv4Addr> {
    (0u8..2, 0u8..17).prop_map(|(subnet, host)| Ipv4Addr::new(10, 0, subnet, host))
}

fn any_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        3 => (0usize..2).prop_map(|pool| Request::Auto { pool: POOL_NAMES[pool].into() }),
        1 => (
            any_simulation_address(),
            prop::option::weighted(0.2, 24u8..33),
            prop::option::of(0usize..2),
        )
            .prop_map(|(address, other_prefix, pool)| {
                // Mostly the prefix length of the simulation subnet the address is in.
                let usual = if address.octets()[2] == 0 { 28 } else { 29 };
                Request::Static {
                    address: Ipv4Net::new(address, other_prefix.unwrap_or(usual)).unwrap(),
                    pool: pool.map(|pool| POOL_NAMES[pool].to_owned()),
                }
            }),
    ]
}

/// One step in the life of an inventory.
#[derive(Debug, Clone)]
enum Step {
    /// Declare VM `vm-N` (again), with one request per adapter.
    Declare { vm: u8, nics: Vec<Request> },
    /// Remove the VM from the manifests.
    Undeclare { vm: u8 },
    /// Plan (allocate), then apply it or not; an apply may fail to destroy undeclared VMs.
    Run {
        apply: bool,
        destroy_undeclared: bool,
    },
    /// The state file is deleted.
    LoseStateFile,
    /// Someone starts a VM outside ceso on an address nobody holds.
    UnmanagedVmAppears { address: Ipv4Addr },
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..14, prop::collection::vec(any_request(), 1..3))
            .prop_map(|(vm, nics)| Step::Declare { vm, nics }),
        2 => (0u8..14).prop_map(|vm| Step::Undeclare { vm }),
        4 => (prop::bool::weighted(0.8), prop::bool::weighted(0.7))
            .prop_map(|(apply, destroy_undeclared)| Step::Run { apply, destroy_undeclared }),
        1 => Just(Step::LoseStateFile),
        1 => any_simulation_address().prop_map(|address| Step::UnmanagedVmAppears { address }),
    ]
}

/// The hosts, the state file and the manifests of a simulated inventory.
#[derive(Default)]
struct World {
    declared: BTreeMap<String, Vec<Request>>,
    /// Addresses recorded on the managed VMs that exist, by VM and adapter.
    on_host: BTreeMap<String, BTreeMap<usize, Ipv4Addr>>,
    state_file: BTreeMap<String, BTreeMap<usize, Ipv4Addr>>,
    unmanaged: Vec<Holding>,
    /// What each VM was last applied with: its requests and addresses.
    applied: BTreeMap<String, (Vec<Request>, BTreeMap<usize, Ipv4Net>)>,
    unmanaged_count: usize,
}

impl World {
    fn requests(&self) -> Vec<NicRequest> {
        self.declared
            .iter()
            .flat_map(|(vm, nics)| {
                nics.iter().enumerate().map(|(nic, request)| NicRequest {
                    host: HOST.into(),
                    vm: vm.clone(),
                    nic,
                    request: request.clone(),
                })
            })
            .collect()
    }

    fn holdings(&self) -> Vec<Holding> {
        let ceso = |records: &BTreeMap<String, BTreeMap<usize, Ipv4Addr>>, kind| {
            records
                .iter()
                .flat_map(move |(vm, nics)| {
                    nics.iter().map(move |(nic, address)| Holding {
                        host: HOST.into(),
                        vm: vm.clone(),
                        nic: Some(*nic),
                        address: *address,
                        kind,
                    })
                })
                .collect::<Vec<_>>()
        };
        let mut holdings = ceso(&self.on_host, HolderKind::Managed);
        holdings.extend(ceso(&self.state_file, HolderKind::Recorded));
        holdings.extend(self.unmanaged.iter().cloned());
        holdings
    }

    fn step(&mut self, pools: &[Pool], step: &Step) -> Result<(), TestCaseError> {
        match step {
            Step::Declare { vm, nics } => {
                self.declared.insert(format!("vm-{vm}"), nics.clone());
            }
            Step::Undeclare { vm } => {
                self.declared.remove(&format!("vm-{vm}"));
            }
            Step::LoseStateFile => self.state_file.clear(),
            Step::UnmanagedVmAppears { address } => {
                if !self
                    .holdings()
                    .iter()
                    .any(|holding| holding.address == *address)
                {
                    self.unmanaged_count += 1;
                    self.unmanaged.push(Holding {
                        host: HOST.into(),
                        vm: format!("outsider-{}", self.unmanaged_count),
                        nic: None,
                        address: *address,
                        kind: HolderKind::Unmanaged,
                    });
                }
            }
            Step::Run {
                apply,
                destroy_undeclared,
            } => self.run(pools, *apply, *destroy_undeclared)?,
        }
        Ok(())
    }

    fn run(
        &mut self,
        pools: &[Pool],
        apply: bool,
        destroy_undeclared: bool,
    ) -> Result<(), TestCaseError> {
        let holdings = self.holdings();
        let allocation = allocate(pools, &self.requests(), &holdings);
        assert_no_shared_address(&allocation, &holdings);

        // Stability: a VM applied with the requests it still has keeps every address.
        for (vm, (requests, addresses)) in &self.applied {
            if self.declared.get(vm) == Some(requests) {
                for (nic, address) in addresses {
                    let now = allocation
                        .assigned
                        .get(&(vm.clone(), *nic))
                        .map(|a| a.address);
                    prop_assert_eq!(now, Some(*address), "{} NIC {} moved", vm, nic);
                }
            }
        }
        if !apply {
            return Ok(());
        }
        let existing: Vec<String> = self.on_host.keys().cloned().collect();
        for vm in existing {
            if !self.declared.contains_key(&vm) && destroy_undeclared {
                self.on_host.remove(&vm);
                self.applied.remove(&vm);
            }
        }
        for (vm, requests) in &self.declared {
            let nics = self.on_host.entry(vm.clone()).or_default();
            let mut addresses = BTreeMap::new();
            for nic in 0..requests.len() {
                if let Some(assignment) = allocation.assigned.get(&(vm.clone(), nic)) {
                    nics.insert(nic, assignment.address.addr());
                    addresses.insert(nic, assignment.address);
                }
            }
            nics.retain(|nic, _| *nic < requests.len());
            self.applied
                .insert(vm.clone(), (requests.clone(), addresses));
        }
        self.state_file = self.on_host.clone();

        // After the apply, no two VMs hold one address.
        let mut holder_of: BTreeMap<Ipv4Addr, (bool, String, String)> = BTreeMap::new();
        for holding in self.holdings() {
            let who = identity(&holding);
            if let Some(other) = holder_of.insert(holding.address, who.clone()) {
                prop_assert_eq!(&other, &who, "{} shared after apply", holding.address);
            }
        }
        Ok(())
    }
}

/// Pools of random shape (prefix /26 to /31, ranges possibly reaching past the subnet, any
/// gateway and reservations), one per third octet so that they never overlap.
fn any_pools() -> impl Strategy<Value = Vec<Pool>> {
    let pool = |index: u8| {
        (
            26u8..32,
            prop::option::of(0u8..70),
            prop::collection::vec((0u8..70, 0u8..8), 0..3),
            prop::collection::vec(0u8..70, 0..3),
        )
            .prop_map(move |(prefix, gateway, ranges, reservations)| {
                let at = |host: u8| Ipv4Addr::new(10, 0, index, host);
                Pool {
                    name: POOL_NAMES[usize::from(index)].into(),
                    network: Ipv4Net::new(at(0), prefix).unwrap(),
                    gateway: gateway.map(at),
                    nameservers: vec![],
                    search: vec![],
                    ranges: ranges
                        .into_iter()
                        .map(|(start, length)| AddressRange {
                            start: at(start),
                            end: at(start.saturating_add(length)),
                        })
                        .collect(),
                    reservations: reservations.into_iter().map(at).collect(),
                }
            })
    };
    (pool(0), pool(1)).prop_map(|(lan, dmz)| vec![lan, dmz])
}

fn any_nic_requests() -> impl Strategy<Value = Vec<NicRequest>> {
    prop::collection::vec((0u8..8, 0usize..2, any_request()), 0..14).prop_map(|requests| {
        requests
            .into_iter()
            .map(|(vm, nic, request)| NicRequest {
                host: HOST.into(),
                vm: format!("vm-{vm}"),
                nic,
                request,
            })
            .collect()
    })
}

fn any_holdings() -> impl Strategy<Value = Vec<Holding>> {
    let kind = prop_oneof![
        Just(HolderKind::Managed),
        Just(HolderKind::Recorded),
        Just(HolderKind::Unmanaged)
    ];
    prop::collection::vec(
        (
            0u8..10,
            prop::option::of(0usize..2),
            // Mostly where the requests are, to provoke conflicts.
            (0u8..2, prop_oneof![3 => 0u8..17, 1 => 0u8..70]),
            kind,
        ),
        0..12,
    )
    .prop_map(|holdings| {
        holdings
            .into_iter()
            .map(|(vm, nic, (subnet, host), kind)| Holding {
                host: HOST.into(),
                vm: format!("vm-{vm}"),
                nic,
                address: Ipv4Addr::new(10, 0, subnet, host),
                kind,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the sequence of creates, deletes, lost state files and outsiders, no two VMs
    /// ever share an address, and a VM that keeps its request keeps its address.
    #[test]
    fn no_two_vms_ever_share_an_address_and_kept_requests_keep_their_address(
        steps in prop::collection::vec(any_step(), 1..40)
    ) {
        let pools = simulation_pools();
        let mut world = World::default();
        for step in &steps {
            world.step(&pools, step)?;
        }
        world.run(&pools, true, true)?;
    }

    /// The order of requests and holdings changes nothing.
    #[test]
    fn allocation_does_not_depend_on_input_order(
        (pools, requests, shuffled_requests, holdings, shuffled_holdings) in
            (any_pools(), any_nic_requests(), any_holdings()).prop_flat_map(|(pools, requests, holdings)| (
                Just(pools),
                Just(requests.clone()),
                Just(requests).prop_shuffle(),
                Just(holdings.clone()),
                Just(holdings).prop_shuffle(),
            ))
    ) {
        let reference = allocate(&pools, &requests, &holdings);
        let permuted = allocate(&pools, &shuffled_requests, &shuffled_holdings);
        prop_assert_eq!(&reference, &permuted);
        prop_assert_eq!(
            usage(&pools, &reference, &holdings),
            usage(&pools, &permuted, &shuffled_holdings)
        );
    }

    /// Every assigned address is in its pool's subnet with its prefix length, never its
    /// network, broadcast, gateway or a reserved address; new automatic ones come from a range;
    /// none is shared.
    #[test]
    fn every_assigned_address_is_usable_in_its_pool(
        pools in any_pools(), requests in any_nic_requests(), holdings in any_holdings()
    ) {
        let allocation = allocate(&pools, &requests, &holdings);
        assert_no_shared_address(&allocation, &holdings);
        for ((vm, nic), assignment) in &allocation.assigned {
            let pool_name = assignment.pool.as_deref().expect("every assignment names its pool");
            let pool = pools.iter().find(|pool| pool.name == pool_name).unwrap();
            let subnet = pool.network.trunc();
            let address = assignment.address.addr();
            prop_assert!(subnet.contains(&address), "{} outside {}", address, subnet);
            prop_assert_eq!(assignment.address.prefix_len(), subnet.prefix_len());
            if subnet.prefix_len() <= 30 {
                prop_assert_ne!(address, subnet.network());
                prop_assert_ne!(address, subnet.broadcast());
            }
            prop_assert_ne!(Some(address), pool.gateway);
            prop_assert!(!pool.reservations.contains(&address), "{} is reserved", address);
            let request = requests
                .iter()
                .find(|request| request.vm == *vm && request.nic == *nic)
                .unwrap();
            if assignment.new && matches!(request.request, Request::Auto { .. }) {
                prop_assert!(
                    pool.ranges.iter().any(|range| range.contains(address)),
                    "new automatic {} outside the ranges of {}", address, pool_name
                );
            }
            prop_assert_eq!(&assignment.gateway, &pool.gateway);
        }
        let used: BTreeSet<_> = allocation.assigned.values().map(|a| a.address.addr()).collect();
        prop_assert_eq!(used.len(), allocation.assigned.len());
    }
}
