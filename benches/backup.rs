//! Benchmark: backups to a `directory` target, and restores from it, against `curl` moving the
//! same file over the same datastore HTTP interface (issue 5).
//!
//! Starts the ESXi simulator (TLS, enforced credentials, VMware Tools emulation), creates two
//! running VMs with `ceso apply`, and fills their `-flat.vmdk` files in the simulator's
//! datastore directory with incompressible pseudo-random bytes (streamed to disk, SHA-256 kept):
//! a large disk (2 GiB) and a small one (512 MiB). Then, on the same machine, each measured run
//! a child process measured with `wait4` (wall, CPU, peak RSS), dirty pages flushed before it:
//!
//! 1. `curl` downloads the large `-flat.vmdk` from `/folder` (the URL form ceso uses, checked
//!    against the simulator's CA) into a new file beside the backup directory; the file is
//!    then fsynced (ceso makes every chunk durable), timed separately, and deleted.
//! 2. `ceso backup create` of the large VM (release build) into an emptied `directory` target,
//!    so every chunk is stored: the backup's own wall time (`started`..`finished` of its
//!    record: snapshot, copy, snapshot removal) and the whole command's.
//!
//!    1 and 2 alternate, N times each. Then one backup of the small VM (its peak RSS against
//!    the large one's).
//! 3. A second backup of the unchanged large disk: the bytes its record says were stored anew
//!    and how much the backup directory grew, against the disk's size.
//! 4. `curl -T` uploads the disk to a new path (deleted after the run), and `ceso backup
//!    restore ID --yes` puts the first backup back over the large VM (its disk damaged first;
//!    the restored disk's SHA-256 checked against the original), alternately, N times each.
//!
//! The rates compare the best of the N runs of each: the machine is shared and noisy, and
//! alternating gives curl and ceso the same conditions.
//!
//! Run: `cargo bench --bench backup` (figures are recorded in docs/benchmarks.md).
//! `CESO_BENCH_DISK_MIB` sets the large disk (default 2048), `CESO_BENCH_SMALL_DISK_MIB` the
//! small one (default 512), `CESO_BENCH_RUNS` N (default 3).

mod measure;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use measure::{Measured, env_number, expect_exit, measure};
use support::Simulator;
use support::inventory::Inventory;

const MIB: u64 = 1 << 20;
/// Targets of issue 5.
const TARGET_RATIO: f64 = 0.70;
const TARGET_PEAK_MIB: f64 = 64.0;
const TARGET_NEW_FRACTION: f64 = 0.01;

const POOL: &str = "---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: lan }\nspec:\n  cidr: 192.168.1.0/24\n  gateway: 192.168.1.1\n  ranges: [ { start: 192.168.1.100, end: 192.168.1.120 } ]\n";

/// A policy `nightly` to a directory beside the inventory (`<tempdir>/backups`), unquiesced.
const POLICY: &str = "---\napiVersion: ceso/v1\nkind: BackupPolicy\nmetadata: { name: nightly }\nspec:\n  schedule: { cron: \"30 2 * * *\", timeZone: UTC }\n  retention: { keepLast: 10 }\n  target: { directory: { path: ../backups } }\n  quiesce: false\n";

fn vm_manifest(name: &str, mib: u64) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: 1\n  memory: 256MiB\n  disks: [ {{ size: {mib}MiB }} ]\n  networks: [ {{ ip: auto, pool: lan }} ]\n  guestId: ubuntu64Guest\n  power: on\n  backupPolicy: nightly\n"
    )
}

fn main() {
    let big_mib: u64 = env_number("CESO_BENCH_DISK_MIB", 2048);
    let small_mib: u64 = env_number("CESO_BENCH_SMALL_DISK_MIB", 512);
    let runs: usize = env_number::<usize>("CESO_BENCH_RUNS", 3).max(1);

    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(0)
        .start();
    let inv = Inventory::new(
        &sim,
        &format!(
            "{POOL}{POLICY}{}{}",
            vm_manifest("big", big_mib),
            vm_manifest("small", small_mib)
        ),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let logs = inv.dir.path();
    let target = logs.join("backups");
    let ca = sim.ca_file.clone().expect("the simulator runs with TLS");

    let big = disk_of(&sim, "big");
    let small = disk_of(&sim, "small");
    let big_bytes = big_mib * MIB;
    let original = fill(&big.file, big_bytes, 1);
    fill(&small.file, small_mib * MIB, 2);
    println!(
        "backups of a {big_mib} MiB and a {small_mib} MiB disk (incompressible) to a `directory` \
         target; simulator over TLS on loopback; release build; best of {runs}"
    );

    // 1.-2. curl's download and the first backups of the large disk, alternately (the machine
    //    is shared: alternating gives both the same conditions). curl writes a new file each
    //    time, as a backup writes new chunk files, deleted after the run; each backup goes into
    //    an emptied target, so every run stores every chunk.
    let mut curl_gets = Vec::new();
    let mut flushes = Vec::new();
    let mut firsts = Vec::new();
    let download = logs.join("curl-download.bin");
    for run in 0..runs {
        let label = format!("curl-get-{run}");
        let mut command = curl(&ca);
        command.arg("-o").arg(&download).arg(big.url(&sim));
        settle();
        let measured = measure(&mut command, logs, &label);
        expect_exit(&measured, 0, logs, &label);
        let flushed = Instant::now();
        File::open(&download)
            .and_then(|f| f.sync_all())
            .expect("fsync");
        flushes.push(measured.wall + flushed.elapsed());
        assert_eq!(std::fs::metadata(&download).unwrap().len(), big_bytes);
        std::fs::remove_file(&download).expect("removing the download");
        curl_gets.push(measured);

        std::fs::remove_dir_all(&target).ok();
        firsts.push(backup(&inv, &sim, "big", &format!("backup-big-{run}")));
    }
    let first = firsts.last().expect("a backup");
    let first_record = record_of(&target, &first.id);
    assert_eq!(
        first_record["disks"][0]["data"]["sha256"], original,
        "the backup holds the disk's bytes"
    );
    // The small disk, for its peak memory.
    let small_run = backup(&inv, &sim, "small", "backup-small");

    // 3. A second backup of the unchanged disk.
    let before = tree_bytes(&target);
    let second = backup(&inv, &sim, "big", "backup-big-again");
    let grown = tree_bytes(&target) - before;
    let bytes_new = record_of(&target, &second.id)["bytesNew"]
        .as_u64()
        .expect("bytesNew");

    // 4. curl's upload of the disk to a new path (deleted after the run, as a restore replaces
    //    the disk) and restores in place of the first backup, alternately.
    let inventory = inv.path().display().to_string();
    let mut curl_puts = Vec::new();
    let mut restores = Vec::new();
    let upload_path = "bench-upload/disk-flat.vmdk";
    for run in 0..runs {
        let label = format!("curl-put-{run}");
        let mut command = curl(&ca);
        command
            .arg("-T")
            .arg(&big.file)
            .arg(big.url_of(&sim, upload_path));
        settle();
        let measured = measure(&mut command, logs, &label);
        expect_exit(&measured, 0, logs, &label);
        std::fs::remove_file(sim.datastore_dir.join(upload_path)).expect("removing the upload");
        curl_puts.push(measured);

        damage(&big.file);
        let label = format!("restore-big-{run}");
        let args = ["backup", "restore", &first.id, "--inventory", &inventory];
        let mut command = inv.command(&sim, &args);
        command.arg("--yes");
        settle();
        // The disk's data as it arrives in the restore's staging folder on the host.
        let staged = big
            .file
            .parent()
            .expect("the VM's folder")
            .join(format!("ceso-restore-{}", first.id))
            .join(big.file.file_name().expect("a file name"));
        let watcher = UploadWatcher::start(staged, big_bytes);
        let measured = measure(&mut command, logs, &label);
        let upload = watcher.finish();
        expect_exit(&measured, 0, logs, &label);
        assert_eq!(
            sha256_file(&big.file),
            original,
            "the restored disk is byte for byte the original"
        );
        let seconds = reported_seconds(logs, &label);
        restores.push(Restore {
            measured,
            seconds,
            upload,
        });
    }

    // The figures.
    let rate = |bytes: u64, secs: f64| bytes as f64 / MIB as f64 / secs;
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let list = |secs: &mut dyn Iterator<Item = f64>| {
        secs.map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "runs, s: curl GET {} (with fsync {}); backup {} (whole command {}); curl -T {}; \
         restore {} (whole command {}; its upload {})",
        list(&mut curl_gets.iter().map(|m| m.wall.as_secs_f64())),
        list(&mut flushes.iter().map(Duration::as_secs_f64)),
        list(&mut firsts.iter().map(|r| r.backup_secs)),
        list(&mut firsts.iter().map(|r| r.measured.wall.as_secs_f64())),
        list(&mut curl_puts.iter().map(|m| m.wall.as_secs_f64())),
        list(&mut restores.iter().map(|r| r.seconds)),
        list(&mut restores.iter().map(|r| r.measured.wall.as_secs_f64())),
        list(&mut restores.iter().map(|r| r.upload.unwrap_or(f64::NAN))),
    );
    let get = fastest(curl_gets.iter());
    let get_rate = rate(big_bytes, get.wall.as_secs_f64());
    let flushed = flushes.iter().min().expect("a run").as_secs_f64();
    let put = fastest(curl_puts.iter());
    let put_rate = rate(big_bytes, put.wall.as_secs_f64());
    let best = firsts
        .iter()
        .min_by(|a, b| a.backup_secs.total_cmp(&b.backup_secs))
        .expect("a backup");
    let restore = restores
        .iter()
        .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .expect("a restore");
    let restore_secs = restore.seconds;
    let upload_secs = restores
        .iter()
        .filter_map(|r| r.upload)
        .min_by(f64::total_cmp)
        .unwrap_or(f64::NAN);
    println!();
    println!(
        "| run | disk MiB | transfer s | command s | MiB/s | vs curl | CPU s | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, mib_size: u64, secs: Option<f64>, m: &Measured, vs: f64| {
        let transfer = secs.map_or_else(String::new, |s| format!("{s:.2}"));
        let speed = rate(mib_size * MIB, secs.unwrap_or(m.wall.as_secs_f64()));
        println!(
            "| {name} | {mib_size} | {transfer} | {:.2} | {speed:.0} | {:.0}% | {:.2} | {:.1} |",
            m.wall.as_secs_f64(),
            100.0 * speed / vs,
            m.cpu.as_secs_f64(),
            mib(m.peak_rss_kib),
        );
    };
    row("`curl` GET to a new file", big_mib, None, get, get_rate);
    println!(
        "| `curl` GET, then fsync of the file | {big_mib} | | {flushed:.2} | {:.0} | {:.0}% | | |",
        rate(big_bytes, flushed),
        100.0 * rate(big_bytes, flushed) / get_rate,
    );
    row(
        "`ceso backup create` (first)",
        big_mib,
        Some(best.backup_secs),
        &best.measured,
        get_rate,
    );
    row(
        "`ceso backup create` (first)",
        small_mib,
        Some(small_run.backup_secs),
        &small_run.measured,
        get_rate,
    );
    row(
        "`ceso backup create` (unchanged disk)",
        big_mib,
        Some(second.backup_secs),
        &second.measured,
        get_rate,
    );
    row("`curl -T` PUT to a new path", big_mib, None, put, put_rate);
    row(
        "`ceso backup restore --yes` (in place)",
        big_mib,
        Some(restore_secs),
        &restore.measured,
        put_rate,
    );
    println!(
        "| … of which the upload to the staging folder | {big_mib} | {upload_secs:.2} | | {:.0} | {:.0}% | | |",
        rate(big_bytes, upload_secs),
        100.0 * rate(big_bytes, upload_secs) / put_rate,
    );
    println!();
    let ratio = rate(big_bytes, best.backup_secs) / get_rate;
    println!(
        "backup vs curl download: {:.0}% ({:.0}% of curl then fsync) (target >= {:.0}%): {}",
        100.0 * ratio,
        100.0 * flushed / best.backup_secs,
        100.0 * TARGET_RATIO,
        pass(ratio >= TARGET_RATIO)
    );
    let restore_ratio = rate(big_bytes, restore_secs) / put_rate;
    println!(
        "restore vs curl upload: {:.0}%, its upload alone {:.0}% (target >= {:.0}%): {}",
        100.0 * restore_ratio,
        100.0 * put.wall.as_secs_f64() / upload_secs,
        100.0 * TARGET_RATIO,
        pass(restore_ratio >= TARGET_RATIO)
    );
    let peak = firsts
        .iter()
        .chain([&small_run, &second])
        .map(|run| &run.measured)
        .chain(restores.iter().map(|r| &r.measured))
        .map(|m| mib(m.peak_rss_kib))
        .fold(0.0, f64::max);
    println!(
        "peak RSS of ceso: {:.1} MiB backing up the {small_mib} MiB disk, {:.1} MiB the \
         {big_mib} MiB disk, {:.1} MiB restoring it; highest of all runs {peak:.1} MiB (target < \
         {TARGET_PEAK_MIB} MiB): {}",
        mib(small_run.measured.peak_rss_kib),
        mib(best.measured.peak_rss_kib),
        mib(restore.measured.peak_rss_kib),
        pass(peak < TARGET_PEAK_MIB)
    );
    let fraction = bytes_new as f64 / big_bytes as f64;
    let grown_fraction = grown as f64 / big_bytes as f64;
    println!(
        "second backup of the unchanged disk: {bytes_new} bytes stored anew (record), the backup \
         directory grew {grown} bytes (indexes, record): {:.4}% / {:.4}% of the disk (target < \
         {:.0}%): {}",
        100.0 * fraction,
        100.0 * grown_fraction,
        100.0 * TARGET_NEW_FRACTION,
        pass(fraction.max(grown_fraction) < TARGET_NEW_FRACTION)
    );
}

/// One measured `ceso backup restore`.
struct Restore {
    measured: Measured,
    /// What ceso reports for its restore (shutdown, uploads, disk swap, settings, power-on).
    seconds: f64,
    /// From the staged data file's creation on the host until it had every byte.
    upload: Option<f64>,
}

/// Watches a file being uploaded to the host (a thread polling its size every 5 ms): the time
/// from its creation until it holds `len` bytes.
struct UploadWatcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<f64>>,
}

impl UploadWatcher {
    fn start(path: PathBuf, len: u64) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut created = None;
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(meta) = std::fs::metadata(&path) {
                    let since: &mut Instant = created.get_or_insert_with(Instant::now);
                    if meta.len() >= len {
                        return Some(since.elapsed().as_secs_f64());
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        });
        UploadWatcher { stop, thread }
    }

    fn finish(self) -> Option<f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the watcher")
    }
}

fn fastest<'a>(runs: impl Iterator<Item = &'a Measured>) -> &'a Measured {
    runs.min_by_key(|m| m.wall).expect("a run")
}

/// Writes dirty pages out and lets the disk settle, so a run does not pay for the previous
/// one's writes.
fn settle() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(500));
}

/// One VM's disk: its data file in the simulator's datastore directory and its path there.
struct Disk {
    file: PathBuf,
    /// Relative to the datastore's directory, `vm/vm-flat.vmdk`.
    relative: String,
}

impl Disk {
    /// The `/folder` URL ceso uses for this file.
    fn url(&self, sim: &Simulator) -> String {
        self.url_of(sim, &self.relative)
    }

    fn url_of(&self, sim: &Simulator, relative: &str) -> String {
        format!(
            "{}/folder/{relative}?dcPath=ha-datacenter&dsName={}",
            sim.base_url(),
            sim.datastore
        )
    }
}

fn disk_of(sim: &Simulator, vm: &str) -> Disk {
    let files = support::disks::disk_data_files(sim, vm);
    assert_eq!(files.len(), 1, "{vm} has one disk");
    let file = files.into_iter().next().unwrap();
    let relative = file
        .strip_prefix(&sim.datastore_dir)
        .expect("the disk is in the datastore directory")
        .to_str()
        .expect("a UTF-8 path")
        .to_owned();
    Disk { file, relative }
}

/// `curl` quiet, failing on HTTP errors, checking the simulator's certificate against its CA.
fn curl(ca: &Path) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(ca);
    command
}

/// One measured `ceso backup create`.
struct BackupRun {
    id: String,
    /// `finished - started` of its record.
    backup_secs: f64,
    measured: Measured,
}

fn backup(inv: &Inventory, sim: &Simulator, vm: &str, label: &str) -> BackupRun {
    let target = inv.dir.path().join("backups");
    let before = dir_names(&target.join("backups"));
    // Backup ids are to the second: never two in the same second.
    std::thread::sleep(Duration::from_millis(1100));
    let inventory = inv.path().display().to_string();
    let mut command = inv.command(sim, &["backup", "create", vm, "--inventory", &inventory]);
    settle();
    let measured = measure(&mut command, inv.dir.path(), label);
    expect_exit(&measured, 0, inv.dir.path(), label);
    let id = dir_names(&target.join("backups"))
        .into_iter()
        .find(|name| !before.contains(name))
        .expect("a new backup folder");
    let record = record_of(&target, &id);
    let time = |field: &str| -> jiff::Timestamp {
        record[field]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("record field {field}: {}", record[field]))
    };
    let backup_secs = (time("finished") - time("started"))
        .total(jiff::Unit::Second)
        .expect("a duration");
    BackupRun {
        id,
        backup_secs,
        measured,
    }
}

fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

fn record_of(target: &Path, id: &str) -> serde_json::Value {
    let path = target.join("backups").join(id).join("record.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("record.json is JSON")
}

/// The seconds `ceso backup restore` reports for its own work (`... in 12.3 s`).
fn reported_seconds(logs: &Path, label: &str) -> f64 {
    let out = std::fs::read_to_string(logs.join(format!("{label}.out"))).unwrap_or_default();
    out.split(" in ")
        .nth(1)
        .and_then(|rest| rest.split(" s").next())
        .and_then(|number| number.trim().parse().ok())
        .unwrap_or_else(|| panic!("no time in the output of {label}: {out}"))
}

/// Writes `len` pseudo-random (incompressible) bytes to `path` in 1 MiB pieces, different for
/// each `seed`; returns their SHA-256 (hex).
fn fill(path: &Path, len: u64, seed: u64) -> String {
    let mut file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buffer = vec![0u8; MIB as usize];
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut left = len;
    while left > 0 {
        for word in buffer.chunks_exact_mut(8) {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let take = left.min(MIB) as usize;
        file.write_all(&buffer[..take]).expect("writing the disk");
        context.update(&buffer[..take]);
        left -= take as u64;
    }
    file.sync_all().expect("syncing the disk");
    hex(context.finish().as_ref())
}

/// Overwrites the first MiB of `path` with zeros (so a restore has something to undo).
fn damage(path: &Path) {
    let mut file = OpenOptions::new().write(true).open(path).expect("the disk");
    file.write_all(&vec![0u8; MIB as usize])
        .expect("damaging the disk");
}

fn sha256_file(path: &Path) -> String {
    let mut reader = BufReader::with_capacity(MIB as usize, File::open(path).expect("the file"));
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; MIB as usize];
    loop {
        let n = reader.read(&mut buffer).expect("reading");
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
    }
    hex(context.finish().as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of every file under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&entry.path()),
            _ => entry.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}
