//! Errors of backup, verify, prune and restore.

use super::chunks::ChunkStoreError;

/// Everything that can go wrong with a backup. Messages name the VM, backup or target and,
/// where the user can act, what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The host refused or failed an operation.
    #[error("{subject}: {message}")]
    Host { subject: String, message: String },
    /// The VM to back up or restore does not exist on its host.
    #[error("no VM named {vm:?} on host {host}")]
    VmNotFound { vm: String, host: String },
    /// The backup target could not be read or written.
    #[error("backup target {target}: {message}")]
    Target { target: String, message: String },
    /// The chunk store of a directory target failed.
    #[error(transparent)]
    Chunks(#[from] ChunkStoreError),
    /// Ctrl-C: the backup was abandoned (its snapshot removed, nothing recorded).
    #[error("interrupted: the backup was abandoned and its snapshot removed; nothing was recorded")]
    Interrupted,
    /// What was asked for cannot be done safely; `hint` says what to do instead.
    #[error("{message}\n  hint: {hint}")]
    Refused { message: String, hint: String },
    /// A restore stopped part-way: the VM is left powered off with some disks restored.
    #[error(
        "restoring {vm} stopped after {restored} of {total} disks: {cause}\n  hint: the VM is \
         left powered off; run the same restore again to finish it"
    )]
    PartiallyRestored {
        vm: String,
        restored: usize,
        total: usize,
        cause: Box<BackupError>,
    },
}

impl BackupError {
    /// A host error about `subject` (a VM, a file).
    pub fn host(subject: &str, error: impl std::fmt::Display) -> Self {
        BackupError::Host {
            subject: subject.to_owned(),
            message: error.to_string(),
        }
    }

    /// A target error.
    pub fn target(target: &str, message: impl std::fmt::Display) -> Self {
        BackupError::Target {
            target: target.to_owned(),
            message: message.to_string(),
        }
    }
}
