//! End to end: `ceso watch` as a controller against the ESXi simulator. A saved manifest edit
//! reaches the host; drift made on the host is reported (report-only) and corrected
//! (`--apply`); an invalid edit does nothing and is reported; a due backup is taken; SIGTERM in
//! the middle of an apply lets the running step finish, releases the lock and exits 0, and the
//! next start converges. `ceso status` tells what the last reconcile did.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::inventory::Inventory;
use support::{Simulator, find_vm, list_vms, soap_query};

fn simulator() -> Simulator {
    Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(20)
        .start()
}

fn vm(name: &str, memory: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: 1\n  memory: {memory}\n  disks: [ {{ size: 8MiB }} ]\n  power: off\n  guestId: ubuntu64Guest\n{extra}"
    )
}

/// A running `ceso watch DIR --json ...` whose JSON events are collected as they come.
struct Watch {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Watch {
    fn start(inv: &Inventory, sim: &Simulator, extra: &[&str]) -> Watch {
        let path = inv.path().display().to_string();
        let mut args = vec!["watch", path.as_str(), "--json", "--debounce", "200ms"];
        args.extend_from_slice(extra);
        let mut child = inv
            .command(sim, &args)
            .env("CESO_LOG", std::env::var("WATCH_LOG").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "NOT JSON", "line": line }));
                sink.lock().unwrap().push(event);
            }
        });
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Watch {
            child,
            events,
            stderr,
        }
    }

    fn reconciles(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "reconcile")
            .cloned()
            .collect()
    }

    /// Waits for the `n`th reconcile (1 = the first) and returns it.
    #[track_caller]
    fn reconcile(&self, n: usize, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            if let Some(event) = self.reconciles().get(n - 1) {
                return event.clone();
            }
            assert!(
                start.elapsed() < limit,
                "no reconcile #{n} within {limit:?}; events:\n{:#?}\nstderr:\n{}",
                self.events.lock().unwrap(),
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit code; every line printed was a JSON object.
    fn terminate(&mut self) -> i32 {
        let events = self.events.lock().unwrap().clone();
        let not_json: Vec<&Value> = events.iter().filter(|e| e["event"] == "NOT JSON").collect();
        assert!(
            not_json.is_empty(),
            "lines on stdout that are not JSON: {not_json:#?}"
        );
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "watch did not stop after SIGTERM; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_saved_manifest_edit_reaches_the_host_within_seconds() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", ""));
    let mut watch = Watch::start(&inv, &sim, &["--apply", "--interval", "1h"]);
    let first = watch.reconcile(1, Duration::from_secs(60));
    assert_eq!(first["reason"], "start");
    assert_eq!(first["result"], "applied", "{first:#}");
    assert_eq!(find_vm(&sim, "web-01").unwrap().memory_mb, 256);

    let saved = Instant::now();
    inv.set_vms(&vm("web-01", "512MiB", ""));
    let second = watch.reconcile(2, Duration::from_secs(30));
    let reached = saved.elapsed();
    assert_eq!(second["reason"], "manifest changed: vms.yaml");
    assert_eq!(second["result"], "applied", "{second:#}");
    assert_eq!(find_vm(&sim, "web-01").unwrap().memory_mb, 512);
    assert!(
        reached < Duration::from_secs(15),
        "took {reached:?} (docs/benchmarks.md measures this properly)"
    );

    // The apply is in the audit log with the reason; status shows the reconcile.
    let runs = inv.ceso(&sim, &["audit", "list", "--json"]).json();
    let last = runs.as_array().unwrap().last().unwrap().clone();
    assert!(
        last["source"]
            .as_str()
            .unwrap()
            .ends_with("(manifest changed: vms.yaml)"),
        "{last:#}"
    );
    assert_eq!(second["run_id"], last["run_id"]);
    let status = inv.ceso(&sim, &["status", "DIR", "--json"]);
    status.expect(0);
    let status = status.json();
    assert_eq!(status["watcher"]["mode"], "apply", "{status:#}");
    assert_eq!(status["last_reconcile"]["result"], "applied", "{status:#}");
    assert_eq!(watch.terminate(), 0, "{}", watch.stderr());
    let status = inv.ceso(&sim, &["status", "DIR", "--json"]).json();
    assert!(status["watcher"].is_null(), "{status:#}");
}

fn set_memory_behind_cesos_back(sim: &Simulator, moref: &str, mb: u64) {
    let body = format!(
        r#"<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">{moref}</_this><spec><memoryMB>{mb}</memoryMB></spec></ReconfigVM_Task>"#
    );
    let answer = soap_query(sim, &body);
    assert!(answer.contains("returnval"), "{answer}");
}

#[test]
fn drift_is_reported_without_apply_and_corrected_with_it() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let web = find_vm(&sim, "web-01").unwrap();

    // Report-only: the drift check finds the change and leaves it.
    let mut watch = Watch::start(&inv, &sim, &["--interval", "1s"]);
    assert_eq!(
        watch.reconcile(1, Duration::from_secs(30))["result"],
        "in_sync"
    );
    set_memory_behind_cesos_back(&sim, &web.moref, 1024);
    let start = Instant::now();
    let drift = loop {
        let last = watch.reconciles().last().cloned().unwrap();
        if last["result"] == "changes_pending" {
            break last;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{last:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(drift["reason"], "drift check");
    assert_eq!(drift["pending"][0]["address"], "VirtualMachine/web-01");
    let fields = drift["pending"][0]["fields"].to_string();
    assert!(
        fields.contains("memory") && fields.contains("(drift)"),
        "{fields}"
    );
    assert_eq!(
        find_vm(&sim, "web-01").unwrap().memory_mb,
        1024,
        "not corrected"
    );
    let status = inv.ceso(&sim, &["status", "DIR", "--json"]).json();
    assert_eq!(status["last_reconcile"]["result"], "changes_pending");
    assert_eq!(status["pending"][0]["address"], "VirtualMachine/web-01");
    assert_eq!(watch.terminate(), 0);

    // With --apply the same drift is corrected.
    let mut watch = Watch::start(&inv, &sim, &["--apply", "--interval", "1h"]);
    let corrected = watch.reconcile(1, Duration::from_secs(60));
    assert_eq!(corrected["result"], "applied", "{corrected:#}");
    assert_eq!(find_vm(&sim, "web-01").unwrap().memory_mb, 256);
    assert_eq!(watch.terminate(), 0);
}

#[test]
fn an_invalid_edit_does_nothing_and_is_reported_and_the_last_good_state_is_kept() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", ""));
    let mut watch = Watch::start(&inv, &sim, &["--apply", "--interval", "2s"]);
    assert_eq!(
        watch.reconcile(1, Duration::from_secs(60))["result"],
        "applied"
    );
    let calls_before = sim.method_count("ReconfigVM_Task");

    inv.set_vms(&vm("web-01", "lots", ""));
    let invalid = watch.reconcile(2, Duration::from_secs(30));
    assert_eq!(invalid["result"], "invalid_manifests", "{invalid:#}");
    let diagnostics = watch
        .events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "diagnostics")
        .cloned()
        .expect("the problems are reported");
    let text = diagnostics.to_string();
    assert!(
        text.contains("vms.yaml") && text.contains("memory"),
        "{text}"
    );
    // The next drift check keeps checking against the last valid manifests: still in sync,
    // nothing changed on the host.
    let next = watch.reconcile(3, Duration::from_secs(30));
    assert_eq!(next["reason"], "drift check");
    assert_eq!(next["result"], "in_sync", "{next:#}");
    assert!(
        next["message"]
            .as_str()
            .unwrap()
            .contains("checked against the last valid manifests"),
        "{next:#}"
    );
    assert_eq!(sim.method_count("ReconfigVM_Task"), calls_before);
    assert_eq!(find_vm(&sim, "web-01").unwrap().memory_mb, 256);
    let history = inv
        .ceso(&sim, &["status", "DIR", "--json", "--history", "5"])
        .json();
    let results: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert!(results.contains(&"invalid_manifests"), "{history:#}");

    // Fixed, it applies.
    inv.set_vms(&vm("web-01", "384MiB", ""));
    let start = Instant::now();
    while find_vm(&sim, "web-01").unwrap().memory_mb != 384 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            watch.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(watch.terminate(), 0);
}

#[test]
fn a_due_backup_is_taken_and_status_shows_the_next_one() {
    let sim = simulator();
    let policy = "---\napiVersion: ceso/v1\nkind: BackupPolicy\nmetadata: { name: nightly }\nspec:\n  schedule: { cron: \"30 2 * * *\" }\n  retention: { keepLast: 3 }\n  target: { directory: { path: ../backups } }\n";
    let inv = Inventory::new(
        &sim,
        &format!(
            "{policy}{}",
            vm("db-01", "256MiB", "  backupPolicy: nightly\n")
        ),
    );
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    // Report-only mode takes backups too (they change nothing the manifests declare).
    let mut watch = Watch::start(&inv, &sim, &["--interval", "1h"]);
    let first = watch.reconcile(1, Duration::from_secs(120));
    assert_eq!(first["result"], "in_sync", "{first:#}");
    let backup = &first["backups"][0];
    assert_eq!(backup["vm"], "db-01");
    assert!(backup["id"].is_string(), "{first:#}");
    assert_eq!(first["next_backup"]["vm"], "db-01");
    let listed = inv
        .ceso(&sim, &["backup", "list", "--inventory", "DIR", "--json"])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["id"], backup["id"]);
    let status = inv.ceso(&sim, &["status", "DIR", "--json"]).json();
    assert_eq!(status["next_backups"][0]["vm"], "db-01", "{status:#}");
    assert_eq!(watch.terminate(), 0);

    // Restarted, nothing is due any more: no second backup.
    let mut watch = Watch::start(&inv, &sim, &["--interval", "1h"]);
    let again = watch.reconcile(1, Duration::from_secs(60));
    assert!(
        again["backups"].as_array().is_none_or(Vec::is_empty),
        "{again:#}"
    );
    assert_eq!(watch.terminate(), 0);
}

#[test]
fn sigterm_mid_apply_finishes_the_step_releases_the_lock_and_a_restart_converges() {
    let sim = Simulator::builder()
        .method_delay("CreateVM_Task", 1500)
        .start();
    let names: Vec<String> = (1..=4).map(|i| format!("vm-{i:02}")).collect();
    let manifests: String = names.iter().map(|n| vm(n, "256MiB", "")).collect();
    let inv = Inventory::new(&sim, &manifests);
    let mut watch = Watch::start(
        &inv,
        &sim,
        &["--apply", "--parallelism", "1", "--interval", "1h"],
    );
    support::inventory::wait_for(Duration::from_secs(60), || {
        sim.method_count("CreateVM_Task") >= 1
    });
    assert_eq!(watch.terminate(), 0, "{}", watch.stderr());
    let stopped = watch.reconcile(1, Duration::from_secs(5));
    assert_eq!(stopped["result"], "interrupted", "{stopped:#}");
    let created = list_vms(&sim).len();
    assert!(created >= 1 && created < names.len(), "{created} VMs");
    let runs = inv.ceso(&sim, &["audit", "list", "--json"]).json();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:#}");
    assert!(
        !inv.ceso(&sim, &["audit", "list"])
            .stdout()
            .contains("held by"),
        "the apply lock was released"
    );

    let mut watch = Watch::start(&inv, &sim, &["--apply", "--interval", "1h"]);
    let converged = watch.reconcile(1, Duration::from_secs(60));
    assert_eq!(converged["result"], "applied", "{converged:#}");
    for name in &names {
        let copies = list_vms(&sim)
            .into_iter()
            .filter(|v| &v.name == name)
            .count();
        assert_eq!(copies, 1, "{name} exists exactly once");
    }
    assert_eq!(watch.terminate(), 0);
    inv.ceso(&sim, &["plan", "DIR"]).expect(0);
}

#[test]
fn a_second_watch_on_the_same_state_file_is_refused() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", ""));
    let mut watch = Watch::start(&inv, &sim, &["--interval", "1h"]);
    watch.reconcile(1, Duration::from_secs(60));
    let second = inv.ceso(&sim, &["watch", "DIR"]);
    second.expect(1);
    assert!(
        second
            .stderr()
            .contains("another `ceso watch` uses the state file"),
        "{}",
        second.stderr()
    );
    assert!(
        second
            .stderr()
            .contains(&format!("pid {}", watch.child.id()))
    );
    assert_eq!(watch.terminate(), 0);
}

#[test]
fn a_suspended_vm_is_left_alone_by_watch_and_its_drift_reported() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    let web = find_vm(&sim, "web-01").unwrap();
    inv.set_vms(&vm("web-01", "256MiB", "  suspend: true\n"));
    set_memory_behind_cesos_back(&sim, &web.moref, 1024);

    let mut watch = Watch::start(&inv, &sim, &["--apply", "--interval", "1h"]);
    let first = watch.reconcile(1, Duration::from_secs(60));
    assert_eq!(first["result"], "in_sync", "{first:#}");
    assert_eq!(first["suspended"][0]["address"], "VirtualMachine/web-01");
    assert!(first["message"].as_str().unwrap().contains("left alone"));
    assert_eq!(find_vm(&sim, "web-01").unwrap().memory_mb, 1024);
    let status = inv.ceso(&sim, &["status", "DIR"]);
    assert!(
        status.stdout().contains("Suspended: 1 resource(s)"),
        "{}",
        status.stdout()
    );

    // Resumed, the drift is corrected.
    inv.set_vms(&vm("web-01", "256MiB", ""));
    let resumed = watch.reconcile(2, Duration::from_secs(30));
    assert_eq!(resumed["result"], "applied", "{resumed:#}");
    assert_eq!(find_vm(&sim, "web-01").unwrap().memory_mb, 256);
    assert_eq!(watch.terminate(), 0);
}

#[test]
fn a_failed_reconcile_is_retried_after_a_delay_and_then_succeeds() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", ""));
    // The host refuses to create the VM once: the first reconcile fails, the retry applies.
    sim.inject_fault("CreateVM_Task=task:FileFault*1");
    let mut watch = Watch::start(&inv, &sim, &["--apply", "--interval", "1h"]);
    let failed = watch.reconcile(1, Duration::from_secs(60));
    assert_eq!(failed["result"], "failed", "{failed:#}");
    assert!(
        failed["run_id"].is_string(),
        "the failed apply is audited: {failed:#}"
    );
    let retried = watch.reconcile(2, Duration::from_secs(30));
    assert_eq!(retried["reason"], "retry (try 2) after an error");
    assert_eq!(retried["result"], "applied", "{retried:#}");
    assert!(find_vm(&sim, "web-01").is_some());
    let history = inv
        .ceso(&sim, &["status", "DIR", "--json", "--history", "2"])
        .json();
    let results: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["failed", "applied"]);
    assert_eq!(watch.terminate(), 0);
}

#[test]
fn a_change_that_keeps_failing_is_tried_three_times_then_only_reported() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", ""));
    inv.ceso(&sim, &["apply", "DIR", "--auto-approve"])
        .expect(0);
    sim.inject_fault("ReconfigVM_Task=task:FileFault*100");
    inv.set_vms(&vm("web-01", "512MiB", ""));
    let mut watch = Watch::start(&inv, &sim, &["--apply", "--interval", "2s"]);
    for n in 1..=3 {
        let failed = watch.reconcile(n, Duration::from_secs(30));
        assert_eq!(failed["result"], "failed", "#{n}: {failed:#}");
        let message = failed["message"].as_str().unwrap();
        assert!(
            message.contains("VirtualMachine/web-01") && message.contains("FileFault"),
            "the failed step and its fault are named: {message}"
        );
    }
    let calls = sim.method_count("ReconfigVM_Task");
    let held = watch.reconcile(4, Duration::from_secs(30));
    assert_eq!(held["result"], "changes_pending", "{held:#}");
    assert!(
        held["message"]
            .as_str()
            .unwrap()
            .contains("not applied again"),
        "{held:#}"
    );
    watch.reconcile(5, Duration::from_secs(30));
    assert_eq!(
        sim.method_count("ReconfigVM_Task"),
        calls,
        "no further attempts"
    );
    assert_eq!(watch.terminate(), 0);
}

#[test]
fn plan_errors_are_reported_once_and_not_retried() {
    let sim = simulator();
    let extra = "  networks: [ { portGroup: No Such Network } ]\n";
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", extra));
    let mut watch = Watch::start(&inv, &sim, &["--apply", "--interval", "1s"]);
    let first = watch.reconcile(1, Duration::from_secs(60));
    assert_eq!(first["result"], "plan_errors", "{first:#}");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("No Such Network"),
        "{first:#}"
    );
    let second = watch.reconcile(2, Duration::from_secs(30));
    assert_eq!(
        second["reason"], "drift check",
        "plan errors wait, they are not retried"
    );
    assert_eq!(second["result"], "plan_errors");
    let shown = watch
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "diagnostics")
        .count();
    assert_eq!(shown, 1, "the same errors are shown once");
    assert!(find_vm(&sim, "web-01").is_none());
    assert_eq!(watch.terminate(), 0);
}

#[test]
fn an_emptied_manifest_file_is_not_taken_for_a_removal_by_prune() {
    let sim = simulator();
    let inv = Inventory::new(&sim, &vm("web-01", "256MiB", ""));
    let mut watch = Watch::start(&inv, &sim, &["--apply", "--prune", "--interval", "1h"]);
    assert_eq!(
        watch.reconcile(1, Duration::from_secs(60))["result"],
        "applied"
    );
    // A save cut short: the file is there, but empty.
    inv.set_vms("");
    let emptied = watch.reconcile(2, Duration::from_secs(30));
    assert_eq!(emptied["result"], "invalid_manifests", "{emptied:#}");
    assert!(
        emptied["message"]
            .as_str()
            .unwrap()
            .contains("remove the file"),
        "{emptied:#}"
    );
    assert!(find_vm(&sim, "web-01").is_some(), "not pruned");
    // Removing the file is a removal: pruned.
    std::fs::remove_file(inv.path().join("vms.yaml")).unwrap();
    let pruned = watch.reconcile(3, Duration::from_secs(30));
    assert_eq!(pruned["result"], "applied", "{pruned:#}");
    assert!(find_vm(&sim, "web-01").is_none());
    assert_eq!(watch.terminate(), 0);
}
