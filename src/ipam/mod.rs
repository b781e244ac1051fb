//! IP address management: pools, and the deterministic, stable allocation of addresses to VM
//! network adapters. Pure; no I/O, no clock. **IPv4 only.**
//!
//! The model:
//! - A [`Pool`] (an `IpPool` manifest) is a subnet with a gateway, DNS settings, the ranges
//!   `ip: auto` draws from, and reserved addresses nobody may take. [`check_pools`] judges the
//!   pools on their own (host bits, gateway, ranges, overlaps).
//! - Each VM adapter asks for an address with a [`NicRequest`]: [`Request::Auto`] from a pool, or
//!   [`Request::Static`].
//! - What is already taken comes in as [`Holding`]s, rebuilt from the hosts (the address recorded
//!   on each ceso-managed VM, the addresses guests of unmanaged VMs report) and from the state
//!   file. The hosts are enough: losing the state file never frees an address still in use.
//! - [`allocate`] answers every request with an [`Assignment`] or an [`IpamError`]. A VM keeps
//!   the address it holds while it keeps its request (stability); an address is released only
//!   when no VM holds it any more, i.e. after the VM is deleted; new addresses are the lowest
//!   free ones. The result depends only on the inputs, not on their order.
//! - [`usage`] summarises pools for `ceso ip list`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// An IPv4 address pool (`IpPool`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub name: String,
    /// The subnet as declared, e.g. `192.168.1.0/24` (host bits are a [`check_pools`] error).
    pub network: Ipv4Net,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<IpAddr>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Where `ip: auto` addresses come from, in order. A pool without ranges serves only
    /// static addresses.
    #[serde(default)]
    pub ranges: Vec<AddressRange>,
    /// Addresses no VM may take, statically or automatically.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<Ipv4Addr>,
}

impl Pool {
    /// The subnet with host bits cleared (`192.168.1.5/24` becomes `192.168.1.0/24`).
    pub fn subnet(&self) -> Ipv4Net {
        self.network.trunc()
    }

    /// Whether `address` is inside the pool's subnet.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.subnet().contains(&address)
    }

    /// Why no VM may have `address` in this pool (network, broadcast, gateway or reserved),
    /// or `None` if one may. Subnets of /31 and /32 have no network or broadcast address.
    fn unusable(&self, address: Ipv4Addr) -> Option<Unusable> {
        let subnet = self.subnet();
        if let Some((network, broadcast)) = network_and_broadcast(subnet) {
            if address == network {
                return Some(Unusable::Network);
            }
            if address == broadcast {
                return Some(Unusable::Broadcast);
            }
        }
        if self.gateway == Some(address) {
            return Some(Unusable::Gateway);
        }
        self.reservations
            .iter()
            .position(|reserved| *reserved == address)
            .map(Unusable::Reserved)
    }

    /// The addresses of the ranges (clamped to the subnet) that a VM may take, as merged,
    /// sorted inclusive intervals, and how many there are.
    fn assignable(&self) -> (Vec<(u32, u32)>, u32) {
        let subnet = self.subnet();
        let (low, high) = (u32::from(subnet.network()), u32::from(subnet.broadcast()));
        let mut intervals: Vec<(u32, u32)> = self
            .ranges
            .iter()
            .map(|range| {
                (
                    u32::from(range.start).max(low),
                    u32::from(range.end).min(high),
                )
            })
            .filter(|(start, end)| start <= end)
            .collect();
        intervals.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(intervals.len());
        for (start, end) in intervals {
            match merged.last_mut() {
                Some(last) if u64::from(start) <= u64::from(last.1) + 1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let total: u64 = merged
            .iter()
            .map(|(start, end)| u64::from(end - start) + 1)
            .sum();
        let excluded = self.excluded_addresses();
        let excluded_inside = excluded
            .iter()
            .filter(|address| in_intervals(&merged, **address))
            .count() as u64;
        let size = total.saturating_sub(excluded_inside);
        (merged, u32::try_from(size).unwrap_or(u32::MAX))
    }

    /// Network, broadcast, gateway and reserved addresses.
    fn excluded_addresses(&self) -> BTreeSet<Ipv4Addr> {
        let mut excluded: BTreeSet<Ipv4Addr> = self.reservations.iter().copied().collect();
        excluded.extend(self.gateway);
        if let Some((network, broadcast)) = network_and_broadcast(self.subnet()) {
            excluded.insert(network);
            excluded.insert(broadcast);
        }
        excluded
    }
}

/// An inclusive range of addresses, e.g. `192.168.1.100-192.168.1.199`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddressRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl AddressRange {
    /// Whether `address` is within the range.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.start <= address && address <= self.end
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// What a VM adapter asks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Request {
    /// `ip: auto` with `pool: NAME`.
    Auto { pool: String },
    /// An explicit address with its prefix length, e.g. `192.168.1.100/24`, optionally naming
    /// its pool (otherwise the pool whose subnet contains it).
    Static {
        address: Ipv4Net,
        pool: Option<String>,
    },
}

/// The address request of one adapter (`nic`, 0-based) of a declared VM.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NicRequest {
    pub host: String,
    /// VM name; unique across the inventory.
    pub vm: String,
    pub nic: usize,
    pub request: Request,
}

/// Where a [`Holding`] is known from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HolderKind {
    /// Recorded on a ceso-managed VM on the host (its guestinfo).
    Managed,
    /// Recorded in ceso's state file.
    Recorded,
    /// Reported by the guest of a VM ceso does not manage.
    Unmanaged,
}

/// An address already in use by a VM that exists (or, for [`HolderKind::Recorded`], that ceso
/// last knew to exist). Every holding keeps its address taken, whether its VM is still declared
/// or not: pass only holdings of VMs that exist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Holding {
    pub host: String,
    /// For managed and recorded holdings the ceso VM name, otherwise the VM's name on the host.
    pub vm: String,
    /// The adapter, when known.
    pub nic: Option<usize>,
    pub address: Ipv4Addr,
    pub kind: HolderKind,
}

impl Holding {
    /// Which VM holds the address: a ceso VM is one VM whatever records its address (the host
    /// or the state file); an unmanaged VM is known by its host and name.
    fn holder(&self) -> Holder<'_> {
        match self.kind {
            HolderKind::Managed | HolderKind::Recorded => Holder::Ceso(&self.vm),
            HolderKind::Unmanaged => Holder::Unmanaged {
                host: &self.host,
                vm: &self.vm,
            },
        }
    }

    /// The holder, for messages.
    fn describe(&self) -> String {
        match self.kind {
            HolderKind::Managed => {
                format!("VM {} (managed by ceso, on host {})", self.vm, self.host)
            }
            HolderKind::Recorded => format!(
                "VM {} (on host {}, recorded in ceso's state file)",
                self.vm, self.host
            ),
            HolderKind::Unmanaged => {
                format!("VM {}, not managed by ceso, on host {}", self.vm, self.host)
            }
        }
    }
}

/// The address given to one adapter, with the pool's settings for the guest's network config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The host of the VM (from its request).
    pub host: String,
    /// The address with the pool's prefix length, e.g. `192.168.1.100/24`.
    pub address: Ipv4Net,
    pub pool: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    /// True when newly allocated by this run (the adapter did not hold it before).
    pub new: bool,
}

/// The outcome of [`allocate`]: an assignment for every request that could be satisfied, and
/// an error for every one that could not (and for conflicts between existing holdings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocation {
    /// By (VM name, adapter index).
    pub assigned: BTreeMap<(String, usize), Assignment>,
    pub errors: Vec<IpamError>,
}

/// An address management problem, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message}")]
pub struct IpamError {
    pub vm: Option<String>,
    pub nic: Option<usize>,
    pub pool: Option<String>,
    /// Relative to the object: for a VM adapter `ip` or `pool`; for a pool e.g. `cidr`,
    /// `gateway`, `ranges[1].end`, `reservations[0]`.
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl IpamError {
    fn for_pool(pool: &Pool, field: impl Into<String>, message: String, hint: String) -> Self {
        Self {
            vm: None,
            nic: None,
            pool: Some(pool.name.clone()),
            field: field.into(),
            message,
            hint,
        }
    }

    fn for_nic(
        request: &NicRequest,
        pool: Option<&str>,
        field: &str,
        message: String,
        hint: String,
    ) -> Self {
        Self {
            vm: Some(request.vm.clone()),
            nic: Some(request.nic),
            pool: pool.map(str::to_owned),
            field: field.to_owned(),
            message,
            hint,
        }
    }
}

/// How much of a pool is used, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUsage {
    pub pool: String,
    pub network: Ipv4Net,
    /// Addresses in the ranges that a VM may take (without network, broadcast, gateway and
    /// reserved addresses).
    pub size: u32,
    /// Of those, how many are planned, allocated, held or used by unmanaged VMs.
    pub used: u32,
    pub free: u32,
    /// Every address of the subnet in use or reserved, by address.
    pub entries: Vec<UsageEntry>,
}

/// One address in use (or reserved) in a pool's subnet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageEntry {
    pub address: Ipv4Addr,
    /// Empty for a reservation.
    pub vm: String,
    /// Empty for a reservation.
    pub host: String,
    pub nic: Option<usize>,
    pub state: UsageState,
}

/// Why an address is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UsageState {
    /// Newly allocated in this plan.
    Planned,
    /// Assigned to a declared VM that already holds it.
    Allocated,
    /// Held by a ceso VM that will not keep it (no longer declared, or moving to another
    /// address) but still exists: taken until the VM is deleted or moved.
    Held,
    /// Used by a VM ceso does not manage.
    Unmanaged,
    /// A reservation of the pool.
    Reserved,
}

/// Checks the pools on their own: subnets, gateways, ranges, reservations, names and overlaps.
pub fn check_pools(pools: &[Pool]) -> Vec<IpamError> {
    let mut errors = Vec::new();
    for pool in pools {
        check_pool(pool, &mut errors);
    }
    for (later, pool) in pools.iter().enumerate() {
        for earlier in &pools[..later] {
            if earlier.name == pool.name {
                errors.push(IpamError::for_pool(
                    pool,
                    "name",
                    format!("pool {} is declared twice", pool.name),
                    "give each IpPool its own name".into(),
                ));
            } else if pool.subnet().contains(&earlier.subnet())
                || earlier.subnet().contains(&pool.subnet())
            {
                errors.push(IpamError::for_pool(
                    pool,
                    "cidr",
                    format!(
                        "pool {} ({}) overlaps pool {} ({})",
                        pool.name,
                        pool.subnet(),
                        earlier.name,
                        earlier.subnet()
                    ),
                    "pools must not overlap: give each pool its own subnet, and split a subnet \
                     with several ranges in one pool"
                        .into(),
                ));
            }
        }
    }
    errors
}

fn check_pool(pool: &Pool, errors: &mut Vec<IpamError>) {
    let subnet = pool.subnet();
    let name = &pool.name;
    if pool.network != subnet {
        errors.push(IpamError::for_pool(
            pool,
            "cidr",
            format!("cidr {} of pool {name} has host bits set", pool.network),
            format!("write the network address: {subnet}"),
        ));
    }
    let edges = network_and_broadcast(subnet);
    if let Some(gateway) = pool.gateway {
        if !subnet.contains(&gateway) {
            errors.push(IpamError::for_pool(
                pool,
                "gateway",
                format!("gateway {gateway} of pool {name} is outside its subnet {subnet}"),
                format!("use an address of {subnet} as the gateway"),
            ));
        } else if let Some((network, broadcast)) = edges {
            let which = if gateway == network {
                Some("network")
            } else if gateway == broadcast {
                Some("broadcast")
            } else {
                None
            };
            if let Some(which) = which {
                errors.push(IpamError::for_pool(
                    pool,
                    "gateway",
                    format!("gateway {gateway} of pool {name} is the {which} address of {subnet}"),
                    format!(
                        "use a host address of {subnet} ({} to {})",
                        next(network),
                        previous(broadcast)
                    ),
                ));
            }
        }
    }
    for (index, range) in pool.ranges.iter().enumerate() {
        let field = format!("ranges[{index}]");
        if range.start > range.end {
            errors.push(IpamError::for_pool(
                pool,
                field,
                format!("range {range} of pool {name} starts after it ends"),
                format!("write it as {}-{}", range.end, range.start),
            ));
            continue;
        }
        for (end, address) in [("start", range.start), ("end", range.end)] {
            if !subnet.contains(&address) {
                errors.push(IpamError::for_pool(
                    pool,
                    format!("{field}.{end}"),
                    format!(
                        "range {range} of pool {name}: its {end} {address} is outside the subnet {subnet}"
                    ),
                    format!("keep the range within {subnet}"),
                ));
            }
        }
        // A range reaching outside the subnet is reported as such, not as including the
        // network or broadcast address on the way.
        if let Some((network, broadcast)) = edges {
            if range.start == network {
                errors.push(IpamError::for_pool(
                    pool,
                    format!("{field}.start"),
                    format!("range {range} of pool {name} includes the network address {network}"),
                    format!("start the range at {} or later", next(network)),
                ));
            }
            if range.end == broadcast {
                errors.push(IpamError::for_pool(
                    pool,
                    format!("{field}.end"),
                    format!(
                        "range {range} of pool {name} includes the broadcast address {broadcast}"
                    ),
                    format!("end the range at {} or earlier", previous(broadcast)),
                ));
            }
        }
        for (earlier_index, earlier) in pool.ranges[..index].iter().enumerate() {
            if earlier.start <= earlier.end
                && range.start <= earlier.end
                && earlier.start <= range.end
            {
                errors.push(IpamError::for_pool(
                    pool,
                    field.clone(),
                    format!(
                        "range {range} of pool {name} overlaps range {earlier} (ranges[{earlier_index}])"
                    ),
                    "make the ranges disjoint, or merge them into one".into(),
                ));
            }
        }
    }
    for (index, reserved) in pool.reservations.iter().enumerate() {
        if !subnet.contains(reserved) {
            errors.push(IpamError::for_pool(
                pool,
                format!("reservations[{index}]"),
                format!("reservation {reserved} of pool {name} is outside its subnet {subnet}"),
                format!("reserve only addresses of {subnet}, or remove it"),
            ));
        }
    }
}

/// Gives every request an address or an error, given what the hosts and the state file say is
/// held. Call [`check_pools`] too: this does not repeat its errors, but never assigns an address
/// outside a pool's subnet or one of its network, broadcast, gateway or reserved addresses.
///
/// Order of decisions: static addresses first (an adapter already holding its address wins a
/// duplicate), then automatic adapters keeping what they hold, then new automatic addresses by
/// (VM, adapter), each the lowest free address of the pool's ranges in range order.
pub fn allocate(pools: &[Pool], requests: &[NicRequest], holdings: &[Holding]) -> Allocation {
    let mut allocator = Allocator::new(pools, holdings);
    let requests = allocator.unique_requests(requests);

    let (statics, autos): (Vec<&NicRequest>, Vec<&NicRequest>) = requests
        .iter()
        .copied()
        .partition(|request| matches!(request.request, Request::Static { .. }));
    for request in &statics {
        if let Request::Static { address, .. } = &request.request {
            allocator.static_requests.insert(address.addr());
        }
    }

    let mut valid_statics = Vec::new();
    for request in statics {
        if let Request::Static { address, pool } = &request.request
            && let Some(pool) = allocator.check_static(request, *address, pool.as_deref())
        {
            valid_statics.push((request, pool, *address));
        }
    }
    // An adapter that already holds its address wins over newcomers asking for it.
    valid_statics.sort_by_key(|(request, _, address)| {
        let holds = allocator.nic_holds(request, address.addr());
        (!holds, &request.vm, request.nic)
    });
    for (request, pool, address) in valid_statics {
        allocator.assign_static(request, pool, address);
    }

    let mut pending = Vec::new();
    for request in autos {
        let Request::Auto { pool: pool_name } = &request.request else {
            continue;
        };
        let Some(pool) = allocator.pool(pool_name) else {
            allocator.errors.push(IpamError::for_nic(
                request,
                Some(pool_name),
                "pool",
                format!(
                    "NIC {} of VM {} asks for an address from pool {pool_name}, which does not exist",
                    request.nic, request.vm
                ),
                allocator.pool_names_hint(pool_name),
            ));
            continue;
        };
        if !allocator.keep_held(request, pool) {
            pending.push((request, pool));
        }
    }
    for (request, pool) in pending {
        allocator.assign_new(request, pool);
    }

    Allocation {
        assigned: allocator.assigned,
        errors: allocator.errors,
    }
}

/// Which VM holds an address (see [`Holding::holder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Holder<'a> {
    Ceso(&'a str),
    Unmanaged { host: &'a str, vm: &'a str },
}

/// Why an address of a pool cannot be given to a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    Network,
    Broadcast,
    Gateway,
    Reserved(usize),
}

impl Unusable {
    fn describe(self, pool: &Pool) -> String {
        let (name, subnet) = (&pool.name, pool.subnet());
        match self {
            Unusable::Network => format!("the network address of pool {name} ({subnet})"),
            Unusable::Broadcast => format!("the broadcast address of pool {name} ({subnet})"),
            Unusable::Gateway => format!("the gateway of pool {name}"),
            Unusable::Reserved(index) => {
                format!("reserved in pool {name} (reservations[{index}])")
            }
        }
    }
}

/// The working state of one [`allocate`] run.
struct Allocator<'a> {
    pools: &'a [Pool],
    /// Per address, one holding per holder (managed preferred over recorded), holders sorted.
    holders: BTreeMap<Ipv4Addr, BTreeMap<Holder<'a>, &'a Holding>>,
    /// All holdings, sorted, for looking up what an adapter holds.
    holdings: Vec<&'a Holding>,
    /// Every statically requested address, valid or not: never given out automatically.
    static_requests: BTreeSet<Ipv4Addr>,
    /// Addresses assigned in this run, to which adapter.
    taken: BTreeMap<Ipv4Addr, (&'a str, usize)>,
    /// Per pool, where to look for the next free address: (range index, address).
    cursors: BTreeMap<&'a str, (usize, u64)>,
    assigned: BTreeMap<(String, usize), Assignment>,
    errors: Vec<IpamError>,
}

impl<'a> Allocator<'a> {
    fn new(pools: &'a [Pool], holdings: &'a [Holding]) -> Self {
        let mut sorted: Vec<&Holding> = holdings.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut holders: BTreeMap<Ipv4Addr, BTreeMap<Holder, &Holding>> = BTreeMap::new();
        for holding in &sorted {
            let by_holder = holders.entry(holding.address).or_default();
            let best = by_holder.entry(holding.holder()).or_insert(holding);
            if holding.kind < best.kind {
                *best = holding;
            }
        }
        let mut allocator = Self {
            pools,
            holders,
            holdings: sorted,
            static_requests: BTreeSet::new(),
            taken: BTreeMap::new(),
            cursors: BTreeMap::new(),
            assigned: BTreeMap::new(),
            errors: Vec::new(),
        };
        allocator.report_shared_holdings();
        allocator
    }

    /// Two VMs holding one address, at least one of them ceso's (two unmanaged VMs sharing an
    /// address, like the same container bridge address, are not ceso's business).
    fn report_shared_holdings(&mut self) {
        for (address, by_holder) in &self.holders {
            let Some(first_ceso) = by_holder
                .values()
                .find(|holding| holding.kind != HolderKind::Unmanaged)
            else {
                continue;
            };
            if by_holder.len() < 2 {
                continue;
            }
            let names: Vec<String> = by_holder
                .values()
                .map(|holding| holding.describe())
                .collect();
            self.errors.push(IpamError {
                vm: Some(first_ceso.vm.clone()),
                nic: first_ceso.nic,
                pool: self.pool_containing(*address).map(|pool| pool.name.clone()),
                field: "ip".into(),
                message: format!(
                    "{address} is held by {} VMs at once: {}",
                    names.len(),
                    names.join(" and ")
                ),
                hint: "an address must belong to one VM (a copy of a VM made by hand keeps the \
                       original's address): change the address of all but one of them, or \
                       delete the copies"
                    .into(),
            });
        }
    }

    /// The requests sorted by (VM, adapter), one per adapter; a second request for the same
    /// adapter is an error.
    fn unique_requests(&mut self, requests: &'a [NicRequest]) -> Vec<&'a NicRequest> {
        let mut sorted: Vec<&NicRequest> = requests.iter().collect();
        sorted.sort_by(|a, b| {
            (&a.vm, a.nic, &a.request, &a.host).cmp(&(&b.vm, b.nic, &b.request, &b.host))
        });
        sorted.dedup();
        let mut unique: Vec<&NicRequest> = Vec::with_capacity(sorted.len());
        for request in sorted {
            match unique.last() {
                Some(last) if last.vm == request.vm && last.nic == request.nic => {
                    self.errors.push(IpamError::for_nic(
                        request,
                        None,
                        "ip",
                        format!(
                            "NIC {} of VM {} is declared twice (on host {} and on host {})",
                            request.nic, request.vm, last.host, request.host
                        ),
                        "VM names are unique across the inventory: rename one of the VMs".into(),
                    ));
                }
                _ => unique.push(request),
            }
        }
        unique
    }

    fn pool(&self, name: &str) -> Option<&'a Pool> {
        self.pools.iter().find(|pool| pool.name == name)
    }

    /// The most specific pool whose subnet contains `address` (ties: by name).
    fn pool_containing(&self, address: Ipv4Addr) -> Option<&'a Pool> {
        self.pools
            .iter()
            .filter(|pool| pool.contains(address))
            .min_by(|a, b| {
                (std::cmp::Reverse(a.subnet().prefix_len()), &a.name)
                    .cmp(&(std::cmp::Reverse(b.subnet().prefix_len()), &b.name))
            })
    }

    fn pool_names_hint(&self, missing: &str) -> String {
        let names: BTreeSet<&str> = self.pools.iter().map(|pool| pool.name.as_str()).collect();
        if names.is_empty() {
            format!("declare an IpPool named {missing}")
        } else {
            format!(
                "declare an IpPool named {missing}, or use one of: {}",
                names.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
    }

    /// Whether the adapter itself (or its VM, adapter unknown) holds `address`.
    fn nic_holds(&self, request: &NicRequest, address: Ipv4Addr) -> bool {
        self.holdings.iter().any(|holding| {
            holding.kind != HolderKind::Unmanaged
                && holding.vm == request.vm
                && holding.address == address
                && holding.nic.is_none_or(|nic| nic == request.nic)
        })
    }

    /// Holdings of `address` by VMs other than `vm`.
    fn other_holders(&self, vm: &str, address: Ipv4Addr) -> Vec<&'a Holding> {
        self.holders
            .get(&address)
            .map(|by_holder| {
                by_holder
                    .iter()
                    .filter(|(holder, _)| **holder != Holder::Ceso(vm))
                    .map(|(_, holding)| *holding)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `vm` itself holds `address` (any adapter).
    fn vm_holds(&self, vm: &str, address: Ipv4Addr) -> bool {
        self.holders
            .get(&address)
            .is_some_and(|by_holder| by_holder.contains_key(&Holder::Ceso(vm)))
    }

    /// The pool of a static request, if the address is acceptable on its own.
    fn check_static(
        &mut self,
        request: &NicRequest,
        address: Ipv4Net,
        pool_name: Option<&str>,
    ) -> Option<&'a Pool> {
        let nic = format!("NIC {} of VM {}", request.nic, request.vm);
        let ip = address.addr();
        let pool = match pool_name {
            Some(name) => {
                let Some(pool) = self.pool(name) else {
                    self.errors.push(IpamError::for_nic(
                        request,
                        Some(name),
                        "pool",
                        format!("{nic} names pool {name}, which does not exist"),
                        self.pool_names_hint(name),
                    ));
                    return None;
                };
                pool
            }
            None => {
                let Some(pool) = self.pool_containing(ip) else {
                    self.errors.push(IpamError::for_nic(
                        request,
                        None,
                        "ip",
                        format!("{address} of {nic} is in no IP pool"),
                        format!(
                            "declare an IpPool whose cidr covers it (e.g. cidr: {}), so ceso \
                             knows its gateway and can keep other VMs off it",
                            address.trunc()
                        ),
                    ));
                    return None;
                };
                pool
            }
        };
        let subnet = pool.subnet();
        if !subnet.contains(&ip) {
            self.errors.push(IpamError::for_nic(
                request,
                Some(&pool.name),
                "ip",
                format!(
                    "{address} of {nic} is outside the subnet {subnet} of pool {}",
                    pool.name
                ),
                format!("choose an address in {subnet}, or name the pool that covers {ip}"),
            ));
            return None;
        }
        if address.prefix_len() != subnet.prefix_len() {
            self.errors.push(IpamError::for_nic(
                request,
                Some(&pool.name),
                "ip",
                format!(
                    "{address} of {nic} does not match the subnet {subnet} of pool {}: the prefix \
                     length must be /{}",
                    pool.name,
                    subnet.prefix_len()
                ),
                format!("write {ip}/{}", subnet.prefix_len()),
            ));
            return None;
        }
        if let Some(unusable) = pool.unusable(ip) {
            self.errors.push(IpamError::for_nic(
                request,
                Some(&pool.name),
                "ip",
                format!("{ip} of {nic} is {}", unusable.describe(pool)),
                format!("choose another address in {subnet}"),
            ));
            return None;
        }
        Some(pool)
    }

    /// Assigns a valid static address unless another adapter has it or another VM holds it.
    fn assign_static(&mut self, request: &'a NicRequest, pool: &'a Pool, address: Ipv4Net) {
        let ip = address.addr();
        let nic = format!("NIC {} of VM {}", request.nic, request.vm);
        if let Some((vm, other_nic)) = self.taken.get(&ip) {
            let other = if *vm == request.vm {
                format!("NIC {other_nic} of the same VM")
            } else {
                format!("NIC {other_nic} of VM {vm}")
            };
            self.errors.push(IpamError::for_nic(
                request,
                Some(&pool.name),
                "ip",
                format!("{ip} of {nic} is also requested by {other}"),
                "give each adapter its own address".into(),
            ));
            return;
        }
        let others = self.other_holders(&request.vm, ip);
        if let Some(other) = others.first() {
            // When the VM holds the address too, the shared holding is already reported.
            if !self.vm_holds(&request.vm, ip) {
                self.errors.push(IpamError::for_nic(
                    request,
                    Some(&pool.name),
                    "ip",
                    format!("{ip} of {nic} is used by {}", other.describe()),
                    match other.kind {
                        HolderKind::Unmanaged => {
                            "choose another address, or change the address of that VM first".into()
                        }
                        HolderKind::Managed | HolderKind::Recorded => format!(
                            "choose another address; it is released once VM {} is deleted",
                            other.vm
                        ),
                    },
                ));
            }
            return;
        }
        let new = !self.nic_holds(request, ip);
        self.assign(request, pool, address, new);
    }

    /// Keeps an address the adapter holds in the pool, if it may still have it.
    fn keep_held(&mut self, request: &'a NicRequest, pool: &'a Pool) -> bool {
        let mut candidates: Vec<&Holding> = self
            .holdings
            .iter()
            .copied()
            .filter(|holding| {
                holding.kind != HolderKind::Unmanaged
                    && holding.vm == request.vm
                    && holding.nic == Some(request.nic)
                    && pool.contains(holding.address)
            })
            .collect();
        candidates.sort_by_key(|holding| (holding.kind, holding.address));
        let keep = candidates.into_iter().find(|holding| {
            let ip = holding.address;
            pool.unusable(ip).is_none()
                && !self.taken.contains_key(&ip)
                && self.other_holders(&request.vm, ip).is_empty()
        });
        match keep {
            Some(holding) => {
                let address = with_prefix(holding.address, pool.subnet());
                self.assign(request, pool, address, false);
                true
            }
            None => false,
        }
    }

    /// Gives the adapter the lowest free address of the pool's ranges.
    fn assign_new(&mut self, request: &'a NicRequest, pool: &'a Pool) {
        let nic = format!("NIC {} of VM {}", request.nic, request.vm);
        if pool.ranges.is_empty() {
            self.errors.push(IpamError::for_nic(
                request,
                Some(&pool.name),
                "ip",
                format!(
                    "{nic} asks for an automatic address, but pool {} has no ranges",
                    pool.name
                ),
                format!(
                    "add a range to pool {}, or give the NIC a static address",
                    pool.name
                ),
            ));
            return;
        }
        match self.next_free(pool) {
            Some(ip) => self.assign(request, pool, with_prefix(ip, pool.subnet()), true),
            None => {
                let (_, size) = pool.assignable();
                let message = if size == 0 {
                    format!(
                        "pool {} has no usable address in its ranges (they lie outside its subnet \
                         or hold only excluded addresses), none for {nic}",
                        pool.name
                    )
                } else {
                    format!(
                        "pool {} is exhausted: all {size} addresses of its ranges are in use, \
                         none left for {nic}",
                        pool.name
                    )
                };
                self.errors.push(IpamError::for_nic(
                    request,
                    Some(&pool.name),
                    "ip",
                    message,
                    format!(
                        "widen or add a range of pool {}, or delete VMs that no longer need \
                         their address",
                        pool.name
                    ),
                ));
            }
        }
    }

    /// The lowest address of the pool's ranges (in range order) that nobody has, holds,
    /// requests, and that is not excluded. Addresses only become taken during a run, so the
    /// search resumes where the previous one stopped.
    fn next_free(&mut self, pool: &'a Pool) -> Option<Ipv4Addr> {
        let subnet = pool.subnet();
        let (low, high) = (
            u64::from(u32::from(subnet.network())),
            u64::from(u32::from(subnet.broadcast())),
        );
        let (mut range_index, mut from) = self
            .cursors
            .get(pool.name.as_str())
            .copied()
            .unwrap_or((0, 0));
        while let Some(range) = pool.ranges.get(range_index) {
            let start = u64::from(u32::from(range.start)).max(low).max(from);
            let end = u64::from(u32::from(range.end)).min(high);
            for candidate in start..=end {
                // `candidate` lies within the subnet, hence fits in 32 bits.
                let ip = Ipv4Addr::from(candidate as u32);
                if self.is_free(pool, ip) {
                    self.cursors
                        .insert(&pool.name, (range_index, candidate + 1));
                    return Some(ip);
                }
            }
            range_index += 1;
            from = 0;
        }
        self.cursors.insert(&pool.name, (range_index, 0));
        None
    }

    fn is_free(&self, pool: &Pool, ip: Ipv4Addr) -> bool {
        pool.unusable(ip).is_none()
            && !self.taken.contains_key(&ip)
            && !self.holders.contains_key(&ip)
            && !self.static_requests.contains(&ip)
    }

    fn assign(&mut self, request: &'a NicRequest, pool: &Pool, address: Ipv4Net, new: bool) {
        self.taken
            .insert(address.addr(), (request.vm.as_str(), request.nic));
        self.assigned.insert(
            (request.vm.clone(), request.nic),
            Assignment {
                host: request.host.clone(),
                address,
                pool: Some(pool.name.clone()),
                gateway: pool.gateway,
                nameservers: pool.nameservers.clone(),
                search: pool.search.clone(),
                new,
            },
        );
    }
}

/// Pools (sorted by name) with their used and free counts and every address in use: the
/// allocation of this run, the holdings of VMs that do not keep their address, unmanaged VMs,
/// and reservations.
pub fn usage(pools: &[Pool], allocation: &Allocation, holdings: &[Holding]) -> Vec<PoolUsage> {
    let mut sorted_pools: Vec<&Pool> = pools.iter().collect();
    sorted_pools.sort_by(|a, b| (&a.name, a.network).cmp(&(&b.name, b.network)));
    let mut sorted_holdings: Vec<&Holding> = holdings.iter().collect();
    sorted_holdings.sort_by_key(|holding| {
        (
            holding.kind,
            holding.address,
            &holding.vm,
            &holding.host,
            holding.nic,
        )
    });

    sorted_pools
        .into_iter()
        .map(|pool| {
            let mut entries = Vec::new();
            let mut seen: BTreeSet<(Ipv4Addr, Holder)> = BTreeSet::new();
            for ((vm, nic), assignment) in &allocation.assigned {
                let address = assignment.address.addr();
                let in_pool = match &assignment.pool {
                    Some(name) => *name == pool.name,
                    None => pool.contains(address),
                };
                if !in_pool {
                    continue;
                }
                seen.insert((address, Holder::Ceso(vm)));
                entries.push(UsageEntry {
                    address,
                    vm: vm.clone(),
                    host: assignment.host.clone(),
                    nic: Some(*nic),
                    state: if assignment.new {
                        UsageState::Planned
                    } else {
                        UsageState::Allocated
                    },
                });
            }
            for holding in &sorted_holdings {
                if !pool.contains(holding.address)
                    || !seen.insert((holding.address, holding.holder()))
                {
                    continue;
                }
                entries.push(UsageEntry {
                    address: holding.address,
                    vm: holding.vm.clone(),
                    host: holding.host.clone(),
                    nic: holding.nic,
                    state: match holding.kind {
                        HolderKind::Unmanaged => UsageState::Unmanaged,
                        HolderKind::Managed | HolderKind::Recorded => UsageState::Held,
                    },
                });
            }
            let (intervals, size) = pool.assignable();
            let excluded = pool.excluded_addresses();
            let used_addresses: BTreeSet<Ipv4Addr> = entries
                .iter()
                .map(|entry| entry.address)
                .filter(|address| in_intervals(&intervals, *address) && !excluded.contains(address))
                .collect();
            let reservations: BTreeSet<Ipv4Addr> = pool
                .reservations
                .iter()
                .copied()
                .filter(|address| pool.contains(*address))
                .collect();
            entries.extend(reservations.into_iter().map(|address| UsageEntry {
                address,
                vm: String::new(),
                host: String::new(),
                nic: None,
                state: UsageState::Reserved,
            }));
            entries.sort();
            let used = u32::try_from(used_addresses.len()).unwrap_or(u32::MAX);
            PoolUsage {
                pool: pool.name.clone(),
                network: pool.subnet(),
                size,
                used,
                free: size.saturating_sub(used),
                entries,
            }
        })
        .collect()
}

/// The network and broadcast addresses of `subnet`, which /31 and /32 subnets do not have
/// (RFC 3021: both addresses of a /31 are hosts).
fn network_and_broadcast(subnet: Ipv4Net) -> Option<(Ipv4Addr, Ipv4Addr)> {
    (subnet.prefix_len() <= 30).then(|| (subnet.network(), subnet.broadcast()))
}

fn in_intervals(intervals: &[(u32, u32)], address: Ipv4Addr) -> bool {
    let value = u32::from(address);
    intervals
        .iter()
        .any(|(start, end)| *start <= value && value <= *end)
}

/// `address` with the prefix length of `subnet`.
fn with_prefix(address: Ipv4Addr, subnet: Ipv4Net) -> Ipv4Net {
    // The prefix length of an existing `Ipv4Net` is valid.
    Ipv4Net::new_assert(address, subnet.prefix_len())
}

fn next(address: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(address).saturating_add(1))
}

fn previous(address: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(address).saturating_sub(1))
}
