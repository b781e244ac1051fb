//! End to end: Ubuntu VMs from an imported template, configured by cloud-init, with addresses
//! from pools, and the `ceso vm` commands. The real `ceso` binary against the ESXi simulator with
//! VMware Tools emulation (the guest reports the address found in its guestinfo); what ceso wrote
//! is checked by reading the host back and by feeding it to cloud-init's own VMware datasource.

mod support;

use std::path::PathBuf;

use support::cloudinit::consume;
use support::inventory::{Inventory, Run, copy_example_inventory};
use support::{GuestOverride, Simulator, find_vm, list_vms};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIWfxi9EhUErF4Znpc9LrcYBH89qZmCdIn6o6EZ/NlyP ops@lab.example";

const POOL: &str = "---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: lan }\nspec:\n  cidr: 192.168.1.0/24\n  gateway: 192.168.1.1\n  nameservers: [192.168.1.1]\n  searchDomains: [lab.example]\n  ranges: [ { start: 192.168.1.100, end: 192.168.1.102 } ]\n  reservations: [ 192.168.1.101 ]\n";

fn simulator() -> Simulator {
    Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(200)
        .start()
}

fn ubuntu_vm(name: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  template: ubuntu\n  memory: 1GiB\n{extra}"
    )
}

fn auto(pool: &str) -> String {
    format!("  networks: [ {{ ip: auto, pool: {pool} }} ]\n")
}

fn guest_ip(sim: &Simulator, vm: &str) -> Option<String> {
    find_vm(sim, vm).and_then(|facts| facts.guest_ip)
}

/// An inventory with the pool, an imported template, and `vms`.
fn inventory(sim: &Simulator, vms: &str) -> Inventory {
    let inv = Inventory::new(sim, &format!("{POOL}{vms}"));
    inv.import_template(sim, "ubuntu");
    inv
}

#[test]
fn a_vm_from_a_template_with_a_pool_address_configures_itself() {
    let sim = simulator();
    let vm = ubuntu_vm(
        "app-01",
        &format!(
            "  disks: [ {{ size: 64MiB }} ]\n{}  cloudInit:\n    sshAuthorizedKeys: [ \"{KEY}\" ]\n    packages: [nginx]\n    userData:\n      runcmd: [ [systemctl, enable, --now, nginx] ]\n",
            auto("lan")
        ),
    );
    let inv = inventory(&sim, &vm);
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(
        plan.stdout().contains("= 192.168.1.100/24 (pool lan)"),
        "{}",
        plan.stdout()
    );
    let apply = inv.ceso(&sim, &["apply", "DIR", "--auto-approve"]);
    apply.expect(0);
    assert!(
        apply
            .stdout()
            .contains("wait for app-01 to report 192.168.1.100 done"),
        "{}",
        apply.stdout()
    );

    let facts = find_vm(&sim, "app-01").expect("created");
    assert_eq!(facts.guest_ip.as_deref(), Some("192.168.1.100"));
    assert_eq!(facts.firmware.as_deref(), Some("efi"));
    assert_eq!(
        facts.disk_capacities,
        vec![64 << 20],
        "grown to the declared size"
    );
    assert!(
        facts.disk_files[0].contains("app-01/"),
        "disk 0 is a copy in the VM's own folder: {:?}",
        facts.disk_files
    );
    let template = find_vm(&sim, "ubuntu").expect("the template VM");
    assert_eq!(
        digest(&sim, &facts.disk_files[0]),
        digest(&sim, &template.disk_files[0]),
        "disk 0 is a byte-for-byte copy of the template disk"
    );

    // What cloud-init itself makes of the guestinfo ceso wrote.
    let consumed = consume(&sim.extra_config("app-01"));
    assert_eq!(consumed.hostname, "app-01");
    assert!(
        consumed.instance_id.starts_with("app-01-"),
        "{}",
        consumed.instance_id
    );
    assert_eq!(consumed.public_keys, vec![KEY.to_owned()]);
    let mac = facts.nic_macs[0].to_lowercase();
    assert!(
        consumed.netplan_yaml.contains(&mac),
        "{}",
        consumed.netplan_yaml
    );
    assert!(
        consumed.netplan_yaml.contains("192.168.1.100/24"),
        "{}",
        consumed.netplan_yaml
    );
    assert!(
        consumed.netplan_yaml.contains("0.0.0.0/0")
            && consumed.netplan_yaml.contains("lab.example"),
        "{}",
        consumed.netplan_yaml
    );
    assert!(consumed.user_data_valid, "{}", consumed.schema_errors);

    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

/// SHA-256 of a datastore file's `-flat.vmdk` (the data), read from the simulator's directory.
fn digest(sim: &Simulator, disk: &str) -> String {
    let relative = disk.split_once("] ").map_or(disk, |(_, path)| path);
    let flat = relative.replace(".vmdk", "-flat.vmdk");
    let path = sim.datastore_dir.join(flat);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_static_address_is_reported_and_a_mismatch_or_silence_fails_the_wait_but_keeps_the_vm() {
    let sim = simulator();
    let inv = inventory(
        &sim,
        &(ubuntu_vm("static-01", "  networks: [ { ip: 192.168.1.20/24 } ]\n")
            + &ubuntu_vm("wrong-01", "  networks: [ { ip: 192.168.1.21/24 } ]\n")
            + &ubuntu_vm("silent-01", "  networks: [ { ip: 192.168.1.22/24 } ]\n")),
    );
    sim.set_guest("wrong-01", GuestOverride::Ip("10.0.0.9".into()));
    sim.set_guest("silent-01", GuestOverride::ToolsOff);
    let apply = inv.ceso(
        &sim,
        &["apply", "DIR", "--auto-approve", "--guest-ip-timeout", "3"],
    );
    apply.expect(1);
    let out = apply.stdout();
    assert!(
        out.contains("wait for static-01 to report 192.168.1.20 done"),
        "{out}"
    );
    assert!(
        out.contains("mismatch") && out.contains("10.0.0.9"),
        "{out}"
    );
    assert!(out.contains("VMware Tools never started"), "{out}");
    assert_eq!(guest_ip(&sim, "static-01").as_deref(), Some("192.168.1.20"));
    for vm in ["wrong-01", "silent-01"] {
        let facts = find_vm(&sim, vm).expect("left as it is");
        assert_eq!(facts.power_state, "poweredOn", "{vm}");
    }
    // The wait is not an undo: the next plan has nothing to change.
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn address_conflicts_are_refused_at_plan_time_with_their_place() {
    let sim = simulator();
    let inv = inventory(&sim, "");
    // The simulator's own VMs run Tools and hold DHCP leases 10.99.0.1 and 10.99.0.2.
    let unmanaged_pool = "---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: dhcp }\nspec:\n  cidr: 10.99.0.0/24\n  ranges: [ { start: 10.99.0.1, end: 10.99.0.9 } ]\n";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "duplicate",
            ubuntu_vm("a-01", "  networks: [ { ip: 192.168.1.20/24 } ]\n")
                + &ubuntu_vm("a-02", "  networks: [ { ip: 192.168.1.20/24 } ]\n"),
            "192.168.1.20",
        ),
        (
            "outside the subnet",
            ubuntu_vm(
                "b-01",
                "  networks: [ { ip: 192.168.2.20/24, pool: lan } ]\n",
            ),
            "192.168.2.20",
        ),
        (
            "the gateway",
            ubuntu_vm("c-01", "  networks: [ { ip: 192.168.1.1/24 } ]\n"),
            "gateway",
        ),
        (
            "the broadcast address",
            ubuntu_vm("c-02", "  networks: [ { ip: 192.168.1.255/24 } ]\n"),
            "broadcast",
        ),
        (
            "exhausted",
            ubuntu_vm("d-01", &auto("lan"))
                + &ubuntu_vm("d-02", &auto("lan"))
                + &ubuntu_vm("d-03", &auto("lan")),
            "lan",
        ),
        (
            "used by an unmanaged VM",
            format!(
                "{unmanaged_pool}{}",
                ubuntu_vm("e-01", "  networks: [ { ip: 10.99.0.1/24 } ]\n")
            ),
            "ha-host_VM0",
        ),
    ];
    for (case, vms, needle) in cases {
        inv.set_vms(&format!("{POOL}{vms}"));
        let plan = inv.ceso(&sim, &["plan", "DIR"]);
        assert_eq!(
            plan.code(),
            1,
            "{case}: {}\n{}",
            plan.stdout(),
            plan.stderr()
        );
        let text = plan.stdout() + &plan.stderr();
        assert!(text.contains(needle), "{case}: {text}");
        assert!(
            text.contains("vms.yaml:"),
            "{case}: the place in the manifest: {text}"
        );
        assert!(
            text.contains("spec.networks[0]."),
            "{case}: the field: {text}"
        );
    }
    // Overlapping pools are found without a host.
    inv.set_vms(&format!("{POOL}---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: {{ name: lab }}\nspec:\n  cidr: 192.168.1.128/25\n"));
    let validate = inv.ceso(&sim, &["validate", "DIR"]);
    validate.expect(1);
    assert!(
        validate.stderr().contains("overlap"),
        "{}",
        validate.stderr()
    );
    assert!(
        list_vms(&sim)
            .iter()
            .all(|vm| !vm.extra_config.contains_key("ceso.managed")),
        "nothing was created"
    );
}

/// The address of each declared VM's first adapter in a JSON plan.
fn planned_addresses(run: &Run) -> Vec<(String, String)> {
    let plan: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON plan");
    let mut out = Vec::new();
    for change in plan["changes"].as_array().unwrap() {
        for field in change["fields"].as_array().into_iter().flatten() {
            if field["field"] == "networks[0].ip" {
                out.push((
                    change["name"].as_str().unwrap().to_owned(),
                    field["after"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn losing_the_state_file_changes_no_address() {
    let sim = simulator();
    let inv = inventory(
        &sim,
        &(ubuntu_vm("web-02", &auto("lan")) + &ubuntu_vm("web-03", &auto("lan"))),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(guest_ip(&sim, "web-02").as_deref(), Some("192.168.1.100"));
    assert_eq!(
        guest_ip(&sim, "web-03").as_deref(),
        Some("192.168.1.102"),
        "101 is reserved"
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);

    // A third VM, whose name sorts first, finds the pool full: the others keep their addresses.
    let both = ubuntu_vm("web-01", &auto("lan")) + &ubuntu_vm("web-02", &auto("lan"));
    inv.set_vms(&format!("{POOL}{both}"));
    let with_state = inv.ceso(&sim, &["plan", "DIR", "--json"]);
    std::fs::remove_file(inv.dir.path().join("state.redb")).unwrap();
    let without_state = inv.ceso(&sim, &["plan", "DIR", "--json"]);
    assert_eq!(
        planned_addresses(&with_state),
        planned_addresses(&without_state)
    );
    let text = without_state.stdout() + &without_state.stderr();
    assert!(
        text.contains("web-01") && !text.contains("192.168.1.100/24 (pool lan)\""),
        "web-01 must not get web-02's address: {text}"
    );
}

#[test]
fn a_new_hostname_reaches_the_guest_with_a_new_instance_id() {
    let sim = simulator();
    let inv = inventory(&sim, &ubuntu_vm("web-01", &auto("lan")));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let before = consume(&sim.extra_config("web-01"));
    inv.set_vms(&format!(
        "{POOL}{}",
        ubuntu_vm(
            "web-01",
            &format!(
                "{}  cloudInit: {{ hostname: web-01.lab.example }}\n",
                auto("lan")
            )
        )
    ));
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    plan.expect(2);
    assert!(plan.stdout().contains("next boot"), "{}", plan.stdout());
    assert!(
        !plan.stdout().contains("power off"),
        "no restart: {}",
        plan.stdout()
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let after = consume(&sim.extra_config("web-01"));
    assert_eq!(after.local_hostname, "web-01.lab.example");
    assert_eq!(after.fqdn, "web-01.lab.example");
    assert_ne!(after.instance_id, before.instance_id);
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

fn public_key_file(inv: &Inventory) -> PathBuf {
    let path = inv.dir.path().join("id_ed25519.pub");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    path
}

#[test]
fn vm_create_writes_the_manifest_and_vm_delete_removes_it_and_frees_the_address() {
    let sim = simulator();
    let inv = inventory(&sim, "");
    let key = public_key_file(&inv);
    let key = key.display().to_string();
    let create = |name: &str| {
        inv.ceso(
            &sim,
            &[
                "vm",
                "create",
                name,
                "--template",
                "ubuntu",
                "--ip",
                "192.168.1.120/24",
                "--ssh-key",
                &key,
                "--memory",
                "1GiB",
                "--inventory",
                "DIR",
                "--yes",
            ],
        )
    };
    create("web-09").expect(0);
    let manifest = inv.path().join("vms/web-09.yaml");
    let text = std::fs::read_to_string(&manifest).expect("the manifest is written");
    assert!(
        text.contains("192.168.1.120/24") && text.contains("ssh-ed25519"),
        "{text}"
    );
    assert_eq!(guest_ip(&sim, "web-09").as_deref(), Some("192.168.1.120"));
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);

    // The address is taken now; a second VM with it is refused and leaves no manifest behind.
    let clash = create("web-10");
    clash.expect(1);
    assert!(!inv.path().join("vms/web-10.yaml").exists());
    assert!(find_vm(&sim, "web-10").is_none());

    // Without a terminal, delete needs --yes; nothing changes without it.
    inv.ceso(&sim, &["vm", "delete", "web-09", "--inventory", "DIR"])
        .expect(1);
    assert!(manifest.exists() && find_vm(&sim, "web-09").is_some());
    inv.ceso(
        &sim,
        &["vm", "delete", "web-09", "--inventory", "DIR", "--yes"],
    )
    .expect(0);
    assert!(!manifest.exists());
    assert!(find_vm(&sim, "web-09").is_none());
    create("web-10").expect(0);
    assert_eq!(guest_ip(&sim, "web-10").as_deref(), Some("192.168.1.120"));
}

#[test]
fn vm_delete_refuses_a_protected_vm() {
    let sim = simulator();
    let inv = inventory(&sim, &ubuntu_vm("db-01", "  protect: true\n"));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let refused = inv.ceso(
        &sim,
        &["vm", "delete", "db-01", "--inventory", "DIR", "--yes"],
    );
    refused.expect(1);
    assert!(
        refused.stderr().contains("protected"),
        "{}",
        refused.stderr()
    );
    assert!(find_vm(&sim, "db-01").is_some());
    assert!(inv.path().join("vms.yaml").exists());
}

#[test]
fn the_example_inventory_imports_plans_and_applies() {
    let sim = simulator();
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory");
    copy_example_inventory(&sim, &inventory);
    // The template the example names is imported as `ceso template import` does it.
    let template = inventory.join("templates/ubuntu-24.04.yaml");
    let declared = std::fs::read_to_string(&template).unwrap();
    std::fs::remove_file(&template).unwrap();
    let ova = support::ova::build_ova(dir.path(), "ubuntu-cloudimg", 4 << 20, "efi");
    let run = |args: &[&str]| {
        Run(std::process::Command::new(env!("CARGO_BIN_EXE_ceso"))
            .args(args)
            .env("ESXI_PASSWORD", &sim.password)
            .env("CESO_STATE", dir.path().join("state.redb"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap())
    };
    let inventory_arg = inventory.display().to_string();
    run(&[
        "template",
        "import",
        &ova.display().to_string(),
        "--name",
        "ubuntu-24.04",
        "--host",
        "esxi-01",
        "--inventory",
        &inventory_arg,
    ])
    .expect(0);
    let written = std::fs::read_to_string(&template).unwrap();
    assert_eq!(
        template_disk(&written),
        template_disk(&declared),
        "the example names the disk the import creates"
    );
    // The example's template keeps its own defaults (those of the real Ubuntu image).
    std::fs::write(&template, declared).unwrap();
    run(&["plan", &inventory_arg]).expect(2);
    run(&["apply", &inventory_arg, "--auto-approve"]).expect(0);
    let managed: Vec<String> = list_vms(&sim)
        .into_iter()
        .filter(|v| v.extra_config.contains_key("ceso.managed"))
        .map(|v| v.name)
        .collect();
    assert_eq!(managed, vec!["app-01", "db-01", "web-01", "web-02"]);
    assert_eq!(guest_ip(&sim, "app-01").as_deref(), Some("192.168.1.100"));
    assert_eq!(
        find_vm(&sim, "db-01").unwrap().disk_capacities,
        vec![40 << 30, 100 << 30]
    );
    run(&["plan", &inventory_arg]).expect(0);
}

/// `spec.disk` of a Template manifest.
fn template_disk(text: &str) -> String {
    let document: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    document["spec"]["disk"].as_str().unwrap().to_owned()
}

#[test]
fn a_template_import_is_in_the_audit_log_like_every_change() {
    let sim = simulator();
    let inv = inventory(&sim, "");
    let list = inv.ceso(&sim, &["audit", "list"]);
    list.expect(0);
    let line = list
        .stdout()
        .lines()
        .find(|l| l.contains("template import"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", list.stdout()));
    assert!(line.contains("succeeded"), "{line}");
    let run = line.split_whitespace().next().unwrap().to_owned();
    let show = inv.ceso(&sim, &["audit", "show", &run]);
    show.expect(0);
    assert!(
        show.stdout().contains("import template ubuntu"),
        "{}",
        show.stdout()
    );
}
