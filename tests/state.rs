//! The state file, specified: one apply at a time, judged by the operating system (a lock that
//! dies with its process, SIGKILL included), and an audit log that says what each run changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ceso::manifest::Power;
use ceso::plan::{Action, FieldChange, ResourceChange};
use ceso::state::{
    LockHolder, RunRecord, RunStatus, StateError, StateStore, StepEvent, StepRecord,
    recorded_changes,
};
use common::*;

/// Tells this test binary, re-executed as a child, to take the apply lock of that state file.
const CHILD_STATE_ENV: &str = "CESO_TEST_LOCK_CHILD_STATE";
const CHILD_RUN: &str = "20261127T090000.000Z-child1";

struct State {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: StateStore,
}

fn state() -> State {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".ceso/state.redb");
    let store = StateStore::open(&path).unwrap();
    State {
        _dir: dir,
        path,
        store,
    }
}

fn holder(run_id: &str, pid: u32) -> LockHolder {
    LockHolder {
        run_id: run_id.into(),
        pid,
        hostname: "ci-runner".into(),
        os_user: "alice".into(),
        started_at: "2026-11-27T09:00:00.000Z".into(),
    }
}

/// The record an apply writes once it holds the lock.
/// The record `ceso apply` writes when it starts a run of a plan with two steps.
fn running(holder: &LockHolder) -> RunRecord {
    let two_steps = desired(vec![desired_vm("web-01", 1, 1, Power::On)], false);
    let plan = plan(&two_steps, &empty_host(), false);
    RunRecord::running(holder, &plan, "inventory")
}

fn run_started(run_id: &str, started_at: &str) -> RunRecord {
    let mut run = running(&holder(run_id, 1));
    run.started_at = started_at.into();
    run
}

fn lock_held_by(result: Result<impl std::fmt::Debug, StateError>) -> Option<LockHolder> {
    match result {
        Err(StateError::LockHeld { holder, .. }) => holder.map(|h| *h),
        other => panic!("expected the lock to be held, got {other:?}"),
    }
}

fn status_of(store: &StateStore, run_id: &str) -> RunStatus {
    store.run(run_id).unwrap().0.status
}

// --- the apply lock ---------------------------------------------------------------------------

#[test]
fn a_second_apply_is_refused_while_the_first_holds_the_lock_and_is_told_who_holds_it() {
    let s = state();
    let first = holder("run-1", 4242);
    let (_guard, stale) = s.store.acquire_apply_lock(&first).unwrap();
    assert_eq!(stale, None, "nobody held the lock before");

    let second = s.store.acquire_apply_lock(&holder("run-2", 4343));
    let error = second.as_ref().map(|_| ()).unwrap_err().to_string();
    assert_eq!(lock_held_by(second), Some(first));
    assert!(
        error.contains("another apply holds the lock")
            && error.contains("run run-1 by alice (pid 4242 on ci-runner)"),
        "{error}"
    );
}

#[test]
fn the_lock_is_held_in_the_os_for_as_long_as_the_guard_lives() {
    let s = state();
    assert!(!s.store.apply_lock_is_held(), "no apply has run yet");
    let (guard, _) = s.store.acquire_apply_lock(&holder("run-1", 1)).unwrap();
    assert!(s.store.apply_lock_is_held());
    assert_eq!(guard.run_id(), "run-1");
    assert_eq!(guard.path(), s.path.with_file_name("state.redb.lock"));
    assert!(guard.path().exists(), "the lock is a sidecar file");
    // Testing the lock does not disturb it.
    assert!(s.store.apply_lock_is_held());
    assert!(s.store.acquire_apply_lock(&holder("run-2", 2)).is_err());
    drop(guard);
    assert!(!s.store.apply_lock_is_held());
}

#[test]
fn a_released_lock_leaves_no_record_and_the_next_apply_takes_it_without_a_stale_holder() {
    let s = state();
    let first = holder("run-1", 1);
    let (guard, _) = s.store.acquire_apply_lock(&first).unwrap();
    assert_eq!(s.store.apply_lock_holder().unwrap(), Some(first));
    s.store.release_apply_lock(guard).unwrap();
    assert_eq!(s.store.apply_lock_holder().unwrap(), None);
    assert!(!s.store.apply_lock_is_held());

    let (_guard, stale) = s.store.acquire_apply_lock(&holder("run-2", 2)).unwrap();
    assert_eq!(stale, None);
}

#[test]
fn a_lock_dropped_without_release_is_taken_over_and_its_run_marked_interrupted() {
    let s = state();
    let killed = holder("run-1", 1);
    let (guard, _) = s.store.acquire_apply_lock(&killed).unwrap();
    s.store.save_run(&running(&killed)).unwrap();
    drop(guard); // what the kernel does when the process is killed: the record stays behind

    let next = holder("run-2", 2);
    let (_guard, stale) = s.store.acquire_apply_lock(&next).unwrap();
    assert_eq!(stale, Some(killed), "the stale holder is reported");
    assert_eq!(status_of(&s.store, "run-1"), RunStatus::Interrupted);
    assert_eq!(s.store.apply_lock_holder().unwrap(), Some(next));
}

#[test]
fn applies_racing_for_a_stale_lock_see_one_winner_and_are_told_its_name_not_the_stale_one() {
    let s = state();
    let (guard, _) = s.store.acquire_apply_lock(&holder("run-0", 1)).unwrap();
    drop(guard);

    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let racers: Vec<_> = (1..=8)
            .map(|i| {
                let store = &s.store;
                scope.spawn(move || {
                    let me = holder(&format!("run-{i}"), i);
                    (me.run_id.clone(), store.acquire_apply_lock(&me))
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });

    let mut winners = Vec::new();
    let mut named = Vec::new();
    for (run_id, outcome) in outcomes {
        match outcome {
            Ok((guard, stale)) => winners.push((run_id, stale.map(|h| h.run_id), guard)),
            Err(error) => named.push(lock_held_by(Err::<(), _>(error)).map(|h| h.run_id)),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one apply gets the lock");
    let (winner, stale, _guard) = &winners[0];
    assert_eq!(stale.as_deref(), Some("run-0"));
    assert_eq!(
        named,
        vec![Some(winner.clone()); 7],
        "the losers name the winner"
    );
}

#[test]
fn taking_over_a_stale_record_leaves_a_finished_run_as_it_ended() {
    let s = state();
    let crashed = holder("run-1", 1);
    let (guard, _) = s.store.acquire_apply_lock(&crashed).unwrap();
    let mut run = running(&crashed);
    run.status = RunStatus::Succeeded;
    run.finished_at = Some("2026-11-27T09:01:00.000Z".into());
    s.store.save_run(&run).unwrap();
    drop(guard); // died after finishing the run, before releasing

    let (_guard, stale) = s.store.acquire_apply_lock(&holder("run-2", 2)).unwrap();
    assert_eq!(stale.map(|h| h.run_id), Some("run-1".to_owned()));
    assert_eq!(status_of(&s.store, "run-1"), RunStatus::Succeeded);
}

#[test]
fn a_lock_held_by_a_process_that_wrote_no_record_is_reported_as_an_unknown_holder() {
    let s = state();
    let foreign = std::fs::File::create(s.path.with_file_name("state.redb.lock")).unwrap();
    foreign.lock().unwrap();

    let started = Instant::now();
    let result = s.store.acquire_apply_lock(&holder("run-1", 1));
    let waited = started.elapsed();
    let error = result.as_ref().map(|_| ()).unwrap_err().to_string();
    assert_eq!(lock_held_by(result), None);
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "waited {waited:?} for a record to appear"
    );
    assert!(error.contains("has not recorded who it is"), "{error}");
    assert!(s.store.apply_lock_is_held());

    drop(foreign);
    assert!(s.store.acquire_apply_lock(&holder("run-1", 1)).is_ok());
}

/// Kills the child (SIGKILL) if the test ends early.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-runs this test binary as a child process (selected by the environment) that takes the
/// apply lock, records its run, and waits to be killed with SIGKILL.
#[test]
fn a_lock_held_by_a_process_killed_with_sigkill_is_taken_over() {
    if let Some(path) = std::env::var_os(CHILD_STATE_ENV) {
        take_the_lock_and_wait(Path::new(&path));
        return;
    }
    let s = state();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_lock_held_by_a_process_killed_with_sigkill_is_taken_over",
            "--test-threads=1",
        ])
        .env(CHILD_STATE_ENV, &s.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let child_pid = child.0.id();

    // Wait until the child holds the lock and has recorded its run.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("the child ended before taking the lock: {status}");
        }
        let named = s.store.apply_lock_holder().unwrap();
        if s.store.apply_lock_is_held()
            && named.is_some_and(|h| h.run_id == CHILD_RUN)
            && s.store.run(CHILD_RUN).is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the child never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }

    let refused = s.store.acquire_apply_lock(&holder("parent-run", 1));
    let named = lock_held_by(refused).expect("the live child is named");
    assert_eq!((named.run_id.as_str(), named.pid), (CHILD_RUN, child_pid));

    child.0.kill().unwrap(); // SIGKILL: the child cannot release anything
    let status = child.0.wait().unwrap();
    assert!(!status.success());
    assert!(!s.store.apply_lock_is_held(), "the kernel released it");

    let (_guard, stale) = s
        .store
        .acquire_apply_lock(&holder("parent-run", 1))
        .unwrap();
    let stale = stale.expect("the killed child's record is reported");
    assert_eq!((stale.run_id.as_str(), stale.pid), (CHILD_RUN, child_pid));
    assert_eq!(status_of(&s.store, CHILD_RUN), RunStatus::Interrupted);
}

/// The child process's side: takes the apply lock like `ceso apply` does, records its run, and
/// waits to be killed.
fn take_the_lock_and_wait(path: &Path) {
    let store = StateStore::open(path).unwrap();
    let holder = holder(CHILD_RUN, std::process::id());
    let (_guard, _) = store.acquire_apply_lock(&holder).unwrap();
    store.save_run(&running(&holder)).unwrap();
    // Bounded, should the parent die without killing us.
    std::thread::sleep(Duration::from_secs(120));
}

// --- the audit log ----------------------------------------------------------------------------

fn change(address: &str, action: Action, fields: Vec<FieldChange>) -> ResourceChange {
    ResourceChange {
        address: address.into(),
        host: "esxi-01".into(),
        name: address.rsplit('/').next().unwrap().into(),
        action,
        fields,
        power_cycle: false,
        undeclared: false,
        notes: vec![],
    }
}

fn field(name: &str, before: Option<&str>, after: Option<&str>) -> FieldChange {
    FieldChange {
        field: name.into(),
        before: before.map(Into::into),
        after: after.map(Into::into),
        drift: false,
        requires_power_off: false,
        forces_replacement: false,
    }
}

/// A create of web-01 (cpu 2) and an update of db-01 (memory 2GiB → 4GiB).
fn create_and_update() -> Vec<ResourceChange> {
    vec![
        change(
            "VirtualMachine/web-01",
            Action::Create,
            vec![field("cpu", None, Some("2"))],
        ),
        change(
            "VirtualMachine/db-01",
            Action::Update,
            vec![field("memory", Some("2GiB"), Some("4GiB"))],
        ),
    ]
}

#[test]
fn a_run_records_what_it_changes_and_reads_back_with_its_steps() {
    let s = state();
    let mut run = run_started("run-1", "2026-11-27T09:00:00.000Z");
    run.changes = create_and_update();
    s.store.save_run(&run).unwrap();
    let started = StepRecord {
        step: 0,
        resource: "VirtualMachine/web-01".into(),
        host: "esxi-01".into(),
        description: "create web-01".into(),
        at: "2026-11-27T09:00:00.100Z".into(),
        event: StepEvent::Started,
    };
    let succeeded = StepRecord {
        at: "2026-11-27T09:00:02.100Z".into(),
        event: StepEvent::Succeeded { duration_ms: 2000 },
        ..started.clone()
    };
    s.store.append_step("run-1", &started).unwrap();
    s.store.append_step("run-1", &succeeded).unwrap();

    let (read, steps) = s.store.run("run-1").unwrap();
    assert_eq!(read, run);
    assert_eq!(steps, vec![started, succeeded]);
}

#[test]
fn a_run_started_from_a_plan_records_only_the_changes_that_do_something() {
    let existing = desired_vm("web-01", 2, 4, Power::On);
    let fake = FakeHost::new(empty_host());
    let only_existing = desired(vec![existing.clone()], false);
    let first = plan(&only_existing, &fake.state.borrow(), false);
    apply_all(&fake, &first);
    let desired = desired(vec![existing, desired_vm("web-02", 2, 4, Power::On)], false);
    let plan = plan(&desired, &fake.state.borrow(), false);
    assert!(plan.changes.iter().any(|c| c.action == Action::NoOp));

    let holder = holder("run-1", 7);
    let run = RunRecord::running(&holder, &plan, "inventory");
    let recorded: Vec<(&str, Action)> = run
        .changes
        .iter()
        .map(|c| (c.name.as_str(), c.action))
        .collect();
    assert_eq!(recorded, vec![("web-02", Action::Create)]);
    assert_eq!(run.changes, recorded_changes(&plan.changes));
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.steps_total, plan.steps.len());
    assert_eq!((run.plan_id, run.pid), (plan.plan_id, 7));
}

#[test]
fn runs_recorded_before_changes_were_kept_still_read() {
    let mut json = serde_json::to_value(run_started("old", "2026-01-01T00:00:00.000Z")).unwrap();
    json.as_object_mut().unwrap().remove("changes");
    let run: RunRecord = serde_json::from_value(json).unwrap();
    assert!(run.changes.is_empty());
}

#[test]
fn runs_are_listed_oldest_first_then_by_run_id() {
    let s = state();
    for run in [
        run_started("c", "2026-11-27T10:00:00.000Z"),
        run_started("z", "2026-11-27T09:00:00.500Z"),
        run_started("b", "2026-11-27T10:00:00.000Z"),
        run_started("a", "2026-11-28T00:00:00.000Z"),
        run_started("y", "2026-11-27T09:00:00.050Z"),
    ] {
        s.store.save_run(&run).unwrap();
    }
    let runs = s.store.runs().unwrap();
    let order: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(order, ["y", "z", "b", "c", "a"]);
}

// --- `ceso audit` -----------------------------------------------------------------------------

fn ceso_audit(state: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ceso"))
        .arg("audit")
        .args(args)
        .arg("--state")
        .arg(state)
        .env("NO_COLOR", "1")
        .env_remove("CESO_STATE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn listed_statuses(state: &Path) -> Vec<(String, String)> {
    let runs: serde_json::Value =
        serde_json::from_str(&ceso_audit(state, &["list", "--json"])).unwrap();
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn audit_shows_a_run_as_running_only_while_it_holds_the_lock() {
    let s = state();
    let dead = holder("run-1", 1);
    let (guard, _) = s.store.acquire_apply_lock(&dead).unwrap();
    s.store.save_run(&running(&dead)).unwrap();
    drop(guard); // killed; no apply has taken the lock since
    let live = holder("run-2", 2);
    let mut live_run = running(&live);
    live_run.started_at = "2026-11-27T09:05:00.000Z".into();
    s.store.save_run(&live_run).unwrap();

    let both_interrupted = listed_statuses(&s.path);
    assert_eq!(
        both_interrupted,
        [
            ("run-1".to_owned(), "interrupted".to_owned()),
            ("run-2".to_owned(), "interrupted".to_owned())
        ],
        "nobody holds the lock"
    );

    // Taking the lock over writes run-1's interruption for good; run-2 holds it now.
    let (guard, _) = s.store.acquire_apply_lock(&live).unwrap();
    assert_eq!(
        listed_statuses(&s.path),
        [
            ("run-1".to_owned(), "interrupted".to_owned()),
            ("run-2".to_owned(), "running".to_owned())
        ]
    );
    drop(guard);
}

#[test]
fn audit_show_tells_what_a_run_changed() {
    let s = state();
    let mut run = run_started("run-1", "2026-11-27T09:00:00.000Z");
    run.status = RunStatus::Succeeded;
    run.changes = create_and_update();
    run.changes
        .push(change("VirtualMachine/old-01", Action::Delete, vec![]));
    s.store.save_run(&run).unwrap();

    let shown = ceso_audit(&s.path, &["show", "run-1"]);
    for line in [
        "  changes:\n",
        "    + VirtualMachine/web-01 (host esxi-01)\n        cpu: (none) → 2\n",
        "    ~ VirtualMachine/db-01 (host esxi-01)\n        memory: 2GiB → 4GiB\n",
        "    - VirtualMachine/old-01 (host esxi-01)\n",
    ] {
        assert!(shown.contains(line), "{line:?} missing from:\n{shown}");
    }

    let json: serde_json::Value =
        serde_json::from_str(&ceso_audit(&s.path, &["show", "run-1", "--json"])).unwrap();
    let changes: Vec<ResourceChange> =
        serde_json::from_value(json["run"]["changes"].clone()).unwrap();
    assert_eq!(changes, run.changes);
}
