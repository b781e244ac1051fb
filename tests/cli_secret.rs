//! `ceso secret set|list|rm` through the real binary, and Hosts whose password is
//! `{ secret: NAME }` (ceso's encrypted store) or `{ keyring: NAME }` (a real Secret Service:
//! GNOME Keyring on a private D-Bus session bus) planned against the ESXi simulator.
//!
//! Every test has its own HOME, so the store (`~/.local/share/ceso/secrets.age`) and the
//! identity (`~/.config/ceso/identity.txt`) are its own.

mod support;

#[path = "fixtures/secrets/keyring_session.rs"]
mod keyring_session;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use keyring_session::KeyringSession;
use serde_json::Value;
use support::Simulator;
use support::inventory::Run;

/// A HOME of its own (also the working directory and the place of the state file and the
/// inventory). No keyring is reachable unless a [`KeyringSession`] is given.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn store(&self) -> PathBuf {
        self.path().join(".local/share/ceso/secrets.age")
    }

    fn identity(&self) -> PathBuf {
        self.path().join(".config/ceso/identity.txt")
    }

    fn inventory(&self) -> PathBuf {
        self.path().join("inventory")
    }

    /// `ceso args`, in this HOME, with no secret variables and no reachable D-Bus.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ceso"));
        command
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .env("CESO_STATE", self.path().join("state.redb"))
            .env("NO_COLOR", "1")
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}/no-bus", self.path().display()),
            );
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
        command
    }

    /// Runs `command` with `stdin` piped in.
    fn run_with(&self, mut command: Command, stdin: &str) -> Run {
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
        Run(child.wait_with_output().unwrap())
    }

    fn ceso(&self, args: &[&str], stdin: &str) -> Run {
        self.run_with(self.command(args), stdin)
    }

    /// Writes an inventory with one Host on `sim` whose password is `password` (YAML) and one
    /// VM to create.
    fn write_inventory(&self, sim: &Simulator, password: &str) {
        let dir = self.inventory();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("hosts.yaml"),
            format!(
                "apiVersion: ceso/v1\nkind: Host\nmetadata: {{ name: esxi-01 }}\nspec:\n  address: {}\n  thumbprint: \"{}\"\n  username: {}\n  password: {password}\n  datastore: {}\n  network: VM Network\n",
                sim.url, sim.thumbprint, sim.user, sim.datastore
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("vms.yaml"),
            "apiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: { name: web-01 }\nspec:\n  host: esxi-01\n  cpu: 1\n  memory: 512MiB\n  disks: [ { size: 1GiB } ]\n  power: off\n",
        )
        .unwrap();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[track_caller]
fn assert_never_shown(run: &Run, value: &str) {
    assert!(
        !run.stdout().contains(value) && !run.stderr().contains(value),
        "the secret value was printed:\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout(),
        run.stderr()
    );
}

/// The `AGE-SECRET-KEY-1...` line of an identity file.
fn key_line(identity: &Path) -> String {
    std::fs::read_to_string(identity)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("an identity line")
        .to_owned()
}

#[test]
fn set_list_and_rm_keep_values_encrypted_and_never_print_them() {
    let home = Home::new();

    let set = home.ceso(&["secret", "set", "esxi-01-root"], "Cli-Value-one-61\n");
    set.expect(0);
    assert_never_shown(&set, "Cli-Value-one-61");
    assert!(
        set.stdout()
            .contains("In a Host manifest: password: { secret: esxi-01-root }"),
        "{}",
        set.stdout()
    );
    assert!(
        set.stdout().contains(&format!(
            "Created the identity {} (mode 0600)",
            home.identity().display()
        )),
        "{}",
        set.stdout()
    );
    assert_eq!(mode(&home.identity()), 0o600);
    assert_eq!(mode(&home.store()), 0o600);
    let ciphertext = std::fs::read(home.store()).unwrap();
    assert!(ciphertext.starts_with(b"age-encryption.org/v1\n"));
    let text = String::from_utf8_lossy(&ciphertext);
    assert!(!text.contains("Cli-Value-one-61") && !text.contains("esxi-01-root"));

    let second = home.ceso(&["secret", "set", "lab.admin_2"], "Cli-Value-two-62");
    second.expect(0);
    assert!(!second.stdout().contains("Created the identity"));

    let list = home.ceso(&["secret", "list"], "");
    list.expect(0);
    assert_never_shown(&list, "Cli-Value-one-61");
    let table = list.stdout();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", list.stdout());
    assert!(
        lines[1].starts_with("esxi-01-root  store"),
        "{}",
        list.stdout()
    );
    assert!(
        lines[2].starts_with("lab.admin_2   store"),
        "{}",
        list.stdout()
    );
    assert!(lines[1].ends_with("password: { secret: esxi-01-root }"));

    let json = home.ceso(&["secret", "list", "--json"], "");
    json.expect(0);
    let document = json.json();
    assert_eq!(document["store"], home.store().display().to_string());
    let secrets = document["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[0]["name"], "esxi-01-root");
    assert_eq!(secrets[0]["where"], "store");
    assert!(secrets[0]["changed"].as_str().unwrap().ends_with('Z'));
    assert_never_shown(&json, "Cli-Value-two-62");

    // Replacing says so; the value read back is the new one (checked through a plan elsewhere).
    let replace = home.ceso(&["secret", "set", "lab.admin_2"], "Cli-Value-three-63\n");
    replace.expect(0);
    assert!(replace.stdout().starts_with("Replaced secret lab.admin_2"));

    let rm = home.ceso(&["secret", "rm", "lab.admin_2"], "");
    rm.expect(0);
    assert!(rm.stdout().starts_with(&format!(
        "Removed secret lab.admin_2 from {}.",
        home.store().display()
    )));
    let list = home.ceso(&["secret", "list", "--json"], "").json();
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1);

    let again = home.ceso(&["secret", "rm", "lab.admin_2"], "");
    again.expect(1);
    assert!(
        again.stderr().contains(&format!(
            "error: secret lab.admin_2 is not in the store {}",
            home.store().display()
        )),
        "{}",
        again.stderr()
    );
    assert!(
        again
            .stderr()
            .contains("hint: `ceso secret set lab.admin_2`")
    );
}

#[test]
fn list_without_a_store_says_how_to_make_one() {
    let home = Home::new();
    let run = home.ceso(&["secret", "list"], "");
    run.expect(0);
    assert!(
        run.stdout()
            .starts_with("No secrets yet. `ceso secret set NAME`"),
        "{}",
        run.stdout()
    );
    assert!(!home.identity().exists(), "list creates no identity");
}

#[test]
fn a_value_is_never_taken_from_an_argument_and_an_empty_one_is_refused() {
    let home = Home::new();
    let extra = home.ceso(&["secret", "set", "x", "Cli-Value-arg-64"], "");
    extra.expect(1);
    assert!(
        extra.stderr().contains("unexpected argument"),
        "{}",
        extra.stderr()
    );

    let empty = home.ceso(&["secret", "set", "x"], "\n");
    empty.expect(1);
    assert!(
        empty
            .stderr()
            .contains("error: the secret is empty; nothing was stored"),
        "{}",
        empty.stderr()
    );
    assert!(!home.store().exists());

    let bad = home.ceso(&["secret", "set", "bad name"], "v");
    bad.expect(1);
    assert!(
        bad.stderr()
            .contains("error: invalid secret name \"bad name\"")
    );
    assert!(bad.stderr().contains("hint: use 1 to 128 letters, digits"));
}

/// Waits until the pseudo-terminal that `script` (process `script`) gave its command echoes
/// no more: the moment a password prompt is ready for typing.
fn wait_for_echo_off(script: u32) {
    let children = std::fs::read_to_string(format!("/proc/{script}/task/{script}/children"))
        .expect("reading the children of `script`");
    let child = children
        .split_whitespace()
        .next()
        .expect("`script` runs the command");
    let terminal =
        std::fs::read_link(format!("/proc/{child}/fd/0")).expect("the command's terminal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let settings = Command::new("stty")
            .arg("-F")
            .arg(&terminal)
            .arg("-a")
            .output()
            .expect("running stty");
        if String::from_utf8_lossy(&settings.stdout)
            .split_whitespace()
            .any(|flag| flag == "-echo")
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the terminal {} kept echoing",
            terminal.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_terminal_is_asked_twice_without_echo() {
    let home = Home::new();
    // `script` gives ceso a pseudo-terminal; what it shows is what a person would see.
    let typed = |first: &str, second: &str| -> (i32, String) {
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c"])
            .arg(format!(
                "{} secret set term.secret",
                env!("CARGO_BIN_EXE_ceso")
            ))
            .arg("/dev/null")
            .current_dir(home.path())
            .env("HOME", home.path())
            .env("TERM", "dumb")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CESO_SECRETS_FILE")
            .env_remove("CESO_IDENTITY_FILE")
            .env_remove("CESO_SECRET_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running `script` (Debian's bsdutils)");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = String::new();
        let mut wait_for = |text: &str, seen: &mut String| {
            let mut buffer = [0u8; 256];
            while !seen.contains(text) {
                let n = stdout.read(&mut buffer).unwrap();
                assert!(
                    n > 0,
                    "the terminal closed before {text:?}; it showed:\n{seen}"
                );
                seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        };
        // A person types once the prompt is there and the terminal no longer echoes.
        let script = child.id();
        wait_for("Value of secret term.secret: ", &mut seen);
        wait_for_echo_off(script);
        stdin.write_all(format!("{first}\n").as_bytes()).unwrap();
        wait_for("Value of secret term.secret again: ", &mut seen);
        wait_for_echo_off(script);
        stdin.write_all(format!("{second}\n").as_bytes()).unwrap();
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        seen.push_str(&rest);
        let status = child.wait().unwrap();
        (status.code().unwrap_or(-1), seen)
    };

    let (code, screen) = typed("Cli-Value-typo-65", "Cli-Value-typo-66");
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("the two values differ; nothing was stored"),
        "{screen}"
    );
    assert!(!screen.contains("Cli-Value-typo"), "echoed:\n{screen}");
    assert!(!home.store().exists());

    let (code, screen) = typed("Cli-Value-term-67", "Cli-Value-term-67");
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains("Cli-Value-term-67"), "echoed:\n{screen}");
    assert!(
        screen.contains("password: { secret: term.secret }"),
        "{screen}"
    );
    assert_eq!(
        home.ceso(&["secret", "list", "--json"], "").json()["secrets"][0]["name"],
        "term.secret"
    );
}

#[test]
fn a_host_with_a_stored_password_is_planned_against_the_simulator() {
    let sim = Simulator::start();
    let home = Home::new();
    home.write_inventory(&sim, "{ secret: esxi-01-root }");
    home.ceso(
        &["secret", "set", "esxi-01-root"],
        &format!("{}\n", sim.password),
    )
    .expect(0);

    home.ceso(&["validate", "inventory"], "").expect(0);
    let plan = home.ceso(&["plan", "inventory"], "");
    plan.expect(2);
    assert!(
        plan.stdout().contains("+ VirtualMachine/web-01"),
        "{}",
        plan.stdout()
    );
    assert_never_shown(&plan, &sim.password);

    // A wrong value in the store is the host's refusal, reported as such.
    home.ceso(&["secret", "set", "esxi-01-root"], "Cli-Value-wrong-68")
        .expect(0);
    let refused = home.ceso(&["plan", "inventory"], "");
    refused.expect(1);
    assert!(refused.stderr().contains("esxi-01"), "{}", refused.stderr());
    assert_never_shown(&refused, "Cli-Value-wrong-68");
}

#[test]
fn a_missing_secret_names_the_host_the_secret_and_the_store() {
    let sim = Simulator::start();
    let home = Home::new();
    home.write_inventory(&sim, "{ secret: esxi-01-root }");

    // No store at all yet.
    let run = home.ceso(&["plan", "inventory"], "");
    run.expect(1);
    assert!(
        run.stderr().contains(&format!(
            "error: cannot read the password of host esxi-01: secret esxi-01-root: there is no secret store at {}",
            home.store().display()
        )),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains("hint: `ceso secret set esxi-01-root` stores it"),
        "{}",
        run.stderr()
    );

    // A store without that name.
    home.ceso(&["secret", "set", "another"], "Cli-Value-other-69")
        .expect(0);
    let run = home.ceso(&["plan", "inventory"], "");
    run.expect(1);
    assert!(
        run.stderr().contains(&format!(
            "error: cannot read the password of host esxi-01: secret esxi-01-root is not in the store {}",
            home.store().display()
        )),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains(
        "hint: `ceso secret set esxi-01-root` stores it; `ceso secret list` shows the names"
    ));
    assert_never_shown(&run, "Cli-Value-other-69");
}

#[test]
fn an_invalid_reference_is_a_validation_error_at_its_field() {
    let sim = Simulator::start();
    let home = Home::new();
    home.write_inventory(&sim, "{ secret: \"root password\" }");
    let run = home.ceso(&["validate", "inventory"], "");
    run.expect(1);
    assert!(
        run.stderr().contains(
            "inventory/hosts.yaml:8:23: Host/esxi-01: spec.password.secret: invalid secret name \"root password\""
        ),
        "{}",
        run.stderr()
    );

    home.write_inventory(&sim, "{ vault: esxi-01 }");
    let run = home.ceso(&["validate", "inventory"], "");
    run.expect(1);
    assert!(
        run.stderr().contains("hint: write `password: { secret: NAME }` (ceso's encrypted store: `ceso secret set NAME`), `{ keyring: NAME }` (the OS keyring), `{ env: VARIABLE }` or `{ file: path }`"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_missing_identity_is_named_with_where_to_put_it() {
    let sim = Simulator::start();
    let home = Home::new();
    home.write_inventory(&sim, "{ secret: esxi-01-root }");
    home.ceso(&["secret", "set", "esxi-01-root"], &sim.password)
        .expect(0);
    std::fs::remove_file(home.identity()).unwrap();

    for args in [&["plan", "inventory"][..], &["secret", "list"][..]] {
        let run = home.ceso(args, "");
        run.expect(1);
        assert!(
            run.stderr().contains(&format!(
                "cannot decrypt the secret store {}: the identity file {} does not exist",
                home.store().display(),
                home.identity().display()
            )),
            "{}",
            run.stderr()
        );
        assert!(
            run.stderr().contains("CESO_IDENTITY_FILE"),
            "{}",
            run.stderr()
        );
    }
    // Setting another secret does not quietly re-key the store to a new identity.
    home.ceso(&["secret", "set", "other"], "v").expect(1);
    assert!(!home.identity().exists());
}

#[test]
fn a_wrong_identity_is_refused_without_touching_the_store() {
    let sim = Simulator::start();
    let home = Home::new();
    home.write_inventory(&sim, "{ secret: esxi-01-root }");
    home.ceso(&["secret", "set", "esxi-01-root"], &sim.password)
        .expect(0);
    let other = Home::new();
    other.ceso(&["secret", "set", "x"], "v").expect(0);
    let wrong_key = key_line(&other.identity());
    let before = std::fs::read(home.store()).unwrap();

    let mut plan = home.command(&["plan", "inventory"]);
    plan.env("CESO_SECRET_KEY", &wrong_key);
    let run = home.run_with(plan, "");
    run.expect(1);
    assert!(
        run.stderr().contains(&format!(
            "the secret store {} cannot be decrypted with the key in CESO_SECRET_KEY: it was encrypted to another key",
            home.store().display()
        )),
        "{}",
        run.stderr()
    );
    assert_never_shown(&run, &wrong_key);

    let mut set = home.command(&["secret", "set", "y"]);
    set.env("CESO_IDENTITY_FILE", other.identity());
    home.run_with(set, "v").expect(1);
    assert_eq!(
        std::fs::read(home.store()).unwrap(),
        before,
        "store untouched"
    );
}

#[test]
fn an_identity_others_can_read_is_refused_and_a_readable_store_warned_about() {
    let home = Home::new();
    home.ceso(&["secret", "set", "x"], "Cli-Value-perm-70")
        .expect(0);

    chmod(&home.identity(), 0o644);
    let run = home.ceso(&["secret", "list"], "");
    run.expect(1);
    assert!(
        run.stderr().contains(&format!(
            "error: the identity file {} is readable by other users (mode 0644); it is not used",
            home.identity().display()
        )),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains(&format!("hint: `chmod 600 {}`", home.identity().display()))
    );

    chmod(&home.identity(), 0o600);
    chmod(&home.store(), 0o644);
    let run = home.ceso(&["secret", "list"], "");
    run.expect(0);
    assert!(
        run.stderr()
            .contains("is readable by other users (mode 0644); it is encrypted"),
        "{}",
        run.stderr()
    );
    // The next write leaves it private again.
    home.ceso(&["secret", "set", "y"], "v").expect(0);
    assert_eq!(mode(&home.store()), 0o600);
}

#[test]
fn ci_gives_the_key_and_the_store_through_variables() {
    let sim = Simulator::start();
    let home = Home::new();
    home.write_inventory(&sim, "{ secret: esxi-01-root }");
    // A key made once (here by a throwaway HOME), kept in the CI system's secret variables.
    let maker = Home::new();
    maker.ceso(&["secret", "set", "x"], "v").expect(0);
    let key = key_line(&maker.identity());
    let store = home.path().join("ci/secrets.age");
    let with_ci = |args: &[&str]| {
        let mut command = home.command(args);
        command
            .env("CESO_SECRET_KEY", &key)
            .env("CESO_SECRETS_FILE", &store);
        command
    };

    home.run_with(with_ci(&["secret", "set", "esxi-01-root"]), &sim.password)
        .expect(0);
    assert!(store.is_file());
    assert!(!home.identity().exists(), "no identity file is created");
    home.run_with(with_ci(&["plan", "inventory"]), "").expect(2);
    let list = home
        .run_with(with_ci(&["secret", "list", "--json"]), "")
        .json();
    assert_eq!(list["identity"], "the key in CESO_SECRET_KEY");
    assert_eq!(list["store"], store.display().to_string());
}

#[test]
fn concurrent_sets_lose_no_secret() {
    let home = Home::new();
    home.ceso(&["secret", "set", "first"], "v").expect(0);
    let children: Vec<_> = (0..6)
        .map(|i| {
            let mut child = home
                .command(&["secret", "set", &format!("parallel-{i}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("value-{i}").as_bytes())
                .unwrap();
            child
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let list = home.ceso(&["secret", "list", "--json"], "").json();
    let names: Vec<&str> = list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "first",
            "parallel-0",
            "parallel-1",
            "parallel-2",
            "parallel-3",
            "parallel-4",
            "parallel-5"
        ]
    );
}

#[test]
fn the_os_keyring_holds_a_host_password() {
    let sim = Simulator::start();
    let home = Home::new();
    let keyring = KeyringSession::start(home.path());
    let ceso = |args: &[&str], stdin: &str| {
        let mut command = home.command(args);
        keyring.apply(&mut command);
        home.run_with(command, stdin)
    };
    home.write_inventory(&sim, "{ keyring: esxi-01-root }");

    let set = ceso(
        &["secret", "set", "esxi-01-root", "--keyring"],
        &sim.password,
    );
    set.expect(0);
    assert!(
        set.stdout().contains(
            "Stored secret esxi-01-root in the OS keyring (service ceso).\nIn a Host manifest: password: { keyring: esxi-01-root }"
        ),
        "{}",
        set.stdout()
    );
    assert!(
        !home.store().exists(),
        "the encrypted store is not involved"
    );

    let list = ceso(&["secret", "list", "--json"], "").json();
    assert_eq!(list["secrets"][0]["name"], "esxi-01-root");
    assert_eq!(list["secrets"][0]["where"], "keyring");

    let plan = ceso(&["plan", "inventory"], "");
    plan.expect(2);
    assert_never_shown(&plan, &sim.password);

    ceso(&["secret", "rm", "esxi-01-root", "--keyring"], "").expect(0);
    let gone = ceso(&["plan", "inventory"], "");
    gone.expect(1);
    assert!(
        gone.stderr().contains(
            "error: cannot read the password of host esxi-01: keyring entry esxi-01-root (service ceso) does not exist in the OS keyring"
        ),
        "{}",
        gone.stderr()
    );
    assert!(
        gone.stderr()
            .contains("hint: `ceso secret set esxi-01-root --keyring`")
    );
    let list: Value = ceso(&["secret", "list", "--json"], "").json();
    assert_eq!(list["secrets"].as_array().unwrap().len(), 0);
}

#[test]
fn without_a_keyring_the_error_says_so_and_points_to_the_store() {
    let sim = Simulator::start();
    let home = Home::new();
    home.write_inventory(&sim, "{ keyring: esxi-01-root }");
    for (args, stdin) in [
        (&["secret", "set", "esxi-01-root", "--keyring"][..], "v"),
        (&["plan", "inventory"][..], ""),
    ] {
        let run = home.ceso(args, stdin);
        run.expect(1);
        assert!(
            run.stderr()
                .contains("keyring entry esxi-01-root: no OS keyring is reachable"),
            "{}",
            run.stderr()
        );
        assert!(
            run.stderr().contains(
                "use ceso's encrypted store: `ceso secret set esxi-01-root`, then `password: { secret: esxi-01-root }`"
            ),
            "{}",
            run.stderr()
        );
    }
}
