//! Taking and restoring backups: the sequences of host operations, written once for every
//! target. A backup snapshots the VM, copies every disk and its configuration to the target,
//! always removes the snapshot, and writes the record last; a restore in place powers the VM
//! off, swaps in the backed-up disks and configuration, and powers it back as it was.

use futures::StreamExt;
use jiff::Timestamp;

use crate::host::{HostOp, ObservedVm, PowerState};

use super::VmConfig;
use super::error::BackupError;
use super::host::BackupHost;
use super::record::{
    BACKUP_SNAPSHOT_PREFIX, BackupRecord, RECORD_FORMAT, file_name_of, folder_of, is_delta_disk,
    new_backup_id,
};
use super::target::{BackupTarget, Progress};

/// What to back up, and how.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub vm: String,
    /// The Host manifest the VM is on.
    pub host: String,
    pub policy: Option<String>,
    /// Quiesce the guest's file systems when VMware Tools run.
    pub quiesce: bool,
    /// The VM's manifest text, stored with the backup.
    pub manifest: Option<String>,
    /// Ids already taken on the target (a new id never reuses one).
    pub taken_ids: Vec<String>,
}

/// A finished backup and what the user should know about it.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub record: BackupRecord,
    /// Things that went wrong without spoiling the backup (a stray snapshot that could not be
    /// removed, quiescing that failed and was done without).
    pub warnings: Vec<String>,
}

/// Backs up one VM to `target`. Nothing is recorded unless every file was stored; the
/// snapshot is removed whatever happens, and one left by an earlier, killed run is removed
/// first.
///
/// When `stop` completes (Ctrl-C) while disks are being copied, the copy is abandoned, the
/// snapshot removed, and [`BackupError::Interrupted`] returned.
pub async fn create_backup<H: BackupHost, T: BackupTarget>(
    host: &H,
    target: &T,
    request: &BackupRequest,
    progress: Progress<'_>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<BackupOutcome, BackupError> {
    let vm = request.vm.as_str();
    let view = read_vm(host, vm, &request.host).await?;
    let mut warnings = remove_stray_snapshots(host, &view).await;

    let started = Timestamp::now();
    let id = unique_id(vm, started, &request.taken_ids);
    let runs = view.power == Some(PowerState::PoweredOn);
    let want_quiesce = request.quiesce && runs && view.tools_running;
    let snapshot_name = format!("{BACKUP_SNAPSHOT_PREFIX}{id}");
    let description = "taken by ceso for a backup; removed when the backup ends";
    let (snapshot, quiesced) = match host
        .create_snapshot(&view.moref, vm, &snapshot_name, description, want_quiesce)
        .await
    {
        Ok(s) => (s, want_quiesce),
        Err(e) if want_quiesce => {
            warnings.push(format!(
                "quiescing the guest failed ({e}); the backup is crash-consistent instead"
            ));
            let s = host
                .create_snapshot(&view.moref, vm, &snapshot_name, description, false)
                .await
                .map_err(|e| BackupError::host(vm, format!("taking the snapshot: {e}")))?;
            (s, false)
        }
        Err(e) => return Err(BackupError::host(vm, format!("taking the snapshot: {e}"))),
    };
    tracing::info!("{vm}: snapshot {snapshot_name:?} taken (quiesced: {quiesced})");

    let copied = tokio::select! {
        copied = copy_everything(host, target, &view, &id, progress) => copied,
        () = stop => Err(BackupError::Interrupted),
    };

    let removed = host.remove_snapshot(&view.moref, vm, &snapshot).await;
    match &removed {
        Ok(_) => tracing::info!("{vm}: snapshot {snapshot_name:?} removed"),
        Err(e) => warnings.push(format!(
            "removing the snapshot {snapshot_name:?} failed ({e}); the next backup of {vm} \
             removes it"
        )),
    }
    let (disks, files, bytes_read, bytes_new) = copied?;
    let record = BackupRecord {
        format: RECORD_FORMAT,
        id,
        vm: vm.to_owned(),
        host: request.host.clone(),
        policy: request.policy.clone(),
        target: target.key().to_owned(),
        started,
        finished: Timestamp::now(),
        quiesced,
        power: view.power,
        config: VmConfig::from(&view),
        disks,
        files,
        manifest: request.manifest.clone(),
        bytes_read,
        bytes_new,
    };
    target.commit(host, &record).await?;
    Ok(BackupOutcome { record, warnings })
}

/// The VM named `vm` on `host_name`, or [`BackupError::VmNotFound`].
async fn read_vm<H: BackupHost>(
    host: &H,
    vm: &str,
    host_name: &str,
) -> Result<ObservedVm, BackupError> {
    host.vm_for_backup(vm)
        .await
        .map_err(|e| BackupError::host(vm, e))?
        .ok_or_else(|| BackupError::VmNotFound {
            vm: vm.to_owned(),
            host: host_name.to_owned(),
        })
}

type Copied = (
    Vec<super::record::DiskBackup>,
    Vec<super::record::FileBackup>,
    u64,
    u64,
);

/// Copies every disk and the small files of the VM.
async fn copy_everything<H: BackupHost, T: BackupTarget>(
    host: &H,
    target: &T,
    view: &ObservedVm,
    id: &str,
    progress: Progress<'_>,
) -> Result<Copied, BackupError> {
    let mut disks = Vec::new();
    let mut read = 0;
    let mut new = 0;
    for disk in &view.disks {
        let (descriptor, data) = target
            .store_disk(host, id, &disk.file_name, progress)
            .await?;
        read += descriptor.size + data.size;
        new += descriptor.new_bytes + data.new_bytes;
        disks.push(super::record::DiskBackup {
            key: disk.key,
            source: disk.file_name.clone(),
            capacity_bytes: disk.capacity_bytes,
            descriptor,
            data,
        });
    }
    let mut files = Vec::new();
    let vmx = view.vmx_path.clone();
    let nvram = vmx.strip_suffix(".vmx").map(|stem| format!("{stem}.nvram"));
    for path in std::iter::once(vmx).chain(nvram) {
        if path.is_empty() {
            continue;
        }
        if let Some(file) = target.store_file(host, id, &path).await? {
            read += file.size;
            new += file.new_bytes;
            files.push(file);
        }
    }
    Ok((disks, files, read, new))
}

/// Removes snapshots named like ours (left by a backup that was killed); says what it did
/// or could not do. The VM's own snapshots are never touched.
async fn remove_stray_snapshots<H: BackupHost>(host: &H, view: &ObservedVm) -> Vec<String> {
    let mut warnings = Vec::new();
    for snapshot in view
        .snapshots
        .iter()
        .filter(|s| s.name.starts_with(BACKUP_SNAPSHOT_PREFIX))
    {
        match host
            .remove_snapshot(&view.moref, &view.name, &snapshot.moref)
            .await
        {
            Ok(_) => warnings.push(format!(
                "removed the snapshot {:?} an earlier backup left on {}",
                snapshot.name, view.name
            )),
            Err(e) => warnings.push(format!(
                "could not remove the snapshot {:?} an earlier backup left on {}: {e}",
                snapshot.name, view.name
            )),
        }
    }
    warnings
}

/// `<vm>-<time>`, with a suffix when that id is taken.
fn unique_id(vm: &str, at: Timestamp, taken: &[String]) -> String {
    let base = new_backup_id(vm, at);
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken.contains(id))
        .unwrap_or(base)
}

/// How a running VM is brought down for a restore in place.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownPolicy {
    pub timeout_secs: u64,
    /// Power off hard when the guest does not shut down in time (or has no Tools).
    pub force: bool,
}

/// What a restore in place did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    pub disks_restored: usize,
    /// The VM was running and was powered back on.
    pub powered_on: bool,
}

/// Checks that `vm` can take the backup's disks in place: the same disk files, and no
/// snapshots (replacing a disk under a snapshot would corrupt its chain).
pub fn check_restorable_in_place(
    vm: &ObservedVm,
    record: &BackupRecord,
) -> Result<(), BackupError> {
    if let Some(s) = vm.snapshots.first() {
        return Err(BackupError::Refused {
            message: format!(
                "{} has snapshots (e.g. {:?}); replacing its disks would break them",
                vm.name, s.name
            ),
            hint: "remove the VM's snapshots first (ceso never deletes them), or restore \
                   --as-new NAME"
                .into(),
        });
    }
    let now: Vec<&str> = vm.disks.iter().map(|d| d.file_name.as_str()).collect();
    let then: Vec<&str> = record.disks.iter().map(|d| d.source.as_str()).collect();
    if now != then || now.iter().any(|d| is_delta_disk(d)) {
        return Err(BackupError::Refused {
            message: format!(
                "{} now has the disks [{}], the backup has [{}]",
                vm.name,
                now.join(", "),
                then.join(", ")
            ),
            hint: "restore it as a new VM instead: ceso backup restore ID --as-new NAME".into(),
        });
    }
    Ok(())
}

/// Restores a backup over its VM: shuts it down, puts each backed-up disk in place (staged
/// beside it first, then moved over the current disk), restores the settings, and powers the
/// VM back on if it ran. Stopping before the first disk is swapped leaves the VM as it was
/// (and powers it back on); stopping later leaves it off, and the same restore finishes it.
pub async fn restore_in_place<H: BackupHost, T: BackupTarget>(
    host: &H,
    target: &T,
    record: &BackupRecord,
    shutdown: ShutdownPolicy,
    progress: Progress<'_>,
) -> Result<RestoreOutcome, BackupError> {
    let vm = record.vm.as_str();
    let mut view = read_vm(host, vm, &record.host).await?;
    // A snapshot an interrupted backup left is ceso's own: remove it rather than refuse.
    if view
        .snapshots
        .iter()
        .any(|s| s.name.starts_with(BACKUP_SNAPSHOT_PREFIX))
    {
        for warning in remove_stray_snapshots(host, &view).await {
            tracing::warn!("{warning}");
        }
        view = read_vm(host, vm, &record.host).await?;
    }
    check_restorable_in_place(&view, record)?;
    let staging = format!("{}/ceso-restore-{}", folder_of(&view.vmx_path), record.id);
    let marker = format!("{staging}/{POWER_ON_MARKER}");
    let was_on = view.power == Some(PowerState::PoweredOn);
    // An interrupted run of this same restore shut the VM down: it ran before.
    let resumed_on = !was_on
        && host
            .list_folder(&staging)
            .await
            .is_ok_and(|entries| entries.iter().any(|e| e.name == POWER_ON_MARKER));
    let power_on_after = was_on || resumed_on;
    let moref = Some(view.moref.clone());
    if was_on {
        write_marker(host, &staging, &marker).await?;
        host.execute(&HostOp::ShutdownVm {
            moref: moref.clone(),
            vm: vm.to_owned(),
            timeout_secs: shutdown.timeout_secs,
            force: shutdown.force,
        })
        .await
        .map_err(|e| BackupError::host(vm, e))?;
    }
    let mut swapped = 0;
    let result = async {
        // Stage every disk before touching any: a failure here changes nothing.
        let mut placed = Vec::new();
        for disk in &record.disks {
            let p = target
                .place_disk(host, record, disk, &staging, progress)
                .await?;
            let p = if p.disposable {
                p.path
            } else {
                host.make_directory(&staging)
                    .await
                    .map_err(|e| BackupError::host(&staging, e))?;
                let copy = format!("{staging}/{}", file_name_of(&p.path));
                host.copy_disk(&p.path, &copy)
                    .await
                    .map_err(|e| BackupError::host(&p.path, format!("copying to {copy}: {e}")))?;
                copy
            };
            placed.push(p);
        }
        for (disk, staged) in record.disks.iter().zip(&placed) {
            host.move_disk(staged, &disk.source, true)
                .await
                .map_err(|e| BackupError::host(&disk.source, format!("replacing it: {e}")))?;
            swapped += 1;
        }
        host.restore_config(&view.moref, vm, &config_to_restore(&record.config, &view))
            .await
            .map_err(|e| BackupError::host(vm, format!("restoring its settings: {e}")))?;
        Ok::<(), BackupError>(())
    }
    .await;
    if let Err(cause) = result {
        if swapped == 0 {
            if power_on_after {
                let _ = host
                    .execute(&HostOp::PowerOn {
                        moref,
                        vm: vm.to_owned(),
                    })
                    .await;
            }
            remove_staging(host, &staging).await;
            return Err(cause);
        }
        // The VM stays off; the marker tells the run that finishes the restore to start it.
        remove_staging(host, &staging).await;
        if power_on_after && let Err(e) = write_marker(host, &staging, &marker).await {
            tracing::warn!("{e}");
        }
        return Err(BackupError::PartiallyRestored {
            vm: vm.to_owned(),
            restored: swapped,
            total: record.disks.len(),
            cause: Box::new(cause),
        });
    }
    if power_on_after {
        host.execute(&HostOp::PowerOn {
            moref,
            vm: vm.to_owned(),
        })
        .await
        .map_err(|e| BackupError::host(vm, format!("powering it back on: {e}")))?;
    }
    remove_staging(host, &staging).await;
    Ok(RestoreOutcome {
        disks_restored: swapped,
        powered_on: power_on_after,
    })
}

/// extraConfig keys a restore brings back exactly as they were (set, or removed when the backup
/// lacks them): cloud-init's guestinfo and ceso's own records.
const RESTORED_KEY_PREFIXES: &[&str] = &["guestinfo.", "ceso."];

/// extraConfig keys the host maintains itself (Tools state, swap file names, device slots...):
/// a restore leaves them as the host has them now.
const HOST_KEY_PREFIXES: &[&str] = &[
    "vmware.",
    "sched.",
    "nvram",
    "migrate.",
    "monitor.",
    "vmotion.",
    "toolsInstallManager.",
    "tools.",
    "numa.",
    "svga.",
    "pciBridge",
    "hpet",
    "uuid.",
    "vc.uuid",
    "checkpoint.",
    "softPowerOff",
    "govcsim",
];

/// The settings to put back: the backed-up ones, with extraConfig limited to what a restore
/// should change: `guestinfo.*` and `ceso.*` exactly as backed up, other keys set to their
/// backed-up values, keys the host maintains left alone, and keys added since kept.
pub fn config_to_restore(backed_up: &VmConfig, now: &ObservedVm) -> VmConfig {
    let restored = |key: &str| RESTORED_KEY_PREFIXES.iter().any(|p| key.starts_with(p));
    let host_kept = |key: &str| HOST_KEY_PREFIXES.iter().any(|p| key.starts_with(p));
    let mut extra_config: std::collections::BTreeMap<String, String> = now
        .extra_config
        .iter()
        .filter(|(key, _)| !restored(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, value) in &backed_up.extra_config {
        if restored(key) || !host_kept(key) {
            extra_config.insert(key.clone(), value.clone());
        }
    }
    VmConfig {
        extra_config,
        ..backed_up.clone()
    }
}

/// Name of the file in a restore's staging folder saying the VM ran before the restore shut it
/// down (so the run finishing an interrupted restore starts it again).
const POWER_ON_MARKER: &str = "power-on-after-restore";

/// Writes the power-on marker (an empty file) into the staging folder.
async fn write_marker<H: BackupHost>(
    host: &H,
    staging: &str,
    marker: &str,
) -> Result<(), BackupError> {
    host.make_directory(staging)
        .await
        .map_err(|e| BackupError::host(staging, e))?;
    host.upload(marker, 0, futures::stream::empty().boxed())
        .await
        .map_err(|e| BackupError::host(marker, e))
}

async fn remove_staging<H: BackupHost>(host: &H, staging: &str) {
    if let Err(e) = host.delete_path(staging).await {
        tracing::warn!("removing the staging folder {staging} failed: {e}");
    }
}

/// Puts every disk of a backup on the host's datastore for a new VM made from it; returns their
/// paths, in disk order. Disks staged under `staging` are the caller's to remove afterwards.
pub async fn place_disks_for_new_vm<H: BackupHost, T: BackupTarget>(
    host: &H,
    target: &T,
    record: &BackupRecord,
    staging: &str,
    progress: Progress<'_>,
) -> Result<Vec<String>, BackupError> {
    let mut paths = Vec::new();
    for disk in &record.disks {
        let placed = target
            .place_disk(host, record, disk, staging, progress)
            .await?;
        paths.push(placed.path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_restore_puts_back_guestinfo_and_ceso_keys_and_leaves_host_keys_alone() {
        let backed_up = VmConfig {
            cpu: 2,
            extra_config: config(&[
                ("guestinfo.metadata", "old"),
                ("ceso.managed", "db-01"),
                ("disk.EnableUUID", "TRUE"),
                ("sched.swap.derivedName", "then.vswp"),
            ]),
            ..VmConfig::default()
        };
        let now = ObservedVm {
            extra_config: config(&[
                ("guestinfo.metadata", "new"),
                ("guestinfo.userdata", "added since"),
                ("ceso.managed", "db-01"),
                ("disk.EnableUUID", "FALSE"),
                ("sched.swap.derivedName", "now.vswp"),
                ("custom.added", "kept"),
            ]),
            ..ObservedVm::default()
        };
        let restored = config_to_restore(&backed_up, &now);
        assert_eq!(restored.cpu, 2);
        assert_eq!(
            restored.extra_config,
            config(&[
                ("ceso.managed", "db-01"),
                ("custom.added", "kept"),
                ("disk.EnableUUID", "TRUE"),
                ("guestinfo.metadata", "old"),
                ("sched.swap.derivedName", "now.vswp"),
            ])
        );
    }

    #[test]
    fn a_taken_id_gets_a_suffix() {
        let at: Timestamp = "2026-11-27T02:30:05Z".parse().expect("time");
        let taken = vec!["db-01-20261127T023005Z".to_owned()];
        assert_eq!(unique_id("db-01", at, &taken), "db-01-20261127T023005Z-2");
        assert_eq!(unique_id("db-01", at, &[]), "db-01-20261127T023005Z");
    }
}
