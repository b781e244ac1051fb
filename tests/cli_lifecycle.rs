//! End to end: how ceso takes VMs down for changes (a graceful shutdown through VMware Tools, a
//! hard power-off only where allowed), annotations, and deletion of running VMs. The real `ceso`
//! binary against the simulator with VMware Tools emulation.

mod support;

use support::disks::{disk_digests, snapshot_names};
use support::inventory::Inventory;
use support::{GuestOverride, Simulator, find_vm};

fn simulator() -> Simulator {
    Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(50)
        .start()
}

fn vm(name: &str, cpu: u32, extra: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: {cpu}\n  memory: 1GiB\n  disks: [ {{ size: 1GiB }} ]\n  power: on\n{extra}"
    )
}

/// Lines of apply's output that start a step.
fn started(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.ends_with("..."))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_restart_shuts_the_guest_down_gracefully_and_powers_it_back_on() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("app-01", 1, ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    inv.set_vms(&vm("app-01", 2, ""));
    sim.reset_stats();
    let run = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    run.expect(0);
    assert_eq!(
        started(&run.stdout()),
        [
            "VirtualMachine/app-01: shut down app-01...",
            "VirtualMachine/app-01: reconfigure app-01...",
            "VirtualMachine/app-01: power on app-01..."
        ]
    );
    assert_eq!(sim.method_count("ShutdownGuest"), 1);
    assert_eq!(sim.method_count("PowerOffVM_Task"), 0, "no hard power-off");
    let app = find_vm(&sim, "app-01").unwrap();
    assert_eq!((app.num_cpu, app.power_state.as_str()), (2, "poweredOn"));
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn without_tools_the_restart_is_refused_unless_a_hard_power_off_is_allowed() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("app-01", 1, ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    sim.set_guest("app-01", GuestOverride::ToolsOff);
    inv.set_vms(&vm("app-01", 2, ""));
    let refused = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    refused.expect(1);
    let out = refused.stdout() + &refused.stderr();
    assert!(
        out.contains("force"),
        "says how to allow a hard power-off: {out}"
    );
    assert!(out.contains("reconfigure app-01 skipped"), "{out}");
    let app = find_vm(&sim, "app-01").unwrap();
    assert_eq!(
        (app.num_cpu, app.power_state.as_str()),
        (1, "poweredOn"),
        "left running"
    );

    // The flag allows it for this run...
    let forced = inv.ceso(
        &sim,
        &["apply", "DIR", "--auto-approve", "--force-power-off"],
    );
    forced.expect(0);
    let app = find_vm(&sim, "app-01").unwrap();
    assert_eq!((app.num_cpu, app.power_state.as_str()), (2, "poweredOn"));

    // ... and the manifest for good.
    inv.set_vms(&vm(
        "app-01",
        3,
        "  shutdown: { timeoutSeconds: 5, force: true }\n",
    ));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(find_vm(&sim, "app-01").unwrap().num_cpu, 3);
}

#[test]
fn the_notes_are_kept_as_declared() {
    let sim = simulator();
    let inv = Inventory::new(
        &sim,
        &vm("app-01", 1, "  annotation: \"owner: web team\"\n"),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(
        find_vm(&sim, "app-01").unwrap().annotation,
        "owner: web team"
    );
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
    inv.set_vms(&vm("app-01", 1, "  annotation: \"owner: ops\"\n"));
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(
        plan.stdout().contains("owner: web team → owner: ops"),
        "{}",
        plan.stdout()
    );
    assert!(
        !plan.stdout().contains("shut down"),
        "online: {}",
        plan.stdout()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(find_vm(&sim, "app-01").unwrap().annotation, "owner: ops");
}

#[test]
fn pruning_a_running_vm_shuts_it_down_first() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("old-01", 1, ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    inv.set_vms("");
    sim.reset_stats();
    let run = inv.ceso(&sim, &["apply", "DIR", "--auto-approve", "--prune"]);
    run.expect(0);
    assert_eq!(sim.method_count("ShutdownGuest"), 1);
    assert!(find_vm(&sim, "old-01").is_none());
}

const POOL: &str = "---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: lan }\nspec:\n  cidr: 192.168.1.0/24\n  gateway: 192.168.1.1\n  ranges: [ { start: 192.168.1.100, end: 192.168.1.120 } ]\n";

/// A simulator that refuses `CloneVM_Task` as a standalone ESXi host does.
fn standalone_simulator() -> Simulator {
    Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(50)
        .fault("CloneVM_Task=NotSupported")
        .start()
}

#[test]
fn a_running_vm_is_cloned_on_the_host_with_a_new_identity_and_no_snapshot_left() {
    let sim = standalone_simulator();
    let inv = Inventory::new(
        &sim,
        &format!(
            "{POOL}{}",
            vm("web-01", 2, "  disks: [ { size: 1GiB }, { size: 2GiB } ]\n  networks: [ { ip: 192.168.1.10/24 } ]\n")
                .replace("  disks: [ { size: 1GiB } ]\n", "")
        ),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    // Give the source's disks content, as a guest would.
    for (index, file) in find_vm(&sim, "web-01")
        .unwrap()
        .disk_files
        .iter()
        .enumerate()
    {
        let relative = file.split_once("] ").map_or(file.as_str(), |(_, p)| p);
        std::fs::write(
            sim.datastore_dir
                .join(relative.replace(".vmdk", "-flat.vmdk")),
            format!("data of disk {index}").repeat(1000),
        )
        .unwrap();
    }
    let clone = inv.ceso(
        &sim,
        &[
            "vm",
            "clone",
            "web-01",
            "web-02",
            "--pool",
            "lan",
            "--inventory",
            "DIR",
            "--yes",
        ],
    );
    clone.expect(0);
    assert!(
        clone.stdout().contains("snapshot taken for the purpose"),
        "the plan says how: {}",
        clone.stdout()
    );
    assert_eq!(
        sim.method_count("CloneVM_Task"),
        0,
        "never on a standalone host"
    );
    let (source, copy) = (
        find_vm(&sim, "web-01").unwrap(),
        find_vm(&sim, "web-02").unwrap(),
    );
    assert_eq!(disk_digests(&sim, "web-02"), disk_digests(&sim, "web-01"));
    assert!(
        copy.disk_files.iter().all(|f| f.contains("web-02/")),
        "{:?}",
        copy.disk_files
    );
    assert_ne!(copy.nic_macs, source.nic_macs, "new MAC addresses");
    assert_eq!(
        (copy.num_cpu, copy.memory_mb),
        (2, 1024),
        "the source's hardware"
    );
    assert_eq!(
        copy.guest_ip.as_deref(),
        Some("192.168.1.100"),
        "an address of its own"
    );
    assert_eq!(source.power_state, "poweredOn", "the source kept running");
    assert!(
        snapshot_names(&sim, "web-01").is_empty(),
        "the snapshot is gone"
    );
    let manifest = std::fs::read_to_string(inv.path().join("vms/web-02.yaml")).unwrap();
    assert!(
        manifest.contains("source:") && manifest.contains("web-01"),
        "{manifest}"
    );
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn a_snapshot_left_by_an_interrupted_clone_is_removed_by_the_next_apply() {
    let sim = standalone_simulator();
    let inv = Inventory::new(&sim, &vm("web-01", 1, ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let moref = find_vm(&sim, "web-01").unwrap().moref;
    let response = support::soap_query_response(
        &sim,
        &format!(
            r#"<CreateSnapshot_Task xmlns="urn:vim25"><_this type="VirtualMachine">{moref}</_this><name>ceso-clone-web-07</name><memory>false</memory><quiesce>false</quiesce></CreateSnapshot_Task>"#
        ),
    );
    assert_eq!(support::task_outcome(&sim, &response).0, "success");
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(
        plan.stdout().contains("left by an interrupted clone"),
        "{}",
        plan.stdout()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert!(snapshot_names(&sim, "web-01").is_empty());
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn a_clone_killed_mid_copy_is_made_again_and_its_snapshot_removed() {
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(50)
        .fault("CloneVM_Task=NotSupported")
        .method_delay("CopyVirtualDisk_Task", 1500)
        .start();
    let source = vm("web-01", 1, "");
    let clone = "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: { name: web-02 }\nspec:\n  host: esxi-01\n  source: { vm: web-01 }\n  power: off\n";
    let inv = Inventory::new(&sim, &source);
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    inv.set_vms(&format!("{source}{clone}"));
    let mut killed = inv.apply_in_background(&sim, &[], "CopyVirtualDisk_Task", 1);
    killed.kill().unwrap(); // the connection drops while the host copies
    killed.wait().unwrap();
    support::inventory::wait_for(std::time::Duration::from_secs(10), || {
        find_vm(&sim, "web-02").is_some()
            && find_vm(&sim, "web-02")
                .unwrap()
                .extra_config
                .contains_key("ceso.creating")
    });
    assert_eq!(snapshot_names(&sim, "web-01"), ["ceso-clone-web-02"]);

    // Right away, the same state file knows the host may still be copying: nothing is done.
    let refused = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    refused.expect(1);
    assert!(
        refused.stderr().contains("interrupted"),
        "{}",
        refused.stderr()
    );

    // Once the host has finished what it was doing (the copy the killed run asked for) and the
    // check has expired (here: another state file), the next apply converges.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let later = inv
        .command(&sim, &["plan", &inv.path().display().to_string()])
        .env("CESO_STATE", inv.dir.path().join("later.redb"))
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&later.stdout).into_owned();
    assert!(plan.contains("half-made"), "{plan}");
    assert!(plan.contains("left by an interrupted clone"), "{plan}");
    let apply = inv
        .command(
            &sim,
            &["apply", &inv.path().display().to_string(), "--auto-approve"],
        )
        .env("CESO_STATE", inv.dir.path().join("later.redb"))
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stdout)
    );
    let copy = find_vm(&sim, "web-02").expect("made again");
    assert!(
        copy.extra_config
            .get("ceso.creating")
            .is_none_or(String::is_empty),
        "whole now"
    );
    assert_eq!(copy.disk_files.len(), 1);
    assert!(snapshot_names(&sim, "web-01").is_empty());
    assert_eq!(
        support::list_vms(&sim)
            .iter()
            .filter(|v| v.name.starts_with("web-02"))
            .count(),
        1,
        "no leftover copy"
    );
}

#[test]
fn with_hot_add_enabled_more_cpu_and_memory_arrive_without_a_restart() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("app-01", 1, ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let moref = find_vm(&sim, "app-01").unwrap().moref;
    let response = support::soap_query_response(
        &sim,
        &format!(
            r#"<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{moref}</_this><spec><memoryHotAddEnabled>true</memoryHotAddEnabled><cpuHotAddEnabled>true</cpuHotAddEnabled></spec></ReconfigVM_Task>"#
        ),
    );
    assert_eq!(support::task_outcome(&sim, &response).0, "success");
    inv.set_vms(&vm("app-01", 4, "").replace("memory: 1GiB", "memory: 2GiB"));
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(
        !plan.stdout().contains("requires power off"),
        "{}",
        plan.stdout()
    );
    sim.reset_stats();
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(sim.method_count("ShutdownGuest"), 0, "no restart");
    let app = find_vm(&sim, "app-01").unwrap();
    assert_eq!(
        (app.num_cpu, app.memory_mb, app.power_state.as_str()),
        (4, 2048, "poweredOn")
    );
}

#[test]
fn a_clone_whose_power_on_fails_is_whole_and_the_next_apply_powers_it_on() {
    let sim = standalone_simulator();
    let source = vm("web-01", 1, "");
    let clone = "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: { name: web-02 }\nspec:\n  host: esxi-01\n  source: { vm: web-01 }\n";
    let inv = Inventory::new(&sim, &source);
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    inv.set_vms(&format!("{source}{clone}"));
    sim.inject_fault("PowerOnVM_Task=task:InsufficientResourcesFault*1");
    let failed = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    failed.expect(1);
    assert!(
        failed.stdout().contains("InsufficientResourcesFault"),
        "{}",
        failed.stdout()
    );
    let copy = find_vm(&sim, "web-02").expect("the clone is kept: it is whole");
    assert_eq!(copy.power_state, "poweredOff");
    assert!(snapshot_names(&sim, "web-01").is_empty());
    let next = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    next.expect(0);
    assert_eq!(find_vm(&sim, "web-02").unwrap().power_state, "poweredOn");
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn a_powered_off_source_is_cloned_without_a_snapshot() {
    let sim = standalone_simulator();
    let source = vm("web-01", 2, "").replace("power: on", "power: off");
    let clone = "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: { name: web-02 }\nspec:\n  host: esxi-01\n  source: { vm: web-01 }\n  power: off\n";
    let inv = Inventory::new(&sim, &source);
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let file = find_vm(&sim, "web-01").unwrap().disk_files[0].clone();
    let relative = file
        .split_once("] ")
        .map_or(file.as_str(), |(_, p)| p)
        .to_owned();
    std::fs::write(
        sim.datastore_dir
            .join(relative.replace(".vmdk", "-flat.vmdk")),
        "the source's data".repeat(500),
    )
    .unwrap();
    inv.set_vms(&format!("{source}{clone}"));
    sim.reset_stats();
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(sim.method_count("CreateSnapshot_Task"), 0);
    assert_eq!(sim.method_count("CloneVM_Task"), 0);
    assert_eq!(disk_digests(&sim, "web-02"), disk_digests(&sim, "web-01"));
    assert_eq!(find_vm(&sim, "web-02").unwrap().num_cpu, 2);
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn a_different_template_replaces_the_vm_unless_it_is_protected() {
    let sim = simulator();
    let inv = Inventory::new(&sim, "");
    inv.import_template(&sim, "ubuntu");
    inv.import_template(&sim, "ubuntu-next");
    let from = |template: &str, extra: &str| {
        format!(
            "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: app-01 }}\nspec:\n  host: esxi-01\n  template: {template}\n  memory: 1GiB\n{extra}"
        )
    };
    inv.set_vms(&from("ubuntu", "  protect: true\n"));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let before = find_vm(&sim, "app-01").unwrap().moref;

    inv.set_vms(&from("ubuntu-next", "  protect: true\n"));
    let refused = inv.ceso(&sim, &["plan", "DIR"]);
    refused.expect(1);
    let text = refused.stdout() + &refused.stderr();
    assert!(
        text.contains("is protected and cannot be replaced"),
        "{text}"
    );

    inv.set_vms(&from("ubuntu", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    inv.set_vms(&from("ubuntu-next", ""));
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(
        plan.stdout().contains("-/+ VirtualMachine/app-01"),
        "{}",
        plan.stdout()
    );
    assert!(
        plan.stdout().contains("forces replacement"),
        "{}",
        plan.stdout()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let after = find_vm(&sim, "app-01").unwrap();
    assert_ne!(after.moref, before, "a new VM");
    assert_eq!(after.power_state, "poweredOn");
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn vm_delete_follows_the_vms_own_shutdown_policy() {
    let sim = simulator();
    let inv = Inventory::new(
        &sim,
        &vm(
            "old-01",
            1,
            "  shutdown: { timeoutSeconds: 5, force: true }\n",
        ),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    sim.set_guest("old-01", GuestOverride::ToolsOff);
    inv.ceso(
        &sim,
        &["vm", "delete", "old-01", "--inventory", "DIR", "--yes"],
    )
    .expect(0);
    assert!(find_vm(&sim, "old-01").is_none());
    assert!(!inv.path().join("vms.yaml").exists());
}
