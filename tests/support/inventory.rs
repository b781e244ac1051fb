//! An inventory directory (with its own state file) pointed at a simulator, and running the
//! real `ceso` binary on it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Simulator;

pub const PASSWORD_ENV: &str = "CESO_E2E_PASSWORD";

/// An inventory directory (plus state file) pointed at a simulator.
pub struct Inventory {
    pub dir: tempfile::TempDir,
}

impl Inventory {
    pub fn new(sim: &Simulator, vms: &str) -> Self {
        Self::with_host(sim, vms, &format!("thumbprint: \"{}\"", sim.thumbprint))
    }

    pub fn with_host(sim: &Simulator, vms: &str, trust: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hosts = format!(
            "apiVersion: ceso/v1\nkind: Host\nmetadata: {{ name: esxi-01 }}\nspec:\n  address: {}\n  {trust}\n  username: {}\n  password: {{ env: {PASSWORD_ENV} }}\n  datastore: {}\n  network: VM Network\n",
            sim.url, sim.user, sim.datastore
        );
        std::fs::create_dir(dir.path().join("inventory")).unwrap();
        std::fs::write(dir.path().join("inventory/hosts.yaml"), hosts).unwrap();
        let inventory = Self { dir };
        inventory.set_vms(vms);
        inventory
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("inventory")
    }

    pub fn set_vms(&self, vms: &str) {
        std::fs::write(self.path().join("vms.yaml"), vms).unwrap();
    }

    pub fn command(&self, sim: &Simulator, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ceso"));
        command
            .args(args)
            .env(PASSWORD_ENV, &sim.password)
            .env("CESO_STATE", self.dir.path().join("state.redb"))
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    /// Starts `ceso apply DIR --auto-approve` plus `extra` in the background and returns once
    /// the simulator has received `count` calls of `method` (so the run is mid-way).
    pub fn apply_in_background(
        &self,
        sim: &Simulator,
        extra: &[&str],
        method: &str,
        count: u64,
    ) -> std::process::Child {
        let path = self.path().display().to_string();
        let mut args = vec!["apply", path.as_str(), "--auto-approve"];
        args.extend_from_slice(extra);
        let child = self
            .command(sim, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(Duration::from_secs(30), || {
            sim.method_count(method) >= count
        });
        child
    }

    /// Imports a small Ubuntu-like OVA (4 MiB, efi) as template `name` with `ceso template
    /// import`, which writes `templates/<name>.yaml` into the inventory.
    pub fn import_template(&self, sim: &Simulator, name: &str) {
        let ova = super::ova::build_ova(self.dir.path(), "ubuntu-cloudimg", 4 << 20, "efi");
        let ova = ova.display().to_string();
        let args = [
            "template",
            "import",
            &ova,
            "--name",
            name,
            "--host",
            "esxi-01",
            "--inventory",
            "DIR",
        ];
        self.ceso(sim, &args).expect(0);
    }

    /// Runs ceso with `args`, `DIR` replaced by the inventory path.
    pub fn ceso(&self, sim: &Simulator, args: &[&str]) -> Run {
        let path = self.path().display().to_string();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "DIR" { path.as_str() } else { a })
            .collect();
        Run(self.command(sim, &args).output().unwrap())
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout()))
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Polls `done` every 50 ms until it holds; panics after `limit`.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies the example inventory (recursively) into `dest`, pointing its Host at `sim`.
pub fn copy_example_inventory(sim: &Simulator, dest: &Path) {
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/inventory"),
        dest,
        sim,
    );
}

fn copy_tree(from: &Path, to: &Path, sim: &Simulator) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, sim);
            continue;
        }
        let mut text = std::fs::read_to_string(entry.path())
            .unwrap()
            .replace("[LocalDS_0]", &format!("[{}]", sim.datastore));
        if entry.file_name() == "hosts.yaml" {
            text = text
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with("address:") {
                        format!("  address: {}", sim.url)
                    } else if l.trim_start().starts_with("thumbprint:") {
                        format!("  thumbprint: \"{}\"", sim.thumbprint)
                    } else if l.trim_start().starts_with("datastore:") {
                        format!("  datastore: {}", sim.datastore)
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        std::fs::write(target, text).unwrap();
    }
}
