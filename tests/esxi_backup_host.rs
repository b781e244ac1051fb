//! `BackupHost` for the SOAP client against the ESXi simulator: one VM read as observe reads
//! it, snapshots, host-side disk copies and moves, datastore folders, streamed downloads and
//! uploads over `/folder` (with connections cut part-way), and restoring a VM's settings.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use ring::rand::{SecureRandom, SystemRandom};

use ceso::backup::{BackupHost, DatastoreEntry, VmConfig};
use ceso::esxi::{EsxiClient, EsxiError};
use ceso::host::{Host, HostOp, MANAGED_KEY, ObservedVm, PowerState, VmCreateSpec, VmReconfigSpec};
use support::{Simulator, retrieve_properties};

const MIB: usize = 1 << 20;
/// A VM of the simulator's default inventory: powered on, one 1 MiB disk, one NIC.
const VM: &str = "ha-host_VM0";
const VM_DISK: &str = "[LocalDS_0] ha-host_VM0/disk1.vmdk";

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    SystemRandom::new().fill(&mut bytes).expect("random bytes");
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

fn sha256_of(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

/// Where `[LocalDS_0] relative` lies on the simulator's disk.
fn on_disk(sim: &Simulator, relative: &str) -> PathBuf {
    sim.datastore_dir.join(relative)
}

/// Writes a file into the datastore directly (behind the host's back), creating its folder.
fn put_file(sim: &Simulator, relative: &str, bytes: &[u8]) {
    let path = on_disk(sim, relative);
    let parent = path.parent().expect("parent");
    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// `[LocalDS_0] relative`
fn ds_path(relative: &str) -> String {
    format!("[LocalDS_0] {relative}")
}

/// Reads a whole download; the first error of the stream ends it, with the bytes received so
/// far.
async fn read_all(
    client: &EsxiClient,
    path: &str,
    offset: u64,
) -> (Option<u64>, Vec<u8>, Option<EsxiError>) {
    let download = client
        .download(path, offset)
        .await
        .expect("download starts");
    let mut received = Vec::new();
    let mut body = download.body;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => received.extend_from_slice(&chunk),
            Err(e) => return (download.len, received, Some(e)),
        }
    }
    (download.len, received, None)
}

/// A stream of `bytes` in 64 KiB chunks, as a backup target would send a disk.
fn chunked(bytes: Vec<u8>) -> futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
    let bytes = Bytes::from(bytes);
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..bytes.len())
        .step_by(64 << 10)
        .map(|at| Ok(bytes.slice(at..(at + (64 << 10)).min(bytes.len()))))
        .collect();
    futures::stream::iter(chunks).boxed()
}

async fn backup_view(client: &EsxiClient, name: &str) -> ObservedVm {
    client
        .vm_for_backup(name)
        .await
        .expect("read the VM")
        .unwrap_or_else(|| panic!("no VM named {name:?}"))
}

#[tokio::test]
async fn vm_for_backup_is_the_vm_as_observe_sees_it() {
    let sim = Simulator::start();
    let client = sim.client().await;

    let vm = backup_view(&client, VM).await;
    let observed = client.observe().await.expect("observe");
    let same = observed
        .vms
        .iter()
        .find(|v| v.name == VM)
        .expect("observe sees the VM");
    assert_eq!(&vm, same);
    assert_eq!(vm.power, Some(PowerState::PoweredOn));
    assert_eq!(vm.disks.len(), 1);
    assert_eq!(vm.disks[0].file_name, VM_DISK);
    assert_eq!(vm.disks[0].capacity_bytes, MIB as u64);
    assert_eq!(vm.nics.len(), 1);
    assert_eq!(vm.nics[0].port_group, "VM Network");
    assert_eq!(
        vm.extra_config.get("govcsim").map(String::as_str),
        Some("TRUE")
    );

    assert_eq!(
        client.vm_for_backup("no-such-vm").await.expect("read"),
        None
    );
}

#[tokio::test]
async fn two_vms_of_one_name_are_refused_with_both_morefs() {
    let sim = Simulator::start();
    let client = sim.client().await;
    for _ in 0..2 {
        client
            .execute(&HostOp::CreateVm {
                spec: small_vm(&sim, "twin", "debian12_64Guest"),
            })
            .await
            .expect("create");
    }
    let err = client.vm_for_backup("twin").await.expect_err("ambiguous");
    let EsxiError::AmbiguousVm { vm, morefs } = &err else {
        panic!("not AmbiguousVm: {err}")
    };
    assert_eq!((vm.as_str(), morefs.len()), ("twin", 2), "{err}");
}

#[tokio::test]
async fn a_quiesced_snapshot_is_taken_and_removed_once() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let vm = backup_view(&client, VM).await;

    let snapshot = client
        .create_snapshot(
            &vm.moref,
            VM,
            "ceso-backup-1",
            "Taken by ceso for a backup",
            true,
        )
        .await
        .expect("snapshot");
    assert!(snapshot.starts_with("snapshot-"), "{snapshot}");
    let with_snapshot = backup_view(&client, VM).await;
    let names: Vec<(&str, &str)> = with_snapshot
        .snapshots
        .iter()
        .map(|s| (s.moref.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(names, [(snapshot.as_str(), "ceso-backup-1")]);
    let tree = retrieve_properties(
        &sim,
        "VirtualMachine",
        &vm.moref,
        &["snapshot.rootSnapshotList"],
    );
    let quiesced = tree["snapshot.rootSnapshotList"]
        .descendant("quiesced")
        .map(|q| q.text.clone());
    assert_eq!(
        quiesced.as_deref(),
        Some("true"),
        "the host was asked to quiesce"
    );

    assert!(
        client
            .remove_snapshot(&vm.moref, VM, &snapshot)
            .await
            .expect("remove")
    );
    assert!(backup_view(&client, VM).await.snapshots.is_empty());
    assert!(
        !client
            .remove_snapshot(&vm.moref, VM, &snapshot)
            .await
            .expect("remove again"),
        "a snapshot already gone is reported as such, not as an error"
    );
}

#[tokio::test]
async fn copy_disk_copies_descriptor_and_data_byte_for_byte_and_never_overwrites() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let data = random_bytes(3 * MIB);
    put_file(&sim, "ha-host_VM0/disk1-flat.vmdk", &data);
    put_file(
        &sim,
        "ha-host_VM0/disk1.vmdk",
        b"# Disk DescriptorFile\nRW 6144 VMFS \"disk1-flat.vmdk\"\n",
    );

    client
        .make_directory(&ds_path("backups/vm0"))
        .await
        .expect("folder");
    let dest = ds_path("backups/vm0/disk1.vmdk");
    client.copy_disk(VM_DISK, &dest).await.expect("copy");
    for (source, copy) in [
        ("ha-host_VM0/disk1-flat.vmdk", "backups/vm0/disk1-flat.vmdk"),
        ("ha-host_VM0/disk1.vmdk", "backups/vm0/disk1.vmdk"),
    ] {
        assert_eq!(
            sha256_of(&on_disk(&sim, copy)),
            sha256_of(&on_disk(&sim, source)),
            "{copy}"
        );
    }
    assert_eq!(
        sha256_of(&on_disk(&sim, "backups/vm0/disk1-flat.vmdk")),
        sha256(&data)
    );

    let err = client
        .copy_disk(VM_DISK, &dest)
        .await
        .expect_err("dest exists");
    assert_eq!(err.fault_type(), Some("FileAlreadyExists"), "{err}");
}

#[tokio::test]
async fn move_disk_replaces_an_existing_disk_only_when_forced() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let (new, old) = (random_bytes(MIB), random_bytes(MIB));
    put_file(&sim, "restore/new.vmdk", b"descriptor of new");
    put_file(&sim, "restore/new-flat.vmdk", &new);
    put_file(&sim, "vm/vm.vmdk", b"descriptor of old");
    put_file(&sim, "vm/vm-flat.vmdk", &old);
    let (source, dest) = (ds_path("restore/new.vmdk"), ds_path("vm/vm.vmdk"));

    let err = client
        .move_disk(&source, &dest, false)
        .await
        .expect_err("dest exists");
    assert_eq!(err.fault_type(), Some("FileAlreadyExists"), "{err}");
    assert_eq!(
        sha256_of(&on_disk(&sim, "vm/vm-flat.vmdk")),
        sha256(&old),
        "untouched"
    );

    client
        .move_disk(&source, &dest, true)
        .await
        .expect("forced move");
    assert_eq!(sha256_of(&on_disk(&sim, "vm/vm-flat.vmdk")), sha256(&new));
    assert_eq!(
        std::fs::read(on_disk(&sim, "vm/vm.vmdk")).expect("descriptor"),
        b"descriptor of new"
    );
    assert!(!on_disk(&sim, "restore/new.vmdk").exists());
    assert!(!on_disk(&sim, "restore/new-flat.vmdk").exists());
}

#[tokio::test]
async fn make_directory_creates_parents_and_accepts_an_existing_folder() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let path = ds_path("backups/web 01/2026-01-01");
    client.make_directory(&path).await.expect("create");
    client
        .make_directory(&path)
        .await
        .expect("exists already: fine");
    assert!(on_disk(&sim, "backups/web 01/2026-01-01").is_dir());
}

#[tokio::test]
async fn list_folder_gives_files_with_sizes_and_folders_and_nothing_for_a_missing_folder() {
    let sim = Simulator::start();
    let client = sim.client().await;
    put_file(&sim, "backups/web/disk-flat.vmdk", &random_bytes(MIB + 5));
    put_file(&sim, "backups/web/manifest.json", b"{}");
    put_file(&sim, "backups/web/chunks/ab/abcdef", b"chunk");
    std::fs::create_dir_all(on_disk(&sim, "backups/web/empty folder")).expect("mkdir");

    let entry = |name: &str, size: u64, is_folder: bool| DatastoreEntry {
        name: name.to_owned(),
        size,
        is_folder,
    };
    assert_eq!(
        client
            .list_folder(&ds_path("backups/web"))
            .await
            .expect("list"),
        [
            entry("chunks", 0, true),
            entry("disk-flat.vmdk", MIB as u64 + 5, false),
            entry("empty folder", 0, true),
            entry("manifest.json", 2, false),
        ]
    );
    let root = client
        .list_folder("[LocalDS_0]")
        .await
        .expect("list the root");
    assert!(root.contains(&entry(VM, 0, true)), "{root:?}");
    assert_eq!(
        client
            .list_folder(&ds_path("backups/nothing here"))
            .await
            .expect("missing folder"),
        []
    );
}

#[tokio::test]
async fn delete_path_removes_files_and_whole_folders_and_says_when_nothing_was_there() {
    let sim = Simulator::start();
    let client = sim.client().await;
    put_file(&sim, "backups/old/disk-flat.vmdk", b"old");
    put_file(&sim, "backups/old/chunks/aa/aa01", b"chunk");
    put_file(&sim, "backups/stray.tmp", b"tmp");

    assert!(
        client
            .delete_path(&ds_path("backups/stray.tmp"))
            .await
            .expect("file")
    );
    assert!(
        client
            .delete_path(&ds_path("backups/old"))
            .await
            .expect("folder")
    );
    assert!(!on_disk(&sim, "backups/old").exists());
    assert!(!on_disk(&sim, "backups/stray.tmp").exists());
    assert!(
        !client
            .delete_path(&ds_path("backups/old"))
            .await
            .expect("already gone")
    );
}

#[tokio::test]
async fn download_streams_a_whole_file_and_resumes_from_an_offset() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let data = random_bytes(5 * MIB + 17);
    let relative = "backups/web #1/disk 0-flat.vmdk";
    put_file(&sim, relative, &data);
    let path = ds_path(relative);

    let (len, received, error) = read_all(&client, &path, 0).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(len, Some(data.len() as u64));
    assert_eq!(sha256(&received), sha256_of(&on_disk(&sim, relative)));

    let offset = 3 * MIB + 1;
    let (len, received, error) = read_all(&client, &path, offset as u64).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(len, Some((data.len() - offset) as u64));
    assert_eq!(sha256(&received), sha256(&data[offset..]));
}

#[tokio::test]
async fn download_of_a_missing_file_is_file_not_found() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let path = ds_path("backups/none.bin");
    let Err(err) = client.download(&path, 0).await else {
        panic!("a missing file downloaded")
    };
    assert_eq!(err.fault_type(), Some("FileNotFound"), "{err}");
    assert!(err.to_string().contains(&path), "{err}");
}

#[tokio::test]
async fn download_refused_by_the_host_names_the_file_and_the_status() {
    let sim = Simulator::start();
    let client = sim.client().await;
    put_file(&sim, "backups/disk-flat.vmdk", &random_bytes(MIB));
    sim.inject_http_fault("GET:disk-flat=status@503*1");
    let Err(err) = client.download(&ds_path("backups/disk-flat.vmdk"), 0).await else {
        panic!("a refused download started")
    };
    let EsxiError::Http { status, method, .. } = &err else {
        panic!("not an HTTP error: {err}")
    };
    assert_eq!(*status, 503);
    assert!(
        method.contains("[LocalDS_0] backups/disk-flat.vmdk"),
        "{err}"
    );

    let beyond_the_end = MIB as u64 + 10;
    let Err(err) = client
        .download(&ds_path("backups/disk-flat.vmdk"), beyond_the_end)
        .await
    else {
        panic!("a range past the end downloaded")
    };
    assert!(matches!(err, EsxiError::Http { status: 416, .. }), "{err}");
}

#[tokio::test]
async fn a_download_whose_connection_drops_fails_instead_of_ending_short() {
    // Over TLS rustls notices the missing close_notify; over plain HTTP hyper notices the body
    // is shorter than its Content-Length. Either way the stream must end in an error.
    for tls in [true, false] {
        let sim = Simulator::builder().tls(tls).start();
        let client = sim.client().await;
        let data = random_bytes(4 * MIB);
        put_file(&sim, "backups/disk-flat.vmdk", &data);
        let path = ds_path("backups/disk-flat.vmdk");

        sim.inject_http_fault(&format!("GET:disk-flat=cut@{}*1", MIB + 3));
        let (len, received, error) = read_all(&client, &path, 0).await;
        assert_eq!(sim.http_faults_injected(), 1);
        assert_eq!(
            len,
            Some(data.len() as u64),
            "the host announced the whole file"
        );
        let error = error.unwrap_or_else(|| {
            panic!(
                "tls {tls}: the stream ended without an error after {} of {} bytes",
                received.len(),
                data.len()
            )
        });
        assert!(received.len() < data.len());
        assert_eq!(
            received,
            data[..received.len()],
            "what arrived is the file's start"
        );
        assert!(matches!(error, EsxiError::Network { .. }), "{error}");
        assert!(error.to_string().contains(&path), "{error}");

        // The same cut on a resumed download: an error again; the next try reads the rest.
        sim.inject_http_fault("GET:disk-flat=cut@1000*1");
        let (_, _, error) = read_all(&client, &path, received.len() as u64).await;
        assert!(
            error.is_some(),
            "tls {tls}: a cut resumed download must fail"
        );
        let (_, rest, error) = read_all(&client, &path, received.len() as u64).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(sha256(&[received, rest].concat()), sha256(&data));
    }
}

#[tokio::test]
async fn upload_streams_a_file_to_the_datastore_and_replaces_an_existing_one() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let path = ds_path("restore/web 01/disk-flat.vmdk");
    for size in [6 * MIB + 3, 2 * MIB] {
        let data = random_bytes(size);
        let expected = sha256(&data);
        client
            .upload(&path, size as u64, chunked(data))
            .await
            .expect("upload");
        assert_eq!(
            sha256_of(&on_disk(&sim, "restore/web 01/disk-flat.vmdk")),
            expected
        );
    }
}

#[tokio::test]
async fn an_upload_whose_connection_drops_is_an_error() {
    let sim = Simulator::start();
    let client = sim.client().await;
    sim.inject_http_fault(&format!("PUT:disk-flat=cut@{MIB}*1"));
    let path = ds_path("restore/disk-flat.vmdk");
    let err = client
        .upload(&path, 4 * MIB as u64, chunked(random_bytes(4 * MIB)))
        .await
        .expect_err("the connection dropped");
    assert_eq!(sim.http_faults_injected(), 1);
    assert!(matches!(err, EsxiError::Network { .. }), "{err}");
    assert!(err.to_string().contains(&path), "{err}");
}

#[tokio::test]
async fn an_upload_whose_data_ends_early_or_runs_long_is_an_error() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let path = ds_path("restore/disk-flat.vmdk");
    let short = client
        .upload(&path, MIB as u64 + 1, chunked(random_bytes(MIB)))
        .await
        .expect_err("short");
    assert!(
        short
            .to_string()
            .contains(&format!("ended after {MIB} of {} bytes", MIB + 1)),
        "{short}"
    );
    let long = client
        .upload(&path, MIB as u64 - 1, chunked(random_bytes(MIB)))
        .await
        .expect_err("long");
    assert!(long.to_string().contains("longer than"), "{long}");
    let failing_source = futures::stream::iter(vec![
        Ok(Bytes::from(random_bytes(1000))),
        Err(std::io::Error::other("chunk 7 is unreadable")),
    ])
    .boxed();
    let err = client
        .upload(&path, 2000, failing_source)
        .await
        .expect_err("the source failed");
    assert!(err.to_string().contains("chunk 7 is unreadable"), "{err}");
}

fn small_vm(sim: &Simulator, name: &str, guest_id: &str) -> VmCreateSpec {
    VmCreateSpec {
        name: name.to_owned(),
        cpu: 1,
        memory_mib: 256,
        guest_id: guest_id.to_owned(),
        datastore: sim.datastore.clone(),
        disks: vec![MIB as u64],
        nics: vec!["VM Network".to_owned()],
        extra_config: BTreeMap::from([(MANAGED_KEY.to_owned(), name.to_owned())]),
        template_disk: None,
        firmware: None,
        cloud_init: None,
        annotation: Some("Owner: ops".to_owned()),
        clone_from: None,
    }
}

/// Creates a VM, changes it by hand as `change` says, restores what was recorded before the
/// change, and returns (recorded, after the change, after the restore).
async fn change_and_restore(
    sim: &Simulator,
    guest_id: &str,
    change: VmReconfigSpec,
) -> (ObservedVm, ObservedVm, ObservedVm) {
    let client = sim.client().await;
    client
        .execute(&HostOp::CreateVm {
            spec: small_vm(sim, "web", guest_id),
        })
        .await
        .expect("create");
    let before = backup_view(&client, "web").await;
    client
        .execute(&HostOp::ReconfigureVm {
            moref: Some(before.moref.clone()),
            vm: "web".to_owned(),
            spec: change,
        })
        .await
        .expect("change");
    let changed = backup_view(&client, "web").await;
    client
        .restore_config(&before.moref, "web", &VmConfig::from(&before))
        .await
        .expect("restore");
    let after = backup_view(&client, "web").await;
    (before, changed, after)
}

#[tokio::test]
async fn restore_config_brings_back_cpu_memory_notes_and_extra_config() {
    let sim = Simulator::start();
    let change = VmReconfigSpec {
        cpu: Some(4),
        memory_mib: Some(4096),
        annotation: Some("changed by hand".to_owned()),
        extra_config: BTreeMap::from([
            (MANAGED_KEY.to_owned(), "someone-else".to_owned()),
            ("added.later".to_owned(), "x".to_owned()),
        ]),
        ..VmReconfigSpec::default()
    };
    // A guest id newer than the simulator knows: it refuses any reconfigure that sends it, so
    // this also shows that an unchanged guest id is not sent.
    let (before, changed, after) = change_and_restore(&sim, "debian12_64Guest", change).await;
    assert_ne!(VmConfig::from(&changed), VmConfig::from(&before));
    assert!(changed.extra_config.contains_key("added.later"));

    assert_eq!(VmConfig::from(&after), VmConfig::from(&before));
    assert_eq!((after.cpu, after.memory_mib), (1, 256));
    assert_eq!(after.annotation, "Owner: ops");
    assert_eq!(
        after.extra_config.get(MANAGED_KEY).map(String::as_str),
        Some("web")
    );
    assert!(
        !after.extra_config.contains_key("added.later"),
        "removed again"
    );
    assert_eq!(after.disks, before.disks, "devices untouched");
    assert_eq!(after.nics, before.nics, "devices untouched");
}

#[tokio::test]
async fn restore_config_brings_back_a_changed_guest_id() {
    let sim = Simulator::start();
    let change = VmReconfigSpec {
        guest_id: Some("otherGuest".to_owned()),
        ..VmReconfigSpec::default()
    };
    let (before, changed, after) = change_and_restore(&sim, "ubuntu64Guest", change).await;
    assert_eq!(changed.guest_id, "otherGuest");
    assert_eq!(after.guest_id, "ubuntu64Guest");
    assert_eq!(VmConfig::from(&after), VmConfig::from(&before));
}
