//! `ceso host check`: the API with the pinned certificate (against the ESXi simulator) and SSH
//! with the pinned host key (against a real OpenSSH server started for each test).

#[path = "support/sshd.rs"]
#[allow(dead_code)]
mod sshd;
mod support;

use std::process::Command;

use sshd::{Sshd, TEST_PASSWORD, TEST_USER, ssh_keygen_fingerprint};
use support::Simulator;
use support::inventory::{Inventory, Run};

/// A simulator that takes the same user and password as the test sshd, as one ESXi host takes
/// the same credentials for its API and SSH.
fn simulator() -> Simulator {
    Simulator::builder()
        .user(TEST_USER)
        .password(TEST_PASSWORD)
        .start()
}

/// An inventory whose one Host pins the simulator's certificate and, in `spec.ssh`, `host_key`
/// at the sshd's port.
fn inventory(sim: &Simulator, sshd: &Sshd, host_key: &str) -> Inventory {
    let trust = format!(
        "thumbprint: \"{}\"\n  ssh:\n    hostKey: \"{host_key}\"\n    port: {}",
        sim.thumbprint, sshd.port
    );
    Inventory::with_host(sim, "", &trust)
}

/// A fingerprint as valid as any, of a key the server does not have.
fn some_other_fingerprint() -> String {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("other");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    ssh_keygen_fingerprint(&key.with_extension("pub"))
}

/// Whether sshd saw any attempt to log in (it logs every `userauth-request` at DEBUG1).
fn login_attempted(sshd: &Sshd) -> bool {
    let log = sshd.log();
    log.contains("userauth-request") || log.contains("Failed ") || log.contains("Accepted ")
}

fn output(run: &Run) -> String {
    format!("{}{}", run.stdout(), run.stderr())
}

#[test]
fn with_the_pinned_host_key_both_checks_pass_and_the_command_runs() {
    let sim = simulator();
    let sshd = Sshd::start();
    let inv = inventory(&sim, &sshd, sshd.fingerprint());

    let run = inv.ceso(&sim, &["host", "check", "--inventory", "DIR"]);
    run.expect(0);
    let stdout = run.stdout();
    assert!(stdout.starts_with("esxi-01\n"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "  api  ok      {}: certificate pinned, logged in as {TEST_USER}; VMware ESXi",
            sim.url
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  ssh  ok      127.0.0.1:{}: host key {} (ssh-ed25519) is the pinned one, logged in as {TEST_USER}; `uname -sr`: Linux ",
            sshd.port,
            sshd.fingerprint()
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("\n1 host checked: every pin matched.\n"),
        "{stdout}"
    );
    assert!(
        sshd.log()
            .contains(&format!("Accepted password for {TEST_USER}")),
        "sshd log:\n{}",
        sshd.log()
    );
}

#[test]
fn the_json_report_says_what_was_checked() {
    let sim = simulator();
    let sshd = Sshd::start();
    let inv = inventory(&sim, &sshd, sshd.fingerprint());

    let run = inv.ceso(
        &sim,
        &["host", "check", "esxi-01", "--inventory", "DIR", "--json"],
    );
    run.expect(0);
    let json = run.json();
    assert_eq!(json["ok"], true);
    let host = &json["hosts"][0];
    assert_eq!(host["name"], "esxi-01");
    assert_eq!(host["ok"], true);
    assert_eq!(host["api"]["certificate"], "pinned");
    assert_eq!(host["api"]["ok"], true);
    assert!(
        host["api"]["product"]
            .as_str()
            .unwrap()
            .starts_with("VMware ESXi"),
        "{json}"
    );
    let ssh = &host["ssh"];
    assert_eq!(ssh["address"], format!("127.0.0.1:{}", sshd.port));
    assert_eq!(ssh["pinned"], sshd.fingerprint());
    assert_eq!(ssh["hostKey"]["fingerprint"], sshd.fingerprint());
    assert_eq!(ssh["hostKey"]["algorithm"], "ssh-ed25519");
    // Not ESXi: `vmware -vl` is not found, so the fallback ran.
    assert_eq!(ssh["command"], "uname -sr");
    assert_eq!(ssh["output"]["exitStatus"], 0);
    let uname = Command::new("uname").arg("-sr").output().unwrap();
    assert_eq!(
        ssh["output"]["stdout"],
        String::from_utf8_lossy(&uname.stdout).as_ref()
    );
    assert_eq!(ssh["error"], serde_json::Value::Null);
}

#[test]
fn a_host_key_other_than_the_pinned_one_is_refused_before_logging_in() {
    let sim = simulator();
    let sshd = Sshd::start();
    let pinned = some_other_fingerprint();
    let inv = inventory(&sim, &sshd, &pinned);

    let run = inv.ceso(&sim, &["host", "check", "--inventory", "DIR"]);
    run.expect(1);
    let stdout = run.stdout();
    assert!(
        stdout.contains("  api  ok "),
        "the API pin still holds:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  ssh  FAILED  SSH host key mismatch at 127.0.0.1:{}: the Host manifest pins {pinned}, the server presented {} (ssh-ed25519); refused before logging in",
            sshd.port,
            sshd.fingerprint()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("hint: if the host was reinstalled or its keys were regenerated"),
        "{stdout}"
    );
    assert!(
        run.stderr().contains("error: 1 of 1 host failed the check"),
        "{}",
        run.stderr()
    );
    assert!(
        !login_attempted(&sshd),
        "ceso tried to log in to a server with the wrong key; sshd log:\n{}",
        sshd.log()
    );
}

#[test]
fn any_of_the_hosts_keys_can_be_pinned() {
    // ESXi has an RSA and an ECDSA key (newer releases also Ed25519); pinning the one the key
    // exchange would not pick first still works.
    let sim = simulator();
    let sshd = Sshd::builder().host_keys(&["ed25519", "rsa"]).start();
    let rsa = sshd.host_keys[1].fingerprint.clone();
    let inv = inventory(&sim, &sshd, &rsa);

    let run = inv.ceso(&sim, &["host", "check", "--inventory", "DIR", "--json"]);
    run.expect(0);
    let ssh = &run.json()["hosts"][0]["ssh"];
    assert_eq!(ssh["hostKey"]["fingerprint"], rsa.as_str());
    assert_eq!(ssh["hostKey"]["algorithm"], "ssh-rsa");
}

#[test]
fn when_no_key_of_the_host_matches_every_presented_key_is_named() {
    let sim = simulator();
    let sshd = Sshd::builder()
        .host_keys(&["ed25519", "ecdsa", "rsa"])
        .start();
    let inv = inventory(&sim, &sshd, &some_other_fingerprint());

    let run = inv.ceso(&sim, &["host", "check", "--inventory", "DIR", "--json"]);
    run.expect(1);
    let ssh = &run.json()["hosts"][0]["ssh"];
    let error = ssh["error"].as_str().unwrap();
    for key in &sshd.host_keys {
        assert!(
            error.contains(&key.fingerprint),
            "{} missing: {error}",
            key.key_type
        );
    }
    assert_eq!(ssh["hostKey"], serde_json::Value::Null);
    assert!(!login_attempted(&sshd), "sshd log:\n{}", sshd.log());
}

#[test]
fn a_server_offering_only_keyboard_interactive_takes_the_password_that_way() {
    // What ESXi does: passwords through keyboard-interactive (PAM).
    let sim = simulator();
    let sshd = Sshd::builder()
        .password_authentication(false)
        .keyboard_interactive(true)
        .start();
    let inv = inventory(&sim, &sshd, sshd.fingerprint());

    let run = Run(inv
        .command(&sim, &["host", "check", "--inventory"])
        .arg(inv.path())
        .env("CESO_LOG", "trace")
        .output()
        .unwrap());
    run.expect(0);
    assert!(run.stdout().contains("  ssh  ok "), "{}", run.stdout());
    assert!(
        !output(&run).contains(TEST_PASSWORD),
        "the password leaked:\n{}",
        output(&run)
    );
    assert!(
        sshd.log().contains(&format!(
            "Accepted keyboard-interactive/pam for {TEST_USER}"
        )),
        "sshd log:\n{}",
        sshd.log()
    );
}

#[test]
fn a_wrong_password_is_a_clear_error_that_never_shows_the_password() {
    let wrong = "Not-the-password-5e2a71";
    let sim = Simulator::builder()
        .user(TEST_USER)
        .password(TEST_PASSWORD)
        .start();
    let sshd = Sshd::start();
    let inv = inventory(&sim, &sshd, sshd.fingerprint());

    let run = Run(inv
        .command(&sim, &["host", "check", "--inventory"])
        .arg(inv.path())
        .env(support::inventory::PASSWORD_ENV, wrong)
        // Even at the most verbose logging.
        .env("CESO_LOG", "trace")
        .output()
        .unwrap());
    run.expect(1);
    let stdout = run.stdout();
    assert!(
        stdout.contains(&format!(
            "  ssh  FAILED  127.0.0.1:{} refused the SSH login of user {TEST_USER} (tried password; the server offers ",
            sshd.port
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("hint: check spec.username and the password the Host manifest names"),
        "{stdout}"
    );
    assert!(stdout.contains("  api  FAILED "), "{stdout}");
    assert!(
        !output(&run).contains(wrong),
        "the password leaked:\n{}",
        output(&run)
    );
    assert!(
        sshd.log()
            .contains(&format!("Failed password for {TEST_USER}")),
        "sshd log:\n{}",
        sshd.log()
    );
}

#[test]
fn show_ssh_keys_prints_the_fingerprints_ssh_keygen_prints_without_logging_in() {
    let sim = simulator();
    let sshd = Sshd::builder()
        .host_keys(&["ed25519", "ecdsa", "rsa"])
        .start();
    // A Host that does not use SSH yet: the keys are what it takes to start.
    let inv = Inventory::with_host(&sim, "", &format!("thumbprint: \"{}\"", sim.thumbprint));
    let port = sshd.port.to_string();

    let run = inv.ceso(
        &sim,
        &[
            "host",
            "check",
            "esxi-01",
            "--inventory",
            "DIR",
            "--show-ssh-keys",
            "--ssh-port",
            &port,
        ],
    );
    run.expect(0);
    let stdout = run.stdout();
    assert!(
        stdout.starts_with(&format!(
            "esxi-01: 127.0.0.1:{port} presents 3 SSH host keys (shown, not trusted; nobody logged in):\n"
        )),
        "{stdout}"
    );
    for key in &sshd.host_keys {
        assert!(
            stdout.contains(&format!("  {}  ", key.fingerprint)),
            "{} key {} missing:\n{stdout}",
            key.key_type,
            key.fingerprint
        );
    }
    assert!(
        stdout.contains("for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $k; done"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  spec:\n    ssh:\n      hostKey: \"{}\"",
            sshd.host_keys[0].fingerprint
        )),
        "{stdout}"
    );
    assert!(!login_attempted(&sshd), "sshd log:\n{}", sshd.log());
}

#[test]
fn show_ssh_key_marks_the_pinned_key_in_json() {
    let sim = simulator();
    let sshd = Sshd::start();
    let inv = inventory(&sim, &sshd, sshd.fingerprint());

    let run = inv.ceso(
        &sim,
        &[
            "host",
            "check",
            "--inventory",
            "DIR",
            "--show-ssh-key",
            "--json",
        ],
    );
    run.expect(0);
    let host = &run.json()["hosts"][0];
    assert_eq!(host["address"], format!("127.0.0.1:{}", sshd.port));
    assert_eq!(host["pinned"], sshd.fingerprint());
    assert_eq!(
        host["keys"],
        serde_json::json!([{
            "algorithm": "ssh-ed25519",
            "fingerprint": sshd.fingerprint(),
            "pinned": true
        }])
    );
}

#[test]
fn a_malformed_fingerprint_in_the_manifest_is_refused_without_connecting() {
    let sim = simulator();
    let sshd = Sshd::start();
    let inv = inventory(&sim, &sshd, "SHA256:abc");

    let run = inv.ceso(&sim, &["host", "check", "--inventory", "DIR"]);
    run.expect(1);
    let text = output(&run);
    assert!(text.contains("spec.ssh.hostKey"), "{text}");
    assert!(
        text.contains(
            "invalid SSH host key fingerprint: `SHA256:` must be followed by 43 base64 characters, found 3"
        ),
        "{text}"
    );
    assert!(
        !sshd.log().contains("Connection from"),
        "sshd log:\n{}",
        sshd.log()
    );
}

#[test]
fn an_unknown_host_name_lists_the_inventorys_hosts() {
    let sim = simulator();
    let inv = Inventory::with_host(&sim, "", &format!("thumbprint: \"{}\"", sim.thumbprint));

    let run = inv.ceso(&sim, &["host", "check", "esxi-99", "--inventory", "DIR"]);
    run.expect(1);
    assert!(
        run.stderr()
            .contains("error: the inventory declares no host named esxi-99"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains("hint: hosts in the inventory: esxi-01"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_host_without_spec_ssh_is_checked_over_the_api_only() {
    let sim = simulator();
    let inv = Inventory::with_host(&sim, "", &format!("thumbprint: \"{}\"", sim.thumbprint));

    let run = inv.ceso(&sim, &["host", "check", "--inventory", "DIR"]);
    run.expect(0);
    assert!(
        run.stdout()
            .contains("  ssh  -       not used (the Host manifest has no spec.ssh)"),
        "{}",
        run.stdout()
    );
}

#[test]
fn validate_names_the_file_line_and_field_of_a_malformed_fingerprint() {
    let sim = simulator();
    let trust = format!(
        "thumbprint: \"{}\"\n  ssh:\n    hostKey: \"MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48\"",
        sim.thumbprint
    );
    let inv = Inventory::with_host(&sim, "", &trust);

    let run = inv.ceso(&sim, &["validate", "DIR"]);
    run.expect(1);
    let file = inv.path().join("hosts.yaml");
    assert!(
        run.stderr().contains(&format!(
            "error: {}:8:14: Host/esxi-01: spec.ssh.hostKey: invalid SSH host key fingerprint: an MD5 fingerprint; ceso pins the SHA-256 one",
            file.display()
        )),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains("hint: write the fingerprint as `ssh-keygen -lf` prints it"),
        "{}",
        run.stderr()
    );
}
