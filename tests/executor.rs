//! The executor against an in-memory host: dependency order, failures stopping only what
//! depends on them, and VMs created earlier in the run addressed by their new moref.

mod common;

use ceso::apply::StepOutcome;
use ceso::manifest::Power;
use common::*;

#[test]
fn a_failed_step_skips_its_dependents_and_independent_steps_go_on() {
    let desired = desired(
        vec![
            desired_vm("bad-01", 1, 1, Power::On),
            desired_vm("good-01", 1, 1, Power::On),
        ],
        false,
    );
    let plan = plan(&desired, &empty_host(), false);
    let mut fake = FakeHost::new(empty_host());
    fake.fail_on.insert("bad-01".into());
    let (report, events) = execute_plan(&fake, &plan, 1);
    assert_eq!(
        events,
        vec![
            "started create VM bad-01",
            "failed create VM bad-01: injected fault for bad-01",
            "skipped power on bad-01: step 0 (create VM bad-01) did not succeed",
            "started create VM good-01",
            "succeeded create VM good-01",
            "started power on good-01",
            "succeeded power on good-01",
        ]
    );
    assert_eq!(
        (report.succeeded(), report.failed(), report.skipped()),
        (2, 1, 1)
    );
    assert!(matches!(report.outcomes[&1], StepOutcome::Skipped(_)));
    let state = fake.state.borrow();
    assert_eq!(
        state
            .vms
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["good-01"]
    );
}

#[test]
fn steps_of_a_created_vm_address_it_by_the_moref_the_host_returned() {
    let desired = desired(vec![desired_vm("web-01", 1, 1, Power::On)], false);
    let plan = plan(&desired, &empty_host(), false);
    let fake = FakeHost::new(empty_host());
    let (report, _) = execute_plan(&fake, &plan, 4);
    assert!(report.is_success());
    let log = fake.log.borrow();
    assert!(log[1].contains("PowerOn { moref: Some(\"101\")"), "{log:?}");
}

#[test]
fn parallel_and_sequential_runs_reach_the_same_state() {
    let vms = (0..8)
        .map(|i| {
            desired_vm(
                &format!("vm-{i}"),
                1 + i,
                1,
                if i % 2 == 0 { Power::On } else { Power::Off },
            )
        })
        .collect();
    let desired = desired(vms, false);
    let plan = plan(&desired, &empty_host(), false);
    let (one, four) = (FakeHost::new(empty_host()), FakeHost::new(empty_host()));
    execute_plan(&one, &plan, 1);
    execute_plan(&four, &plan, 4);
    let names = |f: &FakeHost| {
        f.state
            .borrow()
            .vms
            .iter()
            .map(|v| (v.name.clone(), v.cpu, v.power))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&one), names(&four));
}

/// A host whose guests never report an address: every wait runs until it is abandoned.
struct SilentGuests(FakeHost);

impl ceso::host::Host for SilentGuests {
    type Error = FakeError;

    async fn observe(&self) -> Result<ceso::host::ObservedHost, FakeError> {
        Ok(self.0.observe_now())
    }

    async fn execute(&self, op: &ceso::host::HostOp) -> Result<ceso::host::OpOutcome, FakeError> {
        if op.is_read_only() {
            std::future::pending::<()>().await;
        }
        self.0.apply(op)
    }
}

#[test]
fn waits_for_guests_hold_no_slot_and_are_abandoned_when_the_run_stops() {
    let desired = desired(
        vec![
            desired_vm("web-01", 1, 1, Power::On),
            desired_vm("web-02", 1, 1, Power::On),
        ],
        false,
    );
    let mut plan = plan(&desired, &empty_host(), false);
    // A wait after each power-on, as the planner adds for VMs with static addresses.
    for power_on in [1, 3] {
        let step = plan.steps[power_on].clone();
        let id = plan.steps.len();
        plan.steps.push(ceso::plan::Step {
            id,
            description: format!("wait for {}", step.resource),
            depends_on: vec![power_on],
            after: vec![],
            compensating: false,
            op: ceso::host::HostOp::WaitForGuestIp {
                moref: None,
                vm: step
                    .resource
                    .trim_start_matches("VirtualMachine/")
                    .to_owned(),
                addresses: vec!["192.168.1.100".into()],
                timeout_secs: 300,
            },
            ..step
        });
    }
    let host = SilentGuests(FakeHost::new(empty_host()));
    let hosts = std::collections::BTreeMap::from([("esxi-01".to_owned(), &host)]);
    let hook = RecordingHook::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Parallelism 1: web-02 is created while web-01's wait runs; Ctrl-C comes later.
    let report = runtime.block_on(async {
        ceso::apply::execute(
            &plan,
            &hosts,
            1,
            &hook,
            tokio::time::sleep(std::time::Duration::from_millis(300)),
        )
        .await
    });
    assert_eq!(report.succeeded(), 4, "{:?}", hook.events.borrow());
    for wait in [4, 5] {
        assert_eq!(
            report.outcomes[&wait],
            StepOutcome::Failed(ceso::apply::STOPPED_WAITING.to_owned())
        );
    }
    assert!(report.was_interrupted());
    assert_eq!(host.0.observe_now().vms.len(), 2);
}
