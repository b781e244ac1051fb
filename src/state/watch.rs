//! What `ceso watch` leaves for `ceso status`: who is watching (one watcher per state file, an
//! OS lock on `<state>.watch.lock` decides, as for the apply lock) and a record of every
//! reconcile with its reason and result.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{LOCKS, StateError, StateStore, corrupt, to_json};

/// Reconciles by id (sorts by time): JSON [`ReconcileRecord`].
pub(super) const RECONCILES: TableDefinition<&str, &str> = TableDefinition::new("watch_reconciles");

/// Key of the watcher's record in the `locks` table.
const WATCH_LOCK: &str = "watch";

/// How many reconciles are kept; older ones are dropped (the apply runs they made stay in the
/// audit log).
pub const RECONCILES_KEPT: u64 = 10_000;

/// The watcher: names it for `ceso status` and a second `ceso watch`. The OS lock decides
/// whether it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatcherRecord {
    pub pid: u32,
    pub hostname: String,
    pub started_at: String,
    pub inventory: String,
    /// `apply` or `report`.
    pub mode: String,
    /// Seconds between drift checks.
    pub interval_secs: u64,
}

/// One reconcile of `ceso watch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRecord {
    /// Sorts by time: `20261127T093000.123Z-1a2b3c`.
    pub id: String,
    pub started_at: String,
    pub finished_at: String,
    /// What triggered it, e.g. `manifest changed: vms/web-01.yaml`.
    pub reason: String,
    /// `apply` or `report`.
    pub mode: String,
    pub result: ReconcileResult,
    /// One line about the result, for people.
    pub message: String,
    /// The changes the plan had that were not (or not all) applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingChange>,
    /// Suspended resources (`suspend: true`) that differ from their manifests: left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<PendingChange>,
    /// The apply run it made, if any (`ceso audit show RUN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The backups it took (or tried).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupAttempt>,
}

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileResult {
    /// The hosts are as the manifests declare.
    InSync,
    /// Changes (drift or new manifests) were found and reported, not applied.
    ChangesPending,
    /// Every change was applied.
    Applied,
    /// The manifests are invalid: nothing was done.
    InvalidManifests,
    /// The plan has errors (e.g. an address conflict, a datastore the host lacks): nothing was
    /// changed; not retried until a manifest changes or the next drift check.
    PlanErrors,
    /// Stopped by SIGTERM/Ctrl-C.
    Interrupted,
    /// Something failed (a host, an apply step, a backup); retried after a delay.
    Failed,
}

impl ReconcileResult {
    /// The name used in records and output.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::InSync => "in_sync",
            ReconcileResult::ChangesPending => "changes_pending",
            ReconcileResult::Applied => "applied",
            ReconcileResult::InvalidManifests => "invalid_manifests",
            ReconcileResult::PlanErrors => "plan_errors",
            ReconcileResult::Interrupted => "interrupted",
            ReconcileResult::Failed => "failed",
        }
    }
}

/// A change the plan had, in one line per field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    /// `VirtualMachine/web-01`.
    pub address: String,
    /// `create`, `update`, `replace`, `delete`.
    pub action: String,
    /// `memory: 2 GiB -> 4 GiB`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// A backup a reconcile took or tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupAttempt {
    pub vm: String,
    pub policy: String,
    /// The backup id when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The watch lock, held while this value lives (the kernel releases it when the process ends).
#[derive(Debug)]
pub struct WatchLock {
    file: File,
}

impl Drop for WatchLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Why the watch lock was not taken.
#[derive(Debug)]
pub enum WatchLockError {
    /// Another process watches; its record, if one could be read.
    Held(Option<WatcherRecord>),
    /// The lock file or the state file could not be used.
    Io(StateError),
}

/// The sidecar file of the watch lock: `<state>.watch.lock`.
fn watch_lock_path(state: &Path) -> PathBuf {
    super::lock::sidecar(state, ".watch.lock")
}

impl StateStore {
    /// Becomes the watcher of this state file. Fails with the current watcher's record (if one
    /// can be read) while another process watches.
    pub fn acquire_watch_lock(&self, watcher: &WatcherRecord) -> Result<WatchLock, WatchLockError> {
        let path = watch_lock_path(&self.path);
        let io_error = |e: std::io::Error| {
            WatchLockError::Io(StateError::Storage {
                path: path.clone(),
                message: e.to_string(),
            })
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(WatchLockError::Held(self.watcher().ok().flatten()));
            }
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        self.write(|txn| {
            txn.open_table(LOCKS)?
                .insert(WATCH_LOCK, to_json(watcher).as_str())?;
            Ok(())
        })
        .map_err(WatchLockError::Io)?;
        Ok(WatchLock { file })
    }

    /// The watcher of this state file while one runs (`None` when none does).
    pub fn running_watcher(&self) -> Result<Option<WatcherRecord>, StateError> {
        let path = watch_lock_path(&self.path);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StateError::Storage {
                    path: path.clone(),
                    message: e.to_string(),
                });
            }
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(None)
            }
            Err(TryLockError::WouldBlock) => self.watcher(),
            Err(TryLockError::Error(e)) => Err(StateError::Storage {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// The last watcher's record (it may have ended).
    fn watcher(&self) -> Result<Option<WatcherRecord>, StateError> {
        self.read(|txn| {
            let table = txn.open_table(LOCKS)?;
            let Some(value) = table.get(WATCH_LOCK)? else {
                return Ok(None);
            };
            Ok(Some(serde_json::from_str(value.value()).map_err(corrupt)?))
        })
    }

    /// Records a reconcile, dropping the oldest beyond [`RECONCILES_KEPT`].
    pub fn save_reconcile(&self, record: &ReconcileRecord) -> Result<(), StateError> {
        self.write(|txn| {
            let mut table = txn.open_table(RECONCILES)?;
            table.insert(record.id.as_str(), to_json(record).as_str())?;
            let surplus = table.len()?.saturating_sub(RECONCILES_KEPT);
            for _ in 0..surplus {
                table.pop_first()?;
            }
            Ok(())
        })
    }

    /// The last `count` reconciles, oldest first.
    pub fn reconciles(&self, count: usize) -> Result<Vec<ReconcileRecord>, StateError> {
        self.read(|txn| {
            let table = match txn.open_table(RECONCILES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for entry in table.iter()?.rev().take(count) {
                let (_, value) = entry?;
                out.push(serde_json::from_str(value.value()).map_err(corrupt)?);
            }
            out.reverse();
            Ok(out)
        })
    }
}
