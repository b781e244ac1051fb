//! End to end: how ceso takes VMs down for changes (a graceful shutdown through VMware Tools, a
//! hard power-off only where allowed), annotations, and deletion of running VMs. The real `ceso`
//! binary against the simulator with VMware Tools emulation.

mod support;

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
