//! The `datastore` target: a folder on a datastore of the VM's own host. Disks are copied on
//! the host (`CopyVirtualDisk_Task`), so their bytes never cross the network on the way in;
//! ceso then reads each copy once to record its SHA-256, which is what `verify` checks later.
//!
//! Layout: `[datastore] <folder>/<backup id>/` holding the disk copies, the `.vmx` and `.nvram`,
//! and `record.json`, written last.

use bytes::Bytes;
use futures::StreamExt;

use super::error::BackupError;
use super::host::BackupHost;
use super::record::{BackupRecord, DiskBackup, FileBackup, data_file_of, file_name_of};
use super::target::{
    BackupTarget, Listed, PlacedDisk, Progress, TransferProgress, resumable_download, size_on_host,
};

/// Name of the record file in each backup's folder.
pub const RECORD_FILE: &str = "record.json";

/// A folder on one host's datastore.
#[derive(Debug, Clone)]
pub struct DatastoreTarget {
    key: String,
    /// `[datastore] folder`
    base: String,
}

impl DatastoreTarget {
    /// The folder `folder` on datastore `datastore` of host `host` (the Host manifest name).
    pub fn new(host: &str, datastore: &str, folder: &str) -> Self {
        let folder = folder.trim_matches('/');
        let base = format!("[{datastore}] {folder}");
        DatastoreTarget {
            key: format!("datastore:{host}:{base}"),
            base,
        }
    }

    fn backup_folder(&self, id: &str) -> String {
        format!("{}/{id}", self.base)
    }

    /// Reads a host file to its end, returning its size and SHA-256.
    async fn fingerprint<H: BackupHost>(
        &self,
        host: &H,
        path: &str,
        name: &str,
        progress: Progress<'_>,
        total: u64,
    ) -> Result<(u64, String), BackupError> {
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        let mut body = std::pin::pin!(resumable_download(host, path));
        while let Some(bytes) = body.next().await {
            let bytes = bytes?;
            hash.update(&bytes);
            size += bytes.len() as u64;
            progress(TransferProgress {
                file: name,
                done: size,
                total,
            });
        }
        Ok((size, hex::encode(hash.finish().as_ref())))
    }

    /// Copies a small host file through ceso (the host API copies no plain files between
    /// folders on every version), hashing it on the way.
    async fn copy_small_file<H: BackupHost>(
        &self,
        host: &H,
        source: &str,
        dest: &str,
    ) -> Result<Option<FileBackup>, BackupError> {
        let Some(size) = size_on_host(host, source).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(size.min(16 << 20) as usize);
        let mut body = std::pin::pin!(resumable_download(host, source));
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
        self.put(host, dest, Bytes::from(bytes.clone())).await?;
        Ok(Some(FileBackup {
            name: file_name_of(source).to_owned(),
            size: bytes.len() as u64,
            sha256,
            location: dest.to_owned(),
            new_bytes: bytes.len() as u64,
        }))
    }

    async fn put<H: BackupHost>(
        &self,
        host: &H,
        path: &str,
        bytes: Bytes,
    ) -> Result<(), BackupError> {
        let len = bytes.len() as u64;
        let body = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) }).boxed();
        host.upload(path, len, body)
            .await
            .map_err(|e| BackupError::target(&self.key, format!("writing {path}: {e}")))
    }

    async fn get_small<H: BackupHost>(&self, host: &H, path: &str) -> Result<Vec<u8>, BackupError> {
        let mut bytes = Vec::new();
        let mut body = std::pin::pin!(resumable_download(host, path));
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() > 64 << 20 {
                return Err(BackupError::target(
                    &self.key,
                    format!("{path} is too large for a record"),
                ));
            }
        }
        Ok(bytes)
    }
}

impl BackupTarget for DatastoreTarget {
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
        let folder = self.backup_folder(id);
        host.make_directory(&folder)
            .await
            .map_err(|e| BackupError::target(&self.key, format!("creating {folder}: {e}")))?;
        let name = file_name_of(source);
        let dest = format!("{folder}/{name}");
        progress(TransferProgress {
            file: name,
            done: 0,
            total: 0,
        });
        host.copy_disk(source, &dest)
            .await
            .map_err(|e| BackupError::host(source, format!("copying to {dest}: {e}")))?;
        let data_path = data_file_of(&dest).ok_or_else(|| {
            BackupError::target(&self.key, format!("{dest} is not a .vmdk descriptor"))
        })?;
        let data_total = size_on_host(host, &data_path).await?.unwrap_or(0);
        let (descriptor_size, descriptor_sha) =
            self.fingerprint(host, &dest, name, &|_| {}, 0).await?;
        let data_name = file_name_of(&data_path).to_owned();
        let (data_size, data_sha) = self
            .fingerprint(host, &data_path, &data_name, progress, data_total)
            .await?;
        Ok((
            FileBackup {
                name: name.to_owned(),
                size: descriptor_size,
                sha256: descriptor_sha,
                location: dest.clone(),
                new_bytes: descriptor_size,
            },
            FileBackup {
                name: data_name,
                size: data_size,
                sha256: data_sha,
                location: data_path,
                new_bytes: data_size,
            },
        ))
    }

    async fn store_file<H: BackupHost>(
        &self,
        host: &H,
        id: &str,
        source: &str,
    ) -> Result<Option<FileBackup>, BackupError> {
        let dest = format!("{}/{}", self.backup_folder(id), file_name_of(source));
        self.copy_small_file(host, source, &dest).await
    }

    async fn commit<H: BackupHost>(
        &self,
        host: &H,
        record: &BackupRecord,
    ) -> Result<(), BackupError> {
        let json =
            serde_json::to_vec_pretty(record).map_err(|e| BackupError::target(&self.key, e))?;
        let path = format!("{}/{RECORD_FILE}", self.backup_folder(&record.id));
        self.put(host, &path, Bytes::from(json)).await
    }

    async fn list<H: BackupHost>(&self, host: &H) -> Result<Vec<Listed>, BackupError> {
        let entries = host
            .list_folder(&self.base)
            .await
            .map_err(|e| BackupError::target(&self.key, e))?;
        let mut listed = Vec::new();
        for entry in entries.iter().filter(|e| e.is_folder) {
            let folder = self.backup_folder(&entry.name);
            let files = host
                .list_folder(&folder)
                .await
                .map_err(|e| BackupError::target(&self.key, e))?;
            if !files.iter().any(|f| f.name == RECORD_FILE) {
                listed.push(Listed::Incomplete {
                    id: entry.name.clone(),
                    reason: "no record: the backup did not finish".into(),
                });
                continue;
            }
            let bytes = self
                .get_small(host, &format!("{folder}/{RECORD_FILE}"))
                .await?;
            listed.push(super::parse_record(&bytes, &entry.name, &self.key));
        }
        Ok(listed)
    }

    async fn verify<H: BackupHost>(
        &self,
        host: &H,
        record: &BackupRecord,
        progress: Progress<'_>,
    ) -> Result<Vec<String>, BackupError> {
        let mut problems = Vec::new();
        for file in record.all_files() {
            match self
                .fingerprint(host, &file.location, &file.name, progress, file.size)
                .await
            {
                Ok((size, _)) if size != file.size => problems.push(format!(
                    "{}: {size} bytes, the backup recorded {}",
                    file.location, file.size
                )),
                Ok((_, sha)) if sha != file.sha256 => problems.push(format!(
                    "{}: content hash is {sha}, the backup recorded {}",
                    file.location, file.sha256
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("{}: cannot be read: {e}", file.location)),
            }
        }
        Ok(problems)
    }

    async fn place_disk<H: BackupHost>(
        &self,
        _host: &H,
        _record: &BackupRecord,
        disk: &DiskBackup,
        _staging: &str,
        _progress: Progress<'_>,
    ) -> Result<PlacedDisk, BackupError> {
        Ok(PlacedDisk {
            path: disk.descriptor.location.clone(),
            disposable: false,
        })
    }

    async fn delete<H: BackupHost>(&self, host: &H, id: &str) -> Result<(), BackupError> {
        let folder = self.backup_folder(id);
        host.delete_path(&format!("{folder}/{RECORD_FILE}"))
            .await
            .map_err(|e| BackupError::target(&self.key, format!("deleting {folder}: {e}")))?;
        host.delete_path(&folder)
            .await
            .map_err(|e| BackupError::target(&self.key, format!("deleting {folder}: {e}")))?;
        Ok(())
    }

    async fn collect_garbage<H: BackupHost>(
        &self,
        host: &H,
        live: &[BackupRecord],
    ) -> Result<u64, BackupError> {
        let mut freed = 0;
        for listed in self.list(host).await? {
            if let Listed::Incomplete { id, .. } = listed
                && !live.iter().any(|r| r.id == id)
            {
                let folder = self.backup_folder(&id);
                for f in host
                    .list_folder(&folder)
                    .await
                    .map_err(|e| BackupError::target(&self.key, e))?
                {
                    freed += f.size;
                }
                host.delete_path(&folder).await.map_err(|e| {
                    BackupError::target(&self.key, format!("deleting {folder}: {e}"))
                })?;
            }
        }
        Ok(freed)
    }
}
