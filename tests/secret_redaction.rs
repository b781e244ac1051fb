//! Issue 7: "A test puts known secret values in every place a secret can enter and scans all
//! output and files ceso writes for them."
//!
//! One distinctive value per place a password can come from — an environment variable, a file,
//! ceso's encrypted store, the OS keyring (a real Secret Service: GNOME Keyring on a private
//! D-Bus bus) — each the real password of its own simulated ESXi host, so every one of them is
//! read and sent by ceso. Then a value the host refuses, a literal password in a manifest, the
//! store's own key, and the errors around them. Every command runs with `CESO_LOG=trace` (and
//! `RUST_LOG=trace`). Its standard output and error, and every file under the test's HOME (the
//! state file, saved plans, the audit export, backups, the store, ...) except the ones this test
//! wrote itself, are searched for each value: as is, in base64 (at every alignment, standard
//! and URL-safe) and in hex. Any hit fails the test and says where.

mod support;

#[path = "fixtures/secrets/keyring_session.rs"]
mod keyring_session;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use keyring_session::KeyringSession;
use support::Simulator;

const ENV_VALUE: &str = "S3cr3t-env-7f1c";
const FILE_VALUE: &str = "S3cr3t-file-2b9d";
const STORE_VALUE: &str = "S3cr3t-store-5e3a";
const KEYRING_VALUE: &str = "S3cr3t-keyring-8c4f";
/// In the store, but not the password of the host it is given to: the host refuses the login.
const REFUSED_VALUE: &str = "S3cr3t-refused-1d6e";
/// Written literally into a manifest (which ceso refuses).
const LITERAL_VALUE: &str = "S3cr3t-literal-4a7b";

const PASSWORD_VARIABLE: &str = "CESO_REDACTION_TEST_PASSWORD";

/// One command ceso ran, and what it printed.
struct Ran {
    what: String,
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// The test's world: a HOME holding the inventory, the state file, plans, backups, the secret
/// store and the keyring; the simulators; everything ceso printed.
struct World {
    /// Dropped first: the keyring stops before its HOME goes.
    keyring: KeyringSession,
    home: tempfile::TempDir,
    runs: Vec<Ran>,
    /// Files this test wrote (manifests, the password file): they hold values on purpose.
    written_by_test: BTreeSet<PathBuf>,
}

impl World {
    fn path(&self) -> &Path {
        self.home.path()
    }

    fn write(&mut self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        self.written_by_test.insert(path);
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ceso"));
        command
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .env("CESO_STATE", self.path().join("state/state.redb"))
            .env("CESO_LOG", "trace")
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .env(PASSWORD_VARIABLE, ENV_VALUE);
        for variable in [
            "XDG_DATA_HOME",
            "XDG_CONFIG_HOME",
            "XDG_RUNTIME_DIR",
            "CESO_SECRETS_FILE",
            "CESO_IDENTITY_FILE",
            "CESO_SECRET_KEY",
            "CESO_CONFIG",
            "CESO_INVENTORY",
        ] {
            command.env_remove(variable);
        }
        self.keyring.apply(&mut command);
        command
    }

    /// Runs `command` (stdin piped in), records what it printed, returns the exit code.
    fn run(&mut self, what: &str, mut command: Command, stdin: &str) -> i32 {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let code = output.status.code().unwrap_or(-1);
        self.runs.push(Ran {
            what: what.to_owned(),
            code,
            stdout: output.stdout,
            stderr: output.stderr,
        });
        code
    }

    /// `ceso args`; asserts the exit code is one of `codes`.
    #[track_caller]
    fn ceso(&mut self, args: &[&str], stdin: &str, codes: &[i32]) -> String {
        let command = self.command(args);
        let code = self.run(&format!("ceso {}", args.join(" ")), command, stdin);
        let ran = self.runs.last().unwrap();
        let stdout = String::from_utf8_lossy(&ran.stdout).into_owned();
        assert!(
            codes.contains(&code),
            "`{}` exited {code}, expected one of {codes:?}\n--- stdout\n{stdout}\n--- stderr\n{}",
            ran.what,
            // Trace logs are long: the end says what went wrong.
            tail(&String::from_utf8_lossy(&ran.stderr), 60)
        );
        stdout
    }

    /// `ceso args` with `variables` changed (`None`: removed); any exit code but success.
    #[track_caller]
    fn ceso_failing(&mut self, args: &[&str], variables: &[(&str, Option<&str>)]) -> String {
        let mut command = self.command(args);
        for (name, value) in variables {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let what = format!("ceso {} with {variables:?}", args.join(" "));
        let code = self.run(&what, command, "");
        let stderr = String::from_utf8_lossy(&self.runs.last().unwrap().stderr).into_owned();
        assert_eq!(code, 1, "`{what}` should fail\n{}", tail(&stderr, 60));
        stderr
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn host(name: &str, sim: &Simulator, password: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: Host\nmetadata: {{ name: {name} }}\nspec:\n  address: {}\n  thumbprint: \"{}\"\n  username: {}\n  password: {password}\n  datastore: {}\n  network: VM Network\n",
        sim.url, sim.thumbprint, sim.user, sim.datastore
    )
}

fn vm(name: &str, host: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: {host}\n  cpu: 1\n  memory: 256MiB\n  disks: [ {{ size: 64MiB }} ]\n  power: off\n  backupPolicy: local\n"
    )
}

const BACKUP_POLICY: &str = "---\napiVersion: ceso/v1\nkind: BackupPolicy\nmetadata: { name: local }\nspec:\n  schedule: { cron: \"0 3 * * *\" }\n  retention: { keepLast: 2 }\n  target:\n    directory: { path: ../backups }\n  quiesce: false\n";

/// The forms a value could take in output or a file: as is, hex, and base64 (standard and
/// URL-safe) at each of the three alignments it can have inside a longer encoded text.
fn encodings(value: &str) -> Vec<(String, String)> {
    let mut forms = vec![
        ("as is".to_owned(), value.to_owned()),
        ("hex".to_owned(), hex::encode(value)),
    ];
    for (engine_name, engine) in [
        ("base64", &base64::engine::general_purpose::STANDARD),
        ("base64url", &base64::engine::general_purpose::URL_SAFE),
    ] {
        for offset in 0..3 {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(value.as_bytes());
            let encoded = engine.encode(&bytes);
            // Characters that depend only on the value: skip the ones mixed with the prefix and
            // the last group, which depends on what follows.
            let start = (offset * 8).div_ceil(6);
            let end = (bytes.len() / 3) * 4;
            if end > start + 8 {
                forms.push((
                    format!("{engine_name} (alignment {offset})"),
                    encoded[start..end].to_owned(),
                ));
            }
        }
    }
    forms
}

/// Where any form of any value occurs in `haystack`.
fn find(haystack: &[u8], needles: &[(&str, Vec<(String, String)>)], place: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(haystack);
    let mut hits = Vec::new();
    for (label, forms) in needles {
        for (form, needle) in forms {
            if let Some(at) = text.find(needle.as_str()) {
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                let to = (at + needle.len() + 80).min(text.len());
                let to = (to..=text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                hits.push(format!(
                    "{label} ({form}) in {place}: ...{}...",
                    &text[from..to]
                ));
            }
        }
    }
    hits
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// Starts `ceso watch DIR --json`, waits for its first reconcile, stops it with SIGTERM, and
/// records what it printed.
fn watch_once(world: &mut World, inventory: &str) {
    let mut child = world
        .command(&["watch", inventory, "--json", "--no-backups"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr_bytes = Arc::new(Mutex::new(Vec::<u8>::new()));
    let reader = {
        let lines = Arc::clone(&stdout_lines);
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let error_reader = {
        let bytes = Arc::clone(&stderr_bytes);
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr, &mut buffer);
            bytes.lock().unwrap().extend(buffer);
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stdout_lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("\"reconcile\""))
    {
        assert!(
            Instant::now() < deadline,
            "watch made no reconcile within 60 s: {:?}",
            stdout_lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    error_reader.join().unwrap();
    let stdout = stdout_lines.lock().unwrap().join("\n").into_bytes();
    let stderr = stderr_bytes.lock().unwrap().clone();
    world.runs.push(Ran {
        what: format!("ceso watch {inventory} --json (stopped by SIGTERM)"),
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    });
}

/// Runs `ceso mcp` (the agents' server, JSON-RPC over stdio) and calls its tools that log in to
/// the hosts, then records everything it printed.
fn mcp_session(world: &mut World, inventory: &str) {
    let mut child = world
        .command(&["mcp", "--inventory", inventory])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let error_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buffer);
        buffer
    });
    let mut printed = Vec::new();
    let call = |stdin: &mut std::process::ChildStdin,
                id: u64,
                message: serde_json::Value,
                printed: &mut Vec<String>| {
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines_rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("ceso mcp did not answer request {id}: {printed:#?}"));
            printed.push(line.clone());
            let answer: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if answer["id"] == id {
                return answer;
            }
        }
    };
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "secret-redaction-test", "version": "1" }
        }
    });
    let answer = call(&mut stdin, 1, initialize, &mut printed);
    assert!(answer["result"]["serverInfo"].is_object(), "{answer:#}");
    writeln!(
        stdin,
        "{}",
        serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })
    )
    .unwrap();
    let tools = [
        ("validate", serde_json::json!({})),
        ("plan", serde_json::json!({})),
        ("vm_list", serde_json::json!({})),
        ("vm_info", serde_json::json!({ "name": "vm-store" })),
        ("vm_info", serde_json::json!({ "name": "vm-keyring" })),
        ("backup_list", serde_json::json!({})),
        ("audit_list", serde_json::json!({})),
    ];
    for (index, (tool, arguments)) in tools.into_iter().enumerate() {
        let id = 2 + index as u64;
        let request = serde_json::json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": tool, "arguments": arguments }
        });
        let answer = call(&mut stdin, id, request, &mut printed);
        assert!(
            answer["result"].is_object() && answer["result"]["isError"] != true,
            "tool {tool}: {answer:#}"
        );
    }
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    world.runs.push(Ran {
        what: format!("ceso mcp --inventory {inventory} (initialize, tools/call)"),
        code: status.code().unwrap_or(-1),
        stdout: printed.join("\n").into_bytes(),
        stderr: error_reader.join().unwrap(),
    });
}

#[test]
fn no_secret_value_appears_in_any_output_or_file_ceso_writes() {
    // The scanner finds what it looks for, even inside a longer base64 text, and only that.
    let probe = base64::engine::general_purpose::STANDARD.encode(format!("xy{STORE_VALUE}z"));
    let probe_hits = |value: &str| find(probe.as_bytes(), &[("probe", encodings(value))], "probe");
    assert!(!probe_hits(STORE_VALUE).is_empty());
    assert!(probe_hits(ENV_VALUE).is_empty());

    // Four hosts, each with one of the values as its real password.
    let sim_env = Simulator::builder().password(ENV_VALUE).start();
    let sim_file = Simulator::builder().password(FILE_VALUE).start();
    let sim_store = Simulator::builder().password(STORE_VALUE).start();
    let sim_keyring = Simulator::builder().password(KEYRING_VALUE).start();

    let home = tempfile::tempdir().unwrap();
    let keyring = KeyringSession::start(home.path());
    let mut world = World {
        keyring,
        home,
        runs: Vec::new(),
        written_by_test: BTreeSet::new(),
    };

    // Every way into ceso: the store, the keyring, a file, a variable.
    world.ceso(
        &["secret", "set", "esxi-store-root"],
        &format!("{STORE_VALUE}\n"),
        &[0],
    );
    world.ceso(&["secret", "set", "refused-root"], REFUSED_VALUE, &[0]);
    world.ceso(
        &["secret", "set", "esxi-keyring-root", "--keyring"],
        KEYRING_VALUE,
        &[0],
    );
    world.write(
        "inventory/secrets/esxi-file.password",
        &format!("{FILE_VALUE}\n"),
    );
    let hosts = [
        host(
            "esxi-env",
            &sim_env,
            &format!("{{ env: {PASSWORD_VARIABLE} }}"),
        ),
        host(
            "esxi-file",
            &sim_file,
            "{ file: secrets/esxi-file.password }",
        ),
        host("esxi-store", &sim_store, "{ secret: esxi-store-root }"),
        host(
            "esxi-keyring",
            &sim_keyring,
            "{ keyring: esxi-keyring-root }",
        ),
    ]
    .concat();
    world.write("inventory/hosts.yaml", &hosts);
    world.write(
        "inventory/vms.yaml",
        &[
            vm("vm-env", "esxi-env"),
            vm("vm-file", "esxi-file"),
            vm("vm-store", "esxi-store"),
            vm("vm-keyring", "esxi-keyring"),
        ]
        .concat(),
    );
    world.write("inventory/backup.yaml", BACKUP_POLICY);

    // The commands, as people and pipelines run them.
    for dir in ["plans", "audit"] {
        std::fs::create_dir_all(world.path().join(dir)).unwrap();
    }
    world.ceso(&["secret", "list"], "", &[0]);
    world.ceso(&["secret", "list", "--json"], "", &[0]);
    world.ceso(&["validate", "inventory"], "", &[0]);
    world.ceso(&["validate", "inventory", "--json"], "", &[0]);
    world.ceso(&["plan", "inventory"], "", &[2]);
    world.ceso(&["plan", "inventory", "--format", "json"], "", &[2]);
    world.ceso(&["plan", "inventory", "--format", "markdown"], "", &[2]);
    world.ceso(&["plan", "inventory", "--out", "plans/plan.json"], "", &[2]);
    world.ceso(&["apply", "plans/plan.json", "--auto-approve"], "", &[0]);
    world.ceso(&["plan", "inventory"], "", &[0]);
    world.ceso(&["apply", "inventory", "--auto-approve"], "", &[0]);
    // Each value was read and accepted by its host: each host has its VM.
    for (sim, name) in [
        (&sim_env, "vm-env"),
        (&sim_file, "vm-file"),
        (&sim_store, "vm-store"),
        (&sim_keyring, "vm-keyring"),
    ] {
        assert!(support::find_vm(sim, name).is_some(), "{name} was created");
    }
    world.ceso(&["vm", "list", "--inventory", "inventory"], "", &[0]);
    world.ceso(
        &["vm", "list", "--inventory", "inventory", "--json"],
        "",
        &[0],
    );
    for name in ["vm-env", "vm-file", "vm-store", "vm-keyring"] {
        world.ceso(&["vm", "info", name, "--inventory", "inventory"], "", &[0]);
        world.ceso(
            &["vm", "info", name, "--inventory", "inventory", "--json"],
            "",
            &[0],
        );
    }
    world.ceso(
        &["backup", "create", "vm-store", "--inventory", "inventory"],
        "",
        &[0],
    );
    world.ceso(&["backup", "list", "--inventory", "inventory"], "", &[0]);
    world.ceso(
        &["backup", "list", "--inventory", "inventory", "--json"],
        "",
        &[0],
    );
    world.ceso(&["ip", "list", "--inventory", "inventory"], "", &[0]);
    world.ceso(
        &["ip", "list", "--inventory", "inventory", "--json"],
        "",
        &[0],
    );
    world.ceso(&["host", "check", "--inventory", "inventory"], "", &[0, 1]);
    world.ceso(
        &["host", "check", "--inventory", "inventory", "--json"],
        "",
        &[0, 1],
    );
    watch_once(&mut world, "inventory");
    mcp_session(&mut world, "inventory");
    world.ceso(&["status", "inventory"], "", &[0]);
    world.ceso(&["status", "inventory", "--json"], "", &[0]);
    let runs = world.ceso(&["audit", "list", "--json"], "", &[0]);
    world.ceso(&["audit", "list"], "", &[0]);
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let run_ids: Vec<String> = runs["runs"]
        .as_array()
        .or_else(|| runs.as_array())
        .expect("audit list --json has runs")
        .iter()
        .filter_map(|run| run["run_id"].as_str().map(str::to_owned))
        .collect();
    assert!(!run_ids.is_empty(), "the applies are audited: {runs:#}");
    for id in &run_ids {
        world.ceso(&["audit", "show", id], "", &[0]);
        world.ceso(&["audit", "show", id, "--json"], "", &[0]);
    }
    world.ceso(&["audit", "export"], "", &[0]);
    world.ceso(
        &["audit", "export", "--out", "audit/export.jsonl"],
        "",
        &[0],
    );
    world.ceso(&["audit", "verify"], "", &[0]);

    // Errors: a secret that is not there, a bad and a literal reference, a host that refuses
    // the login, no keyring, the wrong key, a missing variable.
    world.write(
        "missing/hosts.yaml",
        &host("esxi-store", &sim_store, "{ secret: no-such-secret }"),
    );
    world.ceso(&["plan", "missing"], "", &[1]);
    world.write(
        "bad/hosts.yaml",
        &[
            host("esxi-bad", &sim_store, "{ secret: \"bad name\" }"),
            host("esxi-literal", &sim_env, LITERAL_VALUE),
            host(
                "esxi-nested",
                &sim_file,
                &format!("{{ vault: {LITERAL_VALUE} }}"),
            ),
        ]
        .concat(),
    );
    world.ceso(&["validate", "bad"], "", &[1]);
    world.ceso(&["validate", "bad", "--json"], "", &[1]);
    world.ceso(&["plan", "bad"], "", &[1]);
    world.write(
        "refused/hosts.yaml",
        &host("esxi-refused", &sim_store, "{ secret: refused-root }"),
    );
    let refused = world.ceso(&["plan", "refused"], "", &[1]);
    let refused_stderr = String::from_utf8_lossy(&world.runs.last().unwrap().stderr).to_string();
    assert!(
        refused_stderr.contains("esxi-refused"),
        "the refusal names the host:\n{refused}{}",
        tail(&refused_stderr, 20)
    );
    world.ceso_failing(
        &["plan", "inventory"],
        &[(
            "DBUS_SESSION_BUS_ADDRESS",
            Some("unix:path=/nonexistent/bus"),
        )],
    );
    let identity = world.path().join(".config/ceso/identity.txt");
    let store_key = std::fs::read_to_string(&identity)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned();
    let other_key = {
        let other_home = tempfile::tempdir().unwrap();
        let mut command = world.command(&["secret", "set", "x"]);
        command.env("HOME", other_home.path());
        world.run("ceso secret set x (another HOME)", command, "v");
        std::fs::read_to_string(other_home.path().join(".config/ceso/identity.txt"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .unwrap()
            .to_owned()
    };
    world.ceso_failing(
        &["plan", "inventory"],
        &[("CESO_SECRET_KEY", Some(&other_key))],
    );
    world.ceso_failing(
        &["secret", "list"],
        &[("CESO_SECRET_KEY", Some(&other_key))],
    );
    world.ceso_failing(&["plan", "inventory"], &[(PASSWORD_VARIABLE, None)]);
    // The store read with its key given in the variable, as CI does.
    let mut with_key = world.command(&["plan", "inventory"]);
    with_key.env("CESO_SECRET_KEY", &store_key);
    assert_eq!(
        world.run("ceso plan inventory (CESO_SECRET_KEY)", with_key, ""),
        0
    );

    // The logs were on: what they say is scanned too.
    assert!(
        world
            .runs
            .iter()
            .all(|ran| String::from_utf8_lossy(&ran.stderr).contains(" TRACE ")),
        "every command logged at trace level"
    );

    // The scan.
    let values: Vec<(&str, Vec<(String, String)>)> = vec![
        ("the environment variable's value", encodings(ENV_VALUE)),
        ("the file's value", encodings(FILE_VALUE)),
        ("the store's value", encodings(STORE_VALUE)),
        ("the keyring's value", encodings(KEYRING_VALUE)),
        ("the refused value", encodings(REFUSED_VALUE)),
        ("the literal password", encodings(LITERAL_VALUE)),
        ("another identity's key", encodings(&other_key)),
    ];
    let store_key_forms = vec![("the store's key", encodings(&store_key))];
    let mut hits = Vec::new();
    for ran in &world.runs {
        for (stream, bytes) in [("stdout", &ran.stdout), ("stderr", &ran.stderr)] {
            let place = format!("the {stream} of `{}` (exit {})", ran.what, ran.code);
            hits.extend(find(bytes, &values, &place));
            hits.extend(find(bytes, &store_key_forms, &place));
        }
    }
    let mut files = Vec::new();
    files_under(world.path(), &mut files);
    let keyring_files = world.path().join(".local/share/keyrings");
    let mut scanned = Vec::new();
    for file in files {
        // What this test wrote, and the keyring daemon's own (encrypted) files.
        if world.written_by_test.contains(&file) || file.starts_with(&keyring_files) {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        let place = format!("the file {}", file.display());
        hits.extend(find(&bytes, &values, &place));
        // The identity file holds the store's key: that is what it is for.
        if file != identity {
            hits.extend(find(&bytes, &store_key_forms, &place));
        }
        scanned.push(file);
    }

    // The scan covered what matters.
    for expected in [
        "state/state.redb",
        "plans/plan.json",
        "audit/export.jsonl",
        ".local/share/ceso/secrets.age",
        ".local/share/ceso/keyring-names.json",
    ] {
        assert!(
            scanned.contains(&world.path().join(expected)),
            "{expected} was not scanned: {scanned:#?}"
        );
    }
    assert!(
        scanned
            .iter()
            .any(|f| f.starts_with(world.path().join("backups"))),
        "the backup was scanned: {scanned:#?}"
    );
    assert!(
        hits.is_empty(),
        "secret values found ({} hits):\n{}",
        hits.len(),
        hits.join("\n\n")
    );
}
