//! The `directory` target: a directory on the machine running ceso. Disks are streamed from the
//! host's datastore over HTTP in constant memory, cut into chunks and stored by their SHA-256
//! (see [`super::chunks`]), so a second backup of an unchanged disk stores almost nothing new.
//!
//! Layout: `chunks/` (shared by every backup), and `backups/<backup id>/` holding one chunk
//! index per file and `record.json`, written last.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;

use super::chunks::{ChunkStore, StoredFile};
use super::error::BackupError;
use super::host::BackupHost;
use super::record::{
    BackupRecord, DiskBackup, FileBackup, data_file_of, file_name_of, folder_of, is_delta_disk,
};
use super::target::{
    BackupTarget, Listed, PlacedDisk, Progress, TransferProgress, resumable_download, size_on_host,
};

/// Name of the record file in each backup's folder.
pub const RECORD_FILE: &str = "record.json";
/// Folder of the backups in the target directory.
const BACKUPS: &str = "backups";

/// A local directory of content-addressed chunks.
pub struct DirectoryTarget {
    key: String,
    store: ChunkStore,
}

impl DirectoryTarget {
    /// Opens (creating it when needed) the target at `path`.
    pub fn open(path: &Path) -> Result<Self, BackupError> {
        let store = ChunkStore::open(&normalized(path))?;
        Ok(DirectoryTarget {
            key: Self::key_for(path),
            store,
        })
    }

    /// The key of the target at `path`.
    pub fn key_for(path: &Path) -> String {
        format!("directory:{}", normalized(path).display())
    }

    /// Where the target is.
    pub fn path(&self) -> PathBuf {
        self.store.root().to_path_buf()
    }

    fn index_path(id: &str, file: &str) -> String {
        format!("{BACKUPS}/{id}/{file}.index")
    }

    /// Streams one host file into the chunk store.
    async fn store_host_file<H: BackupHost>(
        &self,
        host: &H,
        id: &str,
        path: &str,
        name: &str,
        total: u64,
        progress: Progress<'_>,
    ) -> Result<FileBackup, BackupError> {
        let index = Self::index_path(id, name);
        let body = Box::pin(resumable_download(host, path));
        let stored = self
            .store
            .store(body, &index, |done| {
                progress(TransferProgress {
                    file: name,
                    done,
                    total,
                })
            })
            .await?;
        Ok(FileBackup {
            name: name.to_owned(),
            size: stored.size,
            sha256: stored.sha256,
            location: index,
            new_bytes: stored.new_bytes,
        })
    }

    /// Every backup in the directory (no host needed).
    pub async fn list_local(&self) -> Result<Vec<Listed>, BackupError> {
        let mut listed = Vec::new();
        for id in self.store.list_dir(BACKUPS).await? {
            let record = format!("{BACKUPS}/{id}/{RECORD_FILE}");
            match self.store.read_file(&record).await {
                Ok(bytes) => listed.push(super::parse_record(&bytes, &id, &self.key)),
                Err(_) => listed.push(Listed::Incomplete {
                    id,
                    reason: "no record: the backup did not finish".into(),
                }),
            }
        }
        Ok(listed)
    }

    /// Re-reads and re-hashes every chunk of a backup (no host needed).
    pub async fn verify_local(
        &self,
        record: &BackupRecord,
        progress: Progress<'_>,
    ) -> Result<Vec<String>, BackupError> {
        let mut problems = Vec::new();
        for file in record.all_files() {
            progress(TransferProgress {
                file: &file.name,
                done: 0,
                total: file.size,
            });
            let report = self.store.verify(&Self::stored_file(file)).await?;
            for p in report.problems {
                problems.push(if p.chunk.is_empty() {
                    format!("{}: {}", file.name, p.problem)
                } else {
                    format!(
                        "{}: chunk {} ({}): {}",
                        file.name, p.position, p.chunk, p.problem
                    )
                });
            }
            progress(TransferProgress {
                file: &file.name,
                done: file.size,
                total: file.size,
            });
        }
        Ok(problems)
    }

    /// Deletes one backup: its record first, then its indexes (no host needed).
    pub async fn delete_local(&self, id: &str) -> Result<(), BackupError> {
        self.store
            .remove(&format!("{BACKUPS}/{id}/{RECORD_FILE}"))
            .await?;
        self.store.remove(&format!("{BACKUPS}/{id}")).await?;
        Ok(())
    }

    /// Removes incomplete backups and every chunk no complete one uses (no host needed).
    pub async fn collect_garbage_local(&self, live: &[BackupRecord]) -> Result<u64, BackupError> {
        for listed in self.list_local().await? {
            if let Listed::Incomplete { id, .. } = listed {
                self.store.remove(&format!("{BACKUPS}/{id}")).await?;
            }
        }
        let indexes: Vec<String> = live
            .iter()
            .flat_map(|r| r.all_files().map(|f| f.location.clone()))
            .collect();
        let report = self.store.collect_garbage(&indexes).await?;
        Ok(report.bytes_freed)
    }

    fn stored_file(file: &FileBackup) -> StoredFile {
        StoredFile {
            size: file.size,
            sha256: file.sha256.clone(),
            chunks: 0,
            new_chunks: 0,
            new_bytes: 0,
            index: file.location.clone(),
        }
    }
}

/// `path` with `.` and `..` taken out lexically (`/a/inv/../backups` is `/a/backups`), so one
/// directory has one key however the manifest reaches it.
fn normalized(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// How often the upload of one restored file is tried before the restore gives up.
const UPLOAD_ATTEMPTS: u32 = 3;

impl DirectoryTarget {
    /// Streams one stored file to the host (HTTP PUT), reporting progress as it goes.
    async fn upload_file<H: BackupHost>(
        &self,
        host: &H,
        file: &FileBackup,
        dest: &str,
        progress: Progress<'_>,
    ) -> Result<(), BackupError> {
        let total = file.size;
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        let body = self
            .store
            .read(&file.location)
            .inspect(move |chunk| {
                if let Ok(bytes) = chunk {
                    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            })
            .boxed();
        let ticker = async {
            loop {
                progress(TransferProgress {
                    file: &file.name,
                    done: sent.load(Ordering::Relaxed),
                    total,
                });
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        };
        let upload = host.upload(dest, file.size, body);
        let uploaded = tokio::select! {
            uploaded = upload => uploaded,
            () = ticker => unreachable!("the ticker never ends"),
        };
        uploaded.map_err(|e| BackupError::host(dest, format!("writing the restored file: {e}")))?;
        progress(TransferProgress {
            file: &file.name,
            done: total,
            total,
        });
        Ok(())
    }
}

impl BackupTarget for DirectoryTarget {
    fn key(&self) -> &str {
        &self.key
    }

    async fn store_disk<H: BackupHost>(
        &self,
        host: &H,
        id: &str,
        source: &str,
        progress: Progress<'_>,
    ) -> Result<(FileBackup, FileBackup), BackupError> {
        // A disk that is a snapshot's delta (the VM has snapshots of its own) is read through a
        // consolidated copy the host makes beside it, removed afterwards.
        let staging =
            is_delta_disk(source).then(|| format!("{}/ceso-staging-{id}", folder_of(source)));
        let readable = match &staging {
            Some(folder) => {
                host.make_directory(folder)
                    .await
                    .map_err(|e| BackupError::host(folder, e))?;
                let copy = format!("{folder}/{}", file_name_of(source));
                host.copy_disk(source, &copy)
                    .await
                    .map_err(|e| BackupError::host(source, format!("consolidating a copy: {e}")))?;
                copy
            }
            None => source.to_owned(),
        };
        let result = async {
            let data_path = data_file_of(&readable)
                .ok_or_else(|| BackupError::host(source, "the disk is not a .vmdk descriptor"))?;
            let data_total = size_on_host(host, &data_path).await?.unwrap_or(0);
            let name = file_name_of(source);
            let descriptor = self
                .store_host_file(host, id, &readable, name, 0, &|_| {})
                .await?;
            let data_name = data_file_of(name).unwrap_or_else(|| format!("{name}-flat"));
            let data = self
                .store_host_file(host, id, &data_path, &data_name, data_total, progress)
                .await?;
            Ok((descriptor, data))
        }
        .await;
        if let Some(folder) = &staging
            && let Err(e) = host.delete_path(folder).await
        {
            tracing::warn!("removing the staging copy {folder} failed: {e}");
        }
        result
    }

    async fn store_file<H: BackupHost>(
        &self,
        host: &H,
        id: &str,
        source: &str,
    ) -> Result<Option<FileBackup>, BackupError> {
        let Some(size) = size_on_host(host, source).await? else {
            return Ok(None);
        };
        self.store_host_file(host, id, source, file_name_of(source), size, &|_| {})
            .await
            .map(Some)
    }

    async fn commit<H: BackupHost>(
        &self,
        _host: &H,
        record: &BackupRecord,
    ) -> Result<(), BackupError> {
        let json =
            serde_json::to_vec_pretty(record).map_err(|e| BackupError::target(&self.key, e))?;
        self.store
            .write_file(&format!("{BACKUPS}/{}/{RECORD_FILE}", record.id), &json)
            .await?;
        Ok(())
    }

    async fn list<H: BackupHost>(&self, _host: &H) -> Result<Vec<Listed>, BackupError> {
        self.list_local().await
    }

    async fn verify<H: BackupHost>(
        &self,
        _host: &H,
        record: &BackupRecord,
        progress: Progress<'_>,
    ) -> Result<Vec<String>, BackupError> {
        self.verify_local(record, progress).await
    }

    async fn place_disk<H: BackupHost>(
        &self,
        host: &H,
        _record: &BackupRecord,
        disk: &DiskBackup,
        staging: &str,
        progress: Progress<'_>,
    ) -> Result<PlacedDisk, BackupError> {
        host.make_directory(staging)
            .await
            .map_err(|e| BackupError::host(staging, e))?;
        for file in [&disk.descriptor, &disk.data] {
            let dest = format!("{staging}/{}", file.name);
            let mut attempt = 1;
            loop {
                match self.upload_file(host, file, &dest, progress).await {
                    Ok(()) => break,
                    Err(e) if attempt < UPLOAD_ATTEMPTS && !matches!(e, BackupError::Chunks(_)) => {
                        tracing::warn!(
                            "writing {dest}: {e}; trying again (attempt {})",
                            attempt + 1
                        );
                        tokio::time::sleep(std::time::Duration::from_millis(500 * attempt as u64))
                            .await;
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(PlacedDisk {
            path: format!("{staging}/{}", disk.descriptor.name),
            disposable: true,
        })
    }

    async fn delete<H: BackupHost>(&self, _host: &H, id: &str) -> Result<(), BackupError> {
        self.delete_local(id).await
    }

    async fn collect_garbage<H: BackupHost>(
        &self,
        _host: &H,
        live: &[BackupRecord],
    ) -> Result<u64, BackupError> {
        self.collect_garbage_local(live).await
    }
}
