//! Shared by `plan` and `apply`: connecting to the hosts, observing them, and making a plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::CommandError;
use crate::desired::{DesiredState, HostConnection};
use crate::esxi::{ConnectOptions, EsxiClient};
use crate::host::Host;
use crate::ipam::Holding;
use crate::manifest::{Inventory, load_valid_inventory};
use crate::plan::{ObservedState, Plan, PlanMeta, PlanOptions, diff};
use crate::state::StateStore;

/// How long one host task may take before ceso gives up waiting.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(600);

/// Connected hosts, by name.
pub type Hosts = BTreeMap<String, EsxiClient>;

/// Logs in to every host (concurrently).
pub async fn connect(hosts: &BTreeMap<String, HostConnection>) -> Result<Hosts, CommandError> {
    let attempts = hosts.iter().map(|(name, connection)| async move {
        let password = connection
            .resolve_password(name)
            .map_err(|e| CommandError::with_hint(e.to_string(), e.hint()))?;
        if connection.insecure {
            eprintln!(
                "warning: host {name}: certificate verification is disabled (insecure: true); anyone on the network path can impersonate this host"
            );
        }
        let options = ConnectOptions {
            address: connection.address.clone(),
            thumbprint: connection.thumbprint.clone(),
            insecure: connection.insecure,
            username: connection.username.clone(),
            password,
            task_timeout: TASK_TIMEOUT,
        };
        let client = EsxiClient::connect(options).await.map_err(|e| {
            CommandError::new(format!("host {name} ({}): {e}", connection.address))
        })?;
        Ok::<_, CommandError>((name.clone(), client))
    });
    let results = futures::future::join_all(attempts).await;
    let mut connected = Hosts::new();
    let mut first_error = None;
    for result in results {
        match result {
            Ok((name, client)) => {
                connected.insert(name, client);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(error) = first_error {
        disconnect(&connected).await;
        return Err(error);
    }
    Ok(connected)
}

/// Logs out of every host; errors are only logged.
pub async fn disconnect(hosts: &Hosts) {
    for (name, client) in hosts {
        if let Err(e) = client.logout().await {
            tracing::warn!("logout from host {name} failed: {e}");
        }
    }
}

/// Reads every host's state (concurrently): the bulk read of its VMs, datastores and
/// networks, then, for the hosts named in `firewalls` (those that declare `spec.access`), its
/// firewall and the address ceso reaches it from.
pub async fn observe(
    hosts: &Hosts,
    firewalls: &BTreeSet<String>,
) -> Result<ObservedState, CommandError> {
    let reads = hosts.iter().map(|(name, client)| async move {
        let failed =
            |e: crate::esxi::EsxiError| CommandError::new(format!("observing host {name}: {e}"));
        let mut observed = client.observe().await.map_err(failed)?;
        if firewalls.contains(name) {
            observed.access = client.observe_access().await.map_err(failed)?;
        }
        Ok((name.clone(), observed))
    });
    futures::future::join_all(reads).await.into_iter().collect()
}

/// The IP addresses recorded in the state file, if there is one (planning never creates it).
pub fn recorded_addresses(state: &Path) -> Result<Vec<Holding>, CommandError> {
    if !state.exists() {
        return Ok(vec![]);
    }
    Ok(StateStore::open(state)?.recorded_holdings()?)
}

/// A fresh plan id and time.
pub fn new_plan_meta(inventory: &Path) -> PlanMeta {
    PlanMeta {
        plan_id: uuid::Uuid::new_v4().to_string(),
        created_at: super::apply::now(),
        ceso_version: env!("CARGO_PKG_VERSION").to_owned(),
        inventory: Some(inventory.to_path_buf()),
    }
}

/// Loads and validates the inventory for a command that shows addresses (and reports address
/// problems itself); other errors stop here, warnings are printed.
pub fn load_inventory_to_show(path: &Path) -> Result<Inventory, CommandError> {
    let (inventory, diagnostics) = crate::manifest::load_inventory_without_address_check(path);
    if crate::diagnostic::has_errors(&diagnostics) {
        return Err(CommandError::Diagnostics(diagnostics));
    }
    for warning in diagnostics {
        eprintln!("{warning}");
    }
    Ok(inventory)
}

/// Loads and validates the inventory; errors stop here, warnings are printed.
pub fn load_inventory(path: &Path) -> Result<Inventory, CommandError> {
    let (inventory, warnings) = load_valid_inventory(path).map_err(CommandError::Diagnostics)?;
    for warning in warnings {
        eprintln!("{warning}");
    }
    Ok(inventory)
}

/// Connects, observes and plans. The hosts stay connected for an apply.
pub async fn make_plan(path: &Path, options: &PlanOptions) -> Result<(Plan, Hosts), CommandError> {
    let inventory = load_inventory(path)?;
    plan_inventory(&inventory, path, options).await
}

/// Connects, observes and plans an inventory already loaded from `path`. The hosts stay
/// connected for an apply.
pub async fn plan_inventory(
    inventory: &Inventory,
    path: &Path,
    options: &PlanOptions,
) -> Result<(Plan, Hosts), CommandError> {
    let desired = DesiredState::from_inventory(inventory);
    let (suspended, active): (BTreeMap<_, _>, BTreeMap<_, _>) = desired
        .hosts
        .iter()
        .map(|(name, host)| (name.clone(), host.connection.clone()))
        .partition(|(name, _)| desired.suspended.hosts.contains(name));
    let mut hosts = connect(&active).await?;
    // A suspended host is left alone: one that cannot be reached is a warning in the plan
    // (the planner reports its VMs as not observed), not the end of the plan.
    for (name, connection) in suspended {
        match connect(&BTreeMap::from([(name.clone(), connection)])).await {
            Ok(connected) => hosts.extend(connected),
            Err(e) => {
                eprintln!(
                    "warning: suspended host {name} is not observed: {}",
                    e.message()
                );
            }
        }
    }
    let firewalls = desired
        .hosts
        .iter()
        .filter(|(_, host)| host.allowed_networks.is_some())
        .map(|(name, _)| name.clone())
        .collect();
    let observed = match observe(&hosts, &firewalls).await {
        Ok(observed) => observed,
        Err(e) => {
            disconnect(&hosts).await;
            return Err(e);
        }
    };
    let mut plan = diff(&desired, &observed, options, new_plan_meta(path));
    inventory.locate_diagnostics(&mut plan.diagnostics);
    Ok((plan, hosts))
}
