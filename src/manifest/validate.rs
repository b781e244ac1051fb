//! Cross-document checks (unique names, references, value ranges) and the result: a validated
//! [`Inventory`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::backup::parse_backup_policy;
use super::load::{Documents, Resource, read_documents};
use super::types::{
    BackupPolicySpec, EnvSecret, FileSecret, HostSpec, IpPoolSpec, KeyringSecret, SecretRef,
    SshKeySource, StoreSecret, TemplateSpec, VirtualMachineSpec,
};
use crate::cloudinit::{UserDataError, UserDataInput, user_data};
use crate::diagnostic::{Diagnostic, SourceLocation, has_errors};
use crate::esxi::{EsxiError, is_loopback, normalize_address, normalize_thumbprint};
use crate::ipam;

/// Largest number of virtual CPUs ESXi allows a VM.
pub const MAX_CPU: u32 = 768;
/// Disks fit on one SCSI controller: units 0–15 without 7.
pub const MAX_DISKS: usize = 15;
/// Network adapters per VM.
pub const MAX_NICS: usize = 10;
/// Longest VM name ESXi accepts.
pub const MAX_VM_NAME: usize = 80;

/// A validated inventory: unique names, resolvable references, sane values.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub hosts: BTreeMap<String, Resource<HostSpec>>,
    pub vms: BTreeMap<String, Resource<VirtualMachineSpec>>,
    pub templates: BTreeMap<String, Resource<TemplateSpec>>,
    pub pools: BTreeMap<String, Resource<IpPoolSpec>>,
    pub backup_policies: BTreeMap<String, Resource<BackupPolicySpec>>,
    /// The inventory directory (the parent of the file when one file was given): relative
    /// backup directories start from it.
    pub root: PathBuf,
    /// The SSH public keys of each VM's `cloudInit`, files already read, by VM name.
    pub ssh_keys: BTreeMap<String, Vec<String>>,
}

impl Inventory {
    /// Gives diagnostics that know a resource and field (the planner's) the place in the
    /// manifests where that field is written.
    pub fn locate_diagnostics(&self, diagnostics: &mut [Diagnostic]) {
        for diagnostic in diagnostics.iter_mut().filter(|d| d.location.is_none()) {
            let (Some(resource), Some(field)) = (&diagnostic.resource, &diagnostic.field) else {
                continue;
            };
            diagnostic.location = match resource.split_once('/') {
                Some(("VirtualMachine", name)) => self.vms.get(name).map(|r| r.locate(field)),
                Some(("Host", name)) => self.hosts.get(name).map(|r| r.locate(field)),
                Some(("Template", name)) => self.templates.get(name).map(|r| r.locate(field)),
                Some(("IpPool", name)) => self.pools.get(name).map(|r| r.locate(field)),
                Some(("BackupPolicy", name)) => {
                    self.backup_policies.get(name).map(|r| r.locate(field))
                }
                _ => None,
            };
        }
    }
}

/// Loads and validates the inventory at `path`. The inventory is only usable when the returned
/// diagnostics hold no error.
pub fn load_inventory(path: &Path) -> (Inventory, Vec<Diagnostic>) {
    load(path, true)
}

/// [`load_inventory`] without the address allocation check, for the commands that show
/// addresses (`ceso ip list` reports allocation problems itself, next to what takes the space).
pub fn load_inventory_without_address_check(path: &Path) -> (Inventory, Vec<Diagnostic>) {
    load(path, false)
}

fn load(path: &Path, check_addresses: bool) -> (Inventory, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut documents = read_documents(path, &mut diagnostics);
    let mut inventory = Inventory {
        root: if path.is_file() {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            path.to_path_buf()
        },
        ..Inventory::default()
    };
    let mut addresses = BTreeMap::new();
    for host in std::mem::take(&mut documents.hosts) {
        let url = check_host(&host, &mut diagnostics);
        if let Some(url) = url
            && !inventory.hosts.contains_key(&host.name)
        {
            check_unique_address(&host, &url, &mut addresses, &mut diagnostics);
        }
        insert_unique("Host", host, &mut inventory.hosts, &mut diagnostics);
    }
    for vm in std::mem::take(&mut documents.vms) {
        insert_unique("VirtualMachine", vm, &mut inventory.vms, &mut diagnostics);
    }
    for template in std::mem::take(&mut documents.templates) {
        insert_unique(
            "Template",
            template,
            &mut inventory.templates,
            &mut diagnostics,
        );
    }
    for pool in std::mem::take(&mut documents.pools) {
        insert_unique("IpPool", pool, &mut inventory.pools, &mut diagnostics);
    }
    for policy in std::mem::take(&mut documents.backup_policies) {
        insert_unique(
            "BackupPolicy",
            policy,
            &mut inventory.backup_policies,
            &mut diagnostics,
        );
    }
    for policy in inventory.backup_policies.values() {
        check_backup_policy(policy, &inventory.root, &mut diagnostics);
    }
    for template in inventory.templates.values() {
        check_template(template, &inventory.hosts, &documents, &mut diagnostics);
    }
    check_pools(&inventory.pools, &mut diagnostics);
    for vm in inventory.vms.values() {
        let keys = check_vm(vm, &inventory, &documents, &mut diagnostics);
        if !keys.is_empty() {
            inventory.ssh_keys.insert(vm.name.clone(), keys);
        }
    }
    if check_addresses && !has_errors(&diagnostics) {
        // Address problems that need no host (duplicates, outside the subnet, the gateway, an
        // exhausted pool) are found here already; the plan adds what the hosts hold.
        let mut desired = crate::desired::DesiredState::from_inventory(&inventory);
        let mut found =
            crate::plan::assign_addresses(&mut desired, &BTreeMap::new(), &[]).diagnostics;
        inventory.locate_diagnostics(&mut found);
        diagnostics.extend(found);
    }
    diagnostics.sort_by(|a, b| a.location.cmp(&b.location));
    (inventory, diagnostics)
}

/// Loads, validates, and fails with the diagnostics when there is any error.
pub fn load_valid_inventory(path: &Path) -> Result<(Inventory, Vec<Diagnostic>), Vec<Diagnostic>> {
    let (inventory, diagnostics) = load_inventory(path);
    if has_errors(&diagnostics) {
        Err(diagnostics)
    } else {
        Ok((inventory, diagnostics))
    }
}

fn insert_unique<S>(
    kind: &str,
    resource: Resource<S>,
    into: &mut BTreeMap<String, Resource<S>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if let Some(first) = into.get(&resource.name) {
        diagnostics.push(
            Diagnostic::error(format!("duplicate {kind} name {:?}", resource.name))
                .at(Some(resource.locate("metadata.name")))
                .resource(format!("{kind}/{}", resource.name))
                .field("metadata.name")
                .hint(format!(
                    "names must be unique per kind; the first is at {}",
                    first.locate("metadata.name")
                )),
        );
        return;
    }
    into.insert(resource.name.clone(), resource);
}

/// Refuses a second Host document for an ESXi host already declared (same scheme, host and
/// port): each would treat the VMs the other creates as orphans.
fn check_unique_address(
    host: &Resource<HostSpec>,
    url: &reqwest::Url,
    seen: &mut BTreeMap<String, (String, SourceLocation)>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let key = format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(443)
    );
    match seen.get(&key) {
        Some((first, location)) => diagnostics.push(
            Diagnostic::error(format!("{key} is also the address of Host/{first}"))
                .at(Some(host.locate("spec.address")))
                .resource(format!("Host/{}", host.name))
                .field("spec.address")
                .hint(format!(
                    "declare each ESXi host once: two Host documents for one host would each treat the VMs of the other as orphans (Host/{first} is at {location})"
                )),
        ),
        None => {
            seen.insert(key, (host.name.clone(), host.locate("spec.address")));
        }
    }
}

struct Checker<'a, S> {
    resource: &'a Resource<S>,
    address: String,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl<S> Checker<'_, S> {
    fn error(&mut self, field: &str, message: impl Into<String>, hint: impl Into<String>) {
        self.diagnostics.push(
            Diagnostic::error(message)
                .at(Some(self.resource.locate(field)))
                .resource(&self.address)
                .field(field)
                .hint(hint),
        );
    }
}

/// Whether `name` is a valid resource name of at most `max` characters.
pub fn is_valid_name(name: &str, max: usize) -> bool {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let valid_edges = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    !name.is_empty() && name.len() <= max && valid_chars && valid_edges
}

/// What a valid name looks like, for hints.
pub fn name_rule(max: usize) -> String {
    format!(
        "use 1 to {max} letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    )
}

fn check_name<S>(check: &mut Checker<'_, S>, max: usize) {
    let name = check.resource.name.clone();
    if !is_valid_name(&name, max) {
        check.error(
            "metadata.name",
            format!("invalid name {name:?}"),
            name_rule(max),
        );
    }
}

/// Checks a host's settings; returns its normalized address when that is usable.
fn check_host(
    host: &Resource<HostSpec>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<reqwest::Url> {
    let mut check = Checker {
        resource: host,
        address: format!("Host/{}", host.name),
        diagnostics,
    };
    check_name(&mut check, 63);
    let spec = &host.spec;
    let url = check_address(&mut check);
    let plain_http = match &url {
        Some(url) => url.scheme() == "http",
        None => spec.address.trim_start().starts_with("http://"),
    };
    match (&spec.thumbprint, spec.insecure) {
        (Some(thumbprint), false) => {
            // Exactly what the client accepts (and its words for what it refuses).
            if let Err(error) = normalize_thumbprint(thumbprint) {
                let reason = match error {
                    EsxiError::InvalidThumbprint { reason, .. } => reason,
                    _ => "not a SHA-256 thumbprint".to_owned(),
                };
                check.error(
                    "spec.thumbprint",
                    format!("invalid thumbprint: {reason}"),
                    THUMBPRINT_HINT,
                );
            }
        }
        (Some(_), true) => check.error(
            "spec.insecure",
            "`insecure: true` and a `thumbprint` contradict each other",
            "remove `insecure: true` to keep certificate pinning",
        ),
        (None, true) => {}
        (None, false) => {
            if !plain_http {
                check.error(
                    "spec.thumbprint",
                    "missing thumbprint: ceso pins the host's certificate",
                    THUMBPRINT_HINT,
                )
            }
        }
    }
    if spec.username.trim().is_empty() {
        check.error(
            "spec.username",
            "username is empty",
            "write the login user, e.g. root",
        );
    }
    match &spec.password {
        SecretRef::Env(EnvSecret { env }) if env.trim().is_empty() => check.error(
            "spec.password.env",
            "environment variable name is empty",
            "e.g. `password: { env: ESXI_PASSWORD }`",
        ),
        SecretRef::File(FileSecret { file }) if file.as_os_str().is_empty() => check.error(
            "spec.password.file",
            "file path is empty",
            "e.g. `password: { file: secrets/esxi-01.password }`",
        ),
        SecretRef::Store(StoreSecret { secret }) => {
            check_secret_name(&mut check, "spec.password.secret", secret);
        }
        SecretRef::Keyring(KeyringSecret { keyring }) => {
            check_secret_name(&mut check, "spec.password.keyring", keyring);
        }
        _ => {}
    }
    for field in ["datastore", "network"] {
        let value = if field == "datastore" {
            &spec.datastore
        } else {
            &spec.network
        };
        if value.trim().is_empty() {
            check.error(
                &format!("spec.{field}"),
                format!("{field} is empty"),
                "name one that exists on the host",
            );
        }
    }
    if let Some(ssh) = &spec.ssh {
        if let Err(error) = crate::ssh::check_host_key_format(&ssh.host_key) {
            check.error(
                "spec.ssh.hostKey",
                error.to_string(),
                crate::ssh::HOST_KEY_HINT,
            );
        }
        if ssh.port == Some(0) {
            check.error(
                "spec.ssh.port",
                "port 0 is not a port",
                "omit `port` for 22, or write the port the host's SSH server listens on",
            );
        }
    }
    check_access(&mut check);
    url
}

/// Checks `spec.access.allowedNetworks`: at least one entry, each an address or a network
/// with its host bits clear (never `/0`); an entry listed twice is a warning.
fn check_access(check: &mut Checker<'_, HostSpec>) {
    use crate::host::{AllowedNetworkError, network_text, parse_allowed_network};
    let Some(access) = &check.resource.spec.access else {
        return;
    };
    if access.allowed_networks.is_empty() {
        check.error(
            "spec.access.allowedNetworks",
            "the list of allowed networks is empty: no one could reach the host's API or SSH, ceso included",
            "list the addresses or networks (e.g. 10.0.0.0/24) that may manage the host, at least the one ceso runs from; or remove `spec.access` to leave the firewall as it is",
        );
        return;
    }
    let mut seen: BTreeMap<ipnet::IpNet, usize> = BTreeMap::new();
    for (index, entry) in access.allowed_networks.iter().enumerate() {
        let field = format!("spec.access.allowedNetworks[{index}]");
        match parse_allowed_network(entry) {
            Ok(net) => {
                if let Some(first) = seen.insert(net, index) {
                    check.diagnostics.push(
                        Diagnostic::warning(format!(
                            "{} is listed twice (also at allowedNetworks[{first}])",
                            network_text(net)
                        ))
                        .at(Some(check.resource.locate(&field)))
                        .resource(&check.address)
                        .field(&field)
                        .hint("remove one of them"),
                    );
                    seen.insert(net, first);
                }
            }
            Err(error) => {
                let hint = match &error {
                    AllowedNetworkError::Invalid { .. } => {
                        "write an IPv4 or IPv6 address (10.0.0.5, fd00::5) or a network in CIDR notation (10.0.0.0/24, fd00::/64)".to_owned()
                    }
                    AllowedNetworkError::HostBitsSet {
                        network, address, ..
                    } => format!(
                        "write {network} to allow the whole network, or {address} to allow that one address"
                    ),
                    AllowedNetworkError::Everything { .. } => {
                        "list the networks that may manage the host; to let every address in, remove `spec.access` (ceso then leaves the firewall as it is) and allow all addresses in the host client".to_owned()
                    }
                };
                check.error(&field, error.to_string(), hint);
            }
        }
    }
}

/// A `{ secret: NAME }` or `{ keyring: NAME }` name as `ceso secret set` accepts it (the
/// secret itself is only read when connecting).
fn check_secret_name(check: &mut Checker<'_, HostSpec>, field: &str, name: &str) {
    if !crate::secret::is_valid_name(name) {
        check.error(
            field,
            format!("invalid secret name {name:?}"),
            format!(
                "{}, e.g. `password: {{ secret: esxi-01-root }}`",
                crate::secret::NAME_RULE
            ),
        );
    }
}

/// Checks the address as the client will read it; never echoes it, since it may hold a secret.
fn check_address(check: &mut Checker<'_, HostSpec>) -> Option<reqwest::Url> {
    let address = &check.resource.spec.address;
    // `@` has no other use in a host's URL: whatever precedes it is a user, and maybe a password.
    if address.contains('@') {
        check.error(
            "spec.address",
            "the address must not contain a user or password; use `username` and `password`",
            "write only the scheme, host and port, e.g. https://esxi-01.lab.example:443; if a real password was written here, change it",
        );
        return None;
    }
    let url = match normalize_address(address) {
        Ok(url) => url,
        Err(error) => {
            let reason = match error {
                EsxiError::InvalidAddress { reason, .. } => reason,
                _ => "not a usable URL".to_owned(),
            };
            check.error(
                "spec.address",
                format!("invalid address: {reason}"),
                "write a URL such as https://esxi-01.lab.example:443",
            );
            return None;
        }
    };
    if url.scheme() == "http" && !is_loopback(&url) {
        check.error(
            "spec.address",
            "plain http is only allowed to a loopback address",
            "use https:// and pin the host's certificate with `thumbprint`",
        );
        return None;
    }
    Some(url)
}

const THUMBPRINT_HINT: &str = "write the SHA-256 fingerprint of the host certificate as printed by `echo | openssl s_client -connect HOST:443 2>/dev/null | openssl x509 -noout -fingerprint -sha256`";

/// Reports a reference to a `kind` resource that does not exist (unless its document failed).
fn check_reference<S, T>(
    check: &mut Checker<'_, S>,
    field: &str,
    kind: &str,
    name: &str,
    known: &BTreeMap<String, T>,
    documents: &Documents,
) -> bool {
    if known.contains_key(name) {
        return true;
    }
    // A document that failed is reported there, not again by everything that refers to it.
    if documents.has_failed(kind, name) {
        return false;
    }
    let (singular, plural) = match kind {
        "Host" => ("host", "hosts"),
        "Template" => ("template", "templates"),
        "IpPool" => ("IP pool", "IP pools"),
        "BackupPolicy" => ("backup policy", "backup policies"),
        _ => (kind, kind),
    };
    let names: Vec<String> = known.keys().cloned().collect();
    let mut hint = if names.is_empty() {
        format!("declare a `kind: {kind}` document for it")
    } else {
        format!("declared {plural}: {}", names.join(", "))
    };
    if let Some(close) = super::schema::closest(name, &names) {
        hint = format!("did you mean `{close}`? {hint}");
    }
    if let Some(failed) = documents.unidentified_failure(kind) {
        hint.push_str(&format!(
            "; it may be the document at {} that could not be read",
            failed.location
        ));
    }
    check.error(field, format!("unknown {singular} {name:?}"), hint);
    false
}

fn check_cpu<S>(check: &mut Checker<'_, S>, field: &str, cpu: u32) {
    if cpu == 0 || cpu > MAX_CPU {
        check.error(
            field,
            format!("cpu {cpu} is out of range"),
            format!("use 1 to {MAX_CPU}"),
        );
    }
}

fn check_memory<S>(check: &mut Checker<'_, S>, field: &str, memory: super::Size) {
    let mib = memory.mib();
    if mib < 4 || !mib.is_multiple_of(4) || memory.bytes() != mib << 20 {
        check.error(
            field,
            format!("memory {memory} is not a multiple of 4MiB"),
            "ESXi allocates memory in 4MiB steps, e.g. 512MiB or 4GiB",
        );
    }
}

fn check_guest_id<S>(check: &mut Checker<'_, S>, field: &str, guest_id: &str) {
    if guest_id.is_empty()
        || !guest_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        check.error(
            field,
            format!("invalid guestId {guest_id:?}"),
            "use a vSphere guest OS identifier such as ubuntu64Guest or otherGuest64",
        );
    }
}

/// Checks a VM; returns its SSH public keys (files read).
fn check_vm(
    vm: &Resource<VirtualMachineSpec>,
    inventory: &Inventory,
    documents: &Documents,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let mut check = Checker {
        resource: vm,
        address: format!("VirtualMachine/{}", vm.name),
        diagnostics,
    };
    check_name(&mut check, MAX_VM_NAME);
    let spec = &vm.spec;
    check_reference(
        &mut check,
        "spec.host",
        "Host",
        &spec.host,
        &inventory.hosts,
        documents,
    );
    let template = spec.template.as_ref().and_then(|name| {
        check_reference(
            &mut check,
            "spec.template",
            "Template",
            name,
            &inventory.templates,
            documents,
        )
        .then(|| &inventory.templates[name])
    });
    if let Some(template) = template
        && template.spec.host != spec.host
    {
        check.error(
            "spec.template",
            format!(
                "template {:?} is on host {:?}, the VM on host {:?}",
                template.name, template.spec.host, spec.host
            ),
            "a template disk is copied on its own host: import the image on this VM's host too (`ceso template import FILE --name NAME --host HOST`)",
        );
    }
    if spec.template.is_some() && spec.source.is_some() {
        check.error(
            "spec.source",
            "a VM is made from a template or cloned from a source, not both",
            "remove `template` or `source`",
        );
    }
    if let Some(source) = &spec.source
        && (source.vm == vm.name || source.vm.trim().is_empty())
    {
        check.error(
            "spec.source.vm",
            format!("invalid source {:?}", source.vm),
            "name another VM of the same host",
        );
    }
    let inherits = spec.template.is_some() || spec.source.is_some();
    match spec.cpu {
        Some(cpu) => check_cpu(&mut check, "spec.cpu", cpu),
        None if !inherits => check.error(
            "spec",
            "missing field `cpu`",
            "declare `cpu` (or a `template`, whose cpu is the default)",
        ),
        None => {}
    }
    match spec.memory {
        Some(memory) => check_memory(&mut check, "spec.memory", memory),
        None if !inherits => check.error(
            "spec",
            "missing field `memory`",
            "declare `memory` (or a `template`, whose memory is the default)",
        ),
        None => {}
    }
    if spec.disks.len() > MAX_DISKS {
        check.error(
            "spec.disks",
            format!("{} disks declared", spec.disks.len()),
            format!("at most {MAX_DISKS} disks fit on the VM's SCSI controller"),
        );
    }
    if let Some(networks) = &spec.networks {
        if networks.len() > MAX_NICS {
            check.error(
                "spec.networks",
                format!("{} network adapters declared", networks.len()),
                format!("a VM has at most {MAX_NICS} network adapters"),
            );
        }
        for (index, network) in networks.iter().enumerate() {
            let field = |name: &str| format!("spec.networks[{index}].{name}");
            if network
                .port_group
                .as_deref()
                .is_some_and(|p| p.trim().is_empty())
            {
                check.error(
                    &field("portGroup"),
                    "port group name is empty",
                    "name a port group of the host, or omit it for the host's default network",
                );
            }
            if let Some(pool) = &network.pool {
                check_reference(
                    &mut check,
                    &field("pool"),
                    "IpPool",
                    pool,
                    &inventory.pools,
                    documents,
                );
            }
            match network.ip.as_deref().map(str::trim) {
                None => {
                    if network.pool.is_some() {
                        check.error(
                            &field("ip"),
                            "a pool is named but no `ip`",
                            "write `ip: auto` to take an address from the pool",
                        );
                    }
                }
                Some("auto") => {
                    if network.pool.is_none() {
                        check.error(
                            &field("pool"),
                            "`ip: auto` needs the pool to take the address from",
                            "add `pool: NAME` naming an IpPool",
                        );
                    }
                }
                Some(text) => {
                    if let Err(hint) = parse_interface_address(text) {
                        check.error(&field("ip"), format!("invalid ip {text:?}"), hint);
                    }
                }
            }
        }
    }
    if let Some(guest_id) = &spec.guest_id {
        check_guest_id(&mut check, "spec.guestId", guest_id);
    }
    if let Some(policy) = &spec.backup_policy {
        check_reference(
            &mut check,
            "spec.backupPolicy",
            "BackupPolicy",
            policy,
            &inventory.backup_policies,
            documents,
        );
    }
    if spec
        .datastore
        .as_deref()
        .is_some_and(|d| d.trim().is_empty())
    {
        check.error(
            "spec.datastore",
            "datastore is empty",
            "omit it to use the host's default datastore",
        );
    }
    let wants_cloud_init = spec.template.is_some()
        || spec.source.is_some()
        || spec.networks.iter().flatten().any(|n| n.ip.is_some());
    let Some(cloud_init) = &spec.cloud_init else {
        // The guest is still told its host name: the VM's name.
        if wants_cloud_init && let Err(reason) = check_hostname(&vm.name) {
            check.error(
                "metadata.name",
                format!(
                    "{:?} is not a valid host name for the guest: {reason}",
                    vm.name
                ),
                "rename the VM, or set `cloudInit: { hostname: ... }` (letters, digits and '-')",
            );
        }
        return vec![];
    };
    let hostname = cloud_init.hostname.as_deref().unwrap_or(&vm.name);
    if let Err(reason) = check_hostname(hostname) {
        let field = if cloud_init.hostname.is_some() {
            "spec.cloudInit.hostname"
        } else {
            "metadata.name"
        };
        check.error(
            field,
            format!("{hostname:?} is not a valid host name: {reason}"),
            "use letters, digits and '-' in dot-separated labels of at most 63 characters, e.g. web-01 or web-01.lab.example",
        );
    }
    for (index, package) in cloud_init.packages.iter().enumerate() {
        if package.trim().is_empty() || package.contains(char::is_whitespace) {
            check.error(
                &format!("spec.cloudInit.packages[{index}]"),
                format!("invalid package name {package:?}"),
                "one package name per entry, e.g. nginx",
            );
        }
    }
    for (path, value) in [("users", serde_json::Value::from(cloud_init.users.clone()))]
        .into_iter()
        .chain(cloud_init.user_data.clone().map(|v| ("userData", v)))
    {
        if let Some(inner) = private_key_path(&value) {
            check.error(
                &format!("spec.cloudInit.{path}{inner}"),
                "a private key in a manifest: manifests live in git and private keys never belong there",
                "remove it; give the guest only public keys (`sshAuthorizedKeys`), and generate host or deploy keys in the guest",
            );
        }
    }
    let input = UserDataInput {
        hostname,
        users: &cloud_init.users,
        packages: &cloud_init.packages,
        extra: cloud_init.user_data.as_ref(),
    };
    if let Err(error) = user_data(&input) {
        let (field, hint) = match &error {
            UserDataError::Password { path } => (
                format!("spec.cloudInit.{path}"),
                "remove the password; log in with `sshAuthorizedKeys`",
            ),
            UserDataError::ExtraNotMapping { .. } => (
                "spec.cloudInit.userData".to_owned(),
                "write cloud-config keys, e.g. `userData: { runcmd: [...] }`",
            ),
            UserDataError::NotAList { key, .. } | UserDataError::Conflict { key, .. } => (
                format!("spec.cloudInit.userData.{key}"),
                "see docs/templates-and-cloud-init.md for how userData is merged",
            ),
            UserDataError::Yaml(_) => ("spec.cloudInit".to_owned(), "simplify userData"),
        };
        check.error(&field, error.to_string(), hint);
    }
    let base = vm.file.parent().unwrap_or(Path::new("."));
    let mut keys = Vec::new();
    for (index, source) in cloud_init.ssh_authorized_keys.iter().enumerate() {
        let field = format!("spec.cloudInit.sshAuthorizedKeys[{index}]");
        match source {
            SshKeySource::Inline(key) => match check_public_key(key) {
                Ok(()) => keys.push(key.trim().to_owned()),
                Err(reason) => check.error(&field, reason, SSH_KEY_HINT),
            },
            SshKeySource::File(FileSecret { file }) => {
                match read_public_keys(&base.join(expand_home(file))) {
                    Ok(found) => keys.extend(found),
                    Err(reason) => check.error(&format!("{field}.file"), reason, SSH_KEY_HINT),
                }
            }
        }
    }
    keys
}

/// The path (`[1].content`) of the first string in `value` that holds a private key.
fn private_key_path(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) if text.contains("PRIVATE KEY") => Some(String::new()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| private_key_path(item).map(|rest| format!("[{i}]{rest}"))),
        serde_json::Value::Object(map) => map
            .iter()
            .find_map(|(key, item)| private_key_path(item).map(|rest| format!(".{key}{rest}"))),
        _ => None,
    }
}

const SSH_KEY_HINT: &str = "give a public key (`ssh-ed25519 AAAA... comment`) or the `.pub` file of a key pair, e.g. `{ file: ~/.ssh/id_ed25519.pub }`";

/// `~/x` as a path under the home directory.
pub(super) fn expand_home(path: &Path) -> std::path::PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// Whether a line looks like an OpenSSH public key (`type base64 [comment]`). Never echoes the
/// text: a private key pasted by mistake must not end up in a log.
fn check_public_key(key: &str) -> Result<(), String> {
    let key = key.trim();
    if key.contains("PRIVATE KEY") {
        return Err("this is a private key: never put a private key in a manifest".to_owned());
    }
    let mut fields = key.split_whitespace();
    let kind = fields.next().unwrap_or_default();
    let body = fields.next().unwrap_or_default();
    let known_kind = kind.starts_with("ssh-")
        || kind.starts_with("ecdsa-sha2-")
        || kind.starts_with("sk-ssh-")
        || kind.starts_with("sk-ecdsa-");
    let base64_body = body.len() >= 16
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
    if known_kind && base64_body {
        Ok(())
    } else {
        Err("not an OpenSSH public key".to_owned())
    }
}

/// The key lines of a public key file (blank lines and `#` comments skipped).
fn read_public_keys(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read public key file {}: {e}", path.display()))?;
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        check_public_key(line)
            .map_err(|reason| format!("{}, line {}: {reason}", path.display(), number + 1))?;
        keys.push(line.to_owned());
    }
    if keys.is_empty() {
        return Err(format!("{} holds no public key", path.display()));
    }
    Ok(keys)
}

/// Checks an RFC 1123 host name (optionally fully qualified).
fn check_hostname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each label has 1 to 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("only letters, digits and '-'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

/// Parses an adapter's static address, `192.168.1.100/24`; the error is a hint.
pub(crate) fn parse_interface_address(text: &str) -> Result<Ipv4Net, String> {
    if let Ok(net) = text.parse::<Ipv4Net>() {
        return Ok(net);
    }
    if text.parse::<Ipv4Addr>().is_ok() {
        return Err(format!(
            "write the prefix length too, e.g. {text}/24 (or `ip: auto` with a pool)"
        ));
    }
    Err(
        "write `auto` (with `pool`) or an IPv4 address with prefix length, e.g. 192.168.1.100/24"
            .to_owned(),
    )
}

fn check_template(
    template: &Resource<TemplateSpec>,
    hosts: &BTreeMap<String, Resource<HostSpec>>,
    documents: &Documents,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut check = Checker {
        resource: template,
        address: format!("Template/{}", template.name),
        diagnostics,
    };
    check_name(&mut check, MAX_VM_NAME);
    let spec = &template.spec;
    check_reference(
        &mut check,
        "spec.host",
        "Host",
        &spec.host,
        hosts,
        documents,
    );
    if crate::plan::datastore_of(&spec.disk).is_none_or(str::is_empty)
        || !spec.disk.ends_with(".vmdk")
    {
        check.error(
            "spec.disk",
            format!("{:?} is not a datastore path of a disk", spec.disk),
            "write it as the host shows it, e.g. \"[datastore1] ubuntu-24.04/ubuntu-24.04.vmdk\"",
        );
    }
    check_cpu(&mut check, "spec.cpu", spec.cpu);
    check_memory(&mut check, "spec.memory", spec.memory);
    check_guest_id(&mut check, "spec.guestId", &spec.guest_id);
}

/// One problem with a pool's value: the field and what to say.
pub(crate) struct PoolProblem {
    pub field: String,
    pub message: String,
    pub hint: String,
}

/// Turns a pool manifest into the IPAM model; the problems of values that do not parse.
pub(crate) fn parse_pool(name: &str, spec: &IpPoolSpec) -> Result<ipam::Pool, Vec<PoolProblem>> {
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String, hint: &str| {
        problems.push(PoolProblem {
            field,
            message,
            hint: hint.to_owned(),
        })
    };
    let network = match spec.cidr.trim().parse::<Ipv4Net>() {
        Ok(net) => Some(net),
        Err(_) => {
            problem(
                "spec.cidr".into(),
                format!("invalid cidr {:?}", spec.cidr),
                "write an IPv4 network with prefix length, e.g. 192.168.1.0/24",
            );
            None
        }
    };
    let mut address = |field: String, text: &str| match text.trim().parse::<Ipv4Addr>() {
        Ok(address) => Some(address),
        Err(_) => {
            problem(
                field,
                format!("invalid IPv4 address {text:?}"),
                "write a plain address such as 192.168.1.1",
            );
            None
        }
    };
    let gateway = spec
        .gateway
        .as_deref()
        .map(|g| address("spec.gateway".into(), g));
    let ranges: Vec<Option<ipam::AddressRange>> = spec
        .ranges
        .iter()
        .enumerate()
        .map(|(i, range)| {
            let start = address(format!("spec.ranges[{i}].start"), &range.start);
            let end = address(format!("spec.ranges[{i}].end"), &range.end);
            Some(ipam::AddressRange {
                start: start?,
                end: end?,
            })
        })
        .collect();
    let reservations: Vec<Option<Ipv4Addr>> = spec
        .reservations
        .iter()
        .enumerate()
        .map(|(i, r)| address(format!("spec.reservations[{i}]"), r.address()))
        .collect();
    let mut nameservers = Vec::new();
    for (i, server) in spec.nameservers.iter().enumerate() {
        match server.trim().parse::<IpAddr>() {
            Ok(ip) => nameservers.push(ip),
            Err(_) => problem(
                format!("spec.nameservers[{i}]"),
                format!("invalid nameserver {server:?}"),
                "write an IP address such as 192.168.1.1",
            ),
        }
    }
    for (i, domain) in spec.search_domains.iter().enumerate() {
        if check_hostname(domain).is_err() {
            problem(
                format!("spec.searchDomains[{i}]"),
                format!("invalid search domain {domain:?}"),
                "write a DNS domain such as lab.example",
            );
        }
    }
    let (Some(network), true) = (network, problems.is_empty()) else {
        return Err(problems);
    };
    Ok(ipam::Pool {
        name: name.to_owned(),
        network,
        gateway: gateway.flatten(),
        nameservers,
        search: spec.search_domains.clone(),
        ranges: ranges.into_iter().flatten().collect(),
        reservations: reservations.into_iter().flatten().collect(),
    })
}

fn check_backup_policy(
    policy: &Resource<BackupPolicySpec>,
    inventory_dir: &Path,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut check = Checker {
        resource: policy,
        address: format!("BackupPolicy/{}", policy.name),
        diagnostics,
    };
    check_name(&mut check, 63);
    if let Err(problems) = parse_backup_policy(&policy.name, &policy.spec, inventory_dir) {
        for problem in problems {
            check.error(problem.field, problem.message, problem.hint);
        }
    }
}

fn check_pools(pools: &BTreeMap<String, Resource<IpPoolSpec>>, diagnostics: &mut Vec<Diagnostic>) {
    let mut parsed = Vec::new();
    for pool in pools.values() {
        let mut check = Checker {
            resource: pool,
            address: format!("IpPool/{}", pool.name),
            diagnostics,
        };
        check_name(&mut check, 63);
        match parse_pool(&pool.name, &pool.spec) {
            Ok(model) => parsed.push(model),
            Err(problems) => {
                for problem in problems {
                    check.error(&problem.field, problem.message, problem.hint);
                }
            }
        }
    }
    for error in ipam::check_pools(&parsed) {
        let Some(pool) = error.pool.as_ref().and_then(|name| pools.get(name)) else {
            continue;
        };
        let field = format!("spec.{}", error.field);
        diagnostics.push(
            Diagnostic::error(error.message)
                .at(Some(pool.locate(&field)))
                .resource(format!("IpPool/{}", pool.name))
                .field(field)
                .hint(error.hint),
        );
    }
}
