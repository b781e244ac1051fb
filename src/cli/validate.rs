//! `ceso validate DIR`

use std::path::PathBuf;

use clap::Args;

use super::{CommandError, Outcome};
use crate::diagnostic::has_errors;
use crate::manifest::load_inventory;

/// Arguments of `ceso validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Inventory directory (or one manifest file).
    pub path: PathBuf,
    /// Print the diagnostics as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ValidateArgs) -> Result<Outcome, CommandError> {
    let (inventory, diagnostics) = load_inventory(&args.path);
    if args.json {
        let report = serde_json::json!({
            "valid": !has_errors(&diagnostics),
            "diagnostics": diagnostics,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("diagnostics serialize")
        );
        return if has_errors(&diagnostics) {
            Err(CommandError::Failed {
                message: "the manifests are invalid".into(),
                hint: None,
            })
        } else {
            Ok(Outcome::Success)
        };
    }
    if has_errors(&diagnostics) {
        return Err(CommandError::Diagnostics(diagnostics));
    }
    for warning in &diagnostics {
        eprintln!("{warning}");
    }
    println!(
        "{}: valid ({} host(s), {} template(s), {} IP pool(s), {} backup policy(ies), {} virtual machine(s)).",
        args.path.display(),
        inventory.hosts.len(),
        inventory.templates.len(),
        inventory.pools.len(),
        inventory.backup_policies.len(),
        inventory.vms.len()
    );
    Ok(Outcome::Success)
}
