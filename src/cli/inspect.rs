//! `ceso vm list` and `ceso vm info NAME`: what is on the hosts, read-only.
//!
//! Both read the inventory only to know the hosts (and their credentials) and which VMs are
//! declared; everything else comes from one observation of each host. The output formats are
//! documented in `docs/cli.md`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anstyle::{AnsiColor, Style};
use base64::Engine;
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::connect::{connect, disconnect, load_inventory_to_show, observe};
use super::{CommandError, Outcome};
use crate::cloudinit::{InterfaceConfig, read_guestinfo, redact_user_data};
use crate::desired::{DesiredState, DesiredVm, VmSettings};
use crate::host::{Firmware, ObservedHost, ObservedVm, POWER_KEY, PowerState, TEMPLATE_KEY};
use crate::ipam::Request;
use crate::manifest::Size;
use crate::plan::{ObservedState, applied_settings, render::Colour};

/// Arguments of `ceso vm list`.
#[derive(Debug, Args)]
pub struct VmListArgs {
    /// Inventory directory (it names the hosts and how to log in to them).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub inventory: PathBuf,
    /// Only this host (a `Host` name of the inventory).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Print JSON (docs/cli.md) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ceso vm info`.
#[derive(Debug, Args)]
pub struct VmInfoArgs {
    /// The VM: its ceso manifest name or its name on the host.
    pub name: String,
    /// Inventory directory (it names the hosts and how to log in to them).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub inventory: PathBuf,
    /// Only look on this host (a `Host` name of the inventory).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Print JSON (docs/cli.md) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ceso vm list`: every VM of every host (or of `--host`), and the declared VMs missing there.
pub async fn list(args: VmListArgs) -> Result<Outcome, CommandError> {
    let inventory = load_inventory_to_show(&args.inventory)?;
    let desired = DesiredState::from_inventory(&inventory);
    let observed = observe_hosts(&desired, args.host.as_deref()).await?;
    let rows = list_rows(&desired, &observed);
    if args.json {
        print_json(&VmList { vms: rows });
    } else if rows.is_empty() {
        println!("No VMs on the hosts of {}.", args.inventory.display());
    } else {
        print!("{}", render_list(&rows, Colour::for_stdout()));
    }
    Ok(Outcome::Success)
}

/// `ceso vm info NAME`: one VM in detail, secrets redacted.
pub async fn info(args: VmInfoArgs) -> Result<Outcome, CommandError> {
    let inventory = load_inventory_to_show(&args.inventory)?;
    let desired = DesiredState::from_inventory(&inventory);
    let observed = observe_hosts(&desired, args.host.as_deref()).await?;
    let (host, vm) = find_vm(&args.name, &desired, &observed)?;
    let details = VmDetails::of(host, vm, &desired);
    if args.json {
        print_json(&details);
    } else {
        print!("{}", render_info(&details, Colour::for_stdout()));
    }
    Ok(Outcome::Success)
}

// ------------------------------------------------------------------------------------------------
// observing

/// Connects to every host of the inventory (or only to `only`), observes them and logs out.
pub(super) async fn observe_hosts(
    desired: &DesiredState,
    only: Option<&str>,
) -> Result<ObservedState, CommandError> {
    if let Some(only) = only
        && !desired.hosts.contains_key(only)
    {
        let known: Vec<&str> = desired.hosts.keys().map(String::as_str).collect();
        return Err(CommandError::with_hint(
            format!("the inventory declares no host named {only}"),
            if known.is_empty() {
                "the inventory declares no Host at all; pass --inventory DIR".to_owned()
            } else {
                format!("the hosts are: {}", known.join(", "))
            },
        ));
    }
    let connections = desired
        .hosts
        .iter()
        .filter(|(name, _)| only.is_none_or(|only| only == name.as_str()))
        .map(|(name, host)| (name.clone(), host.connection.clone()))
        .collect();
    let hosts = connect(&connections).await?;
    let observed = observe(&hosts, &Default::default()).await;
    disconnect(&hosts).await;
    observed
}

// ------------------------------------------------------------------------------------------------
// vm list

/// Whether and how ceso manages a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Management {
    /// Created by ceso (`ceso.managed`).
    Managed,
    /// Holds a template's disk (`ceso.template`).
    Template,
    /// Not ceso's.
    Unmanaged,
    /// Declared in the manifests but not on its host.
    Missing,
}

impl Management {
    fn of(vm: &ObservedVm) -> Self {
        if vm.extra_config.contains_key(TEMPLATE_KEY) {
            Management::Template
        } else if vm.managed_name().is_some() {
            Management::Managed
        } else {
            Management::Unmanaged
        }
    }

    fn style(self) -> Style {
        let colour = match self {
            Management::Managed => AnsiColor::Green,
            Management::Template => AnsiColor::Cyan,
            Management::Unmanaged => return Style::new(),
            Management::Missing => AnsiColor::Red,
        };
        Style::new().fg_color(Some(colour.into()))
    }
}

/// Where the address shown for a VM comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum IpSource {
    /// VMware Tools in the guest reports it.
    Guest,
    /// ceso recorded it on the VM (`ceso.applied`), or the manifest declares it (missing VM).
    Declared,
}

/// The JSON document of `ceso vm list`.
#[derive(Debug, Serialize)]
struct VmList {
    vms: Vec<VmRow>,
}

/// One line of `ceso vm list` (also its JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct VmRow {
    /// The VM's name on the host (the manifest name for a missing VM).
    name: String,
    host: String,
    /// `null` for a missing VM.
    moref: Option<String>,
    management: Management,
    /// The manifest name of a managed VM, the template name of a template holder.
    ceso_name: Option<String>,
    /// Whether the manifests declare the VM (always false for unmanaged VMs).
    declared: bool,
    power: Option<&'static str>,
    cpu: Option<u32>,
    memory_mib: Option<u64>,
    /// The address shown: the first one the guest reports (IPv4 first), else the first one
    /// ceso recorded or the manifest declares.
    ip: Option<String>,
    ip_source: Option<IpSource>,
    /// Every address the guest reports.
    guest_ips: Vec<String>,
}

fn power_word(power: Option<PowerState>) -> Option<&'static str> {
    power.map(|power| match power {
        PowerState::PoweredOn => "on",
        PowerState::PoweredOff => "off",
        PowerState::Suspended => "suspended",
    })
}

/// The address a guest reports first, IPv4 before IPv6.
fn first_guest_ip(vm: &ObservedVm) -> Option<&str> {
    vm.guest_ips
        .iter()
        .find(|ip| !ip.contains(':'))
        .or_else(|| vm.guest_ips.first())
        .map(String::as_str)
}

/// The addresses ceso recorded on a VM, without prefix length.
fn recorded_ips(vm: &ObservedVm) -> Vec<String> {
    applied_settings(vm)
        .and_then(|settings| settings.cloud_init)
        .map(|config| {
            config
                .interfaces
                .iter()
                .filter_map(|interface| interface.address.as_deref())
                .map(|address| address.split('/').next().unwrap_or(address).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The static address a manifest declares for a VM's first adapter that has one.
fn declared_ip(vm: &DesiredVm) -> Option<String> {
    vm.addressing
        .iter()
        .flatten()
        .find_map(|request| match request {
            Request::Static { address, .. } => Some(address.addr().to_string()),
            Request::Auto { .. } => None,
        })
}

fn list_rows(desired: &DesiredState, observed: &ObservedState) -> Vec<VmRow> {
    let mut rows = Vec::new();
    for (host, observed_host) in observed {
        for vm in &observed_host.vms {
            let management = Management::of(vm);
            let ceso_name = match management {
                Management::Template => vm.extra_config.get(TEMPLATE_KEY).cloned(),
                _ => vm.managed_name().map(str::to_owned),
            };
            let declared = management == Management::Managed
                && ceso_name
                    .as_ref()
                    .and_then(|name| desired.vms.get(name))
                    .is_some_and(|declared| declared.host == *host);
            let (ip, ip_source) = match first_guest_ip(vm) {
                Some(ip) => (Some(ip.to_owned()), Some(IpSource::Guest)),
                None => match recorded_ips(vm).into_iter().next() {
                    Some(ip) => (Some(ip), Some(IpSource::Declared)),
                    None => (None, None),
                },
            };
            rows.push(VmRow {
                name: vm.name.clone(),
                host: host.clone(),
                moref: Some(vm.moref.clone()),
                management,
                ceso_name,
                declared,
                power: power_word(vm.power),
                cpu: Some(vm.cpu),
                memory_mib: Some(vm.memory_mib),
                ip,
                ip_source,
                guest_ips: vm.guest_ips.clone(),
            });
        }
        for vm in missing_vms(desired, host, observed_host) {
            let ip = declared_ip(vm);
            rows.push(VmRow {
                name: vm.name.clone(),
                host: host.clone(),
                moref: None,
                management: Management::Missing,
                ceso_name: Some(vm.name.clone()),
                declared: true,
                power: None,
                cpu: Some(vm.config.cpu),
                memory_mib: Some(vm.config.memory_mib),
                ip_source: ip.as_ref().map(|_| IpSource::Declared),
                ip,
                guest_ips: vec![],
            });
        }
    }
    rows.sort_by(|a, b| (&a.host, &a.name, &a.moref).cmp(&(&b.host, &b.name, &b.moref)));
    rows
}

/// The VMs declared on `host` that no VM there is managed as.
fn missing_vms<'a>(
    desired: &'a DesiredState,
    host: &str,
    observed: &ObservedHost,
) -> Vec<&'a DesiredVm> {
    let present: BTreeSet<&str> = observed
        .vms
        .iter()
        .filter_map(ObservedVm::managed_name)
        .collect();
    desired
        .vms
        .values()
        .filter(|vm| vm.host == host && !present.contains(vm.name.as_str()))
        .collect()
}

fn memory(mib: u64) -> String {
    Size::format_bytes(mib.saturating_mul(1 << 20))
}

fn render_list(rows: &[VmRow], colour: Colour) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("HOST", Align::Left),
        ("POWER", Align::Left),
        ("CPU", Align::Right),
        ("MEMORY", Align::Right),
        ("IP", Align::Left),
        ("MANAGED", Align::Left),
    ]);
    for row in rows {
        let ip = match (&row.ip, row.ip_source) {
            (Some(ip), Some(IpSource::Declared)) => format!("{ip} (declared)"),
            (Some(ip), _) if row.guest_ips.len() > 1 => {
                format!("{ip} (+{})", row.guest_ips.len() - 1)
            }
            (Some(ip), _) => ip.clone(),
            (None, _) => "-".to_owned(),
        };
        let managed = match row.management {
            Management::Managed if !row.declared => "yes (not declared)",
            Management::Managed => "yes",
            Management::Template => "template",
            Management::Unmanaged => "no",
            Management::Missing => "missing",
        };
        table.row(vec![
            Cell::plain(&row.name),
            Cell::plain(&row.host),
            Cell::plain(row.power.unwrap_or("-")),
            Cell::plain(&row.cpu.map_or("-".to_owned(), |cpu| cpu.to_string())),
            Cell::plain(&row.memory_mib.map_or("-".to_owned(), memory)),
            Cell::plain(&ip),
            Cell::styled(managed, row.management.style()),
        ]);
    }
    table.render(colour)
}

// ------------------------------------------------------------------------------------------------
// vm info

/// Finds `name` (a ceso manifest name or a name on the host) on the observed hosts.
fn find_vm<'a>(
    name: &str,
    desired: &DesiredState,
    observed: &'a ObservedState,
) -> Result<(&'a str, &'a ObservedVm), CommandError> {
    let by_name = |pick: &dyn Fn(&ObservedVm) -> bool| -> Vec<(&'a str, &'a ObservedVm)> {
        observed
            .iter()
            .flat_map(|(host, observed_host)| {
                observed_host.vms.iter().map(move |vm| (host.as_str(), vm))
            })
            .filter(|(_, vm)| pick(vm))
            .collect()
    };
    // A manifest name wins over a host name (a managed VM renamed on the host keeps its
    // manifest name).
    let mut found = by_name(&|vm| vm.managed_name() == Some(name));
    if found.is_empty() {
        found = by_name(&|vm| vm.name == name);
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(not_found(name, desired, observed)),
        several => {
            let places: Vec<String> = several
                .iter()
                .map(|(host, vm)| format!("{} on host {host}", vm.moref))
                .collect();
            Err(CommandError::with_hint(
                format!(
                    "{} VMs are named {name}: {}",
                    several.len(),
                    places.join(", ")
                ),
                "pass --host HOST to choose one",
            ))
        }
    }
}

fn not_found(name: &str, desired: &DesiredState, observed: &ObservedState) -> CommandError {
    let hosts: Vec<&str> = observed.keys().map(String::as_str).collect();
    let hosts = hosts.join(", ");
    if let Some(vm) = desired.vms.get(name) {
        return CommandError::with_hint(
            format!(
                "VM {name} is declared in the manifests (host {}) but does not exist on host(s) {hosts}",
                vm.host
            ),
            "`ceso plan` shows its creation; `ceso apply` creates it",
        );
    }
    let mut candidates: BTreeSet<&str> = desired.vms.keys().map(String::as_str).collect();
    for observed_host in observed.values() {
        for vm in &observed_host.vms {
            candidates.insert(&vm.name);
            candidates.extend(vm.managed_name());
        }
    }
    let close = close_names(name, candidates);
    let hint = if close.is_empty() {
        "`ceso vm list` shows every VM".to_owned()
    } else {
        format!(
            "did you mean {}? `ceso vm list` shows every VM",
            close.join(", ")
        )
    };
    CommandError::with_hint(format!("no VM named {name} on host(s) {hosts}"), hint)
}

/// Up to five of `candidates` that look like `name`: few edits away (case-insensitively), or
/// containing it or contained in it.
fn close_names<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let wanted = name.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_lowercase();
            let distance = strsim::levenshtein(&wanted, &lower);
            let related = !wanted.is_empty()
                && (lower.contains(&wanted) || (lower.len() >= 3 && wanted.contains(&lower)));
            (distance <= limit || related).then_some((distance, candidate))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, name)| name).collect()
}

/// Everything `ceso vm info` shows (also its JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct VmDetails {
    name: String,
    host: String,
    moref: String,
    vmx_path: String,
    management: Management,
    /// The manifest name of a managed VM, the template name of a template holder.
    ceso_name: Option<String>,
    /// Whether the manifests declare this VM on this host.
    declared: bool,
    protected: bool,
    /// vSphere's own template flag (`config.template`).
    vsphere_template: bool,
    hardware: Hardware,
    disks: Vec<DiskInfo>,
    nics: Vec<NicInfo>,
    guest_ips: Vec<String>,
    /// Decoded from `guestinfo.metadata` / `guestinfo.userdata`; `null` when there is none.
    cloud_init: Option<GuestCloudInit>,
    /// Why the guestinfo could not be decoded, if it could not.
    cloud_init_error: Option<String>,
    /// What ceso last applied (`ceso.applied`), summarised; `null` for VMs ceso never applied.
    applied: Option<AppliedSummary>,
    /// The power state ceso last brought the VM to (`ceso.power`).
    applied_power: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Hardware {
    cpu: u32,
    memory_mib: u64,
    guest_id: String,
    firmware: Option<Firmware>,
    power: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct DiskInfo {
    key: i32,
    capacity_bytes: u64,
    file_name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct NicInfo {
    key: i32,
    port_group: String,
    mac_address: String,
    adapter: String,
}

/// The cloud-init data in a VM's guestinfo, with keys as fingerprints and secrets redacted.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GuestCloudInit {
    instance_id: Option<String>,
    hostname: Option<String>,
    public_keys: Vec<PublicKeyInfo>,
    /// The netplan v2 network configuration, as the guest reads it.
    network: Option<Value>,
    /// Names of the other metadata keys (their values are not shown).
    other_metadata_keys: Vec<String>,
    /// The user-data, secrets redacted.
    user_data: Option<String>,
}

/// An SSH public key, identified without printing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyInfo {
    /// `ssh-ed25519`, `ssh-rsa`, ...; `null` when the line is not a public key.
    key_type: Option<String>,
    comment: Option<String>,
    /// `SHA256:...` as `ssh-keygen -l` prints it.
    fingerprint: Option<String>,
}

impl PublicKeyInfo {
    /// Reads one `authorized_keys` line (options before the key type are skipped).
    fn parse(line: &str) -> Self {
        let words: Vec<&str> = line.split_whitespace().collect();
        let key = words.iter().enumerate().find_map(|(index, word)| {
            let blob = STANDARD_BASE64.decode(words.get(index + 1)?).ok()?;
            (key_type_in_blob(&blob)? == *word).then_some((index, blob))
        });
        match key {
            Some((index, blob)) => {
                let digest = ring::digest::digest(&ring::digest::SHA256, &blob);
                let comment = words[index + 2..].join(" ");
                PublicKeyInfo {
                    key_type: Some(words[index].to_owned()),
                    comment: (!comment.is_empty()).then_some(comment),
                    fingerprint: Some(format!(
                        "SHA256:{}",
                        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
                    )),
                }
            }
            None => PublicKeyInfo {
                key_type: None,
                comment: None,
                fingerprint: None,
            },
        }
    }

    fn describe(&self) -> String {
        match (&self.key_type, &self.fingerprint) {
            (Some(key_type), Some(fingerprint)) => match &self.comment {
                Some(comment) => format!("{key_type} {comment} ({fingerprint})"),
                None => format!("{key_type} ({fingerprint})"),
            },
            _ => "(a line that is not an SSH public key; not shown)".to_owned(),
        }
    }
}

const STANDARD_BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The key type an SSH public key blob starts with (a length-prefixed string).
fn key_type_in_blob(blob: &[u8]) -> Option<&str> {
    let length = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + length)?).ok()
}

/// Whether text holds what looks like private key material (a PEM or OpenSSH private key).
fn has_private_key(text: &str) -> bool {
    text.contains("PRIVATE KEY")
}

/// The metadata keys shown in their own right.
const SHOWN_METADATA_KEYS: [&str; 5] = [
    "instance-id",
    "local-hostname",
    "public-keys-data",
    "public-keys",
    "network",
];

impl GuestCloudInit {
    fn of(vm: &ObservedVm) -> Result<Option<Self>, String> {
        let decoded = read_guestinfo(&vm.extra_config).map_err(|e| e.to_string())?;
        if decoded.metadata.is_none() && decoded.user_data.is_none() {
            return Ok(None);
        }
        let mut shown = GuestCloudInit::default();
        if let Some(Value::Object(metadata)) = &decoded.metadata {
            let text = |key: &str| metadata.get(key).and_then(Value::as_str).map(str::to_owned);
            shown.instance_id = text("instance-id");
            shown.hostname = text("local-hostname");
            let mut key_lines: Vec<String> = Vec::new();
            if let Some(data) = metadata.get("public-keys-data").and_then(Value::as_str) {
                key_lines.extend(data.lines().map(str::to_owned));
            }
            match metadata.get("public-keys") {
                Some(Value::String(keys)) => key_lines.extend(keys.lines().map(str::to_owned)),
                Some(Value::Array(keys)) => key_lines.extend(
                    keys.iter()
                        .filter_map(Value::as_str)
                        .flat_map(str::lines)
                        .map(str::to_owned),
                ),
                _ => {}
            }
            shown.public_keys = key_lines
                .iter()
                .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
                .map(|line| PublicKeyInfo::parse(line))
                .collect();
            shown.network = metadata
                .get("network")
                .cloned()
                .filter(|network| !has_private_key(&network.to_string()));
            shown.other_metadata_keys = metadata
                .keys()
                .filter(|key| !SHOWN_METADATA_KEYS.contains(&key.as_str()))
                .cloned()
                .collect();
        }
        shown.user_data = decoded.user_data.as_deref().map(|user_data| {
            let redacted = redact_user_data(user_data);
            if has_private_key(&redacted) {
                format!(
                    "(not shown: {} bytes of user-data holding private key material)",
                    user_data.len()
                )
            } else {
                redacted
            }
        });
        Ok(Some(shown))
    }
}

/// `ceso.applied`, without user-data or whole keys.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct AppliedSummary {
    cpu: u32,
    memory_mib: u64,
    guest_id: String,
    datastore: String,
    disks: Vec<u64>,
    networks: Vec<String>,
    protect: bool,
    template: Option<String>,
    firmware: Option<Firmware>,
    instance_id: Option<String>,
    hostname: Option<String>,
    /// How many SSH keys the guest was given.
    ssh_keys: usize,
    /// One per adapter.
    interfaces: Vec<InterfaceConfig>,
}

impl AppliedSummary {
    fn of(settings: VmSettings) -> Self {
        let cloud_init = settings.cloud_init;
        AppliedSummary {
            cpu: settings.cpu,
            memory_mib: settings.memory_mib,
            guest_id: settings.guest_id,
            datastore: settings.datastore,
            disks: settings.disks,
            networks: settings.networks,
            protect: settings.protect,
            template: settings.template,
            firmware: settings.firmware,
            instance_id: cloud_init.as_ref().map(|c| c.instance_id.clone()),
            hostname: cloud_init.as_ref().map(|c| c.hostname.clone()),
            ssh_keys: cloud_init
                .as_ref()
                .map_or(0, |c| c.ssh_authorized_keys.len()),
            interfaces: cloud_init.map(|c| c.interfaces).unwrap_or_default(),
        }
    }
}

impl VmDetails {
    fn of(host: &str, vm: &ObservedVm, desired: &DesiredState) -> Self {
        let management = Management::of(vm);
        let ceso_name = match management {
            Management::Template => vm.extra_config.get(TEMPLATE_KEY).cloned(),
            _ => vm.managed_name().map(str::to_owned),
        };
        let declared = management == Management::Managed
            && ceso_name
                .as_ref()
                .and_then(|name| desired.vms.get(name))
                .is_some_and(|declared| declared.host == host);
        let (cloud_init, cloud_init_error) = match GuestCloudInit::of(vm) {
            Ok(cloud_init) => (cloud_init, None),
            Err(error) => (None, Some(error)),
        };
        VmDetails {
            name: vm.name.clone(),
            host: host.to_owned(),
            moref: vm.moref.clone(),
            vmx_path: vm.vmx_path.clone(),
            management,
            ceso_name,
            declared,
            protected: vm.is_protected(),
            vsphere_template: vm.template,
            hardware: Hardware {
                cpu: vm.cpu,
                memory_mib: vm.memory_mib,
                guest_id: vm.guest_id.clone(),
                firmware: vm.firmware,
                power: power_word(vm.power),
            },
            disks: vm
                .disks
                .iter()
                .map(|disk| DiskInfo {
                    key: disk.key,
                    capacity_bytes: disk.capacity_bytes,
                    file_name: disk.file_name.clone(),
                })
                .collect(),
            nics: vm
                .nics
                .iter()
                .map(|nic| NicInfo {
                    key: nic.key,
                    port_group: nic.port_group.clone(),
                    mac_address: nic.mac_address.clone(),
                    adapter: nic.adapter.clone(),
                })
                .collect(),
            guest_ips: vm.guest_ips.clone(),
            cloud_init,
            cloud_init_error,
            applied: applied_settings(vm).map(AppliedSummary::of),
            applied_power: vm.extra_config.get(POWER_KEY).cloned(),
        }
    }
}

/// `  name:        value` (names aligned); a name alone when the value follows on its own lines.
fn write_field(out: &mut String, name: &str, value: &str) {
    let name = format!("{name}:");
    let _ = if value.is_empty() {
        writeln!(out, "  {name}")
    } else {
        writeln!(out, "  {name:<13}{value}")
    };
}

fn render_info(details: &VmDetails, colour: Colour) -> String {
    let mut out = String::new();
    let bold = Style::new().bold();
    let heading = |out: &mut String, text: &str| {
        let _ = writeln!(out, "\n{}", paint(colour, bold, text));
    };
    let _ = writeln!(
        out,
        "{}",
        paint(
            colour,
            bold,
            &format!("VM {} on host {}", details.name, details.host)
        )
    );
    write_field(&mut out, "moref", &details.moref);
    write_field(&mut out, "vmx", &details.vmx_path);
    let managed = match (details.management, &details.ceso_name) {
        (Management::Managed, Some(name)) if details.declared => {
            format!("yes, as {name}")
        }
        (Management::Managed, Some(name)) => {
            format!("yes, as {name} (no longer declared in the manifests)")
        }
        (Management::Template, Some(name)) => format!("template holder of {name}"),
        _ => "no".to_owned(),
    };
    write_field(
        &mut out,
        "managed",
        &paint(colour, details.management.style(), &managed),
    );
    write_field(
        &mut out,
        "protected",
        if details.protected { "yes" } else { "no" },
    );
    if details.vsphere_template {
        write_field(&mut out, "template", "yes (a vSphere template)");
    }

    heading(&mut out, "Hardware");
    let hardware = &details.hardware;
    write_field(&mut out, "cpu", &hardware.cpu.to_string());
    write_field(&mut out, "memory", &memory(hardware.memory_mib));
    write_field(&mut out, "guest id", &hardware.guest_id);
    write_field(
        &mut out,
        "firmware",
        &hardware
            .firmware
            .map_or("(not reported)".to_owned(), |f| f.to_string()),
    );
    write_field(
        &mut out,
        "power",
        hardware.power.unwrap_or("(not reported)"),
    );

    heading(&mut out, "Disks");
    if details.disks.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut table = Table::new(&[
            ("#", Align::Right),
            ("SIZE", Align::Right),
            ("FILE", Align::Left),
        ]);
        for (index, disk) in details.disks.iter().enumerate() {
            table.row(vec![
                Cell::plain(&index.to_string()),
                Cell::plain(&Size::format_bytes(disk.capacity_bytes)),
                Cell::plain(&disk.file_name),
            ]);
        }
        out.push_str(&indent(&table.render(colour), "  "));
    }

    heading(&mut out, "Network adapters");
    if details.nics.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut table = Table::new(&[
            ("#", Align::Right),
            ("PORT GROUP", Align::Left),
            ("MAC", Align::Left),
            ("ADAPTER", Align::Left),
        ]);
        for (index, nic) in details.nics.iter().enumerate() {
            table.row(vec![
                Cell::plain(&index.to_string()),
                Cell::plain(&nic.port_group),
                Cell::plain(&nic.mac_address),
                Cell::plain(&nic.adapter),
            ]);
        }
        out.push_str(&indent(&table.render(colour), "  "));
    }
    write_field(
        &mut out,
        "guest IPs",
        &if details.guest_ips.is_empty() {
            "(none reported: VMware Tools not running, or no address yet)".to_owned()
        } else {
            details.guest_ips.join(", ")
        },
    );

    heading(&mut out, "cloud-init (guestinfo)");
    match (&details.cloud_init, &details.cloud_init_error) {
        (_, Some(error)) => write_field(&mut out, "error", &format!("cannot decode: {error}")),
        (None, None) => out.push_str("  (none)\n"),
        (Some(cloud_init), None) => render_cloud_init(&mut out, cloud_init),
    }

    heading(&mut out, "Recorded by ceso (ceso.applied)");
    match &details.applied {
        None => out.push_str("  (nothing: ceso never applied settings to this VM)\n"),
        Some(applied) => render_applied(&mut out, applied, details.applied_power.as_deref()),
    }
    out
}

fn render_cloud_init(out: &mut String, cloud_init: &GuestCloudInit) {
    let or_none = |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_owned());
    write_field(out, "instance-id", &or_none(&cloud_init.instance_id));
    write_field(out, "hostname", &or_none(&cloud_init.hostname));
    if cloud_init.public_keys.is_empty() {
        write_field(out, "public keys", "(none)");
    } else {
        write_field(out, "public keys", "");
        for key in &cloud_init.public_keys {
            let _ = writeln!(out, "    {}", key.describe());
        }
    }
    match &cloud_init.network {
        None => write_field(out, "network", "(none: DHCP on the first adapter)"),
        Some(network) => {
            write_field(out, "network", "");
            let yaml = serde_yaml::to_string(network).unwrap_or_else(|e| format!("({e})\n"));
            out.push_str(&indent(&yaml, "    "));
        }
    }
    if !cloud_init.other_metadata_keys.is_empty() {
        write_field(
            out,
            "other keys",
            &format!(
                "{} (values not shown)",
                cloud_init.other_metadata_keys.join(", ")
            ),
        );
    }
    match &cloud_init.user_data {
        None => write_field(out, "user-data", "(none)"),
        Some(user_data) => {
            write_field(out, "user-data", "(secrets redacted)");
            out.push_str(&indent(user_data, "    "));
            if !user_data.ends_with('\n') {
                out.push('\n');
            }
        }
    }
}

fn render_applied(out: &mut String, applied: &AppliedSummary, power: Option<&str>) {
    let sizes: Vec<String> = applied
        .disks
        .iter()
        .map(|bytes| Size::format_bytes(*bytes))
        .collect();
    write_field(
        out,
        "hardware",
        &format!(
            "{} cpu, {} memory, guest {}{}",
            applied.cpu,
            memory(applied.memory_mib),
            applied.guest_id,
            applied
                .firmware
                .map_or(String::new(), |firmware| format!(", {firmware}"))
        ),
    );
    write_field(
        out,
        "storage",
        &format!("{} on {}", sizes.join(" + "), applied.datastore),
    );
    write_field(out, "networks", &applied.networks.join(", "));
    if let Some(template) = &applied.template {
        write_field(out, "template", template);
    }
    write_field(out, "protect", if applied.protect { "yes" } else { "no" });
    if let Some(power) = power {
        write_field(out, "power", power);
    }
    if let (Some(instance_id), Some(hostname)) = (&applied.instance_id, &applied.hostname) {
        write_field(
            out,
            "cloud-init",
            &format!(
                "instance-id {instance_id}, hostname {hostname}, {} SSH key(s)",
                applied.ssh_keys
            ),
        );
        for (index, interface) in applied.interfaces.iter().enumerate() {
            write_field(out, &format!("nic{index}"), &describe_interface(interface));
        }
    }
}

fn describe_interface(interface: &InterfaceConfig) -> String {
    let mut text = match &interface.address {
        Some(address) => address.clone(),
        None => "DHCP".to_owned(),
    };
    if let Some(pool) = &interface.pool {
        let _ = write!(text, " from pool {pool}");
    }
    if let Some(gateway) = &interface.gateway {
        let _ = write!(text, ", gateway {gateway}");
    }
    if !interface.nameservers.is_empty() {
        let _ = write!(text, ", DNS {}", interface.nameservers.join(" "));
    }
    if !interface.search.is_empty() {
        let _ = write!(text, ", search {}", interface.search.join(" "));
    }
    text
}

// ------------------------------------------------------------------------------------------------
// output helpers (shared with `ceso ip list`)

/// Prints a value as pretty JSON.
pub(super) fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(json) => println!("{json}"),
        // Only maps with non-string keys fail, and none are printed.
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
}

/// `text` in `style` when colour is on.
pub(super) fn paint(colour: Colour, style: Style, text: &str) -> String {
    match colour {
        Colour::Always => format!("{style}{text}{style:#}"),
        Colour::Never => text.to_owned(),
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().fold(String::new(), |mut out, line| {
        let _ = writeln!(out, "{prefix}{line}");
        out
    })
}

/// How a table column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    Right,
}

/// One table cell: its text and an optional style (applied only with colour).
pub(super) struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    pub(super) fn plain(text: &str) -> Self {
        Self::styled(text, Style::new())
    }

    pub(super) fn styled(text: &str, style: Style) -> Self {
        Cell {
            text: text.to_owned(),
            style,
        }
    }
}

/// A table with aligned columns (widths from the plain text, so colour does not disturb them).
pub(super) struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub(super) fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            columns: columns
                .iter()
                .map(|(name, align)| ((*name).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    pub(super) fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub(super) fn render(&self, colour: Colour) -> String {
        let width = |index: usize| {
            self.rows
                .iter()
                .filter_map(|row| row.get(index))
                .map(|cell| cell.text.chars().count())
                .chain([self.columns[index].0.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let line = |cells: Vec<(&str, Style)>| {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (index, (cell, style)) in cells.into_iter().enumerate() {
                let (_, align) = self.columns[index];
                let padding = widths[index].saturating_sub(cell.chars().count());
                if index > 0 {
                    text.push_str("  ");
                }
                if align == Align::Right {
                    text.push_str(&" ".repeat(padding));
                }
                text.push_str(&paint(colour, style, cell));
                if align == Align::Left && index != last {
                    text.push_str(&" ".repeat(padding));
                }
            }
            text.push('\n');
            text
        };
        let bold = Style::new().bold();
        let mut out = line(
            self.columns
                .iter()
                .map(|(name, _)| (name.as_str(), bold))
                .collect(),
        );
        for row in &self.rows {
            out.push_str(&line(
                row.iter()
                    .map(|cell| (cell.text.as_str(), cell.style))
                    .collect(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_a_few_edits_away_or_contain_the_name() {
        let names = ["web-01", "web-02", "db-01", "ha-host_VM0"];
        assert_eq!(close_names("web-1", names), vec!["web-01", "web-02"]);
        assert_eq!(close_names("VM0", names), vec!["ha-host_VM0"]);
        assert!(close_names("mail", names).is_empty());
    }

    #[test]
    fn a_public_key_is_shown_as_type_comment_and_the_fingerprint_ssh_keygen_prints() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGwSQXvqKwdxxT9ObEiFqTWFpQ5ezQHq7Xx2cAScfmE5 ops@example";
        // `ssh-keygen -l -f` of this key:
        // 256 SHA256:1DdYNlXLbVP5MtMpAM0nPdHX9nOg6Og+Z3xtEc5VAZQ ops@example (ED25519)
        assert_eq!(
            PublicKeyInfo::parse(line).describe(),
            "ssh-ed25519 ops@example (SHA256:1DdYNlXLbVP5MtMpAM0nPdHX9nOg6Og+Z3xtEc5VAZQ)"
        );
        let with_options = format!("no-pty,from=\"10.0.0.0/8\" {line}");
        assert_eq!(
            PublicKeyInfo::parse(&with_options).fingerprint.as_deref(),
            Some("SHA256:1DdYNlXLbVP5MtMpAM0nPdHX9nOg6Og+Z3xtEc5VAZQ")
        );
    }

    #[test]
    fn a_line_that_is_not_a_public_key_is_not_shown() {
        let key = PublicKeyInfo::parse("-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaA==");
        assert_eq!(key.key_type, None);
        assert!(!key.describe().contains("b3Blbn"));
    }

    #[test]
    fn tables_align_columns_on_the_plain_text() {
        let mut table = Table::new(&[("NAME", Align::Left), ("CPU", Align::Right)]);
        table.row(vec![Cell::plain("web-01"), Cell::plain("2")]);
        table.row(vec![Cell::plain("a"), Cell::plain("16")]);
        assert_eq!(
            table.render(Colour::Never),
            "NAME    CPU\nweb-01    2\na        16\n"
        );
    }
}
