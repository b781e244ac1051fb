//! `ceso ip list`: the IP pools with their used and free counts, and every address in use,
//! computed exactly as `ceso plan` computes them (read-only). The JSON format is documented in
//! `docs/cli.md`.

use std::path::{Path, PathBuf};

use anstyle::{AnsiColor, Style};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::connect::{load_inventory_to_show, recorded_addresses};
use super::inspect::{Align, Cell, Table, observe_hosts, print_json};
use super::{CommandError, Outcome};
use crate::desired::DesiredState;
use crate::diagnostic::{Diagnostic, Severity};
use crate::ipam::{self, UsageState};
use crate::manifest::Inventory;
use crate::plan::{assign_addresses, render::Colour};

/// `ceso ip` subcommands.
#[derive(Debug, Subcommand)]
pub enum IpCommand {
    /// IP pools (size, used, free) and every address in use: planned, allocated, held, used by
    /// unmanaged VMs, reserved. Exit code 1 when an address cannot be allocated.
    List(IpListArgs),
}

/// Arguments of `ceso ip list`.
#[derive(Debug, Args)]
pub struct IpListArgs {
    /// Inventory directory (its IpPools, its VMs, and the hosts to read).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub inventory: PathBuf,
    /// Print JSON (docs/cli.md) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs an `ip` subcommand; `state` is the state file whose recorded addresses count as held.
pub async fn run(command: IpCommand, state: &Path) -> Result<Outcome, CommandError> {
    match command {
        IpCommand::List(args) => list(args, state).await,
    }
}

/// The JSON document of `ceso ip list`.
#[derive(Debug, Serialize)]
struct IpList<'a> {
    pools: &'a [PoolReport],
    /// Addresses that could not be allocated (the planner's errors), as warnings.
    problems: &'a [Diagnostic],
}

/// One pool in `ceso ip list` (also its JSON).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolReport {
    name: String,
    network: String,
    gateway: Option<String>,
    /// Addresses of the ranges a VM may take.
    size: u32,
    used: u32,
    free: u32,
    /// Every address of the subnet in use or reserved, by address.
    addresses: Vec<AddressReport>,
}

/// One address in use or reserved.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AddressReport {
    address: String,
    /// `null` for a reservation.
    vm: Option<String>,
    /// `null` for a reservation.
    host: Option<String>,
    /// The adapter (0-based), when known.
    nic: Option<usize>,
    state: UsageState,
}

async fn list(args: IpListArgs, state: &Path) -> Result<Outcome, CommandError> {
    let inventory = load_inventory_to_show(&args.inventory)?;
    let mut desired = DesiredState::from_inventory(&inventory);
    let recorded = recorded_addresses(state)?;
    let observed = observe_hosts(&desired, None).await?;
    let addressing = assign_addresses(&mut desired, &observed, &recorded);
    let pools: Vec<ipam::Pool> = desired.pools.values().cloned().collect();
    let usage = ipam::usage(&pools, &addressing.allocation, &addressing.holdings);
    let reports: Vec<PoolReport> = usage
        .into_iter()
        .map(|pool| PoolReport {
            gateway: desired
                .pools
                .get(&pool.pool)
                .and_then(|declared| declared.gateway)
                .map(|gateway| gateway.to_string()),
            name: pool.pool,
            network: pool.network.to_string(),
            size: pool.size,
            used: pool.used,
            free: pool.free,
            addresses: pool
                .entries
                .into_iter()
                .map(|entry| {
                    let reserved = entry.state == UsageState::Reserved;
                    AddressReport {
                        address: entry.address.to_string(),
                        vm: (!reserved).then_some(entry.vm),
                        host: (!reserved).then_some(entry.host),
                        nic: entry.nic,
                        state: entry.state,
                    }
                })
                .collect(),
        })
        .collect();
    let problems: Vec<Diagnostic> = addressing
        .diagnostics
        .into_iter()
        .map(|diagnostic| as_located_warning(diagnostic, &inventory))
        .collect();

    if args.json {
        print_json(&IpList {
            pools: &reports,
            problems: &problems,
        });
    } else if reports.is_empty() {
        println!(
            "No IpPool is declared in {}; VMs without a pool use DHCP or a static address.",
            args.inventory.display()
        );
    } else {
        print!("{}", render(&reports, Colour::for_stdout()));
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    if problems.is_empty() {
        Ok(Outcome::Success)
    } else {
        Err(CommandError::with_hint(
            format!(
                "{} address problem(s), listed above: `ceso plan` leaves the VMs they concern alone",
                problems.len()
            ),
            "fix the manifests (or free the addresses) and run `ceso ip list` again",
        ))
    }
}

/// An address error of the planner as a warning of `ip list`, with the place in the manifests
/// where its field is written.
fn as_located_warning(mut diagnostic: Diagnostic, inventory: &Inventory) -> Diagnostic {
    diagnostic.severity = Severity::Warning;
    if diagnostic.location.is_none()
        && let (Some(resource), Some(field)) = (&diagnostic.resource, &diagnostic.field)
    {
        diagnostic.location = match resource.split_once('/') {
            Some(("VirtualMachine", name)) => inventory.vms.get(name).map(|vm| vm.locate(field)),
            Some(("IpPool", name)) => inventory.pools.get(name).map(|pool| pool.locate(field)),
            _ => None,
        };
    }
    diagnostic
}

fn state_word(state: UsageState) -> &'static str {
    match state {
        UsageState::Planned => "planned",
        UsageState::Allocated => "allocated",
        UsageState::Held => "held",
        UsageState::Unmanaged => "unmanaged",
        UsageState::Reserved => "reserved",
    }
}

fn state_style(state: UsageState) -> Style {
    let colour = match state {
        UsageState::Planned => AnsiColor::Green,
        UsageState::Allocated => return Style::new(),
        UsageState::Held => AnsiColor::Yellow,
        UsageState::Unmanaged => AnsiColor::Magenta,
        UsageState::Reserved => AnsiColor::Cyan,
    };
    Style::new().fg_color(Some(colour.into()))
}

fn render(reports: &[PoolReport], colour: Colour) -> String {
    let mut pools = Table::new(&[
        ("POOL", Align::Left),
        ("NETWORK", Align::Left),
        ("GATEWAY", Align::Left),
        ("SIZE", Align::Right),
        ("USED", Align::Right),
        ("FREE", Align::Right),
    ]);
    for pool in reports {
        let free_style = if pool.free == 0 && pool.size > 0 {
            Style::new().fg_color(Some(AnsiColor::Red.into()))
        } else {
            Style::new()
        };
        pools.row(vec![
            Cell::plain(&pool.name),
            Cell::plain(&pool.network),
            Cell::plain(pool.gateway.as_deref().unwrap_or("-")),
            Cell::plain(&pool.size.to_string()),
            Cell::plain(&pool.used.to_string()),
            Cell::styled(&pool.free.to_string(), free_style),
        ]);
    }
    let mut out = pools.render(colour);
    out.push('\n');
    if reports.iter().all(|pool| pool.addresses.is_empty()) {
        out.push_str("No address is in use or reserved.\n");
        return out;
    }
    let mut addresses = Table::new(&[
        ("POOL", Align::Left),
        ("ADDRESS", Align::Left),
        ("VM", Align::Left),
        ("HOST", Align::Left),
        ("NIC", Align::Right),
        ("STATE", Align::Left),
    ]);
    for pool in reports {
        for entry in &pool.addresses {
            addresses.row(vec![
                Cell::plain(&pool.name),
                Cell::plain(&entry.address),
                Cell::plain(entry.vm.as_deref().unwrap_or("-")),
                Cell::plain(entry.host.as_deref().unwrap_or("-")),
                Cell::plain(&entry.nic.map_or("-".to_owned(), |nic| nic.to_string())),
                Cell::styled(state_word(entry.state), state_style(entry.state)),
            ]);
        }
    }
    out.push_str(&addresses.render(colour));
    out
}
