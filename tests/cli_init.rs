//! `ceso init DIR --host ADDRESS`: the real `ceso` binary against the ESXi simulator. It shows
//! the certificate the host presents, pins its thumbprint only once confirmed, and writes an
//! inventory that validates, plans, and (after the template is imported as the printed steps
//! say, which replaces the placeholder) applies.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::inventory::{Inventory, PASSWORD_ENV, Run};
use support::{Simulator, find_vm};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIWfxi9EhUErF4Znpc9LrcYBH89qZmCdIn6o6EZ/NlyP ops@lab.example";

/// Every file `ceso init` writes.
const WRITTEN: [&str; 6] = [
    "hosts.yaml",
    "pools.yaml",
    "templates/ubuntu-24.04.yaml",
    "vms/example.yaml",
    ".gitignore",
    "schemas/ceso-v1.schema.json",
];

/// A scratch directory whose `inventory/` does not exist yet, a public key file beside it, and
/// an empty home directory (so no key of the person running the tests is picked up).
fn workspace() -> Inventory {
    let inventory = Inventory {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    std::fs::write(inventory.dir.path().join("ops.pub"), format!("{KEY}\n")).expect("key");
    std::fs::create_dir(inventory.dir.path().join("home")).expect("home");
    inventory
}

fn key_file(inventory: &Inventory) -> String {
    inventory.dir.path().join("ops.pub").display().to_string()
}

/// `ceso ARGS` in the workspace (`DIR` is the inventory path), without a terminal, with the
/// simulator's password in `CESO_E2E_PASSWORD` and nothing in `ESXI_PASSWORD`.
fn ceso(inventory: &Inventory, sim: &Simulator, args: &[&str]) -> Run {
    Run(command(inventory, sim, args).output().expect("ceso runs"))
}

fn command(inventory: &Inventory, sim: &Simulator, args: &[&str]) -> Command {
    let path = inventory.path().display().to_string();
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "DIR" { path.as_str() } else { a })
        .collect();
    let mut command = inventory.command(sim, &args);
    command
        .env("HOME", inventory.dir.path().join("home"))
        .env_remove("ESXI_PASSWORD");
    command
}

/// `ceso init DIR --host <simulator> --yes`, logging in, with the workspace's key, plus `extra`.
fn init(inventory: &Inventory, sim: &Simulator, extra: &[&str]) -> Run {
    let key = key_file(inventory);
    let mut args = vec![
        "init",
        "DIR",
        "--host",
        &sim.url,
        "--password-env",
        PASSWORD_ENV,
        "--ssh-key",
        &key,
    ];
    args.extend_from_slice(extra);
    ceso(inventory, sim, &args)
}

/// The manifests written, one after the other, with what changes from run to run redacted.
fn written_manifests(dir: &Path, sim: &Simulator) -> String {
    WRITTEN
        .iter()
        .filter(|file| !file.ends_with(".json"))
        .map(|file| {
            let text = std::fs::read_to_string(dir.join(file))
                .unwrap_or_else(|e| panic!("{file} was not written: {e}"));
            format!("=== {file}\n{text}")
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace(&sim.thumbprint, "[THUMBPRINT]")
        .replace(sim.host_port(), "127.0.0.1:[PORT]")
}

fn nothing_written(dir: &Path) -> bool {
    WRITTEN.iter().all(|file| !dir.join(file).exists())
}

/// Runs a step of the printed next steps in the inventory directory, as the steps say (`cd DIR`),
/// with the default state file (`.ceso/state.redb` there).
fn in_inventory(inventory: &Inventory, sim: &Simulator, args: &[&str]) -> Run {
    Run(command(inventory, sim, args)
        .current_dir(inventory.path())
        .env_remove("CESO_STATE")
        .output()
        .expect("ceso runs"))
}

#[test]
fn init_writes_an_inventory_whose_printed_next_steps_lead_to_a_first_apply() {
    let sim = Simulator::builder()
        .guest_tools(true)
        .guest_delay_ms(100)
        .start();
    let inventory = workspace();
    let run = init(&inventory, &sim, &["--yes"]);
    run.expect(0);
    let stdout = run.stdout();

    // The certificate shown is the one the simulator presents, with both thumbprints.
    assert!(
        stdout.contains(&format!("SHA-256:  {}", sim.thumbprint)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("SHA-1:    {}", sim.thumbprint_sha1)),
        "{stdout}"
    );
    assert!(
        stdout.contains("subject:  CN=localhost, O=ceso esxsim"),
        "{stdout}"
    );
    assert!(
        stdout.contains("issuer:   CN=esxsim test CA, O=ceso esxsim"),
        "{stdout}"
    );
    assert!(stdout.contains("Trusting this certificate without asking (--yes)."));
    // It logged in and took what the host has.
    assert!(
        stdout.contains("Datastores: LocalDS_0; port groups: VM Network."),
        "{stdout}"
    );
    let hosts = std::fs::read_to_string(inventory.path().join("hosts.yaml")).expect("hosts");
    assert!(hosts.contains(&format!("thumbprint: \"{}\"", sim.thumbprint)));
    assert!(
        !hosts.contains(&sim.password),
        "no password in the manifest"
    );
    assert!(!stdout.contains(&sim.password) && !run.stderr().contains(&sim.password));
    insta::assert_snapshot!(
        "inventory_written_after_logging_in",
        written_manifests(&inventory.path(), &sim)
    );
    let schema = std::fs::read_to_string(inventory.path().join("schemas/ceso-v1.schema.json"))
        .expect("schema");
    assert_eq!(schema, ceso::cli::manifest_schema_text());

    // The next steps, as printed.
    let steps = stdout
        .split_once("Next steps:\n")
        .map(|(_, steps)| steps.to_owned())
        .expect("next steps printed");
    insta::assert_snapshot!(
        "next_steps",
        steps.replace(&inventory.path().display().to_string(), "[DIR]")
    );

    in_inventory(&inventory, &sim, &["validate", "."]).expect(0);

    // Before the import the plan names the missing template disk, as the placeholder says.
    let early = in_inventory(&inventory, &sim, &["plan", "."]);
    early.expect(1);
    assert!(
        early
            .stdout()
            .contains("the disk [LocalDS_0] ubuntu-24.04/ubuntu-24.04.vmdk of template \"ubuntu-24.04\" is not on host esxi-01")
            || early.stderr().contains("is not on host esxi-01"),
        "{}{}",
        early.stdout(),
        early.stderr()
    );

    // Import the template as the steps say (a small stand-in for Ubuntu's OVA): the import
    // replaces the placeholder, nothing to remove first.
    let ova = support::ova::build_ova(
        inventory.dir.path(),
        "ubuntu-24.04-server-cloudimg-amd64",
        4 << 20,
        "efi",
    );
    let ova = ova.display().to_string();
    let import = in_inventory(
        &inventory,
        &sim,
        &[
            "template",
            "import",
            &ova,
            "--name",
            "ubuntu-24.04",
            "--host",
            "esxi-01",
            "--inventory",
            ".",
        ],
    );
    import.expect(0);
    assert!(
        import.stdout().contains(
            "Replaced the placeholder ./templates/ubuntu-24.04.yaml that `ceso init` wrote."
        ),
        "{}",
        import.stdout()
    );
    let template = std::fs::read_to_string(inventory.path().join("templates/ubuntu-24.04.yaml"))
        .expect("template");
    assert!(
        template.contains("# Written by `ceso template import")
            && !template.contains("Placeholder"),
        "{template}"
    );

    let plan = in_inventory(&inventory, &sim, &["plan", "."]);
    plan.expect(2);
    assert!(
        plan.stdout().contains("+ VirtualMachine/example"),
        "{}",
        plan.stdout()
    );
    assert!(
        plan.stdout().contains("192.168.1.100/24 (pool lan)"),
        "{}",
        plan.stdout()
    );

    in_inventory(&inventory, &sim, &["apply", ".", "--auto-approve"]).expect(0);
    let vm = find_vm(&sim, "example").expect("the example VM exists");
    assert_eq!(vm.guest_ip.as_deref(), Some("192.168.1.100"));
    in_inventory(&inventory, &sim, &["plan", "."]).expect(0);
    // The state file stays out of git.
    assert!(inventory.path().join(".ceso/state.redb").exists());
    let ignore = std::fs::read_to_string(inventory.path().join(".gitignore")).expect("ignore");
    assert!(ignore.lines().any(|l| l == ".ceso/*"));
}

#[test]
fn init_on_a_host_that_holds_the_template_writes_its_manifest_and_plans_right_away() {
    let sim = Simulator::start();
    let first = workspace();
    init(&first, &sim, &["--yes"]).expect(0);
    let ova = support::ova::build_ova(first.dir.path(), "ubuntu-cloudimg", 4 << 20, "efi");
    first
        .ceso(
            &sim,
            &[
                "template",
                "import",
                &ova.display().to_string(),
                "--name",
                "ubuntu-24.04",
                "--host",
                "esxi-01",
                "--inventory",
                "DIR",
            ],
        )
        .expect(0);
    let imported = std::fs::read_to_string(first.path().join("templates/ubuntu-24.04.yaml"))
        .expect("template");

    let second = workspace();
    let run = init(&second, &sim, &["--yes"]);
    run.expect(0);
    assert!(
        !run.stdout().contains("template import"),
        "{}",
        run.stdout()
    );
    let found = std::fs::read_to_string(second.path().join("templates/ubuntu-24.04.yaml"))
        .expect("template");
    let spec = |text: &str| text.split_once("spec:").map(|(_, s)| s.to_owned());
    assert_eq!(
        spec(&found),
        spec(&imported),
        "the same spec as the import wrote"
    );
    assert!(
        found.contains("# Written by `ceso init` from the host"),
        "{found}"
    );
    second.ceso(&sim, &["plan", "DIR"]).expect(2);
}

#[test]
fn a_thumbprint_that_does_not_match_is_refused_and_nothing_is_written() {
    let sim = Simulator::start();
    let inventory = workspace();
    let wrong = "AB:".repeat(31) + "AB";
    let run = init(&inventory, &sim, &["--thumbprint", &wrong]);
    run.expect(1);
    assert!(
        run.stderr().contains("does NOT match --thumbprint"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains(&sim.thumbprint),
        "names what the host presented"
    );
    assert!(run.stderr().contains("hint:"));
    assert!(nothing_written(&inventory.path()));

    // The right one, in openssl's format, is accepted without asking (and without a terminal).
    let right = format!("sha256 Fingerprint={}", sim.thumbprint.to_lowercase());
    let run = init(&inventory, &sim, &["--thumbprint", &right]);
    run.expect(0);
    assert!(
        run.stdout()
            .contains("The certificate matches --thumbprint.")
    );
}

#[test]
fn existing_files_are_listed_and_kept_unless_forced() {
    let sim = Simulator::start();
    let inventory = workspace();
    std::fs::create_dir_all(inventory.path().join("vms")).expect("mkdir");
    std::fs::write(inventory.path().join("hosts.yaml"), "# mine\n").expect("write");
    std::fs::write(inventory.path().join("vms/example.yaml"), "# mine too\n").expect("write");

    let run = init(&inventory, &sim, &["--yes"]);
    run.expect(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("already holds files ceso init writes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hosts.yaml") && stderr.contains("vms/example.yaml"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("pools.yaml"),
        "only the files that exist: {stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(inventory.path().join("hosts.yaml")).expect("read"),
        "# mine\n"
    );
    assert!(!inventory.path().join("pools.yaml").exists());

    init(&inventory, &sim, &["--yes", "--force"]).expect(0);
    let hosts = std::fs::read_to_string(inventory.path().join("hosts.yaml")).expect("read");
    assert!(hosts.contains("kind: Host"), "{hosts}");
}

#[test]
fn without_a_terminal_the_thumbprint_needs_yes_and_nothing_is_written() {
    let sim = Simulator::start();
    let inventory = workspace();
    let run = init(&inventory, &sim, &[]);
    run.expect(1);
    // The certificate is still shown, so it can be checked and passed with --thumbprint.
    assert!(run.stdout().contains(&sim.thumbprint), "{}", run.stdout());
    let stderr = run.stderr();
    assert!(
        stderr.contains("standard input is not a terminal"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--yes") && stderr.contains("--thumbprint"),
        "{stderr}"
    );
    assert!(nothing_written(&inventory.path()));
    assert!(!inventory.path().exists(), "not even the directory");
}

/// Runs `ceso init` on a pseudo-terminal (util-linux `script`) and types `answer`.
fn init_on_a_terminal(inventory: &Inventory, sim: &Simulator, answer: &str) -> Run {
    let line = format!(
        "{} init {} --host {} --ssh-key {}",
        env!("CARGO_BIN_EXE_ceso"),
        inventory.path().display(),
        sim.url,
        key_file(inventory)
    );
    let mut child = Command::new("script");
    child
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .env(PASSWORD_ENV, &sim.password)
        .env("HOME", inventory.dir.path().join("home"))
        .env("NO_COLOR", "1")
        .env_remove("ESXI_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = child.spawn().expect("script runs");
    {
        use std::io::Write;
        let mut stdin = process.stdin.take().expect("stdin");
        stdin.write_all(answer.as_bytes()).expect("type the answer");
    }
    Run(process.wait_with_output().expect("script ends"))
}

#[test]
fn on_a_terminal_typing_yes_pins_the_thumbprint_and_anything_else_writes_nothing() {
    let sim = Simulator::start();
    let refused = workspace();
    let run = init_on_a_terminal(&refused, &sim, "no\n");
    assert!(
        run.stdout()
            .contains("Does the host show the same SHA-256 thumbprint? Type yes to pin it:"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("the thumbprint was not confirmed"),
        "{}",
        run.stdout()
    );
    assert_eq!(run.code(), 1);
    assert!(nothing_written(&refused.path()));

    let confirmed = workspace();
    let run = init_on_a_terminal(&confirmed, &sim, "yes\n");
    run.expect(0);
    let hosts = std::fs::read_to_string(confirmed.path().join("hosts.yaml")).expect("hosts");
    assert!(hosts.contains(&sim.thumbprint));
}

#[test]
fn without_the_password_init_writes_esxis_default_names_and_says_so() {
    let sim = Simulator::start();
    let inventory = workspace();
    let key = key_file(&inventory);
    let run = ceso(
        &inventory,
        &sim,
        &[
            "init",
            "DIR",
            "--host",
            &sim.url,
            "--yes",
            "--ssh-key",
            &key,
        ],
    );
    run.expect(0);
    let stdout = run.stdout();
    assert!(
        stdout.contains("$ESXI_PASSWORD is not set, so ceso did not log in"),
        "{stdout}"
    );
    assert!(
        stdout.contains("read -rs ESXI_PASSWORD && export ESXI_PASSWORD"),
        "{stdout}"
    );
    let hosts = std::fs::read_to_string(inventory.path().join("hosts.yaml")).expect("hosts");
    assert!(
        hosts.contains("  password: { env: ESXI_PASSWORD }\n"),
        "{hosts}"
    );
    assert!(hosts.contains("  datastore: datastore1\n"), "{hosts}");
    assert!(hosts.contains("  network: VM Network\n"), "{hosts}");
    assert!(
        hosts.contains("ESXi's default names: check them on the host"),
        "{hosts}"
    );
    in_inventory(&inventory, &sim, &["validate", "."]).expect(0);
}

#[test]
fn without_an_ssh_key_the_example_vm_says_where_to_put_one() {
    let sim = Simulator::start();
    let inventory = workspace();
    let run = ceso(
        &inventory,
        &sim,
        &[
            "init",
            "DIR",
            "--host",
            &sim.url,
            "--yes",
            "--password-env",
            PASSWORD_ENV,
        ],
    );
    run.expect(0);
    assert!(
        run.stdout()
            .contains("Add your SSH public key to vms/example.yaml")
    );
    let vm = std::fs::read_to_string(inventory.path().join("vms/example.yaml")).expect("vm");
    assert!(
        vm.contains("  # cloudInit:\n  #   sshAuthorizedKeys:\n"),
        "{vm}"
    );
    in_inventory(&inventory, &sim, &["validate", "."]).expect(0);

    // A key in ~/.ssh is taken when none is given.
    let home_ssh = inventory.dir.path().join("home/.ssh");
    std::fs::create_dir(&home_ssh).expect("mkdir");
    std::fs::write(home_ssh.join("id_ed25519.pub"), format!("{KEY}\n")).expect("key");
    let run = ceso(
        &inventory,
        &sim,
        &[
            "init",
            "DIR",
            "--host",
            &sim.url,
            "--yes",
            "--password-env",
            PASSWORD_ENV,
            "--force",
        ],
    );
    run.expect(0);
    assert!(run.stdout().contains("id_ed25519.pub"), "{}", run.stdout());
    let vm = std::fs::read_to_string(inventory.path().join("vms/example.yaml")).expect("vm");
    assert!(vm.contains(&format!("      - {KEY}\n")), "{vm}");
}

#[test]
fn a_datastore_or_port_group_the_host_lacks_is_refused_naming_what_it_has() {
    let sim = Simulator::start();
    let inventory = workspace();
    let run = init(&inventory, &sim, &["--yes", "--datastore", "datastore9"]);
    run.expect(1);
    assert!(
        run.stderr()
            .contains("the host has no datastore \"datastore9\""),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("LocalDS_0"), "{}", run.stderr());
    let run = init(&inventory, &sim, &["--yes", "--network", "DMZ"]);
    run.expect(1);
    assert!(run.stderr().contains("VM Network"), "{}", run.stderr());
    assert!(nothing_written(&inventory.path()));
}

#[test]
fn a_wrong_password_is_refused_before_anything_is_written() {
    let sim = Simulator::start();
    let inventory = workspace();
    let key = key_file(&inventory);
    let run = Run(command(
        &inventory,
        &sim,
        &[
            "init",
            "DIR",
            "--host",
            &sim.url,
            "--yes",
            "--password-env",
            "WRONG_PASSWORD",
            "--ssh-key",
            &key,
        ],
    )
    .env("WRONG_PASSWORD", "not-the-password")
    .output()
    .expect("ceso runs"));
    run.expect(1);
    assert!(
        run.stderr().contains("wrong user name or password"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("not-the-password"));
    assert!(nothing_written(&inventory.path()));
}

#[test]
fn an_unreachable_host_is_named_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory: PathBuf = dir.path().join("inventory");
    let output = Command::new(env!("CARGO_BIN_EXE_ceso"))
        .args([
            "init",
            &inventory.display().to_string(),
            "--host",
            "127.0.0.1:1",
            "--yes",
        ])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("ceso runs");
    let run = Run(output);
    run.expect(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("cannot read the certificate of 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: check that 127.0.0.1:1 is the ESXi host's name"),
        "{stderr}"
    );
    assert!(!inventory.exists());
}
