//! What backups need from a host beyond [`crate::host::Host`]: snapshots, disk copies on the
//! host, and the datastore's files (listing, streaming download and upload over the `/folder`
//! HTTP interface). The vSphere SOAP client implements it in [`crate::esxi`].

use std::future::Future;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::host::{Host, ObservedVm};

use super::VmConfig;

/// One entry of a datastore folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreEntry {
    /// File or folder name, without the folder path.
    pub name: String,
    /// Size in bytes (0 for folders).
    pub size: u64,
    pub is_folder: bool,
}

/// A file being read from a datastore: its length (when the host said) and its bytes.
pub struct Download<E> {
    /// Bytes still to come (from the requested offset), when the host sent a length.
    pub len: Option<u64>,
    pub body: BoxStream<'static, Result<Bytes, E>>,
}

/// Host access for backup and restore. Datastore paths are written `[datastore] folder/file`.
pub trait BackupHost: Host + Sync {
    /// The VM named `name` with everything a backup records (config, disks, snapshots, power,
    /// Tools). `Ok(None)` when no VM has that name; an error when several do.
    fn vm_for_backup(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ObservedVm>, Self::Error>> + Send;

    /// `CreateSnapshot_Task` without memory; `quiesce` asks VMware Tools to quiesce the guest's
    /// file systems. Returns the snapshot's moref value.
    fn create_snapshot(
        &self,
        vm_moref: &str,
        vm: &str,
        name: &str,
        description: &str,
        quiesce: bool,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// `RemoveSnapshot_Task` of this snapshot only (consolidating it). `Ok(false)` when it was
    /// already gone.
    fn remove_snapshot(
        &self,
        vm_moref: &str,
        vm: &str,
        snapshot_moref: &str,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// `CopyVirtualDisk_Task` on the host (descriptor and data), consolidating a snapshot
    /// chain into one disk. Fails when `dest` exists.
    fn copy_disk(
        &self,
        source: &str,
        dest: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// `MoveVirtualDisk_Task`; with `force` an existing `dest` is replaced.
    fn move_disk(
        &self,
        source: &str,
        dest: &str,
        force: bool,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// `FileManager.MakeDirectory` with parents; an existing folder is fine.
    fn make_directory(&self, path: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// `DeleteDatastoreFile_Task` (a file, or a folder with its contents). `Ok(false)` when
    /// it did not exist.
    fn delete_path(&self, path: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// The entries of a folder (`SearchDatastore_Task`, every file, with sizes). An empty list
    /// when the folder does not exist.
    fn list_folder(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Vec<DatastoreEntry>, Self::Error>> + Send;

    /// Streams a file from `offset` on (HTTP GET on `/folder`, with a `Range` when
    /// `offset > 0`), in constant memory.
    fn download(
        &self,
        path: &str,
        offset: u64,
    ) -> impl Future<Output = Result<Download<Self::Error>, Self::Error>> + Send;

    /// Writes a file of exactly `len` bytes (HTTP PUT on `/folder`, streamed), replacing an
    /// existing one.
    fn upload(
        &self,
        path: &str,
        len: u64,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Brings a VM's settings back to `config` in one `ReconfigVM_Task`: cpu, memory, guest
    /// id, firmware, annotation, and extraConfig (keys the VM has that `config` lacks are
    /// removed). Devices are left alone.
    fn restore_config(
        &self,
        vm_moref: &str,
        vm: &str,
        config: &VmConfig,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
