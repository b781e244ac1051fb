//! Benchmark: the time from saving a manifest edit to the change on the host, with
//! `ceso watch --apply` running (issue 6: under 2 s on the simulator).
//!
//! Starts the ESXi simulator, applies an inventory of N powered-off VMs, starts
//! `ceso watch DIR --apply` (release build, default debounce), then R times: rewrites one VM's
//! manifest with a new memory size (write to a temporary file and rename over it, as editors
//! and `git checkout` do), and polls the simulator every 10 ms until the VM has that memory.
//! Prints min, median, 90th percentile and max of the edit-to-host time, and what the watch
//! process reported of its own reconciles.
//!
//! Run: `cargo bench --bench watch` (figures are recorded in docs/benchmarks.md).
//! `CESO_BENCH_VMS` sets N (default 20), `CESO_BENCH_EDITS` sets R (default 20).

mod measure;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use measure::env_number;
use support::inventory::Inventory;
use support::{Simulator, find_vm};

/// The target of issue 6.
const TARGET: Duration = Duration::from_secs(2);

fn vm(name: &str, memory_mb: u64) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: 1\n  memory: {memory_mb}MiB\n  disks: [ {{ size: 8MiB }} ]\n  power: off\n  guestId: ubuntu64Guest\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let vms: usize = env_number("CESO_BENCH_VMS", 20);
    let edits: usize = env_number("CESO_BENCH_EDITS", 20);
    let sim = Simulator::builder().start();
    let names: Vec<String> = (1..=vms).map(|i| format!("vm-{i:03}")).collect();
    let inv = Inventory::new(&sim, "");
    std::fs::create_dir_all(inv.path().join("vms")).unwrap();
    for name in &names {
        std::fs::write(inv.path().join(format!("vms/{name}.yaml")), vm(name, 256)).unwrap();
    }
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);

    let path = inv.path().display().to_string();
    let mut watch = inv
        .command(
            &sim,
            &["watch", &path, "--apply", "--interval", "1h", "--json"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (sender, events) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["event"] == "reconcile"
            {
                let _ = sender.send(event);
            }
        }
    });
    let first = events.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(first["result"], "in_sync", "{first:#}");

    let mut times = Vec::new();
    for edit in 0..edits {
        let name = &names[edit % vms];
        let memory = 256 + 128 * (1 + edit as u64 / vms as u64);
        let file = inv.path().join(format!("vms/{name}.yaml"));
        let scratch = inv.path().join(format!("vms/.{name}.yaml.tmp"));
        std::fs::write(&scratch, vm(name, memory)).unwrap();
        std::fs::rename(&scratch, &file).unwrap();
        let saved = Instant::now();
        loop {
            if find_vm(&sim, name).is_some_and(|v| v.memory_mb == memory) {
                break;
            }
            assert!(
                saved.elapsed() < Duration::from_secs(60),
                "{name} did not reach {memory} MiB"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(saved.elapsed());
        let event = events.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(event["result"], "applied", "{event:#}");
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status();
    let status = watch.wait().unwrap();

    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("\n## ceso watch --apply: saved manifest edit -> change on the host\n");
    println!(
        "{vms} VMs in the inventory, {edits} edits (one VM's memory each), default debounce 300 ms; polled every 10 ms.\n"
    );
    println!("| min | median | p90 | max | target |");
    println!("|----:|-------:|----:|----:|-------:|");
    println!(
        "| {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | < {} ms |",
        ms(times[0]),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9)),
        ms(times[times.len() - 1]),
        TARGET.as_millis()
    );
    let verdict = if percentile(&times, 0.9) < TARGET {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "\n{verdict}: 90 % of edits reached the host within {:.0} ms; watch exited with {status} on SIGTERM.",
        ms(percentile(&times, 0.9))
    );
}
