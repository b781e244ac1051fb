//! `ceso plan --format markdown`: the plan as a pull-request comment. Plans are made by the
//! pure planner against an in-memory host (no simulator), as `ceso plan` would make them, and
//! the Markdown is compared with reviewed snapshots; the properties a comment needs (the
//! marker, the size limit, values that cannot break the layout) are asserted on their own.
//! One test runs the real binary against the simulator for the command-line side: `--format`,
//! `--json`, `--output json` and `--out`.

mod common;
mod support;

use ceso::backup::VmConfig;
use ceso::backup::record::{BackupRecord, RECORD_FORMAT};
use ceso::desired::DesiredState;
use ceso::host::PowerState;
use ceso::manifest::Power;
use ceso::plan::markdown::{GITHUB_COMMENT_LIMIT, MARKER, markdown, markdown_within};
use ceso::plan::{Plan, PlanOptions, diff};
use common::*;

/// Creates the desired VMs on a fresh in-memory host and returns it.
fn converged(desired: &DesiredState) -> FakeHost {
    let fake = FakeHost::new(empty_host());
    let first = plan(desired, &fake.state.borrow(), false);
    apply_all(&fake, &first);
    fake
}

/// A plan that creates, updates (with drift and a power cycle), replaces and deletes, keeps a
/// protected VM that left the manifests, and sees an unmanaged VM.
fn plan_with_every_kind_of_change() -> Plan {
    let mut db = desired_vm("db-01", 4, 8, Power::On);
    db.config.protect = true;
    let before = desired(
        vec![
            desired_vm("web-01", 2, 4, Power::On),
            desired_vm("cache-01", 2, 2, Power::On),
            desired_vm("old-01", 1, 1, Power::On),
            db,
        ],
        false,
    );
    let fake = converged(&before);
    {
        let mut host = fake.state.borrow_mut();
        host.datastores.push("datastore2".into());
        host.vms.push(unmanaged_vm("legacy", "7"));
        let web = host.vms.iter_mut().find(|v| v.name == "web-01").unwrap();
        web.power = Some(PowerState::PoweredOff); // someone powered it off in the host client
    }
    let mut web = desired_vm("web-01", 4, 6, Power::On);
    web.config.networks.push("Storage".into());
    let mut cache = desired_vm("cache-01", 2, 2, Power::On);
    cache.config.datastore = "datastore2".into();
    cache.datastore_declared = true;
    let after = desired(
        vec![web, cache, desired_vm("new-01", 1, 2, Power::Off)],
        false,
    );
    plan(&after, &fake.state.borrow(), true)
}

#[test]
fn a_plan_with_every_kind_of_change() {
    let plan = plan_with_every_kind_of_change();
    let text = markdown(&plan);
    assert!(text.starts_with(MARKER), "{text}");
    insta::assert_snapshot!("every_kind_of_change", text);
}

#[test]
fn a_plan_with_errors_says_nothing_can_be_applied_and_lists_them_first() {
    let mut web = desired_vm("web-01", 2, 4, Power::On);
    web.config.disks = vec![20 * GIB, 10 * GIB];
    let fake = converged(&desired(vec![web.clone()], false));
    fake.state
        .borrow_mut()
        .vms
        .push(unmanaged_vm("app-01", "7"));
    web.config.disks = vec![10 * GIB, 10 * GIB]; // disks never shrink
    let clash = desired_vm("app-01", 1, 1, Power::On); // the name of an unmanaged VM
    let plan = plan(
        &desired(
            vec![web, clash, desired_vm("new-01", 1, 1, Power::On)],
            false,
        ),
        &fake.state.borrow(),
        false,
    );
    let text = markdown(&plan);
    let errors = text.find("### ❌ Errors").expect("an Errors section");
    let changes = text.find("### Changes").expect("the changes it would make");
    assert!(errors < changes, "errors come before the changes:\n{text}");
    insta::assert_snapshot!("errors", text);
}

#[test]
fn a_plan_without_changes_says_the_hosts_match() {
    let desired = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&desired);
    let plan = plan(&desired, &fake.state.borrow(), false);
    insta::assert_snapshot!("no_changes", markdown(&plan));
}

const INVENTORY_WITH_BACKUPS: &str = r#"
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
  retention: { keepLast: 1 }
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
metadata: { name: cache-01 }
spec: { host: esxi-01, cpu: 1, memory: 1GiB, backupPolicy: nightly, suspend: true }
"#;

fn backup(vm: &str, taken: &str) -> BackupRecord {
    let started: jiff::Timestamp = taken.parse().expect("timestamp");
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
fn the_backup_outlook_lists_due_expiring_next_and_paused_backups() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("inventory.yaml"), INVENTORY_WITH_BACKUPS).expect("write");
    let (inventory, diagnostics) = ceso::manifest::load_inventory(dir.path());
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    let desired = DesiredState::from_inventory(&inventory);
    let fake = converged(&desired);
    let options = PlanOptions {
        backup_catalog: vec![
            backup("db-01", "2026-11-26T01:30:05Z"),
            backup("db-01", "2026-11-27T01:30:05Z"),
        ],
        backups_at: Some("2026-11-27T09:00:00Z".parse().expect("timestamp")),
        ..PlanOptions::default()
    };
    let plan = diff(&desired, &observed(fake.observe_now()), &options, meta());
    assert!(!plan.has_changes());
    insta::assert_snapshot!("backups", markdown(&plan));
}

#[test]
fn suspended_vms_show_what_would_be_done_without_counting_as_changes() {
    let before = desired(
        vec![
            desired_vm("web-01", 2, 4, Power::On),
            desired_vm("cache-01", 2, 2, Power::On),
        ],
        false,
    );
    let fake = converged(&before);
    let mut after = desired(
        vec![
            desired_vm("web-01", 4, 8, Power::On),
            desired_vm("cache-01", 2, 2, Power::On),
            desired_vm("new-01", 1, 2, Power::Off),
        ],
        false,
    );
    after.suspended.vms.insert("web-01".into());
    after.suspended.vms.insert("cache-01".into());
    let plan = plan(&after, &fake.state.borrow(), false);
    assert_eq!(plan.summary.suspended, 2);
    let text = markdown(&plan);
    assert!(
        text.contains("## ceso plan: 1 to create, 0 to update, 0 to replace, 0 to delete; 2 suspended (left as they are)"),
        "{text}"
    );
    insta::assert_snapshot!("suspended", text);
}

#[test]
fn values_from_manifests_and_hosts_cannot_break_the_comment() {
    let hostile = "Lab | `net` <img src=x> [link](http://x) @team";
    let mut host = empty_host();
    host.networks.push(hostile.into());
    let mut vm = desired_vm("web-01", 2, 4, Power::On);
    vm.config.networks = vec![hostile.into()];
    let plan = plan(&desired(vec![vm], false), &host, false);
    let text = markdown(&plan);
    let mut header_cells = None;
    for line in text.lines() {
        if !line.starts_with('|') {
            header_cells = None; // the table (if any) ended
            continue;
        }
        let cells = unescaped_pipes(line);
        let header = *header_cells.get_or_insert(cells);
        assert_eq!(cells, header, "every row has its header's cells: {line}");
    }
    assert!(
        text.contains("``Lab \\| `net` <img src=x> [link](http://x) @team``"),
        "the value is one literal code span:\n{text}"
    );
}

/// The `|` that separate cells (an escaped `\|` is part of a cell).
fn unescaped_pipes(row: &str) -> usize {
    let mut count = 0;
    let mut chars = row.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '|' => count += 1,
            _ => {}
        }
    }
    count
}

/// 1500 VMs to create: far more than one comment holds.
fn huge_plan() -> Plan {
    let vms = (0..1500)
        .map(|i| desired_vm(&format!("vm-{i:04}"), 2, 4, Power::On))
        .collect();
    plan(&desired(vms, false), &empty_host(), false)
}

#[test]
fn a_huge_plan_is_cut_cleanly_to_fit_a_github_comment() {
    let plan = huge_plan();
    let text = markdown(&plan);
    assert!(
        text.len() <= GITHUB_COMMENT_LIMIT,
        "{} bytes is over the limit",
        text.len()
    );
    assert!(text.starts_with(MARKER));
    assert!(text.contains("## ceso plan: 1500 to create, 0 to update, 0 to replace, 0 to delete"));
    assert_eq!(
        text.matches("<details>").count(),
        text.matches("</details>").count(),
        "every <details> element is closed"
    );
    let shown = text.matches("\n#### ").count();
    assert!(shown > 10, "as many resources as fit are shown ({shown})");
    let note = &text[text.rfind("\n---\n").expect("a note at the end")..];
    assert!(
        note.contains(&format!("{} resource changes", 1500 - shown)),
        "{note}"
    );
    insta::assert_snapshot!("huge_plan_note", note);
}

#[test]
fn a_plan_that_fits_is_never_cut() {
    let plan = plan_with_every_kind_of_change();
    let whole = markdown(&plan);
    assert_eq!(markdown_within(&plan, whole.len()), whole);
    let cut = markdown_within(&plan, whole.len() - 1);
    assert!(cut.len() < whole.len());
    assert!(cut.contains("was cut here"), "{cut}");
}

#[test]
fn the_command_prints_the_chosen_format_and_always_saves_the_json_plan() {
    let sim = support::Simulator::start();
    let inv = support::inventory::Inventory::new(
        &sim,
        "apiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: { name: web-01 }\nspec: { host: esxi-01, cpu: 1, memory: 1GiB, disks: [ { size: 1GiB } ] }\n",
    );
    let saved = inv.dir.path().join("plan.json");
    let saved_arg = saved.display().to_string();

    let run = inv.ceso(
        &sim,
        &["plan", "DIR", "--format", "markdown", "--out", &saved_arg],
    );
    run.expect(2);
    assert!(run.stdout().starts_with(MARKER), "{}", run.stdout());
    assert!(
        run.stdout()
            .contains("## ceso plan: 1 to create, 0 to update, 0 to replace, 0 to delete"),
        "{}",
        run.stdout()
    );
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(&saved).expect("plan saved"))
        .expect("the saved plan is the JSON plan");
    assert_eq!(plan.summary.create, 1);

    let json = inv.ceso(&sim, &["plan", "DIR", "--json"]);
    json.expect(2);
    assert_eq!(json.json()["summary"]["create"], 1);
    let json = inv.ceso(&sim, &["plan", "DIR", "--format", "json"]);
    json.expect(2);
    assert_eq!(json.json()["summary"]["create"], 1);

    // An explicit --format wins over the global --output json (which may come from CESO_OUTPUT).
    let explicit = inv.ceso(
        &sim,
        &["--output", "json", "plan", "DIR", "--format", "markdown"],
    );
    explicit.expect(2);
    assert!(
        explicit.stdout().starts_with(MARKER),
        "{}",
        explicit.stdout()
    );

    let unknown = inv.ceso(&sim, &["plan", "DIR", "--format", "yaml"]);
    unknown.expect(1);
    assert!(
        unknown.stderr().contains("markdown"),
        "{}",
        unknown.stderr()
    );
}
