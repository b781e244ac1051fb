//! Benchmark: ceso's own cost of creating VMs from a template (issue 3: under 1 s of ceso's time
//! per VM created, the host's task time excluded).
//!
//! Starts the ESXi simulator with VMware Tools emulation, imports a small OVA as template
//! `ubuntu` with `ceso template import`, then creates N VMs from it (each with an address from
//! a pool, cloud-init with an SSH key and a package, powered on) with one `ceso apply`, and runs
//! one `ceso plan` after it (no changes). For both runs it prints the wall time, the CPU time
//! (user + sys) and the peak resident memory of the `ceso` process (`wait4` rusage), and the SOAP
//! round trips the simulator counted. The host's task time is spent in the simulator process,
//! so the CPU time of the `ceso` child is ceso's own time.
//!
//! Run: `cargo bench --bench create_vms` (figures are recorded in docs/benchmarks.md).
//! `CESO_BENCH_VMS` sets N (default 50); `CESO_BENCH_GUEST_DELAY_MS` sets the time from
//! power-on until the emulated guest reports its address (default 0).

mod measure;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use measure::{Measured, env_number, expect_exit, measure};
use support::Simulator;
use support::inventory::Inventory;

const DEFAULT_VMS: usize = 50;
const DEFAULT_GUEST_DELAY_MS: u64 = 0;
/// The target of issue 3, in milliseconds of ceso CPU time per VM created.
const TARGET_CPU_PER_VM_MS: f64 = 1000.0;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIWfxi9EhUErF4Znpc9LrcYBH89qZmCdIn6o6EZ/NlyP ops@lab.example";

/// A /16 pool: room for every VM this benchmark can sensibly create.
const POOL: &str = "---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: lan }\nspec:\n  cidr: 10.20.0.0/16\n  gateway: 10.20.0.1\n  nameservers: [10.20.0.1]\n  searchDomains: [lab.example]\n  ranges: [ { start: 10.20.1.1, end: 10.20.255.254 } ]\n";

fn vm_manifest(name: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  template: ubuntu\n  memory: 1GiB\n  power: on\n  networks: [ {{ ip: auto, pool: lan }} ]\n  cloudInit:\n    sshAuthorizedKeys: [ \"{KEY}\" ]\n    packages: [nginx]\n"
    )
}

/// SOAP calls per method in the simulator's stats, divided by `per`.
fn methods_per(stats: &serde_json::Value, per: f64) -> Vec<(String, f64)> {
    stats["methods"]
        .as_object()
        .map(|methods| {
            methods
                .iter()
                .map(|(method, count)| (method.clone(), count.as_u64().unwrap_or(0) as f64 / per))
                .collect()
        })
        .unwrap_or_default()
}

fn row(run: &str, vms: usize, measured: &Measured, soap_calls: u64) {
    let per_vm = |d: Duration| d.as_secs_f64() * 1000.0 / vms as f64;
    println!(
        "| {run:<5} | {vms:>4} | {:>6.2} | {:>10.1} | {:>10.3} | {:>14.1} | {:>12.1} | {:>17.1} |",
        measured.wall.as_secs_f64(),
        per_vm(measured.wall),
        measured.cpu.as_secs_f64(),
        per_vm(measured.cpu),
        measured.peak_rss_kib as f64 / 1024.0,
        soap_calls as f64 / vms as f64,
    );
}

fn main() {
    let vms: usize = env_number("CESO_BENCH_VMS", DEFAULT_VMS);
    assert!(vms > 0, "CESO_BENCH_VMS must be at least 1");
    let guest_delay_ms: u64 = env_number("CESO_BENCH_GUEST_DELAY_MS", DEFAULT_GUEST_DELAY_MS);

    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(guest_delay_ms)
        .start();
    let inventory = Inventory::new(&sim, POOL);
    inventory.import_template(&sim, "ubuntu");
    let manifests: String = (0..vms)
        .map(|i| vm_manifest(&format!("bench-{i:04}")))
        .collect();
    inventory.set_vms(&format!("{POOL}{manifests}"));
    let path = inventory.path().display().to_string();
    let log_dir = inventory.dir.path();

    sim.reset_stats();
    let apply = measure(
        &mut inventory.command(&sim, &["apply", &path, "--auto-approve"]),
        log_dir,
        "apply",
    );
    expect_exit(&apply, 0, log_dir, "apply");
    let apply_stats = sim.stats();

    sim.reset_stats();
    let plan = measure(
        &mut inventory.command(&sim, &["plan", &path]),
        log_dir,
        "plan",
    );
    expect_exit(&plan, 0, log_dir, "plan");
    let plan_stats = sim.stats();

    let total = |stats: &serde_json::Value| stats["total"].as_u64().unwrap_or(0);
    println!(
        "ceso creating {vms} VMs from a template (release build, guest delay {guest_delay_ms} ms):"
    );
    println!(
        "| run   |  VMs | wall s | wall/VM ms | ceso CPU s | ceso CPU/VM ms | peak RSS MiB | SOAP calls per VM |"
    );
    println!(
        "|-------|-----:|-------:|-----------:|-----------:|---------------:|-------------:|------------------:|"
    );
    row("apply", vms, &apply, total(&apply_stats));
    row("plan", vms, &plan, total(&plan_stats));

    println!("SOAP calls of the apply, per VM created:");
    for (method, per_vm) in methods_per(&apply_stats, vms as f64) {
        println!("  {method}: {per_vm:.2}");
    }
    println!("SOAP calls of the plan (whole run):");
    for (method, count) in methods_per(&plan_stats, 1.0) {
        println!("  {method}: {count}");
    }

    let cpu_per_vm_ms = apply.cpu.as_secs_f64() * 1000.0 / vms as f64;
    let verdict = if cpu_per_vm_ms < TARGET_CPU_PER_VM_MS {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "target: ceso CPU per VM < {TARGET_CPU_PER_VM_MS:.0} ms: {verdict} ({cpu_per_vm_ms:.1} ms)"
    );
}
