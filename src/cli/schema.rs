//! `ceso schema`: the JSON Schema of every manifest kind, generated from the Rust types.

use std::path::PathBuf;

use clap::Args;

use super::{CommandError, Outcome};
pub use crate::manifest::manifest_schema;

/// File name of the schema under `schemas/`.
pub const SCHEMA_FILE: &str = "ceso-v1.schema.json";

/// Arguments of `ceso schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Write `ceso-v1.schema.json` into this directory instead of printing it.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
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
            super::files::write_atomically(&path, &text)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(Outcome::Success)
}
