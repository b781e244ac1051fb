//! The SOAP client's VM lifecycle against the ESXi simulator: clones without vCenter (host-side
//! disk copies, from a snapshot when the source runs, rolled back when a copy fails), graceful
//! shutdown through VMware Tools with its refusal and hard power-off fallback, snapshot
//! removal, and what `observe` reports of annotation, hot-add, Tools and snapshots.
//!
//! Every clone test starts the simulator with `CloneVM_Task` answering `NotSupported`, as a
//! standalone ESXi host does, and checks it was never called.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ceso::cloudinit::{CloudInitConfig, InterfaceConfig};
use ceso::esxi::{EsxiClient, EsxiError};
use ceso::host::{
    CLONE_SNAPSHOT_PREFIX, CloneSource, Host, HostOp, MANAGED_KEY, ObservedVm, POWER_KEY,
    PowerState, VmCreateSpec, VmReconfigSpec,
};
use support::{GuestOverride, Simulator, find_vm, wait_for_vm, xml_escape};

const MIB: u64 = 1 << 20;
/// How a standalone ESXi host answers `CloneVM_Task`.
const NO_CLONE_VM_TASK: &str = "CloneVM_Task=NotSupported";

fn vm_spec(sim: &Simulator, name: &str, disks: Vec<u64>) -> VmCreateSpec {
    VmCreateSpec {
        name: name.to_owned(),
        cpu: 1,
        memory_mib: 256,
        guest_id: "debian12_64Guest".to_owned(),
        datastore: sim.datastore.clone(),
        disks,
        nics: vec!["VM Network".to_owned()],
        extra_config: BTreeMap::from([(MANAGED_KEY.to_owned(), name.to_owned())]),
        template_disk: None,
        firmware: None,
        cloud_init: None,
        annotation: None,
        clone_from: None,
    }
}

async fn create(client: &EsxiClient, spec: VmCreateSpec) {
    let name = spec.name.clone();
    client
        .execute(&HostOp::CreateVm { spec })
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

async fn observed(client: &EsxiClient, name: &str) -> ObservedVm {
    let host = client.observe().await.expect("observe");
    host.vms
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("{name} not observed"))
}

fn sha256_of(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The local `-flat.vmdk` file behind a `[datastore] dir/name.vmdk` backing.
fn flat_file(sim: &Simulator, backing: &str) -> PathBuf {
    let relative = backing
        .split_once("] ")
        .map(|(_, path)| path)
        .unwrap_or_else(|| panic!("not a datastore path: {backing}"));
    let stem = relative.strip_suffix(".vmdk").expect(".vmdk");
    sim.datastore_dir.join(format!("{stem}-flat.vmdk"))
}

/// Creates the clone source `name` with disks of `sizes` and writes distinct content into each
/// disk (the simulator creates them empty). Returns the source as observed.
async fn make_source(
    sim: &Simulator,
    client: &EsxiClient,
    name: &str,
    sizes: &[u64],
) -> ObservedVm {
    create(client, vm_spec(sim, name, sizes.to_vec())).await;
    let source = observed(client, name).await;
    assert_eq!(source.disks.len(), sizes.len());
    for (i, disk) in source.disks.iter().enumerate() {
        let content: Vec<u8> = (0..64 * 1024)
            .map(|b| ((b * (i + 3)) % 251) as u8)
            .collect();
        std::fs::write(flat_file(sim, &disk.file_name), content).expect("write the disk content");
    }
    source
}

fn clone_source(source: &ObservedVm, running: bool) -> CloneSource {
    CloneSource {
        vm: source.name.clone(),
        moref: source.moref.clone(),
        disks: source.disks.iter().map(|d| d.file_name.clone()).collect(),
        running,
    }
}

fn cloud_init(hostname: &str, address: &str) -> CloudInitConfig {
    CloudInitConfig {
        instance_id: format!("{hostname}-1"),
        hostname: hostname.to_owned(),
        ssh_authorized_keys: vec![],
        interfaces: vec![InterfaceConfig {
            address: Some(address.to_owned()),
            gateway: Some("192.168.1.1".into()),
            ..InterfaceConfig::default()
        }],
        user_data: "#cloud-config\n".to_owned(),
    }
}

/// `config.uuid` and `config.instanceUuid` of a VM, read past ceso.
fn uuids(sim: &Simulator, moref: &str) -> (String, String) {
    let props = support::retrieve_properties(
        sim,
        "VirtualMachine",
        moref,
        &["config.uuid", "config.instanceUuid"],
    );
    let text = |p: &str| props.get(p).map(|v| v.text.clone()).unwrap_or_default();
    (text("config.uuid"), text("config.instanceUuid"))
}

/// Asserts that the clone `clone` of `source` is complete and has its own identity: each disk
/// a byte-identical copy in the clone's own folder (grown where declared larger), new MACs,
/// new UUIDs, its own cloud-init guestinfo.
fn assert_clone_of(
    sim: &Simulator,
    source: &ObservedVm,
    clone: &ObservedVm,
    sizes: &[u64],
    config: &CloudInitConfig,
) {
    let files: Vec<String> = clone.disks.iter().map(|d| d.file_name.clone()).collect();
    let mut expected_files = vec![format!("[{}] {n}/{n}.vmdk", sim.datastore, n = clone.name)];
    for i in 1..source.disks.len() {
        expected_files.push(format!(
            "[{}] {n}/{n}_{i}.vmdk",
            sim.datastore,
            n = clone.name
        ));
    }
    assert_eq!(
        files, expected_files,
        "the copies sit in the clone's own folder"
    );
    let capacities: Vec<u64> = clone.disks.iter().map(|d| d.capacity_bytes).collect();
    assert_eq!(capacities, sizes);
    let units: Vec<i32> = clone.disks.iter().map(|d| d.unit_number).collect();
    assert_eq!(units, (0..sizes.len() as i32).collect::<Vec<_>>());
    for (copy, original) in clone.disks.iter().zip(&source.disks) {
        assert_eq!(
            sha256_of(&flat_file(sim, &copy.file_name)),
            sha256_of(&flat_file(sim, &original.file_name)),
            "{} is a byte-for-byte copy of {}",
            copy.file_name,
            original.file_name
        );
    }
    assert_eq!(clone.nics.len(), source.nics.len());
    for (new, old) in clone.nics.iter().zip(&source.nics) {
        assert!(!new.mac_address.is_empty());
        assert_ne!(new.mac_address, old.mac_address, "the clone has new MACs");
    }
    let (source_uuid, source_instance) = uuids(sim, &source.moref);
    let (clone_uuid, clone_instance) = uuids(sim, &clone.moref);
    assert_ne!(clone_uuid, source_uuid, "new BIOS UUID");
    assert_ne!(clone_instance, source_instance, "new instance UUID");
    let macs: Vec<String> = clone.nics.iter().map(|n| n.mac_address.clone()).collect();
    for (key, value) in ceso::cloudinit::guestinfo(config, &macs) {
        assert_eq!(clone.extra_config.get(&key), Some(&value), "{key}");
    }
    assert_eq!(clone.managed_name(), Some(clone.name.as_str()));
    assert!(clone.snapshots.is_empty());
}

/// The source after a clone: same disks, same content, no snapshot left, power as before.
fn assert_source_untouched(
    sim: &Simulator,
    before: &ObservedVm,
    after: &ObservedVm,
    digests: &[String],
) {
    assert_eq!(after.disks, before.disks);
    assert_eq!(after.nics, before.nics);
    assert_eq!(after.power, before.power);
    assert!(
        after.snapshots.is_empty(),
        "the clone snapshot is gone: {:?}",
        after.snapshots
    );
    let now: Vec<String> = after
        .disks
        .iter()
        .map(|d| sha256_of(&flat_file(sim, &d.file_name)))
        .collect();
    assert_eq!(now, digests);
}

fn digests(sim: &Simulator, vm: &ObservedVm) -> Vec<String> {
    vm.disks
        .iter()
        .map(|d| sha256_of(&flat_file(sim, &d.file_name)))
        .collect()
}

fn clone_spec(
    sim: &Simulator,
    name: &str,
    source: &ObservedVm,
    sizes: &[u64],
    running: bool,
    config: &CloudInitConfig,
) -> VmCreateSpec {
    let mut spec = vm_spec(sim, name, sizes.to_vec());
    spec.clone_from = Some(clone_source(source, running));
    spec.cloud_init = Some(config.clone());
    spec
}

#[tokio::test]
async fn a_powered_off_vm_is_cloned_by_copying_its_disks_on_the_host() {
    let sim = Simulator::builder().fault(NO_CLONE_VM_TASK).start();
    let client = sim.client().await;
    let source = make_source(&sim, &client, "app-01", &[MIB, 2 * MIB]).await;
    assert_eq!(source.power, Some(PowerState::PoweredOff));
    let before = digests(&sim, &source);
    sim.reset_stats();

    let config = cloud_init("app-02", "192.168.1.102/24");
    let sizes = [4 * MIB, 2 * MIB];
    let outcome = client
        .execute(&HostOp::CreateVm {
            spec: clone_spec(&sim, "app-02", &source, &sizes, false, &config),
        })
        .await
        .expect("clone a powered-off VM");

    let clone = observed(&client, "app-02").await;
    assert_eq!(outcome.created_moref.as_deref(), Some(clone.moref.as_str()));
    assert_clone_of(&sim, &source, &clone, &sizes, &config);
    assert_source_untouched(&sim, &source, &observed(&client, "app-01").await, &before);
    assert_eq!(sim.method_count("CopyVirtualDisk_Task"), 2);
    assert_eq!(
        sim.method_count("CreateSnapshot_Task"),
        0,
        "no snapshot of a VM that is off"
    );
    assert_eq!(sim.method_count("CloneVM_Task"), 0);
}

#[tokio::test]
async fn a_running_vm_is_cloned_from_a_snapshot_that_is_removed_afterwards() {
    let sim = Simulator::builder().fault(NO_CLONE_VM_TASK).start();
    let client = sim.client().await;
    make_source(&sim, &client, "db-01", &[MIB, MIB]).await;
    client
        .execute(&HostOp::PowerOn {
            moref: None,
            vm: "db-01".into(),
        })
        .await
        .expect("power on the source");
    let source = observed(&client, "db-01").await;
    assert_eq!(source.power, Some(PowerState::PoweredOn));
    let before = digests(&sim, &source);
    sim.reset_stats();

    let config = cloud_init("db-02", "192.168.1.112/24");
    let sizes = [MIB, 3 * MIB];
    client
        .execute(&HostOp::CreateVm {
            spec: clone_spec(&sim, "db-02", &source, &sizes, true, &config),
        })
        .await
        .expect("clone a running VM");

    let clone = observed(&client, "db-02").await;
    assert_clone_of(&sim, &source, &clone, &sizes, &config);
    assert_eq!(
        clone.power,
        Some(PowerState::PoweredOff),
        "the clone is not started"
    );
    let after = observed(&client, "db-01").await;
    assert_source_untouched(&sim, &source, &after, &before);
    assert_eq!(
        after.power,
        Some(PowerState::PoweredOn),
        "the source still runs"
    );
    assert_eq!(sim.method_count("CreateSnapshot_Task"), 1);
    assert_eq!(sim.method_count("RemoveSnapshot_Task"), 1);
    assert_eq!(sim.method_count("CopyVirtualDisk_Task"), 2);
    assert_eq!(sim.method_count("CloneVM_Task"), 0);
}

/// Polls the simulator's counters until `method` was called `count` times.
async fn until_called(sim: &Simulator, method: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.method_count(method) < count {
        assert!(
            Instant::now() < deadline,
            "{method} not called {count} times"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_clone_whose_second_copy_fails_leaves_no_vm_no_folder_and_no_snapshot() {
    let sim = Simulator::builder()
        .fault(NO_CLONE_VM_TASK)
        .method_delay("CopyVirtualDisk_Task", 1500)
        .start();
    let client = sim.client().await;
    make_source(&sim, &client, "web-01", &[MIB, MIB]).await;
    client
        .execute(&HostOp::PowerOn {
            moref: None,
            vm: "web-01".into(),
        })
        .await
        .expect("power on the source");
    let source = observed(&client, "web-01").await;
    let before = digests(&sim, &source);
    sim.reset_stats();

    let config = cloud_init("web-02", "192.168.1.122/24");
    let clone = HostOp::CreateVm {
        spec: clone_spec(&sim, "web-02", &source, &[MIB, MIB], true, &config),
    };
    // The first copy is under way (delayed by the simulator): the next one fails.
    let fail_second_copy = async {
        until_called(&sim, "CopyVirtualDisk_Task", 1).await;
        sim.inject_fault("CopyVirtualDisk_Task=task:FileFault*1");
    };
    let (result, ()) = tokio::join!(client.execute(&clone), fail_second_copy);
    let err = result.expect_err("the second copy fails");

    assert!(
        matches!(&err, EsxiError::CreateRolledBack { vm, .. } if vm == "web-02"),
        "{err}"
    );
    assert_eq!(err.fault_type(), Some("FileFault"), "{err}");
    assert_eq!(sim.method_count("CopyVirtualDisk_Task"), 2);
    assert_eq!(
        find_vm(&sim, "web-02").map(|v| v.moref),
        None,
        "no half-made VM"
    );
    assert!(!sim.datastore_dir.join("web-02").exists(), "no folder left");
    assert_eq!(sim.method_count("RemoveSnapshot_Task"), 1);
    let after = observed(&client, "web-01").await;
    assert_source_untouched(&sim, &source, &after, &before);
    assert_eq!(after.power, Some(PowerState::PoweredOn));
    assert_eq!(sim.method_count("CloneVM_Task"), 0);
}

#[tokio::test]
async fn a_clone_snapshot_that_cannot_be_removed_is_named_in_the_error() {
    let sim = Simulator::builder().fault(NO_CLONE_VM_TASK).start();
    let client = sim.client().await;
    make_source(&sim, &client, "web-01", &[MIB]).await;
    client
        .execute(&HostOp::PowerOn {
            moref: None,
            vm: "web-01".into(),
        })
        .await
        .expect("power on the source");
    let source = observed(&client, "web-01").await;

    // The removal after the copy and the retry in the rollback both fail.
    sim.inject_fault("RemoveSnapshot_Task=task:TaskInProgress*2");
    let config = cloud_init("web-03", "192.168.1.123/24");
    let err = client
        .execute(&HostOp::CreateVm {
            spec: clone_spec(&sim, "web-03", &source, &[MIB], true, &config),
        })
        .await
        .expect_err("the snapshot stays");
    let stray = observed(&client, "web-01").await.snapshots;
    assert_eq!(stray.len(), 1);
    assert_eq!(stray[0].name, format!("{CLONE_SNAPSHOT_PREFIX}web-03"));
    match &err {
        EsxiError::RollbackFailed { leftover, .. } => assert_eq!(
            leftover,
            &format!(
                "the snapshot \"{CLONE_SNAPSHOT_PREFIX}web-03\" ({}) of VM \"web-01\"",
                stray[0].moref
            )
        ),
        other => panic!("{other}"),
    }
    assert_eq!(
        find_vm(&sim, "web-03").map(|v| v.moref),
        None,
        "the VM is gone"
    );

    // The next run removes the stray snapshot.
    client
        .execute(&HostOp::RemoveSnapshot {
            moref: Some(source.moref.clone()),
            vm: "web-01".into(),
            snapshot: stray[0].moref.clone(),
            name: stray[0].name.clone(),
        })
        .await
        .expect("remove the stray snapshot");
    assert!(observed(&client, "web-01").await.snapshots.is_empty());
}

fn shutdown(vm: &str, timeout_secs: u64, force: bool) -> HostOp {
    HostOp::ShutdownVm {
        moref: None,
        vm: vm.to_owned(),
        timeout_secs,
        force,
    }
}

async fn power_on(client: &EsxiClient, vm: &str) {
    client
        .execute(&HostOp::PowerOn {
            moref: None,
            vm: vm.to_owned(),
        })
        .await
        .unwrap_or_else(|e| panic!("power on {vm}: {e}"));
}

fn wait_for_tools(sim: &Simulator, vm: &str) {
    wait_for_vm(sim, vm, Duration::from_secs(20), |v| v.tools_running);
}

fn power_state(sim: &Simulator, vm: &str) -> String {
    find_vm(sim, vm).expect("the VM exists").power_state
}

#[tokio::test]
async fn a_guest_with_tools_is_shut_down_gracefully() {
    let sim = Simulator::builder().guest_tools(true).start();
    let client = sim.client().await;
    create(&client, vm_spec(&sim, "app-01", vec![MIB])).await;
    power_on(&client, "app-01").await;
    wait_for_tools(&sim, "app-01");
    sim.reset_stats();

    client
        .execute(&shutdown("app-01", 30, false))
        .await
        .expect("graceful shutdown");
    assert_eq!(power_state(&sim, "app-01"), "poweredOff");
    assert_eq!(
        sim.extra_config("app-01")
            .get(POWER_KEY)
            .map(String::as_str),
        Some("off")
    );
    assert_eq!(sim.method_count("ShutdownGuest"), 1);
    assert_eq!(sim.method_count("PowerOffVM_Task"), 0, "no hard power-off");

    // A VM that is already off: nothing to do.
    client
        .execute(&shutdown("app-01", 30, false))
        .await
        .expect("already off");
    assert_eq!(sim.method_count("ShutdownGuest"), 1);
}

#[tokio::test]
async fn without_tools_a_shutdown_is_refused_unless_forced() {
    let sim = Simulator::builder().guest_tools(true).start();
    let client = sim.client().await;
    create(&client, vm_spec(&sim, "db-01", vec![MIB])).await;
    sim.set_guest("db-01", GuestOverride::ToolsOff);
    power_on(&client, "db-01").await;

    let err = client
        .execute(&shutdown("db-01", 30, false))
        .await
        .expect_err("no graceful path, no force");
    match &err {
        EsxiError::ShutdownRefused { vm, reason } => {
            assert_eq!(vm, "db-01");
            assert_eq!(reason, "VMware Tools are not running in the guest");
        }
        other => panic!("{other}"),
    }
    let message = err.to_string();
    assert!(message.contains("did not power it off"), "{message}");
    assert!(message.contains("`shutdown: { force: true }`"), "{message}");
    assert!(message.contains("--force-power-off"), "{message}");
    assert_eq!(power_state(&sim, "db-01"), "poweredOn");
    assert_eq!(
        sim.extra_config("db-01").get(POWER_KEY).map(String::as_str),
        Some("on")
    );

    sim.reset_stats();
    client
        .execute(&shutdown("db-01", 30, true))
        .await
        .expect("hard power-off");
    assert_eq!(power_state(&sim, "db-01"), "poweredOff");
    assert_eq!(sim.method_count("PowerOffVM_Task"), 1);
    assert_eq!(
        sim.extra_config("db-01").get(POWER_KEY).map(String::as_str),
        Some("off")
    );
}

#[tokio::test]
async fn a_guest_that_does_not_stop_in_time_is_left_running_or_powered_off_when_forced() {
    // The emulated guest takes 4 s to react (to boot, and to shut down).
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(4000)
        .start();
    let client = sim.client().await;
    for vm in ["slow-01", "slow-02"] {
        create(&client, vm_spec(&sim, vm, vec![MIB])).await;
        power_on(&client, vm).await;
    }
    wait_for_tools(&sim, "slow-01");
    wait_for_tools(&sim, "slow-02");

    let started = Instant::now();
    let err = client
        .execute(&shutdown("slow-01", 1, false))
        .await
        .expect_err("times out");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match &err {
        EsxiError::ShutdownRefused { reason, .. } => assert_eq!(
            reason,
            "the guest did not stop within 1 s of the shutdown request (it may still be stopping)"
        ),
        other => panic!("{other}"),
    }
    assert_eq!(power_state(&sim, "slow-01"), "poweredOn", "left running");

    sim.reset_stats();
    client
        .execute(&shutdown("slow-02", 1, true))
        .await
        .expect("forced after the timeout");
    assert_eq!(power_state(&sim, "slow-02"), "poweredOff");
    assert_eq!(sim.method_count("ShutdownGuest"), 1);
    assert_eq!(sim.method_count("PowerOffVM_Task"), 1);
    assert_eq!(
        sim.extra_config("slow-02")
            .get(POWER_KEY)
            .map(String::as_str),
        Some("off")
    );
}

/// Takes a snapshot behind ceso's back; returns its moref.
fn take_snapshot(sim: &Simulator, moref: &str, name: &str) -> String {
    let r = support::soap_query_response(
        sim,
        &format!(
            r#"<CreateSnapshot_Task xmlns="urn:vim25"><_this type="VirtualMachine">{}</_this><name>{}</name><memory>false</memory><quiesce>false</quiesce></CreateSnapshot_Task>"#,
            xml_escape(moref),
            xml_escape(name)
        ),
    );
    let (state, fault) = support::task_outcome(sim, &r);
    assert_eq!(state, "success", "{fault:?}");
    let task = r.returnval().expect("task");
    support::retrieve_properties(sim, "Task", &task, &["info.result"])
        .get("info.result")
        .map(|v| v.text.clone())
        .expect("snapshot moref")
}

#[tokio::test]
async fn observe_reports_annotation_hot_add_tools_and_snapshots_in_its_one_read() {
    let sim = Simulator::builder().guest_tools(true).start();
    let client = sim.client().await;
    let mut spec = vm_spec(&sim, "app-01", vec![MIB]);
    spec.annotation = Some("Owner: ops & dev".into());
    create(&client, spec).await;
    let vm = observed(&client, "app-01").await;
    assert_eq!(vm.annotation, "Owner: ops & dev");
    assert!(!vm.cpu_hot_add && !vm.memory_hot_add && !vm.tools_running);
    assert!(vm.snapshots.is_empty());

    let r = support::soap_query_response(
        &sim,
        &format!(
            r#"<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{}</_this><spec><memoryHotAddEnabled>true</memoryHotAddEnabled><cpuHotAddEnabled>true</cpuHotAddEnabled></spec></ReconfigVM_Task>"#,
            vm.moref
        ),
    );
    assert_eq!(support::task_outcome(&sim, &r).0, "success");
    let base = take_snapshot(&sim, &vm.moref, "base");
    let child = take_snapshot(&sim, &vm.moref, "ceso-clone-app-02");
    power_on(&client, "app-01").await;
    wait_for_tools(&sim, "app-01");

    sim.reset_stats();
    let vm = observed(&client, "app-01").await;
    assert_eq!(sim.method_count("RetrievePropertiesEx"), 1, "one bulk read");
    assert!(vm.cpu_hot_add && vm.memory_hot_add);
    assert!(vm.tools_running);
    let snapshots: Vec<(&str, &str)> = vm
        .snapshots
        .iter()
        .map(|s| (s.moref.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(
        snapshots,
        [
            (base.as_str(), "base"),
            (child.as_str(), "ceso-clone-app-02")
        ],
        "parents first"
    );

    // The annotation is changed by a reconfiguration.
    client
        .execute(&HostOp::ReconfigureVm {
            moref: None,
            vm: "app-01".into(),
            spec: VmReconfigSpec {
                annotation: Some("Owner: platform".into()),
                ..VmReconfigSpec::default()
            },
        })
        .await
        .expect("set the annotation");
    assert_eq!(
        observed(&client, "app-01").await.annotation,
        "Owner: platform"
    );
    // Clearing sends an empty annotation, which a real host applies; the simulator ignores an
    // empty string (see the unit test of the request), so only the call is checked here.
    client
        .execute(&HostOp::ReconfigureVm {
            moref: None,
            vm: "app-01".into(),
            spec: VmReconfigSpec {
                annotation: Some(String::new()),
                ..VmReconfigSpec::default()
            },
        })
        .await
        .expect("clear the annotation");
}

#[tokio::test]
async fn a_snapshot_is_removed_and_one_already_gone_is_fine() {
    let sim = Simulator::start();
    let client = sim.client().await;
    create(&client, vm_spec(&sim, "app-01", vec![MIB])).await;
    let vm = observed(&client, "app-01").await;
    let keep = take_snapshot(&sim, &vm.moref, "keep");
    let stray = take_snapshot(&sim, &vm.moref, "ceso-clone-app-09");
    let remove = HostOp::RemoveSnapshot {
        moref: Some(vm.moref.clone()),
        vm: "app-01".into(),
        snapshot: stray.clone(),
        name: "ceso-clone-app-09".into(),
    };
    client.execute(&remove).await.expect("remove");
    let left: Vec<String> = observed(&client, "app-01")
        .await
        .snapshots
        .into_iter()
        .map(|s| s.moref)
        .collect();
    assert_eq!(left, [keep], "only that snapshot is removed");
    client.execute(&remove).await.expect("already gone is fine");
}
