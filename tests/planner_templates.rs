//! The planner for VMs made from templates, configured by cloud-init, with addresses from pools.
//! Manifests are loaded the way the CLI loads them; the host is a fake.

mod common;

use std::collections::BTreeMap;

use ceso::cloudinit::read_guestinfo;
use ceso::desired::DesiredState;
use ceso::host::{HostOp, ObservedDisk, ObservedHost, ObservedVm, PowerState};
use ceso::ipam::{HolderKind, Holding};
use ceso::manifest::load_inventory_without_address_check;
use ceso::plan::{Action, Plan, PlanOptions, diff, render};
use common::*;

const HOST: &str = r#"
apiVersion: ceso/v1
kind: Host
metadata: { name: esxi-01 }
spec:
  address: https://esxi-01.lab.example
  thumbprint: "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"
  username: root
  password: { env: ESXI_PASSWORD }
  datastore: datastore1
  network: VM Network
---
apiVersion: ceso/v1
kind: Template
metadata: { name: ubuntu-24.04 }
spec:
  host: esxi-01
  disk: "[datastore1] ubuntu-24.04/ubuntu-24.04.vmdk"
  guestId: ubuntu64Guest
  firmware: efi
  cpu: 2
  memory: 2GiB
---
apiVersion: ceso/v1
kind: IpPool
metadata: { name: lan }
spec:
  cidr: 192.168.1.0/24
  gateway: 192.168.1.1
  nameservers: [192.168.1.1]
  searchDomains: [lab.example]
  ranges: [ { start: 192.168.1.100, end: 192.168.1.102 } ]
"#;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIWfxi9EhUErF4Znpc9LrcYBH89qZmCdIn6o6EZ/NlyP ops@lab.example";

/// The desired state of the host, template and pool above plus `vms` (YAML documents). Address
/// problems are left for the planner (validate would find those that need no host first).
fn load(vms: &str) -> DesiredState {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.yaml"), HOST).unwrap();
    std::fs::write(dir.path().join("vms.yaml"), vms).unwrap();
    let (inventory, diagnostics) = load_inventory_without_address_check(dir.path());
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    DesiredState::from_inventory(&inventory)
}

fn ubuntu_vm(name: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  template: ubuntu-24.04\n{extra}"
    )
}

const AUTO: &str = "  networks: [ { ip: auto, pool: lan } ]\n";

/// A host holding the template's disk (10 GiB) on a powered-off VM.
fn host_with_template() -> ObservedHost {
    ObservedHost {
        datastores: vec!["datastore1".into()],
        networks: vec!["VM Network".into()],
        vms: vec![ObservedVm {
            moref: "1".into(),
            name: "ubuntu-24.04".into(),
            power: Some(PowerState::PoweredOff),
            vmx_path: "[datastore1] ubuntu-24.04/ubuntu-24.04.vmx".into(),
            disks: vec![ObservedDisk {
                key: 2000,
                capacity_bytes: 10 * GIB,
                file_name: "[datastore1] ubuntu-24.04/ubuntu-24.04.vmdk".into(),
                controller_key: 1000,
                unit_number: 0,
            }],
            extra_config: BTreeMap::from([("ceso.template".to_owned(), "ubuntu-24.04".to_owned())]),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn plan_with(desired: &DesiredState, host: &ObservedHost, recorded: Vec<Holding>) -> Plan {
    diff(
        desired,
        &observed(host.clone()),
        &PlanOptions {
            recorded_addresses: recorded,
            ..PlanOptions::default()
        },
        meta(),
    )
}

fn errors(plan: &Plan) -> Vec<String> {
    plan.diagnostics
        .iter()
        .map(|d| {
            format!(
                "{} {}: {}",
                d.resource.as_deref().unwrap_or("-"),
                d.field.as_deref().unwrap_or("-"),
                d.message
            )
        })
        .collect()
}

/// Applies `plan` to the fake and returns the VM named `name` afterwards.
fn apply_and_get(fake: &FakeHost, plan: &Plan, name: &str) -> ObservedVm {
    apply_all(fake, plan);
    fake.state
        .borrow()
        .vms
        .iter()
        .find(|vm| vm.name == name)
        .cloned()
        .expect("created")
}

#[test]
fn a_vm_from_a_template_copies_its_disk_and_tells_cloud_init_its_address() {
    let desired = load(&ubuntu_vm(
        "web-01",
        &format!(
            "  disks: [ {{ size: 20GiB }} ]\n{AUTO}  cloudInit:\n    sshAuthorizedKeys: [ \"{KEY}\" ]\n    packages: [nginx]\n"
        ),
    ));
    let plan = plan_with(&desired, &host_with_template(), vec![]);
    assert_eq!(errors(&plan), Vec::<String>::new());
    insta::assert_snapshot!(render::human(&plan, render::Colour::Never));
    let HostOp::CreateVm { spec } = &plan.steps[0].op else {
        panic!("create first")
    };
    assert_eq!(
        spec.template_disk.as_deref(),
        Some("[datastore1] ubuntu-24.04/ubuntu-24.04.vmdk")
    );
    assert_eq!(spec.disks, vec![20 * GIB]);
    assert_eq!((spec.cpu, spec.memory_mib), (2, 2048), "template defaults");
    let cloud_init = spec.cloud_init.as_ref().expect("cloud-init");
    assert_eq!(cloud_init.hostname, "web-01");
    assert_eq!(
        cloud_init.interfaces[0].address.as_deref(),
        Some("192.168.1.100/24")
    );
    assert_eq!(cloud_init.ssh_authorized_keys, vec![KEY.to_owned()]);
    let descriptions: Vec<&str> = plan.steps.iter().map(|s| s.description.as_str()).collect();
    assert_eq!(
        descriptions,
        [
            "create VM web-01",
            "power on web-01",
            "wait for web-01 to report 192.168.1.100"
        ]
    );
}

#[test]
fn once_applied_the_plan_is_empty_and_the_guestinfo_is_on_the_vm() {
    let desired = load(&ubuntu_vm("web-01", AUTO));
    let fake = FakeHost::new(host_with_template());
    let vm = apply_and_get(
        &fake,
        &plan_with(&desired, &host_with_template(), vec![]),
        "web-01",
    );
    assert_eq!(vm.disks[0].capacity_bytes, 10 * GIB, "the template's size");
    let guestinfo = read_guestinfo(&vm.extra_config).unwrap();
    let metadata = guestinfo.metadata.expect("metadata");
    assert_eq!(metadata["local-hostname"], "web-01");
    let again = plan_with(&desired, &fake.observe_now(), vec![]);
    assert!(
        !again.has_changes(),
        "{}",
        render::human(&again, render::Colour::Never)
    );
}

#[test]
fn disk_0_cannot_be_smaller_than_the_template_disk() {
    let desired = load(&ubuntu_vm("web-01", "  disks: [ { size: 5GiB } ]\n"));
    let plan = plan_with(&desired, &host_with_template(), vec![]);
    assert_eq!(
        errors(&plan),
        [
            "VirtualMachine/web-01 spec.disks[0].size: disk 0 is declared 5GiB, smaller than the 10GiB disk of template \"ubuntu-24.04\": disks never shrink"
        ]
    );
    assert!(plan.steps.is_empty());
}

#[test]
fn a_template_disk_missing_on_the_host_stops_only_creation() {
    let desired = load(&ubuntu_vm("web-01", AUTO));
    let empty = ObservedHost {
        datastores: vec!["datastore1".into()],
        networks: vec!["VM Network".into()],
        ..Default::default()
    };
    let plan = plan_with(&desired, &empty, vec![]);
    assert_eq!(errors(&plan).len(), 1, "{:?}", errors(&plan));
    assert!(errors(&plan)[0].contains("spec.template: the disk [datastore1] ubuntu-24.04/ubuntu-24.04.vmdk of template \"ubuntu-24.04\" is not on host esxi-01"));
    // Once the VM exists, the template is no longer needed.
    let fake = FakeHost::new(host_with_template());
    apply_all(&fake, &plan_with(&desired, &host_with_template(), vec![]));
    let mut without_template = fake.observe_now();
    without_template.vms.retain(|vm| vm.name != "ubuntu-24.04");
    let plan = plan_with(&desired, &without_template, vec![]);
    assert_eq!(errors(&plan), Vec::<String>::new());
    assert!(!plan.has_changes());
}

#[test]
fn a_new_hostname_rewrites_guestinfo_with_a_new_instance_id_without_a_restart() {
    let fake = FakeHost::new(host_with_template());
    let before = load(&ubuntu_vm("web-01", AUTO));
    let vm = apply_and_get(
        &fake,
        &plan_with(&before, &fake.observe_now(), vec![]),
        "web-01",
    );
    let old_id = read_guestinfo(&vm.extra_config).unwrap().metadata.unwrap()["instance-id"].clone();
    let after = load(&ubuntu_vm(
        "web-01",
        &format!("{AUTO}  cloudInit: {{ hostname: web-01.lab.example }}\n"),
    ));
    let plan = plan_with(&after, &fake.observe_now(), vec![]);
    insta::assert_snapshot!(render::human(&plan, render::Colour::Never));
    let change = &plan.changes.iter().find(|c| c.name == "web-01").unwrap();
    assert_eq!(change.action, Action::Update);
    assert!(!change.power_cycle);
    let HostOp::ReconfigureVm { spec, .. } = &plan.steps[0].op else {
        panic!("a reconfiguration")
    };
    assert!(spec.cloud_init.is_some());
    let vm = apply_and_get(&fake, &plan, "web-01");
    let metadata = read_guestinfo(&vm.extra_config).unwrap().metadata.unwrap();
    assert_eq!(metadata["local-hostname"], "web-01.lab.example");
    assert_ne!(metadata["instance-id"], old_id);
}

#[test]
fn new_user_data_keeps_the_instance_id_and_the_plan_says_what_that_means() {
    let fake = FakeHost::new(host_with_template());
    let before = load(&ubuntu_vm("web-01", AUTO));
    apply_all(&fake, &plan_with(&before, &fake.observe_now(), vec![]));
    let after = load(&ubuntu_vm(
        "web-01",
        &format!("{AUTO}  cloudInit: {{ packages: [htop] }}\n"),
    ));
    let plan = plan_with(&after, &fake.observe_now(), vec![]);
    let change = plan.changes.iter().find(|c| c.name == "web-01").unwrap();
    let fields: Vec<&str> = change.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["cloudInit.userData"]);
    assert!(
        change.notes.iter().any(|n| n.contains("once per instance")),
        "{:?}",
        change.notes
    );
}

#[test]
fn addresses_are_stable_and_survive_the_loss_of_the_state_file() {
    let fake = FakeHost::new(host_with_template());
    let first = load(&ubuntu_vm("web-02", AUTO));
    apply_all(&fake, &plan_with(&first, &fake.observe_now(), vec![]));
    // A VM whose name sorts first arrives later: web-02 keeps its address, with or without the
    // state file's records (the host holds them too).
    let both = load(&(ubuntu_vm("web-01", AUTO) + &ubuntu_vm("web-02", AUTO)));
    let recorded = vec![Holding {
        host: "esxi-01".into(),
        vm: "web-02".into(),
        nic: Some(0),
        address: "192.168.1.100".parse().unwrap(),
        kind: HolderKind::Recorded,
    }];
    for recorded in [recorded, vec![]] {
        let plan = plan_with(&both, &fake.observe_now(), recorded);
        assert_eq!(errors(&plan), Vec::<String>::new());
        let web01 = plan.changes.iter().find(|c| c.name == "web-01").unwrap();
        let ip = web01
            .fields
            .iter()
            .find(|f| f.field == "networks[0].ip")
            .unwrap();
        assert_eq!(ip.after.as_deref(), Some("192.168.1.101/24 (pool lan)"));
        let web02 = plan.changes.iter().find(|c| c.name == "web-02").unwrap();
        assert_eq!(web02.action, Action::NoOp);
    }
}

#[test]
fn a_recorded_address_holds_until_its_vm_is_gone() {
    let desired = load(&ubuntu_vm("web-01", AUTO));
    let record = |vm: &str| Holding {
        host: "esxi-01".into(),
        vm: vm.into(),
        nic: Some(0),
        address: "192.168.1.100".parse().unwrap(),
        kind: HolderKind::Recorded,
    };
    // Recorded for a VM that is neither declared nor on the host: released.
    let plan = plan_with(&desired, &host_with_template(), vec![record("gone")]);
    let HostOp::CreateVm { spec } = &plan.steps[0].op else {
        panic!()
    };
    assert_eq!(
        spec.cloud_init.as_ref().unwrap().interfaces[0]
            .address
            .as_deref(),
        Some("192.168.1.100/24")
    );
    // Recorded for the VM itself (its create was cut off): it gets the same address again.
    let desired2 = load(&(ubuntu_vm("web-00", AUTO) + &ubuntu_vm("web-01", AUTO)));
    let plan = plan_with(&desired2, &host_with_template(), vec![record("web-01")]);
    let create = |name: &str| {
        plan.steps
            .iter()
            .find_map(|s| match &s.op {
                HostOp::CreateVm { spec } if spec.name == name => spec.cloud_init.clone(),
                _ => None,
            })
            .unwrap()
            .interfaces[0]
            .address
            .clone()
    };
    assert_eq!(create("web-01").as_deref(), Some("192.168.1.100/24"));
    assert_eq!(create("web-00").as_deref(), Some("192.168.1.101/24"));
}

#[test]
fn an_address_an_unmanaged_guest_uses_is_never_given_out() {
    let mut host = host_with_template();
    host.vms.push(ObservedVm {
        guest_ips: vec!["192.168.1.100".into(), "fe80::1".into()],
        ..unmanaged_vm("legacy", "7")
    });
    let desired = load(
        &(ubuntu_vm("web-01", AUTO)
            + &ubuntu_vm("web-02", "  networks: [ { ip: 192.168.1.100/24 } ]\n")),
    );
    let plan = plan_with(&desired, &host, vec![]);
    let errors = errors(&plan);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("VirtualMachine/web-02 spec.networks[0].ip:")
            && errors[0].contains("legacy"),
        "{errors:?}"
    );
    let web01 = plan.changes.iter().find(|c| c.name == "web-01").unwrap();
    let ip = web01
        .fields
        .iter()
        .find(|f| f.field == "networks[0].ip")
        .unwrap();
    assert_eq!(ip.after.as_deref(), Some("192.168.1.101/24 (pool lan)"));
    let web02 = plan.changes.iter().find(|c| c.name == "web-02").unwrap();
    assert_eq!(web02.action, Action::NoOp, "left alone");
}

#[test]
fn an_exhausted_pool_is_an_error_on_the_adapter_that_found_it_empty() {
    let vms: String = (1..=4)
        .map(|i| ubuntu_vm(&format!("web-0{i}"), AUTO))
        .collect();
    let plan = plan_with(&load(&vms), &host_with_template(), vec![]);
    let errors = errors(&plan);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("VirtualMachine/web-04 spec.networks[0].ip:"),
        "{errors:?}"
    );
    assert_eq!(plan.summary.create, 3);
}

#[test]
fn a_dhcp_adapter_gets_cloud_init_but_nothing_to_wait_for() {
    let desired = load(&ubuntu_vm("web-01", ""));
    let plan = plan_with(&desired, &host_with_template(), vec![]);
    let HostOp::CreateVm { spec } = &plan.steps[0].op else {
        panic!()
    };
    assert_eq!(
        spec.cloud_init.as_ref().unwrap().interfaces[0].address,
        None
    );
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s.op, HostOp::WaitForGuestIp { .. }))
    );
}

#[test]
fn an_address_the_guest_still_uses_is_not_given_to_another_vm() {
    let fake = FakeHost::new(host_with_template());
    let first = load(&ubuntu_vm("web-01", AUTO));
    apply_all(&fake, &plan_with(&first, &fake.observe_now(), vec![]));
    // The guest runs with .100; its manifest now asks for .102 (applied at its next boot).
    fake.state
        .borrow_mut()
        .vms
        .iter_mut()
        .find(|vm| vm.name == "web-01")
        .unwrap()
        .guest_ips = vec!["192.168.1.100".into()];
    let moved = load(&ubuntu_vm(
        "web-01",
        "  networks: [ { ip: 192.168.1.102/24 } ]\n",
    ));
    apply_all(&fake, &plan_with(&moved, &fake.observe_now(), vec![]));
    let both = load(
        &(ubuntu_vm("web-01", "  networks: [ { ip: 192.168.1.102/24 } ]\n")
            + &ubuntu_vm("web-02", AUTO)),
    );
    let plan = plan_with(&both, &fake.observe_now(), vec![]);
    let web02 = plan.changes.iter().find(|c| c.name == "web-02").unwrap();
    let ip = web02
        .fields
        .iter()
        .find(|f| f.field == "networks[0].ip")
        .unwrap();
    assert_eq!(ip.after.as_deref(), Some("192.168.1.101/24 (pool lan)"));
}
