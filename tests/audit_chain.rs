//! The audit log's hash chain: an intact log verifies; a run record changed, a step event
//! removed, a chain entry changed, removed or two entries swapped, a run added behind ceso's
//! back, and a log cut back to before a kept head are each found and named, by the store and
//! by `ceso audit verify` (exit code 1). `ceso audit export` writes the entries as JSON lines.

use std::path::Path;
use std::process::Command;

use ceso::state::{RunRecord, RunStatus, StateStore, StepEvent, StepRecord};
use redb::{ReadableTable, TableDefinition};

const RUNS: TableDefinition<&str, &str> = TableDefinition::new("audit_runs");
const STEPS: TableDefinition<(&str, u64), &str> = TableDefinition::new("audit_steps");
const CHAIN: TableDefinition<u64, &str> = TableDefinition::new("audit_chain");

fn run(id: &str) -> RunRecord {
    RunRecord {
        run_id: id.to_owned(),
        plan_id: format!("plan-{id}"),
        started_at: "2026-11-27T09:00:00.000Z".to_owned(),
        finished_at: None,
        status: RunStatus::Running,
        os_user: "ops".to_owned(),
        hostname: "ops-01".to_owned(),
        pid: 42,
        source: "inventory".to_owned(),
        steps_total: 2,
        steps_succeeded: 0,
        steps_failed: 0,
        steps_skipped: 0,
        changes: vec![],
    }
}

fn step(n: usize, event: StepEvent) -> StepRecord {
    StepRecord {
        step: n,
        resource: "VirtualMachine/web-01".to_owned(),
        host: "esxi-01".to_owned(),
        description: format!("step {n}"),
        at: "2026-11-27T09:00:01.000Z".to_owned(),
        event,
    }
}

/// A state file with two finished runs of two step events each.
fn recorded(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("state.redb");
    let store = StateStore::open(&path).unwrap();
    for id in ["run-a", "run-b"] {
        let mut record = run(id);
        store.save_run(&record).unwrap();
        store.append_step(id, &step(0, StepEvent::Started)).unwrap();
        store
            .append_step(id, &step(0, StepEvent::Succeeded { duration_ms: 5 }))
            .unwrap();
        record.status = RunStatus::Succeeded;
        record.finished_at = Some("2026-11-27T09:00:02.000Z".to_owned());
        store.save_run(&record).unwrap();
    }
    path
}

/// Changes the state file behind ceso's back.
fn tamper(path: &Path, change: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::builder()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .create(path)
        .unwrap();
    let txn = db.begin_write().unwrap();
    change(&txn);
    txn.commit().unwrap();
}

fn problems(path: &Path) -> Vec<String> {
    StateStore::open(path)
        .unwrap()
        .verify_audit()
        .unwrap()
        .problems
}

fn ceso(path: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ceso"))
        .args(args)
        .env("CESO_STATE", path)
        .env_remove("CESO_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn an_intact_log_verifies_and_every_write_is_chained() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded(dir.path());
    let report = StateStore::open(&path).unwrap().verify_audit().unwrap();
    assert_eq!(report.problems, Vec::<String>::new());
    // Genesis, then per run: record, two steps, the updated record.
    assert_eq!(report.entries, 1 + 2 * 4);
    let output = ceso(&path, &["audit", "verify"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&report.head) && text.contains("intact"),
        "{text}"
    );
}

#[test]
fn a_changed_run_record_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded(dir.path());
    tamper(&path, |txn| {
        let mut runs = txn.open_table(RUNS).unwrap();
        let text = runs.get("run-a").unwrap().unwrap().value().to_owned();
        let forged = text.replace("\"ops\"", "\"someone-else\"");
        runs.insert("run-a", forged.as_str()).unwrap();
    });
    assert_eq!(
        problems(&path),
        ["run run-a differs from what was recorded (its record was changed)"]
    );
    let output = ceso(&path, &["audit", "verify"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not match its hash chain"));
}

#[test]
fn a_removed_step_event_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded(dir.path());
    tamper(&path, |txn| {
        txn.open_table(STEPS).unwrap().remove(("run-b", 1)).unwrap();
    });
    assert_eq!(
        problems(&path),
        ["step event 1 of run run-b was removed from the audit log"]
    );
}

#[test]
fn a_changed_removed_or_reordered_chain_entry_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let changed = recorded(&dir.path().join("changed"));
    tamper(&changed, |txn| {
        let mut chain = txn.open_table(CHAIN).unwrap();
        let text = chain.get(3).unwrap().unwrap().value().to_owned();
        chain
            .insert(3, text.replace("succeeded", "failed").as_str())
            .unwrap();
    });
    assert!(
        problems(&changed)
            .iter()
            .any(|p| p.contains("entry 3") && p.contains("was changed after it was written")),
        "{:?}",
        problems(&changed)
    );

    let removed = recorded(&dir.path().join("removed"));
    tamper(&removed, |txn| {
        txn.open_table(CHAIN).unwrap().remove(4).unwrap();
    });
    let found = problems(&removed);
    assert!(
        found.iter().any(|p| p.contains("missing or out of order")),
        "{found:?}"
    );

    let swapped = recorded(&dir.path().join("swapped"));
    tamper(&swapped, |txn| {
        let mut chain = txn.open_table(CHAIN).unwrap();
        let five = chain.get(5).unwrap().unwrap().value().to_owned();
        let six = chain.get(6).unwrap().unwrap().value().to_owned();
        chain.insert(5, six.as_str()).unwrap();
        chain.insert(6, five.as_str()).unwrap();
    });
    let found = problems(&swapped);
    assert!(
        found
            .iter()
            .any(|p| p.contains("does not follow the entry before it")),
        "{found:?}"
    );
}

#[test]
fn a_run_added_behind_cesos_back_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded(dir.path());
    tamper(&path, |txn| {
        let text = serde_json::to_string(&run("run-x")).unwrap();
        txn.open_table(RUNS)
            .unwrap()
            .insert("run-x", text.as_str())
            .unwrap();
    });
    assert_eq!(
        problems(&path),
        ["run run-x is not in the chain: it was added outside ceso"]
    );
}

#[test]
fn a_log_cut_back_before_a_kept_head_is_found_with_expect_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded(dir.path());
    let head = StateStore::open(&path)
        .unwrap()
        .verify_audit()
        .unwrap()
        .head;
    // Cut the last run off everywhere, consistently: the chain alone still links.
    tamper(&path, |txn| {
        let mut chain = txn.open_table(CHAIN).unwrap();
        for seq in 5..=8 {
            chain.remove(seq).unwrap();
        }
        txn.open_table(RUNS).unwrap().remove("run-b").unwrap();
        let mut steps = txn.open_table(STEPS).unwrap();
        steps.remove(("run-b", 0)).unwrap();
        steps.remove(("run-b", 1)).unwrap();
    });
    assert_eq!(problems(&path), Vec::<String>::new());
    let output = ceso(&path, &["audit", "verify", "--expect-head", &head]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("is not in the chain"), "{text}");
}

#[test]
fn export_writes_every_entry_as_a_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded(dir.path());
    let output = ceso(&path, &["audit", "export"]);
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[0]["kind"], "genesis");
    assert_eq!(lines[1]["record"]["run_id"], "run-a");
    assert_eq!(lines[2]["record"]["event"], "started");
    for pair in lines.windows(2) {
        assert_eq!(pair[1]["prev"], pair[0]["hash"]);
    }
}

#[test]
fn every_exported_hash_can_be_recomputed_from_its_line_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded(dir.path());
    let output = ceso(&path, &["audit", "export"]);
    assert!(output.status.success());
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = |field: &str| match &entry[field] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // The formula of docs/audit.md.
        let hashed = match text("kind").as_str() {
            "security" => format!(
                "{}\n{}\nsecurity\n{}\n{}",
                text("prev"),
                text("seq"),
                text("event"),
                text("record_text")
            ),
            kind => format!(
                "{}\n{}\n{kind}\n{}\n{}\n{}",
                text("prev"),
                text("seq"),
                text("run_id"),
                text("step_seq"),
                text("record_text")
            ),
        };
        let digest = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            hashed.as_bytes(),
        ));
        assert_eq!(digest, text("hash"), "{line}");
        let record: serde_json::Value = serde_json::from_str(&text("record_text")).unwrap();
        assert_eq!(record, entry["record"]);
    }
}
