//! The backup catalog: every complete backup ceso knows of, by id, and which targets have been
//! read in full. The targets are the source of truth (each backup carries its own record), so
//! this table is a cache: a target never read into this state file is read again, and a lost
//! state file loses no backup.

use redb::{ReadableTable, TableDefinition};

use super::{StateError, StateStore, corrupt, to_json};
use crate::backup::record::BackupRecord;

/// Complete backups by id: JSON [`BackupRecord`].
pub(super) const BACKUPS: TableDefinition<&str, &str> = TableDefinition::new("backup_catalog");
/// Targets whose backups were all read into the catalog, by target key: when (RFC 3339).
pub(super) const SCANNED_TARGETS: TableDefinition<&str, &str> =
    TableDefinition::new("backup_targets_scanned");

impl StateStore {
    /// Adds (or replaces) one backup.
    pub fn save_backup(&self, record: &BackupRecord) -> Result<(), StateError> {
        self.write(|txn| {
            txn.open_table(BACKUPS)?
                .insert(record.id.as_str(), to_json(record).as_str())?;
            Ok(())
        })
    }

    /// Forgets one backup (it was deleted).
    pub fn remove_backup(&self, id: &str) -> Result<(), StateError> {
        self.write(|txn| {
            txn.open_table(BACKUPS)?.remove(id)?;
            Ok(())
        })
    }

    /// Every backup in the catalog, by id.
    pub fn backups(&self) -> Result<Vec<BackupRecord>, StateError> {
        self.read(|txn| {
            let table = match txn.open_table(BACKUPS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, value) = entry?;
                out.push(serde_json::from_str(value.value()).map_err(corrupt)?);
            }
            Ok(out)
        })
    }

    /// Replaces what the catalog holds for `target` with what was read from it, and marks the
    /// target as read.
    pub fn replace_target_backups(
        &self,
        target: &str,
        records: &[BackupRecord],
        at: &str,
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let mut table = txn.open_table(BACKUPS)?;
            let stale: Vec<String> = table
                .iter()?
                .filter_map(|entry| {
                    let (key, value) = entry.ok()?;
                    let record: BackupRecord = serde_json::from_str(value.value()).ok()?;
                    (record.target == target).then(|| key.value().to_owned())
                })
                .collect();
            for id in stale {
                table.remove(id.as_str())?;
            }
            for record in records {
                table.insert(record.id.as_str(), to_json(record).as_str())?;
            }
            txn.open_table(SCANNED_TARGETS)?.insert(target, at)?;
            Ok(())
        })
    }

    /// Whether `target` has been read into the catalog.
    pub fn target_was_scanned(&self, target: &str) -> Result<bool, StateError> {
        self.read(|txn| {
            let table = match txn.open_table(SCANNED_TARGETS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            Ok(table.get(target)?.is_some())
        })
    }
}
