//! Benchmark: a no-op `ceso plan` of a 1,000-VM inventory against the ESXi simulator.
//! Prints SOAP round trips (per method), wall time and peak memory of the `ceso` process.
//!
//! Run: `cargo bench --bench plan_1000` (figures are recorded in docs/benchmarks.md).

mod measure;
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

use measure::{expect_exit, measure};

const VMS: usize = 1000;
const RUNS: usize = 5;

fn main() {
    let sim = support::Simulator::start();
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory");
    std::fs::create_dir(&inventory).unwrap();
    std::fs::write(
        inventory.join("host.yaml"),
        format!(
            "apiVersion: ceso/v1\nkind: Host\nmetadata: {{ name: esxi-01 }}\nspec:\n  address: {}\n  thumbprint: \"{}\"\n  username: {}\n  password: {{ env: BENCH_PASSWORD }}\n  datastore: {}\n  network: VM Network\n",
            sim.url, sim.thumbprint, sim.user, sim.datastore
        ),
    )
    .unwrap();
    let mut vms = String::new();
    for i in 0..VMS {
        vms.push_str(&format!(
            "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: bench-{i:04} }}\nspec: {{ host: esxi-01, cpu: 1, memory: 64MiB, disks: [ {{ size: 1GiB }} ], power: off }}\n"
        ));
    }
    std::fs::write(inventory.join("vms.yaml"), vms).unwrap();
    let ceso = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ceso"));
        command
            .args(args)
            .arg(&inventory)
            .env("BENCH_PASSWORD", &sim.password)
            .env("CESO_STATE", dir.path().join("state.redb"))
            .stdin(Stdio::null());
        command
    };

    let logs = dir.path();
    let setup = measure(
        &mut ceso(&["apply", "--auto-approve", "--parallelism", "8"]),
        logs,
        "apply",
    );
    expect_exit(&setup, 0, logs, "apply");
    println!(
        "setup: created {VMS} VMs with `ceso apply` in {:.1} s",
        setup.wall.as_secs_f64()
    );

    sim.reset_stats();
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..RUNS {
        let run = measure(&mut ceso(&["plan"]), logs, "plan");
        expect_exit(&run, 0, logs, "plan");
        times.push(run.wall);
        peaks.push(run.peak_rss_kib);
    }
    let stats = sim.stats();
    let per_run =
        |method: &str| stats["methods"][method].as_u64().unwrap_or(0) as f64 / RUNS as f64;
    let total = stats["total"].as_u64().unwrap_or(0) as f64 / RUNS as f64;
    let session = per_run("RetrieveServiceContent") + per_run("Login") + per_run("Logout");
    times.sort();
    println!("no-op plan of {VMS} VMs ({RUNS} runs, release build):");
    println!(
        "  SOAP round trips per plan: {total} in all; {} to observe after login",
        total - session
    );
    let methods = stats["methods"].as_object().cloned().unwrap_or_default();
    for (method, count) in &methods {
        println!(
            "    {method}: {}",
            count.as_u64().unwrap_or(0) as f64 / RUNS as f64
        );
    }
    println!(
        "  wall time: median {:.0} ms, min {:.0} ms, max {:.0} ms",
        times[RUNS / 2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[RUNS - 1].as_secs_f64() * 1000.0
    );
    println!(
        "  peak memory (max RSS of ceso): {:.1} MiB",
        *peaks.iter().max().unwrap() as f64 / 1024.0
    );
}
