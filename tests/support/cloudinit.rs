//! Feeds guestinfo values to cloud-init's own VMware datasource (Debian package `cloud-init`).
//!
//! [`consume`] runs `tests/cloudinit/consume.py` with Debian's `/usr/bin/python3` (the one that
//! has cloud-init 22.4; a `python3` found on `PATH` may not), which hands the values to the real
//! `DataSourceVMware` through its environment-variable mode and reports what cloud-init made of
//! them: instance-id, hostname, keys, the network config and the netplan its renderer writes,
//! and its own schema check of the user-data.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

/// Debian's Python, the one with the `cloudinit` package.
pub const PYTHON: &str = "/usr/bin/python3";

/// The harness script.
pub const CONSUME_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cloudinit/consume.py");

const INSTALL_HINT: &str = "install Debian's cloud-init (the project's tests/setup.sh does, or \
     `apt-get install -y cloud-init`)";

/// What cloud-init's VMware datasource made of the guestinfo.
#[derive(Debug, Clone, Deserialize)]
pub struct Consumed {
    /// `get_instance_id()`.
    pub instance_id: String,
    /// The metadata's `local-hostname`, as the datasource read it.
    pub local_hostname: String,
    /// The hostname cloud-init's `set_hostname` module would set (user-data `hostname`/`fqdn`
    /// first, then the metadata).
    pub hostname: String,
    /// The fully qualified name it would set.
    pub fqdn: String,
    /// `get_public_ssh_keys()`: the keys the default user gets.
    pub public_keys: Vec<String>,
    /// The datasource's network config (netplan v2 as ceso wrote it); `Null` when the metadata
    /// has none.
    pub network: serde_json::Value,
    /// cloud-init's error parsing or rendering that network config; `""` when it had none.
    pub network_error: String,
    /// What cloud-init's netplan renderer writes to `/etc/netplan/50-cloud-init.yaml`
    /// (`""` without network config, or when it failed).
    pub netplan_yaml: String,
    /// The decoded user-data, if any.
    pub user_data: Option<String>,
    /// Whether cloud-init's own check (`cloud-init schema --config-file`: header, YAML, strict
    /// schema) accepts the user-data. `false` when there is none.
    pub user_data_valid: bool,
    /// The problems that check found, one `path: message` per line; `""` when valid.
    pub schema_errors: String,
    /// Deprecated keys it reported (these do not make the user-data invalid).
    pub schema_deprecations: String,
}

impl Consumed {
    /// The rendered netplan file, parsed (its header is a comment), for comparing structure.
    pub fn netplan(&self) -> serde_yaml::Value {
        serde_yaml::from_str(&self.netplan_yaml).unwrap_or_else(|e| {
            panic!(
                "cloud-init's netplan output is not YAML ({e}):\n{}",
                self.netplan_yaml
            )
        })
    }
}

/// Hands `guestinfo` (extraConfig keys and values, e.g. what ceso wrote to a VM on the
/// simulator, last value per key) to cloud-init's VMware datasource and returns what it made
/// of them.
///
/// Every `guestinfo.*` key becomes the environment variable the datasource reads
/// (`guestinfo.metadata.encoding` → `VMX_GUESTINFO_METADATA_ENCODING`, with `VMX_GUESTINFO=1`);
/// other keys are ignored, so a VM's whole extraConfig may be passed. An empty value is absent,
/// for cloud-init as on the simulator. Nothing on the machine is changed.
///
/// Panics (failing the test) when `/usr/bin/python3` or its cloud-init is missing (naming the
/// Debian package `cloud-init`), when the datasource finds no guestinfo, and when the metadata
/// lacks `instance-id` or `local-hostname` (ceso always writes both; cloud-init would fall back
/// to the machine's DMI UUID and hostname). Problems cloud-init reports with the values
/// themselves (invalid user-data, unusable network config) are returned, not raised.
pub fn consume(guestinfo: &BTreeMap<String, String>) -> Consumed {
    assert!(
        Path::new(PYTHON).is_file(),
        "{PYTHON} does not exist: {INSTALL_HINT}"
    );
    let mut command = Command::new(PYTHON);
    command.arg(CONSUME_SCRIPT);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VMX_GUESTINFO") {
            command.env_remove(name);
        }
    }
    command.env("VMX_GUESTINFO", "1");
    for (key, value) in guestinfo {
        if key.starts_with("guestinfo.") {
            command.env(environment_variable(key), value);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} {CONSUME_SCRIPT}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        panic!(
            "cloud-init is not usable: {}\n{INSTALL_HINT}",
            stderr.trim()
        );
    }
    assert!(
        output.status.success(),
        "{CONSUME_SCRIPT} failed ({}):\n{stderr}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{CONSUME_SCRIPT} printed no valid report ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let keys: Vec<&String> = guestinfo.keys().collect();
    assert_eq!(
        report["found"], true,
        "cloud-init's VMware datasource found no guestinfo in the keys {keys:?}\n{stderr}"
    );
    assert!(
        report["instance_id"].is_string(),
        "the metadata has no instance-id (cloud-init would use the DMI product UUID)"
    );
    assert!(
        report["local_hostname"].is_string(),
        "the metadata has no local-hostname (cloud-init would keep the guest's hostname)"
    );
    serde_json::from_value(report)
        .unwrap_or_else(|e| panic!("{CONSUME_SCRIPT} printed an unexpected report: {e}"))
}

/// The environment variable cloud-init's VMware datasource reads for the extraConfig `key`
/// (`get_guestinfo_envvar_key_name`: `vmx.` + key, upper case, dots to underscores).
pub fn environment_variable(key: &str) -> String {
    format!("vmx.{key}").to_uppercase().replace('.', "_")
}
