//! `ceso init DIR --host ADDRESS`: scaffolds an inventory ready to commit. Shows the host's
//! certificate and has its thumbprint confirmed, reads the host's datastores and port groups
//! when it can log in, and writes a Host, an IpPool, the Ubuntu template and an example VM.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use clap::Args;
use ipnet::Ipv4Net;

use super::connect::{connect, disconnect, observe};
use super::files::write_atomically;
use super::{CommandError, Outcome, SCHEMA_FILE, ask_yes, manifest_schema_text};
use crate::desired::HostConnection;
use crate::esxi::{EsxiError, HostCertificate, fetch_certificate, normalize_thumbprint};
use crate::host::{Firmware, ObservedHost, ObservedVm, TEMPLATE_KEY};
use crate::manifest::{
    API_VERSION, Document, EnvSecret, Metadata, SecretRef, Size, TemplateSpec, is_valid_name,
    name_rule,
};

/// The template the inventory starts with, and the cloud image it is imported from.
const TEMPLATE_NAME: &str = "ubuntu-24.04";
const OVA_FILE: &str = "ubuntu-24.04-server-cloudimg-amd64.ova";
const OVA_URL: &str =
    "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.ova";
/// The first line of the comment of a Template manifest written before the import: `ceso
/// template import` replaces a manifest that has it.
pub(crate) const PLACEHOLDER_MARKER: &str = "# Placeholder written by `ceso init`";
const POOL_NAME: &str = "lan";
const VM_NAME: &str = "example";
/// The Host's name when the address gives none (an IP address).
const DEFAULT_HOST_NAME: &str = "esxi-01";
/// What the ESXi installer names the local datastore and the VM port group.
const ESXI_DATASTORE: &str = "datastore1";
const ESXI_NETWORK: &str = "VM Network";
/// Public keys used when no `--ssh-key` is given: the first one of `~/.ssh` that exists.
const DEFAULT_SSH_KEYS: [&str; 3] = ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"];
const MIB: u64 = 1 << 20;

/// Arguments of `ceso init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The inventory directory to write (created when missing).
    pub dir: PathBuf,
    /// The ESXi host: HOST, HOST:PORT or https://HOST[:PORT] (port 443 by default).
    #[arg(long, value_name = "ADDRESS")]
    pub host: String,
    /// Name of the Host resource [default: the first label of a host name, else esxi-01].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The SHA-256 thumbprint you read on the host (DCUI, ESXi Shell): the certificate must
    /// match it, and nothing is asked.
    #[arg(long, value_name = "SHA256")]
    pub thumbprint: Option<String>,
    /// Trust the certificate shown without asking (needed without a terminal, unless
    /// --thumbprint is given).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Login user written into the Host.
    #[arg(long, default_value = "root")]
    pub username: String,
    /// The environment variable holding the password: the Host says `password: { env: VAR }`.
    /// When it is set, ceso logs in to read the host's datastores and port groups.
    #[arg(long, value_name = "VAR", default_value = "ESXI_PASSWORD")]
    pub password_env: String,
    /// Default datastore of new VMs [default: datastore1 if the host has it, else its first].
    #[arg(long, value_name = "NAME")]
    pub datastore: Option<String>,
    /// Default port group of VM adapters [default: "VM Network" if the host has it, else its
    /// first].
    #[arg(long, value_name = "PORTGROUP")]
    pub network: Option<String>,
    /// The subnet of the VMs' IpPool.
    #[arg(long, value_name = "CIDR", default_value = "192.168.1.0/24")]
    pub subnet: Ipv4Net,
    /// The subnet's gateway [default: its first address].
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,
    /// A DNS server of the pool (repeatable) [default: the gateway].
    #[arg(long, value_name = "IP")]
    pub dns: Vec<IpAddr>,
    /// A public key file for the example VM (repeatable) [default: ~/.ssh/id_ed25519.pub,
    /// id_ecdsa.pub or id_rsa.pub, the first that exists].
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Vec<PathBuf>,
    /// Overwrite files of the inventory that already exist.
    #[arg(long)]
    pub force: bool,
}

/// `ceso init`
pub async fn run(args: InitArgs) -> Result<Outcome, CommandError> {
    let request = Request::from_args(&args)?;
    refuse_existing(&args.dir, args.force)?;
    let certificate = fetch_certificate(&args.host)
        .await
        .map_err(|e| unreachable(&args.host, e))?;
    print!("{}", describe_certificate(&request.address, &certificate));
    confirm(&certificate, &request)?;
    let facts = read_host(&args, &request, &certificate).await?;
    let files = compose(&request, &certificate, &facts);
    for file in &files {
        write_atomically(&args.dir.join(file.path), &file.text)?;
    }
    check_written(&args.dir)?;
    print!("{}", summary(&args.dir, &request, &facts, &files));
    Ok(Outcome::Success)
}

/// What the arguments ask for, checked before anything touches the network or the disk.
struct Request {
    host_name: String,
    /// The address as the Host manifest writes it.
    address: String,
    username: String,
    password_env: String,
    expected_thumbprint: Option<String>,
    assume_yes: bool,
    pool: PoolSettings,
    keys: SshKeys,
}

struct PoolSettings {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    nameservers: Vec<IpAddr>,
    /// Where `ip: auto` addresses come from.
    range: (Ipv4Addr, Ipv4Addr),
}

/// The example VM's public keys and where they came from.
struct SshKeys {
    keys: Vec<String>,
    /// The default key file used because no `--ssh-key` was given.
    found: Option<PathBuf>,
}

impl Request {
    fn from_args(args: &InitArgs) -> Result<Self, CommandError> {
        let url = crate::esxi::normalize_address(&args.host).map_err(|e| {
            CommandError::with_hint(
                e.to_string(),
                "--host takes HOST, HOST:PORT or https://HOST[:PORT]",
            )
        })?;
        let host_name = match &args.name {
            Some(name) => name.clone(),
            None => default_host_name(&url),
        };
        if !is_valid_name(&host_name, 63) {
            return Err(CommandError::with_hint(
                format!("invalid Host name {host_name:?}"),
                format!("pass --name: {}", name_rule(63)),
            ));
        }
        if args.username.trim().is_empty() {
            return Err(CommandError::new("--username is empty"));
        }
        let variable_ok = args
            .password_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && args
                .password_env
                .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if !variable_ok {
            return Err(CommandError::with_hint(
                format!("invalid variable name {:?}", args.password_env),
                "--password-env takes the name of an environment variable, e.g. ESXI_PASSWORD (never the password itself)",
            ));
        }
        let expected_thumbprint = args
            .thumbprint
            .as_deref()
            .map(normalize_thumbprint)
            .transpose()
            .map_err(|e| {
                CommandError::with_hint(
                    e.to_string(),
                    "on the host: `openssl x509 -in /etc/vmware/ssl/rui.crt -noout -fingerprint -sha256`",
                )
            })?;
        Ok(Self {
            host_name,
            address: manifest_address(&url),
            username: args.username.clone(),
            password_env: args.password_env.clone(),
            expected_thumbprint,
            assume_yes: args.yes,
            pool: PoolSettings::new(args.subnet, args.gateway, &args.dns)?,
            keys: SshKeys::read(&args.ssh_key)?,
        })
    }
}

/// The first label of a host name (`esxi-01` of `esxi-01.lab.example`); `esxi-01` for an IP
/// address.
fn default_host_name(url: &reqwest::Url) -> String {
    url.domain()
        .and_then(|domain| domain.split('.').next())
        .filter(|label| is_valid_name(label, 63) && !label.eq_ignore_ascii_case("localhost"))
        .map_or_else(|| DEFAULT_HOST_NAME.to_owned(), str::to_lowercase)
}

/// `https://host[:port]`, with the path only when it is not the default `/sdk`.
fn manifest_address(url: &reqwest::Url) -> String {
    let mut address = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        let _ = write!(address, ":{port}");
    }
    if url.path() != "/sdk" {
        address.push_str(url.path());
    }
    address
}

impl PoolSettings {
    fn new(
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        dns: &[IpAddr],
    ) -> Result<Self, CommandError> {
        if subnet.trunc() != subnet {
            return Err(CommandError::with_hint(
                format!("--subnet {subnet} has host bits set"),
                format!("give the network: --subnet {}", subnet.trunc()),
            ));
        }
        if subnet.prefix_len() > 29 {
            return Err(CommandError::with_hint(
                format!("--subnet {subnet} is too small for a gateway and VMs"),
                "give a subnet of at least 8 addresses (a prefix of /29 or shorter)",
            ));
        }
        let first = u32::from(subnet.network()) + 1;
        let last = u32::from(subnet.broadcast()) - 1;
        let gateway = gateway.unwrap_or(Ipv4Addr::from(first));
        if !(first..=last).contains(&u32::from(gateway)) {
            return Err(CommandError::with_hint(
                format!("--gateway {gateway} is not a host address of {subnet}"),
                format!(
                    "give the router's address in the subnet, e.g. {}",
                    Ipv4Addr::from(first)
                ),
            ));
        }
        // .100 to .199 of the first /24 (as lab networks tend to keep them), else the upper half.
        let range = if subnet.prefix_len() <= 24 {
            (
                u32::from(subnet.network()) + 100,
                u32::from(subnet.network()) + 199,
            )
        } else {
            (first + (last - first).div_ceil(2), last)
        };
        let range = if (range.0..=range.1).contains(&u32::from(gateway)) {
            // Keep the gateway out of the range (the pool skips it anyway, but say it plainly).
            if u32::from(gateway) - range.0 >= range.1 - u32::from(gateway) {
                (range.0, u32::from(gateway) - 1)
            } else {
                (u32::from(gateway) + 1, range.1)
            }
        } else {
            range
        };
        Ok(Self {
            subnet,
            gateway,
            nameservers: if dns.is_empty() {
                vec![IpAddr::V4(gateway)]
            } else {
                dns.to_vec()
            },
            range: (Ipv4Addr::from(range.0), Ipv4Addr::from(range.1)),
        })
    }
}

impl SshKeys {
    /// The public keys of `files`, or of the first default key file of `~/.ssh` when none is
    /// given. Key lines are checked with the manifest when it is validated.
    fn read(files: &[PathBuf]) -> Result<Self, CommandError> {
        let (files, found) = if files.is_empty() {
            let found = std::env::var_os("HOME").and_then(|home| {
                DEFAULT_SSH_KEYS
                    .iter()
                    .map(|name| Path::new(&home).join(".ssh").join(name))
                    .find(|path| path.is_file())
            });
            (found.iter().cloned().collect(), found)
        } else {
            (files.to_vec(), None)
        };
        let keys = super::vm::read_public_keys(&files)?;
        Ok(Self { keys, found })
    }
}

/// The files `ceso init` writes, relative to the inventory directory.
const FILES: [&str; 6] = [
    "hosts.yaml",
    "pools.yaml",
    "templates/ubuntu-24.04.yaml",
    "vms/example.yaml",
    ".gitignore",
    "schemas/ceso-v1.schema.json",
];

/// Refuses to overwrite files that exist, naming them all, unless `force`.
fn refuse_existing(dir: &Path, force: bool) -> Result<(), CommandError> {
    if dir.exists() && !dir.is_dir() {
        return Err(CommandError::new(format!(
            "{} exists and is not a directory",
            dir.display()
        )));
    }
    let existing: Vec<String> = FILES
        .iter()
        .map(|file| dir.join(file))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if existing.is_empty() || force {
        return Ok(());
    }
    Err(CommandError::with_hint(
        format!(
            "{} already holds files ceso init writes: {}",
            dir.display(),
            existing.join(", ")
        ),
        "choose a new directory, move them away, or pass --force to overwrite them",
    ))
}

/// The certificate fetch failed: most often the address or a firewall.
fn unreachable(host: &str, error: EsxiError) -> CommandError {
    let hint = match &error {
        EsxiError::Network { .. } => format!(
            "check that {host} is the ESXi host's name or address and that its port 443 (or the \
             port given) is reachable from here: DNS, firewall, VPN"
        ),
        _ => "--host takes HOST, HOST:PORT or https://HOST[:PORT]".to_owned(),
    };
    CommandError::with_hint(
        format!("cannot read the certificate of {host}: {error}"),
        hint,
    )
}

/// The certificate as a person checks it, with where to find the thumbprint on the host.
fn describe_certificate(address: &str, certificate: &HostCertificate) -> String {
    let mut text = format!("The host {address} presents this certificate:\n");
    match &certificate.fields {
        Some(fields) => {
            let self_signed = if certificate.is_self_signed() {
                " (self-signed)"
            } else {
                ""
            };
            let now = jiff::Timestamp::now();
            let validity = if now > fields.not_after {
                " EXPIRED"
            } else if now < fields.not_before {
                " NOT VALID YET"
            } else {
                ""
            };
            let _ = writeln!(text, "  subject:  {}", or_empty(&fields.subject));
            let _ = writeln!(
                text,
                "  issuer:   {}{self_signed}",
                or_empty(&fields.issuer)
            );
            let _ = writeln!(
                text,
                "  valid:    {} to {}{validity}",
                utc(fields.not_before),
                utc(fields.not_after)
            );
        }
        None => text.push_str("  (its subject, issuer and validity could not be decoded)\n"),
    }
    let _ = writeln!(text, "  SHA-256:  {}", certificate.thumbprint);
    let _ = writeln!(
        text,
        "  SHA-1:    {} (older DCUIs show this one)",
        certificate.thumbprint_sha1
    );
    text.push_str(
        "Compare the thumbprint with what the host itself shows: the DCUI (F2 > View Support \
         Information), or in the ESXi Shell\n  openssl x509 -in /etc/vmware/ssl/rui.crt -noout \
         -fingerprint -sha256\nA different thumbprint means you are not talking to that host \
         (or its certificate was replaced).\n",
    );
    text
}

fn or_empty(name: &str) -> &str {
    if name.is_empty() { "(empty)" } else { name }
}

fn utc(timestamp: jiff::Timestamp) -> String {
    timestamp.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The thumbprint is pinned only once confirmed: by `--thumbprint`, `--yes`, or a `yes` typed
/// on the terminal.
fn confirm(certificate: &HostCertificate, request: &Request) -> Result<(), CommandError> {
    if let Some(expected) = &request.expected_thumbprint {
        if *expected != certificate.thumbprint {
            return Err(CommandError::with_hint(
                format!(
                    "the certificate of {} does NOT match --thumbprint: expected {expected}, the \
                     host presented {}; nothing was written",
                    request.address, certificate.thumbprint
                ),
                "you may not be talking to the host you think (man-in-the-middle), or its \
                 certificate was regenerated: read the thumbprint on the host's console again",
            ));
        }
        println!("The certificate matches --thumbprint.");
        return Ok(());
    }
    if request.assume_yes {
        println!("Trusting this certificate without asking (--yes).");
        return Ok(());
    }
    match ask_yes("Does the host show the same SHA-256 thumbprint? Type yes to pin it: ")? {
        Some(true) => Ok(()),
        Some(false) => Err(CommandError::new(
            "the thumbprint was not confirmed; nothing was written",
        )),
        None => Err(CommandError::with_hint(
            "cannot ask to confirm the thumbprint: standard input is not a terminal; nothing was \
             written",
            format!(
                "compare the thumbprint above with the host's, then run again with \
                 `--thumbprint {}` (checked) or `--yes`",
                certificate.thumbprint
            ),
        )),
    }
}

/// What the inventory says about the host: read from it when logged in, else flags and ESXi's
/// defaults.
struct HostFacts {
    datastore: String,
    network: String,
    /// Whether ceso logged in, and what it saw.
    observed: Option<ObservedHost>,
    /// The VM holding the template on the host, when it was imported before.
    template: Option<ObservedVm>,
}

/// Logs in when the password variable is set, and picks the datastore and port group.
async fn read_host(
    args: &InitArgs,
    request: &Request,
    certificate: &HostCertificate,
) -> Result<HostFacts, CommandError> {
    if std::env::var_os(&request.password_env).is_none() {
        return Ok(HostFacts {
            datastore: args
                .datastore
                .clone()
                .unwrap_or_else(|| ESXI_DATASTORE.to_owned()),
            network: args
                .network
                .clone()
                .unwrap_or_else(|| ESXI_NETWORK.to_owned()),
            observed: None,
            template: None,
        });
    }
    let connection = HostConnection {
        address: request.address.clone(),
        thumbprint: Some(certificate.thumbprint.clone()),
        insecure: false,
        username: request.username.clone(),
        password: SecretRef::Env(EnvSecret {
            env: request.password_env.clone(),
        }),
        secret_base: args.dir.clone(),
    };
    let hosts = connect(&BTreeMap::from([(request.host_name.clone(), connection)]))
        .await
        .map_err(|e| match e {
            CommandError::Failed { message, hint } => CommandError::Failed {
                message,
                hint: Some(hint.unwrap_or_else(|| {
                    format!(
                        "check --username and ${}; or unset it to write the inventory without \
                         logging in",
                        request.password_env
                    )
                })),
            },
            other => other,
        })?;
    let observed = observe(&hosts, &Default::default()).await;
    disconnect(&hosts).await;
    let observed = observed?
        .remove(&request.host_name)
        .ok_or_else(|| CommandError::new("the host was not observed"))?;
    let datastore = choose(
        "datastore",
        "--datastore",
        args.datastore.as_deref(),
        ESXI_DATASTORE,
        &observed.datastores,
    )?;
    let network = choose(
        "port group",
        "--network",
        args.network.as_deref(),
        ESXI_NETWORK,
        &observed.networks,
    )?;
    let template = observed
        .vms
        .iter()
        .find(|vm| {
            vm.extra_config.get(TEMPLATE_KEY).map(String::as_str) == Some(TEMPLATE_NAME)
                && !vm.disks.is_empty()
        })
        .cloned();
    Ok(HostFacts {
        datastore,
        network,
        observed: Some(observed),
        template,
    })
}

/// The one asked for if the host has it; else ESXi's default name if the host has it, else
/// the host's first.
fn choose(
    what: &str,
    flag: &str,
    wanted: Option<&str>,
    esxi_default: &str,
    available: &[String],
) -> Result<String, CommandError> {
    let listed = || {
        if available.is_empty() {
            format!("the host reports no {what}")
        } else {
            format!("the host's: {}", available.join(", "))
        }
    };
    match wanted {
        Some(name) if available.iter().any(|a| a == name) => Ok(name.to_owned()),
        Some(name) => Err(CommandError::with_hint(
            format!("the host has no {what} {name:?}"),
            format!("pass {flag} with one of {}", listed()),
        )),
        None => available
            .iter()
            .find(|a| *a == esxi_default)
            .or_else(|| available.first())
            .cloned()
            .ok_or_else(|| {
                CommandError::with_hint(
                    format!("the host reports no {what}"),
                    format!("create one on the host first, or pass {flag} NAME"),
                )
            }),
    }
}

/// One file of the inventory.
struct InventoryFile {
    /// Relative to the inventory directory (one of [`FILES`]).
    path: &'static str,
    text: String,
    /// What it holds, for the summary.
    about: String,
}

fn compose(
    request: &Request,
    certificate: &HostCertificate,
    facts: &HostFacts,
) -> Vec<InventoryFile> {
    let template = match &facts.template {
        Some(vm) => template_from_host(request, vm),
        None => template_placeholder(request, facts),
    };
    vec![
        InventoryFile {
            path: FILES[0],
            text: host_manifest(request, certificate, facts),
            about: format!(
                "Host {}: thumbprint pinned, password from ${}",
                request.host_name, request.password_env
            ),
        },
        InventoryFile {
            path: FILES[1],
            text: pool_manifest(&request.pool),
            about: format!(
                "IpPool {POOL_NAME}: {}, addresses {} to {} (adjust it to your network)",
                request.pool.subnet, request.pool.range.0, request.pool.range.1
            ),
        },
        InventoryFile {
            path: FILES[2],
            text: template,
            about: if facts.template.is_some() {
                format!("Template {TEMPLATE_NAME}: found on the host")
            } else {
                format!("Template {TEMPLATE_NAME}: a placeholder until you import the image")
            },
        },
        InventoryFile {
            path: FILES[3],
            text: vm_manifest(request, facts),
            about: format!(
                "VirtualMachine {VM_NAME}: from the template, an address from {POOL_NAME}, {}",
                match request.keys.keys.len() {
                    0 => "no SSH key yet".to_owned(),
                    1 => "1 SSH key".to_owned(),
                    n => format!("{n} SSH keys"),
                }
            ),
        },
        InventoryFile {
            path: FILES[4],
            text: GITIGNORE.to_owned(),
            about: "keeps ceso's local files (.ceso/: state file, lock) out of git".to_owned(),
        },
        InventoryFile {
            path: FILES[5],
            text: manifest_schema_text(),
            about: "the manifests' JSON Schema, for completion in editors".to_owned(),
        },
    ]
}

/// The first line of every manifest: the schema for editors, relative to the file.
fn schema_comment(file: &str) -> String {
    let up = "../".repeat(file.matches('/').count());
    format!("# yaml-language-server: $schema={up}schemas/{SCHEMA_FILE}\n")
}

/// A YAML scalar for `value`: plain when YAML allows it, quoted otherwise.
fn scalar(value: &str) -> String {
    match serde_yaml::to_string(value) {
        Ok(text) if text.trim_end().lines().count() == 1 => text.trim_end().to_owned(),
        _ => serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}")),
    }
}

fn host_manifest(request: &Request, certificate: &HostCertificate, facts: &HostFacts) -> String {
    let checked = if facts.observed.is_some() {
        "(both found on the host)"
    } else {
        "(ESXi's default names: check them on the host)"
    };
    let mut text = schema_comment(FILES[0]);
    let _ = write!(
        text,
        "#
# The ESXi host. `thumbprint` pins its certificate: ceso refuses a host presenting another one
# (an impostor, or a regenerated certificate: then check the new thumbprint on the host's
# console before writing it here). The password is never written into the inventory: ceso
# reads it from the environment variable {variable} (or write `password: {{ file: PATH }}`).
apiVersion: {API_VERSION}
kind: Host
metadata:
  name: {name}
spec:
  address: {address}
  thumbprint: \"{thumbprint}\"
  username: {username}
  password: {{ env: {variable} }}
  # Where new VMs go and the port group their adapters use {checked}.
  datastore: {datastore}
  network: {network}
",
        variable = request.password_env,
        name = request.host_name,
        address = scalar(&request.address),
        thumbprint = certificate.thumbprint,
        username = scalar(&request.username),
        datastore = scalar(&facts.datastore),
        network = scalar(&facts.network),
    );
    text
}

fn pool_manifest(pool: &PoolSettings) -> String {
    let nameservers: Vec<String> = pool.nameservers.iter().map(ToString::to_string).collect();
    let mut text = schema_comment(FILES[1]);
    let _ = write!(
        text,
        "#
# The network of the VMs. ADJUST IT before the first apply: the subnet, gateway and DNS
# servers of the port group's network, and a range of addresses nothing else uses (keep it
# out of your DHCP server's range). VMs with `ip: auto` and `pool: {POOL_NAME}` get the first
# free address of the range; cloud-init configures it in the guest.
apiVersion: {API_VERSION}
kind: IpPool
metadata:
  name: {POOL_NAME}
spec:
  cidr: {subnet}
  gateway: {gateway}
  nameservers: [{nameservers}]
  ranges:
    - {{ start: {start}, end: {end} }}
",
        subnet = pool.subnet,
        gateway = pool.gateway,
        nameservers = nameservers.join(", "),
        start = pool.range.0,
        end = pool.range.1,
    );
    text
}

/// The Template as `ceso template import` will write it, marked as a placeholder.
fn template_placeholder(request: &Request, facts: &HostFacts) -> String {
    let spec = TemplateSpec {
        host: request.host_name.clone(),
        disk: format!("[{}] {TEMPLATE_NAME}/{TEMPLATE_NAME}.vmdk", facts.datastore),
        guest_id: "ubuntu64Guest".to_owned(),
        firmware: Firmware::Efi,
        cpu: 2,
        memory: Size::from_mib(1024),
        disk_size: Some(Size::from_mib(10 * 1024)),
    };
    let comment = format!(
        "#
{PLACEHOLDER_MARKER}: the template is not on the host yet. Import Ubuntu's
# cloud image, which replaces this file with what the host reports:
#   ceso template import {OVA_FILE} --name {TEMPLATE_NAME} --host {host} --inventory .
# The image: {OVA_URL}
# Until then `ceso plan` reports that the template's disk is not on the host.
",
        host = request.host_name
    );
    template_manifest(&comment, spec)
}

/// The Template of the VM holding it on the host (imported before).
fn template_from_host(request: &Request, vm: &ObservedVm) -> String {
    let disk = vm
        .disks
        .iter()
        .min_by_key(|d| (d.controller_key, d.unit_number))
        .cloned()
        .unwrap_or_default();
    let spec = TemplateSpec {
        host: request.host_name.clone(),
        disk: disk.file_name,
        guest_id: vm.guest_id.clone(),
        firmware: vm.firmware.unwrap_or(Firmware::Bios),
        cpu: vm.cpu,
        memory: Size::from_mib(vm.memory_mib),
        // Sizes are whole MiB; a disk never shrinks, so round up.
        disk_size: Some(Size::from_mib(disk.capacity_bytes.div_ceil(MIB).max(1))),
    };
    let comment = format!(
        "#
# Written by `ceso init` from the host: the VM {:?} ({}) holds the disk (imported
# by `ceso template import`); VMs with `template: {TEMPLATE_NAME}` get a copy of it.
",
        vm.name, vm.moref
    );
    template_manifest(&comment, spec)
}

fn template_manifest(comment: &str, spec: TemplateSpec) -> String {
    let document = Document {
        api_version: API_VERSION.to_owned(),
        kind: "Template".to_owned(),
        metadata: Metadata {
            name: TEMPLATE_NAME.to_owned(),
            labels: BTreeMap::new(),
        },
        spec,
    };
    let mut text = schema_comment(FILES[2]);
    text.push_str(comment);
    // A document of strings, numbers and enums always serializes.
    text.push_str(&serde_yaml::to_string(&document).unwrap_or_default());
    text
}

fn vm_manifest(request: &Request, facts: &HostFacts) -> String {
    let mut text = schema_comment(FILES[3]);
    let _ = write!(
        text,
        "#
# An example VM: a copy of the template's disk grown to 20GiB, with an address from the pool
# `{POOL_NAME}`. At first boot cloud-init sets its host name and address and lets the SSH keys
# below log in as `ubuntu`. Copy this file for more VMs, or let
# `ceso vm create NAME --template {TEMPLATE_NAME} --pool {POOL_NAME} --ssh-key FILE` write one.
apiVersion: {API_VERSION}
kind: VirtualMachine
metadata:
  name: {VM_NAME}
spec:
  host: {host}
  template: {TEMPLATE_NAME}
  cpu: 2
  memory: 2GiB
  disks: [ {{ size: 20GiB }} ]
  networks:
    - {{ portGroup: {network}, ip: auto, pool: {POOL_NAME} }}
",
        host = request.host_name,
        network = flow_scalar(&facts.network),
    );
    if request.keys.keys.is_empty() {
        text.push_str(
            "  # No SSH key was given: add yours (the public half) before the first apply, or
  # nobody can log in (the image has no password login):
  # cloudInit:
  #   sshAuthorizedKeys:
  #     - ssh-ed25519 AAAA... you@example
",
        );
    } else {
        text.push_str("  cloudInit:\n    sshAuthorizedKeys:\n");
        for key in &request.keys.keys {
            let _ = writeln!(text, "      - {}", scalar(key));
        }
    }
    text
}

/// A scalar inside a flow mapping, where `,`, `{` and `}` end a plain scalar too.
fn flow_scalar(value: &str) -> String {
    let plain = scalar(value);
    if plain.contains([',', '{', '}', '[', ']']) && !plain.starts_with(['"', '\'']) {
        serde_json::to_string(value).unwrap_or(plain)
    } else {
        plain
    }
}

const GITIGNORE: &str = "\
# ceso's local files: the state file (audit log, IP allocations, apply lock) and local
# backups. The configuration, .ceso/config.yaml, may be committed.
.ceso/*
!.ceso/config.yaml
";

/// Validates what was written, as `ceso validate` does.
fn check_written(dir: &Path) -> Result<(), CommandError> {
    let (_, diagnostics) = crate::manifest::load_inventory(dir);
    if !crate::diagnostic::has_errors(&diagnostics) {
        for warning in &diagnostics {
            eprintln!("{warning}");
        }
        return Ok(());
    }
    for diagnostic in &diagnostics {
        eprintln!("{diagnostic}");
    }
    Err(CommandError::with_hint(
        format!(
            "the inventory written to {} does not validate (see above)",
            dir.display()
        ),
        "correct the files named above (`ceso validate` checks them again), or run `ceso init` \
         again with other options and --force",
    ))
}

/// What was written and what to do next.
fn summary(dir: &Path, request: &Request, facts: &HostFacts, files: &[InventoryFile]) -> String {
    let mut text = String::new();
    match &facts.observed {
        Some(observed) => {
            let _ = writeln!(
                text,
                "Logged in as {}: {}. Datastores: {}; port groups: {}.",
                request.username,
                observed.about.full_name,
                observed.datastores.join(", "),
                observed.networks.join(", ")
            );
        }
        None => {
            let _ = writeln!(
                text,
                "${} is not set, so ceso did not log in to read the host's datastores and port \
                 groups: check that datastore {:?} and port group {:?} exist on the host (ESXi's \
                 default names unless given with --datastore and --network).",
                request.password_env, facts.datastore, facts.network,
            );
        }
    }
    if let Some(found) = &request.keys.found {
        let _ = writeln!(
            text,
            "The example VM takes your public key {}.",
            found.display()
        );
    }
    let _ = writeln!(text, "\nWrote {}:", dir.display());
    let width = files.iter().map(|f| f.path.len()).max().unwrap_or(0);
    for file in files {
        let _ = writeln!(text, "  {:width$}  {}", file.path, file.about);
    }
    text.push_str("\nNext steps:\n");
    let mut steps: Vec<String> = Vec::new();
    if dir != Path::new(".") && dir != Path::new("") {
        steps.push(format!("cd {}", shell_word(&dir.display().to_string())));
    }
    steps.push("Adjust pools.yaml to your network (subnet, gateway, DNS, a free range)".to_owned());
    if request.keys.keys.is_empty() {
        steps.push("Add your SSH public key to vms/example.yaml".to_owned());
    }
    if facts.observed.is_none() {
        steps.push(format!(
            "read -rs {0} && export {0}    (the password of {1}; ceso reads it on every run)",
            request.password_env, request.username
        ));
    }
    steps.push("ceso validate .".to_owned());
    if facts.template.is_none() {
        steps.push(format!(
            "Import the template ({OVA_URL}):\n       \
             ceso template import {OVA_FILE} --name {TEMPLATE_NAME} --host {} --inventory .",
            request.host_name
        ));
    }
    steps.push(format!(
        "ceso plan .    (shows VirtualMachine/{VM_NAME} to create)"
    ));
    steps.push("ceso apply .".to_owned());
    steps.push(format!(
        "git init (if this is not a repository yet), then: git add . && git commit -m \"ESXi \
         inventory of {}\"",
        request.host_name
    ));
    for (number, step) in steps.iter().enumerate() {
        let _ = writeln!(text, "  {}. {step}", number + 1);
    }
    text
}

/// `word` as one shell word (quoted when it needs to be).
fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./~+@%:".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(address: &str) -> reqwest::Url {
        crate::esxi::normalize_address(address).expect("valid address")
    }

    #[test]
    fn the_host_is_named_after_its_host_name() {
        assert_eq!(default_host_name(&url("esxi-07.lab.example")), "esxi-07");
        assert_eq!(default_host_name(&url("ESXi-07")), "esxi-07");
        assert_eq!(default_host_name(&url("10.0.0.5")), "esxi-01");
        assert_eq!(default_host_name(&url("https://[fd00::5]:8443")), "esxi-01");
        assert_eq!(default_host_name(&url("localhost:8989")), "esxi-01");
    }

    #[test]
    fn the_address_is_written_without_the_default_path() {
        assert_eq!(
            manifest_address(&url("esxi-01.lab.example")),
            "https://esxi-01.lab.example"
        );
        assert_eq!(
            manifest_address(&url("https://127.0.0.1:8989/sdk")),
            "https://127.0.0.1:8989"
        );
        assert_eq!(manifest_address(&url("esxi-01:443")), "https://esxi-01");
        assert_eq!(
            manifest_address(&url("https://esxi-01/custom")),
            "https://esxi-01/custom"
        );
    }

    fn pool(subnet: &str, gateway: Option<&str>) -> Result<PoolSettings, CommandError> {
        PoolSettings::new(
            subnet.parse().expect("cidr"),
            gateway.map(|g| g.parse().expect("ip")),
            &[],
        )
    }

    #[test]
    fn the_pool_takes_100_to_199_of_a_large_subnet_and_the_upper_half_of_a_small_one() {
        let lan = pool("192.168.1.0/24", None).expect("valid");
        assert_eq!(lan.gateway.to_string(), "192.168.1.1");
        assert_eq!(
            lan.nameservers,
            vec!["192.168.1.1".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(
            (lan.range.0.to_string(), lan.range.1.to_string()),
            ("192.168.1.100".into(), "192.168.1.199".into())
        );
        let wide = pool("10.20.0.0/16", Some("10.20.0.254")).expect("valid");
        assert_eq!(wide.range.0.to_string(), "10.20.0.100");
        let small = pool("192.168.1.64/27", None).expect("valid");
        assert_eq!(
            (small.range.0.to_string(), small.range.1.to_string()),
            ("192.168.1.80".into(), "192.168.1.94".into())
        );
    }

    #[test]
    fn the_gateway_stays_out_of_the_range() {
        let lan = pool("192.168.1.0/24", Some("192.168.1.150")).expect("valid");
        assert_eq!(
            (lan.range.0.to_string(), lan.range.1.to_string()),
            ("192.168.1.100".into(), "192.168.1.149".into())
        );
        let lan = pool("192.168.1.0/24", Some("192.168.1.110")).expect("valid");
        assert_eq!(lan.range.0.to_string(), "192.168.1.111");
    }

    #[test]
    fn pool_flags_that_cannot_work_are_refused() {
        for (subnet, gateway) in [
            ("192.168.1.5/24", None),
            ("192.168.1.0/30", None),
            ("192.168.1.0/24", Some("192.168.2.1")),
            ("192.168.1.0/24", Some("192.168.1.255")),
        ] {
            assert!(pool(subnet, gateway).is_err(), "{subnet} {gateway:?}");
        }
    }

    #[test]
    fn scalars_are_quoted_only_when_yaml_needs_it() {
        assert_eq!(scalar("VM Network"), "VM Network");
        assert_eq!(scalar("datastore1"), "datastore1");
        assert_ne!(scalar("a: b"), "a: b");
        assert_ne!(scalar("#1"), "#1");
        assert_ne!(scalar("true"), "true");
        assert_eq!(flow_scalar("VM Network"), "VM Network");
        assert_eq!(flow_scalar("lan, dmz"), "\"lan, dmz\"");
    }

    #[test]
    fn schema_comments_point_up_to_the_inventory() {
        assert_eq!(
            schema_comment("hosts.yaml"),
            "# yaml-language-server: $schema=schemas/ceso-v1.schema.json\n"
        );
        assert_eq!(
            schema_comment("vms/example.yaml"),
            "# yaml-language-server: $schema=../schemas/ceso-v1.schema.json\n"
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("lab/inventory"), "lab/inventory");
        assert_eq!(shell_word("my lab"), "'my lab'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
