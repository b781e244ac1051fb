//! The one trait every backup target implements, so targets (a datastore folder on the host, a
//! local directory, later S3, NFS or SFTP) are interchangeable for the engine, the catalog and
//! the CLI.

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::error::BackupError;
use super::host::BackupHost;
use super::record::{BackupRecord, DiskBackup, FileBackup};

/// How far a transfer has got; `total` is 0 when unknown.
#[derive(Debug, Clone, Copy)]
pub struct TransferProgress<'a> {
    pub file: &'a str,
    pub done: u64,
    pub total: u64,
}

/// Receives transfer progress.
pub type Progress<'a> = &'a (dyn Fn(TransferProgress<'_>) + Sync);

/// What a target holds under one backup id.
#[derive(Debug, Clone)]
pub enum Listed {
    /// A complete backup: its record was written, last.
    Complete(Box<BackupRecord>),
    /// Data without a readable record: a failed, interrupted or damaged backup. Never
    /// restorable; prune removes it.
    Incomplete { id: String, reason: String },
}

/// A disk of a backup made available on the host's datastore for a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedDisk {
    /// `[ds] folder/name.vmdk`
    pub path: String,
    /// The file is a staging copy the restore may move into place (otherwise it belongs to the
    /// backup and must be copied).
    pub disposable: bool,
}

/// A place backups are kept.
#[allow(async_fn_in_trait)]
pub trait BackupTarget {
    /// A stable key naming this target in records and the catalog, e.g.
    /// `directory:/srv/backups` or `datastore:esxi-01:[datastore1] ceso-backups`.
    fn key(&self) -> &str;

    /// Stores one disk (descriptor and data) of the VM being backed up. `source` is the disk's
    /// descriptor path on the host, readable because a snapshot holds it still.
    async fn store_disk<H: BackupHost>(
        &self,
        host: &H,
        id: &str,
        source: &str,
        progress: Progress<'_>,
    ) -> Result<(FileBackup, FileBackup), BackupError>;

    /// Stores one small file of the VM (`.vmx`, `.nvram`); `Ok(None)` when it does not exist.
    async fn store_file<H: BackupHost>(
        &self,
        host: &H,
        id: &str,
        source: &str,
    ) -> Result<Option<FileBackup>, BackupError>;

    /// Writes the record, last: from then on the backup counts.
    async fn commit<H: BackupHost>(
        &self,
        host: &H,
        record: &BackupRecord,
    ) -> Result<(), BackupError>;

    /// Every backup the target holds, complete or not.
    async fn list<H: BackupHost>(&self, host: &H) -> Result<Vec<Listed>, BackupError>;

    /// Re-reads and re-hashes every file of a backup; the problems found (empty: intact).
    async fn verify<H: BackupHost>(
        &self,
        host: &H,
        record: &BackupRecord,
        progress: Progress<'_>,
    ) -> Result<Vec<String>, BackupError>;

    /// Makes a disk of a backup available on the host's datastore, under `staging` (a
    /// datastore folder) if it has to be put there.
    async fn place_disk<H: BackupHost>(
        &self,
        host: &H,
        record: &BackupRecord,
        disk: &DiskBackup,
        staging: &str,
        progress: Progress<'_>,
    ) -> Result<PlacedDisk, BackupError>;

    /// Deletes one backup (its record first, so a delete cut short leaves an incomplete backup,
    /// never a damaged one that counts).
    async fn delete<H: BackupHost>(&self, host: &H, id: &str) -> Result<(), BackupError>;

    /// Frees what no complete backup uses any more (incomplete backups, unreferenced chunks);
    /// returns the bytes freed when known.
    async fn collect_garbage<H: BackupHost>(
        &self,
        host: &H,
        live: &[BackupRecord],
    ) -> Result<u64, BackupError>;
}

/// Reads a whole host file through a download that picks up where it stopped when the
/// connection drops (an HTTP `Range` request), up to `RESUME_ATTEMPTS` times in a row without
/// progress. The stream ends with an error if the file cannot be read to its end.
pub fn resumable_download<'a, H: BackupHost>(
    host: &'a H,
    path: &str,
) -> impl Stream<Item = Result<Bytes, BackupError>> + Send + 'a {
    struct State<'a, H: BackupHost> {
        host: &'a H,
        path: String,
        offset: u64,
        /// File length, once a response said.
        total: Option<u64>,
        body: Option<futures::stream::BoxStream<'static, Result<Bytes, H::Error>>>,
        failures: u32,
        done: bool,
    }
    let state = State {
        host,
        path: path.to_owned(),
        offset: 0,
        total: None,
        body: None,
        failures: 0,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if s.body.is_none() {
                match s.host.download(&s.path, s.offset).await {
                    Ok(download) => {
                        if s.total.is_none() {
                            s.total = download.len.map(|len| s.offset + len);
                        }
                        s.body = Some(download.body);
                    }
                    Err(e) => match retry(&mut s.failures, &s.path, e.to_string()).await {
                        true => continue,
                        false => {
                            s.done = true;
                            return Some((Err(BackupError::host(&s.path, e)), s));
                        }
                    },
                }
            }
            let Some(body) = s.body.as_mut() else {
                continue;
            };
            match body.next().await {
                Some(Ok(bytes)) => {
                    s.offset += bytes.len() as u64;
                    s.failures = 0;
                    return Some((Ok(bytes), s));
                }
                Some(Err(e)) => {
                    s.body = None;
                    if !retry(&mut s.failures, &s.path, e.to_string()).await {
                        s.done = true;
                        return Some((Err(BackupError::host(&s.path, e)), s));
                    }
                }
                None => {
                    s.body = None;
                    match s.total {
                        Some(total) if s.offset < total => {
                            let short =
                                format!("the download ended after {} of {total} bytes", s.offset);
                            if !retry(&mut s.failures, &s.path, short.clone()).await {
                                s.done = true;
                                return Some((Err(BackupError::host(&s.path, short)), s));
                            }
                        }
                        _ => return None,
                    }
                }
            }
        }
    })
}

/// The size of a file on the host (from its folder's listing); `None` when it does not exist.
pub async fn size_on_host<H: BackupHost>(host: &H, path: &str) -> Result<Option<u64>, BackupError> {
    let folder = super::record::folder_of(path);
    let name = super::record::file_name_of(path);
    let entries = host
        .list_folder(folder)
        .await
        .map_err(|e| BackupError::host(folder, e))?;
    Ok(entries
        .iter()
        .find(|e| e.name == name && !e.is_folder)
        .map(|e| e.size))
}

/// Consecutive failed attempts after which a download gives up.
pub const RESUME_ATTEMPTS: u32 = 4;

/// Counts a failure; waits a little and says whether to try again.
async fn retry(failures: &mut u32, path: &str, error: String) -> bool {
    *failures += 1;
    if *failures >= RESUME_ATTEMPTS {
        return false;
    }
    tracing::warn!(
        "reading {path}: {error}; resuming (attempt {})",
        *failures + 1
    );
    tokio::time::sleep(std::time::Duration::from_millis(250 * u64::from(*failures))).await;
    true
}
