//! Soak: many backup/restore cycles of one VM to a `directory` target on one simulator, with a
//! fault injected at random into most of them, from a fixed seed.
//!
//! Each cycle writes new random bytes into the VM's two disks, injects one of
//!
//! - nothing,
//! - a download cut once (at a random byte of a disk's data or of the `.vmx`),
//! - a download cut two or three times in a row (ceso resumes up to four times in a row without
//!   progress, so this must be absorbed too),
//! - an upload cut once during the restore,
//! - an HTTP 503 once (download or upload),
//! - a task fault once on `CreateSnapshot_Task` (backup), `MoveVirtualDisk_Task` or
//!   `ReconfigVM_Task` (restore),
//!
//! runs `ceso backup create`, changes the disks, and runs `ceso backup restore ID --yes`. Cuts
//! and 503s are transient: ceso must absorb them by itself. A task fault may fail the command;
//! the step is then tried once more without faults, as `ceso watch` would, and must succeed.
//!
//! Invariants: whenever a restore reports success the disks hold exactly (SHA-256) the bytes
//! written before the backup; after a reported failure every listed backup passes
//! `backup verify`; no `ceso-backup-*` snapshot survives a run. Every tenth cycle `backup
//! prune` applies retention and everything still listed is verified.
//!
//! The policy does not quiesce: with quiescing, a failed snapshot is taken again without it
//! (`backup_faults` covers that), and the soak wants the failure path exercised.
//!
//! The seed is [`SEED`] unless `CESO_SOAK_SEED` gives another (decimal or 0x-hex). Figures are
//! printed on stderr: `cargo test --test backup_soak -- --nocapture`.

mod support;

use std::time::Instant;

use support::disks::{disk_data_files, disk_digests, snapshot_names, write_disks};
use support::inventory::{Inventory, Run};
use support::{Simulator, find_vm};

/// The fixed seed of the fault schedule and of the disks' bytes.
const SEED: u64 = 0xCE50_5EED_0005_0001;

/// Backup/restore cycles.
const CYCLES: usize = 100;

/// Bytes written into each disk per cycle (plus a few per disk, so no two are alike).
const DISK_BYTES: usize = 256 << 10;

/// `backup prune` (and a verify of everything listed) every this many cycles.
const PRUNE_EVERY: usize = 10;

const VM: &str = "soak-01";

const INVENTORY: &str = "---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: lan }\nspec:\n  cidr: 192.168.1.0/24\n  gateway: 192.168.1.1\n  ranges: [ { start: 192.168.1.100, end: 192.168.1.120 } ]\n---\napiVersion: ceso/v1\nkind: BackupPolicy\nmetadata: { name: soak }\nspec:\n  schedule: { cron: \"30 2 * * *\", timeZone: Europe/Berlin }\n  retention: { keepLast: 3 }\n  target: { directory: { path: ../backups } }\n  quiesce: false\n---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: { name: soak-01 }\nspec:\n  host: esxi-01\n  cpu: 1\n  memory: 128MiB\n  disks: [ { size: 1MiB }, { size: 1MiB } ]\n  networks: [ { ip: auto, pool: lan } ]\n  guestId: ubuntu64Guest\n  backupPolicy: soak\n";

/// SplitMix64: small, deterministic, good enough to schedule faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// When a fault is meant to strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Backup,
    Restore,
}

/// One injected fault.
#[derive(Debug, Clone)]
struct Fault {
    kind: &'static str,
    phase: Phase,
    /// Ceso must absorb it by itself (cuts, 503s).
    transient: bool,
    /// A launcher rule: an HTTP rule when it starts with the HTTP method.
    rule: String,
}

impl Fault {
    fn is_http(&self) -> bool {
        self.rule.starts_with("GET:") || self.rule.starts_with("PUT:")
    }

    fn inject(&self, sim: &Simulator) {
        if self.is_http() {
            sim.inject_http_fault(&self.rule);
        } else {
            sim.inject_fault(&self.rule);
        }
    }
}

/// Injects `fault` if it is meant for `phase`.
fn strike(fault: Option<&Fault>, sim: &Simulator, phase: Phase) {
    if let Some(f) = fault.filter(|f| f.phase == phase) {
        f.inject(sim);
    }
}

/// Draws the fault of one cycle (`None`: no fault).
fn draw_fault(rng: &mut Rng, vmx_len: u64) -> Option<Fault> {
    let data_files = [format!("{VM}-flat.vmdk"), format!("{VM}_1-flat.vmdk")];
    let data_file = |rng: &mut Rng| data_files[rng.below(2) as usize].clone();
    let http = |kind, phase, rule: String| {
        Some(Fault {
            kind,
            phase,
            transient: true,
            rule,
        })
    };
    let task = |kind, phase, method: &str| {
        Some(Fault {
            kind,
            phase,
            transient: false,
            rule: format!("{method}=task:FileFault*1"),
        })
    };
    match rng.below(8) {
        0 => None,
        1 => {
            let (file, len) = if rng.below(4) == 0 {
                (format!("{VM}.vmx"), vmx_len)
            } else {
                (data_file(rng), DISK_BYTES as u64)
            };
            let at = rng.below(len.max(1));
            http(
                "download cut once",
                Phase::Backup,
                format!("GET:{file}=cut@{at}*1"),
            )
        }
        2 => {
            let times = 2 + rng.below(2);
            let at = rng.below(DISK_BYTES as u64);
            let file = data_file(rng);
            http(
                "download cut 2-3 times",
                Phase::Backup,
                format!("GET:{file}=cut@{at}*{times}"),
            )
        }
        3 => {
            let at = rng.below(DISK_BYTES as u64);
            let file = data_file(rng);
            http(
                "upload cut once",
                Phase::Restore,
                format!("PUT:{file}=cut@{at}*1"),
            )
        }
        4 => {
            let file = data_file(rng);
            if rng.below(2) == 0 {
                http(
                    "503 once",
                    Phase::Backup,
                    format!("GET:{file}=status@503*1"),
                )
            } else {
                http(
                    "503 once",
                    Phase::Restore,
                    format!("PUT:{file}=status@503*1"),
                )
            }
        }
        5 => task(
            "CreateSnapshot_Task fault",
            Phase::Backup,
            "CreateSnapshot_Task",
        ),
        6 => task(
            "MoveVirtualDisk_Task fault",
            Phase::Restore,
            "MoveVirtualDisk_Task",
        ),
        _ => task("ReconfigVM_Task fault", Phase::Restore, "ReconfigVM_Task"),
    }
}

/// The id in `Backup <id> of soak-01 done: ...`.
fn backup_id(create: &Run) -> Option<String> {
    create.stdout().lines().find_map(|line| {
        line.strip_prefix("Backup ")
            .and_then(|rest| rest.split_once(&format!(" of {VM} done")))
            .map(|(id, _)| id.to_owned())
    })
}

struct Soak {
    sim: Simulator,
    inv: Inventory,
    /// Broken invariants, described; the soak fails at the end if there are any.
    violations: Vec<String>,
}

impl Soak {
    fn backup(&self, args: &[&str]) -> Run {
        let mut all = vec!["backup"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--inventory", "DIR"]);
        self.inv.ceso(&self.sim, &all)
    }

    fn clear_faults(&self) {
        self.sim.clear_faults();
        self.sim.clear_http_faults();
    }

    fn check_no_backup_snapshot(&mut self, cycle: usize, after: &str) {
        let left: Vec<String> = snapshot_names(&self.sim, VM)
            .into_iter()
            .filter(|name| name.starts_with("ceso-backup-"))
            .collect();
        if !left.is_empty() {
            self.violations
                .push(format!("cycle {cycle}: {left:?} left after {after}"));
        }
    }

    /// Every backup listed (read again from the target) passes `backup verify`.
    fn check_listed_backups_verify(&mut self, cycle: usize, after: &str) -> usize {
        let list = self.backup(&["list", "--json", "--rescan"]);
        if list.code() != 0 {
            self.violations.push(format!(
                "cycle {cycle}: backup list after {after} failed: {}",
                list.stderr()
            ));
            return 0;
        }
        let ids: Vec<String> = list
            .json()
            .as_array()
            .map(|records| {
                records
                    .iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for id in &ids {
            let verify = self.backup(&["verify", id]);
            if verify.code() != 0 {
                self.violations.push(format!(
                    "cycle {cycle}: after {after}, listed backup {id} fails verify: {}",
                    verify.stderr()
                ));
            }
        }
        ids.len()
    }
}

/// What one cycle came to.
#[derive(Default)]
struct Cycle {
    first_attempt_ok: bool,
    ok_after_retry: bool,
}

#[test]
fn a_hundred_backup_restore_cycles_with_injected_faults_restore_byte_identical_every_time() {
    let seed = std::env::var("CESO_SOAK_SEED")
        .ok()
        .and_then(|s| match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        })
        .unwrap_or(SEED);
    let started = Instant::now();
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(20)
        .fault("CloneVM_Task=NotSupported")
        .start();
    let inv = Inventory::new(&sim, INVENTORY);
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    assert_eq!(find_vm(&sim, VM).expect("the VM").power_state, "poweredOn");
    let vmx = disk_data_files(&sim, VM)[0]
        .parent()
        .expect("the VM's folder")
        .join(format!("{VM}.vmx"));
    let mut soak = Soak {
        sim,
        inv,
        violations: Vec::new(),
    };
    let mut rng = Rng(seed);

    let mut injected: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut cycles = Vec::new();
    let mut clean_cycles = 0usize;
    let mut clean_first_ok = 0usize;
    let mut retries = 0usize;
    let mut restores_checked = 0usize;
    for cycle in 0..CYCLES {
        let vmx_len = std::fs::metadata(&vmx).map(|m| m.len()).unwrap_or(1);
        let fault = draw_fault(&mut rng, vmx_len);
        *injected
            .entry(fault.as_ref().map_or("nothing", |f| f.kind))
            .or_default() += 1;
        let transient_only = fault.as_ref().is_none_or(|f| f.transient);
        let mut outcome = Cycle {
            first_attempt_ok: true,
            ok_after_retry: true,
        };

        // Backup.
        let written = write_disks(&soak.sim, VM, rng.next(), DISK_BYTES);
        strike(fault.as_ref(), &soak.sim, Phase::Backup);
        let mut create = soak.backup(&["create", VM]);
        soak.clear_faults();
        soak.check_no_backup_snapshot(cycle, "backup create");
        if create.code() != 0 {
            outcome.first_attempt_ok = false;
            retries += 1;
            eprintln!(
                "cycle {cycle} ({}): backup create failed: {}",
                fault.as_ref().map_or("no fault", |f| f.rule.as_str()),
                create.stderr().trim_end()
            );
            soak.check_listed_backups_verify(cycle, "a failed backup");
            create = soak.backup(&["create", VM]);
            soak.check_no_backup_snapshot(cycle, "the retried backup create");
        }
        let id = match (create.code(), backup_id(&create)) {
            (0, Some(id)) => id,
            _ => {
                outcome.ok_after_retry = false;
                soak.violations.push(format!(
                    "cycle {cycle}: backup create failed after a retry without faults:\n{}{}",
                    create.stdout(),
                    create.stderr()
                ));
                cycles.push(outcome);
                continue;
            }
        };

        // Restore, after the disks changed.
        write_disks(&soak.sim, VM, rng.next(), DISK_BYTES);
        strike(fault.as_ref(), &soak.sim, Phase::Restore);
        let mut restore = soak.backup(&["restore", &id, "--yes"]);
        soak.clear_faults();
        if restore.code() != 0 {
            outcome.first_attempt_ok = false;
            retries += 1;
            eprintln!(
                "cycle {cycle} ({}): backup restore failed: {}",
                fault.as_ref().map_or("no fault", |f| f.rule.as_str()),
                restore.stderr().trim_end()
            );
            soak.check_listed_backups_verify(cycle, "a failed restore");
            restore = soak.backup(&["restore", &id, "--yes"]);
        }
        if restore.code() == 0 {
            restores_checked += 1;
            let now = disk_digests(&soak.sim, VM);
            if now != written {
                soak.violations.push(format!(
                    "cycle {cycle}: restore of {id} reported success but the disks are {now:?}, \
                     written before the backup: {written:?} (fault: {fault:?})"
                ));
            }
        } else {
            outcome.ok_after_retry = false;
            soak.violations.push(format!(
                "cycle {cycle}: backup restore {id} failed after a retry without faults:\n{}{}",
                restore.stdout(),
                restore.stderr()
            ));
        }
        soak.check_no_backup_snapshot(cycle, "backup restore");

        if transient_only {
            clean_cycles += 1;
            if outcome.first_attempt_ok {
                clean_first_ok += 1;
            } else {
                eprintln!("cycle {cycle}: a transient fault was not absorbed: {fault:?}");
            }
        }
        cycles.push(outcome);

        if (cycle + 1) % PRUNE_EVERY == 0 {
            let prune = soak.backup(&["prune"]);
            if prune.code() != 0 {
                soak.violations.push(format!(
                    "cycle {cycle}: backup prune failed: {}",
                    prune.stderr()
                ));
            }
            soak.check_listed_backups_verify(cycle, "backup prune");
        }
    }
    let listed_at_end = soak.check_listed_backups_verify(CYCLES, "the last cycle");

    let stats = soak.sim.stats();
    let first_ok = cycles.iter().filter(|c| c.first_attempt_ok).count();
    let after_retry_ok = cycles.iter().filter(|c| c.ok_after_retry).count();
    let with_fault = CYCLES - injected.get("nothing").copied().unwrap_or(0);
    let percent = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    eprintln!(
        "backup soak, seed {seed:#x}: {CYCLES} cycles in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "  faults injected: {with_fault} cycles with a fault ({} SOAP task faults and {} HTTP \
         faults struck on the host)",
        stats["injected"].as_u64().unwrap_or(0),
        stats["httpInjected"].as_u64().unwrap_or(0)
    );
    for (kind, n) in &injected {
        eprintln!("    {kind}: {n}");
    }
    eprintln!(
        "  first-attempt success: {first_ok}/{CYCLES} ({:.1}%); without a non-transient fault: \
         {clean_first_ok}/{clean_cycles} ({:.1}%)",
        percent(first_ok, CYCLES),
        percent(clean_first_ok, clean_cycles)
    );
    eprintln!(
        "  success after one retry without faults: {after_retry_ok}/{CYCLES} ({:.1}%); {retries} \
         steps retried",
        percent(after_retry_ok, CYCLES)
    );
    eprintln!(
        "  restores checked byte for byte: {restores_checked}; backups listed at the end (all \
         verified): {listed_at_end}"
    );

    assert!(
        soak.violations.is_empty(),
        "{} broken invariant(s):\n{}",
        soak.violations.len(),
        soak.violations.join("\n")
    );
    assert_eq!(after_retry_ok, CYCLES, "every cycle succeeds after a retry");
    assert!(
        clean_first_ok * 100 > clean_cycles * 99,
        "first-attempt success without non-transient faults: {clean_first_ok}/{clean_cycles}"
    );
    assert_eq!(restores_checked, CYCLES);
}
