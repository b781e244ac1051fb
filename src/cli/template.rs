//! `ceso template import`: imports an OVA (e.g. Canonical's Ubuntu cloud image) onto a host as
//! the VM holding a template, and writes the `Template` manifest into the inventory.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use super::apply::AuditedOperation;
use super::connect::{connect, disconnect};
use super::files::write_atomically;
use super::init::PLACEHOLDER_MARKER;
use super::{CommandError, Outcome, SCHEMA_FILE};
use crate::desired::DesiredState;
use crate::esxi::{ImportError, ImportOptions, ImportProgress, ImportedTemplate};
use crate::manifest::{
    API_VERSION, Document, Inventory, MAX_VM_NAME, Metadata, Size, TemplateSpec, is_valid_name,
    name_rule,
};
use crate::plan::{Action, ResourceChange};
use crate::state::StateStore;

/// How often progress lines are printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);
const MIB: u64 = 1 << 20;

/// Arguments of `ceso template import`.
#[derive(Debug, Args)]
pub struct TemplateImportArgs {
    /// The OVA file, e.g. ubuntu-24.04-server-cloudimg-amd64.ova.
    pub file: PathBuf,
    /// Name of the template (and of the VM holding it on the host).
    #[arg(long)]
    pub name: String,
    /// The Host (of the inventory) to import onto.
    #[arg(long)]
    pub host: String,
    /// The inventory directory; the manifest is written to `<inventory>/templates/<name>.yaml`.
    #[arg(long, default_value = ".")]
    pub inventory: PathBuf,
    /// Datastore for the template's disk (default: the Host's datastore).
    #[arg(long)]
    pub datastore: Option<String>,
    /// Port group the OVA's networks are mapped to (default: the Host's network).
    #[arg(long)]
    pub network: Option<String>,
}

/// `ceso template import`
pub async fn import(args: TemplateImportArgs, state: &Path) -> Result<Outcome, CommandError> {
    check_name(&args.name)?;
    if let Err(e) = std::fs::metadata(&args.file) {
        return Err(CommandError::new(format!(
            "cannot read {}: {e}",
            args.file.display()
        )));
    }
    // Only the Host must be valid: VMs may already name the template being imported.
    let (inventory, diagnostics) = crate::manifest::load_inventory(&args.inventory);
    let host_address = format!("Host/{}", args.host);
    let host_problems: Vec<_> = diagnostics
        .into_iter()
        .filter(|d| {
            d.is_error()
                && (d.resource.as_deref() == Some(host_address.as_str()) || d.resource.is_none())
        })
        .collect();
    if !host_problems.is_empty() {
        return Err(CommandError::Diagnostics(host_problems));
    }
    let Some(host) = inventory.hosts.get(&args.host) else {
        let known: Vec<&str> = inventory.hosts.keys().map(String::as_str).collect();
        return Err(CommandError::with_hint(
            format!(
                "no Host named {:?} in {}",
                args.host,
                args.inventory.display()
            ),
            if known.is_empty() {
                "declare the host in a `kind: Host` manifest first".to_owned()
            } else {
                format!("hosts in the inventory: {}", known.join(", "))
            },
        ));
    };
    let (manifest, replaces_placeholder) = manifest_to_write(&inventory, &args)?;
    let options = ImportOptions {
        name: args.name.clone(),
        datastore: args
            .datastore
            .clone()
            .unwrap_or_else(|| host.spec.datastore.clone()),
        network: args
            .network
            .clone()
            .unwrap_or_else(|| host.spec.network.clone()),
    };
    let desired = DesiredState::from_inventory(&inventory);
    let connection = desired
        .hosts
        .get(&args.host)
        .map(|h| h.connection.clone())
        .ok_or_else(|| CommandError::new(format!("host {:?} has no connection", args.host)))?;
    let hosts = connect(&BTreeMap::from([(args.host.clone(), connection)])).await?;
    let Some(client) = hosts.get(&args.host) else {
        return Err(CommandError::new(format!(
            "host {:?} is not connected",
            args.host
        )));
    };

    eprintln!(
        "Importing {} as template {:?} on host {} (datastore {}, network {:?})",
        args.file.display(),
        args.name,
        args.host,
        options.datastore,
        options.network
    );
    let store = StateStore::open(state)?;
    let audit = AuditedOperation::start(
        &store,
        format!("template import {}", args.file.display()),
        ResourceChange {
            address: format!("Template/{}", args.name),
            host: args.host.clone(),
            name: args.name.clone(),
            action: Action::Create,
            fields: vec![],
            power_cycle: false,
            undeclared: false,
            notes: vec![format!(
                "import {} to datastore {}",
                args.file.display(),
                options.datastore
            )],
        },
        format!("import template {}", args.name),
    )?;
    let started = Instant::now();
    let display = ProgressDisplay::new();
    let report = |p: ImportProgress| display.report(&p);
    let interrupted = super::interrupted();
    let result = client
        .import_ova_cancellable(&args.file, &options, &report, interrupted)
        .await;
    display.finish();
    disconnect(&hosts).await;
    let elapsed = started.elapsed();
    audit.finish(
        result.as_ref().map(|_| ()).map_err(ToString::to_string),
        elapsed,
    )?;
    let template = result.map_err(|e| import_error(e, &args))?;

    for warning in &template.warnings {
        eprintln!("warning: the host said about the descriptor: {warning}");
    }
    let text = manifest_text(&args, &template, &manifest)?;
    write_atomically(&manifest, &text)?;
    print_summary(&args, &template, elapsed, &manifest, replaces_placeholder);
    Ok(Outcome::Success)
}

/// Where the manifest goes, and whether it replaces the placeholder `ceso init` wrote for this
/// template: `<inventory>/templates/<name>.yaml`, unless the inventory already declares the
/// template (refused, but for a placeholder: that file is written again) or the file exists.
fn manifest_to_write(
    inventory: &Inventory,
    args: &TemplateImportArgs,
) -> Result<(PathBuf, bool), CommandError> {
    if let Some(existing) = inventory.templates.get(&args.name) {
        if is_init_placeholder(&existing.file) {
            return Ok((existing.file.clone(), true));
        }
        return Err(CommandError::with_hint(
            format!(
                "template {:?} is already declared in {}",
                args.name,
                existing.file.display()
            ),
            "choose another name, or remove that manifest (and its VM on the host) first",
        ));
    }
    let manifest = args
        .inventory
        .join("templates")
        .join(format!("{}.yaml", args.name));
    if manifest.exists() {
        return Err(CommandError::with_hint(
            format!("{} already exists", manifest.display()),
            "choose another name, or remove the file first",
        ));
    }
    Ok((manifest, false))
}

/// Whether `file` is the placeholder `ceso init` writes before the image is imported: its
/// marker line, and nothing declared in it but that template (one YAML document).
fn is_init_placeholder(file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    text.lines()
        .any(|line| line.starts_with(PLACEHOLDER_MARKER))
        && serde_yaml::Deserializer::from_str(&text).count() == 1
}

/// The same rule as `metadata.name` of a Template manifest.
fn check_name(name: &str) -> Result<(), CommandError> {
    if is_valid_name(name, MAX_VM_NAME) {
        return Ok(());
    }
    Err(CommandError::with_hint(
        format!("invalid template name {name:?}"),
        name_rule(MAX_VM_NAME),
    ))
}

/// An import error with what to do about it.
fn import_error(error: ImportError, args: &TemplateImportArgs) -> CommandError {
    let hint = match &error {
        ImportError::VmExists { .. } => Some(format!(
            "choose another --name, or remove the VM {:?} on the host if it is a leftover",
            args.name
        )),
        ImportError::DatastoreNotFound { .. } => {
            Some("pass --datastore with one of the host's datastores".to_owned())
        }
        ImportError::NetworkNotFound { .. } => {
            Some("pass --network with one of the host's port groups".to_owned())
        }
        ImportError::NotAnOva { .. }
        | ImportError::NoDescriptor { .. }
        | ImportError::MissingFile { .. }
        | ImportError::ChecksumMismatch { .. } => Some(
            "download the OVA again (Ubuntu's are at https://cloud-images.ubuntu.com/, e.g. \
             noble/current/noble-server-cloudimg-amd64.ova)"
                .to_owned(),
        ),
        ImportError::Cancelled => Some("nothing was left on the host".to_owned()),
        _ => None,
    };
    let message = format!("importing {}: {error}", args.file.display());
    match hint {
        Some(hint) => CommandError::with_hint(message, hint),
        None => CommandError::new(message),
    }
}

/// The `Template` manifest of what the host reports.
fn manifest_text(
    args: &TemplateImportArgs,
    template: &ImportedTemplate,
    manifest: &Path,
) -> Result<String, CommandError> {
    let document = Document {
        api_version: API_VERSION.to_owned(),
        kind: "Template".to_owned(),
        metadata: Metadata {
            name: args.name.clone(),
            labels: BTreeMap::new(),
        },
        spec: TemplateSpec {
            host: args.host.clone(),
            disk: template.disk.clone(),
            guest_id: template.guest_id.clone(),
            firmware: template.firmware,
            cpu: template.cpu,
            memory: Size::from_mib(template.memory_mib),
            // Sizes are whole MiB; a disk never shrinks, so round up.
            disk_size: Some(Size::from_mib(template.capacity_bytes.div_ceil(MIB).max(1))),
        },
    };
    let yaml = serde_yaml::to_string(&document)
        .map_err(|e| CommandError::new(format!("cannot write the manifest: {e}")))?;
    let mut text = String::new();
    if let Some(schema) = manifest.parent().and_then(schema_path_from) {
        text.push_str(&format!("# yaml-language-server: $schema={schema}\n"));
    }
    let file_name = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    text.push_str(&format!(
        "# Written by `ceso template import {file_name} --name {} --host {}`.\n# The VM {:?} ({}) on the host holds the disk; VMs with `template: {}` get a copy of it.\n",
        args.name, args.host, template.vm_name, template.moref, args.name
    ));
    text.push_str(&yaml);
    Ok(text)
}

/// The relative path from `dir` to a `schemas/ceso-v1.schema.json` in `dir` or one of its
/// parents (the repository of the inventory), if there is one.
fn schema_path_from(dir: &Path) -> Option<String> {
    let absolute = std::path::absolute(dir).ok()?;
    absolute
        .ancestors()
        .enumerate()
        .find_map(|(depth, ancestor)| {
            ancestor
                .join("schemas")
                .join(SCHEMA_FILE)
                .is_file()
                .then(|| format!("{}schemas/{SCHEMA_FILE}", "../".repeat(depth)))
        })
}

fn print_summary(
    args: &TemplateImportArgs,
    template: &ImportedTemplate,
    elapsed: Duration,
    manifest: &Path,
    replaces_placeholder: bool,
) {
    let seconds = elapsed.as_secs_f64().max(0.001);
    println!(
        "Imported {} as template {} on host {} (VM {}, powered off).",
        args.file.display(),
        args.name,
        args.host,
        template.moref
    );
    println!(
        "  disk:     {} ({})",
        template.disk,
        HumanBytes(template.capacity_bytes)
    );
    println!(
        "  guest:    {}, {} firmware, {} vCPU, {} memory",
        template.guest_id,
        template.firmware,
        template.cpu,
        Size::from_mib(template.memory_mib)
    );
    println!(
        "  uploaded: {} in {:.1}s ({}/s)",
        HumanBytes(template.uploaded_bytes),
        seconds,
        HumanBytes((template.uploaded_bytes as f64 / seconds) as u64)
    );
    if replaces_placeholder {
        println!(
            "Replaced the placeholder {} that `ceso init` wrote.",
            manifest.display()
        );
    } else {
        println!("Wrote {}.", manifest.display());
    }
    println!(
        "Commit it (git add {} && git commit) so that VMs can use `template: {}`.",
        manifest.display(),
        args.name
    );
}

/// Upload progress on stderr: a bar on a terminal, a line every few seconds otherwise.
enum ProgressDisplay {
    Bar(ProgressBar),
    /// When the last line was printed, and for how many bytes.
    Lines(Mutex<Option<(Instant, u64)>>),
}

impl ProgressDisplay {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner().with_message("the host creates the VM");
            bar.enable_steady_tick(Duration::from_millis(200));
            Self::Bar(bar)
        } else {
            Self::Lines(Mutex::new(None))
        }
    }

    fn report(&self, progress: &ImportProgress) {
        match (self, progress) {
            (
                Self::Bar(bar),
                ImportProgress::Uploading {
                    file,
                    sent_bytes,
                    total_bytes,
                },
            ) => {
                bar.set_message(file.clone());
                if bar.length() != Some(*total_bytes) {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} uploading {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_length(*total_bytes);
                }
                bar.set_position(*sent_bytes);
            }
            (Self::Bar(bar), ImportProgress::Finishing) => {
                bar.finish_and_clear();
                eprintln!("Uploaded; the host completes the import.");
            }
            (
                Self::Lines(last),
                ImportProgress::Uploading {
                    file,
                    sent_bytes,
                    total_bytes,
                },
            ) => {
                let mut last = last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let due = match *last {
                    None => true,
                    Some((_, printed)) if printed == *sent_bytes => false,
                    Some((at, _)) => {
                        sent_bytes == total_bytes || at.elapsed() >= PLAIN_PROGRESS_EVERY
                    }
                };
                if due {
                    *last = Some((Instant::now(), *sent_bytes));
                    let percent = (*sent_bytes * 100).checked_div(*total_bytes).unwrap_or(100);
                    eprintln!(
                        "uploading {file}: {} of {} ({percent}%)",
                        HumanBytes(*sent_bytes),
                        HumanBytes(*total_bytes)
                    );
                }
            }
            (Self::Lines(_), ImportProgress::Finishing) => {
                eprintln!("Uploaded; the host completes the import.");
            }
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self
            && !bar.is_finished()
        {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_follow_the_manifest_rule() {
        assert!(check_name("ubuntu-24.04").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"a".repeat(81)).is_err());
    }

    #[test]
    fn only_a_placeholder_of_ceso_init_alone_in_its_file_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        let template = "apiVersion: ceso/v1\nkind: Template\nmetadata: { name: ubuntu-24.04 }\n";
        let placeholder = format!(
            "# yaml-language-server: $schema=../schemas/ceso-v1.schema.json\n#\n\
             {PLACEHOLDER_MARKER}: the template is not on the host yet.\n{template}"
        );
        assert!(is_init_placeholder(&file("placeholder.yaml", &placeholder)));
        let imported = format!("# Written by `ceso template import x.ova`.\n{template}");
        assert!(!is_init_placeholder(&file("imported.yaml", &imported)));
        let with_more = format!("{placeholder}---\napiVersion: ceso/v1\nkind: IpPool\n");
        assert!(
            !is_init_placeholder(&file("with-more.yaml", &with_more)),
            "another resource in the file would be lost"
        );
        assert!(!is_init_placeholder(&dir.path().join("missing.yaml")));
    }

    #[test]
    fn schema_path_is_found_upwards() {
        let dir = tempfile::tempdir().expect("tempdir");
        let templates = dir.path().join("inventory/templates");
        std::fs::create_dir_all(&templates).expect("mkdir");
        assert_eq!(schema_path_from(&templates), None);
        std::fs::create_dir(dir.path().join("schemas")).expect("mkdir");
        std::fs::write(dir.path().join("schemas").join(SCHEMA_FILE), "{}").expect("write");
        assert_eq!(
            schema_path_from(&templates).as_deref(),
            Some("../../schemas/ceso-v1.schema.json")
        );
    }
}
