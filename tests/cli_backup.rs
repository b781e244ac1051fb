//! End to end: backups of VMs with real bytes in their disks, to both targets, restored in
//! place and as new VMs, checked byte for byte (SHA-256) against what the disks held; the
//! catalog rebuilt from the targets; retention; verify catching damage. The real `ceso` binary
//! against the ESXi simulator, whose datastore is a real directory.

mod support;

use std::path::{Path, PathBuf};

use support::disks::{disk_digests as digests, snapshot_names};
use support::inventory::{Inventory, Run};
use support::{Simulator, find_vm};

const POOL: &str = "---\napiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: lan }\nspec:\n  cidr: 192.168.1.0/24\n  gateway: 192.168.1.1\n  ranges: [ { start: 192.168.1.100, end: 192.168.1.120 } ]\n";

fn simulator() -> Simulator {
    Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(50)
        .fault("CloneVM_Task=NotSupported")
        .start()
}

/// A policy named `nightly` with the given target (YAML flow mapping) and retention.
fn policy(target: &str, retention: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: BackupPolicy\nmetadata: {{ name: nightly }}\nspec:\n  schedule: {{ cron: \"30 2 * * *\", timeZone: Europe/Berlin }}\n  retention: {retention}\n  target: {target}\n  quiesce: true\n"
    )
}

fn vm(name: &str, disks: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: 2\n  memory: 256MiB\n  disks: {disks}\n  networks: [ {{ ip: auto, pool: lan }} ]\n  guestId: ubuntu64Guest\n  backupPolicy: nightly\n"
    )
}

/// An inventory with the pool, the policy and the VM `db-01` (two disks), applied.
fn applied(sim: &Simulator, target: &str, retention: &str) -> Inventory {
    let inv = Inventory::new(
        sim,
        &format!(
            "{POOL}{}{}",
            policy(target, retention),
            vm("db-01", "[ { size: 8MiB }, { size: 4MiB } ]")
        ),
    );
    inv.ceso(sim, &["apply", "DIR", "--auto-approve"]).expect(0);
    inv
}

/// A directory target beside the inventory (`<tempdir>/backups`).
const DIRECTORY: &str = "{ directory: { path: ../backups } }";

fn backups_dir(inv: &Inventory) -> PathBuf {
    inv.dir.path().join("backups")
}

/// Fills the disks of `vm` with 3 MiB of pseudo-random bytes; their SHA-256.
fn write_disks(sim: &Simulator, vm: &str, seed: u64) -> Vec<String> {
    support::disks::write_disks(sim, vm, seed, 3 << 20)
}

/// The backups `backup list --json` shows.
fn listed(inv: &Inventory, sim: &Simulator) -> Vec<serde_json::Value> {
    let run = inv.ceso(sim, &["backup", "list", "--inventory", "DIR", "--json"]);
    run.expect(0);
    run.json().as_array().cloned().unwrap_or_default()
}

fn create(inv: &Inventory, sim: &Simulator, vm: &str) -> Run {
    inv.ceso(sim, &["backup", "create", vm, "--inventory", "DIR"])
}

fn last_id(inv: &Inventory, sim: &Simulator) -> String {
    listed(inv, sim)
        .last()
        .and_then(|b| b["id"].as_str().map(str::to_owned))
        .expect("a backup")
}

#[test]
fn a_directory_backup_restores_byte_identical_in_place_and_as_a_new_vm() {
    let sim = simulator();
    let inv = applied(&sim, DIRECTORY, "{ keepLast: 5 }");
    let original = write_disks(&sim, "db-01", 1);

    let first = create(&inv, &sim, "db-01");
    first.expect(0);
    assert!(
        first.stdout().contains("Backup db-01-"),
        "{}",
        first.stdout()
    );
    assert!(
        snapshot_names(&sim, "db-01").is_empty(),
        "the backup snapshot is removed"
    );
    assert_eq!(sim.method_count("CreateSnapshot_Task"), 1);
    let records = listed(&inv, &sim);
    assert_eq!(records.len(), 1);
    let id = records[0]["id"].as_str().expect("id").to_owned();
    assert!(
        backups_dir(&inv)
            .join("backups")
            .join(&id)
            .join("record.json")
            .is_file()
    );

    // A second backup of the unchanged disks stores (almost) nothing new.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    create(&inv, &sim, "db-01").expect(0);
    let records = listed(&inv, &sim);
    assert_eq!(records.len(), 2);
    let second = &records[1];
    let read = second["bytesRead"].as_u64().expect("bytesRead");
    let new = second["bytesNew"].as_u64().expect("bytesNew");
    assert!(new * 100 < read, "{new} new bytes of {read}");

    inv.ceso(&sim, &["backup", "verify", &id, "--inventory", "DIR"])
        .expect(0);

    // The disks change; restoring in place brings back exactly what was backed up, and the
    // running VM runs again.
    write_disks(&sim, "db-01", 2);
    assert_ne!(digests(&sim, "db-01"), original);
    let restore = inv.ceso(
        &sim,
        &["backup", "restore", &id, "--inventory", "DIR", "--yes"],
    );
    restore.expect(0);
    assert_eq!(digests(&sim, "db-01"), original, "restored byte for byte");
    let facts = find_vm(&sim, "db-01").expect("the VM");
    assert_eq!(facts.power_state, "poweredOn");

    // As a new VM: the same bytes, a new identity and a new address from the pool.
    let restore = inv.ceso(
        &sim,
        &[
            "backup",
            "restore",
            &id,
            "--as-new",
            "db-copy",
            "--inventory",
            "DIR",
            "--yes",
        ],
    );
    restore.expect(0);
    assert_eq!(digests(&sim, "db-copy"), original);
    let copy = find_vm(&sim, "db-copy").expect("the new VM");
    assert_ne!(copy.nic_macs, facts.nic_macs, "a new MAC");
    assert_eq!(copy.num_cpu, 2);
    assert_ne!(copy.guest_ip, facts.guest_ip, "a new address");
    let manifest = std::fs::read_to_string(inv.path().join("vms/db-copy.yaml"))
        .expect("the manifest of the restored VM");
    assert!(manifest.contains("pool: lan"), "{manifest}");
    assert!(
        !sim.datastore_dir.join("ceso-restore-db-copy").exists(),
        "the staging folder is removed"
    );
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn the_catalog_is_rebuilt_from_the_target_and_verify_catches_a_damaged_chunk() {
    let sim = simulator();
    let inv = applied(&sim, DIRECTORY, "{ keepLast: 5 }");
    write_disks(&sim, "db-01", 3);
    create(&inv, &sim, "db-01").expect(0);
    let id = last_id(&inv, &sim);

    std::fs::remove_file(inv.dir.path().join("state.redb")).expect("removing the state file");
    let records = listed(&inv, &sim);
    assert_eq!(records.len(), 1, "rebuilt from the target");
    assert_eq!(records[0]["id"], id.as_str());

    // Damage one chunk.
    let chunk = walk(&backups_dir(&inv).join("chunks"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a chunk");
    let mut bytes = std::fs::read(&chunk).expect("chunk");
    bytes[100] ^= 0xff;
    std::fs::write(&chunk, bytes).expect("damage");
    let verify = inv.ceso(&sim, &["backup", "verify", &id, "--inventory", "DIR"]);
    verify.expect(1);
    let name = chunk
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    assert!(verify.stderr().contains(&name), "{}", verify.stderr());
    assert!(verify.stderr().contains("damaged"), "{}", verify.stderr());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_datastore_backup_is_copied_on_the_host_and_restores_byte_identical() {
    let sim = simulator();
    let inv = applied(
        &sim,
        &format!(
            "{{ datastore: {{ datastore: {}, folder: ceso-backups }} }}",
            sim.datastore
        ),
        "{ keepLast: 5 }",
    );
    let original = write_disks(&sim, "db-01", 4);
    create(&inv, &sim, "db-01").expect(0);
    assert_eq!(
        sim.method_count("CopyVirtualDisk_Task"),
        2,
        "each disk copied on the host"
    );
    let id = last_id(&inv, &sim);
    let folder = sim.datastore_dir.join("ceso-backups").join(&id);
    assert!(folder.join("record.json").is_file());
    inv.ceso(&sim, &["backup", "verify", &id, "--inventory", "DIR"])
        .expect(0);

    write_disks(&sim, "db-01", 5);
    inv.ceso(
        &sim,
        &["backup", "restore", &id, "--inventory", "DIR", "--yes"],
    )
    .expect(0);
    assert_eq!(digests(&sim, "db-01"), original);

    inv.ceso(
        &sim,
        &[
            "backup",
            "restore",
            &id,
            "--as-new",
            "db-copy",
            "--ip",
            "192.168.1.110/24",
            "--inventory",
            "DIR",
            "--yes",
        ],
    )
    .expect(0);
    assert_eq!(digests(&sim, "db-copy"), original);
    assert!(
        folder.join("record.json").is_file(),
        "the backup itself is untouched"
    );
}

#[test]
fn retention_is_shown_by_plan_and_applied_by_prune() {
    let sim = simulator();
    let inv = applied(&sim, DIRECTORY, "{ keepLast: 2 }");
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    assert!(
        plan.stdout()
            .contains("due:     db-01 (policy nightly): never backed up"),
        "{}",
        plan.stdout()
    );

    let mut ids = Vec::new();
    for seed in 0..3 {
        write_disks(&sim, "db-01", 10 + seed);
        create(&inv, &sim, "db-01").expect(0);
        ids.push(last_id(&inv, &sim));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    assert!(
        plan.stdout().contains(&format!("expires: {}", ids[0])),
        "{}",
        plan.stdout()
    );
    assert!(
        plan.stdout().contains("next:    db-01"),
        "{}",
        plan.stdout()
    );
    let chunks_before = walk(&backups_dir(&inv).join("chunks")).len();

    let dry = inv.ceso(
        &sim,
        &["backup", "prune", "--inventory", "DIR", "--dry-run"],
    );
    dry.expect(0);
    assert!(
        dry.stdout().contains(&format!("would delete {}", ids[0])),
        "{}",
        dry.stdout()
    );
    assert_eq!(listed(&inv, &sim).len(), 3, "a dry run deletes nothing");

    inv.ceso(&sim, &["backup", "prune", "--inventory", "DIR"])
        .expect(0);
    let left: Vec<String> = listed(&inv, &sim)
        .iter()
        .filter_map(|b| b["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(left, ids[1..].to_vec());
    assert!(
        walk(&backups_dir(&inv).join("chunks")).len() < chunks_before,
        "unused chunks are freed"
    );
    let audit = inv.ceso(&sim, &["audit", "list"]);
    assert!(
        audit.stdout().contains(&format!("Backup/{}", ids[0]))
            || audit.stdout().contains("backup prune"),
        "{}",
        audit.stdout()
    );
}

#[test]
fn a_vm_with_its_own_snapshots_is_backed_up_without_touching_them() {
    let sim = simulator();
    let inv = applied(&sim, DIRECTORY, "{ keepLast: 5 }");
    let original = write_disks(&sim, "db-01", 7);
    let moref = find_vm(&sim, "db-01").expect("vm").moref;
    let r = support::soap_query_response(
        &sim,
        &format!(
            r#"<CreateSnapshot_Task xmlns="urn:vim25"><_this type="VirtualMachine">{moref}</_this><name>before-upgrade</name><memory>false</memory><quiesce>false</quiesce></CreateSnapshot_Task>"#
        ),
    );
    assert_eq!(support::task_outcome(&sim, &r).0, "success");
    create(&inv, &sim, "db-01").expect(0);
    assert_eq!(
        snapshot_names(&sim, "db-01"),
        vec!["before-upgrade".to_owned()]
    );
    let id = last_id(&inv, &sim);

    let refused = inv.ceso(
        &sim,
        &["backup", "restore", &id, "--inventory", "DIR", "--yes"],
    );
    refused.expect(1);
    assert!(
        refused.stderr().contains("has snapshots"),
        "{}",
        refused.stderr()
    );
    inv.ceso(
        &sim,
        &[
            "backup",
            "restore",
            &id,
            "--as-new",
            "db-copy",
            "--inventory",
            "DIR",
            "--yes",
        ],
    )
    .expect(0);
    assert_eq!(digests(&sim, "db-copy"), original);
}

#[test]
fn backup_run_takes_exactly_the_backups_the_plan_lists_as_due() {
    let sim = simulator();
    let inv = applied(&sim, DIRECTORY, "{ keepLast: 5 }");
    write_disks(&sim, "db-01", 20);
    let dry = inv.ceso(&sim, &["backup", "run", "--inventory", "DIR", "--dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout()
            .contains("would back up db-01 (policy nightly)"),
        "{}",
        dry.stdout()
    );
    assert!(listed(&inv, &sim).is_empty(), "a dry run takes nothing");

    let run = inv.ceso(&sim, &["backup", "run", "--inventory", "DIR"]);
    run.expect(0);
    assert!(run.stdout().contains("Backup db-01-"), "{}", run.stdout());
    assert_eq!(listed(&inv, &sim).len(), 1);

    // Backed up since the last scheduled time: nothing is due until the next night.
    let again = inv.ceso(&sim, &["backup", "run", "--inventory", "DIR"]);
    again.expect(0);
    assert!(
        again.stdout().contains("No backup is due."),
        "{}",
        again.stdout()
    );
    let plan = inv.ceso(&sim, &["plan", "DIR"]);
    assert!(
        plan.stdout().contains("next:    db-01"),
        "{}",
        plan.stdout()
    );
    assert_eq!(listed(&inv, &sim).len(), 1);
}
