//! The backup part of `ceso plan`: which VMs' backups are due under their policy's schedule and
//! which backups retention would delete, computed purely from the inventory, the catalog and the
//! time (so the plan says exactly what `backup create` and `backup prune` would do).

use ceso::backup::VmConfig;
use ceso::backup::record::{BackupRecord, RECORD_FORMAT};
use ceso::desired::DesiredState;
use ceso::plan::backups::outlook;
use jiff::Timestamp;

const INVENTORY: &str = r#"
apiVersion: ceso/v1
kind: Host
metadata: { name: esxi-01 }
spec:
  address: https://esxi-01.lab.example
  thumbprint: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
  username: root
  password: { env: ESXI_PASSWORD }
  datastore: datastore1
  network: VM Network
---
apiVersion: ceso/v1
kind: BackupPolicy
metadata: { name: nightly }
spec:
  schedule: { cron: "30 2 * * *", timeZone: Europe/Berlin }
  retention: { keepLast: 2 }
  target: { directory: { path: /srv/backups } }
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: db-01 }
spec: { host: esxi-01, cpu: 2, memory: 2GiB, backupPolicy: nightly }
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec: { host: esxi-01, cpu: 2, memory: 2GiB, backupPolicy: nightly }
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: scratch }
spec: { host: esxi-01, cpu: 1, memory: 1GiB }
"#;

fn desired() -> DesiredState {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("inventory.yaml"), INVENTORY).expect("write");
    let (inventory, diagnostics) = ceso::manifest::load_inventory(dir.path());
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    DesiredState::from_inventory(&inventory)
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn backup(vm: &str, taken: &str) -> BackupRecord {
    let started = at(taken);
    BackupRecord {
        format: RECORD_FORMAT,
        id: ceso::backup::record::new_backup_id(vm, started),
        vm: vm.to_owned(),
        host: "esxi-01".to_owned(),
        policy: Some("nightly".to_owned()),
        target: "directory:/srv/backups".to_owned(),
        started,
        finished: started,
        quiesced: true,
        power: None,
        config: VmConfig::default(),
        disks: vec![],
        files: vec![],
        manifest: None,
        bytes_read: 0,
        bytes_new: 0,
    }
}

#[test]
fn a_vm_never_backed_up_is_due_and_one_backed_up_after_the_last_run_is_not() {
    // 02:30 in Berlin is 01:30 UTC in November.
    let catalog = [backup("web-01", "2026-11-27T01:30:05Z")];
    let now = at("2026-11-27T09:00:00Z");
    insta::assert_yaml_snapshot!(outlook(&desired(), &catalog, now));
}

#[test]
fn a_backup_older_than_the_last_scheduled_time_is_due_again() {
    let catalog = [backup("db-01", "2026-11-26T01:30:05Z")];
    let outlook = outlook(&desired(), &catalog, at("2026-11-27T01:30:00Z"));
    assert_eq!(outlook.due.len(), 2, "{outlook:?}");
    let db = outlook
        .due
        .iter()
        .find(|d| d.vm == "db-01")
        .expect("db-01 due");
    assert_eq!(db.due_since, at("2026-11-27T01:30:00Z"));
    assert_eq!(db.last, Some(at("2026-11-26T01:30:05Z")));
    let just_before = outlook_at("2026-11-27T01:29:59Z", &catalog);
    assert!(
        just_before.due.iter().all(|d| d.vm != "db-01"),
        "not due a second early: {just_before:?}"
    );
}

fn outlook_at(now: &str, catalog: &[BackupRecord]) -> ceso::plan::backups::BackupOutlook {
    outlook(&desired(), catalog, at(now))
}

#[test]
fn retention_deletions_are_listed_oldest_first_per_vm() {
    let catalog = [
        backup("db-01", "2026-11-24T01:30:05Z"),
        backup("db-01", "2026-11-25T01:30:05Z"),
        backup("db-01", "2026-11-26T01:30:05Z"),
        backup("db-01", "2026-11-27T01:30:05Z"),
        backup("web-01", "2026-11-27T01:30:05Z"),
    ];
    let outlook = outlook(&desired(), &catalog, at("2026-11-27T09:00:00Z"));
    let expiring: Vec<&str> = outlook.expiring.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        expiring,
        ["db-01-20261124T013005Z", "db-01-20261125T013005Z"]
    );
    assert!(outlook.due.is_empty(), "{outlook:?}");
}

#[test]
fn backups_of_a_policy_no_longer_declared_are_never_expired() {
    let mut old = backup("db-01", "2026-01-01T00:00:00Z");
    old.policy = Some("weekly-gone".to_owned());
    let outlook = outlook(&desired(), &[old], at("2026-11-27T09:00:00Z"));
    assert!(outlook.expiring.is_empty());
}

#[test]
fn a_suspended_vm_is_never_due_and_is_listed_as_suspended() {
    let mut desired = desired();
    desired.suspended.vms.insert("db-01".to_owned());
    let catalog = [
        backup("db-01", "2026-11-20T01:30:05Z"),
        backup("db-01", "2026-11-21T01:30:05Z"),
        backup("db-01", "2026-11-22T01:30:05Z"),
    ];
    let outlook = outlook(&desired, &catalog, at("2026-11-27T09:00:00Z"));
    let due: Vec<&str> = outlook.due.iter().map(|d| d.vm.as_str()).collect();
    assert_eq!(
        due,
        ["web-01"],
        "db-01's backup is a week late, but suspended"
    );
    let suspended: Vec<(&str, &str, &str)> = outlook
        .suspended
        .iter()
        .map(|s| (s.vm.as_str(), s.policy.as_str(), s.suspended_by.as_str()))
        .collect();
    assert_eq!(suspended, [("db-01", "nightly", "VirtualMachine/db-01")]);
    assert!(outlook.upcoming.iter().all(|u| u.vm != "db-01"));
    // Retention still applies to the backups it has (`backup prune` deletes only what the
    // policy no longer keeps, and a suspended VM makes no new ones).
    let expiring: Vec<&str> = outlook.expiring.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(expiring, ["db-01-20261120T013005Z"]);
}

#[test]
fn a_suspended_host_pauses_the_backups_of_every_vm_on_it() {
    let mut desired = desired();
    desired.suspended.hosts.insert("esxi-01".to_owned());
    let outlook = outlook(&desired, &[], at("2026-11-27T09:00:00Z"));
    assert!(
        outlook.due.is_empty() && outlook.upcoming.is_empty(),
        "{outlook:?}"
    );
    let suspended: Vec<(&str, &str)> = outlook
        .suspended
        .iter()
        .map(|s| (s.vm.as_str(), s.suspended_by.as_str()))
        .collect();
    assert_eq!(
        suspended,
        [("db-01", "Host/esxi-01"), ("web-01", "Host/esxi-01")]
    );
}

#[test]
fn suspend_in_the_manifests_reaches_the_outlook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suspended_db = INVENTORY.replace(
        "metadata: { name: db-01 }\nspec: { host: esxi-01, cpu: 2, memory: 2GiB, backupPolicy: nightly }",
        "metadata: { name: db-01 }\nspec: { host: esxi-01, cpu: 2, memory: 2GiB, backupPolicy: nightly, suspend: true }",
    );
    assert_ne!(suspended_db, INVENTORY);
    std::fs::write(dir.path().join("inventory.yaml"), suspended_db).expect("write");
    let (inventory, diagnostics) = ceso::manifest::load_inventory(dir.path());
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    let desired = DesiredState::from_inventory(&inventory);
    let outlook = outlook(&desired, &[], at("2026-11-27T09:00:00Z"));
    assert_eq!(outlook.suspended.len(), 1, "{outlook:?}");
    assert_eq!(outlook.suspended[0].vm, "db-01");
}
