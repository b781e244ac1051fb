//! The command line explains itself: every command's `--help` ends with examples that parse with
//! the real definition, `ceso completions SHELL` prints a working completion script, and
//! `ceso man` prints (or with `--out DIR` writes) man pages that groff renders cleanly.
//!
//! The man page tests run `groff` (Debian package `groff-base`, installed by tests/setup.sh).

use std::path::Path;
use std::process::{Command, Output};

use clap::FromArgMatches;

use ceso::cli::{Cli, command_line};
use ceso::config::Config;

/// Every command a user can run, with its path (`ceso`, `ceso vm create`, ...), as
/// `command_line` defines it (clap's own `help` subcommands are not ours to document).
fn every_command() -> Vec<(String, clap::Command)> {
    fn walk(command: &clap::Command, path: String, all: &mut Vec<(String, clap::Command)>) {
        for sub in command.get_subcommands() {
            if sub.get_name() != "help" {
                walk(sub, format!("{path} {}", sub.get_name()), all);
            }
        }
        all.push((path, command.clone()));
    }
    let mut all = Vec::new();
    walk(
        &command_line(&Config::default()),
        "ceso".to_owned(),
        &mut all,
    );
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// The text after a command's help (the examples), without styles.
fn after_help(command: &clap::Command) -> String {
    command
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// The example invocations in a command's help: its lines that start with `ceso `.
fn invocations(command: &clap::Command) -> Vec<String> {
    after_help(command)
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("ceso "))
        .map(str::to_owned)
        .collect()
}

/// The words of an invocation up to the first pipe or redirection (`ceso man | man -l -` runs
/// `ceso man`).
fn words_of(invocation: &str) -> Vec<String> {
    let words = shlex::split(invocation)
        .unwrap_or_else(|| panic!("example `{invocation}` is not valid shell quoting"));
    words
        .into_iter()
        .take_while(|word| !["|", ">", ">>", "<", "&&", "||", ";"].contains(&word.as_str()))
        .collect()
}

/// The subcommands `matches` selected, outermost first: `["vm", "create"]`.
fn chosen_path(matches: &clap::ArgMatches) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        path.push(name.to_owned());
        current = sub;
    }
    path
}

fn ceso(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ceso"))
        .args(args)
        .output()
        .expect("ceso runs")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// Renders roff with groff's man macros; returns the text, failing on any warning or error.
fn render_with_groff(page: &Path) -> String {
    let output = Command::new("groff")
        // -P-cbou: plain text, no overstriking for bold and underline.
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(page)
        .output()
        .expect("groff runs (Debian package groff-base)");
    let warnings = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && warnings.trim().is_empty(),
        "groff rendered {} with problems:\n{warnings}",
        page.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_command_and_subcommand_ends_its_help_with_examples() {
    let commands = every_command();
    assert!(
        commands.len() > 25,
        "the walk found the whole tree: {commands:?}"
    );
    for (path, command) in &commands {
        let text = after_help(command);
        assert!(
            text.starts_with("Examples:"),
            "`{path} --help` ends with examples (src/cli/help.rs), it ends with {text:?}"
        );
        assert!(
            !invocations(command).is_empty(),
            "the examples of `{path}` show at least one `ceso ...` invocation:\n{text}"
        );
    }
}

#[test]
fn every_example_parses_with_the_command_definition_and_runs_the_command_it_documents() {
    for (path, command) in every_command() {
        for invocation in invocations(&command) {
            let words = words_of(&invocation);
            let matches = command_line(&Config::default())
                .try_get_matches_from(&words)
                .unwrap_or_else(|e| {
                    panic!("the example `{invocation}` of `{path}` does not parse:\n{e}")
                });
            if let Err(e) = Cli::from_arg_matches(&matches) {
                panic!("the example `{invocation}` of `{path}` is not a valid command:\n{e}");
            }
            let chosen = std::iter::once("ceso".to_owned())
                .chain(chosen_path(&matches))
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                format!("{chosen} ").starts_with(&format!("{path} ")),
                "the example `{invocation}` is shown for `{path}` but runs `{chosen}`"
            );
        }
    }
}

#[test]
fn help_shows_the_examples_on_the_command_line() {
    let root = stdout_of(&ceso(&["--help"]));
    assert!(root.contains("Examples:\n  # "), "ceso --help:\n{root}");
    assert!(
        root.contains("  ceso plan inventory"),
        "ceso --help:\n{root}"
    );

    let vm_create = stdout_of(&ceso(&["vm", "create", "--help"]));
    assert!(
        vm_create.contains("Examples:") && vm_create.contains("  ceso vm create web-09 "),
        "ceso vm create --help:\n{vm_create}"
    );
    let short = stdout_of(&ceso(&["backup", "restore", "-h"]));
    assert!(
        short.contains("  ceso backup restore db-01-"),
        "-h shows the examples too:\n{short}"
    );
    assert!(
        !short.contains('\u{1b}'),
        "no terminal, no colour codes:\n{short}"
    );
}

#[test]
fn bash_completions_are_a_valid_script_that_completes_subcommand_names() {
    let script = stdout_of(&ceso(&["completions", "bash"]));
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("ceso.bash");
    std::fs::write(&file, &script).expect("script written");

    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash runs");
    assert!(
        syntax.status.success(),
        "bash -n accepts the script:\n{}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    // What bash does on <Tab>: the function `complete -p ceso` names, called with the words so
    // far; the candidates are in COMPREPLY.
    let complete = |line: &str| -> Vec<String> {
        let output = Command::new("bash")
            .arg("-c")
            .arg(
                r#"source "$1"
                   spec=$(complete -p ceso) || exit 3
                   function=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<<"$spec")
                   [ "$(type -t "$function")" = function ] || exit 4
                   read -r -a COMP_WORDS <<<"$2"
                   [[ "$2" == *" " ]] && COMP_WORDS+=("")
                   COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
                   COMP_LINE="$2"
                   COMP_POINT=${#2}
                   "$function" ceso "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                   printf '%s\n' "${COMPREPLY[@]}""#,
            )
            .arg("bash")
            .arg(&file)
            .arg(line)
            .output()
            .expect("bash runs");
        assert!(
            output.status.success(),
            "completing {line:?}: exit {:?}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };

    assert_eq!(complete("ceso ba"), ["backup"]);
    assert_eq!(complete("ceso vm cr"), ["create"]);
    let shells = complete("ceso completions ");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(shells.iter().any(|s| s == shell), "{shell} in {shells:?}");
    }
    let commands = complete("ceso ");
    for command in [
        "validate", "plan", "apply", "watch", "status", "init", "man",
    ] {
        assert!(
            commands.iter().any(|c| c == command),
            "{command} in {commands:?}"
        );
    }
}

#[test]
fn completions_exist_for_every_supported_shell() {
    for (shell, marker) in [
        ("zsh", "#compdef ceso"),
        ("fish", "complete -c ceso"),
        ("elvish", "edit:completion:arg-completer[ceso]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = stdout_of(&ceso(&["completions", shell]));
        assert!(script.contains(marker), "{shell}: {marker} in\n{script}");
        assert!(script.contains("backup"), "{shell} completes `backup`");
    }
    let unknown = ceso(&["completions", "tcsh"]);
    assert_eq!(
        unknown.status.code(),
        Some(1),
        "an unknown shell is an error"
    );
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message.contains("possible values: bash, elvish, fish, powershell, zsh"),
        "{message}"
    );
}

#[test]
fn the_man_page_is_roff_that_groff_renders_and_names_every_command() {
    let page = stdout_of(&ceso(&["man"]));
    assert!(page.contains("\n.TH ceso 1 "), "{page}");
    for (path, _) in every_command() {
        assert!(
            page.contains(&format!("\\fB{}\\fR", path.replace('-', "\\-"))),
            "`ceso man` lists `{path}`"
        );
    }

    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("ceso.1");
    std::fs::write(&file, &page).expect("page written");
    let text = render_with_groff(&file);
    for heading in [
        "NAME", "SYNOPSIS", "OPTIONS", "COMMANDS", "EXAMPLES", "VERSION",
    ] {
        assert!(text.contains(heading), "{heading} in\n{text}");
    }
    assert!(text.contains("ceso plan inventory"), "{text}");
}

#[test]
fn man_with_a_command_prints_that_commands_page() {
    let page = stdout_of(&ceso(&["man", "vm", "create"]));
    assert!(page.contains("\n.TH ceso-vm-create 1 "), "{page}");
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("ceso-vm-create.1");
    std::fs::write(&file, &page).expect("page written");
    let text = render_with_groff(&file);
    assert!(text.contains("--template"), "{text}");
    assert!(
        text.contains("ceso vm create web-09 --template ubuntu-24.04"),
        "its examples:\n{text}"
    );
    assert!(
        text.contains("ceso-vm(1)") && text.contains("ceso(1)"),
        "SEE ALSO names the pages above it:\n{text}"
    );

    let unknown = ceso(&["man", "vm", "frobnicate"]);
    assert_eq!(unknown.status.code(), Some(1));
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message.contains("error: there is no command `ceso vm frobnicate`")
            && message.contains("hint:")
            && message.contains("vm create"),
        "{message}"
    );
}

#[test]
fn man_out_writes_one_page_per_command_for_packagers() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("man1");
    let printed = stdout_of(&ceso(&["man", "--out", out.to_str().expect("UTF-8 path")]));

    let mut expected: Vec<String> = every_command()
        .iter()
        .map(|(path, _)| format!("{}.1", path.replace(' ', "-")))
        .collect();
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .expect("the directory was created")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    written.sort();
    assert_eq!(
        written, expected,
        "ceso.1 and one page per command, no more"
    );
    assert!(
        printed.contains(&format!("Wrote {} man pages to ", expected.len())),
        "{printed}"
    );

    for name in &written {
        let text = render_with_groff(&out.join(name));
        assert!(text.contains("EXAMPLES"), "{name} has examples:\n{text}");
    }
    let backup_restore =
        std::fs::read_to_string(out.join("ceso-backup-restore.1")).expect("ceso-backup-restore.1");
    assert!(
        backup_restore.contains("\\-\\-as\\-new"),
        "{backup_restore}"
    );

    let both = ceso(&["man", "plan", "--out", out.to_str().expect("UTF-8 path")]);
    assert_eq!(both.status.code(), Some(1), "a COMMAND and --out conflict");
}
