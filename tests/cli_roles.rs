//! The AI agent sandbox: the OS user `ceso-agent` is restricted by `/etc/ceso/profiles.yaml`
//! (tests/fixtures/roles/profiles.yaml); root is standard and approves with the test key. The
//! real binary runs as the agent (setpriv) and approves at a pseudo-terminal (script).
//!
//! Restricted reads and plans but every change is refused and audited; no variable, flag, home
//! directory or configuration file widens the role; approvals forged, altered, copied onto
//! another request or into another state file, expired, ended or revoked are refused; approving
//! needs the standard role and a terminal; an approved promotion lets the agent apply, audited
//! with the promotion, until it ends or expires. The audit log verifies after all of it.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ceso::access::promotion::{Approver, ApproverKeyPair, approve};
use ceso::state::{PromotionStatus, SecurityEventKind, StateStore};
use redb::{ReadableTable, TableDefinition};
use serde_json::Value;
use support::inventory::Inventory;
use support::roles::{self, Agent, Workdir};
use support::{Simulator, find_vm};

const PROMOTIONS: TableDefinition<&str, &str> = TableDefinition::new("promotions");

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn expect(output: &Output, code: i32) -> &Output {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout(output),
        stderr(output)
    );
    output
}

#[track_caller]
fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(output), stderr(output)))
}

/// A refusal: exit 1, "refused" and the promotion hint on stderr.
#[track_caller]
fn refused(output: &Output) -> String {
    expect(output, 1);
    let text = stderr(output);
    assert!(text.contains("refused"), "{text}");
    text
}

fn vm(name: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: 1\n  memory: 1GiB\n  disks: [ {{ size: 1GiB }} ]\n  power: off\n  guestId: ubuntu64Guest\n"
    )
}

/// An inventory with one VM to create, in a directory that belongs to the agent.
fn agent_inventory(sim: &Simulator, vms: &str) -> Inventory {
    let inventory = Inventory::new(sim, vms);
    roles::give_to_agent(inventory.dir.path());
    inventory
}

/// `ceso ARGS` as the agent on `inventory` (`DIR` is the inventory's path).
fn agent_on(agent: &Agent, sim: &Simulator, inventory: &Inventory, args: &[&str]) -> Output {
    let path = inventory.path().display().to_string();
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "DIR" { path.as_str() } else { a })
        .collect();
    let mut command = inventory.command(sim, &args);
    command
        .env("HOME", inventory.dir.path())
        .env_remove("CESO_ROLE");
    let mut command = agent.wrap(&command);
    command.stdin(std::process::Stdio::null());
    command.output().unwrap()
}

/// `ceso ARGS` as root (standard) with the state file at `state`.
fn root(state: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ceso"))
        .args(args)
        .env("CESO_STATE", state)
        .env("NO_COLOR", "1")
        .env_remove("CESO_ROLE")
        .env_remove("CESO_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The security events of `state`, by `ceso audit list --events --json` (as root).
fn events(state: &Path) -> Vec<Value> {
    let listed = root(state, &["audit", "list", "--events", "--json"]);
    expect(&listed, 0);
    json(&listed).as_array().unwrap().clone()
}

fn events_of(state: &Path, kind: &str) -> Vec<Value> {
    events(state)
        .into_iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

#[track_caller]
fn audit_verifies(state: &Path) {
    let verified = root(state, &["audit", "verify"]);
    expect(&verified, 0);
    assert!(
        stdout(&verified).contains("intact"),
        "{}",
        stdout(&verified)
    );
}

/// The agent asks for a promotion; returns its ID.
fn request(agent: &Agent, work: &Workdir, ttl: &str) -> String {
    let requested = agent.ceso(
        work,
        &[
            "promote",
            "request",
            "--reason",
            "resize web-01",
            "--ttl",
            ttl,
            "--json",
        ],
    );
    expect(&requested, 0);
    let value = json(&requested);
    assert_eq!(value["status"], "pending", "{value:#}");
    value["id"].as_str().unwrap().to_owned()
}

/// Root approves `id` at a terminal by typing it back.
fn approve_at_terminal(state: &Path, id: &str) {
    let approved = roles::approve_at_terminal(state, id, None);
    let screen = stdout(&approved);
    assert!(
        approved.status.success(),
        "approval failed ({:?}):\n{screen}\n{}",
        approved.status,
        stderr(&approved)
    );
    assert!(screen.contains("requested by: ceso-agent"), "{screen}");
    assert!(screen.contains("resize web-01"), "{screen}");
    assert!(
        screen.contains(&format!("Approved promotion {id}")),
        "{screen}"
    );
}

/// Changes a promotion's row in the state file directly, as an agent with write access to the
/// file can (the audit chain is left alone).
fn edit_promotion_row(state: &Path, id: &str, change: impl FnOnce(&mut Value)) {
    let db = redb::Database::builder()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .create(state)
        .unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(PROMOTIONS).unwrap();
        let mut value: Value =
            serde_json::from_str(table.get(id).unwrap().unwrap().value()).unwrap();
        change(&mut value);
        table.insert(id, value.to_string().as_str()).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn the_agent_is_restricted_by_its_profile() {
    let agent = roles::setup();
    let work = Workdir::new();
    let status = agent.ceso(&work, &["promote", "status", "--json"]);
    expect(&status, 0);
    let value = json(&status);
    assert_eq!(value["role"], "restricted", "{value:#}");
    assert_eq!(value["profile"], "agent");
    assert_eq!(value["user"], "ceso-agent");
    assert_eq!(value["profiles_file"]["state"], "trusted");
    assert_eq!(value["promotion"], Value::Null);

    let as_root = root(&work.state(), &["promote", "status", "--json"]);
    let value = json(expect(&as_root, 0));
    assert_eq!(value["role"], "standard");
    assert_eq!(value["profile"], "ops");
}

#[test]
fn restricted_reads_and_plans_but_every_change_is_refused_and_audited() {
    let agent = roles::setup();
    let sim = Simulator::start();
    let inventory = agent_inventory(&sim, &vm("web-01"));
    let state = inventory.dir.path().join("state.redb");

    expect(&agent_on(&agent, &sim, &inventory, &["validate", "DIR"]), 0);
    let plan = agent_on(
        &agent,
        &sim,
        &inventory,
        &["plan", "DIR", "--out", "plan.json"],
    );
    expect(&plan, 2);
    assert!(
        stdout(&plan).contains("+ VirtualMachine/web-01"),
        "{}",
        stdout(&plan)
    );
    assert!(inventory.dir.path().join("plan.json").is_file());
    expect(
        &agent_on(
            &agent,
            &sim,
            &inventory,
            &["plan", "DIR", "--format", "markdown"],
        ),
        2,
    );
    expect(
        &agent_on(
            &agent,
            &sim,
            &inventory,
            &["vm", "list", "--inventory", "DIR"],
        ),
        0,
    );
    expect(
        &agent_on(
            &agent,
            &sim,
            &inventory,
            &["ip", "list", "--inventory", "DIR"],
        ),
        0,
    );
    expect(&agent_on(&agent, &sim, &inventory, &["schema"]), 0);
    expect(
        &agent_on(&agent, &sim, &inventory, &["completions", "bash"]),
        0,
    );

    let changes: &[&[&str]] = &[
        &["apply", "DIR", "--auto-approve"],
        &["apply", "plan.json", "--auto-approve"],
        &["vm", "create", "web-02", "--inventory", "DIR", "--yes"],
        &["vm", "delete", "web-01", "--inventory", "DIR", "--yes"],
        &[
            "vm",
            "clone",
            "web-01",
            "web-03",
            "--inventory",
            "DIR",
            "--yes",
        ],
        &["backup", "run", "--inventory", "DIR"],
        &["backup", "prune", "--inventory", "DIR"],
        &["backup", "restore", "some-backup", "--inventory", "DIR"],
        &["watch", "DIR"],
        &["secret", "set", "db-password"],
        &["secret", "rm", "db-password"],
        &["init", "new-inventory", "--host", "esxi.example.org"],
        &["promote", "approve", "prm-000000000000"],
        &["promote", "revoke", "prm-000000000000"],
        &["promote", "deny", "prm-000000000000"],
    ];
    for args in changes {
        let text = refused(&agent_on(&agent, &sim, &inventory, args));
        assert!(text.contains(&format!("`ceso {}", args[0])), "{text}");
        if !matches!(args[0], "watch" | "promote") {
            assert!(
                text.contains("ceso promote request --reason"),
                "the hint names the way out: {text}"
            );
        }
    }
    assert!(find_vm(&sim, "web-01").is_none(), "nothing was created");
    assert!(!inventory.path().join("vms/web-02.yaml").exists());
    assert!(!inventory.dir.path().join("new-inventory").exists());

    let refusals = events_of(&state, "refused");
    assert_eq!(refusals.len(), changes.len(), "{refusals:#?}");
    let apply = &refusals[0];
    assert_eq!(apply["os_user"], "ceso-agent");
    assert_eq!(apply["profile"], "agent");
    assert_eq!(apply["role"], "restricted");
    assert!(
        apply["command"].as_str().unwrap().starts_with("apply "),
        "{apply:#}"
    );
    assert!(
        refusals.iter().any(|e| e["command"] == "secret set"),
        "{refusals:#?}"
    );
    let listed = root(&state, &["audit", "list"]);
    assert!(
        stdout(expect(&listed, 0)).contains("refused"),
        "{}",
        stdout(&listed)
    );
    audit_verifies(&state);
}

#[test]
fn no_variable_flag_home_or_configuration_widens_the_role() {
    let agent = roles::setup();
    let work = Workdir::new();
    let own_config = work.path().join("config.yaml");
    std::fs::write(&own_config, "state: other.redb\n").unwrap();
    roles::give_to_agent(work.path());
    let fake_home = work.path().join("home");
    std::fs::create_dir_all(fake_home.join(".config/ceso")).unwrap();
    std::fs::write(
        fake_home.join(".config/ceso/approver.key"),
        roles::TEST_APPROVER_KEY,
    )
    .unwrap();
    roles::give_to_agent(work.path());
    let with_env = |vars: &[(&str, &str)], args: &[&str]| {
        let mut command = agent.command(&work, args);
        for (key, value) in vars {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let apply = ["apply", "inventory", "--auto-approve"];
    for value in ["standard", "Standard", "admin", "root"] {
        let text = refused(&with_env(&[("CESO_ROLE", value)], &apply));
        assert!(
            text.contains(&format!("CESO_ROLE={value} is ignored")),
            "{text}"
        );
    }
    let home = fake_home.display().to_string();
    let attempts: Vec<Vec<(&str, &str)>> = vec![
        vec![("HOME", home.as_str())],
        vec![("XDG_CONFIG_HOME", "/tmp")],
        vec![("USER", "root"), ("LOGNAME", "root")],
        vec![("CESO_CONFIG", "config.yaml")],
        vec![("CESO_STATE", "/tmp/other-state.redb")],
        vec![("CESO_PROFILES", "/tmp/profiles.yaml")],
    ];
    for vars in attempts {
        refused(&with_env(&vars, &apply));
    }
    for flags in [
        &[
            "--config",
            "config.yaml",
            "apply",
            "inventory",
            "--auto-approve",
        ][..],
        &[
            "--state",
            "elsewhere.redb",
            "apply",
            "inventory",
            "--auto-approve",
        ],
        &["--output", "json", "apply", "inventory", "--auto-approve"],
    ] {
        refused(&with_env(&[], flags));
    }
    // There is no such flag: clap refuses it before anything runs.
    let role_flag = with_env(&[], &["--role", "standard", "apply", "inventory"]);
    expect(&role_flag, 1);
    assert!(
        stderr(&role_flag).contains("--role"),
        "{}",
        stderr(&role_flag)
    );
    // The fake home's key does not make the agent an approver either.
    let approve = with_env(
        &[("HOME", home.as_str())],
        &["promote", "approve", "prm-000000000000"],
    );
    assert!(refused(&approve).contains("only the standard role approves"));
    audit_verifies(&work.state());
}

#[test]
fn approving_needs_the_standard_role_and_a_terminal_and_the_id_typed_back() {
    let agent = roles::setup();
    let work = Workdir::new();
    let id = request(&agent, &work, "10m");

    let text = refused(&agent.ceso(&work, &["promote", "approve", &id]));
    assert!(text.contains("only the standard role approves"), "{text}");

    let home = roles::approver_home();
    let no_terminal = std::process::Command::new(env!("CARGO_BIN_EXE_ceso"))
        .args(["promote", "approve", &id, "--state"])
        .arg(work.state())
        .env("HOME", home.path())
        .env_remove("CESO_ROLE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = refused(&no_terminal);
    assert!(text.contains("interactive terminal"), "{text}");

    let mistyped = roles::approve_at_terminal(&work.state(), &id, Some("yes"));
    assert!(!mistyped.status.success(), "{}", stdout(&mistyped));
    assert!(
        stdout(&mistyped).contains("was not approved"),
        "{}",
        stdout(&mistyped)
    );

    let listed = json(expect(
        &agent.ceso(&work, &["promote", "list", "--json"]),
        0,
    ));
    assert_eq!(listed[0]["status"], "pending", "{listed:#}");
    let refusals = events_of(&work.state(), "refused");
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    assert_eq!(refusals[0]["os_user"], "ceso-agent");
    assert_eq!(refusals[1]["os_user"], "root");
    assert!(
        refusals[1]["reason"]
            .as_str()
            .unwrap()
            .contains("interactive terminal")
    );
    audit_verifies(&work.state());
}

#[test]
fn a_request_longer_than_the_profile_allows_or_without_a_reason_is_refused() {
    let agent = roles::setup();
    let work = Workdir::new();
    let long = agent.ceso(
        &work,
        &["promote", "request", "--reason", "r", "--ttl", "3h"],
    );
    expect(&long, 1);
    assert!(
        stderr(&long).contains("longer than profile agent allows (2h)"),
        "{}",
        stderr(&long)
    );
    let multiline = agent.ceso(
        &work,
        &[
            "promote",
            "request",
            "--reason",
            "ok\n\u{1b}[2Jlooks fine",
            "--ttl",
            "5m",
        ],
    );
    expect(&multiline, 1);
    assert!(stderr(&multiline).contains("control characters"));
    let standard = root(
        &work.state(),
        &["promote", "request", "--reason", "r", "--ttl", "5m"],
    );
    expect(&standard, 1);
    assert!(stderr(&standard).contains("you need no promotion"));
}

/// Forges an approval of `id` in the state file as an agent with write access could: signed
/// with its own key, written through ceso's own store so that the audit chain stays consistent.
fn forge_approval(state: &Path, id: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = ApproverKeyPair::generate(&dir.path().join("forged.key")).unwrap();
    let store = StateStore::open(state).unwrap();
    let record = store.promotion(id).unwrap().unwrap();
    let approver = Approver {
        user: "root".to_owned(),
        uid: 0,
        profile: roles::APPROVER_PROFILE.to_owned(),
    };
    let approval = approve(&record, &approver, &key, jiff::Timestamp::now()).unwrap();
    let event = store.security_events().unwrap().last().unwrap().1.clone();
    let mut event = event;
    event.event = SecurityEventKind::PromotionApproved;
    store
        .update_promotion(
            id,
            PromotionStatus::Pending,
            |mut r| {
                r.status = PromotionStatus::Approved;
                r.approval = Some(approval);
                r
            },
            &event,
        )
        .unwrap();
}

#[test]
fn forged_altered_copied_or_moved_approvals_are_refused() {
    let agent = roles::setup();
    let apply = ["apply", "inventory", "--auto-approve"];

    // Signed with a key no standard profile lists.
    let forged = Workdir::new();
    let id = request(&agent, &forged, "10m");
    forge_approval(&forged.state(), &id);
    roles::give_to_agent(forged.path());
    audit_verifies(&forged.state());
    let text = refused(&agent.ceso(&forged, &apply));
    assert!(
        text.contains("was not approved by a key of a standard profile"),
        "{text}"
    );
    let refusal = events_of(&forged.state(), "refused").pop().unwrap();
    assert_eq!(refusal["promotion"], id.as_str());

    // A real approval, then its expiry moved: the row no longer matches the audit chain, and the
    // signature no longer matches the row.
    let altered = Workdir::new();
    let id = request(&agent, &altered, "10m");
    approve_at_terminal(&altered.state(), &id);
    edit_promotion_row(&altered.state(), &id, |record| {
        record["approval"]["expires_at"] = Value::from("2099-01-01T00:00:00.000Z");
    });
    let text = refused(&agent.ceso(&altered, &apply));
    assert!(text.contains("audit log does not verify"), "{text}");

    // The approval of one request copied onto another one, through ceso's own store.
    let copied = Workdir::new();
    let first = request(&agent, &copied, "10m");
    let second = request(&agent, &copied, "10m");
    approve_at_terminal(&copied.state(), &first);
    expect(&agent.ceso(&copied, &["promote", "end", &first]), 0);
    {
        let store = StateStore::open(&copied.state()).unwrap();
        let approval = store.promotion(&first).unwrap().unwrap().approval;
        let event = store.security_events().unwrap().last().unwrap().1.clone();
        store
            .update_promotion(
                &second,
                PromotionStatus::Pending,
                |mut r| {
                    r.status = PromotionStatus::Approved;
                    r.approval = approval;
                    r
                },
                &event,
            )
            .unwrap();
    }
    roles::give_to_agent(copied.path());
    audit_verifies(&copied.state());
    let text = refused(&agent.ceso(&copied, &apply));
    assert!(
        text.contains(&format!(
            "the approval of promotion {second} does not verify"
        )),
        "{text}"
    );

    // A valid approval written into another state file: bound to the one it was requested in.
    let original = Workdir::new();
    let id = request(&agent, &original, "10m");
    approve_at_terminal(&original.state(), &id);
    let moved = Workdir::new();
    {
        let approved = StateStore::open(&original.state())
            .unwrap()
            .promotion(&id)
            .unwrap()
            .unwrap();
        let store = StateStore::open(&moved.state()).unwrap();
        let event = StateStore::open(&original.state())
            .unwrap()
            .security_events()
            .unwrap()
            .last()
            .unwrap()
            .1
            .clone();
        assert!(store.create_promotion(&approved, &event).unwrap());
    }
    roles::give_to_agent(moved.path());
    let text = refused(&agent.ceso(&moved, &apply));
    assert!(text.contains("another state file"), "{text}");
    // And a state file with no promotion at all grants nothing.
    let text = refused(&agent.ceso(
        &original,
        &[
            "--state",
            "fresh.redb",
            "apply",
            "inventory",
            "--auto-approve",
        ],
    ));
    assert!(text.contains("no promotion is active"), "{text}");

    for work in [&forged, &copied, &original, &moved] {
        audit_verifies(&work.state());
    }
}

#[test]
fn an_approved_promotion_lets_the_agent_apply_until_it_ends_or_expires() {
    let agent = roles::setup();
    let sim = Simulator::start();
    let inventory = agent_inventory(&sim, &vm("web-01"));
    let state = inventory.dir.path().join("state.redb");
    let ceso = |args: &[&str]| agent_on(&agent, &sim, &inventory, args);

    let requested = ceso(&[
        "promote",
        "request",
        "--reason",
        "resize web-01",
        "--ttl",
        "10m",
        "--json",
    ]);
    let id = json(expect(&requested, 0))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    refused(&ceso(&["apply", "DIR", "--auto-approve"]));
    approve_at_terminal(&state, &id);

    let status = json(expect(&ceso(&["promote", "status", "--json"]), 0));
    assert_eq!(status["promotion"]["id"], id.as_str(), "{status:#}");
    assert!(status["promotion"]["expires_at"].is_string());

    let applied = ceso(&["apply", "DIR", "--auto-approve"]);
    expect(&applied, 0);
    assert!(stderr(&applied).contains(&format!("Running under promotion {id}")));
    assert!(
        find_vm(&sim, "web-01").is_some(),
        "the agent's apply created web-01"
    );

    let runs = root(&state, &["audit", "list", "--json"]);
    let runs = json(expect(&runs, 0));
    assert_eq!(runs[0]["promotion"], id.as_str(), "{runs:#}");
    assert_eq!(runs[0]["os_user"], "ceso-agent");
    let used = events_of(&state, "promotion_used");
    assert_eq!(used.len(), 1);
    assert!(used[0]["command"].as_str().unwrap().starts_with("apply "));
    let run_id = runs[0]["run_id"].as_str().unwrap();
    let shown = root(&state, &["audit", "show", run_id]);
    assert!(
        stdout(expect(&shown, 0)).contains(&format!("promotion {id}")),
        "{}",
        stdout(&shown)
    );

    // Approval, deny and revoke stay with people, promotion or not.
    refused(&ceso(&["promote", "approve", &id]));

    // Given back: refused again, and putting the row back as it was is refused too.
    expect(&ceso(&["promote", "end"]), 0);
    inventory.set_vms(&(vm("web-01") + &vm("web-02")));
    roles::give_to_agent(inventory.dir.path());
    refused(&ceso(&["apply", "DIR", "--auto-approve"]));
    let replay = inventory.dir.path().join("replayed.redb");
    std::fs::copy(&state, &replay).unwrap();
    edit_promotion_row(&replay, &id, |record| {
        record["status"] = Value::from("approved")
    });
    roles::give_to_agent(inventory.dir.path());
    let text = refused(&ceso(&[
        "--state",
        "replayed.redb",
        "apply",
        "DIR",
        "--auto-approve",
    ]));
    assert!(text.contains("audit log does not verify"), "{text}");

    // Revoked by a person: refused.
    let requested = ceso(&[
        "promote",
        "request",
        "--reason",
        "resize web-01",
        "--ttl",
        "10m",
        "--json",
    ]);
    let revoked = json(expect(&requested, 0))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    approve_at_terminal(&state, &revoked);
    expect(
        &root(
            &state,
            &["promote", "revoke", &revoked, "--reason", "done for today"],
        ),
        0,
    );
    refused(&ceso(&["apply", "DIR", "--auto-approve"]));

    // Expired: refused, and the expiry is recorded.
    let requested = ceso(&[
        "promote",
        "request",
        "--reason",
        "resize web-01",
        "--ttl",
        "2s",
        "--json",
    ]);
    let short = json(expect(&requested, 0))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    approve_at_terminal(&state, &short);
    std::thread::sleep(Duration::from_millis(2500));
    let text = refused(&ceso(&["apply", "DIR", "--auto-approve"]));
    assert!(
        text.contains(&format!("promotion {short} expired")),
        "{text}"
    );
    assert!(
        find_vm(&sim, "web-02").is_none(),
        "nothing applied after the promotion ended"
    );

    let kinds: Vec<String> = events(&state)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "promotion_requested",
        "promotion_approved",
        "promotion_used",
        "promotion_run",
        "promotion_ended",
        "promotion_revoked",
        "promotion_expired",
        "refused",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let listed = json(expect(&root(&state, &["promote", "list", "--json"]), 0));
    let statuses: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ended", "revoked", "expired"]);
    let shown = root(&state, &["audit", "show", &id]);
    assert!(
        stdout(expect(&shown, 0)).contains("promotion_used"),
        "{}",
        stdout(&shown)
    );
    audit_verifies(&state);
}
