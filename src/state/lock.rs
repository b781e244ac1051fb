//! One apply at a time per state file. The lock is a record naming its holder; a holder whose
//! process is gone (killed, even with SIGKILL) is detected and its lock taken over.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{LOCKS, RUNS, RunRecord, RunStatus, StateError, StateStore, corrupt, to_json};

const APPLY_LOCK: &str = "apply";

/// Who holds the apply lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub run_id: String,
    pub pid: u32,
    pub hostname: String,
    pub os_user: String,
    pub started_at: String,
}

/// Whether a process with this pid runs on this machine (Linux: `/proc/<pid>` exists and is not a zombie).
pub fn process_is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // state is the field after the parenthesised command name
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

impl StateStore {
    /// Takes the apply lock for `holder`. Returns the stale holder whose lock was taken over (its
    /// process is gone), if any; fails with [`StateError::LockHeld`] while a live holder has it.
    pub fn acquire_apply_lock(
        &self,
        holder: &LockHolder,
    ) -> Result<Option<LockHolder>, StateError> {
        let this_host = holder.hostname.clone();
        let outcome = self.write(|txn| {
            let mut locks = txn.open_table(LOCKS)?;
            let current: Option<LockHolder> = match locks.get(APPLY_LOCK)? {
                Some(value) => Some(serde_json::from_str(value.value()).map_err(corrupt)?),
                None => None,
            };
            if let Some(current) = &current {
                let alive = current.hostname != this_host || process_is_alive(current.pid);
                if alive {
                    return Ok(Err(current.clone()));
                }
                let mut runs = txn.open_table(RUNS)?;
                let stale_run: Option<RunRecord> = match runs.get(current.run_id.as_str())? {
                    Some(value) => serde_json::from_str(value.value()).ok(),
                    None => None,
                };
                if let Some(mut run) = stale_run
                    && run.status == RunStatus::Running
                {
                    run.status = RunStatus::Interrupted;
                    runs.insert(run.run_id.as_str(), to_json(&run).as_str())?;
                }
            }
            locks.insert(APPLY_LOCK, to_json(holder).as_str())?;
            Ok(Ok(current))
        })?;
        outcome.map_err(|holder| StateError::LockHeld {
            path: self.path.clone(),
            holder: Box::new(holder),
        })
    }

    /// Releases the apply lock if `run_id` holds it.
    pub fn release_apply_lock(&self, run_id: &str) -> Result<(), StateError> {
        self.write(|txn| {
            let mut locks = txn.open_table(LOCKS)?;
            let ours = match locks.get(APPLY_LOCK)? {
                Some(value) => serde_json::from_str::<LockHolder>(value.value())
                    .is_ok_and(|holder| holder.run_id == run_id),
                None => false,
            };
            if ours {
                locks.remove(APPLY_LOCK)?;
            }
            Ok(())
        })
    }

    /// The current holder of the apply lock, if any.
    pub fn apply_lock_holder(&self) -> Result<Option<LockHolder>, StateError> {
        self.read(|txn| {
            let locks = txn.open_table(LOCKS)?;
            match locks.get(APPLY_LOCK)? {
                Some(value) => Ok(Some(serde_json::from_str(value.value()).map_err(corrupt)?)),
                None => Ok(None),
            }
        })
    }
}
