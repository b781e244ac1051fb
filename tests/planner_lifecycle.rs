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

fn clone_of(name: &str, source: &str) -> ceso::desired::DesiredVm {
    let mut vm = desired_vm(name, 0, 0, Power::On);
    vm.config.memory_mib = 0;
    vm.config.guest_id = String::new();
    vm.config.disks = vec![];
    vm.config.source = Some(source.into());
    vm
}

#[test]
fn a_clone_copies_every_disk_of_its_source_and_inherits_its_hardware() {
    let source = desired_vm("web-01", 2, 4, Power::On);
    let fake = converged(&desired(vec![source.clone()], false));
    let both = desired(vec![source, clone_of("web-02", "web-01")], false);
    let plan = plan(&both, &fake.observe_now(), false);
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let spec = plan
        .steps
        .iter()
        .find_map(|s| match &s.op {
            ceso::host::HostOp::CreateVm { spec } => Some(spec.clone()),
            _ => None,
        })
        .expect("a create");
    assert_eq!(
        (spec.name.as_str(), spec.cpu, spec.memory_mib),
        ("web-02", 2, 4096)
    );
    assert_eq!(spec.disks, vec![20 * GIB]);
    let source = spec.clone_from.expect("cloned");
    assert_eq!(source.vm, "web-01");
    assert!(source.running, "copied from a snapshot");
    assert_eq!(
        source.disks,
        vec!["[datastore1] web-01/web-01_0.vmdk".to_owned()]
    );
    assert!(spec.template_disk.is_none());
    let change = plan.changes.iter().find(|c| c.name == "web-02").unwrap();
    assert!(
        change.fields[0]
            .after
            .as_deref()
            .unwrap()
            .contains("snapshot")
    );
    apply_all(&fake, &plan);
    assert!(!common::plan(&both, &fake.observe_now(), false).has_changes());
}

#[test]
fn a_clone_without_its_source_on_the_host_is_an_error() {
    let plan = plan(
        &desired(vec![clone_of("web-02", "nowhere")], false),
        &empty_host(),
        false,
    );
    assert_eq!(plan.diagnostics.len(), 1);
    assert_eq!(plan.diagnostics[0].field.as_deref(), Some("spec.source.vm"));
    assert!(plan.steps.is_empty());
}

#[test]
fn a_snapshot_left_by_an_interrupted_clone_is_removed() {
    let mut host = empty_host();
    let mut legacy = unmanaged_vm("legacy", "7");
    legacy.snapshots = vec![
        ceso::host::ObservedSnapshot {
            moref: "snapshot-1".into(),
            name: "before upgrade".into(),
        },
        ceso::host::ObservedSnapshot {
            moref: "snapshot-2".into(),
            name: "ceso-clone-web-09".into(),
        },
    ];
    host.vms.push(legacy);
    let plan = plan(&desired(vec![], false), &host, false);
    assert_eq!(
        step_descriptions(&plan),
        ["remove snapshot ceso-clone-web-09 of legacy"],
        "only ceso's own snapshot"
    );
    assert!(ceso::plan::structure_problems(&plan).is_empty());
}

#[test]
fn work_on_a_clone_source_is_one_step_at_a_time() {
    let mut source = desired_vm("web-01", 2, 4, Power::On);
    let fake = converged(&desired(vec![source.clone()], false));
    let mut legacy_snapshot = fake.observe_now();
    legacy_snapshot.vms[0].snapshots = vec![ceso::host::ObservedSnapshot {
        moref: "snapshot-9".into(),
        name: "ceso-clone-old".into(),
    }];
    source.config.cpu = 3; // the source itself is reconfigured in the same plan
    let all = desired(
        vec![
            source,
            clone_of("web-02", "web-01"),
            clone_of("web-03", "web-01"),
        ],
        false,
    );
    let plan = plan(&all, &legacy_snapshot, false);
    let id = |description: &str| {
        plan.steps
            .iter()
            .find(|s| s.description == description)
            .unwrap_or_else(|| panic!("{description}: {:?}", step_descriptions(&plan)))
            .id
    };
    let removal = id("remove snapshot ceso-clone-old of web-01");
    assert_eq!(removal, 0, "first");
    let clone_02 = &plan.steps[id("create VM web-02")];
    let clone_03 = &plan.steps[id("create VM web-03")];
    assert!(clone_02.after.contains(&removal), "{:?}", clone_02.after);
    assert!(
        clone_03.after.contains(&clone_02.id),
        "{:?}",
        clone_03.after
    );
    // Whatever order the names give, the source's own steps and its clones never overlap.
    for step in plan
        .steps
        .iter()
        .filter(|s| s.resource == "VirtualMachine/web-01")
    {
        let before = step.id < clone_02.id;
        let ordered = if before {
            clone_02.after.contains(&step.id)
        } else {
            step.after.contains(&clone_02.id)
        };
        assert!(ordered, "{} vs create VM web-02", step.description);
    }
}
