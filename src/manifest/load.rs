//! Reading an inventory directory: every `*.yaml`/`*.yml` file, every document in it, each
//! turned into a typed resource or into diagnostics that say exactly where and what is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::positions::{FieldPositions, index_documents};
use super::schema::schema_problems;
use super::types::{
    API_VERSION, BackupPolicySpec, Document, HostSpec, IpPoolSpec, TemplateSpec, VirtualMachineSpec,
};
use crate::diagnostic::{Diagnostic, SourceLocation};

/// The kinds this release understands.
pub const KINDS: [&str; 5] = [
    "Host",
    "VirtualMachine",
    "Template",
    "IpPool",
    "BackupPolicy",
];

/// One resource as written, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource<S> {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: S,
    pub file: PathBuf,
    pub positions: FieldPositions,
}

impl<S> Resource<S> {
    /// Where a field (e.g. `spec.memory`) of this resource is written.
    pub fn locate(&self, field: &str) -> SourceLocation {
        let (line, column) = self.positions.value(field);
        SourceLocation::new(&self.file, line, column)
    }
}

/// Every document of an inventory, parsed but not yet cross-checked.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    pub hosts: Vec<Resource<HostSpec>>,
    pub vms: Vec<Resource<VirtualMachineSpec>>,
    pub templates: Vec<Resource<TemplateSpec>>,
    pub pools: Vec<Resource<IpPoolSpec>>,
    pub backup_policies: Vec<Resource<BackupPolicySpec>>,
    /// The manifest files read, in order.
    pub files: Vec<PathBuf>,
    /// Documents that could not be read (already reported): references to them are not
    /// reported again as unknown.
    pub failed: Vec<FailedDocument>,
}

/// A document that could not be turned into a resource, and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDocument {
    /// Its `kind`, when it could be read.
    pub kind: Option<String>,
    /// Its `metadata.name`, when it could be read.
    pub name: Option<String>,
    /// Where it starts (for a YAML syntax error: where the error is).
    pub location: SourceLocation,
}

impl Documents {
    /// Whether a document of `kind` named `name` failed to load.
    pub fn has_failed(&self, kind: &str, name: &str) -> bool {
        self.failed
            .iter()
            .any(|f| f.kind.as_deref() == Some(kind) && f.name.as_deref() == Some(name))
    }

    /// A failed document that may be of `kind` although its kind or name could not be read.
    pub fn unidentified_failure(&self, kind: &str) -> Option<&FailedDocument> {
        self.failed
            .iter()
            .find(|f| f.kind.as_deref().is_none_or(|k| k == kind) && f.name.is_none())
    }
}

/// Lists the manifest files under `path` (a directory, searched recursively, or one file).
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, Box<Diagnostic>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(Box::new(
            Diagnostic::error(format!("{}: no such file or directory", path.display()))
                .hint("give the inventory directory, e.g. `ceso validate examples/inventory`"),
        ));
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Box::new(Diagnostic::error(format!(
                "cannot read directory {}: {e}",
                dir.display()
            )))
        })?;
        for entry in entries.flatten() {
            let entry_path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            if entry_path.is_dir() {
                pending.push(entry_path);
            } else if matches!(
                entry_path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Box::new(Diagnostic::error(format!(
            "{}: no manifest files (*.yaml, *.yml) found",
            path.display()
        ))));
    }
    Ok(files)
}

/// Parses every document of every manifest file under `path`, collecting all problems.
pub fn read_documents(path: &Path, diagnostics: &mut Vec<Diagnostic>) -> Documents {
    let mut documents = Documents::default();
    let files = match manifest_files(path) {
        Ok(files) => files,
        Err(diagnostic) => {
            diagnostics.push(*diagnostic);
            return documents;
        }
    };
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => read_file(&file, &text, &mut documents, diagnostics),
            Err(e) => diagnostics.push(
                Diagnostic::error(format!("cannot read {}: {e}", file.display()))
                    .at(Some(SourceLocation::new(&file, 1, 1))),
            ),
        }
        documents.files.push(file);
    }
    documents
}

/// Parses the documents of one file's text.
pub fn read_file(file: &Path, text: &str, out: &mut Documents, diagnostics: &mut Vec<Diagnostic>) {
    let positions = match index_documents(text) {
        Ok(positions) => positions,
        Err((error, (line, column))) => {
            let location = SourceLocation::new(file, line, column);
            diagnostics.push(
                Diagnostic::error(format!("invalid YAML: {}", error.info()))
                    .at(Some(location.clone()))
                    .hint("check indentation and quoting around this position"),
            );
            out.failed.push(FailedDocument {
                kind: None,
                name: None,
                location,
            });
            return;
        }
    };
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde::Deserialize::deserialize(document) {
            Ok(value) => value,
            Err(error) => {
                let error: serde_yaml::Error = error;
                let location = error
                    .location()
                    .map(|l| SourceLocation::new(file, l.line(), l.column()))
                    .unwrap_or_else(|| SourceLocation::new(file, 1, 1));
                diagnostics.push(
                    Diagnostic::error(format!("invalid YAML: {error}")).at(Some(location.clone())),
                );
                out.failed.push(FailedDocument {
                    kind: None,
                    name: None,
                    location,
                });
                return;
            }
        };
        let positions = positions.get(index).cloned().unwrap_or_default();
        read_document(file, value, positions, out, diagnostics);
    }
}

/// Reads one document into `out`, or records it as failed.
fn read_document(
    file: &Path,
    value: serde_yaml::Value,
    positions: FieldPositions,
    out: &mut Documents,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if value.is_null() {
        return; // an empty document, e.g. a trailing `---`
    }
    let text = |v: Option<&serde_yaml::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let kind = text(value.get("kind"));
    let name = text(value.get("metadata").and_then(|m| m.get("name")));
    let (line, column) = positions.start;
    let location = SourceLocation::new(file, line, column);
    if !load_document(file, value, positions, out, diagnostics) {
        out.failed.push(FailedDocument {
            kind,
            name,
            location,
        });
    }
}

/// Reads one (non-empty) document into `out`; false when it had to be left out.
fn load_document(
    file: &Path,
    value: serde_yaml::Value,
    positions: FieldPositions,
    out: &mut Documents,
    diagnostics: &mut Vec<Diagnostic>,
) -> bool {
    let at = |field: &str| {
        let (line, column) = positions.value(field);
        Some(SourceLocation::new(file, line, column))
    };
    let Some(mapping) = value.as_mapping() else {
        diagnostics.push(
            Diagnostic::error("a manifest document must be a mapping")
                .at(at(""))
                .hint("start each document with `apiVersion: ceso/v1` and `kind: ...`"),
        );
        return false;
    };
    let text_field = |name: &str| {
        mapping
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let name = mapping
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_owned);
    let kind = text_field("kind");
    let address = format!(
        "{}/{}",
        kind.as_deref().unwrap_or("?"),
        name.as_deref().unwrap_or("?")
    );
    match text_field("apiVersion").as_deref() {
        Some(API_VERSION) => {}
        Some(other) => {
            diagnostics.push(
                Diagnostic::error(format!("unsupported apiVersion {other:?}"))
                    .at(at("apiVersion"))
                    .resource(&address)
                    .field("apiVersion")
                    .hint(format!(
                        "this release understands `apiVersion: {API_VERSION}`"
                    )),
            );
            return false;
        }
        None => {
            diagnostics.push(
                Diagnostic::error("missing apiVersion")
                    .at(at(""))
                    .resource(&address)
                    .field("apiVersion")
                    .hint(format!("add `apiVersion: {API_VERSION}`")),
            );
            return false;
        }
    }
    let ctx = DocumentContext {
        file,
        positions: &positions,
        address: &address,
    };
    match kind.as_deref() {
        Some(kind @ "Host") => ctx.load(kind, value, &mut out.hosts, diagnostics),
        Some(kind @ "VirtualMachine") => ctx.load(kind, value, &mut out.vms, diagnostics),
        Some(kind @ "Template") => ctx.load(kind, value, &mut out.templates, diagnostics),
        Some(kind @ "IpPool") => ctx.load(kind, value, &mut out.pools, diagnostics),
        Some(kind @ "BackupPolicy") => ctx.load(kind, value, &mut out.backup_policies, diagnostics),
        Some(other) => {
            diagnostics.push(
                Diagnostic::error(format!("unknown kind {other:?}"))
                    .at(at("kind"))
                    .resource(&address)
                    .field("kind")
                    .hint(format!("kinds are: {}", KINDS.join(", "))),
            );
            false
        }
        None => {
            diagnostics.push(
                Diagnostic::error("missing kind")
                    .at(at(""))
                    .resource(&address)
                    .field("kind")
                    .hint(format!("add `kind:` with one of: {}", KINDS.join(", "))),
            );
            false
        }
    }
}

struct DocumentContext<'a> {
    file: &'a Path,
    positions: &'a FieldPositions,
    address: &'a str,
}

impl DocumentContext<'_> {
    /// Runs both passes for a document of `kind` and adds the resource to `into`; false when
    /// the document had to be left out.
    fn load<S: DeserializeOwned>(
        &self,
        kind: &str,
        value: serde_yaml::Value,
        into: &mut Vec<Resource<S>>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> bool {
        if !self.schema_pass(kind, &value, diagnostics) {
            return false;
        }
        match self.typed::<S>(value, diagnostics) {
            Some(resource) => {
                into.push(resource);
                true
            }
            None => false,
        }
    }

    /// Checks the document against its kind's JSON schema and reports every problem found;
    /// true when there is none (the typed pass then catches what the schema cannot say).
    fn schema_pass(
        &self,
        kind: &str,
        value: &serde_yaml::Value,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> bool {
        // A document JSON cannot hold (e.g. a null mapping key) is left to the typed pass.
        let Ok(json) = serde_json::to_value(value) else {
            return true;
        };
        let Some(problems) = schema_problems(kind, &json) else {
            return true;
        };
        let clean = problems.is_empty();
        for problem in problems {
            let (line, column) = if problem.at_key {
                self.positions.key(&problem.field)
            } else {
                self.positions.value(&problem.field)
            };
            let mut diagnostic = Diagnostic::error(problem.message)
                .at(Some(SourceLocation::new(self.file, line, column)))
                .resource(self.address)
                .field(problem.field);
            if let Some(hint) = problem.hint {
                diagnostic = diagnostic.hint(hint);
            }
            diagnostics.push(diagnostic);
        }
        clean
    }

    fn typed<S: DeserializeOwned>(
        &self,
        value: serde_yaml::Value,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Resource<S>> {
        match serde_path_to_error::deserialize::<_, Document<S>>(value) {
            Ok(document) => Some(Resource {
                name: document.metadata.name,
                labels: document.metadata.labels,
                spec: document.spec,
                file: self.file.to_path_buf(),
                positions: self.positions.clone(),
            }),
            Err(error) => {
                let path = field_path(error.path());
                let message = error.inner().to_string();
                let unknown = message.starts_with("unknown field");
                let (line, column) = if unknown {
                    self.positions.key(&path)
                } else {
                    self.positions.value(&path)
                };
                let mut diagnostic = Diagnostic::error(clean_message(&message))
                    .at(Some(SourceLocation::new(self.file, line, column)))
                    .resource(self.address)
                    .field(path.clone());
                if let Some(hint) = hint_for(&path, &message) {
                    diagnostic = diagnostic.hint(hint);
                }
                diagnostics.push(diagnostic);
                None
            }
        }
    }
}

/// Renders a serde path as `spec.disks[0].size`.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// serde_yaml appends its own position to some messages; ours is more precise.
fn clean_message(message: &str) -> String {
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message.to_owned(),
    }
}

fn hint_for(path: &str, message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        return message
            .find("expected")
            .map(|cut| {
                let list = &message[cut + "expected ".len()..];
                format!(
                    "fields allowed here: {}",
                    list.trim_start_matches("one of ")
                )
            })
            .or_else(|| Some("remove this field".to_owned()));
    }
    if message.starts_with("missing field") {
        return Some("add the field; see docs/manifests.md for every field".to_owned());
    }
    if path.ends_with("password") {
        return Some(
            "write `password: { secret: NAME }` (ceso's encrypted store: `ceso secret set NAME`), `{ keyring: NAME }` (the OS keyring), `{ env: VARIABLE }` or `{ file: path }`; literal passwords are not accepted"
                .to_owned(),
        );
    }
    if path.ends_with("power") {
        return Some("write `power: on` or `power: off`".to_owned());
    }
    None
}
