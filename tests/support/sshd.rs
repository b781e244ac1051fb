//! A real OpenSSH server for tests: Debian's `/usr/sbin/sshd` on a free loopback port, with
//! host keys made by `ssh-keygen` and a configuration of its own in a temporary directory, and
//! a test user with a known password (created once with `useradd`/`chpasswd`: tests run as
//! root, here and in CI).
//!
//! Requirements: the `openssh-server` package (the project's `tests/setup.sh` installs it) and
//! root. When either is missing the tests FAIL with a message saying so; they never skip.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server binary (an absolute path: sshd re-executes itself).
pub const SSHD: &str = "/usr/sbin/sshd";
/// The user the tests log in as.
pub const TEST_USER: &str = "ceso-ssh-test";
/// Its password.
pub const TEST_PASSWORD: &str = "Ceso-ssh-test-8b1f4c";

const INSTALL_HINT: &str = "the SSH tests need Debian's OpenSSH server and root: run the project's \
     test script (it installs it), or `apt-get update && apt-get install -y openssh-server`";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One host key of the server.
#[derive(Debug, Clone)]
pub struct HostKey {
    /// `ed25519`, `ecdsa` or `rsa` (as `ssh-keygen -t` takes it).
    pub key_type: String,
    /// The public key file.
    pub public_path: PathBuf,
    /// The fingerprint `ssh-keygen -lf` prints for it (`SHA256:...`).
    pub fingerprint: String,
}

/// Options for [`Sshd`]; see [`Sshd::builder`].
#[derive(Debug, Clone)]
pub struct SshdBuilder {
    key_types: Vec<&'static str>,
    password_authentication: bool,
    keyboard_interactive: bool,
}

/// A running sshd. Dropping it stops the server and removes its directory.
pub struct Sshd {
    pub port: u16,
    /// In the order of the `HostKey` lines of the configuration.
    pub host_keys: Vec<HostKey>,
    child: Child,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SshdBuilder {
    /// The host keys, e.g. `["ed25519", "rsa"]` (default: one ed25519 key).
    pub fn host_keys(mut self, key_types: &[&'static str]) -> Self {
        self.key_types = key_types.to_vec();
        self
    }

    /// `PasswordAuthentication` (default yes).
    pub fn password_authentication(mut self, on: bool) -> Self {
        self.password_authentication = on;
        self
    }

    /// `KbdInteractiveAuthentication` through PAM, as ESXi offers passwords (default no).
    pub fn keyboard_interactive(mut self, on: bool) -> Self {
        self.keyboard_interactive = on;
        self
    }

    /// Generates the keys, writes the configuration and starts sshd; returns once it listens.
    pub fn start(self) -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} not found; {INSTALL_HINT}"
        );
        ensure_test_user();
        // Debian's sshd wants its privilege separation directory.
        fs::create_dir_all("/run/sshd").unwrap_or_else(|e| panic!("creating /run/sshd: {e}"));

        let dir = tempfile::Builder::new()
            .prefix("ceso-sshd-")
            .tempdir()
            .expect("creating the sshd directory");
        let host_keys: Vec<HostKey> = self
            .key_types
            .iter()
            .map(|key_type| generate_host_key(dir.path(), key_type))
            .collect();
        let log_path = dir.path().join("sshd.log");

        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = self.config(dir.path(), port, &host_keys);
            let config_path = dir.path().join("sshd_config");
            fs::write(&config_path, config).expect("writing sshd_config");
            let log = File::create(&log_path).expect("creating the sshd log");
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("starting {SSHD}: {e}; {INSTALL_HINT}"));
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains(&format!("Server listening on 127.0.0.1 port {port}")) {
                    return Sshd {
                        port,
                        host_keys,
                        child,
                        log_path,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    last_log = log;
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("sshd did not listen within {START_TIMEOUT:?}; its log:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!("sshd exited before listening; its log:\n{last_log}\n{INSTALL_HINT}");
    }

    fn config(&self, dir: &Path, port: u16, host_keys: &[HostKey]) -> String {
        let yes_no = |on: bool| if on { "yes" } else { "no" };
        let mut config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nPidFile {pid}\nLogLevel DEBUG1\n\
             PasswordAuthentication {password}\nKbdInteractiveAuthentication {kbd}\n\
             UsePAM {pam}\nPubkeyAuthentication no\nPermitRootLogin no\nAllowUsers {TEST_USER}\n\
             PermitEmptyPasswords no\nStrictModes no\nUseDNS no\nPrintMotd no\nPrintLastLog no\n\
             MaxAuthTries 6\n",
            pid = dir.join("sshd.pid").display(),
            password = yes_no(self.password_authentication),
            kbd = yes_no(self.keyboard_interactive),
            // Keyboard-interactive passwords need PAM on Linux.
            pam = yes_no(self.keyboard_interactive),
        );
        for key in host_keys {
            let private = key.public_path.with_extension("");
            config.push_str(&format!("HostKey {}\n", private.display()));
        }
        config
    }
}

impl Sshd {
    /// Options: one ed25519 host key, password authentication.
    pub fn builder() -> SshdBuilder {
        SshdBuilder {
            key_types: vec!["ed25519"],
            password_authentication: true,
            keyboard_interactive: false,
        }
    }

    /// One ed25519 host key, password authentication.
    pub fn start() -> Sshd {
        Sshd::builder().start()
    }

    /// The fingerprint of the (first) host key.
    pub fn fingerprint(&self) -> &str {
        &self.host_keys[0].fingerprint
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssh-keygen -t TYPE` into `dir`, and the fingerprint `ssh-keygen -lf` prints for it.
fn generate_host_key(dir: &Path, key_type: &str) -> HostKey {
    let private = dir.join(format!("ssh_host_{key_type}_key"));
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", key_type, "-N", "", "-C", "", "-f"])
        .arg(&private)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running ssh-keygen: {e}; {INSTALL_HINT}"));
    assert!(
        output.status.success(),
        "ssh-keygen -t {key_type} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let public_path = private.with_extension("pub");
    HostKey {
        key_type: key_type.to_owned(),
        fingerprint: ssh_keygen_fingerprint(&public_path),
        public_path,
    }
}

/// The `SHA256:...` field of `ssh-keygen -lf FILE` (`256 SHA256:... comment (ED25519)`).
pub fn ssh_keygen_fingerprint(public_key: &Path) -> String {
    let output = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap_or_else(|e| panic!("running ssh-keygen -lf: {e}; {INSTALL_HINT}"));
    assert!(output.status.success(), "ssh-keygen -lf failed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split_whitespace()
        .find(|field| field.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no SHA256 fingerprint in `ssh-keygen -lf` output: {text}"))
        .to_owned()
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("finding a free port")
}

/// Creates [`TEST_USER`] if missing and sets [`TEST_PASSWORD`] (once per test process).
fn ensure_test_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let exists = Command::new("id")
            .arg("-u")
            .arg(TEST_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !exists {
            let output = Command::new("useradd")
                .args(["--create-home", "--shell", "/bin/sh", TEST_USER])
                .output()
                .unwrap_or_else(|e| panic!("running useradd: {e}; {INSTALL_HINT}"));
            // Another process may have created it meanwhile (exit 9: the user exists).
            assert!(
                output.status.success() || output.status.code() == Some(9),
                "useradd {TEST_USER} failed (the SSH tests run as root): {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running chpasswd: {e}; {INSTALL_HINT}"));
        {
            use std::io::Write;
            let mut stdin = chpasswd.stdin.take().expect("chpasswd stdin");
            writeln!(stdin, "{TEST_USER}:{TEST_PASSWORD}").expect("writing to chpasswd");
        }
        let output = chpasswd.wait_with_output().expect("waiting for chpasswd");
        assert!(
            output.status.success(),
            "chpasswd failed (the SSH tests run as root): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}
