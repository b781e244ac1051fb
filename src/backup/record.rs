//! What a backup is: the record every backup carries on its target (written last, so a backup
//! without one never counts), and the names of the files in it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::host::PowerState;

use super::VmConfig;

/// Version of the record format; a target holding a newer one is read as unknown.
pub const RECORD_FORMAT: u32 = 1;

/// Name prefix of the snapshot a backup takes; one found later was left by an interrupted run
/// and is removed by the next backup of that VM.
pub const BACKUP_SNAPSHOT_PREFIX: &str = "ceso-backup-";

/// One complete backup of one VM, as stored beside its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    pub format: u32,
    /// `<vm>-<YYYYMMDDTHHMMSSZ>`, unique per target.
    pub id: String,
    pub vm: String,
    /// The Host manifest the VM was on.
    pub host: String,
    /// The policy it was taken under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The target's key (see [`super::target::BackupTarget::key`]).
    pub target: String,
    pub started: Timestamp,
    pub finished: Timestamp,
    /// Whether the guest's file systems were quiesced for the snapshot.
    pub quiesced: bool,
    /// Power state when the backup was taken.
    pub power: Option<PowerState>,
    pub config: VmConfig,
    pub disks: Vec<DiskBackup>,
    /// The VM's other files (`.vmx`, `.nvram`), for the record; restore uses `config`.
    #[serde(default)]
    pub files: Vec<FileBackup>,
    /// The VM's manifest from the inventory at backup time (no secrets: manifests hold none),
    /// used to write the manifest of a VM restored as new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Bytes read from the host and bytes the target stored anew (after deduplication).
    pub bytes_read: u64,
    pub bytes_new: u64,
}

impl BackupRecord {
    /// Total size of the disks' data, in bytes.
    pub fn disk_bytes(&self) -> u64 {
        self.disks
            .iter()
            .map(|d| d.descriptor.size + d.data.size)
            .sum()
    }

    /// Every file of the backup: each disk's descriptor and data, then the other files.
    pub fn all_files(&self) -> impl Iterator<Item = &FileBackup> {
        self.disks
            .iter()
            .flat_map(|d| [&d.descriptor, &d.data])
            .chain(&self.files)
    }
}

/// One virtual disk as backed up: its descriptor and its data (`-flat.vmdk`) file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskBackup {
    /// The disk's device key on the VM.
    pub key: i32,
    /// The disk's backing file on the host when it was backed up, `[ds] dir/name.vmdk`.
    pub source: String,
    pub capacity_bytes: u64,
    pub descriptor: FileBackup,
    pub data: FileBackup,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileBackup {
    /// The file's name in the VM's folder, e.g. `web-1-flat.vmdk`.
    pub name: String,
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// Where the target keeps it: a datastore path or an index file relative to the target.
    pub location: String,
    /// Bytes the target had to store anew for it (less than `size` when deduplicated).
    #[serde(default)]
    pub new_bytes: u64,
}

/// A new backup id: the VM's name and the time, to the second, in UTC.
pub fn new_backup_id(vm: &str, at: Timestamp) -> String {
    format!("{vm}-{}", at.strftime("%Y%m%dT%H%M%SZ"))
}

/// The data file (`-flat.vmdk`) beside a disk descriptor path.
pub fn data_file_of(descriptor: &str) -> Option<String> {
    descriptor
        .strip_suffix(".vmdk")
        .map(|stem| format!("{stem}-flat.vmdk"))
}

/// The file name of a datastore path (`[ds] a/b.vmdk` gives `b.vmdk`).
pub fn file_name_of(path: &str) -> &str {
    let without_ds = path.split_once("] ").map_or(path, |(_, p)| p);
    without_ds.rsplit('/').next().unwrap_or(without_ds)
}

/// The folder of a datastore path (`[ds] a/b.vmdk` gives `[ds] a`).
pub fn folder_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(folder, _)| folder)
}

/// The datastore name of a path (`[ds] a/b.vmdk` gives `ds`).
pub fn datastore_of(path: &str) -> Option<&str> {
    path.strip_prefix('[')?.split_once(']').map(|(ds, _)| ds)
}

/// Whether a disk file is a snapshot's delta (`name-000001.vmdk`) rather than a base disk.
pub fn is_delta_disk(path: &str) -> bool {
    let name = file_name_of(path);
    name.strip_suffix(".vmdk")
        .and_then(|stem| stem.rsplit_once('-'))
        .is_some_and(|(_, n)| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_apart() {
        let p = "[LocalDS_0] web-1/web-1.vmdk";
        assert_eq!(
            data_file_of(p).as_deref(),
            Some("[LocalDS_0] web-1/web-1-flat.vmdk")
        );
        assert_eq!(file_name_of(p), "web-1.vmdk");
        assert_eq!(folder_of(p), "[LocalDS_0] web-1");
        assert_eq!(datastore_of(p), Some("LocalDS_0"));
        assert!(!is_delta_disk(p));
        assert!(is_delta_disk("[ds] web-1/web-1-000002.vmdk"));
    }

    #[test]
    fn ids_sort_by_time() {
        let t: Timestamp = "2026-11-27T02:30:05Z".parse().expect("timestamp");
        assert_eq!(new_backup_id("web-1", t), "web-1-20261127T023005Z");
    }
}
