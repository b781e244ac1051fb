//! What backups need from a host ([`BackupHost`]): one VM read as `observe` reads it,
//! snapshots, host-side disk copies and moves (`VirtualDiskManager`), datastore folders
//! (`FileManager`, `HostDatastoreBrowser`), and file transfer over the datastore HTTP interface
//! (`/folder`), streamed both ways in constant memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};

use super::EsxiClient;
use super::envelope::method_body;
use super::error::EsxiError;
use super::properties::{FilterSpec, VM_PATHS, fold_extra_config, observed_vm, traversal};
use super::vm::{copy_disk_body, snapshot_body, write_extra_config};
use super::xml::{Element, MoRef, XmlWriter};
use crate::backup::{BackupHost, DatastoreEntry, Download, VmConfig};
use crate::host::ObservedVm;

/// The datacenter path of `/folder` URLs: a standalone host has exactly this one.
const DATACENTER_PATH: &str = "ha-datacenter";
/// Limit of one transfer as a whole; stalls are caught by [`STALL_TIMEOUT`] instead (the SOAP
/// client's limit would cut off large disks on slow links).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// A transfer during which no byte moves for this long is given up.
const STALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How often an upload checks that bytes still move.
const STALL_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Bytes of an error response's body read for the error message.
const EXCERPT_BYTES: usize = 1024;
/// vim25 fault type of a path that is not `[datastore] path`.
const INVALID_DATASTORE_PATH: &str = "InvalidDatastorePath";
/// vim25 fault type of a missing file or folder.
const FILE_NOT_FOUND: &str = "FileNotFound";

/// Splits `[datastore] folder/file` into the datastore name and the path inside it (without
/// leading slashes; empty for the datastore's root).
pub(crate) fn split_datastore_path(path: &str) -> Option<(&str, &str)> {
    let (datastore, rest) = path.trim().strip_prefix('[')?.split_once(']')?;
    if datastore.is_empty() {
        return None;
    }
    Some((datastore, rest.trim_start().trim_start_matches('/')))
}

/// The error for a path that is not `[datastore] path`, as the host itself would name it.
fn invalid_path(method: &str, path: &str) -> EsxiError {
    EsxiError::Fault {
        method: method.to_owned(),
        fault: INVALID_DATASTORE_PATH.to_owned(),
        message: format!("{path:?} is not a datastore path such as \"[datastore1] folder/file\""),
    }
}

/// The `/folder` URL of a file: `https://HOST/folder/<path>?dcPath=ha-datacenter&dsName=<ds>`,
/// beside the `/sdk` endpoint of `sdk_address`, each path segment percent-encoded.
pub(crate) fn folder_url(
    sdk_address: &str,
    datastore: &str,
    file: &str,
) -> Result<reqwest::Url, String> {
    let sdk = reqwest::Url::parse(sdk_address).map_err(|e| e.to_string())?;
    let mut url = sdk.join("folder").map_err(|e| e.to_string())?;
    url.path_segments_mut()
        .map_err(|()| format!("{sdk_address} cannot carry a path"))?
        .extend(file.split('/').filter(|s| !s.is_empty()));
    url.query_pairs_mut()
        .clear()
        .append_pair("dcPath", DATACENTER_PATH)
        .append_pair("dsName", datastore);
    Ok(url)
}

/// The arguments of `VirtualDiskManager.MoveVirtualDisk_Task` (descriptor and data).
pub(crate) fn move_disk_body(
    disk_manager: &MoRef,
    datacenter: &MoRef,
    source: &str,
    dest: &str,
    force: bool,
) -> String {
    let mut w = method_body(disk_manager);
    w.leaf("sourceName", source)
        .moref("sourceDatacenter", datacenter)
        .leaf("destName", dest)
        .moref("destDatacenter", datacenter)
        .leaf("force", if force { "true" } else { "false" });
    w.finish()
}

/// The arguments of `HostDatastoreBrowser.SearchDatastore_Task`: every entry of one folder
/// (no recursion), typed (so folders are `FolderFileInfo`), with sizes.
pub(crate) fn search_body(browser: &MoRef, folder: &str) -> String {
    let mut w = method_body(browser);
    w.leaf("datastorePath", folder)
        .start("searchSpec")
        .start("details")
        .leaf("fileType", "true")
        .leaf("fileSize", "true")
        .leaf("modification", "false")
        .leaf("fileOwner", "false")
        .end("details")
        .leaf("matchPattern", "*")
        .end("searchSpec");
    w.finish()
}

/// The entries of a `HostDatastoreBrowserSearchResults` (the task's `info.result`), sorted by
/// name.
pub(crate) fn search_entries(result: &Element) -> Vec<DatastoreEntry> {
    let mut entries: Vec<DatastoreEntry> = result
        .children_named("file")
        .filter_map(|file| {
            let name = file.child_text("path")?.trim().trim_end_matches('/');
            let is_folder = file.type_name() == Some("FolderFileInfo");
            Some(DatastoreEntry {
                name: name.to_owned(),
                size: if is_folder {
                    0
                } else {
                    file.child_parse("fileSize").unwrap_or(0)
                },
                is_folder,
            })
        })
        .filter(|e| !e.name.is_empty())
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// What a VM has now that decides what a restore sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CurrentSettings {
    pub guest_id: String,
    /// extraConfig, folded.
    pub extra_config: BTreeMap<String, String>,
}

/// The `ReconfigVM_Task` spec that brings a VM back to `config`: cpu, memory, annotation,
/// every extraConfig key of `config`, every key the VM has now that `config` lacks set to
/// `""` (which removes it), the firmware when recorded, and the guest id when it differs
/// (hosts check a guest id sent against the ones they know, so an unchanged one is left out).
/// Devices are left out.
pub(crate) fn restore_config_spec(current: &CurrentSettings, config: &VmConfig) -> String {
    let mut extra = config.extra_config.clone();
    for key in current.extra_config.keys() {
        extra.entry(key.clone()).or_default();
    }
    // Schema order: guestId, annotation, numCPUs, memoryMB, extraConfig, firmware.
    let mut w = XmlWriter::new();
    w.start("spec");
    if !config.guest_id.is_empty() && config.guest_id != current.guest_id {
        w.leaf("guestId", &config.guest_id);
    }
    w.leaf("annotation", &config.annotation)
        .leaf("numCPUs", &config.cpu.to_string())
        .leaf("memoryMB", &config.memory_mib.to_string());
    write_extra_config(&mut w, &extra, false);
    if let Some(firmware) = config.firmware {
        w.leaf("firmware", &firmware.to_string());
    }
    w.end("spec");
    w.finish()
}

/// A download's body: the response's bytes with failures named (path, bytes received), a
/// stall after [`STALL_TIMEOUT`] turned into an error, and a body that ends before its
/// announced length reported as an error rather than as a short file.
fn download_body(
    response: reqwest::Response,
    address: String,
    path: String,
    len: Option<u64>,
) -> BoxStream<'static, Result<Bytes, EsxiError>> {
    struct State {
        body: BoxStream<'static, reqwest::Result<Bytes>>,
        received: u64,
        done: bool,
    }
    let failed = move |received: u64, why: String| EsxiError::Network {
        address: address.clone(),
        message: format!(
            "downloading {path} failed after {received}{} bytes: {why}",
            len.map_or_else(String::new, |l| format!(" of {l}"))
        ),
    };
    let state = State {
        body: response.bytes_stream().boxed(),
        received: 0,
        done: false,
    };
    stream::unfold(state, move |mut state| {
        let failed = failed.clone();
        async move {
            if state.done {
                return None;
            }
            let item = match tokio::time::timeout(STALL_TIMEOUT, state.body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    state.received += chunk.len() as u64;
                    if len.is_some_and(|l| state.received > l) {
                        Err(failed(state.received, "more bytes than announced".into()))
                    } else {
                        Ok(chunk)
                    }
                }
                Ok(Some(Err(e))) => Err(failed(
                    state.received,
                    crate::esxi::transport::error_chain(&e),
                )),
                Ok(None) => match len {
                    Some(l) if state.received < l => Err(failed(
                        state.received,
                        "the connection ended before the whole file arrived".into(),
                    )),
                    _ => return None,
                },
                Err(_) => Err(failed(
                    state.received,
                    format!("no data for {} s", STALL_TIMEOUT.as_secs()),
                )),
            };
            state.done = item.is_err();
            Some((item, state))
        }
    })
    .boxed()
}

/// The start of an error response's body (at most [`EXCERPT_BYTES`] are read: an unexpected
/// answer may be a whole disk).
async fn body_excerpt(mut response: reqwest::Response) -> String {
    let mut head = Vec::new();
    while head.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(EXCERPT_BYTES)]);
    let text = text.trim();
    let mut excerpt: String = text.chars().take(300).collect();
    if excerpt.len() < text.len() || head.len() > EXCERPT_BYTES {
        excerpt.push('…');
    }
    excerpt
}

impl EsxiClient {
    /// Makes sure the session cookie `/folder` transfers carry is valid: a cheap SOAP call
    /// (`CurrentTime`), which logs in again if the session expired (a long backup can outlast
    /// the host's idle timeout, and `/folder` answers 401 rather than re-authenticate).
    async fn refresh_session(&self) -> Result<(), EsxiError> {
        let w = method_body(&MoRef::new("ServiceInstance", "ServiceInstance"));
        self.call("CurrentTime", &w.finish()).await.map(|_| ())
    }

    /// The host's `FileManager`.
    async fn file_manager(&self) -> Result<MoRef, EsxiError> {
        self.service
            .file_manager
            .clone()
            .ok_or_else(|| EsxiError::Inventory {
                address: self.transport.address().to_owned(),
                message: "the host has no FileManager to manage datastore folders with".into(),
            })
    }

    /// The `VirtualDiskManager`, which every ESXi host has.
    fn disk_manager(&self) -> Result<&MoRef, EsxiError> {
        self.service
            .virtual_disk_manager
            .as_ref()
            .ok_or_else(|| EsxiError::Inventory {
                address: self.transport.address().to_owned(),
                message: "the host has no VirtualDiskManager to copy disks with".into(),
            })
    }

    /// The `HostDatastoreBrowser` of the datastore named `datastore` (one read).
    async fn datastore_browser(&self, datastore: &str) -> Result<MoRef, EsxiError> {
        let spec = FilterSpec::new()
            .props("Datastore", &["name", "browser"])
            .object(&self.service.root_folder, true, |w| {
                traversal(
                    w,
                    "folderChildren",
                    "Folder",
                    "childEntity",
                    &["folderChildren", "datacenterDatastores"],
                );
                traversal(w, "datacenterDatastores", "Datacenter", "datastore", &[]);
            });
        let objects = self.retrieve(&spec).await?;
        objects
            .iter()
            .filter(|o| o.prop_text("name") == Some(datastore))
            .find_map(|o| o.prop("browser").and_then(Element::as_moref))
            .ok_or_else(|| EsxiError::Fault {
                method: "SearchDatastore_Task".into(),
                fault: "InvalidDatastore".into(),
                message: format!("the host has no datastore named {datastore:?}"),
            })
    }

    /// The `/folder` URL of a `[datastore] path`.
    fn datastore_file_url(&self, method: &str, path: &str) -> Result<reqwest::Url, EsxiError> {
        let (datastore, file) =
            split_datastore_path(path).ok_or_else(|| invalid_path(method, path))?;
        if file.is_empty() {
            return Err(invalid_path(method, path));
        }
        folder_url(self.transport.address(), datastore, file).map_err(|message| {
            EsxiError::InvalidAddress {
                address: self.transport.address().to_owned(),
                reason: message,
            }
        })
    }

    /// An HTTP status that is not the expected one, naming the request and the file.
    async fn transfer_refused(&self, request: &str, response: reqwest::Response) -> EsxiError {
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return EsxiError::Fault {
                method: request.to_owned(),
                fault: FILE_NOT_FOUND.to_owned(),
                message: "the host has no such file (HTTP 404)".to_owned(),
            };
        }
        let body = if status.is_success() {
            format!(
                "expected {}",
                if status == reqwest::StatusCode::PARTIAL_CONTENT {
                    "the whole file (200)"
                } else {
                    "the requested range (206 Partial Content)"
                }
            )
        } else {
            body_excerpt(response).await
        };
        EsxiError::Http {
            address: self.transport.address().to_owned(),
            method: request.to_owned(),
            status: status.as_u16(),
            body,
        }
    }
}

impl BackupHost for EsxiClient {
    /// Finds the VM by name (one read of every VM's name), then reads it with the properties of
    /// the bulk observe (one more read).
    async fn vm_for_backup(&self, name: &str) -> Result<Option<ObservedVm>, EsxiError> {
        let mut matches = self.vms_named(name).await?;
        matches.sort();
        matches.dedup();
        let vm_ref = match matches.len() {
            0 => return Ok(None),
            1 => matches.remove(0),
            _ => {
                return Err(EsxiError::AmbiguousVm {
                    vm: name.to_owned(),
                    morefs: matches.into_iter().map(|m| m.value).collect(),
                });
            }
        };
        // A VM deleted between the two reads comes back without properties.
        Ok(self
            .retrieve_one(&vm_ref, VM_PATHS)
            .await?
            .filter(|o| o.prop("name").is_some())
            .map(|o| observed_vm(&o)))
    }

    async fn create_snapshot(
        &self,
        vm_moref: &str,
        vm: &str,
        name: &str,
        description: &str,
        quiesce: bool,
    ) -> Result<String, EsxiError> {
        const METHOD: &str = "CreateSnapshot_Task";
        let vm_ref = MoRef::new("VirtualMachine", vm_moref);
        let body = snapshot_body(&vm_ref, name, description, quiesce);
        let result = self
            .run_task(METHOD, &body, vm)
            .await
            .map_err(|e| match e.fault_type() {
                Some("ManagedObjectNotFound") => EsxiError::VmNotFound { vm: vm.to_owned() },
                _ => e,
            })?;
        result
            .and_then(|r| r.as_moref())
            .map(|snapshot| snapshot.value)
            .ok_or_else(|| EsxiError::Protocol {
                address: self.transport.address().to_owned(),
                method: METHOD.into(),
                message: format!("the task result holds no snapshot reference (VM {vm:?})"),
            })
    }

    async fn remove_snapshot(
        &self,
        _vm_moref: &str,
        vm: &str,
        snapshot_moref: &str,
    ) -> Result<bool, EsxiError> {
        let snapshot = MoRef::new("VirtualMachineSnapshot", snapshot_moref);
        EsxiClient::remove_snapshot(self, &snapshot, vm).await
    }

    async fn copy_disk(&self, source: &str, dest: &str) -> Result<(), EsxiError> {
        let disk_manager = self.disk_manager()?;
        let placement = self.placement().await?;
        let body = copy_disk_body(disk_manager, &placement.datacenter, source, dest);
        self.run_task("CopyVirtualDisk_Task", &body, source).await?;
        Ok(())
    }

    async fn move_disk(&self, source: &str, dest: &str, force: bool) -> Result<(), EsxiError> {
        let disk_manager = self.disk_manager()?;
        let placement = self.placement().await?;
        let body = move_disk_body(disk_manager, &placement.datacenter, source, dest, force);
        self.run_task("MoveVirtualDisk_Task", &body, source).await?;
        Ok(())
    }

    async fn make_directory(&self, path: &str) -> Result<(), EsxiError> {
        const METHOD: &str = "MakeDirectory";
        let file_manager = self.file_manager().await?;
        let placement = self.placement().await?;
        let mut w = method_body(&file_manager);
        w.leaf("name", path)
            .moref("datacenter", &placement.datacenter)
            .leaf("createParentDirectories", "true");
        match self.call(METHOD, &w.finish()).await {
            Ok(_) => Ok(()),
            Err(e) if e.fault_type() == Some("FileAlreadyExists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_path(&self, path: &str) -> Result<bool, EsxiError> {
        let file_manager = self.file_manager().await?;
        let placement = self.placement().await?;
        let mut w = method_body(&file_manager);
        w.leaf("name", path)
            .moref("datacenter", &placement.datacenter);
        match self
            .run_task("DeleteDatastoreFile_Task", &w.finish(), path)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.fault_type() == Some(FILE_NOT_FOUND) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn list_folder(&self, path: &str) -> Result<Vec<DatastoreEntry>, EsxiError> {
        const METHOD: &str = "SearchDatastore_Task";
        let (datastore, _) =
            split_datastore_path(path).ok_or_else(|| invalid_path(METHOD, path))?;
        let browser = self.datastore_browser(datastore).await?;
        match self
            .run_task(METHOD, &search_body(&browser, path), path)
            .await
        {
            Ok(result) => Ok(result.as_ref().map(search_entries).unwrap_or_default()),
            Err(e) if e.fault_type() == Some(FILE_NOT_FOUND) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Checks the status before handing out the body: 404 is `FileNotFound`, a ranged request
    /// must be answered `206` from exactly `offset`. A body that breaks off is an error from
    /// the stream, never a short file.
    async fn download(&self, path: &str, offset: u64) -> Result<Download<EsxiError>, EsxiError> {
        self.refresh_session().await?;
        let request_name = format!("GET {path}");
        let url = self.datastore_file_url(&request_name, path)?;
        let mut request = self
            .transport
            .request(reqwest::Method::GET, url)
            .timeout(TRANSFER_TIMEOUT);
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport.map_send_error(&e))?;
        let status = response.status();
        let expected = if offset > 0 {
            status == reqwest::StatusCode::PARTIAL_CONTENT
        } else {
            status.is_success() && status != reqwest::StatusCode::PARTIAL_CONTENT
        };
        if !expected {
            return Err(self.transfer_refused(&request_name, response).await);
        }
        if offset > 0 {
            let range = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !range.starts_with(&format!("bytes {offset}-")) {
                return Err(EsxiError::Protocol {
                    address: self.transport.address().to_owned(),
                    method: request_name,
                    message: format!(
                        "asked for the bytes from {offset} on, got Content-Range {range:?}"
                    ),
                });
            }
        }
        let len = response.content_length();
        tracing::debug!(path, offset, len, "datastore download");
        Ok(Download {
            len,
            body: download_body(
                response,
                self.transport.address().to_owned(),
                path.to_owned(),
                len,
            ),
        })
    }

    /// Sends `Content-Length: len` and the body as it comes. A body shorter or longer than
    /// `len` fails the upload (the request is aborted, never completed short), as does a
    /// transfer in which nothing moves for five minutes.
    async fn upload(
        &self,
        path: &str,
        len: u64,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> Result<(), EsxiError> {
        self.refresh_session().await?;
        let request_name = format!("PUT {path}");
        let url = self.datastore_file_url(&request_name, path)?;
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        let counted = body.and_then(move |chunk| {
            let total =
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            futures::future::ready(if total > len {
                Err(std::io::Error::other(format!(
                    "the data to upload is longer than the {len} bytes announced"
                )))
            } else {
                Ok(chunk)
            })
        });
        let counter = Arc::clone(&sent);
        let complete = stream::once(async move {
            let total = counter.load(Ordering::Relaxed);
            if total == len {
                Ok(Bytes::new())
            } else {
                Err(std::io::Error::other(format!(
                    "the data to upload ended after {total} of {len} bytes"
                )))
            }
        });
        let request = self
            .transport
            .request(reqwest::Method::PUT, url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .timeout(TRANSFER_TIMEOUT)
            .body(reqwest::Body::wrap_stream(counted.chain(complete)));
        tracing::debug!(path, len, "datastore upload");
        let failed = |message: String| EsxiError::Network {
            address: self.transport.address().to_owned(),
            message: format!(
                "uploading {path} failed after {} of {len} bytes: {message}",
                sent.load(Ordering::Relaxed)
            ),
        };
        let stalled = async {
            let mut last = sent.load(Ordering::Relaxed);
            let mut last_change = Instant::now();
            loop {
                tokio::time::sleep(STALL_CHECK_EVERY).await;
                let now = sent.load(Ordering::Relaxed);
                if now != last {
                    (last, last_change) = (now, Instant::now());
                } else if last_change.elapsed() >= STALL_TIMEOUT {
                    return;
                }
            }
        };
        let response = tokio::select! {
            response = request.send() => response.map_err(|e| {
                match self.transport.map_send_error(&e) {
                    EsxiError::Network { message, .. } => failed(message),
                    other => other,
                }
            })?,
            () = stalled => {
                return Err(failed(format!("nothing moved for {} s", STALL_TIMEOUT.as_secs())));
            }
        };
        if !response.status().is_success() {
            return Err(self.transfer_refused(&request_name, response).await);
        }
        Ok(())
    }

    /// Reads the VM's guest id and extraConfig first (one read) to know which keys to remove.
    async fn restore_config(
        &self,
        vm_moref: &str,
        vm: &str,
        config: &VmConfig,
    ) -> Result<(), EsxiError> {
        let vm_ref = MoRef::new("VirtualMachine", vm_moref);
        let o = self
            .read_vm(&vm_ref, vm, &["config.guestId", "config.extraConfig"])
            .await?;
        let current = CurrentSettings {
            guest_id: o
                .prop_text("config.guestId")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            extra_config: o
                .prop("config.extraConfig")
                .map(fold_extra_config)
                .unwrap_or_default(),
        };
        let spec = restore_config_spec(&current, config);
        self.reconfig_task(&vm_ref, vm, &spec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::xml::parse;
    use crate::host::Firmware;

    #[test]
    fn datastore_paths_split_into_datastore_and_path() {
        assert_eq!(
            split_datastore_path("[datastore 1] backups/web 01/disk.vmdk"),
            Some(("datastore 1", "backups/web 01/disk.vmdk"))
        );
        assert_eq!(
            split_datastore_path(" [ds]/a/b "),
            Some(("ds", "a/b")),
            "the simulator's form without a space"
        );
        assert_eq!(split_datastore_path("[ds]"), Some(("ds", "")));
        assert_eq!(split_datastore_path("ds/a"), None);
        assert_eq!(split_datastore_path("[] a"), None);
        assert_eq!(split_datastore_path("[ds a"), None);
    }

    #[test]
    fn folder_urls_sit_beside_sdk_with_each_segment_encoded() {
        let url = folder_url(
            "https://esxi-01:8443/sdk",
            "datastore 1",
            "backups/web #1/disk?.vmdk",
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            "https://esxi-01:8443/folder/backups/web%20%231/disk%3F.vmdk\
             ?dcPath=ha-datacenter&dsName=datastore+1"
        );
        assert_eq!(
            url.path_segments().map(|s| s.count()),
            Some(4),
            "folder, backups, web #1, disk?.vmdk"
        );
    }

    #[test]
    fn move_replaces_only_when_forced() {
        let body = move_disk_body(
            &MoRef::new("VirtualDiskManager", "ha-vdiskmanager"),
            &MoRef::new("Datacenter", "ha-datacenter"),
            "[ds] b/new.vmdk",
            "[ds] vm/vm.vmdk",
            true,
        );
        assert_eq!(
            body,
            "<_this type=\"VirtualDiskManager\">ha-vdiskmanager</_this>\
             <sourceName>[ds] b/new.vmdk</sourceName>\
             <sourceDatacenter type=\"Datacenter\">ha-datacenter</sourceDatacenter>\
             <destName>[ds] vm/vm.vmdk</destName>\
             <destDatacenter type=\"Datacenter\">ha-datacenter</destDatacenter>\
             <force>true</force>"
        );
    }

    #[test]
    fn search_asks_for_every_entry_typed_with_sizes() {
        let body = search_body(
            &MoRef::new("HostDatastoreBrowser", "hostdatastorebrowser-7"),
            "[ds] backups",
        );
        assert!(
            body.ends_with(
                "<datastorePath>[ds] backups</datastorePath><searchSpec><details>\
                 <fileType>true</fileType><fileSize>true</fileSize>\
                 <modification>false</modification><fileOwner>false</fileOwner></details>\
                 <matchPattern>*</matchPattern></searchSpec>"
            ),
            "{body}"
        );
    }

    #[test]
    fn search_results_tell_folders_from_files() {
        let root = parse(
            r#"<val xmlns:x="http://www.w3.org/2001/XMLSchema-instance" x:type="HostDatastoreBrowserSearchResults">
                <datastore type="Datastore">ds-1</datastore><folderPath>[ds] backups</folderPath>
                <file x:type="VmDiskFileInfo"><path>disk-flat.vmdk</path><fileSize>3145728</fileSize></file>
                <file x:type="FolderFileInfo"><path>chunks</path><fileSize>4096</fileSize></file>
                <file x:type="FileInfo"><path>manifest.json</path><fileSize>120</fileSize></file>
                <file x:type="FileInfo"><path>empty</path></file>
            </val>"#,
        )
        .expect("xml");
        let entry = |name: &str, size: u64, is_folder: bool| DatastoreEntry {
            name: name.into(),
            size,
            is_folder,
        };
        assert_eq!(
            search_entries(&root),
            [
                entry("chunks", 0, true),
                entry("disk-flat.vmdk", 3_145_728, false),
                entry("empty", 0, false),
                entry("manifest.json", 120, false),
            ]
        );
    }

    #[test]
    fn restore_sets_the_recorded_settings_and_removes_keys_added_since() {
        let config = VmConfig {
            name: "web".into(),
            guest_id: "debian12_64Guest".into(),
            cpu: 2,
            memory_mib: 2048,
            firmware: Some(Firmware::Efi),
            annotation: "Owner: ops & co".into(),
            extra_config: BTreeMap::from([("ceso.managed".into(), "web".into())]),
            ..VmConfig::default()
        };
        let current = CurrentSettings {
            guest_id: "otherGuest".into(),
            extra_config: BTreeMap::from([
                ("ceso.managed".to_owned(), "other".to_owned()),
                ("added.later".to_owned(), "x".to_owned()),
            ]),
        };
        assert_eq!(
            restore_config_spec(&current, &config),
            "<spec><guestId>debian12_64Guest</guestId><annotation>Owner: ops &amp; co</annotation>\
             <numCPUs>2</numCPUs><memoryMB>2048</memoryMB>\
             <extraConfig><key>added.later</key><value xsi:type=\"xsd:string\"></value></extraConfig>\
             <extraConfig><key>ceso.managed</key><value xsi:type=\"xsd:string\">web</value></extraConfig>\
             <firmware>efi</firmware></spec>"
        );
        let unchanged_guest = CurrentSettings {
            guest_id: "debian12_64Guest".into(),
            extra_config: BTreeMap::new(),
        };
        let without_firmware = VmConfig {
            firmware: None,
            annotation: String::new(),
            ..config
        };
        let spec = restore_config_spec(&unchanged_guest, &without_firmware);
        assert!(!spec.contains("firmware"), "{spec}");
        assert!(
            !spec.contains("guestId"),
            "an unchanged guest id is not sent: {spec}"
        );
        assert!(
            spec.contains("<annotation></annotation>"),
            "an empty annotation clears the notes: {spec}"
        );
    }
}
