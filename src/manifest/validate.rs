//! Cross-document checks (unique names, references, value ranges) and the result: a validated
//! [`Inventory`].

use std::collections::BTreeMap;
use std::path::Path;

use super::load::{Documents, Resource, read_documents};
use super::types::{EnvSecret, FileSecret, HostSpec, SecretRef, VirtualMachineSpec};
use crate::diagnostic::{Diagnostic, SourceLocation, has_errors};
use crate::esxi::{EsxiError, is_loopback, normalize_address, normalize_thumbprint};

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
}

/// Loads and validates the inventory at `path`. The inventory is only usable when the returned
/// diagnostics hold no error.
pub fn load_inventory(path: &Path) -> (Inventory, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut documents = read_documents(path, &mut diagnostics);
    let mut inventory = Inventory::default();
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
    for vm in inventory.vms.values() {
        check_vm(vm, &inventory.hosts, &documents, &mut diagnostics);
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

fn check_name<S>(check: &mut Checker<'_, S>, max: usize) {
    let name = check.resource.name.clone();
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let valid_edges = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > max || !valid_chars || !valid_edges {
        check.error(
            "metadata.name",
            format!("invalid name {name:?}"),
            format!(
                "use 1 to {max} letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            ),
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
    url
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

fn check_vm(
    vm: &Resource<VirtualMachineSpec>,
    hosts: &BTreeMap<String, Resource<HostSpec>>,
    documents: &Documents,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut check = Checker {
        resource: vm,
        address: format!("VirtualMachine/{}", vm.name),
        diagnostics,
    };
    check_name(&mut check, MAX_VM_NAME);
    let spec = &vm.spec;
    // A host whose document failed is reported there, not again by every VM on it.
    if !hosts.contains_key(&spec.host) && !documents.has_failed("Host", &spec.host) {
        let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
        let mut hint = if known.is_empty() {
            "declare a `kind: Host` document for it".to_owned()
        } else {
            format!("declared hosts: {}", known.join(", "))
        };
        if let Some(failed) = documents.unidentified_failure("Host") {
            hint.push_str(&format!(
                "; it may be the document at {} that could not be read",
                failed.location
            ));
        }
        check.error("spec.host", format!("unknown host {:?}", spec.host), hint);
    }
    if spec.cpu == 0 || spec.cpu > MAX_CPU {
        check.error(
            "spec.cpu",
            format!("cpu {} is out of range", spec.cpu),
            format!("use 1 to {MAX_CPU}"),
        );
    }
    let memory = spec.memory.mib();
    if memory < 4 || !memory.is_multiple_of(4) {
        check.error(
            "spec.memory",
            format!("memory {} is not a multiple of 4MiB", spec.memory),
            "ESXi allocates memory in 4MiB steps, e.g. 512MiB or 4GiB",
        );
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
            if network
                .port_group
                .as_deref()
                .is_some_and(|p| p.trim().is_empty())
            {
                check.error(
                    &format!("spec.networks[{index}].portGroup"),
                    "port group name is empty",
                    "name a port group of the host, or omit it for the host's default network",
                );
            }
        }
    }
    if spec.guest_id.is_empty()
        || !spec
            .guest_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        check.error(
            "spec.guestId",
            format!("invalid guestId {:?}", spec.guest_id),
            "use a vSphere guest OS identifier such as ubuntu64Guest or otherGuest64",
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
}
