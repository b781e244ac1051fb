//! Roles in tests: installs the test profiles file at `/etc/ceso/profiles.yaml` (the OS user
//! `ceso-agent` is restricted, root is standard and approves with the test key), creates the
//! agent's OS account, runs ceso as the agent, and approves promotions at a pseudo-terminal.
//!
//! Tests that use it run as root (as they do here and in CI) and fail with a clear message
//! otherwise. Use it with `mod support;` (`support::roles`) or alone with
//! `#[path = "support/roles.rs"] mod roles;`.
//!
//! ```ignore
//! let agent = roles::setup();
//! let work = roles::Workdir::new();                 // a directory the agent can write
//! let out = agent.ceso(&work, &["promote", "request", "--reason", "r", "--ttl", "5m", "--json"]);
//! let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].clone();
//! let approved = roles::approve_at_terminal(&work.state(), id.as_str().unwrap(), None);
//! ```
#![allow(dead_code)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The OS user of the restricted test profile `agent`.
pub const AGENT_USER: &str = "ceso-agent";
/// Its profile.
pub const AGENT_PROFILE: &str = "agent";
/// The standard profile of root, whose approverKeys lists the test key.
pub const APPROVER_PROFILE: &str = "ops";
/// Where ceso reads the profiles file from.
pub const PROFILES_PATH: &str = "/etc/ceso/profiles.yaml";
/// The test profiles file (the same for every test binary).
pub const TEST_PROFILES: &str = include_str!("../fixtures/roles/profiles.yaml");
/// The test approver's private key (public on purpose; test machines only).
pub const TEST_APPROVER_KEY: &str = include_str!("../fixtures/roles/approver.key");
/// Its public key, as in the test profiles file.
pub const TEST_APPROVER_PUBLIC_KEY: &str = "ed25519:hGXeq+z1XSq1xo/DswmS37mEhhYtr16rvehdS3jGBp0=";

/// A line that marks the test profiles file: only such a file is ever replaced.
const TEST_MARKER: &str = "# ceso test profiles";

/// The agent's OS account.
#[derive(Debug, Clone, Copy)]
pub struct Agent {
    pub uid: u32,
    pub gid: u32,
}

/// Makes sure, once per test binary: the tests run as root, the OS user `ceso-agent` exists, and
/// `/etc/ceso/profiles.yaml` is the test profiles file (root-owned, mode 0644).
pub fn setup() -> Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    *AGENT.get_or_init(|| {
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
        assert_eq!(
            uid, 0,
            "the roles tests run as root: they create the OS user {AGENT_USER}, install {PROFILES_PATH} \
             and run ceso as another user (as CI does; run `cargo test` as root)"
        );
        let agent = ensure_agent_user();
        install_profiles();
        agent
    })
}

fn id_of(user: &str) -> Option<Agent> {
    let ids = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(Agent {
        uid: ids("-u")?,
        gid: ids("-g")?,
    })
}

fn ensure_agent_user() -> Agent {
    if let Some(agent) = id_of(AGENT_USER) {
        return agent;
    }
    let out = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .args(["--shell", "/usr/sbin/nologin", AGENT_USER])
        .output()
        .unwrap_or_else(|e| panic!("running useradd (Debian package passwd): {e}"));
    // Another test binary may have created it meanwhile.
    id_of(AGENT_USER).unwrap_or_else(|| {
        panic!(
            "useradd {AGENT_USER} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn install_profiles() {
    let path = Path::new(PROFILES_PATH);
    match std::fs::read_to_string(path) {
        Ok(text) if text == TEST_PROFILES => {}
        Ok(text) if !text.starts_with(TEST_MARKER) => panic!(
            "{PROFILES_PATH} exists and is not the test profiles file: the roles tests would \
             replace it. Move it away on this test machine, or run the tests elsewhere."
        ),
        _ => {
            let dir = path.parent().expect("/etc/ceso");
            std::fs::create_dir_all(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            let temporary = dir.join(format!(".profiles.yaml.{}", std::process::id()));
            std::fs::write(&temporary, TEST_PROFILES).unwrap();
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::rename(&temporary, path).unwrap();
        }
    }
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    if mode != 0o644 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

/// The ceso binary as a path the agent can execute: the build's own when every directory above
/// it lets others in, else a copy in `/tmp/ceso-roles-bin/` (a build under /root, say).
pub fn ceso_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let built = PathBuf::from(env!("CARGO_BIN_EXE_ceso"));
            let reachable = built.ancestors().skip(1).all(|dir| {
                std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
            }) && std::fs::metadata(&built)
                .is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
            if reachable {
                return built;
            }
            let dir = Path::new("/tmp/ceso-roles-bin");
            std::fs::create_dir_all(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            let copy = dir.join("ceso");
            let temporary = dir.join(format!("ceso.{}", std::process::id()));
            std::fs::copy(&built, &temporary).unwrap();
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&temporary, &copy).unwrap();
            copy
        })
        .clone()
}

/// Gives `path` (and everything under it) to the agent's OS account.
pub fn give_to_agent(path: &Path) {
    let agent = setup();
    let metadata = std::fs::symlink_metadata(path).unwrap();
    std::os::unix::fs::lchown(path, Some(agent.uid), Some(agent.gid)).unwrap();
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            give_to_agent(&entry.unwrap().path());
        }
    }
}

/// A temporary directory that belongs to the agent: for its state file, inventory and HOME.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        setup();
        let dir = tempfile::Builder::new()
            .prefix("ceso-roles-")
            .tempdir()
            .unwrap();
        give_to_agent(dir.path());
        Workdir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The state file every command of [`Agent::ceso`] uses (`CESO_STATE`).
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state.redb")
    }
}

impl Default for Workdir {
    fn default() -> Self {
        Workdir::new()
    }
}

impl Agent {
    /// `command` run as the agent (real and effective uid and gid, its groups), with the same
    /// arguments, environment changes and working directory. The ceso binary is replaced by
    /// one the agent can execute. Set standard input and output on the result.
    pub fn wrap(&self, command: &Command) -> Command {
        let program = if command.get_program() == env!("CARGO_BIN_EXE_ceso") {
            ceso_binary().into_os_string()
        } else {
            command.get_program().to_owned()
        };
        let mut wrapped = Command::new("setpriv");
        wrapped
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg(program)
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    }

    /// The command `ceso ARGS` as the agent in `work`: its state file, HOME there, no colour,
    /// no standard input, `CESO_ROLE` and `CESO_CONFIG` unset.
    pub fn command(&self, work: &Workdir, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ceso"));
        command
            .args(args)
            .env("CESO_STATE", work.state())
            .env("HOME", work.path())
            .env("NO_COLOR", "1")
            .env_remove("CESO_ROLE")
            .env_remove("CESO_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .current_dir(work.path());
        let mut wrapped = self.wrap(&command);
        wrapped.stdin(Stdio::null());
        wrapped
    }

    /// Runs `ceso ARGS` as the agent in `work`.
    pub fn ceso(&self, work: &Workdir, args: &[&str]) -> Output {
        self.command(work, args).output().unwrap()
    }
}

/// A HOME for root whose `~/.config/ceso/approver.key` is the test approver key (mode 0600).
pub fn approver_home() -> tempfile::TempDir {
    let home = tempfile::Builder::new()
        .prefix("ceso-approver-")
        .tempdir()
        .unwrap();
    let dir = home.path().join(".config/ceso");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("approver.key");
    std::fs::write(&key, TEST_APPROVER_KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    home
}

/// Runs `ceso promote approve ID --state STATE` as root at a pseudo-terminal (util-linux
/// `script`), with the test approver key, typing `typed` (default: the ID) as the confirmation.
/// The output is what the terminal showed (standard output and error together).
pub fn approve_at_terminal(state: &Path, id: &str, typed: Option<&str>) -> Output {
    setup();
    let home = approver_home();
    let binary = env!("CARGO_BIN_EXE_ceso");
    let state = state.display().to_string();
    let inner = shlex::try_join([binary, "promote", "approve", id, "--state", state.as_str()])
        .expect("quotable command");
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &inner, "/dev/null"])
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CESO_ROLE")
        .env_remove("CESO_STATE")
        .env_remove("CESO_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running util-linux `script` for a terminal: {e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", typed.unwrap_or(id)).unwrap();
    }
    child.wait_with_output().unwrap()
}
