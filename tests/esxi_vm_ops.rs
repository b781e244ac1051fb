//! The SOAP client's VM operations against the ESXi simulator: VMs made from a template disk
//! (host-side copy, attach, grow, firmware, cloud-init guestinfo), the rollback of a creation
//! that fails part-way, waiting for the guest's addresses, and what `observe` reports of
//! firmware and guest addresses.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ceso::cloudinit::{CloudInitConfig, InterfaceConfig};
use ceso::esxi::{EsxiClient, EsxiError};
use ceso::host::{
    Firmware, Host, HostOp, MANAGED_KEY, NicChange, ObservedVm, TEMPLATE_KEY, VmCreateSpec,
    VmReconfigSpec,
};
use support::{Simulator, find_vm};

const MIB: u64 = 1 << 20;
const TEMPLATE_VM: &str = "tmpl-debian";

fn vm_spec(sim: &Simulator, name: &str, disks: Vec<u64>, nics: &[&str]) -> VmCreateSpec {
    VmCreateSpec {
        name: name.to_owned(),
        cpu: 1,
        memory_mib: 256,
        guest_id: "debian12_64Guest".to_owned(),
        datastore: sim.datastore.clone(),
        disks,
        nics: nics.iter().map(|n| (*n).to_owned()).collect(),
        extra_config: BTreeMap::from([(MANAGED_KEY.to_owned(), name.to_owned())]),
        template_disk: None,
        firmware: None,
        cloud_init: None,
        annotation: None,
        clone_from: None,
    }
}

fn cloud_init(hostname: &str, addresses: &[&str]) -> CloudInitConfig {
    CloudInitConfig {
        instance_id: format!("{hostname}-1"),
        hostname: hostname.to_owned(),
        ssh_authorized_keys: vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@example".into(),
        ],
        interfaces: addresses
            .iter()
            .map(|a| InterfaceConfig {
                address: Some((*a).to_owned()),
                gateway: Some("192.168.1.1".into()),
                nameservers: vec!["192.168.1.1".into()],
                ..InterfaceConfig::default()
            })
            .collect(),
        user_data: "#cloud-config\npackage_update: false\n".to_owned(),
    }
}

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates the VM holding the template disk and writes known content into that disk's files
/// (the simulator creates them empty). Returns the disk's `[datastore] path`.
async fn make_template(sim: &Simulator, client: &EsxiClient) -> String {
    let mut spec = vm_spec(sim, TEMPLATE_VM, vec![MIB], &[]);
    spec.extra_config
        .insert(TEMPLATE_KEY.to_owned(), "debian".to_owned());
    client
        .execute(&HostOp::CreateVm { spec })
        .await
        .expect("create the template VM");
    let dir = sim.datastore_dir.join(TEMPLATE_VM);
    let content: Vec<u8> = (0..MIB as usize).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join(format!("{TEMPLATE_VM}-flat.vmdk")), content).expect("write flat");
    std::fs::write(
        dir.join(format!("{TEMPLATE_VM}.vmdk")),
        "# Disk DescriptorFile\nversion=1\ncreateType=\"vmfs\"\nRW 2048 VMFS \"tmpl-debian-flat.vmdk\"\n",
    )
    .expect("write descriptor");
    format!("[{}] {TEMPLATE_VM}/{TEMPLATE_VM}.vmdk", sim.datastore)
}

async fn observed(client: &EsxiClient, name: &str) -> ObservedVm {
    let host = client.observe().await.expect("observe");
    host.vms
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("{name} not observed"))
}

fn guestinfo_keys(vm: &ObservedVm) -> BTreeMap<String, String> {
    vm.extra_config
        .iter()
        .filter(|(k, _)| k.starts_with("guestinfo."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test]
async fn a_vm_from_a_template_gets_a_grown_copy_of_its_disk_efi_and_guestinfo() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let template = make_template(&sim, &client).await;

    let config = cloud_init("web-01", &["192.168.1.100/24"]);
    let mut spec = vm_spec(&sim, "web-01", vec![8 * MIB, 4 * MIB], &["VM Network"]);
    spec.template_disk = Some(template.clone());
    spec.firmware = Some(Firmware::Efi);
    spec.cloud_init = Some(config.clone());
    let outcome = client
        .execute(&HostOp::CreateVm { spec })
        .await
        .expect("create from the template");

    let vm = observed(&client, "web-01").await;
    assert_eq!(outcome.created_moref.as_deref(), Some(vm.moref.as_str()));
    // Disk 0 is a copy in the VM's own folder, grown to the declared size; disk 1 is new.
    let files: Vec<&str> = vm.disks.iter().map(|d| d.file_name.as_str()).collect();
    assert_eq!(
        files,
        [
            format!("[{}] web-01/web-01.vmdk", sim.datastore),
            format!("[{}] web-01/web-01_1.vmdk", sim.datastore)
        ]
    );
    let sizes: Vec<u64> = vm.disks.iter().map(|d| d.capacity_bytes).collect();
    assert_eq!(sizes, [8 * MIB, 4 * MIB]);
    let units: Vec<i32> = vm.disks.iter().map(|d| d.unit_number).collect();
    assert_eq!(units, [0, 1]);
    for suffix in ["-flat.vmdk", ".vmdk"] {
        assert_eq!(
            sha256_of(&sim.datastore_dir.join(format!("web-01/web-01{suffix}"))),
            sha256_of(
                &sim.datastore_dir
                    .join(format!("{TEMPLATE_VM}/{TEMPLATE_VM}{suffix}"))
            ),
            "web-01{suffix} is a byte-for-byte copy of the template's"
        );
    }
    assert_eq!(vm.firmware, Some(Firmware::Efi));
    // The guestinfo is rendered with the MAC address the host gave the adapter.
    assert_eq!(vm.nics.len(), 1);
    assert!(!vm.nics[0].mac_address.is_empty());
    let expected = ceso::cloudinit::guestinfo(&config, &[vm.nics[0].mac_address.clone()]);
    assert!(expected.contains_key("guestinfo.metadata"), "{expected:?}");
    assert!(expected.contains_key("guestinfo.userdata"), "{expected:?}");
    assert_eq!(guestinfo_keys(&vm), expected);
    assert_eq!(vm.managed_name(), Some("web-01"));

    // The template is untouched; a VM made without firmware keeps the host's default.
    let template_vm = observed(&client, TEMPLATE_VM).await;
    assert_eq!(template_vm.disks[0].file_name, template);
    assert_eq!(template_vm.firmware, Some(Firmware::Bios));
    client.logout().await.expect("logout");
}

#[tokio::test]
async fn reconfiguring_with_cloud_init_rewrites_guestinfo_for_every_adapter() {
    let sim = Simulator::start();
    let client = sim.client().await;
    client
        .execute(&HostOp::CreateVm {
            spec: vm_spec(&sim, "db-01", vec![MIB], &["VM Network"]),
        })
        .await
        .expect("create");
    let config = cloud_init("db-01", &["192.168.1.20/24", "192.168.2.20/24"]);
    client
        .execute(&HostOp::ReconfigureVm {
            moref: None,
            vm: "db-01".into(),
            spec: VmReconfigSpec {
                nics: vec![NicChange::Add {
                    port_group: "VM Network".into(),
                }],
                cloud_init: Some(config.clone()),
                ..VmReconfigSpec::default()
            },
        })
        .await
        .expect("reconfigure");
    let vm = observed(&client, "db-01").await;
    let macs: Vec<String> = vm.nics.iter().map(|n| n.mac_address.clone()).collect();
    assert_eq!(macs.len(), 2);
    assert!(macs.iter().all(|m| !m.is_empty()), "{macs:?}");
    assert_eq!(
        guestinfo_keys(&vm),
        ceso::cloudinit::guestinfo(&config, &macs)
    );
}

/// Asserts that no VM named `name` and no folder of it remain.
fn assert_nothing_left(sim: &Simulator, name: &str) {
    assert_eq!(
        find_vm(sim, name).map(|v| v.moref),
        None,
        "{name} was destroyed"
    );
    assert!(
        !sim.datastore_dir.join(name).exists(),
        "the folder of {name} is gone"
    );
}

#[tokio::test]
async fn a_creation_failing_after_create_vm_is_rolled_back() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let template = make_template(&sim, &client).await;
    let from_template = |name: &str| {
        let mut spec = vm_spec(&sim, name, vec![2 * MIB], &["VM Network"]);
        spec.template_disk = Some(template.clone());
        HostOp::CreateVm { spec }
    };

    // The copy fails: the VM made by CreateVM_Task is destroyed again.
    sim.inject_fault("CopyVirtualDisk_Task=task:FileFault*1");
    let err = client
        .execute(&from_template("web-02"))
        .await
        .expect_err("the copy fails");
    assert!(
        matches!(&err, EsxiError::CreateRolledBack { vm, .. } if vm == "web-02"),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("rolled back"), "{message}");
    assert!(message.contains("CopyVirtualDisk_Task"), "{message}");
    assert_nothing_left(&sim, "web-02");

    // The attach fails after the copy: the unattached copy is deleted, then the VM.
    sim.inject_fault("ReconfigVM_Task=task:InvalidDeviceSpec*1");
    let err = client
        .execute(&from_template("web-03"))
        .await
        .expect_err("the attach fails");
    assert!(matches!(&err, EsxiError::CreateRolledBack { .. }), "{err}");
    assert!(err.to_string().contains("InvalidDeviceSpec"), "{err}");
    assert_nothing_left(&sim, "web-03");

    // A template disk that does not exist.
    let mut spec = vm_spec(&sim, "web-04", vec![2 * MIB], &[]);
    spec.template_disk = Some(format!("[{}] nowhere/nothing.vmdk", sim.datastore));
    let err = client
        .execute(&HostOp::CreateVm { spec })
        .await
        .expect_err("no such template disk");
    assert!(err.to_string().contains("FileNotFound"), "{err}");
    assert_nothing_left(&sim, "web-04");

    // The rollback itself fails: the error names the VM left behind.
    sim.inject_fault("CopyVirtualDisk_Task=task:FileFault*1");
    sim.inject_fault("Destroy_Task=task:InvalidState*1");
    let err = client
        .execute(&from_template("web-05"))
        .await
        .expect_err("copy and rollback fail");
    let left = find_vm(&sim, "web-05").expect("web-05 stays");
    match &err {
        EsxiError::RollbackFailed { vm, leftover, .. } => {
            assert_eq!(vm, "web-05");
            assert_eq!(leftover, &format!("VM \"web-05\" (moref {})", left.moref));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().ends_with("by hand"), "{err}");

    // Nothing else was touched.
    let names: Vec<String> = support::list_vms(&sim)
        .into_iter()
        .map(|v| v.name)
        .filter(|n| n.starts_with("web-") || n == TEMPLATE_VM)
        .collect();
    assert_eq!(names, [TEMPLATE_VM, "web-05"]);
}

/// Makes the simulated guest report Tools state and an address (what VMware Tools would do),
/// through the simulator's `SET.guest.*` extraConfig keys.
async fn set_guest(client: &EsxiClient, vm: &str, tools_running: bool, ip: Option<&str>) {
    let mut extra_config = BTreeMap::from([(
        "SET.guest.toolsRunningStatus".to_owned(),
        if tools_running {
            "guestToolsRunning"
        } else {
            "guestToolsNotRunning"
        }
        .to_owned(),
    )]);
    if let Some(ip) = ip {
        extra_config.insert("SET.guest.ipAddress".to_owned(), ip.to_owned());
    }
    client
        .execute(&HostOp::ReconfigureVm {
            moref: None,
            vm: vm.to_owned(),
            spec: VmReconfigSpec {
                extra_config,
                ..VmReconfigSpec::default()
            },
        })
        .await
        .expect("set the guest state");
}

fn wait_for(vm: &str, address: &str, timeout_secs: u64) -> HostOp {
    HostOp::WaitForGuestIp {
        moref: None,
        vm: vm.to_owned(),
        addresses: vec![address.to_owned()],
        timeout_secs,
    }
}

#[tokio::test]
async fn waiting_for_the_guest_address_succeeds_or_says_why_not() {
    let sim = Simulator::start();
    let client = sim.client().await;
    for name in ["app-01", "app-02", "app-03"] {
        client
            .execute(&HostOp::CreateVm {
                spec: vm_spec(&sim, name, vec![MIB], &["VM Network"]),
            })
            .await
            .expect("create");
        client
            .execute(&HostOp::PowerOn {
                moref: None,
                vm: name.to_owned(),
            })
            .await
            .expect("power on");
    }

    // Tools never started: the guest reports nothing.
    let started = Instant::now();
    let err = client
        .execute(&wait_for("app-01", "192.168.1.101", 2))
        .await
        .expect_err("times out");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    match &err {
        EsxiError::GuestIpTimeout {
            vm,
            expected,
            reported,
            tools_running,
            waited_secs,
        } => {
            assert_eq!(vm, "app-01");
            assert_eq!(expected, &["192.168.1.101"]);
            assert!(reported.is_empty());
            assert!(!tools_running);
            assert_eq!(*waited_secs, 2);
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("VMware Tools never started"),
        "{err}"
    );

    // Tools run but report no address.
    set_guest(&client, "app-02", true, None).await;
    let err = client
        .execute(&wait_for("app-02", "192.168.1.102", 1))
        .await
        .expect_err("times out");
    assert!(
        err.to_string().contains("Tools run but report no address"),
        "{err}"
    );

    // The guest reports another address.
    set_guest(&client, "app-03", true, Some("10.0.0.5")).await;
    let err = client
        .execute(&wait_for("app-03", "192.168.1.103", 1))
        .await
        .expect_err("mismatch");
    let message = err.to_string();
    assert!(
        message.contains("mismatch: expected 192.168.1.103, reported 10.0.0.5"),
        "{message}"
    );
    assert!(message.contains("The VM was left as it is"), "{message}");

    // The expected address: done at once.
    set_guest(&client, "app-03", true, Some("192.168.1.103")).await;
    let started = Instant::now();
    client
        .execute(&wait_for("app-03", "192.168.1.103", 30))
        .await
        .expect("the guest reports the address");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The address turns up while waiting.
    let wait = wait_for("app-02", "192.168.1.102", 30);
    let waiter = client.execute(&wait);
    let setter = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        set_guest(&client, "app-02", true, Some("192.168.1.102")).await;
    };
    let (waited, ()) = tokio::join!(waiter, setter);
    waited.expect("reported while waiting");

    // A VM that does not exist.
    let err = client
        .execute(&wait_for("nope", "192.168.1.1", 1))
        .await
        .expect_err("no such VM");
    assert!(matches!(err, EsxiError::VmNotFound { .. }), "{err}");
}

#[tokio::test]
async fn observe_reports_guest_addresses_in_its_one_bulk_read() {
    let sim = Simulator::start();
    let client = sim.client().await;
    let mut spec = vm_spec(&sim, "app-01", vec![MIB], &["VM Network"]);
    spec.firmware = Some(Firmware::Efi);
    client
        .execute(&HostOp::CreateVm { spec })
        .await
        .expect("create");
    let vm = observed(&client, "app-01").await;
    assert!(vm.guest_ips.is_empty(), "{:?}", vm.guest_ips);
    assert_eq!(vm.firmware, Some(Firmware::Efi));

    set_guest(&client, "app-01", true, Some("192.168.1.101")).await;
    sim.reset_stats();
    let vm = observed(&client, "app-01").await;
    assert_eq!(vm.guest_ips, ["192.168.1.101"]);
    assert_eq!(sim.method_count("RetrievePropertiesEx"), 1);
    // The simulator's own VMs (no Tools) report none.
    let host = client.observe().await.expect("observe");
    let other = host
        .vms
        .iter()
        .find(|v| v.name == "ha-host_VM0")
        .expect("default VM");
    assert!(other.guest_ips.is_empty());
}
