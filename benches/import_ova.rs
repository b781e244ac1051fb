//! Benchmark: `ceso template import` streams the OVA's disk to the host in constant memory.
//!
//! Builds Ubuntu-like OVAs whose stream-optimized disks hold incompressible data of growing size,
//! imports each into the ESXi simulator with the release `ceso`, and prints the wall time, the
//! upload rate and the peak resident memory of the `ceso` process (`wait4` rusage). Constant
//! memory means the peak does not grow with the disk.
//!
//! Run: `cargo bench --bench import_ova` (figures are recorded in docs/benchmarks.md).
//! `CESO_BENCH_OVA_MIB` sets the largest disk in MiB (default 512).

mod measure;
#[path = "../tests/support/mod.rs"]
mod support;

use measure::{env_number, expect_exit, measure};
use support::Simulator;
use support::inventory::Inventory;

fn main() {
    let largest: usize = env_number("CESO_BENCH_OVA_MIB", 512);
    let sim = Simulator::start();
    let inventory = Inventory::new(&sim, "");
    let logs = inventory.dir.path();
    println!("template import of OVAs with incompressible disks (release build):");
    println!(
        "  {:>10}  {:>10}  {:>8}  {:>10}  {:>14}",
        "disk MiB", "OVA MiB", "wall s", "MiB/s", "peak RSS MiB"
    );
    let mut sizes = vec![16, 64];
    sizes.push(largest.max(128));
    for (index, mib) in sizes.into_iter().enumerate() {
        let name = format!("bench-{index}");
        let ova = support::ova::build_ova(logs, &name, mib << 20, "bios");
        let ova_mib = std::fs::metadata(&ova).unwrap().len() as f64 / f64::from(1 << 20);
        let path = ova.display().to_string();
        let mut command = inventory.command(
            &sim,
            &[
                "template",
                "import",
                &path,
                "--name",
                &name,
                "--host",
                "esxi-01",
                "--inventory",
                &inventory.path().display().to_string(),
            ],
        );
        let run = measure(&mut command, logs, &name);
        expect_exit(&run, 0, logs, &name);
        std::fs::remove_file(&ova).ok();
        println!(
            "  {mib:>10}  {ova_mib:>10.1}  {:>8.2}  {:>10.0}  {:>14.1}",
            run.wall.as_secs_f64(),
            ova_mib / run.wall.as_secs_f64(),
            run.peak_rss_kib as f64 / 1024.0
        );
    }
}
