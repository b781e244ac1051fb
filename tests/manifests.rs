//! Manifests: what is accepted, and the exact diagnostic (file:line:column, resource, field,
//! hint) for what is not. Also keeps `schemas/` and `examples/inventory/` honest.

use std::path::{Path, PathBuf};

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
        ["db-01", "web-01", "web-02"]
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
            "vms.yaml:24:3 VirtualMachine/web-03 spec.colour: unknown field `colour`, expected one of `host`, `cpu`, `memory`, `disks`, `networks`, `power`, `guestId`, `datastore`, `protect`",
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
    assert!(text.contains("vm.yaml:4:15: VirtualMachine/a: spec.host: unknown host \"esxi-9\"\n  hint: declared hosts: esxi-01"), "{text}");
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
        "typed errors stop at the first per document: {found:?}"
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
            "hosts.yaml:6:15 Host/esxi-01 spec.thumbprint: this is a SHA-1 thumbprint; ceso pins the SHA-256 one",
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
        assert!(
            text.lines()
                .next()
                .unwrap_or_default()
                .starts_with("# yaml-language-server: $schema=../../schemas/ceso-v1.schema.json"),
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
