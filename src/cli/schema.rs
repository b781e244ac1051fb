//! `ceso schema`: the JSON Schema of every manifest kind, generated from the Rust types.

use std::path::PathBuf;

use clap::Args;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::{CommandError, Outcome};
use crate::manifest::{API_VERSION, Document, HostSpec, VirtualMachineSpec};

/// File name of the schema under `schemas/`.
pub const SCHEMA_FILE: &str = "ceso-v1.schema.json";

/// Arguments of `ceso schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Write `ceso-v1.schema.json` into this directory instead of printing it.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The schema of one manifest document of any kind (`oneOf`, told apart by `kind`).
pub fn manifest_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let kinds = [
        ("Host", generator.subschema_for::<Document<HostSpec>>()),
        (
            "VirtualMachine",
            generator.subschema_for::<Document<VirtualMachineSpec>>(),
        ),
    ];
    let mut definitions: serde_json::Map<String, Value> =
        generator.take_definitions(true).into_iter().collect();
    let mut one_of = Vec::new();
    for (kind, reference) in kinds {
        let reference = reference.to_value();
        let name = reference["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        if let Some(properties) = definitions
            .get_mut(&name)
            .and_then(|d| d.get_mut("properties"))
        {
            properties["kind"] = json!({ "const": kind, "description": "The kind of resource." });
            properties["apiVersion"] =
                json!({ "const": API_VERSION, "description": "Always ceso/v1." });
        }
        let renamed = format!("{kind}Document");
        if let Some(definition) = definitions.remove(&name) {
            definitions.insert(renamed.clone(), definition);
        }
        one_of.push(json!({ "$ref": format!("#/$defs/{renamed}") }));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://ceso.dev/schemas/ceso-v1.schema.json",
        "title": "ceso manifest (apiVersion ceso/v1)",
        "description": "One YAML document of a ceso inventory: a Host or a VirtualMachine.",
        "oneOf": one_of,
        "$defs": definitions,
    })
}

/// The schema as the text checked in under `schemas/`.
pub fn manifest_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&manifest_schema()).expect("schema serializes");
    text.push('\n');
    text
}

pub fn run(args: SchemaArgs) -> Result<Outcome, CommandError> {
    let text = manifest_schema_text();
    match args.out {
        None => print!("{text}"),
        Some(dir) => {
            let path = dir.join(SCHEMA_FILE);
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|e| CommandError::new(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(Outcome::Success)
}
