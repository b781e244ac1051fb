//! The planner, specified without any host: what each situation plans, and the invariants that
//! hold for every inventory (convergence, determinism, unmanaged VMs untouched).

mod common;

use ceso::host::{APPLIED_KEY, HostOp, PowerState};
use ceso::manifest::Power;
use ceso::plan::{Action, render, stale_reasons};
use common::*;
use proptest::prelude::*;

fn actions(plan: &ceso::plan::Plan) -> Vec<(String, Action)> {
    plan.changes
        .iter()
        .map(|c| (c.name.clone(), c.action))
        .collect()
}

fn step_descriptions(plan: &ceso::plan::Plan) -> Vec<String> {
    plan.steps.iter().map(|s| s.description.clone()).collect()
}

/// Creates the desired VMs on a fresh fake host and returns it.
fn converged(desired: &ceso::desired::DesiredState) -> FakeHost {
    let fake = FakeHost::new(empty_host());
    let first = plan(desired, &fake.state.borrow(), false);
    apply_all(&fake, &first);
    fake
}

#[test]
fn an_empty_host_gets_every_declared_vm_created_then_powered_on() {
    let desired = desired(
        vec![
            desired_vm("web-01", 2, 4, Power::On),
            desired_vm("db-01", 4, 8, Power::Off),
        ],
        false,
    );
    let plan = plan(&desired, &empty_host(), false);
    assert_eq!(
        actions(&plan),
        vec![
            ("db-01".into(), Action::Create),
            ("web-01".into(), Action::Create)
        ]
    );
    assert_eq!(
        step_descriptions(&plan),
        vec!["create VM db-01", "create VM web-01", "power on web-01"]
    );
    assert_eq!(plan.steps[2].depends_on, vec![1]);
    assert_eq!(plan.summary.create, 2);
}

#[test]
fn a_converged_host_plans_no_changes() {
    let desired = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&desired);
    let again = plan(&desired, &fake.state.borrow(), false);
    assert!(
        !again.has_changes(),
        "{}",
        render::human(&again, render::Colour::Never)
    );
    assert!(again.steps.is_empty());
}

#[test]
fn a_cpu_change_of_a_running_vm_is_an_update_with_a_power_cycle() {
    let before = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&before);
    let after = desired(vec![desired_vm("web-01", 4, 4, Power::On)], false);
    let plan = plan(&after, &fake.state.borrow(), false);
    assert_eq!(actions(&plan), vec![("web-01".into(), Action::Update)]);
    let change = &plan.changes[0];
    assert!(change.power_cycle);
    let cpu = &change.fields[0];
    assert_eq!(
        (
            cpu.field.as_str(),
            cpu.before.as_deref(),
            cpu.after.as_deref()
        ),
        ("cpu", Some("2"), Some("4"))
    );
    assert!(cpu.requires_power_off && !cpu.drift);
    assert_eq!(
        step_descriptions(&plan),
        vec!["shut down web-01", "reconfigure web-01", "power on web-01"]
    );
}

#[test]
fn a_change_made_on_the_host_is_drift_and_is_corrected() {
    let desired = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&desired);
    {
        let mut state = fake.state.borrow_mut();
        state.vms[0].memory_mib = 8192; // someone changed it in the host client
        state.vms[0].power = Some(PowerState::PoweredOff);
    }
    let plan = plan(&desired, &fake.state.borrow(), false);
    let change = &plan.changes[0];
    assert_eq!(change.action, Action::Update);
    assert!(change.fields.iter().all(|f| f.drift), "{:?}", change.fields);
    assert!(!change.power_cycle, "the VM is already off");
    assert_eq!(
        step_descriptions(&plan),
        vec!["reconfigure web-01", "power on web-01"]
    );
    apply_all(&fake, &plan);
    assert!(!common::plan(&desired, &fake.state.borrow(), false).has_changes());
}

#[test]
fn a_vm_with_the_same_name_not_created_by_ceso_is_an_error_and_never_touched() {
    let mut host = empty_host();
    host.vms.push(unmanaged_vm("web-01", "7"));
    let plan = plan(
        &desired(vec![desired_vm("web-01", 2, 4, Power::On)], false),
        &host,
        false,
    );
    assert!(plan.steps.is_empty());
    assert!(
        plan.diagnostics
            .iter()
            .any(|d| d.is_error() && d.message.contains("not created by ceso"))
    );
    assert_eq!(plan.unmanaged.len(), 1);
}

#[test]
fn a_managed_vm_missing_from_the_manifests_is_deleted_only_with_prune() {
    let fake = converged(&desired(vec![desired_vm("old-01", 1, 1, Power::On)], false));
    let without = desired(vec![], false);
    let kept = plan(&without, &fake.state.borrow(), false);
    assert_eq!(actions(&kept), vec![("old-01".into(), Action::NoOp)]);
    assert!(kept.changes[0].notes[0].contains("--prune"));
    assert!(!kept.has_changes());

    let pruned = plan(&without, &fake.state.borrow(), true);
    assert_eq!(actions(&pruned), vec![("old-01".into(), Action::Delete)]);
    assert_eq!(step_descriptions(&pruned)[0], "shut down old-01");

    let pruned_by_manifest = plan(&desired(vec![], true), &fake.state.borrow(), false);
    assert_eq!(
        actions(&pruned_by_manifest),
        vec![("old-01".into(), Action::Delete)]
    );
}

#[test]
fn a_protected_vm_is_never_deleted_nor_replaced() {
    let mut vm = desired_vm("db-01", 4, 8, Power::On);
    vm.config.protect = true;
    let fake = converged(&desired(vec![vm.clone()], false));
    let pruned = plan(&desired(vec![], true), &fake.state.borrow(), true);
    assert_eq!(actions(&pruned), vec![("db-01".into(), Action::NoOp)]);
    assert!(pruned.steps.is_empty());
    assert!(pruned.changes[0].notes[0].contains("protected"));

    fake.state.borrow_mut().datastores.push("datastore2".into());
    vm.config.datastore = "datastore2".into(); // moving it means replacing it
    vm.datastore_declared = true;
    let moved = plan(&desired(vec![vm], false), &fake.state.borrow(), false);
    assert_eq!(moved.changes[0].action, Action::Replace);
    assert!(moved.steps.is_empty());
    assert!(
        moved
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.message.contains("protected"))
    );
}

#[test]
fn disks_never_shrink_and_are_never_deleted() {
    let mut vm = desired_vm("web-01", 2, 4, Power::On);
    vm.config.disks = vec![20 * GIB, 10 * GIB];
    let fake = converged(&desired(vec![vm.clone()], false));

    vm.config.disks = vec![10 * GIB, 10 * GIB];
    let shrink = plan(
        &desired(vec![vm.clone()], false),
        &fake.state.borrow(),
        false,
    );
    assert!(shrink.steps.is_empty());
    let messages: Vec<_> = shrink
        .diagnostics
        .iter()
        .map(|d| (d.field.clone().unwrap(), d.message.clone()))
        .collect();
    assert_eq!(
        messages,
        vec![(
            "spec.disks[0].size".to_owned(),
            "disk 0 is 20GiB on the host, the manifest says 10GiB: disks never shrink".to_owned()
        )]
    );

    vm.config.disks = vec![20 * GIB];
    let removed = plan(&desired(vec![vm], false), &fake.state.borrow(), false);
    assert!(removed.steps.is_empty());
    assert!(
        removed.diagnostics[0].message.contains("disk 1 of 10GiB"),
        "{:?}",
        removed.diagnostics
    );
    assert!(
        removed.diagnostics[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("ceso never deletes disks")
    );
}

#[test]
fn a_declared_datastore_change_replaces_an_unprotected_vm() {
    let mut vm = desired_vm("web-01", 2, 4, Power::On);
    let fake = converged(&desired(vec![vm.clone()], false));
    fake.state.borrow_mut().datastores.push("datastore2".into());
    vm.config.datastore = "datastore2".into();
    vm.datastore_declared = true;
    let plan = plan(
        &desired(vec![vm.clone()], false),
        &fake.state.borrow(),
        false,
    );
    assert_eq!(plan.changes[0].action, Action::Replace);
    assert!(plan.changes[0].fields[0].forces_replacement);
    assert_eq!(
        step_descriptions(&plan),
        [
            "shut down web-01",
            "destroy VM web-01 (101)",
            "create VM web-01",
            "power on web-01"
        ]
    );
    apply_all(&fake, &plan);
    assert!(!common::plan(&desired(vec![vm], false), &fake.state.borrow(), false).has_changes());
}

#[test]
fn changing_the_host_default_datastore_leaves_existing_vms_where_they_are() {
    let vm = desired_vm("web-01", 2, 4, Power::On);
    let fake = converged(&desired(vec![vm.clone()], false));
    let mut moved_default = desired(vec![vm], false);
    moved_default
        .vms
        .get_mut("web-01")
        .unwrap()
        .config
        .datastore = "datastore2".into();
    let plan = plan(&moved_default, &fake.state.borrow(), false);
    assert!(
        !plan.has_changes(),
        "{}",
        render::human(&plan, render::Colour::Never)
    );
}

#[test]
fn a_power_cycle_powers_the_vm_back_on_even_when_the_change_fails() {
    let before = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&before);
    let after = desired(vec![desired_vm("web-01", 4, 4, Power::On)], false);
    let plan = plan(&after, &fake.state.borrow(), false);
    let power_on = &plan.steps[2];
    assert_eq!(
        (
            power_on.depends_on.clone(),
            power_on.after.clone(),
            power_on.compensating
        ),
        (vec![0], vec![1], true)
    );

    let mut failing = FakeHost::new(fake.state.borrow().clone());
    failing.fail_reconfigure = true;
    let (report, events) = execute_plan(&failing, &plan, 4);
    assert_eq!(report.failed(), 1);
    assert!(
        events.contains(&"succeeded power on web-01".to_owned()),
        "{events:#?}"
    );
    assert_eq!(
        failing.state.borrow().vms[0].power,
        Some(PowerState::PoweredOn)
    );
}

#[test]
fn a_protect_marker_removed_on_the_host_is_put_back() {
    let mut vm = desired_vm("db-01", 1, 1, Power::On);
    vm.config.protect = true;
    let desired = desired(vec![vm], false);
    let fake = converged(&desired);
    fake.state.borrow_mut().vms[0]
        .extra_config
        .remove("ceso.protect");
    let plan = plan(&desired, &fake.state.borrow(), false);
    assert_eq!(step_descriptions(&plan), ["reconfigure db-01"]);
    assert!(plan.changes[0].fields[0].drift);
    apply_all(&fake, &plan);
    assert!(fake.state.borrow().vms[0].is_protected());
}

#[test]
fn a_suspended_vm_is_powered_off_before_a_change_that_needs_it() {
    let before = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&before);
    fake.state.borrow_mut().vms[0].power = Some(PowerState::Suspended);
    let plan = plan(
        &desired(vec![desired_vm("web-01", 4, 4, Power::On)], false),
        &fake.state.borrow(),
        false,
    );
    assert!(plan.changes[0].power_cycle);
    assert_eq!(
        step_descriptions(&plan),
        ["shut down web-01", "reconfigure web-01", "power on web-01"]
    );
}

#[test]
fn growing_disks_and_adding_adapters_happen_online() {
    let mut vm = desired_vm("web-01", 2, 4, Power::On);
    let fake = converged(&desired(vec![vm.clone()], false));
    vm.config.disks = vec![30 * GIB, 5 * GIB];
    vm.config.networks.push("Storage".into());
    let plan = plan(&desired(vec![vm], false), &fake.state.borrow(), false);
    assert!(!plan.changes[0].power_cycle);
    assert_eq!(step_descriptions(&plan), vec!["reconfigure web-01"]);
}

#[test]
fn unknown_datastores_and_port_groups_are_errors() {
    let mut vm = desired_vm("web-01", 2, 4, Power::On);
    vm.config.datastore = "nope".into();
    vm.config.networks = vec!["Lab".into()];
    let plan = plan(&desired(vec![vm], false), &empty_host(), false);
    let fields: Vec<_> = plan
        .diagnostics
        .iter()
        .filter_map(|d| d.field.clone())
        .collect();
    assert_eq!(fields, vec!["spec.datastore", "spec.networks[0].portGroup"]);
}

#[test]
fn the_applied_settings_are_recorded_on_the_vm() {
    let desired = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let plan = plan(&desired, &empty_host(), false);
    let HostOp::CreateVm { spec } = &plan.steps[0].op else {
        panic!("first step creates")
    };
    assert_eq!(spec.extra_config["ceso.managed"], "web-01");
    assert!(spec.extra_config[APPLIED_KEY].contains("\"cpu\":2"));
}

#[test]
fn plan_rendering_for_people() {
    let mut db = desired_vm("db-01", 4, 8, Power::On);
    db.config.protect = true;
    let before = desired(
        vec![
            desired_vm("web-01", 2, 4, Power::On),
            desired_vm("old-01", 1, 1, Power::On),
            db.clone(),
        ],
        false,
    );
    let fake = converged(&before);
    fake.state
        .borrow_mut()
        .vms
        .push(unmanaged_vm("legacy", "7"));
    fake.state
        .borrow_mut()
        .vms
        .iter_mut()
        .find(|v| v.name == "web-01")
        .unwrap()
        .power = Some(PowerState::PoweredOff);
    let mut web = desired_vm("web-01", 4, 6, Power::On);
    web.config.networks.push("Storage".into());
    let after = desired(vec![web, desired_vm("new-01", 1, 2, Power::Off), db], false);
    let plan = plan(&after, &fake.state.borrow(), true);
    insta::assert_snapshot!("plan_human", render::human(&plan, render::Colour::Never));
    insta::assert_snapshot!("plan_json", render::json(&plan));
}

#[test]
fn no_changes_rendering() {
    let desired = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&desired);
    let plan = plan(&desired, &fake.state.borrow(), false);
    insta::assert_snapshot!(
        "plan_no_changes",
        render::human(&plan, render::Colour::Never)
    );
}

fn arb_vm(index: usize) -> impl Strategy<Value = ceso::desired::DesiredVm> {
    (
        1u32..8,
        1u64..16,
        any::<bool>(),
        prop::collection::vec(1u64..64, 0..4),
        prop::collection::vec(any::<bool>(), 0..3),
        any::<bool>(),
    )
        .prop_map(move |(cpu, memory, on, disks, nics, protect)| {
            let mut vm = desired_vm(
                &format!("vm-{index:02}"),
                cpu,
                memory,
                if on { Power::On } else { Power::Off },
            );
            vm.config.disks = disks.into_iter().map(|g| g * GIB).collect();
            vm.config.networks = nics
                .into_iter()
                .map(|storage| if storage { "Storage" } else { "VM Network" }.to_owned())
                .collect();
            vm.config.protect = protect;
            vm
        })
}

fn arb_inventory() -> impl Strategy<Value = Vec<ceso::desired::DesiredVm>> {
    (0usize..6).prop_flat_map(|n| (0..n).map(arb_vm).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the host holds and whatever is declared, applying the plan converges: the next
    /// plan has no changes (unless a protected VM would need replacing, which is refused).
    #[test]
    fn applying_a_plan_converges(before in arb_inventory(), after in arb_inventory()) {
        let fake = converged(&desired(before, false));
        fake.state.borrow_mut().vms.push(unmanaged_vm("legacy", "7"));
        let target = desired(after, false);
        let plan = common::plan(&target, &fake.state.borrow(), true);
        prop_assume!(plan.diagnostics.is_empty());
        for change in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
            prop_assert!(plan.steps.iter().any(|s| s.resource == change.address), "{} has no step", change.address);
        }
        apply_all(&fake, &plan);
        let again = common::plan(&target, &fake.state.borrow(), true);
        prop_assert!(!again.has_changes(), "{}", render::human(&again, render::Colour::Never));
        // Unmanaged VMs are never touched.
        let legacy = fake.state.borrow().vms.iter().find(|v| v.name == "legacy").cloned();
        prop_assert_eq!(legacy, Some(unmanaged_vm("legacy", "7")));
    }

    /// The planner is deterministic: the same inputs give the same plan.
    #[test]
    fn planning_is_deterministic(before in arb_inventory(), after in arb_inventory()) {
        let fake = converged(&desired(before, false));
        let target = desired(after, false);
        let host = fake.state.borrow().clone();
        prop_assert_eq!(common::plan(&target, &host, true), common::plan(&target, &host, true));
    }
}

#[test]
fn a_power_change_ceso_did_not_finish_is_not_called_drift() {
    // Created, but the run ended before the power-on: the host says off, ceso never reached on.
    let desired = desired(vec![desired_vm("web-01", 1, 1, Power::On)], false);
    let first = plan(&desired, &empty_host(), false);
    let fake = FakeHost::new(empty_host());
    let HostOp::CreateVm { spec } = &first.steps[0].op else {
        panic!("create first")
    };
    fake.apply(&HostOp::CreateVm { spec: spec.clone() })
        .unwrap();
    let next = plan(&desired, &fake.state.borrow(), false);
    let power = &next.changes[0].fields[0];
    assert_eq!((power.field.as_str(), power.drift), ("power", false));

    // Powered on by ceso, then powered off in the host client: that is drift.
    apply_all(&fake, &next);
    fake.state.borrow_mut().vms[0].power = Some(PowerState::PoweredOff);
    let drifted = plan(&desired, &fake.state.borrow(), false);
    assert!(drifted.changes[0].fields[0].drift);
}

#[test]
fn a_saved_plan_goes_stale_only_when_a_vm_it_depends_on_changes() {
    let fake = converged(&desired(
        vec![
            desired_vm("web-01", 1, 1, Power::On),
            desired_vm("old-01", 1, 1, Power::On),
        ],
        false,
    ));
    let target = desired(vec![desired_vm("web-01", 2, 1, Power::On)], false);
    let saved = plan(&target, &fake.state.borrow(), false);
    let now = |host: &ceso::host::ObservedHost| observed(host.clone());
    assert!(stale_reasons(&saved, &now(&fake.state.borrow())).is_empty());

    // An unmanaged VM that happens to carry the name of the undeclared one is none of its business.
    fake.state
        .borrow_mut()
        .vms
        .push(unmanaged_vm("old-01", "77"));
    assert!(stale_reasons(&saved, &now(&fake.state.borrow())).is_empty());

    fake.state
        .borrow_mut()
        .vms
        .iter_mut()
        .find(|v| v.name == "web-01")
        .unwrap()
        .cpu = 3;
    assert_eq!(
        stale_reasons(&saved, &now(&fake.state.borrow())),
        ["VM web-01 on host esxi-01 changed since the plan was made: cpu 1 → 3"]
    );
}

#[test]
fn a_declared_on_vm_found_off_is_powered_on_even_when_its_change_fails() {
    let fake = converged(&desired(vec![desired_vm("web-01", 2, 4, Power::On)], false));
    fake.state.borrow_mut().vms[0].power = Some(PowerState::PoweredOff); // e.g. a run killed mid-cycle
    let plan = plan(
        &desired(vec![desired_vm("web-01", 4, 4, Power::On)], false),
        &fake.state.borrow(),
        false,
    );
    assert_eq!(
        step_descriptions(&plan),
        ["reconfigure web-01", "power on web-01"]
    );
    let mut failing = FakeHost::new(fake.state.borrow().clone());
    failing.fail_reconfigure = true;
    let (report, _) = execute_plan(&failing, &plan, 4);
    assert_eq!((report.failed(), report.succeeded()), (1, 1));
    assert_eq!(
        failing.state.borrow().vms[0].power,
        Some(PowerState::PoweredOn)
    );
}
