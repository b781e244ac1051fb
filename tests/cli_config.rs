//! The configuration file and `CESO_*` variables: a flag beats its variable, a variable beats
//! the file, the file beats the built-in default; mistakes in the file name file, line and key.

use std::path::Path;
use std::process::{Command, Output};

const HOSTS: &str = "apiVersion: ceso/v1\nkind: Host\nmetadata: { name: esxi-01 }\nspec:\n  address: https://127.0.0.1:1\n  insecure: true\n  username: root\n  password: { env: NOBODY_SETS_THIS }\n  datastore: datastore1\n  network: VM Network\n";

/// A working directory with two valid inventories, `first` (one Host) and `second` (a Host
/// named differently), and no configuration yet.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, host) in [("first", "esxi-01"), ("second", "esxi-02")] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(
            dir.path().join(name).join("hosts.yaml"),
            HOSTS.replace("esxi-01", host),
        )
        .unwrap();
    }
    dir
}

fn ceso(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ceso"));
    command.args(args).current_dir(dir).env("HOME", dir);
    for variable in [
        "CESO_CONFIG",
        "CESO_INVENTORY",
        "CESO_STATE",
        "CESO_OUTPUT",
        "CESO_PARALLELISM",
        "XDG_CONFIG_HOME",
    ] {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_config(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir.join(".ceso")).unwrap();
    std::fs::write(dir.join(".ceso/config.yaml"), text).unwrap();
}

#[test]
fn the_project_file_gives_the_inventory_and_the_output_format() {
    let dir = project();
    write_config(dir.path(), "inventory: first\noutput: json\n");
    let output = ceso(dir.path(), &["validate"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], true);
}

#[test]
fn a_variable_beats_the_file_and_a_flag_beats_the_variable() {
    let dir = project();
    write_config(dir.path(), "inventory: missing-dir\noutput: json\n");
    // The file's inventory does not exist: validate fails naming it.
    let from_file = ceso(dir.path(), &["validate", "--output", "human"], &[]);
    assert!(!from_file.status.success());
    assert!(
        stderr(&from_file).contains("missing-dir"),
        "{}",
        stderr(&from_file)
    );
    // The variable wins over the file.
    let from_variable = ceso(
        dir.path(),
        &["validate", "--output", "human"],
        &[("CESO_INVENTORY", "first")],
    );
    assert!(
        stdout(&from_variable).contains("first: valid"),
        "{}",
        stdout(&from_variable)
    );
    // The argument wins over the variable.
    let from_flag = ceso(
        dir.path(),
        &["validate", "second", "--output", "human"],
        &[("CESO_INVENTORY", "first")],
    );
    assert!(
        stdout(&from_flag).contains("second: valid"),
        "{}",
        stdout(&from_flag)
    );
    // The output format: the file says json, the variable says human, the flag json again.
    let human = ceso(
        dir.path(),
        &["validate", "first"],
        &[("CESO_OUTPUT", "human")],
    );
    assert!(
        stdout(&human).contains("first: valid"),
        "{}",
        stdout(&human)
    );
    let json = ceso(
        dir.path(),
        &["validate", "first", "--output", "json"],
        &[("CESO_OUTPUT", "human")],
    );
    assert!(
        stdout(&json).trim_start().starts_with('{'),
        "{}",
        stdout(&json)
    );
}

#[test]
fn the_state_file_comes_from_the_file_unless_a_variable_or_flag_says_otherwise() {
    let dir = project();
    write_config(dir.path(), "state: from-file.redb\n");
    let named = |output: &Output| stderr(output);
    let file = ceso(dir.path(), &["audit", "list"], &[]);
    assert!(
        named(&file).contains("no state file at from-file.redb"),
        "{}",
        named(&file)
    );
    let variable = ceso(
        dir.path(),
        &["audit", "list"],
        &[("CESO_STATE", "from-env.redb")],
    );
    assert!(
        named(&variable).contains("from-env.redb"),
        "{}",
        named(&variable)
    );
    let flag = ceso(
        dir.path(),
        &["audit", "list", "--state", "from-flag.redb"],
        &[("CESO_STATE", "from-env.redb")],
    );
    assert!(named(&flag).contains("from-flag.redb"), "{}", named(&flag));
}

#[test]
fn an_explicit_config_file_is_used_and_the_users_file_is_the_fallback() {
    let dir = project();
    std::fs::write(dir.path().join("ci.yaml"), "inventory: second\n").unwrap();
    let explicit = ceso(dir.path(), &["--config", "ci.yaml", "validate"], &[]);
    assert!(
        stdout(&explicit).contains("second: valid"),
        "{}",
        stderr(&explicit)
    );
    let variable = ceso(dir.path(), &["validate"], &[("CESO_CONFIG", "ci.yaml")]);
    assert!(
        stdout(&variable).contains("second: valid"),
        "{}",
        stderr(&variable)
    );
    // No project file: ~/.config/ceso/config.yaml.
    std::fs::create_dir_all(dir.path().join(".config/ceso")).unwrap();
    std::fs::write(
        dir.path().join(".config/ceso/config.yaml"),
        "inventory: first\n",
    )
    .unwrap();
    let user = ceso(dir.path(), &["validate"], &[]);
    assert!(stdout(&user).contains("first: valid"), "{}", stderr(&user));
    let missing = ceso(dir.path(), &["--config", "nope.yaml", "validate"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("cannot read the configuration file nope.yaml"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn mistakes_in_the_file_name_the_file_line_and_key_and_nothing_runs() {
    let dir = project();
    write_config(dir.path(), "inventory: first\nparalelism: 4\n");
    let typo = ceso(dir.path(), &["validate"], &[]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(stdout(&typo).is_empty());
    let text = stderr(&typo);
    assert!(
        text.contains(".ceso/config.yaml:2:1: paralelism: unknown field"),
        "{text}"
    );
    assert!(
        text.contains("hint: the keys are inventory, state, output"),
        "{text}"
    );

    // Help, the version and completions still work, with a warning.
    for args in [
        &["--version"][..],
        &["plan", "--help"],
        &["completions", "bash"],
    ] {
        let output = ceso(dir.path(), args, &[]);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("(ignored here)"), "{args:?}");
    }

    write_config(dir.path(), "output: yaml\n");
    let text = stderr(&ceso(dir.path(), &["validate", "first"], &[]));
    assert!(
        text.contains(".ceso/config.yaml:1:") && text.contains("output:"),
        "{text}"
    );

    write_config(dir.path(), "parallelism: 0\n");
    let text = stderr(&ceso(dir.path(), &["validate", "first"], &[]));
    assert!(
        text.contains(".ceso/config.yaml:1:1: parallelism: 0 is not in 1..=64"),
        "{text}"
    );
}

#[test]
fn parallelism_from_the_file_is_the_default_of_apply_and_watch() {
    let dir = project();
    write_config(dir.path(), "parallelism: 7\n");
    // `--help` shows the default each option ends up with.
    for command in ["apply", "watch"] {
        let help = stdout(&ceso(dir.path(), &[command, "--help"], &[]));
        assert!(help.contains("[default: 7]"), "{command}: {help}");
    }
    let help = stdout(&ceso(
        dir.path(),
        &["apply", "--help"],
        &[("CESO_PARALLELISM", "3")],
    ));
    assert!(help.contains("CESO_PARALLELISM=3"), "{help}");
}
