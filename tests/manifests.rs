//! Manifests: what is accepted, and the exact diagnostic (file:line:column, resource, field,
//! hint) for what is not. Also keeps `schemas/` and `examples/inventory/` honest.

use std::path::{Path, PathBuf};

use ceso::backup::policy::{Retention, TargetSpec};
use ceso::diagnostic::Diagnostic;
use ceso::manifest::load_inventory;

fn write_inventory(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// The diagnostics as `file:line:col resource field: message` lines, paths relative to the dir.
fn problems(dir: &Path) -> Vec<String> {
    let (_, diagnostics) = load_inventory(dir);
    diagnostics.iter().map(|d| short(d, dir)).collect()
}

fn short(d: &Diagnostic, dir: &Path) -> String {
    let location = d
        .location
        .as_ref()
        .map(|l| {
            format!(
                "{}:{}:{}",
                l.file.strip_prefix(dir).unwrap_or(&l.file).display(),
                l.line,
                l.column
            )
        })
        .unwrap_or_default();
    format!(
        "{location} {} {}: {}",
        d.resource.as_deref().unwrap_or("-"),
        d.field.as_deref().unwrap_or("-"),
        d.message
    )
}

const HOST: &str = "apiVersion: ceso/v1
kind: Host
metadata: { name: esxi-01 }
spec:
  address: https://esxi-01.lab.example
  thumbprint: \"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\"
  username: root
  password: { env: ESXI_PASSWORD }
  datastore: datastore1
  network: VM Network
";

#[test]
fn the_examples_are_valid() {
    let (inventory, diagnostics) = load_inventory(Path::new("examples/inventory"));
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    assert_eq!(inventory.hosts.len(), 1);
    assert_eq!(
        inventory.vms.keys().collect::<Vec<_>>(),
        ["app-01", "db-01", "web-01", "web-02"]
    );
}

#[test]
fn every_problem_is_reported_at_once_with_its_position() {
    let vms = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec:
  host: esxi-02
  cpu: 2
  memory: 4GiB
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-02 }
spec:
  host: esxi-01
  cpu: 2
  memory: 4GB
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-03 }
spec:
  host: esxi-01
  cpu: 2
  memory: 4GiB
  colour: blue
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec: { host: esxi-01, cpu: 0, memory: 6MiB }
";
    let dir = write_inventory(&[("hosts.yaml", HOST), ("vms.yaml", vms)]);
    assert_eq!(
        problems(dir.path()),
        vec![
            "vms.yaml:5:9 VirtualMachine/web-01 spec.host: unknown host \"esxi-02\"",
            "vms.yaml:15:11 VirtualMachine/web-02 spec.memory: invalid size \"4GB\": unknown unit: use MiB, GiB or TiB (binary units; GB and G are not accepted)",
            "vms.yaml:24:3 VirtualMachine/web-03 spec.colour: unknown field `colour`, expected one of `host`, `template`, `source`, `cpu`, `memory`, `disks`, `networks`, `power`, `guestId`, `datastore`, `protect`, `suspend`, `cloudInit`, `annotation`, `shutdown`, `backupPolicy`",
            "vms.yaml:28:19 VirtualMachine/web-01 metadata.name: duplicate VirtualMachine name \"web-01\"",
        ]
    );
}

#[test]
fn diagnostics_say_what_to_do() {
    let dir = write_inventory(&[
        ("hosts.yaml", HOST),
        (
            "vm.yaml",
            "apiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: { name: a }\nspec: { host: esxi-9, cpu: 1, memory: 1GiB }\n",
        ),
    ]);
    let (_, diagnostics) = load_inventory(dir.path());
    let text = diagnostics[0].to_string();
    assert!(text.starts_with("error: "), "{text}");
    assert!(text.contains("vm.yaml:4:15: VirtualMachine/a: spec.host: unknown host \"esxi-9\"\n  hint: did you mean `esxi-01`? declared hosts: esxi-01"), "{text}");
}

#[test]
fn invalid_yaml_names_the_position() {
    let dir = write_inventory(&[(
        "bad.yaml",
        "apiVersion: ceso/v1\nkind: Host\nmetadata:\n  name: [unclosed\n",
    )]);
    let found = problems(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("bad.yaml:5:1 - -: invalid YAML"),
        "{found:?}"
    );
}

#[test]
fn host_connection_settings_are_checked() {
    let host = HOST
        .replace("https://esxi-01.lab.example", "http://10.0.0.5")
        .replace("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89", "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01")
        .replace("{ env: ESXI_PASSWORD }", "hunter2");
    let dir = write_inventory(&[("hosts.yaml", &host)]);
    let found = problems(dir.path());
    assert_eq!(
        found.len(),
        1,
        "the checks of values (address, thumbprint) wait until the document's fields have the right types: {found:?}"
    );
    assert!(found[0].contains("spec.password"), "{found:?}");
    assert!(
        !found[0].contains("hunter2"),
        "a secret written by mistake is never echoed: {found:?}"
    );

    let host = HOST
        .replace("https://esxi-01.lab.example", "http://10.0.0.5")
        .replace("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89", "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01");
    let dir = write_inventory(&[("hosts.yaml", &host)]);
    assert_eq!(
        problems(dir.path()),
        vec![
            "hosts.yaml:5:12 Host/esxi-01 spec.address: plain http is only allowed to a loopback address",
            "hosts.yaml:6:15 Host/esxi-01 spec.thumbprint: invalid thumbprint: this is a SHA-1 thumbprint; ceso pins SHA-256",
        ]
    );
}

#[test]
fn power_accepts_on_off_and_yaml_booleans() {
    for (written, expected) in [
        ("on", "on"),
        ("off", "off"),
        ("true", "on"),
        ("false", "off"),
        ("\"on\"", "on"),
        ("ON", "on"),
        ("Off", "off"),
        ("yes", "on"),
        ("no", "off"),
    ] {
        let vm = format!(
            "apiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: a }}\nspec: {{ host: esxi-01, cpu: 1, memory: 1GiB, power: {written} }}\n"
        );
        let dir = write_inventory(&[("hosts.yaml", HOST), ("vm.yaml", &vm)]);
        let (inventory, diagnostics) = load_inventory(dir.path());
        assert!(diagnostics.is_empty(), "{written}: {diagnostics:?}");
        assert_eq!(inventory.vms["a"].spec.power.to_string(), expected);
    }
}

#[test]
fn one_document_with_four_mistakes_gets_four_diagnostics() {
    let vm = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec:
  host: esxi-01
  cpu: 2
  memory: 4GB
  colour: blue
  powr: on
  disks:
    - size: 20GiB
      type: thin
";
    let dir = write_inventory(&[("hosts.yaml", HOST), ("vm.yaml", vm)]);
    assert_eq!(
        problems(dir.path()),
        vec![
            "vm.yaml:7:11 VirtualMachine/web-01 spec.memory: invalid size \"4GB\": unknown unit: use MiB, GiB or TiB (binary units; GB and G are not accepted)",
            "vm.yaml:8:3 VirtualMachine/web-01 spec.colour: unknown field `colour`, expected one of `host`, `template`, `source`, `cpu`, `memory`, `disks`, `networks`, `power`, `guestId`, `datastore`, `protect`, `suspend`, `cloudInit`, `annotation`, `shutdown`, `backupPolicy`",
            "vm.yaml:9:3 VirtualMachine/web-01 spec.powr: unknown field `powr`, expected one of `host`, `template`, `source`, `cpu`, `memory`, `disks`, `networks`, `power`, `guestId`, `datastore`, `protect`, `suspend`, `cloudInit`, `annotation`, `shutdown`, `backupPolicy`",
            "vm.yaml:12:7 VirtualMachine/web-01 spec.disks[0].type: unknown field `type`, expected `size`",
        ]
    );
    let (_, diagnostics) = load_inventory(dir.path());
    let hints: Vec<&str> = diagnostics
        .iter()
        .map(|d| d.hint.as_deref().expect("every diagnostic has a hint"))
        .collect();
    assert!(
        hints[1].starts_with("fields allowed here: `host`, `template`, `source`, `cpu`"),
        "{hints:?}"
    );
    assert!(hints[2].starts_with("did you mean `power`?"), "{hints:?}");
    assert_eq!(hints[3], "fields allowed here: `size`");
    let text = diagnostics[2].to_string();
    assert!(
        text.starts_with("error: ")
            && text.contains("vm.yaml:9:3: VirtualMachine/web-01: spec.powr: unknown field `powr`")
            && text.contains("\n  hint: did you mean `power`?"),
        "{text}"
    );
}

#[test]
fn missing_fields_and_wrong_types_are_all_reported() {
    let vm = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec:
  host: esxi-01
  memory: 4
  power: maybe
  networks: { portGroup: VM Network }
";
    let dir = write_inventory(&[("hosts.yaml", HOST), ("vm.yaml", vm)]);
    assert_eq!(
        problems(dir.path()),
        vec![
            "vm.yaml:4:1 VirtualMachine/web-01 spec.cpu: missing field `cpu`",
            "vm.yaml:6:11 VirtualMachine/web-01 spec.memory: invalid size 4: a unit is required: MiB, GiB or TiB (e.g. 4MiB)",
            "vm.yaml:7:10 VirtualMachine/web-01 spec.power: invalid value: string \"maybe\", expected `on` or `off`",
            "vm.yaml:8:13 VirtualMachine/web-01 spec.networks: invalid type: a mapping, expected a list",
        ]
    );
}

#[test]
fn a_broken_host_does_not_make_its_vms_fail_too() {
    let host = HOST.replace("{ env: ESXI_PASSWORD }", "hunter2");
    let vms = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec: { host: esxi-01, cpu: 1, memory: 1GiB }
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-02 }
spec: { host: esxi-01, cpu: 1, memory: 1GiB }
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-03 }
spec: { host: esxi-02, cpu: 1, memory: 1GiB }
";
    let dir = write_inventory(&[("hosts.yaml", &host), ("vms.yaml", vms)]);
    assert_eq!(
        problems(dir.path()),
        vec![
            "hosts.yaml:8:13 Host/esxi-01 spec.password: literal passwords are not accepted",
            "vms.yaml:14:15 VirtualMachine/web-03 spec.host: unknown host \"esxi-02\"",
        ],
        "only the host is reported for esxi-01; esxi-02 is unknown indeed"
    );

    // When a file cannot even be parsed, the hosts it declares are unknown: the VMs' errors stay,
    // and say where the host may be.
    let dir = write_inventory(&[
        ("hosts.yaml", "kind: Host\nspec: [unclosed\n"),
        ("vms.yaml", vms),
    ]);
    let (_, diagnostics) = load_inventory(dir.path());
    let unknown: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.message.starts_with("unknown host"))
        .collect();
    assert_eq!(unknown.len(), 3, "{diagnostics:#?}");
    assert!(
        unknown[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("may be the document at") && h.contains("hosts.yaml")),
        "{unknown:#?}"
    );
}

#[test]
fn credentials_in_the_address_are_refused_and_never_echoed() {
    for address in [
        "https://root:s3cret@esxi-01.lab.example",
        "https://root@esxi-01.lab.example:443",
        "https://root:s3/cr#et@esxi-01.lab.example",
    ] {
        let host = HOST.replace("https://esxi-01.lab.example", address);
        let dir = write_inventory(&[("hosts.yaml", &host)]);
        let (_, diagnostics) = load_inventory(dir.path());
        assert_eq!(
            diagnostics
                .iter()
                .map(|d| short(d, dir.path()))
                .collect::<Vec<_>>(),
            vec![
                "hosts.yaml:5:12 Host/esxi-01 spec.address: the address must not contain a user or password; use `username` and `password`"
            ],
            "{address}"
        );
        let everything = format!("{diagnostics:?} {}", diagnostics[0]);
        assert!(!everything.contains("s3"), "{everything}");
        assert!(
            !everything.contains("root@") && !everything.contains("root:"),
            "{everything}"
        );
    }
    // Other unusable addresses are explained without repeating them.
    for (address, message) in [
        (
            "https://esxi-01.lab.example:99999",
            "invalid address: invalid port number",
        ),
        (
            "ftp://esxi-01.lab.example",
            "invalid address: unsupported scheme \"ftp\" (use https://)",
        ),
        (
            "https://esxi-01.lab.example/?token=abc",
            "invalid address: query strings and fragments are not supported",
        ),
    ] {
        let host = HOST.replace("https://esxi-01.lab.example", address);
        let dir = write_inventory(&[("hosts.yaml", &host)]);
        assert_eq!(
            problems(dir.path()),
            vec![format!(
                "hosts.yaml:5:12 Host/esxi-01 spec.address: {message}"
            )]
        );
    }
    // What the client accepts, validate accepts: a bare host name means https://.
    let host = HOST.replace("https://esxi-01.lab.example", "esxi-01.lab.example");
    let dir = write_inventory(&[("hosts.yaml", &host)]);
    assert_eq!(problems(dir.path()), Vec::<String>::new());
}

#[test]
fn two_hosts_with_one_address_are_refused() {
    let second = |name: &str, address: &str| {
        HOST.replace("esxi-01 }", &format!("{name} }}"))
            .replace("https://esxi-01.lab.example", address)
    };
    let hosts = [
        HOST.to_owned(),
        second("esxi-02", "https://ESXI-01.lab.example:443/sdk"),
        second("esxi-03", "esxi-01.lab.example"),
        second("esxi-04", "https://esxi-01.lab.example:8443"),
    ]
    .join("---\n");
    let dir = write_inventory(&[("hosts.yaml", &hosts)]);
    assert_eq!(
        problems(dir.path()),
        vec![
            "hosts.yaml:16:12 Host/esxi-02 spec.address: https://esxi-01.lab.example:443 is also the address of Host/esxi-01",
            "hosts.yaml:27:12 Host/esxi-03 spec.address: https://esxi-01.lab.example:443 is also the address of Host/esxi-01",
        ],
        "another port is another host"
    );
    let (_, diagnostics) = load_inventory(dir.path());
    let hint = diagnostics[0].hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("orphans") && hint.contains("hosts.yaml:5:12"),
        "{hint}"
    );
}

#[test]
fn thumbprints_are_read_as_the_client_reads_them() {
    const SHA256: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
    let with = |thumbprint: &str| {
        let host = HOST.replace(SHA256, thumbprint);
        let dir = write_inventory(&[("hosts.yaml", &host)]);
        problems(dir.path())
    };
    for accepted in [
        SHA256.to_owned(),
        SHA256.to_lowercase(),
        SHA256.replace(':', ""),
        SHA256.replace(':', " "),
        format!("sha256 Fingerprint={SHA256}"),
        format!("SHA256 Fingerprint={}", SHA256.to_lowercase()),
    ] {
        assert_eq!(with(&accepted), Vec::<String>::new(), "{accepted}");
    }
    for (refused, message) in [
        (
            "5D:BF:A8:44:1C:1B:3F:8C:43:D1:BD:2C:64:01:F0:0E:8C:86:02:11",
            "this is a SHA-1 thumbprint; ceso pins SHA-256",
        ),
        ("AB:CD", "has 4 hex digits instead of 64"),
        (
            &SHA256.replace('A', "G"),
            "contains characters other than hex digits and colons",
        ),
    ] {
        assert_eq!(
            with(refused),
            vec![format!(
                "hosts.yaml:6:15 Host/esxi-01 spec.thumbprint: invalid thumbprint: {message}"
            )],
            "{refused}"
        );
    }
}

#[test]
fn the_schema_accepts_what_the_loader_accepts() {
    let vm = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: a, labels: { tier: web } }
spec:
  host: esxi-01
  cpu: 1
  memory: 4 GiB
  disks: [ { size: \" 20GiB \" }, { size: 0001TiB } ]
  networks: [ {}, { portGroup: null } ]
  power: true
  datastore: null
";
    let dir = write_inventory(&[("hosts.yaml", HOST), ("vm.yaml", vm)]);
    assert_eq!(problems(dir.path()), Vec::<String>::new());
    let validator = jsonschema::validator_for(&ceso::cli::manifest_schema()).unwrap();
    for document in serde_yaml::Deserializer::from_str(vm) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        assert!(validator.is_valid(&value));
    }
}

fn schema_path() -> PathBuf {
    Path::new("schemas").join(ceso::cli::SCHEMA_FILE)
}

#[test]
fn the_checked_in_schema_is_current() {
    let current = ceso::cli::manifest_schema_text();
    let checked_in = std::fs::read_to_string(schema_path()).unwrap_or_default();
    assert!(
        checked_in == current,
        "schemas/{} is stale: run `cargo run -- schema --out schemas` and commit it",
        ceso::cli::SCHEMA_FILE
    );
}

#[test]
fn every_example_carries_the_schema_line_and_validates_against_the_schema() {
    let schema = ceso::cli::manifest_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let files = ceso::manifest::manifest_files(Path::new("examples/inventory")).unwrap();
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let depth = file.components().count() - 1;
        let schema_line = format!(
            "# yaml-language-server: $schema={}schemas/ceso-v1.schema.json",
            "../".repeat(depth)
        );
        assert!(
            text.lines()
                .next()
                .unwrap_or_default()
                .starts_with(&schema_line),
            "{} lacks the yaml-language-server schema line",
            file.display()
        );
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        }
    }
}

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let schema = ceso::cli::manifest_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let bad: serde_json::Value = serde_json::json!({
        "apiVersion": "ceso/v1", "kind": "VirtualMachine", "metadata": { "name": "a" },
        "spec": { "host": "h", "cpu": 1, "memory": "4GB" }
    });
    assert!(!validator.is_valid(&bad));
    let unknown: serde_json::Value = serde_json::json!({
        "apiVersion": "ceso/v1", "kind": "Host", "metadata": { "name": "a" },
        "spec": { "address": "https://h", "username": "root", "password": { "env": "X" }, "datastore": "d", "network": "n", "colour": 1 }
    });
    assert!(!validator.is_valid(&unknown));
}

const TEMPLATE_AND_POOL: &str = "apiVersion: ceso/v1
kind: Template
metadata: { name: ubuntu }
spec:
  host: esxi-01
  disk: \"[datastore1] ubuntu/disk-0.vmdk\"
  guestId: ubuntu64Guest
  firmware: efi
  cpu: 2
  memory: 2GiB
---
apiVersion: ceso/v1
kind: IpPool
metadata: { name: lan }
spec:
  cidr: 192.168.1.0/24
  gateway: 192.168.1.1
  ranges: [ { start: 192.168.1.100, end: 192.168.1.199 } ]
";

#[test]
fn a_vm_from_a_template_with_cloud_init_and_a_pool_address_is_valid() {
    let vm = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec:
  host: esxi-01
  template: ubuntu
  networks:
    - { ip: auto, pool: lan }
    - { portGroup: Storage, ip: 10.0.5.20/24 }
  cloudInit:
    hostname: web-01.lab.example
    sshAuthorizedKeys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIWfxi9EhUErF4Znpc9LrcYBH89qZmCdIn6o6EZ/NlyP ops@lab
      - { file: ops.pub }
    users: [ default, { name: deploy, groups: sudo } ]
    packages: [nginx]
    userData: { runcmd: [ [systemctl, enable, nginx] ] }
";
    // A static address needs a pool whose network holds it (here one without gateway or ranges).
    let storage = "apiVersion: ceso/v1\nkind: IpPool\nmetadata: { name: storage }\nspec: { cidr: 10.0.5.0/24 }\n";
    let dir = write_inventory(&[
        ("hosts.yaml", HOST),
        ("base.yaml", TEMPLATE_AND_POOL),
        ("storage.yaml", storage),
        ("vm.yaml", vm),
        (
            "ops.pub",
            "# the ops team\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvQk2m9rZc7cI3yWmWlq5pN8r0xKQv3ZQ2x3sTgT9tP ops@b\n",
        ),
    ]);
    assert_eq!(problems(dir.path()), Vec::<String>::new());
    let (inventory, _) = load_inventory(dir.path());
    assert_eq!(
        inventory.ssh_keys["web-01"].len(),
        2,
        "the file's key is read"
    );
}

#[test]
fn template_cloud_init_and_address_mistakes_are_reported_at_their_place() {
    let vm = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec:
  host: esxi-01
  template: ubuntoo
  networks:
    - { ip: auto }
    - { ip: 10.0.5.20 }
    - { ip: auto, pool: wan }
  cloudInit:
    hostname: web_01
    sshAuthorizedKeys: [ \"not a key\", { file: missing.pub } ]
    users: [ { name: bob, plain_text_passwd: hunter2 } ]
    userData:
      write_files: [ { path: /root/.ssh/id_rsa, content: \"-----BEGIN OPENSSH PRIVATE KEY-----\" } ]
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: bare-01 }
spec:
  host: esxi-01
";
    let dir = write_inventory(&[
        ("hosts.yaml", HOST),
        ("base.yaml", TEMPLATE_AND_POOL),
        ("vm.yaml", vm),
    ]);
    let found = problems(dir.path());
    let expected_fields = [
        "VirtualMachine/web-01 spec.template: unknown template \"ubuntoo\"",
        "VirtualMachine/web-01 spec.networks[0].pool: `ip: auto` needs the pool",
        "VirtualMachine/web-01 spec.networks[1].ip: invalid ip \"10.0.5.20\"",
        "VirtualMachine/web-01 spec.networks[2].pool: unknown IP pool \"wan\"",
        "VirtualMachine/web-01 spec.cloudInit.hostname: \"web_01\" is not a valid host name",
        "VirtualMachine/web-01 spec.cloudInit.sshAuthorizedKeys[0]: not an OpenSSH public key",
        "VirtualMachine/web-01 spec.cloudInit.sshAuthorizedKeys[1].file: cannot read public key file",
        "VirtualMachine/web-01 spec.cloudInit.users[0].plain_text_passwd: users[0].plain_text_passwd: manifests must not hold passwords",
        "VirtualMachine/web-01 spec.cloudInit.userData.write_files[0].content: a private key in a manifest",
        "VirtualMachine/bare-01 spec.cpu: missing field `cpu`",
        "VirtualMachine/bare-01 spec.memory: missing field `memory`",
    ];
    for expected in expected_fields {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "missing {expected:?} in {found:#?}"
        );
    }
    assert!(
        !found
            .iter()
            .any(|p| p.contains("hunter2") || p.contains("BEGIN OPENSSH")),
        "secrets are never echoed: {found:#?}"
    );
}

#[test]
fn pool_mistakes_are_reported_at_their_place() {
    let pools = "apiVersion: ceso/v1
kind: IpPool
metadata: { name: lan }
spec:
  cidr: 192.168.1.5/24
  gateway: 192.168.2.1
  nameservers: [dns.example]
  ranges: [ { start: 192.168.1.200, end: 192.168.1.100 } ]
  reservations: [ 10.0.0.1 ]
---
apiVersion: ceso/v1
kind: IpPool
metadata: { name: other }
spec:
  cidr: not-a-cidr
---
apiVersion: ceso/v1
kind: IpPool
metadata: { name: lab }
spec:
  cidr: 10.1.0.0/16
---
apiVersion: ceso/v1
kind: IpPool
metadata: { name: lab-small }
spec:
  cidr: 10.1.2.0/24
";
    let dir = write_inventory(&[("hosts.yaml", HOST), ("pools.yaml", pools)]);
    let found = problems(dir.path());
    for expected in [
        "pools.yaml:7:17 IpPool/lan spec.nameservers[0]: invalid nameserver \"dns.example\"",
        "pools.yaml:15:9 IpPool/other spec.cidr: invalid cidr \"not-a-cidr\"",
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "missing {expected:?} in {found:#?}"
        );
    }
    // Once values parse, the pool rules apply (the first pool's other problems are reported when
    // its nameserver is fixed), and overlapping pools are named together.
    assert!(
        found
            .iter()
            .any(|p| p.contains("IpPool/lab") && p.contains("lab-small")),
        "{found:#?}"
    );
    let fixed = pools.replace("[dns.example]", "[192.168.1.1]");
    let dir = write_inventory(&[("hosts.yaml", HOST), ("pools.yaml", &fixed)]);
    let found = problems(dir.path());
    for field in [
        "spec.cidr:",
        "spec.gateway:",
        "spec.ranges[0]",
        "spec.reservations[0]:",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with("pools.yaml:") && p.contains(&format!("IpPool/lan {field}"))),
            "missing {field} in {found:#?}"
        );
    }
}

#[test]
fn address_problems_that_need_no_host_are_found_by_validate() {
    let vm = |name: &str, network: &str| {
        format!(
            "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec:\n  host: esxi-01\n  template: ubuntu\n  networks: [ {network} ]\n"
        )
    };
    let vms = vm("a-01", "{ ip: 192.168.1.20/24 }")
        + &vm("a-02", "{ ip: 192.168.1.20/24 }")
        + &vm("b-01", "{ ip: 192.168.1.1/24 }")
        + &vm("c-01", "{ ip: 192.168.1.30/16 }");
    let dir = write_inventory(&[
        ("hosts.yaml", HOST),
        ("base.yaml", TEMPLATE_AND_POOL),
        ("vm.yaml", &vms),
    ]);
    let found = problems(dir.path());
    for expected in [
        "VirtualMachine/a-02 spec.networks[0].ip: 192.168.1.20 of NIC 0 of VM a-02 is also requested by NIC 0 of VM a-01",
        "VirtualMachine/b-01 spec.networks[0].ip: 192.168.1.1 of NIC 0 of VM b-01 is the gateway of pool lan",
        "VirtualMachine/c-01 spec.networks[0].ip: 192.168.1.30/16 of NIC 0 of VM c-01 does not match the subnet",
    ] {
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("vm.yaml:") && p.contains(expected)),
            "missing {expected:?} in {found:#?}"
        );
    }
}

const NIGHTLY: &str = "apiVersion: ceso/v1
kind: BackupPolicy
metadata: { name: nightly }
spec:
  schedule:
    cron: \"30 2 * * *\"
    timeZone: Europe/Berlin
  retention: { keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 6 }
  target:
    directory: { path: ../backups }
";

fn vm_with_policy(name: &str, policy: &str) -> String {
    format!(
        "---\napiVersion: ceso/v1\nkind: VirtualMachine\nmetadata: {{ name: {name} }}\nspec: {{ host: esxi-01, cpu: 1, memory: 1GiB, backupPolicy: {policy} }}\n"
    )
}

/// The diagnostics with their hints, as `validate` prints them but with paths relative to `dir`.
fn problems_with_hints(dir: &Path) -> String {
    let (_, diagnostics) = load_inventory(dir);
    diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}\n  hint: {}",
                short(d, dir),
                d.hint.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_backup_policy_is_resolved_for_the_vms_that_name_it() {
    // The policy lives in a subdirectory: its relative directory still starts from the
    // inventory directory, not from the policy's file.
    let dir = write_inventory(&[
        ("hosts.yaml", HOST),
        ("vms.yaml", &vm_with_policy("db-01", "nightly")),
    ]);
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/nightly.yaml"), NIGHTLY).unwrap();
    let datastore = "apiVersion: ceso/v1
kind: BackupPolicy
metadata: { name: on-host }
spec:
  schedule: { cron: \"@weekly\" }
  retention: { keepWeekly: 4 }
  target: { datastore: { datastore: datastore1, folder: ceso-backups/ } }
  quiesce: false
";
    std::fs::write(dir.path().join("policies/on-host.yaml"), datastore).unwrap();
    assert_eq!(problems(dir.path()), Vec::<String>::new());

    let (inventory, _) = load_inventory(dir.path());
    let desired = ceso::desired::DesiredState::from_inventory(&inventory);
    assert_eq!(
        desired.vms["db-01"].backup_policy.as_deref(),
        Some("nightly")
    );

    let nightly = &desired.backup_policies["nightly"];
    assert_eq!(nightly.schedule.expression(), "30 2 * * *");
    assert_eq!(nightly.schedule.time_zone_name(), "Europe/Berlin");
    assert_eq!(
        nightly.retention,
        Retention {
            keep_last: 3,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6
        }
    );
    assert_eq!(
        nightly.target,
        TargetSpec::Directory {
            path: std::path::absolute(dir.path().join("../backups")).unwrap()
        }
    );
    assert!(nightly.quiesce, "quiesce defaults to true");

    let on_host = &desired.backup_policies["on-host"];
    assert_eq!(
        on_host.schedule.time_zone_name(),
        "UTC",
        "the default time zone"
    );
    assert_eq!(
        on_host.target,
        TargetSpec::Datastore {
            datastore: "datastore1".into(),
            folder: "ceso-backups".into()
        }
    );
    assert!(!on_host.quiesce);
}

#[test]
fn backup_policy_mistakes_are_reported_at_their_place() {
    let policy = |name: &str, spec: &str| {
        format!(
            "---\napiVersion: ceso/v1\nkind: BackupPolicy\nmetadata: {{ name: {name} }}\nspec:\n{spec}"
        )
    };
    let target = "  target: { directory: { path: backups } }\n";
    let retention = "  retention: { keepLast: 1 }\n";
    let policies = [
        policy("four-fields", &format!("  schedule: {{ cron: \"30 2 * *\" }}\n{retention}{target}")),
        policy("seconds", &format!("  schedule: {{ cron: \"0 30 2 * * *\" }}\n{retention}{target}")),
        policy("minute-61", &format!("  schedule: {{ cron: \"61 2 * * *\" }}\n{retention}{target}")),
        policy("weekday-8", &format!("  schedule: {{ cron: \"0 3 * * 8\" }}\n{retention}{target}")),
        policy("either-day", &format!("  schedule: {{ cron: \"0 3 1 * mon\" }}\n{retention}{target}")),
        policy("never", &format!("  schedule: {{ cron: \"0 3 30 2 *\" }}\n{retention}{target}")),
        policy("reboot", &format!("  schedule: {{ cron: \"@reboot\" }}\n{retention}{target}")),
        policy("berlinn", &format!("  schedule: {{ cron: \"@daily\", timeZone: Europe/Berlinn }}\n{retention}{target}")),
        policy("mars", &format!("  schedule: {{ cron: \"@daily\", timeZone: Mars/Olympus }}\n{retention}{target}")),
        policy("keeps-nothing", &format!("  schedule: {{ cron: \"@daily\" }}\n  retention: {{ keepLast: 0 }}\n{target}")),
        policy("two-targets", &format!("  schedule: {{ cron: \"@daily\" }}\n{retention}  target:\n    directory: {{ path: backups }}\n    datastore: {{ datastore: datastore1, folder: b }}\n")),
        policy("no-target", &format!("  schedule: {{ cron: \"@daily\" }}\n{retention}  target: {{}}\n")),
        policy("escapes", &format!("  schedule: {{ cron: \"@daily\" }}\n{retention}  target: {{ datastore: {{ datastore: datastore1, folder: backups/../../etc }} }}\n")),
        policy("rooted", &format!("  schedule: {{ cron: \"@daily\" }}\n{retention}  target: {{ datastore: {{ datastore: datastore1, folder: /vmfs/volumes }} }}\n")),
        policy("empty-path", &format!("  schedule: {{ cron: \"@daily\" }}\n{retention}  target: {{ directory: {{ path: \"\" }} }}\n")),
        policy("typo", &format!("  schedule: {{ cron: \"@daily\" }}\n  retention: {{ keepLas: 1 }}\n{target}")),
    ]
    .concat();
    let vms = vm_with_policy("db-01", "nightli") + &vm_with_policy("db-02", "nightly");
    let dir = write_inventory(&[
        ("hosts.yaml", HOST),
        ("policies.yaml", &format!("{NIGHTLY}{policies}")),
        ("vms.yaml", &vms),
    ]);
    insta::assert_snapshot!(problems_with_hints(dir.path()));
}

#[test]
fn a_vm_naming_a_policy_whose_document_failed_is_not_reported_again() {
    let broken = NIGHTLY.replace("keepLast: 3", "keepLast: -3");
    let dir = write_inventory(&[
        ("hosts.yaml", HOST),
        ("policies.yaml", &broken),
        ("vms.yaml", &vm_with_policy("db-01", "nightly")),
    ]);
    let found = problems(dir.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("policies.yaml:8:26 BackupPolicy/nightly spec.retention.keepLast:"),
        "{found:#?}"
    );
}

#[test]
fn suspend_is_read_on_hosts_and_vms_and_resolved_for_the_planner() {
    let host = HOST.replace(
        "  network: VM Network\n",
        "  network: VM Network\n  suspend: true\n",
    );
    let vms = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec: { host: esxi-01, cpu: 1, memory: 1GiB, suspend: true }
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-02 }
spec: { host: esxi-01, cpu: 1, memory: 1GiB, suspend: false }
";
    let dir = write_inventory(&[("hosts.yaml", &host), ("vms.yaml", vms)]);
    let (inventory, diagnostics) = load_inventory(dir.path());
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    assert!(inventory.hosts["esxi-01"].spec.suspend);
    assert!(inventory.vms["web-01"].spec.suspend && !inventory.vms["web-02"].spec.suspend);
    let desired = ceso::desired::DesiredState::from_inventory(&inventory);
    assert_eq!(
        desired
            .suspended
            .suspended_by("web-01", "esxi-01")
            .as_deref(),
        Some("VirtualMachine/web-01"),
        "the VM's own manifest is named first"
    );
    assert_eq!(
        desired
            .suspended
            .suspended_by("web-02", "esxi-01")
            .as_deref(),
        Some("Host/esxi-01")
    );
}

#[test]
fn suspend_takes_only_true_or_false() {
    let vms = "apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-01 }
spec:
  host: esxi-01
  cpu: 1
  memory: 1GiB
  suspend: \"yes\"
---
apiVersion: ceso/v1
kind: VirtualMachine
metadata: { name: web-02 }
spec:
  host: esxi-01
  cpu: 1
  memory: 1GiB
  suspend: 1
";
    let host = HOST.replace(
        "  network: VM Network\n",
        "  network: VM Network\n  suspend: paused\n",
    );
    let dir = write_inventory(&[("hosts.yaml", &host), ("vms.yaml", vms)]);
    assert_eq!(
        problems(dir.path()),
        vec![
            "hosts.yaml:11:12 Host/esxi-01 spec.suspend: invalid type: string \"paused\", expected `true` or `false`",
            "vms.yaml:8:12 VirtualMachine/web-01 spec.suspend: invalid type: string \"yes\", expected `true` or `false`",
            "vms.yaml:17:12 VirtualMachine/web-02 spec.suspend: invalid type: integer `1`, expected `true` or `false`",
        ]
    );
    insta::assert_snapshot!("suspend_mistakes", problems_with_hints(dir.path()));
}
