//! The planner for the VM lifecycle: hot-add, annotations, and how VMs are powered off.

mod common;

use ceso::manifest::Power;
use ceso::plan::Action;
use common::*;

/// Creates the desired VMs on a fresh fake host and returns it.
fn converged(desired: &ceso::desired::DesiredState) -> FakeHost {
    let fake = FakeHost::new(empty_host());
    apply_all(&fake, &plan(desired, &fake.observe_now(), false));
    fake
}

fn step_descriptions(plan: &ceso::plan::Plan) -> Vec<String> {
    plan.steps.iter().map(|s| s.description.clone()).collect()
}

#[test]
fn with_hot_add_more_cpu_and_memory_need_no_restart_but_less_does() {
    let before = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&before);
    {
        let mut state = fake.state.borrow_mut();
        state.vms[0].cpu_hot_add = true;
        state.vms[0].memory_hot_add = true;
    }
    let more = desired(vec![desired_vm("web-01", 4, 8, Power::On)], false);
    let plan_more = plan(&more, &fake.observe_now(), false);
    let change = &plan_more.changes[0];
    assert_eq!(change.action, Action::Update);
    assert!(!change.power_cycle, "{:?}", change.fields);
    assert!(change.fields.iter().all(|f| !f.requires_power_off));
    assert_eq!(step_descriptions(&plan_more), ["reconfigure web-01"]);
    apply_all(&fake, &plan_more);

    let less = desired(vec![desired_vm("web-01", 2, 8, Power::On)], false);
    let plan_less = plan(&less, &fake.observe_now(), false);
    assert!(
        plan_less.changes[0].power_cycle,
        "CPUs are never removed hot"
    );
}

#[test]
fn without_hot_add_more_cpu_needs_a_restart() {
    let before = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&before);
    let more = desired(vec![desired_vm("web-01", 4, 4, Power::On)], false);
    assert!(plan(&more, &fake.observe_now(), false).changes[0].power_cycle);
}

#[test]
fn an_annotation_is_set_online_and_kept_against_drift() {
    let mut vm = desired_vm("web-01", 2, 4, Power::On);
    vm.config.annotation = Some("owner: web team".into());
    let desired = desired(vec![vm], false);
    let fake = converged(&desired);
    assert_eq!(fake.observe_now().vms[0].annotation, "owner: web team");
    fake.state.borrow_mut().vms[0].annotation = "edited by hand".into();
    let plan = plan(&desired, &fake.observe_now(), false);
    let change = &plan.changes[0];
    assert!(!change.power_cycle);
    let field = &change.fields[0];
    assert_eq!(
        (
            field.field.as_str(),
            field.before.as_deref(),
            field.after.as_deref(),
            field.drift
        ),
        (
            "annotation",
            Some("edited by hand"),
            Some("owner: web team"),
            true
        )
    );
    apply_all(&fake, &plan);
    assert!(!common::plan(&desired, &fake.observe_now(), false).has_changes());
}

#[test]
fn without_an_annotation_in_the_manifest_the_notes_are_left_alone() {
    let desired = desired(vec![desired_vm("web-01", 2, 4, Power::On)], false);
    let fake = converged(&desired);
    fake.state.borrow_mut().vms[0].annotation = "written in the host client".into();
    assert!(!plan(&desired, &fake.observe_now(), false).has_changes());
}
