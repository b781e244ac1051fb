//! Backups: declared policies, two targets (a folder on the host's datastore, or a local
//! directory of content-addressed chunks), a catalog kept in the state file and rebuildable from
//! the targets, and restore in place or as a new VM.

pub mod chunks;
pub mod datastore;
pub mod directory;
pub mod engine;
pub mod error;
pub mod host;
pub mod policy;
pub mod record;
pub mod retention;
pub mod target;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::host::{Firmware, ObservedVm};

pub use host::{BackupHost, DatastoreEntry, Download};

/// The settings of a VM that a backup records and an in-place restore puts back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmConfig {
    pub name: String,
    pub guest_id: String,
    pub cpu: u32,
    pub memory_mib: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    #[serde(default)]
    pub annotation: String,
    /// Every extraConfig key, folded (last value wins, empty = absent).
    #[serde(default)]
    pub extra_config: BTreeMap<String, String>,
    /// The network adapters: port group, MAC and adapter type, in device order.
    #[serde(default)]
    pub nics: Vec<NicConfig>,
    /// `[datastore] dir/name.vmx`
    pub vmx_path: String,
}

/// A network adapter as backed up.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicConfig {
    pub port_group: String,
    pub mac_address: String,
    pub adapter: String,
}

impl From<&ObservedVm> for VmConfig {
    fn from(vm: &ObservedVm) -> Self {
        VmConfig {
            name: vm.name.clone(),
            guest_id: vm.guest_id.clone(),
            cpu: vm.cpu,
            memory_mib: vm.memory_mib,
            firmware: vm.firmware,
            annotation: vm.annotation.clone(),
            extra_config: vm.extra_config.clone(),
            nics: vm
                .nics
                .iter()
                .map(|n| NicConfig {
                    port_group: n.port_group.clone(),
                    mac_address: n.mac_address.clone(),
                    adapter: n.adapter.clone(),
                })
                .collect(),
            vmx_path: vm.vmx_path.clone(),
        }
    }
}

/// Reads a record file found under backup `id` of target `target`: a complete backup, or an
/// incomplete one when the record cannot be read, is for another id, or is of a newer format.
pub fn parse_record(bytes: &[u8], id: &str, target: &str) -> target::Listed {
    let incomplete = |reason: String| target::Listed::Incomplete {
        id: id.to_owned(),
        reason,
    };
    match serde_json::from_slice::<record::BackupRecord>(bytes) {
        Ok(r) if r.format > record::RECORD_FORMAT => incomplete(format!(
            "record format {} is newer than this ceso understands ({})",
            r.format,
            record::RECORD_FORMAT
        )),
        Ok(r) if r.id != id => incomplete(format!("the record names backup {:?}", r.id)),
        Ok(mut r) => {
            r.target = target.to_owned();
            target::Listed::Complete(Box::new(r))
        }
        Err(e) => incomplete(format!("unreadable record: {e}")),
    }
}

/// Either kind of target, chosen at run time from a policy.
pub enum Target {
    Directory(directory::DirectoryTarget),
    Datastore(datastore::DatastoreTarget),
}

/// Forwards a [`target::BackupTarget`] method to the target inside.
macro_rules! forward {
    ($self:ident, $t:ident => $call:expr) => {
        match $self {
            Target::Directory($t) => $call,
            Target::Datastore($t) => $call,
        }
    };
}

impl target::BackupTarget for Target {
    fn key(&self) -> &str {
        forward!(self, t => t.key())
    }

    async fn store_disk<H: BackupHost>(
        &self,
        host: &H,
        id: &str,
        source: &str,
        progress: target::Progress<'_>,
    ) -> Result<(record::FileBackup, record::FileBackup), error::BackupError> {
        forward!(self, t => t.store_disk(host, id, source, progress).await)
    }

    async fn store_file<H: BackupHost>(
        &self,
        host: &H,
        id: &str,
        source: &str,
    ) -> Result<Option<record::FileBackup>, error::BackupError> {
        forward!(self, t => t.store_file(host, id, source).await)
    }

    async fn commit<H: BackupHost>(
        &self,
        host: &H,
        record: &record::BackupRecord,
    ) -> Result<(), error::BackupError> {
        forward!(self, t => t.commit(host, record).await)
    }

    async fn list<H: BackupHost>(
        &self,
        host: &H,
    ) -> Result<Vec<target::Listed>, error::BackupError> {
        forward!(self, t => t.list(host).await)
    }

    async fn verify<H: BackupHost>(
        &self,
        host: &H,
        record: &record::BackupRecord,
        progress: target::Progress<'_>,
    ) -> Result<Vec<String>, error::BackupError> {
        forward!(self, t => t.verify(host, record, progress).await)
    }

    async fn place_disk<H: BackupHost>(
        &self,
        host: &H,
        record: &record::BackupRecord,
        disk: &record::DiskBackup,
        staging: &str,
        progress: target::Progress<'_>,
    ) -> Result<target::PlacedDisk, error::BackupError> {
        forward!(self, t => t.place_disk(host, record, disk, staging, progress).await)
    }

    async fn delete<H: BackupHost>(&self, host: &H, id: &str) -> Result<(), error::BackupError> {
        forward!(self, t => t.delete(host, id).await)
    }

    async fn collect_garbage<H: BackupHost>(
        &self,
        host: &H,
        live: &[record::BackupRecord],
    ) -> Result<u64, error::BackupError> {
        forward!(self, t => t.collect_garbage(host, live).await)
    }
}
