//! The embedded state file (redb): the audit log of every apply, the IP addresses ceso gave
//! VMs, the backup catalog, and the name of the apply lock's holder. The host is the source of truth for what exists; this file holds history and
//! coordination only. The apply lock itself is an OS file lock on `<state>.lock` (`lock.rs`).
//!
//! Every ceso process opens the file in redb's multi-writer mode, so `ceso audit list` works while
//! an apply runs, and a second apply can read who holds the lock.

mod addresses;
mod audit;
mod backups;
mod chain;
mod lock;
mod promotions;
mod watch;

use std::path::{Path, PathBuf};

use redb::{ConcurrencyMode, Database, TableDefinition};

pub use addresses::AddressRecord;
pub use audit::{RunRecord, RunStatus, StepEvent, StepRecord, recorded_changes};
pub use chain::{AuditVerification, ChainEntry, EntryKind};
pub use lock::{ApplyLock, LockHolder};
pub use promotions::{
    ActingPromotion, Actor, Approval, PromotionRecord, PromotionStatus, PromotionUpdate,
    SecurityEvent, SecurityEventKind, acting_promotion, set_acting_promotion,
};
pub use watch::{
    BackupAttempt, PendingChange, RECONCILES_KEPT, ReconcileRecord, ReconcileResult, WatchLock,
    WatchLockError, WatcherRecord,
};

/// Runs by id: JSON [`RunRecord`].
const RUNS: TableDefinition<&str, &str> = TableDefinition::new("audit_runs");
/// Step events by (run id, sequence): JSON [`StepRecord`].
const STEPS: TableDefinition<(&str, u64), &str> = TableDefinition::new("audit_steps");
/// Lock holders by lock name: JSON [`LockHolder`]. Names the holder only; the OS lock decides.
const LOCKS: TableDefinition<&str, &str> = TableDefinition::new("locks");

/// Default location of the state file, relative to the working directory.
pub const DEFAULT_STATE_FILE: &str = ".ceso/state.redb";

/// Problems with the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open state file {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("state file {path}: {message}")]
    Storage { path: PathBuf, message: String },
    /// Another process holds the apply lock; `holder` names it, from its record, unless none
    /// could be read.
    #[error("another apply holds the lock on {path}: {}", describe_holder(holder.as_deref()))]
    LockHeld {
        path: PathBuf,
        holder: Option<Box<LockHolder>>,
    },
    #[error("no run {run_id} in the audit log {path}")]
    UnknownRun { path: PathBuf, run_id: String },
}

/// The state file.
pub struct StateStore {
    path: PathBuf,
    db: Database,
}

impl StateStore {
    /// Opens (creating when needed) the state file at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StateError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .create(path)
            .map_err(|e| StateError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let store = Self {
            path: path.to_path_buf(),
            db,
        };
        store.write(|txn| {
            txn.open_table(RUNS)?;
            txn.open_table(STEPS)?;
            txn.open_table(LOCKS)?;
            txn.open_table(addresses::ADDRESSES)?;
            txn.open_table(backups::BACKUPS)?;
            txn.open_table(backups::SCANNED_TARGETS)?;
            txn.open_table(watch::RECONCILES)?;
            txn.open_table(chain::CHAIN)?;
            txn.open_table(promotions::SECURITY_EVENTS)?;
            txn.open_table(promotions::PROMOTIONS)?;
            txn.open_table(promotions::STATE_META)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn storage_error(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Storage {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Runs `f` in one write transaction and commits it.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StateError> {
        let txn = self.db.begin_write().map_err(|e| self.storage_error(e))?;
        let value = f(&txn).map_err(|e| self.storage_error(e))?;
        txn.commit().map_err(|e| self.storage_error(e))?;
        Ok(value)
    }

    /// Runs `f` in one read transaction.
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StateError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().map_err(|e| self.storage_error(e))?;
        f(&txn).map_err(|e| self.storage_error(e))
    }
}

fn describe_holder(holder: Option<&LockHolder>) -> String {
    match holder {
        Some(holder) => format!(
            "run {} by {} (pid {} on {}), started {}",
            holder.run_id, holder.os_user, holder.pid, holder.hostname, holder.started_at
        ),
        None => "a process that has not recorded who it is (not a ceso apply of this version, \
                 or one that is starting or stopping right now)"
            .to_owned(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("state records serialize")
}

fn corrupt(e: serde_json::Error) -> redb::Error {
    redb::Error::Corrupted(format!("unreadable record: {e}"))
}
