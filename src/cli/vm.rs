//! `ceso vm create` and `ceso vm delete`: the manifest is written to (or removed from) the
//! inventory, so git stays the source of truth, and then just that VM is planned and applied with
//! the same planner, executor and audit log as `ceso apply`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::apply::{self, ApplyArgs};
use super::connect::load_inventory;
use super::files::write_atomically;
use super::{CommandError, Outcome, known};
use crate::manifest::{
    API_VERSION, CloneSourceSpec, CloudInitSpec, DiskSpec, Document, Metadata, NetworkSpec, Power,
    Size, SshKeySource, VirtualMachineSpec, read_file,
};
use crate::plan::DEFAULT_GUEST_IP_TIMEOUT_SECS;

/// What `vm create` and `vm clone` share: where the manifest goes and how it is applied.
#[derive(Debug, Args)]
pub struct NewVmArgs {
    /// Power state after creation.
    #[arg(long, default_value = "on", value_parser = parse_power)]
    pub power: Power,
    /// The inventory directory; the manifest is written to `<inventory>/vms/<name>.yaml`.
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
    /// Apply without asking (needed without a terminal).
    #[arg(long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// How long to wait for the guest to report its IP address.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_GUEST_IP_TIMEOUT_SECS)]
    pub guest_ip_timeout: u64,
}

/// Arguments of `ceso vm create`.
#[derive(Debug, Args)]
pub struct VmCreateArgs {
    /// Name of the VM (also its name on the host).
    pub name: String,
    /// The Template its disk is copied from.
    #[arg(long)]
    pub template: Option<String>,
    /// The Host it runs on (default: the template's host, or the only host of the inventory).
    #[arg(long)]
    pub host: Option<String>,
    /// `auto` (from `--pool`) or a static address with prefix length, e.g. 192.168.1.100/24.
    #[arg(long)]
    pub ip: Option<String>,
    /// The IpPool for `--ip auto` (given alone, it implies `--ip auto`).
    #[arg(long)]
    pub pool: Option<String>,
    /// Port group of the adapter (default: the host's network).
    #[arg(long)]
    pub port_group: Option<String>,
    /// An SSH public key file for the default user; repeatable. The keys are written into the
    /// manifest (public keys are not secret).
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<PathBuf>,
    /// Virtual CPUs (default: the template's).
    #[arg(long)]
    pub cpu: Option<u32>,
    /// Memory, e.g. 4GiB (default: the template's).
    #[arg(long)]
    pub memory: Option<Size>,
    /// Size of disk 0, e.g. 20GiB (default: the template's).
    #[arg(long)]
    pub disk: Option<Size>,
    #[command(flatten)]
    pub new_vm: NewVmArgs,
}

/// Arguments of `ceso vm clone`.
#[derive(Debug, Args)]
pub struct VmCloneArgs {
    /// The VM to clone (its manifest name, or its name on the host).
    pub source: String,
    /// Name of the clone.
    pub name: String,
    /// The Host (default: the source's, or the only host of the inventory).
    #[arg(long)]
    pub host: Option<String>,
    /// The clone's address: `auto` (from `--pool`) or a static address with prefix length.
    /// Default: an address from the source's pool, or DHCP.
    #[arg(long)]
    pub ip: Option<String>,
    /// The IpPool for `--ip auto` (given alone, it implies `--ip auto`).
    #[arg(long)]
    pub pool: Option<String>,
    #[command(flatten)]
    pub new_vm: NewVmArgs,
}

/// Arguments of `ceso vm delete`.
#[derive(Debug, Args)]
pub struct VmDeleteArgs {
    /// Name of the VM (its manifest name).
    pub name: String,
    /// The inventory directory.
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
    /// Delete without asking (needed without a terminal).
    #[arg(long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// Power the VM off hard if its guest cannot be shut down through VMware Tools.
    #[arg(long)]
    pub force_power_off: bool,
}

fn parse_power(text: &str) -> Result<Power, String> {
    serde_yaml::from_str(text).map_err(|_| "write `on` or `off`".to_owned())
}

fn apply_args(inventory: &Path, name: &str, auto_approve: bool, prune: bool) -> ApplyArgs {
    ApplyArgs {
        auto_approve,
        prune,
        only: Some(format!("VirtualMachine/{name}")),
        ..ApplyArgs::new(inventory)
    }
}

/// The public keys (one per line, comments and blank lines left out) of `--ssh-key` files;
/// a private key is refused.
pub(super) fn read_public_keys(files: &[PathBuf]) -> Result<Vec<String>, CommandError> {
    let mut keys = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            CommandError::new(format!("cannot read SSH key file {}: {e}", file.display()))
        })?;
        if text.contains("PRIVATE KEY") {
            return Err(CommandError::with_hint(
                format!("{} is a private key", file.display()),
                "give the public half, e.g. --ssh-key ~/.ssh/id_ed25519.pub",
            ));
        }
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(keys)
}

/// `ceso vm create`
pub async fn create(args: VmCreateArgs, state: &Path) -> Result<Outcome, CommandError> {
    let inventory = load_inventory(&args.new_vm.inventory)?;
    if let Some(existing) = inventory.vms.get(&args.name) {
        return Err(CommandError::with_hint(
            format!(
                "VM {:?} is already declared in {}",
                args.name,
                existing.file.display()
            ),
            "edit that manifest and run `ceso apply`, or choose another name",
        ));
    }
    let host = match (&args.host, &args.template) {
        (Some(host), _) => host.clone(),
        (None, Some(template)) => match inventory.templates.get(template) {
            Some(t) => t.spec.host.clone(),
            None => {
                return Err(CommandError::with_hint(
                    format!("unknown template {template:?}"),
                    known("templates", inventory.templates.keys()),
                ));
            }
        },
        (None, None) if inventory.hosts.len() == 1 => {
            inventory.hosts.keys().next().cloned().unwrap_or_default()
        }
        (None, None) => {
            return Err(CommandError::with_hint(
                "which host? the inventory declares several",
                format!("pass --host; {}", known("hosts", inventory.hosts.keys())),
            ));
        }
    };
    let keys: Vec<SshKeySource> = read_public_keys(&args.ssh_keys)?
        .into_iter()
        .map(SshKeySource::Inline)
        .collect();
    let ip = match (&args.ip, &args.pool) {
        (None, Some(_)) => Some("auto".to_owned()),
        (ip, _) => ip.clone(),
    };
    let network = NetworkSpec {
        port_group: args.port_group.clone(),
        ip,
        pool: args.pool.clone(),
    };
    let spec = VirtualMachineSpec {
        host,
        template: args.template.clone(),
        source: None,
        cpu: args.cpu,
        memory: args.memory,
        disks: args
            .disk
            .map(|size| vec![DiskSpec { size }])
            .unwrap_or_default(),
        networks: (network != NetworkSpec::default()).then(|| vec![network]),
        power: args.new_vm.power,
        guest_id: None,
        datastore: None,
        protect: false,
        suspend: false,
        cloud_init: (!keys.is_empty()).then(|| CloudInitSpec {
            ssh_authorized_keys: keys,
            ..CloudInitSpec::default()
        }),
        annotation: None,
        shutdown: None,
        backup_policy: None,
    };
    write_and_apply(&args.new_vm, &args.name, spec, state, None).await
}

/// Writes `<inventory>/vms/<name>.yaml`, then plans and applies just that VM; removes the file
/// again when nothing was applied.
pub(super) async fn write_and_apply(
    new_vm: &NewVmArgs,
    name: &str,
    spec: VirtualMachineSpec,
    state: &Path,
    restored: Option<apply::RestoredDisks>,
) -> Result<Outcome, CommandError> {
    let inventory = new_vm.inventory.as_path();
    let loaded = load_inventory(inventory)?;
    if loaded.hosts.get(&spec.host).is_some_and(|h| h.spec.suspend) {
        return Err(CommandError::with_hint(
            format!(
                "host {:?} is suspended (suspend: true): ceso creates nothing on it",
                spec.host
            ),
            "choose another host with --host, or resume this one first",
        ));
    }
    let document = Document {
        api_version: API_VERSION.to_owned(),
        kind: "VirtualMachine".to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            labels: BTreeMap::new(),
        },
        spec,
    };
    let text = serde_yaml::to_string(&document)
        .map_err(|e| CommandError::new(format!("cannot write the manifest: {e}")))?;
    let file = inventory.join("vms").join(format!("{name}.yaml"));
    if file.exists() {
        return Err(CommandError::with_hint(
            format!("{} already exists", file.display()),
            "choose another name, or remove the file",
        ));
    }
    write_atomically(&file, &text)?;
    println!("Wrote {}.", file.display());
    let mut apply = apply_args(inventory, name, new_vm.yes, false);
    apply.guest_ip_timeout = new_vm.guest_ip_timeout;
    apply.restore_disks = restored;
    let result = apply::run(&apply, state).await;
    if result.is_err() && !apply.steps_ran.get() {
        // Nothing was created: the inventory goes back to what it was.
        let _ = std::fs::remove_file(&file);
        eprintln!("Removed {} again: nothing was created.", file.display());
    } else {
        println!(
            "Commit {} so that the inventory in git keeps describing the host.",
            file.display()
        );
    }
    result
}

/// `ceso vm clone`
pub async fn clone(args: VmCloneArgs, state: &Path) -> Result<Outcome, CommandError> {
    let inventory = load_inventory(&args.new_vm.inventory)?;
    if let Some(existing) = inventory.vms.get(&args.name) {
        return Err(CommandError::with_hint(
            format!(
                "VM {:?} is already declared in {}",
                args.name,
                existing.file.display()
            ),
            "choose another name for the clone",
        ));
    }
    let declared = inventory.vms.get(&args.source).map(|r| &r.spec);
    let host = match (&args.host, declared) {
        (Some(host), _) => host.clone(),
        (None, Some(source)) => source.host.clone(),
        (None, None) if inventory.hosts.len() == 1 => {
            inventory.hosts.keys().next().cloned().unwrap_or_default()
        }
        (None, None) => {
            return Err(CommandError::with_hint(
                format!("which host is {:?} on?", args.source),
                format!("pass --host; {}", known("hosts", inventory.hosts.keys())),
            ));
        }
    };
    // The clone keeps the source's adapters and cloud-init settings, never its addresses or
    // host name: an adapter gets `--ip`/`--pool`, or an address from the source's pool, or DHCP.
    let mut networks: Vec<NetworkSpec> = declared
        .and_then(|s| s.networks.clone())
        .unwrap_or_else(|| vec![NetworkSpec::default()]);
    for (index, network) in networks.iter_mut().enumerate() {
        let given = index == 0 && (args.ip.is_some() || args.pool.is_some());
        if given {
            network.ip = Some(args.ip.clone().unwrap_or_else(|| "auto".to_owned()));
            network.pool = args.pool.clone();
        } else {
            network.ip = network.pool.as_ref().map(|_| "auto".to_owned());
        }
    }
    let cloud_init = declared
        .and_then(|s| s.cloud_init.clone())
        .map(|c| CloudInitSpec {
            hostname: None,
            ..c
        });
    let spec = VirtualMachineSpec {
        host,
        template: None,
        source: Some(CloneSourceSpec {
            vm: args.source.clone(),
        }),
        cpu: None,
        memory: None,
        disks: vec![],
        networks: Some(networks),
        power: args.new_vm.power,
        guest_id: None,
        datastore: None,
        protect: false,
        suspend: false,
        cloud_init,
        annotation: None,
        shutdown: None,
        backup_policy: None,
    };
    write_and_apply(&args.new_vm, &args.name, spec, state, None).await
}

/// `ceso vm delete`
pub async fn delete(args: VmDeleteArgs, state: &Path) -> Result<Outcome, CommandError> {
    let inventory = load_inventory(&args.inventory)?;
    let Some(vm) = inventory.vms.get(&args.name) else {
        return Err(CommandError::with_hint(
            format!(
                "VM {:?} is not declared in {}",
                args.name,
                args.inventory.display()
            ),
            "only VMs of the inventory are deleted this way; a managed VM whose manifest is already gone is deleted by `ceso apply --prune`",
        ));
    };
    if vm.spec.protect {
        return Err(CommandError::with_hint(
            format!(
                "VM {:?} is protected (protect: true in {})",
                args.name,
                vm.file.display()
            ),
            "if deleting it is intended, set `protect: false`, apply that, then delete",
        ));
    }
    let desired = crate::desired::DesiredState::from_inventory(&inventory);
    if let Some(by) = desired.suspended.suspended_by(&args.name, &vm.spec.host) {
        return Err(CommandError::with_hint(
            format!(
                "VM {:?} is suspended ({by} has suspend: true): ceso leaves it alone",
                args.name
            ),
            "remove `suspend: true` (and apply that) first if deleting it is intended",
        ));
    }
    let file = vm.file.clone();
    let text = std::fs::read_to_string(&file)
        .map_err(|e| CommandError::new(format!("cannot read {}: {e}", file.display())))?;
    let mut documents = crate::manifest::Documents::default();
    read_file(&file, &text, &mut documents, &mut Vec::new());
    let count = documents.hosts.len()
        + documents.vms.len()
        + documents.templates.len()
        + documents.pools.len();
    if count != 1 {
        return Err(CommandError::with_hint(
            format!(
                "{} holds {count} documents besides VM {:?}",
                file.display(),
                args.name
            ),
            "remove the VM's document from that file by hand, then run `ceso apply --prune`",
        ));
    }
    // Hidden files are not read as manifests; the file comes back if the VM is not deleted.
    let parked = file.with_file_name(format!(
        ".{}.deleting",
        file.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("vm.yaml")
    ));
    std::fs::rename(&file, &parked)
        .map_err(|e| CommandError::new(format!("cannot move {}: {e}", file.display())))?;
    let mut apply = apply_args(&args.inventory, &args.name, args.yes, true);
    // The manifest is parked while the VM is deleted: its own `shutdown.force` still counts.
    apply.force_power_off = args.force_power_off || vm.spec.shutdown.is_some_and(|s| s.force);
    let result = apply::run(&apply, state).await;
    match &result {
        Ok(_) => {
            let _ = std::fs::remove_file(&parked);
            println!(
                "Removed {}; commit the removal so that git matches the host.",
                file.display()
            );
        }
        Err(_) => {
            if let Err(e) = std::fs::rename(&parked, &file) {
                eprintln!(
                    "error: could not put back {} (it is at {}): {e}",
                    file.display(),
                    parked.display()
                );
            } else {
                eprintln!("Kept {}: the VM was not deleted.", file.display());
            }
        }
    }
    result
}
