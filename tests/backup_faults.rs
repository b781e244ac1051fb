//! Backups under faults: task errors on the host, connections cut in the middle of a download
//! or an upload, and the `ceso` process killed in the middle of a backup or a restore. The real
//! `ceso` binary against the ESXi simulator, whose datastore is a real directory.
//!
//! In every scenario: nothing corrupt or partial is ever listed by `backup list --json` (nor
//! after `--rescan`), every listed backup passes `backup verify`, no `ceso-backup-*` snapshot is
//! left once the command (or, after a kill, the next backup) has returned, and the next run
//! without faults succeeds and restores byte for byte (SHA-256 of the disks).

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::disks::{disk_data_files, disk_digests, snapshot_names};
use support::inventory::{Inventory, Run, wait_for};
use support::{Simulator, SimulatorBuilder, find_vm};

const VM: &str = "db-01";

/// Bytes written into each disk (plus a few per disk, so no two are alike).
const DISK_BYTES: usize = 1 << 20;

const POOL: &str = "---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: lan }\nspec:\n  cidr: 192.168.1.0/24\n  gateway: 192.168.1.1\n  ranges: [ { start: 192.168.1.100, end: 192.168.1.120 } ]\n";

/// The directory target, beside the inventory (`<tempdir>/backups`).
const DIRECTORY: &str = "{ directory: { path: ../backups } }";

/// The simulator every scenario starts from: Tools run (so backups are quiesced and restores
/// shut the guest down), no CloneVM_Task (a standalone host).
fn simulator() -> SimulatorBuilder {
    Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(50)
        .fault("CloneVM_Task=NotSupported")
}

/// A simulator, an inventory declaring `db-01` (two disks) under policy `nightly` with
/// `target`, applied (the VM runs), and helpers to run `ceso` on them.
struct Bench {
    sim: Simulator,
    inv: Inventory,
}

impl Bench {
    fn start(sim: SimulatorBuilder, target: fn(&Simulator) -> String) -> Bench {
        let sim = sim.start();
        let target = target(&sim);
        let policy = format!(
            "---\napiVersion: ceso/v1\nkind: BackupPolicy\nmetadata: {{ name: nightly }}\nspec:\n  schedule: {{ cron: \"30 2 * * *\", timeZone: Europe/Berlin }}\n  retention: {{ keepLast: 5 }}\n  target: {target}\n  quiesce: true\n"
        );
        let vm = format!(
            "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {VM} }}\nspec:\n  host: esxi-01\n  cpu: 2\n  memory: 256MiB\n  disks: [ {{ size: 4MiB }}, {{ size: 4MiB }} ]\n  networks: [ {{ ip: auto, pool: lan }} ]\n  guestId: ubuntu64Guest\n  backupPolicy: nightly\n"
        );
        let inv = Inventory::new(&sim, &format!("{POOL}{policy}{vm}"));
        inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
            .expect(0);
        assert_eq!(find_vm(&sim, VM).expect("the VM").power_state, "poweredOn");
        Bench { sim, inv }
    }

    fn directory(sim: SimulatorBuilder) -> Bench {
        Bench::start(sim, |_| DIRECTORY.to_owned())
    }

    fn datastore(sim: SimulatorBuilder) -> Bench {
        Bench::start(sim, |sim| {
            format!(
                "{{ datastore: {{ datastore: {}, folder: ceso-backups }} }}",
                sim.datastore
            )
        })
    }

    fn inventory_arg(&self) -> String {
        self.inv.path().display().to_string()
    }

    /// `ceso backup ARGS --inventory DIR`.
    fn backup(&self, args: &[&str]) -> Run {
        let mut all = vec!["backup"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--inventory", "DIR"]);
        self.inv.ceso(&self.sim, &all)
    }

    /// Like [`backup`](Self::backup), with ceso's datastore transfers logged at debug level.
    fn backup_logging_transfers(&self, args: &[&str]) -> Run {
        let inventory = self.inventory_arg();
        let mut all = vec!["backup"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--inventory", &inventory]);
        let output = self
            .inv
            .command(&self.sim, &all)
            .env("CESO_LOG", "warn,ceso::esxi::datastore=debug")
            .output()
            .expect("running ceso");
        Run(output)
    }

    fn create(&self) -> Run {
        self.backup(&["create", VM])
    }

    fn restore(&self, id: &str) -> Run {
        self.backup(&["restore", id, "--yes"])
    }

    /// Fills the VM's disks with bytes of `seed`; their SHA-256.
    fn write_disks(&self, seed: u64) -> Vec<String> {
        support::disks::write_disks(&self.sim, VM, seed, DISK_BYTES)
    }

    fn digests(&self) -> Vec<String> {
        disk_digests(&self.sim, VM)
    }

    fn power_state(&self) -> String {
        find_vm(&self.sim, VM).expect("the VM").power_state
    }

    /// The snapshots backups take (`ceso-backup-*`) that the VM has.
    fn backup_snapshots(&self) -> Vec<String> {
        snapshot_names(&self.sim, VM)
            .into_iter()
            .filter(|name| name.starts_with("ceso-backup-"))
            .collect()
    }

    #[track_caller]
    fn assert_no_backup_snapshot(&self) {
        assert_eq!(
            self.backup_snapshots(),
            Vec::<String>::new(),
            "no backup snapshot is left on the VM"
        );
    }

    /// The ids `backup list --json` shows (with `--rescan`: read from the target again), and
    /// what it said on stderr.
    fn listed(&self, rescan: bool) -> (Vec<String>, String) {
        let mut args = vec!["list", "--json"];
        if rescan {
            args.push("--rescan");
        }
        let run = self.backup(&args);
        run.expect(0);
        let ids = run
            .json()
            .as_array()
            .expect("a JSON array")
            .iter()
            .map(|b| b["id"].as_str().expect("an id").to_owned())
            .collect();
        (ids, run.stderr())
    }

    /// Checks the catalog holds exactly `expected`, read from the state file and again from
    /// the target, and that every one of them passes `backup verify`.
    #[track_caller]
    fn assert_listed_exactly(&self, expected: &[&str]) {
        let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        for rescan in [false, true] {
            let (mut ids, _) = self.listed(rescan);
            ids.sort();
            assert_eq!(ids, expected, "the backups listed (rescan: {rescan})");
        }
        for id in &expected {
            let verify = self.backup(&["verify", id]);
            verify.expect(0);
            assert!(verify.stdout().contains("is intact"), "{}", verify.stdout());
        }
    }

    /// The run after the faults: a backup of new bytes succeeds and leaves no snapshot, and a
    /// restore from it, after the disks changed, brings those bytes back and the VM running.
    /// Returns the new backup's id.
    #[track_caller]
    fn assert_next_run_restores_byte_identical(&self, seed: u64) -> String {
        let written = self.write_disks(seed);
        let create = self.create();
        create.expect(0);
        self.assert_no_backup_snapshot();
        let id = backup_id(&create);
        let (ids, _) = self.listed(true);
        assert!(ids.contains(&id), "{id} is listed: {ids:?}");
        self.write_disks(seed + 1000);
        assert_ne!(self.digests(), written);
        self.restore(&id).expect(0);
        assert_eq!(self.digests(), written, "restored byte for byte");
        assert_eq!(self.power_state(), "poweredOn");
        id
    }

    /// Folders ceso stages restored disks in, left in the VM's folder.
    fn staging_folders(&self) -> Vec<String> {
        let folder = self.sim.datastore_dir.join(VM);
        std::fs::read_dir(&folder)
            .expect("the VM's folder")
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with("ceso-restore-") || name.starts_with("ceso-staging-"))
            .collect()
    }

    /// The backup folders of the directory target, complete or not.
    fn directory_backup_folders(&self) -> Vec<String> {
        let folder = self.inv.dir.path().join("backups/backups");
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }
}

/// The id in `Backup <id> of db-01 done: ...`.
#[track_caller]
fn backup_id(create: &Run) -> String {
    let out = create.stdout();
    out.lines()
        .find_map(|line| {
            line.strip_prefix("Backup ")
                .and_then(|rest| rest.split_once(&format!(" of {VM} done")))
                .map(|(id, _)| id.to_owned())
        })
        .unwrap_or_else(|| panic!("no backup id in:\n{out}"))
}

/// The offsets ceso asked for when downloading files whose path contains `file`, from its
/// debug log (`datastore download path=... offset=N`).
fn download_offsets(stderr: &str, file: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|line| line.contains("datastore download") && line.contains(file))
        .filter_map(|line| {
            let rest = line.split_once("offset=")?.1;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// task errors

#[test]
fn a_snapshot_that_cannot_be_taken_fails_the_backup_with_a_clear_message_and_lists_nothing() {
    let bench = Bench::directory(simulator());
    bench.write_disks(1);
    bench.sim.inject_fault("CreateSnapshot_Task=task:FileFault");

    let create = bench.create();
    create.expect(1);
    let stderr = create.stderr();
    assert!(
        stderr.contains("taking the snapshot") && stderr.contains(VM),
        "{stderr}"
    );
    assert!(!create.stdout().contains("done"), "{}", create.stdout());
    bench.assert_no_backup_snapshot();
    bench.assert_listed_exactly(&[]);

    bench.sim.clear_faults();
    bench.assert_next_run_restores_byte_identical(2);
}

#[test]
fn a_quiesced_snapshot_that_fails_once_is_taken_crash_consistent_with_a_warning() {
    let bench = Bench::directory(simulator());
    let written = bench.write_disks(3);
    bench
        .sim
        .inject_fault("CreateSnapshot_Task=task:FileFault*1");

    let create = bench.create();
    create.expect(0);
    assert!(
        create.stderr().contains("crash-consistent"),
        "{}",
        create.stderr()
    );
    assert!(!create.stdout().contains("quiesced"), "{}", create.stdout());
    bench.assert_no_backup_snapshot();
    let id = backup_id(&create);
    bench.assert_listed_exactly(&[&id]);

    bench.write_disks(4);
    bench.restore(&id).expect(0);
    assert_eq!(bench.digests(), written);
}

#[test]
fn a_disk_copy_failing_on_the_host_fails_a_datastore_backup_and_removes_its_snapshot() {
    let bench = Bench::datastore(simulator());
    bench.write_disks(5);
    bench
        .sim
        .inject_fault("CopyVirtualDisk_Task=task:FileFault*1");

    let create = bench.create();
    create.expect(1);
    assert!(
        create.stderr().contains("copying to") && create.stderr().contains("FileFault"),
        "{}",
        create.stderr()
    );
    assert_eq!(bench.sim.method_count("RemoveSnapshot_Task"), 1);
    bench.assert_no_backup_snapshot();
    bench.assert_listed_exactly(&[]);

    bench.sim.clear_faults();
    let id = bench.assert_next_run_restores_byte_identical(6);
    bench.assert_listed_exactly(&[&id]);
}

#[test]
fn a_snapshot_that_cannot_be_removed_keeps_the_backup_and_the_next_backup_removes_it() {
    let bench = Bench::directory(simulator());
    let first_bytes = bench.write_disks(7);
    bench
        .sim
        .inject_fault("RemoveSnapshot_Task=task:FileFault*1");

    // The data were read from the snapshot in full: the backup counts, with a warning.
    let first = bench.create();
    first.expect(0);
    let first_id = backup_id(&first);
    let stray = format!("ceso-backup-{first_id}");
    assert!(
        first.stderr().contains("warning: removing the snapshot")
            && first.stderr().contains(&stray)
            && first.stderr().contains("the next backup"),
        "{}",
        first.stderr()
    );
    assert_eq!(bench.backup_snapshots(), vec![stray.clone()]);
    bench.assert_listed_exactly(&[&first_id]);

    // The next backup removes it first, and says so.
    let second_bytes = bench.write_disks(8);
    let second = bench.create();
    second.expect(0);
    assert!(
        second
            .stderr()
            .contains(&format!("removed the snapshot \"{stray}\"")),
        "{}",
        second.stderr()
    );
    bench.assert_no_backup_snapshot();
    let second_id = backup_id(&second);
    bench.assert_listed_exactly(&[&first_id, &second_id]);

    // Both restore byte for byte.
    bench.restore(&first_id).expect(0);
    assert_eq!(bench.digests(), first_bytes);
    bench.restore(&second_id).expect(0);
    assert_eq!(bench.digests(), second_bytes);
    assert_eq!(bench.power_state(), "poweredOn");
}

#[test]
fn a_restore_removes_a_snapshot_an_earlier_backup_left_instead_of_refusing() {
    let bench = Bench::directory(simulator());
    let bytes = bench.write_disks(9);
    bench
        .sim
        .inject_fault("RemoveSnapshot_Task=task:FileFault*1");
    let create = bench.create();
    create.expect(0);
    let id = backup_id(&create);
    assert_eq!(bench.backup_snapshots().len(), 1, "left by the backup");

    bench.write_disks(10);
    bench.restore(&id).expect(0);
    assert_eq!(bench.digests(), bytes, "restored byte for byte");
    bench.assert_no_backup_snapshot();
    assert_eq!(bench.power_state(), "poweredOn");
}

// ------------------------------------------------------------------------------------------------
// connections cut

#[test]
fn a_download_cut_once_resumes_with_a_range_request_and_restores_byte_identical() {
    let bench = Bench::directory(simulator());
    let written = bench.write_disks(10);
    let cut_at = DISK_BYTES as u64 / 2;
    bench
        .sim
        .inject_http_fault(&format!("GET:{VM}-flat.vmdk=cut@{cut_at}*1"));

    let create = bench.backup_logging_transfers(&["create", VM]);
    create.expect(0);
    assert_eq!(bench.sim.http_faults_injected(), 1);
    let stderr = create.stderr();
    assert!(stderr.contains("resuming"), "{stderr}");
    // The first request reads from the start, the second from where the cut stopped it (a
    // ranged request, answered 206 from exactly that offset, or ceso would have failed).
    assert_eq!(
        download_offsets(&stderr, &format!("{VM}-flat.vmdk")),
        vec![0, cut_at],
        "{stderr}"
    );
    bench.assert_no_backup_snapshot();
    let id = backup_id(&create);
    bench.assert_listed_exactly(&[&id]);

    bench.write_disks(11);
    bench.restore(&id).expect(0);
    assert_eq!(bench.digests(), written, "restored byte for byte");
}

#[test]
fn a_download_cut_again_and_again_but_progressing_each_time_still_completes() {
    let bench = Bench::directory(simulator());
    let written = bench.write_disks(12);
    // Every request for the first disk's data breaks off after an eighth of the disk: seven
    // cuts in a row, more than ceso's resume attempts, but each one moves the download on.
    let step = DISK_BYTES as u64 / 8;
    bench
        .sim
        .inject_http_fault(&format!("GET:{VM}-flat.vmdk=cut@{step}*100"));

    let create = bench.backup_logging_transfers(&["create", VM]);
    create.expect(0);
    let offsets = download_offsets(&create.stderr(), &format!("{VM}-flat.vmdk"));
    assert_eq!(offsets, (0..8).map(|n| n * step).collect::<Vec<_>>());
    bench.assert_no_backup_snapshot();
    let id = backup_id(&create);
    bench.assert_listed_exactly(&[&id]);

    bench.sim.clear_http_faults();
    bench.write_disks(13);
    bench.restore(&id).expect(0);
    assert_eq!(bench.digests(), written);
}

#[test]
fn a_download_cut_every_time_fails_the_backup_lists_nothing_and_leaves_no_snapshot() {
    let bench = Bench::directory(simulator());
    bench.write_disks(14);
    bench.sim.inject_http_fault("GET:-flat.vmdk=cut@0*1000");

    let create = bench.create();
    create.expect(1);
    assert!(
        create.stderr().contains("-flat.vmdk"),
        "the failed file is named: {}",
        create.stderr()
    );
    assert!(bench.sim.http_faults_injected() > 1, "ceso tried again");
    bench.assert_no_backup_snapshot();
    bench.assert_listed_exactly(&[]);
    let (_, notes) = bench.listed(true);
    assert!(
        notes.contains("is not a usable backup"),
        "the partial data are reported: {notes}"
    );

    bench.sim.clear_http_faults();
    bench.assert_next_run_restores_byte_identical(15);
}

#[test]
fn an_upload_cut_once_during_a_restore_is_retried_and_the_restore_is_byte_identical() {
    let bench = Bench::directory(simulator());
    let written = bench.write_disks(20);
    let create = bench.create();
    create.expect(0);
    let id = backup_id(&create);

    bench.write_disks(21);
    bench
        .sim
        .inject_http_fault(&format!("PUT:{VM}-flat.vmdk=cut@{}*1", DISK_BYTES / 3));
    let restore = bench.restore(&id);
    restore.expect(0);
    assert_eq!(bench.sim.http_faults_injected(), 1);
    assert!(
        restore.stderr().contains("trying again"),
        "{}",
        restore.stderr()
    );
    assert_eq!(bench.digests(), written, "restored byte for byte");
    assert_eq!(bench.power_state(), "poweredOn");
    assert_eq!(bench.staging_folders(), Vec::<String>::new());
    bench.assert_listed_exactly(&[&id]);
}

#[test]
fn an_upload_cut_every_time_fails_the_restore_before_any_disk_is_replaced() {
    let bench = Bench::directory(simulator());
    bench.write_disks(22);
    let create = bench.create();
    create.expect(0);
    let id = backup_id(&create);

    let current = bench.write_disks(23);
    bench
        .sim
        .inject_http_fault(&format!("PUT:-flat.vmdk=cut@{}", DISK_BYTES / 3));
    let restore = bench.restore(&id);
    restore.expect(1);
    assert!(
        restore.stderr().contains("writing the restored file"),
        "{}",
        restore.stderr()
    );
    assert!(
        !restore.stderr().contains("stopped after"),
        "not a partial restore: {}",
        restore.stderr()
    );
    assert_eq!(bench.sim.method_count("MoveVirtualDisk_Task"), 0);
    assert_eq!(bench.digests(), current, "the VM's disks are untouched");
    assert_eq!(
        bench.power_state(),
        "poweredOn",
        "the VM runs again as before"
    );
    assert_eq!(bench.staging_folders(), Vec::<String>::new());
    bench.assert_listed_exactly(&[&id]);

    bench.sim.clear_http_faults();
    bench.assert_next_run_restores_byte_identical(24);
}

// ------------------------------------------------------------------------------------------------
// the process killed

#[test]
fn a_backup_killed_midway_is_never_listed_and_the_next_run_cleans_up_after_it() {
    // Every datastore search (one per file, after the snapshot is taken) takes 1.5 s: time
    // enough to kill ceso between the first disk and the second.
    let bench = Bench::directory(simulator().method_delay("SearchDatastore_Task", 1500));
    bench.write_disks(30);
    let searches = bench.sim.method_count("SearchDatastore_Task");
    let inventory = bench.inventory_arg();
    let mut child = bench
        .inv
        .command(
            &bench.sim,
            &["backup", "create", VM, "--inventory", &inventory],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ceso");
    // The second search is for the second disk: the first one is stored by then.
    wait_for(Duration::from_secs(60), || {
        bench.sim.method_count("SearchDatastore_Task") >= searches + 2
    });
    child.kill().expect("killing ceso");
    child.wait().expect("reaping ceso");

    let stray = bench.backup_snapshots();
    assert_eq!(
        stray.len(),
        1,
        "the killed run's snapshot is left: {stray:?}"
    );
    let killed_id = stray[0]
        .strip_prefix("ceso-backup-")
        .expect("prefix")
        .to_owned();
    assert_eq!(
        bench.directory_backup_folders(),
        vec![killed_id.clone()],
        "the killed run stored part of the backup"
    );

    // Never listed; reading the target again reports it as a note.
    assert_eq!(bench.listed(false).0, Vec::<String>::new());
    let (ids, notes) = bench.listed(true);
    assert_eq!(ids, Vec::<String>::new());
    assert!(
        notes.contains(&killed_id) && notes.contains("is not a usable backup"),
        "{notes}"
    );

    // The next backup removes the snapshot, says so, and succeeds.
    let written = bench.write_disks(31);
    let next = bench.create();
    next.expect(0);
    assert!(
        next.stderr()
            .contains(&format!("removed the snapshot \"{}\"", stray[0])),
        "{}",
        next.stderr()
    );
    bench.assert_no_backup_snapshot();
    let id = backup_id(&next);
    assert_ne!(id, killed_id);
    bench.assert_listed_exactly(&[&id]);

    // Prune removes the incomplete data and keeps the good backup.
    bench.backup(&["prune"]).expect(0);
    assert_eq!(bench.directory_backup_folders(), vec![id.clone()]);
    bench.assert_listed_exactly(&[&id]);

    bench.write_disks(32);
    bench.restore(&id).expect(0);
    assert_eq!(bench.digests(), written, "restored byte for byte");
    assert_eq!(bench.power_state(), "poweredOn");
}

#[test]
fn a_restore_killed_midway_is_finished_by_running_it_again() {
    // Each disk swap takes 1.5 s: time enough to kill ceso while the first one is under way.
    let bench = Bench::directory(simulator().method_delay("MoveVirtualDisk_Task", 1500));
    let written = bench.write_disks(40);
    let create = bench.create();
    create.expect(0);
    let id = backup_id(&create);
    let changed = bench.write_disks(41);

    let inventory = bench.inventory_arg();
    let mut child = bench
        .inv
        .command(
            &bench.sim,
            &["backup", "restore", &id, "--yes", "--inventory", &inventory],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ceso");
    wait_for(Duration::from_secs(60), || {
        bench.sim.method_count("MoveVirtualDisk_Task") >= 1
    });
    child.kill().expect("killing ceso");
    child.wait().expect("reaping ceso");

    // Half-way: the host finishes the swap it was asked for, the second disk is the changed
    // one still, and the VM is off.
    let first_disk = disk_data_files(&bench.sim, VM)[0].clone();
    wait_for(Duration::from_secs(30), || {
        support::disks::sha256_file(&first_disk) == written[0]
    });
    assert_eq!(
        bench.digests()[1],
        changed[1],
        "the second disk is not restored yet"
    );
    assert_eq!(bench.power_state(), "poweredOff");

    // The same restore again finishes it, and starts the VM that ran before.
    bench.restore(&id).expect(0);
    assert_eq!(bench.digests(), written, "restored byte for byte");
    assert_eq!(
        bench.power_state(),
        "poweredOn",
        "it ran before the restore"
    );
    assert_eq!(bench.staging_folders(), Vec::<String>::new());
    bench.assert_no_backup_snapshot();
    bench.assert_listed_exactly(&[&id]);
}

#[test]
fn a_restore_whose_settings_fail_after_the_disks_are_swapped_is_finished_by_running_it_again() {
    let bench = Bench::directory(simulator());
    let written = bench.write_disks(50);
    let create = bench.create();
    create.expect(0);
    let id = backup_id(&create);
    bench.write_disks(51);

    // The first reconfiguration records that the VM was shut down (a failure there is only
    // logged); the second one, restoring the settings, fails after both disks are in place.
    bench.sim.inject_fault("ReconfigVM_Task=task:FileFault*2");
    let restore = bench.restore(&id);
    restore.expect(1);
    let stderr = restore.stderr();
    assert!(
        stderr.contains("stopped after 2 of 2 disks")
            && stderr.contains("run the same restore again"),
        "{stderr}"
    );
    assert_eq!(bench.power_state(), "poweredOff");

    bench.sim.clear_faults();
    bench.restore(&id).expect(0);
    assert_eq!(bench.digests(), written, "restored byte for byte");
    assert_eq!(
        bench.power_state(),
        "poweredOn",
        "it ran before the restore"
    );
    assert_eq!(bench.staging_folders(), Vec::<String>::new());
    bench.assert_no_backup_snapshot();
    bench.assert_listed_exactly(&[&id]);
}
