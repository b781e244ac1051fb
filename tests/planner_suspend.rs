//! `suspend: true` pauses a resource: the plan makes no step for it (no creation, change, power
//! change, replacement or deletion, with or without pruning) but still shows what it would do,
//! so drift stays visible, and none of that counts as a pending change. A suspended `Host`
//! pauses every VM on it. Manifests are loaded the way the CLI loads them; the host is a fake.

mod common;

use ceso::desired::DesiredState;
use ceso::diagnostic::has_errors;
use ceso::host::{CLONE_SNAPSHOT_PREFIX, ObservedSnapshot, PowerState};
use ceso::manifest::load_inventory_without_address_check;
use ceso::plan::{Action, Plan, PlanOptions, diff, render, stale_reasons, structure_problems};
use common::*;

/// Host `esxi-01` (with `host_extra` added to its spec) and pool `lan`, whose range holds two
/// addresses.
fn base(host_extra: &str) -> String {
    format!(
        r#"apiVersion: ceso/v1
kind: Host
metadata: {{ name: esxi-01 }}
spec:
  address: https://esxi-01.lab.example
  thumbprint: "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"
  username: root
  password: {{ env: ESXI_PASSWORD }}
  datastore: datastore1
  network: VM Network
{host_extra}---
apiVersion: ceso/v1
kind: IpPool
metadata: {{ name: lan }}
spec:
  cidr: 192.168.1.0/24
  gateway: 192.168.1.1
  ranges: [ {{ start: 192.168.1.100, end: 192.168.1.101 }} ]
"#
    )
}

/// A VM document on `esxi-01` with `spec` added to its spec.
fn vm(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n{spec}"
    )
}

const SUSPEND: &str = "  suspend: true\n";
const SMALL: &str = "  cpu: 2\n  memory: 4GiB\n  disks: [ { size: 20GiB } ]\n";
const BIG: &str = "  cpu: 4\n  memory: 8GiB\n  disks: [ { size: 20GiB } ]\n";

/// The desired state of `base(host_extra)` plus `vms`, loaded and validated like the CLI does.
fn load(host_extra: &str, vms: &str) -> DesiredState {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.yaml"), base(host_extra)).unwrap();
    std::fs::write(dir.path().join("vms.yaml"), vms).unwrap();
    let (inventory, diagnostics) = load_inventory_without_address_check(dir.path());
    assert!(!has_errors(&diagnostics), "{diagnostics:#?}");
    DesiredState::from_inventory(&inventory)
}

/// A fake host on which `desired` was applied.
fn applied(desired: &DesiredState) -> FakeHost {
    let fake = FakeHost::new(empty_host());
    apply_all(&fake, &plan(desired, &fake.observe_now(), false));
    fake
}

fn step_descriptions(plan: &Plan) -> Vec<String> {
    plan.steps.iter().map(|s| s.description.clone()).collect()
}

/// (name, would-be action, what suspends it) of every suspended resource.
fn suspended(plan: &Plan) -> Vec<(String, Action, String)> {
    plan.suspended
        .iter()
        .map(|s| {
            (
                s.change.name.clone(),
                s.change.action,
                s.suspended_by.clone(),
            )
        })
        .collect()
}

fn human(plan: &Plan) -> String {
    render::human(plan, render::Colour::Never)
}

#[test]
fn a_suspended_vm_changed_on_the_host_gets_no_step_but_its_drift_is_shown() {
    let declared = [vm("web-01", SMALL), vm("web-02", SMALL)].concat();
    let fake = applied(&load("", &declared));
    {
        // Someone changes web-01 in the host client while ceso is told to keep out.
        let mut state = fake.state.borrow_mut();
        let web01 = state.vms.iter_mut().find(|v| v.name == "web-01").unwrap();
        web01.memory_mib = 8192;
        web01.power = Some(PowerState::PoweredOff);
    }
    let paused = load(
        "",
        &[
            vm("web-01", &format!("{SMALL}{SUSPEND}")),
            vm("web-02", SMALL),
        ]
        .concat(),
    );
    let plan = plan(&paused, &fake.observe_now(), false);

    assert!(plan.steps.is_empty(), "{:?}", step_descriptions(&plan));
    assert!(!plan.has_changes(), "`ceso plan` exits 0: {}", human(&plan));
    assert_eq!(
        (plan.summary.update, plan.summary.suspended),
        (0, 1),
        "{:?}",
        plan.summary
    );
    assert_eq!(
        plan.changes
            .iter()
            .map(|c| (c.name.as_str(), c.action))
            .collect::<Vec<_>>(),
        [("web-02", Action::NoOp)]
    );
    assert_eq!(
        suspended(&plan),
        [(
            "web-01".to_owned(),
            Action::Update,
            "VirtualMachine/web-01".to_owned()
        )]
    );
    let fields: Vec<(&str, bool)> = plan.suspended[0]
        .change
        .fields
        .iter()
        .map(|f| (f.field.as_str(), f.drift))
        .collect();
    assert_eq!(fields, [("memory", true), ("power", true)]);
    insta::assert_snapshot!("suspended_vm_with_drift_human", human(&plan));
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan)).unwrap();
    insta::assert_json_snapshot!(
        "suspended_vm_with_drift_json",
        serde_json::json!({ "summary": json["summary"], "suspended": json["suspended"] })
    );

    // Applying that plan leaves web-01 exactly as it was found.
    let before = fake.observe_now();
    apply_all(&fake, &plan);
    assert_eq!(fake.observe_now(), before);

    // Once `suspend` is removed, the drift is corrected.
    let resumed = common::plan(&load("", &declared), &fake.observe_now(), false);
    assert_eq!(
        step_descriptions(&resumed),
        ["reconfigure web-01", "power on web-01"]
    );
}

#[test]
fn a_suspended_vm_not_created_yet_is_not_created_and_takes_no_address() {
    let auto = "  networks: [ { ip: auto, pool: lan } ]\n";
    let inventory = |web01_extra: &str| {
        load(
            "",
            &[
                vm("web-01", &format!("{SMALL}{auto}{web01_extra}")),
                vm("web-02", &format!("{SMALL}{auto}")),
            ]
            .concat(),
        )
    };
    let fake = FakeHost::new(empty_host());
    let plan = plan(&inventory(SUSPEND), &fake.observe_now(), false);

    // Without the suspension web-01 would get .100 (VMs are served in name order).
    assert_eq!(
        step_descriptions(&plan),
        [
            "create VM web-02",
            "power on web-02",
            "wait for web-02 to report 192.168.1.100"
        ]
    );
    assert_eq!(
        suspended(&plan),
        [(
            "web-01".to_owned(),
            Action::Create,
            "VirtualMachine/web-01".to_owned()
        )]
    );
    let web01 = &plan.suspended[0].change;
    let ip = web01
        .fields
        .iter()
        .find(|f| f.field == "networks[0].ip")
        .unwrap();
    assert_eq!(ip.after.as_deref(), Some("192.168.1.101/24 (pool lan)"));
    assert!(
        web01
            .notes
            .iter()
            .any(|n| n.contains("no address is taken")),
        "{:?}",
        web01.notes
    );
    assert_eq!(plan.summary.create, 1);

    apply_all(&fake, &plan);
    let names: Vec<String> = fake.observe_now().vms.into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["web-02"]);

    // Resumed, it is created with the address left for it.
    let resumed = common::plan(&inventory(""), &fake.observe_now(), false);
    assert_eq!(
        step_descriptions(&resumed),
        [
            "create VM web-01",
            "power on web-01",
            "wait for web-01 to report 192.168.1.101"
        ]
    );
}

#[test]
fn a_suspended_vm_that_would_find_no_address_is_a_warning_that_blocks_nothing() {
    let auto = "  networks: [ { ip: auto, pool: lan } ]\n";
    let declared = [
        vm("web-01", &format!("{SMALL}{auto}{SUSPEND}")),
        vm("web-02", &format!("{SMALL}{auto}")),
        vm("web-03", &format!("{SMALL}{auto}")),
    ]
    .concat();
    let plan = plan(&load("", &declared), &empty_host(), false);

    assert!(!has_errors(&plan.diagnostics), "{:#?}", plan.diagnostics);
    let warnings: Vec<(&str, &str)> = plan
        .diagnostics
        .iter()
        .map(|d| (d.resource.as_deref().unwrap_or("-"), d.message.as_str()))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "VirtualMachine/web-01");
    assert!(warnings[0].1.contains("(suspended:"), "{warnings:?}");
    assert_eq!(
        plan.summary.create, 2,
        "web-02 and web-03 get the two addresses"
    );
    assert_eq!(
        plan.suspended[0].change.notes,
        ["what would change is unknown because of the warnings in the plan"]
    );
}

#[test]
fn a_suspended_host_leaves_every_vm_on_it_alone_even_when_pruning() {
    let fake = applied(&load(
        "",
        &[
            vm("web-01", SMALL),
            vm("web-02", SMALL),
            vm("old-01", SMALL),
        ]
        .concat(),
    ));
    let paused = load(SUSPEND, &[vm("web-01", BIG), vm("web-02", SMALL)].concat());
    let plan = plan(&paused, &fake.observe_now(), true);

    assert!(plan.steps.is_empty(), "{:?}", step_descriptions(&plan));
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert!(!plan.has_changes());
    let by_host = || "Host/esxi-01".to_owned();
    assert_eq!(
        suspended(&plan),
        [
            ("web-01".to_owned(), Action::Update, by_host()),
            ("web-02".to_owned(), Action::NoOp, by_host()),
            ("old-01".to_owned(), Action::Delete, by_host()),
        ]
    );
    assert!(plan.suspended[2].change.undeclared);
    assert_eq!(plan.summary.suspended, 3);
    insta::assert_snapshot!("suspended_host_human", human(&plan));

    let before = fake.observe_now();
    apply_all(&fake, &plan);
    assert_eq!(
        fake.observe_now(),
        before,
        "nothing deleted, nothing changed"
    );

    // Without pruning, the VM no longer declared is kept, as on any host.
    let kept = common::plan(&paused, &fake.observe_now(), false);
    let old = &kept.suspended[2].change;
    assert_eq!((old.name.as_str(), old.action), ("old-01", Action::NoOp));
    assert!(human(&kept).contains(
        "    VirtualMachine/old-01 (host esxi-01): suspended by Host/esxi-01\n      # managed by ceso but no longer in the manifests"
    ));
}

#[test]
fn backups_of_a_suspended_vm_are_not_due_and_the_plan_says_why() {
    let policy = "---\napiVersion: ceso/v1\nkind: BackupPolicy\nmetadata: { name: nightly }\nspec:\n  schedule: { cron: \"30 2 * * *\" }\n  retention: { keepLast: 2 }\n  target: { directory: { path: /srv/backups } }\n";
    let declared = [
        vm(
            "db-01",
            &format!("{SMALL}  backupPolicy: nightly\n{SUSPEND}"),
        ),
        vm("web-01", &format!("{SMALL}  backupPolicy: nightly\n")),
        policy.to_owned(),
    ]
    .concat();
    let fake = applied(&load("", &declared.replace(SUSPEND, "")));
    let options = PlanOptions {
        backups_at: Some("2026-11-27T09:00:00Z".parse().unwrap()),
        ..PlanOptions::default()
    };
    let plan = diff(
        &load("", &declared),
        &observed(fake.observe_now()),
        &options,
        meta(),
    );
    let due: Vec<&str> = plan.backups.due.iter().map(|d| d.vm.as_str()).collect();
    assert_eq!(due, ["web-01"], "never backed up, so due at once");
    let text = human(&plan);
    assert!(
        text.contains(
            "  paused:  db-01 (policy nightly): suspended by VirtualMachine/db-01, no backup is due"
        ),
        "{text}"
    );
}

#[test]
fn a_suspended_vm_is_neither_replaced_nor_shut_down() {
    let fake = applied(&load("", &vm("db-01", SMALL)));
    fake.state.borrow_mut().datastores.push("datastore2".into());
    let moved_and_off = format!("{SMALL}  datastore: datastore2\n  power: off\n{SUSPEND}");
    let plan = plan(
        &load("", &vm("db-01", &moved_and_off)),
        &fake.observe_now(),
        false,
    );
    assert!(plan.steps.is_empty(), "{:?}", step_descriptions(&plan));
    assert_eq!(
        suspended(&plan),
        [(
            "db-01".to_owned(),
            Action::Replace,
            "VirtualMachine/db-01".to_owned()
        )]
    );
    assert!(plan.suspended[0].change.power_cycle, "what it would take");
    assert!(human(&plan).contains("-/+ VirtualMachine/db-01 (suspended: not changed)"));
}

#[test]
fn errors_about_a_suspended_vm_are_warnings_and_the_other_vms_are_planned() {
    let fake = applied(&load(
        "",
        &[vm("db-01", SMALL), vm("web-01", SMALL)].concat(),
    ));
    // A disk never shrinks: an error, were db-01 not suspended.
    let shrunk = "  cpu: 2\n  memory: 4GiB\n  disks: [ { size: 10GiB } ]\n";
    let declared = [
        vm("db-01", &format!("{shrunk}{SUSPEND}")),
        vm("web-01", BIG),
    ]
    .concat();
    let plan = plan(&load("", &declared), &fake.observe_now(), false);

    assert!(!has_errors(&plan.diagnostics), "{:#?}", plan.diagnostics);
    let warning = &plan.diagnostics[0];
    assert_eq!(
        (
            warning.resource.as_deref(),
            warning.field.as_deref(),
            warning.message.as_str()
        ),
        (
            Some("VirtualMachine/db-01"),
            Some("spec.disks[0].size"),
            "disk 0 is 20GiB on the host, the manifest says 10GiB: disks never shrink (suspended: it blocks nothing until `suspend: true` is removed, then it is an error)"
        )
    );
    assert_eq!(
        step_descriptions(&plan),
        ["shut down web-01", "reconfigure web-01", "power on web-01"]
    );
}

#[test]
fn a_snapshot_an_interrupted_clone_left_on_a_suspended_vm_stays() {
    let fake = applied(&load("", &vm("web-01", SMALL)));
    fake.state.borrow_mut().vms[0].snapshots = vec![ObservedSnapshot {
        moref: "snapshot-1".into(),
        name: format!("{CLONE_SNAPSHOT_PREFIX}web-09"),
    }];
    let plan = plan(
        &load("", &vm("web-01", &format!("{SMALL}{SUSPEND}"))),
        &fake.observe_now(),
        false,
    );
    assert!(plan.steps.is_empty(), "{:?}", step_descriptions(&plan));
    let change = &plan.suspended[0].change;
    assert_eq!(change.action, Action::Update);
    assert!(
        change.notes[0].ends_with("left by an interrupted clone: it would be removed"),
        "{:?}",
        change.notes
    );
}

#[test]
fn a_saved_plan_with_suspended_vms_reads_back_and_older_plans_still_read() {
    let fake = applied(&load("", &vm("web-01", SMALL)));
    let plan = plan(
        &load("", &vm("web-01", &format!("{BIG}{SUSPEND}"))),
        &fake.observe_now(),
        false,
    );
    let saved = render::json(&plan);
    let read: Plan = serde_json::from_str(&saved).unwrap();
    assert_eq!(read, plan);
    assert!(structure_problems(&read).is_empty());
    assert!(stale_reasons(&read, &observed(fake.observe_now())).is_empty());

    // A plan written before `suspend` existed has neither field.
    let mut older: serde_json::Value = serde_json::from_str(&saved).unwrap();
    older.as_object_mut().unwrap().remove("suspended");
    older["summary"]
        .as_object_mut()
        .unwrap()
        .remove("suspended");
    let read: Plan = serde_json::from_value(older).unwrap();
    assert!(read.suspended.is_empty());
    assert_eq!(read.summary.suspended, 0);
}

#[test]
fn a_plan_restricted_to_a_suspended_vm_keeps_what_it_would_get() {
    let fake = applied(&load(
        "",
        &[vm("web-01", SMALL), vm("web-02", SMALL)].concat(),
    ));
    let mut plan = plan(
        &load(
            "",
            &[vm("web-01", &format!("{BIG}{SUSPEND}")), vm("web-02", BIG)].concat(),
        ),
        &fake.observe_now(),
        false,
    );
    let others = plan.restrict_to("VirtualMachine/web-01");
    assert_eq!(others, 1, "web-02's update is left out");
    assert!(plan.changes.is_empty() && plan.steps.is_empty());
    assert_eq!(suspended(&plan)[0].0, "web-01");
    assert_eq!((plan.summary.update, plan.summary.suspended), (0, 1));
}

#[test]
fn planning_with_suspended_vms_is_deterministic() {
    let fake = applied(&load(
        "",
        &[vm("web-01", SMALL), vm("web-02", SMALL)].concat(),
    ));
    let paused = load(SUSPEND, &[vm("web-01", BIG), vm("web-03", SMALL)].concat());
    let options = PlanOptions {
        prune: true,
        ..PlanOptions::default()
    };
    let host = observed(fake.observe_now());
    assert_eq!(
        diff(&paused, &host, &options, meta()),
        diff(&paused, &host, &options, meta())
    );
}

mod invariants {
    use super::*;
    use ceso::manifest::Power;
    use proptest::prelude::*;

    /// Up to five VMs `vm-00`…, each with arbitrary cpu, memory, power, disks and protection,
    /// and whether it is suspended.
    fn arb_inventory() -> impl Strategy<Value = Vec<(ceso::desired::DesiredVm, bool)>> {
        prop::collection::vec(
            (
                1u32..4,
                1u64..8,
                any::<bool>(),
                1u64..4,
                any::<bool>(),
                any::<bool>(),
            ),
            0..5,
        )
        .prop_map(|vms| {
            vms.into_iter()
                .enumerate()
                .map(|(i, (cpu, memory, on, disk, protect, suspend))| {
                    let power = if on { Power::On } else { Power::Off };
                    let mut vm = desired_vm(&format!("vm-{i:02}"), cpu, memory, power);
                    vm.config.disks = vec![disk * 10 * GIB];
                    vm.config.protect = protect;
                    (vm, suspend)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the host holds, whatever is declared and whichever VMs (or the whole host)
        /// are suspended: no step acts on a suspended VM, applying the plan leaves each one
        /// exactly as it was, and the plan has changes only where active VMs differ.
        #[test]
        fn suspended_vms_are_never_touched(
            before in arb_inventory(),
            after in arb_inventory(),
            host_suspended in any::<bool>(),
            prune in any::<bool>(),
        ) {
            let fake = FakeHost::new(empty_host());
            let first = desired(before.into_iter().map(|(vm, _)| vm).collect(), false);
            apply_all(&fake, &plan(&first, &fake.observe_now(), false));

            let mut target = desired(after.iter().map(|(vm, _)| vm.clone()).collect(), prune);
            target.suspended.vms = after
                .iter()
                .filter(|(_, suspend)| *suspend)
                .map(|(vm, _)| vm.name.clone())
                .collect();
            if host_suspended {
                target.suspended.hosts.insert("esxi-01".to_owned());
            }
            let plan = plan(&target, &fake.observe_now(), prune);
            prop_assume!(!has_errors(&plan.diagnostics));
            let paused: Vec<String> = plan.suspended.iter().map(|s| s.change.address.clone()).collect();
            for step in &plan.steps {
                prop_assert!(!paused.contains(&step.resource), "{} acts on a suspended VM", step.description);
            }
            prop_assert!(plan.changes.iter().all(|c| !paused.contains(&c.address)));
            prop_assert_eq!(plan.summary.suspended, plan.suspended.len());
            if host_suspended {
                prop_assert!(plan.steps.is_empty() && !plan.has_changes());
            }

            let untouched = |state: &ceso::host::ObservedHost| {
                let mut vms: Vec<_> = state
                    .vms
                    .iter()
                    .filter(|vm| vm.managed_name().is_some_and(|name| {
                        paused.contains(&format!("VirtualMachine/{name}"))
                    }))
                    .cloned()
                    .collect();
                vms.sort_by(|a, b| a.moref.cmp(&b.moref));
                vms
            };
            let before_apply = untouched(&fake.observe_now());
            apply_all(&fake, &plan);
            prop_assert_eq!(untouched(&fake.observe_now()), before_apply);
            let again = common::plan(&target, &fake.observe_now(), prune);
            prop_assert!(!again.has_changes(), "{}", human(&again));
        }
    }
}
