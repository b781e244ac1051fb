//! One apply at a time per state file.
//!
//! The operating system is the judge: the lock is an advisory exclusive lock
//! ([`File::try_lock`]) on a sidecar file next to the state file (`<state>.lock`). It is held for
//! the whole apply and released by the kernel when the process ends, however it ends (SIGKILL
//! included), so no pid, hostname or clock is ever consulted to decide whether a holder is alive.
//!
//! The `locks` table of the state file only *names* the holder, for the error a second apply
//! prints. A record left behind by a process that died without releasing is stale: the next
//! apply replaces it, reports it and marks that run interrupted.
//!
//! Every change of the OS lock's ownership happens inside a redb write transaction, and so does
//! every test of it by another process. A process that finds the OS lock taken therefore always
//! reads the record its holder wrote in the same transaction, never a stale one.
//!
//! The sidecar file is never deleted: a process could otherwise lock a file that another one has
//! just unlinked, and two applies would each hold "the" lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{LOCKS, RUNS, RunRecord, RunStatus, StateError, StateStore, corrupt, to_json};

/// Key of the apply lock's holder record in the `locks` table.
const APPLY_LOCK: &str = "apply";

/// How long a process that finds the OS lock taken waits for its holder's record to appear
/// before it reports an unknown holder.
const UNKNOWN_HOLDER_PATIENCE: Duration = Duration::from_secs(2);
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Who holds the apply lock: what the record names, for people. Never used to judge liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub run_id: String,
    pub pid: u32,
    pub hostname: String,
    pub os_user: String,
    pub started_at: String,
}

/// The apply lock, held while this value lives. Give it back with
/// [`StateStore::release_apply_lock`]; dropping it (or the process dying) releases the OS lock
/// too, but leaves the holder record behind for the next apply to report as stale.
#[derive(Debug)]
pub struct ApplyLock {
    file: File,
    path: PathBuf,
    run_id: String,
}

impl ApplyLock {
    /// The run this lock was taken for.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The sidecar file the OS lock is on.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ApplyLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first does not depend on it.
        let _ = self.file.unlock();
    }
}

/// A sidecar file of a state file: `<state><suffix>`, e.g. `<state>.lock`.
pub(super) fn sidecar(state: &Path, suffix: &str) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The sidecar file of the apply lock: `<state>.lock`.
fn lock_file_path(state: &Path) -> PathBuf {
    sidecar(state, ".lock")
}

/// What one attempt under a write transaction found.
enum Attempt {
    /// The OS lock is ours; the record that was there before, if any, was stale.
    Acquired(Option<LockHolder>),
    /// Another process holds the OS lock and its record names it.
    Held(LockHolder),
    /// Another process holds the OS lock but no readable record names it (yet).
    HeldUnnamed,
}

impl StateStore {
    /// The sidecar file the apply lock is taken on.
    pub fn lock_path(&self) -> PathBuf {
        lock_file_path(&self.path)
    }

    /// Takes the apply lock for `holder`.
    ///
    /// Returns the guard and the stale holder record it replaced: a run whose process died
    /// without releasing (that run, if still `running`, is marked `interrupted`). Fails with
    /// [`StateError::LockHeld`] while another process holds the lock, naming it from its record;
    /// if the lock is held but no record is readable within about two seconds, the holder is
    /// reported as unknown.
    pub fn acquire_apply_lock(
        &self,
        holder: &LockHolder,
    ) -> Result<(ApplyLock, Option<LockHolder>), StateError> {
        let path = self.lock_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| self.lock_file_error(&path, &e))?;
        let deadline = Instant::now() + UNKNOWN_HOLDER_PATIENCE;
        loop {
            match self.attempt(&file, &path, holder)? {
                Attempt::Acquired(stale) => {
                    let lock = ApplyLock {
                        file,
                        path,
                        run_id: holder.run_id.clone(),
                    };
                    return Ok((lock, stale));
                }
                Attempt::Held(current) => {
                    return Err(StateError::LockHeld {
                        path: self.path.clone(),
                        holder: Some(Box::new(current)),
                    });
                }
                Attempt::HeldUnnamed if Instant::now() < deadline => {
                    std::thread::sleep(RETRY_INTERVAL);
                }
                Attempt::HeldUnnamed => {
                    return Err(StateError::LockHeld {
                        path: self.path.clone(),
                        holder: None,
                    });
                }
            }
        }
    }

    /// One try at the OS lock, under a write transaction so that no other process takes or
    /// tests it meanwhile: the record read when it is taken belongs to its current holder.
    fn attempt(
        &self,
        file: &File,
        path: &Path,
        holder: &LockHolder,
    ) -> Result<Attempt, StateError> {
        let txn = self.db.begin_write().map_err(|e| self.storage_error(e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let current = read_holder(&txn).map_err(|e| self.storage_error(e));
                txn.abort().map_err(|e| self.storage_error(e))?;
                // An unreadable record is as good as none: the holder is reported unknown.
                return Ok(match current {
                    Ok(Some(current)) => Attempt::Held(current),
                    Ok(None) | Err(_) => Attempt::HeldUnnamed,
                });
            }
            Err(TryLockError::Error(e)) => {
                let _ = txn.abort();
                return Err(self.lock_file_error(path, &e));
            }
        }
        // The OS lock is ours: any record is stale. Should writing ours fail, the OS lock is
        // released again rather than held by a process no record names.
        let replace = || -> Result<Option<LockHolder>, redb::Error> {
            // An unreadable stale record is replaced all the same.
            let stale = read_holder(&txn)
                .ok()
                .flatten()
                .filter(|stale| stale.run_id != holder.run_id);
            if let Some(stale) = &stale {
                let stale_run: Option<RunRecord> =
                    match txn.open_table(RUNS)?.get(stale.run_id.as_str())? {
                        Some(value) => serde_json::from_str(value.value()).ok(),
                        None => None,
                    };
                if let Some(mut run) = stale_run
                    && run.status == RunStatus::Running
                {
                    run.status = RunStatus::Interrupted;
                    super::audit::record_run(&txn, &run)?;
                }
            }
            txn.open_table(LOCKS)?
                .insert(APPLY_LOCK, to_json(holder).as_str())?;
            Ok(stale)
        };
        let outcome = replace().map_err(|e| self.storage_error(e));
        let committed = match outcome {
            Ok(stale) => txn
                .commit()
                .map(|()| stale)
                .map_err(|e| self.storage_error(e)),
            Err(e) => {
                let _ = txn.abort();
                Err(e)
            }
        };
        if committed.is_err() {
            let _ = file.unlock();
        }
        committed.map(Attempt::Acquired)
    }

    /// Gives the apply lock back: removes its holder record and releases the OS lock. The OS
    /// lock is released even when the record cannot be removed (the error says so); the record
    /// left behind is then reported as stale by the next apply.
    pub fn release_apply_lock(&self, lock: ApplyLock) -> Result<(), StateError> {
        let removed = self.write(|txn| {
            let mut locks = txn.open_table(LOCKS)?;
            let ours = match locks.get(APPLY_LOCK)? {
                Some(value) => serde_json::from_str::<LockHolder>(value.value())
                    .is_ok_and(|current| current.run_id == lock.run_id),
                None => false,
            };
            if ours {
                locks.remove(APPLY_LOCK)?;
            }
            // Released inside the transaction: whoever tests the lock next finds it free or,
            // had the commit failed, our record still there as a stale one.
            let _ = lock.file.unlock();
            Ok(())
        });
        drop(lock);
        removed
    }

    /// Whether some process (this one included) holds the apply lock right now. Asks the OS;
    /// needs no record. `false` when the lock file cannot be tested.
    pub fn apply_lock_is_held(&self) -> bool {
        let path = self.lock_path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(e) => {
                tracing::debug!("cannot open {}: {e}", path.display());
                return false;
            }
        };
        // The test briefly takes the lock (shared): under a write transaction, so that an
        // acquiring process never mistakes it for a holder.
        let txn = self.db.begin_write();
        let held = match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(e)) => {
                tracing::debug!("cannot test the lock on {}: {e}", path.display());
                false
            }
        };
        if let Ok(txn) = txn {
            let _ = txn.abort();
        }
        held
    }

    /// The holder record of the apply lock, if any. It names the holder only while
    /// [`Self::apply_lock_is_held`]; otherwise it is a stale record of a run that died.
    pub fn apply_lock_holder(&self) -> Result<Option<LockHolder>, StateError> {
        self.read(|txn| {
            let locks = txn.open_table(LOCKS)?;
            match locks.get(APPLY_LOCK)? {
                Some(value) => Ok(Some(serde_json::from_str(value.value()).map_err(corrupt)?)),
                None => Ok(None),
            }
        })
    }

    fn lock_file_error(&self, path: &Path, e: &std::io::Error) -> StateError {
        StateError::Storage {
            path: self.path.clone(),
            message: format!("cannot lock {}: {e}", path.display()),
        }
    }
}

fn read_holder(txn: &redb::WriteTransaction) -> Result<Option<LockHolder>, redb::Error> {
    let locks = txn.open_table(LOCKS)?;
    let value = locks.get(APPLY_LOCK)?;
    match value {
        Some(value) => Ok(Some(serde_json::from_str(value.value()).map_err(corrupt)?)),
        None => Ok(None),
    }
}
