//! End to end: `ceso mcp` driven over stdio by an MCP client we did not write — the client of the
//! official Python SDK (PyPI `mcp`, pinned and installed by tests/setup.sh), through
//! tests/mcp/client.py — the way an AI agent's MCP host drives it. The server runs as the agent's
//! OS account (`ceso-agent`, restricted by the test profiles file of tests/support/roles.rs) on
//! an inventory pointed at the ESXi simulator; what it does is checked on the simulator.
//!
//! The server introduces itself and lists its tools with what each changes; the read-only tools
//! answer with what the CLI prints; names that could be read as options are refused; apply is
//! refused (and audited) without a promotion; a promotion asked for over MCP and approved by a
//! person at a terminal lets apply create the VM on the host. Read raw, standard output holds
//! nothing but JSON-RPC messages, and the server ends when its input closes.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use support::inventory::Inventory;
use support::roles::{self, Agent};
use support::{Simulator, find_vm, list_vms};

/// The tools, sorted.
const TOOLS: [&str; 9] = [
    "apply",
    "audit_list",
    "backup_list",
    "plan",
    "promote_request",
    "promotion_status",
    "validate",
    "vm_info",
    "vm_list",
];

/// The tools that change nothing anywhere.
const READ_ONLY_TOOLS: [&str; 7] = [
    "audit_list",
    "backup_list",
    "plan",
    "promotion_status",
    "validate",
    "vm_info",
    "vm_list",
];

/// The Python of the virtual environment tests/setup.sh makes, with the `mcp` package
/// (`$CESO_MCP_PYTHON` can name another one that has it).
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("CESO_MCP_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(python);
    }
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`; setup puts the venv in `<target dir>/mcp-venv`.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let python = target.join("mcp-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: the MCP tests drive `ceso mcp` with the Python MCP client that \
         `bash tests/setup.sh` installs there (run it with the same CARGO_TARGET_DIR), or set \
         CESO_MCP_PYTHON to a Python that has the `mcp` package",
        python.display()
    );
    python
}

/// A VM to create: powered off, so that apply needs no guest tools.
fn vm(name: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  cpu: 1\n  memory: 1GiB\n  disks: [ {{ size: 1GiB }} ]\n  power: off\n  guestId: ubuntu64Guest\n"
    )
}

/// An inventory pointed at `sim` declaring `vms`, in a directory that belongs to the agent (its
/// state file and HOME are there too).
fn agent_inventory(sim: &Simulator, vms: &str) -> Inventory {
    let inventory = Inventory::new(sim, vms);
    roles::give_to_agent(inventory.dir.path());
    inventory
}

/// The server as an MCP host configured for the agent starts it: `ceso mcp --inventory DIR`
/// as the agent's OS account, with the host password's variable and the state file.
fn server_command(agent: &Agent, sim: &Simulator, inventory: &Inventory) -> Command {
    let path = inventory.path().display().to_string();
    let mut command = inventory.command(sim, &["mcp", "--inventory", &path]);
    command
        .env("HOME", inventory.dir.path())
        .env_remove("CESO_ROLE");
    agent.wrap(&command)
}

/// What the server answered in one MCP session.
struct Session {
    answer: Value,
}

/// One tool call's result.
struct Reply {
    result: Value,
}

impl Reply {
    fn is_error(&self) -> bool {
        self.result["isError"] == json!(true)
    }

    /// The text blocks of the result.
    fn texts(&self) -> Vec<String> {
        self.result["content"]
            .as_array()
            .unwrap_or_else(|| panic!("no content: {:#}", self.result))
            .iter()
            .map(|block| {
                assert_eq!(block["type"], "text", "{block:#}");
                block["text"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn text(&self) -> String {
        self.texts().join("\n")
    }

    /// A successful result's first text block, parsed as JSON.
    #[track_caller]
    fn json(&self) -> Value {
        assert!(!self.is_error(), "the call failed: {}", self.text());
        let first = &self.texts()[0];
        serde_json::from_str(first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"))
    }
}

impl Session {
    /// Starts the server with the Python SDK's stdio client, initializes, lists the tools and
    /// makes `calls` (tool name, arguments) in order.
    fn run(server: &Command, calls: &[(&str, Value)]) -> Session {
        let envs: serde_json::Map<String, Value> = server
            .get_envs()
            .filter_map(|(key, value)| {
                Some((
                    key.to_str()?.to_owned(),
                    Value::from(value?.to_str()?.to_owned()),
                ))
            })
            .collect();
        let spec = json!({
            "command": server.get_program().to_str().unwrap(),
            "args": server.get_args().map(|a| a.to_str().unwrap()).collect::<Vec<_>>(),
            "env": envs,
            "cwd": server.get_current_dir().map(|d| d.to_str().unwrap()),
            "listTools": true,
            "calls": calls.iter().map(|(name, arguments)| json!({"name": name, "arguments": arguments})).collect::<Vec<_>>(),
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
        let mut client = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running the Python MCP client: {e}"));
        {
            use std::io::Write;
            let mut stdin = client.stdin.take().unwrap();
            stdin.write_all(spec.to_string().as_bytes()).unwrap();
        }
        let output = client.wait_with_output().unwrap();
        Session {
            answer: Self::answer(&output),
        }
    }

    #[track_caller]
    fn answer(output: &Output) -> Value {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the MCP client failed ({})\n--- stdout\n{stdout}\n--- stderr (client and server)\n{stderr}",
            output.status
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("the MCP client printed no JSON ({e}):\n{stdout}\n--- stderr\n{stderr}")
        })
    }

    fn tools(&self) -> &Vec<Value> {
        self.answer["tools"].as_array().expect("tools were listed")
    }

    #[track_caller]
    fn tool(&self, name: &str) -> &Value {
        self.tools()
            .iter()
            .find(|tool| tool["name"] == name)
            .unwrap_or_else(|| panic!("no tool {name}"))
    }

    fn call(&self, index: usize) -> Reply {
        Reply {
            result: self.answer["calls"][index].clone(),
        }
    }
}

#[test]
fn an_mcp_host_sees_the_server_and_every_tool_with_what_it_changes() {
    let agent = roles::setup();
    let sim = Simulator::start();
    let inventory = agent_inventory(&sim, &vm("web-01"));
    let session = Session::run(&server_command(&agent, &sim, &inventory), &[]);

    let initialize = &session.answer["initialize"];
    assert_eq!(initialize["serverInfo"]["name"], "ceso", "{initialize:#}");
    assert_eq!(
        initialize["serverInfo"]["version"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(initialize["capabilities"]["tools"].is_object());
    let instructions = initialize["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("restricted role") && instructions.contains("promote_request"),
        "{instructions}"
    );

    let mut names: Vec<&str> = session
        .tools()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, TOOLS);

    for name in READ_ONLY_TOOLS {
        let tool = session.tool(name);
        let description = tool["description"].as_str().unwrap();
        assert!(
            description.contains("Read-only: changes nothing"),
            "{name}: {description}"
        );
        assert_eq!(tool["annotations"]["readOnlyHint"], true, "{tool:#}");
        assert_eq!(tool["annotations"]["destructiveHint"], false, "{tool:#}");
    }

    let request = session.tool("promote_request");
    assert!(
        request["description"]
            .as_str()
            .unwrap()
            .contains("Changes nothing on any host: it only records the request")
    );
    assert_eq!(request["annotations"]["readOnlyHint"], false);
    assert_eq!(request["annotations"]["destructiveHint"], false);
    assert_eq!(request["inputSchema"]["required"], json!(["reason", "ttl"]));

    let apply = session.tool("apply");
    let description = apply["description"].as_str().unwrap();
    assert!(
        description.starts_with("CHANGES THE HOSTS"),
        "{description}"
    );
    assert!(
        description.contains("Refused unless a promotion approved by a human is active"),
        "{description}"
    );
    assert_eq!(apply["annotations"]["readOnlyHint"], false);
    assert_eq!(apply["annotations"]["destructiveHint"], true);

    assert_eq!(
        session.tool("vm_info")["inputSchema"]["required"],
        json!(["name"])
    );
}

#[test]
fn the_read_only_tools_answer_with_what_the_cli_prints() {
    let agent = roles::setup();
    let sim = Simulator::start();
    let inventory = agent_inventory(&sim, &vm("web-01"));
    let on_host = list_vms(&sim)
        .into_iter()
        .map(|vm| vm.name)
        .find(|name| name.starts_with("ha-host"))
        .expect("the simulator has VMs of its own");

    let session = Session::run(
        &server_command(&agent, &sim, &inventory),
        &[
            ("validate", json!({})),
            ("plan", json!({})),
            ("vm_list", json!({})),
            ("vm_info", json!({"name": on_host})),
            ("vm_info", json!({"name": "web-99"})),
            ("backup_list", json!({})),
            ("promotion_status", json!({})),
        ],
    );

    let validated = session.call(0).json();
    assert_eq!(validated, json!({"valid": true, "diagnostics": []}));

    let plan = session.call(1);
    assert!(
        !plan.is_error(),
        "changes pending is not an error: {}",
        plan.text()
    );
    let plan = plan.json();
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["summary"]["create"], 1, "{plan:#}");
    assert_eq!(plan["changes"][0]["address"], "VirtualMachine/web-01");
    assert!(find_vm(&sim, "web-01").is_none(), "a plan changes nothing");

    // The same document as `ceso vm list --json` run by the agent itself.
    let listed = session.call(2).json();
    let path = inventory.path().display().to_string();
    let mut cli =
        agent.wrap(&inventory.command(&sim, &["vm", "list", "--inventory", &path, "--json"]));
    let cli = cli.env("HOME", inventory.dir.path()).output().unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(
        listed,
        serde_json::from_slice::<Value>(&cli.stdout).unwrap()
    );
    let web = listed["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vm| vm["name"] == "web-01")
        .expect("the declared VM is listed");
    assert_eq!(web["management"], "missing");

    let info = session.call(3).json();
    assert_eq!(info["name"], on_host.as_str());
    assert_eq!(info["host"], "esxi-01");

    // A failing command is a tool error carrying ceso's own message.
    let unknown = session.call(4);
    assert!(unknown.is_error());
    assert!(
        unknown.text().contains("no VM named web-99"),
        "{}",
        unknown.text()
    );

    assert_eq!(
        session.call(5).json(),
        json!([]),
        "the inventory has no backups"
    );

    let status = session.call(6).json();
    assert_eq!(status["role"], "restricted", "{status:#}");
    assert_eq!(status["profile"], roles::AGENT_PROFILE);
    assert_eq!(status["promotion"], Value::Null);
}

#[test]
fn names_that_could_be_read_as_options_are_refused_before_ceso_runs() {
    let agent = roles::setup();
    let sim = Simulator::start();
    let inventory = agent_inventory(&sim, &vm("web-01"));
    let session = Session::run(
        &server_command(&agent, &sim, &inventory),
        &[
            ("vm_info", json!({"name": "--help"})),
            ("vm_list", json!({"host": "--inventory=/"})),
            ("backup_list", json!({"vm": "-x"})),
        ],
    );
    for index in 0..3 {
        let reply = session.call(index);
        assert!(reply.is_error(), "{}", reply.text());
        assert!(reply.text().contains("starts with `-`"), "{}", reply.text());
    }
}

#[test]
fn apply_is_refused_without_a_promotion_and_the_refusal_is_audited() {
    let agent = roles::setup();
    let sim = Simulator::start();
    let inventory = agent_inventory(&sim, &vm("web-01"));
    let session = Session::run(
        &server_command(&agent, &sim, &inventory),
        &[("apply", json!({})), ("audit_list", json!({}))],
    );

    let apply = session.call(0);
    assert!(apply.is_error(), "apply must be refused: {}", apply.text());
    assert!(apply.text().contains("refused"), "{}", apply.text());
    assert!(
        apply.text().contains("ceso promote request"),
        "the refusal says how to ask: {}",
        apply.text()
    );
    assert!(find_vm(&sim, "web-01").is_none(), "nothing was created");

    assert_eq!(session.call(1).json(), json!([]), "no run was recorded");
    let events = Command::new(env!("CARGO_BIN_EXE_ceso"))
        .args(["audit", "list", "--events", "--json", "--state"])
        .arg(inventory.dir.path().join("state.redb"))
        .env_remove("CESO_ROLE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        events.status.success(),
        "{}",
        String::from_utf8_lossy(&events.stderr)
    );
    let events: Value = serde_json::from_slice(&events.stdout).unwrap();
    let refusal = events
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["event"] == "refused")
        .unwrap_or_else(|| panic!("no refused event in {events:#}"));
    assert_eq!(refusal["os_user"], roles::AGENT_USER, "{refusal:#}");
    assert_eq!(refusal["role"], "restricted");
    assert!(
        refusal["command"].as_str().unwrap().starts_with("apply "),
        "{refusal:#}"
    );
}

#[test]
fn a_promotion_asked_for_over_mcp_and_approved_at_a_terminal_lets_apply_change_the_host() {
    let agent = roles::setup();
    let sim = Simulator::start();
    let inventory = agent_inventory(&sim, &vm("web-01"));
    let server = server_command(&agent, &sim, &inventory);

    let asked = Session::run(
        &server,
        &[(
            "promote_request",
            json!({"reason": "create web-01 as planned", "ttl": "10m"}),
        )],
    );
    let request = asked.call(0).json();
    assert_eq!(request["status"], "pending", "{request:#}");
    let id = request["id"].as_str().unwrap().to_owned();
    assert!(
        find_vm(&sim, "web-01").is_none(),
        "a request changes nothing"
    );

    // A person (root, standard role, with an approver key) approves at their terminal.
    let state = inventory.dir.path().join("state.redb");
    let approved = roles::approve_at_terminal(&state, &id, None);
    assert!(
        approved.status.success(),
        "approval failed:\n{}{}",
        String::from_utf8_lossy(&approved.stdout),
        String::from_utf8_lossy(&approved.stderr)
    );

    let promoted = Session::run(
        &server,
        &[
            ("promotion_status", json!({})),
            ("apply", json!({})),
            ("audit_list", json!({})),
        ],
    );
    let status = promoted.call(0).json();
    assert_eq!(status["promotion"]["id"], id.as_str(), "{status:#}");
    assert!(status["promotion"]["expires_at"].is_string());

    let apply = promoted.call(1);
    assert!(!apply.is_error(), "apply failed: {}", apply.text());
    assert!(apply.text().contains(&id), "{}", apply.text());
    let web = find_vm(&sim, "web-01").expect("apply created web-01 on the host");
    assert_eq!(web.power_state, "poweredOff");

    let runs = promoted.call(2).json();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["promotion"], id.as_str(), "{:#}", runs[0]);
}

#[test]
fn standard_output_carries_nothing_but_the_protocol_and_the_server_ends_with_its_input() {
    use std::io::{BufRead, BufReader, Write};

    let empty = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_ceso"))
        .args(["mcp", "--inventory"])
        .arg(empty.path())
        .env("CESO_STATE", empty.path().join("state.redb"))
        .env_remove("CESO_ROLE")
        .env_remove("CESO_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = server.stdin.take().unwrap();
    let mut output = BufReader::new(server.stdout.take().unwrap());
    let mut exchange = |messages: &[Value]| -> Value {
        for message in messages {
            writeln!(input, "{message}").unwrap();
        }
        input.flush().unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {line:?}"))
    };

    let initialized = exchange(&[json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}
        }
    })]);
    assert_eq!(initialized["id"], 1, "{initialized:#}");
    assert_eq!(initialized["result"]["serverInfo"]["name"], "ceso");

    // The inventory has no manifests: validate fails, and ceso's own output and message come
    // back inside the result, not on the server's standard output.
    let validated = exchange(&[
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "validate", "arguments": {}}}),
    ]);
    assert_eq!(validated["id"], 2, "{validated:#}");
    assert_eq!(validated["result"]["isError"], true);
    assert_eq!(
        validated["result"]["content"][0]["text"],
        "error: the manifests are invalid"
    );

    drop(input);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut output, &mut rest).unwrap();
    assert_eq!(rest, "", "nothing but responses on standard output");
    let status = server.wait().unwrap();
    assert!(
        status.success(),
        "the server ends when its input closes: {status}"
    );
}
