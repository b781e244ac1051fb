//! An example for every command, shown at the end of its `--help` (and in its man page).
//!
//! The table is keyed by the full command path (`ceso`, `ceso plan`, `ceso vm create`, ...).
//! Each entry holds one to three examples: a `# comment` line followed by the invocation(s).
//! tests/cli_help.rs parses every line that starts with `ceso ` with the real command
//! definition, so an example cannot name a flag that does not exist.

use clap::builder::StyledStr;
use clap::builder::styling::Styles;

/// The examples of every command: its path, then `# comment` and invocation lines.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "ceso",
        &[
            "# Check the manifests of ./inventory without touching a host",
            "ceso validate inventory",
            "# Show what would change on the hosts; exit code 2 when changes are pending",
            "ceso plan inventory",
            "# Plan, confirm on the terminal, apply; every step goes to the audit log",
            "ceso apply inventory",
        ],
    ),
    (
        "ceso validate",
        &[
            "# Report every problem of ./inventory at once, with file:line:column and a hint",
            "ceso validate inventory",
            "# The same problems as JSON, for an editor or a pipeline",
            "ceso validate inventory --json",
        ],
    ),
    (
        "ceso plan",
        &[
            "# Plan the inventory in ./inventory; exit code 2 when changes are pending",
            "ceso plan inventory",
            "# Save the plan for review; `ceso apply plan.json` applies exactly that plan",
            "ceso plan inventory --out plan.json",
            "# In a pull request: Markdown for a comment, and the plan saved for the apply on merge",
            "ceso plan inventory --format markdown --out plan.json > plan.md",
        ],
    ),
    (
        "ceso apply",
        &[
            "# Plan ./inventory, ask for confirmation, apply",
            "ceso apply inventory",
            "# Apply a plan saved by `ceso plan --out` (refused if the hosts changed since)",
            "ceso apply plan.json --auto-approve",
            "# In a pipeline: no prompt, and delete the VMs removed from the manifests",
            "ceso apply inventory --auto-approve --prune",
        ],
    ),
    (
        "ceso audit",
        &[
            "# Every apply run: who, when, which plan, how it ended",
            "ceso audit list",
            "# Every step of one run",
            "ceso audit show 20261127T093000.123Z-1a2b3c",
        ],
    ),
    (
        "ceso audit list",
        &[
            "# Every apply run, oldest first",
            "ceso audit list",
            "# As JSON, for scripts",
            "ceso audit list --json",
            "# Only the security events: refusals, promotions and their use",
            "ceso audit list --events",
        ],
    ),
    (
        "ceso audit show",
        &[
            "# Every step of a run: started, succeeded, failed with the fault, skipped and why",
            "ceso audit show 20261127T093000.123Z-1a2b3c",
            "# As JSON",
            "ceso audit show 20261127T093000.123Z-1a2b3c --json",
        ],
    ),
    (
        "ceso audit verify",
        &[
            "# Check the hash chain: every entry linked, every run and step as recorded",
            "ceso audit verify",
            "# Also check that the log still ends where it ended last time (head kept elsewhere)",
            "ceso audit verify --expect-head 3f2a9c0d5e7b1a4c6d8e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c",
        ],
    ),
    (
        "ceso audit export",
        &[
            "# Every audit entry as a JSON line, for a log collector",
            "ceso audit export > audit.jsonl",
            "# Into a file",
            "ceso audit export --out /var/log/ceso/audit.jsonl",
        ],
    ),
    (
        "ceso schema",
        &[
            "# Print the JSON Schema of the manifests (for an editor's YAML language server)",
            "ceso schema > ceso-v1.schema.json",
            "# Write schemas/ceso-v1.schema.json",
            "ceso schema --out schemas",
        ],
    ),
    (
        "ceso vm",
        &[
            "# Every VM of every host of ./inventory",
            "ceso vm list --inventory inventory",
            "# A new VM from a template, with an address from pool lan",
            "ceso vm create web-09 --template ubuntu-24.04 --pool lan --inventory inventory",
        ],
    ),
    (
        "ceso vm create",
        &[
            "# A VM from a template, an address from pool lan and your SSH key; asks before applying",
            "ceso vm create web-09 --template ubuntu-24.04 --pool lan --ssh-key ~/.ssh/id_ed25519.pub",
            "# A static address, more memory and a bigger disk, without asking (pipelines)",
            "ceso vm create db-02 --template ubuntu-24.04 --ip 192.168.1.120/24 --memory 8GiB --disk 40GiB --yes",
        ],
    ),
    (
        "ceso vm clone",
        &[
            "# Clone web-09 on its host (no vCenter); the clone takes an address from pool lan",
            "ceso vm clone web-09 web-10 --pool lan",
            "# A static address, left powered off, without asking",
            "ceso vm clone web-09 web-11 --ip 192.168.1.121/24 --power off --yes",
        ],
    ),
    (
        "ceso vm delete",
        &[
            "# Delete web-09 and its disks, remove vms/web-09.yaml, release its address",
            "ceso vm delete web-09 --inventory inventory",
            "# Without asking; power off hard if the guest does not shut down",
            "ceso vm delete web-09 --yes --force-power-off",
        ],
    ),
    (
        "ceso vm list",
        &[
            "# Every VM: power, cpu, memory, address, managed or not",
            "ceso vm list --inventory inventory",
            "# Only host esxi-01, as JSON",
            "ceso vm list --host esxi-01 --json",
        ],
    ),
    (
        "ceso vm info",
        &[
            "# Hardware, disks, adapters and decoded cloud-init of web-01 (secrets redacted)",
            "ceso vm info web-01 --inventory inventory",
            "# A VM ceso does not manage, by its name on host esxi-01, as JSON",
            "ceso vm info legacy-app --host esxi-01 --json",
        ],
    ),
    (
        "ceso template",
        &[
            "# Import Ubuntu's cloud image onto esxi-01 and write templates/ubuntu-24.04.yaml",
            "ceso template import ubuntu-24.04-server-cloudimg-amd64.ova --name ubuntu-24.04 --host esxi-01",
        ],
    ),
    (
        "ceso template import",
        &[
            "# Import Ubuntu's cloud image onto esxi-01 and write templates/ubuntu-24.04.yaml",
            "ceso template import ubuntu-24.04-server-cloudimg-amd64.ova --name ubuntu-24.04 --host esxi-01",
            "# Onto another datastore and port group, into the inventory in ./inventory",
            "ceso template import noble.ova --name ubuntu-24.04 --host esxi-02 --datastore ssd-1 --network \"VM Network\" --inventory inventory",
        ],
    ),
    (
        "ceso ip",
        &[
            "# Every IP pool (size, used, free) and every address in use",
            "ceso ip list --inventory inventory",
        ],
    ),
    (
        "ceso ip list",
        &[
            "# Every IP pool (size, used, free) and every address in use; exit code 1 on a conflict",
            "ceso ip list --inventory inventory",
            "# As JSON",
            "ceso ip list --json",
        ],
    ),
    (
        "ceso backup",
        &[
            "# Back up db-01 now, under its backupPolicy",
            "ceso backup create db-01",
            "# The backups of db-01",
            "ceso backup list db-01",
        ],
    ),
    (
        "ceso backup create",
        &[
            "# Back up db-01 now, under its backupPolicy, into the inventory in ./inventory",
            "ceso backup create db-01 --inventory inventory",
            "# Under another policy (its target and quiescing)",
            "ceso backup create db-01 --policy weekly-offsite",
        ],
    ),
    (
        "ceso backup list",
        &[
            "# Every backup in the catalog",
            "ceso backup list",
            "# The backups of db-01, read again from the targets, as JSON",
            "ceso backup list db-01 --rescan --json",
        ],
    ),
    (
        "ceso backup verify",
        &[
            "# Re-read and re-hash every file of a backup; exit code 1 names each bad chunk",
            "ceso backup verify db-01-20261127T023000Z",
        ],
    ),
    (
        "ceso backup prune",
        &[
            "# What retention would delete",
            "ceso backup prune --dry-run",
            "# Delete it, and the chunks no backup uses any more",
            "ceso backup prune --inventory inventory",
        ],
    ),
    (
        "ceso backup run",
        &[
            "# From cron or a systemd timer: take every backup that is due",
            "ceso backup run --inventory /srv/inventory",
            "# Which backups are due now",
            "ceso backup run --dry-run",
        ],
    ),
    (
        "ceso backup restore",
        &[
            "# Restore db-01 in place: shut down, swap disks and settings, power back on",
            "ceso backup restore db-01-20261127T023000Z",
            "# As a new VM db-02 with a new identity and an address from pool lan",
            "ceso backup restore db-01-20261127T023000Z --as-new db-02 --pool lan --yes",
        ],
    ),
    (
        "ceso watch",
        &[
            "# Report pending changes and drift of ./inventory, checking the hosts every minute",
            "ceso watch inventory --interval 1m",
            "# Apply every change and correct drift; one JSON object per event (e.g. for journald)",
            "ceso watch inventory --apply --json",
            "# Also delete the VMs removed from the manifests, and take no backups",
            "ceso watch inventory --apply --prune --no-backups",
        ],
    ),
    (
        "ceso status",
        &[
            "# The last reconcile of `ceso watch`, the drift it found, the next backups",
            "ceso status inventory",
            "# Also the last 10 reconciles, as JSON",
            "ceso status inventory --history 10 --json",
        ],
    ),
    (
        "ceso init",
        &[
            "# Scaffold ./inventory for host esxi-01 (shows its certificate thumbprint to confirm);",
            "# with $ESXI_PASSWORD set, its datastores and port groups are read too",
            "ceso init inventory --host esxi-01.lab.example",
            "# VMs on 10.0.20.0/24, the password in $ESXI_ROOT_PW, the certificate trusted as shown",
            "ceso init inventory --host 10.0.20.5 --subnet 10.0.20.0/24 --gateway 10.0.20.1 --password-env ESXI_ROOT_PW --yes",
        ],
    ),
    (
        "ceso completions",
        &[
            "# Bash (bash-completion loads it for every new shell)",
            "ceso completions bash > ~/.local/share/bash-completion/completions/ceso",
            "# Zsh: into a directory of $fpath",
            "ceso completions zsh > ~/.zfunc/_ceso",
            "# Fish",
            "ceso completions fish > ~/.config/fish/completions/ceso.fish",
        ],
    ),
    (
        "ceso man",
        &[
            "# Read the manual page of ceso",
            "ceso man | man -l -",
            "# The page of one command",
            "ceso man vm create | man -l -",
            "# Install every page (ceso.1, ceso-plan.1, ceso-vm-create.1, ...), as a package does",
            "ceso man --out /usr/local/share/man/man1",
        ],
    ),
    (
        "ceso host",
        &[
            "# Check every host of ./inventory: the API with its pinned certificate, SSH with its pinned host key",
            "ceso host check --inventory inventory",
        ],
    ),
    (
        "ceso host check",
        &[
            "# Log in to every host the way ceso does and check every pin; exit code 1 if one failed",
            "ceso host check --inventory inventory",
            "# List the SSH host keys esxi-01 presents, to pin one in spec.ssh.hostKey (nothing trusted, no login)",
            "ceso host check esxi-01 --show-ssh-keys --inventory inventory",
            "# One host, as JSON",
            "ceso host check esxi-01 --inventory inventory --json",
        ],
    ),
    (
        "ceso promote",
        &[
            "# As the agent: ask a person for 30 minutes of changes",
            "ceso promote request --reason \"add web-09 for the load test\" --ttl 30m",
            "# As a person, at a terminal: approve it by typing its ID back",
            "ceso promote approve prm-3f9a1c0b7d2e",
        ],
    ),
    (
        "ceso promote request",
        &[
            "# Ask for 30 minutes of changes; prints the ID and the command that approves it",
            "ceso promote request --reason \"add web-09 for the load test\" --ttl 30m",
            "# As JSON (id, status, approve_command), for an agent",
            "ceso promote request --reason \"resize db-01 to 4 GiB\" --ttl 15m --json",
        ],
    ),
    (
        "ceso promote approve",
        &[
            "# Shows who asks, why and for how long; type the ID back to approve (signed with your key)",
            "ceso promote approve prm-3f9a1c0b7d2e --state /srv/agent/.ceso/state.redb",
        ],
    ),
    (
        "ceso promote deny",
        &[
            "# Refuse a pending request, saying why in the audit log",
            "ceso promote deny prm-3f9a1c0b7d2e --reason \"not during the freeze\"",
        ],
    ),
    (
        "ceso promote revoke",
        &[
            "# Withdraw an approved promotion before it expires",
            "ceso promote revoke prm-3f9a1c0b7d2e --reason \"done for today\"",
        ],
    ),
    (
        "ceso promote end",
        &[
            "# As the agent: give the active promotion back when the work is done",
            "ceso promote end",
        ],
    ),
    (
        "ceso promote list",
        &[
            "# Every promotion of the state file: pending, approved, denied, revoked, ended, expired",
            "ceso promote list",
            "# As JSON",
            "ceso promote list --json",
        ],
    ),
    (
        "ceso promote status",
        &[
            "# Your role, your profile, why, and your active promotion",
            "ceso promote status",
            "# As JSON (role, profile, promotion), for an agent",
            "ceso promote status --json",
        ],
    ),
    (
        "ceso promote keygen",
        &[
            "# Create your approver key and print the line for approverKeys in /etc/ceso/profiles.yaml",
            "ceso promote keygen",
        ],
    ),
    (
        "ceso mcp",
        &[
            "# Serve MCP on standard input and output for an AI agent's host (every tool runs restricted)",
            "ceso mcp --inventory inventory",
            "# With the agent's own state file, where its promotions and refusals are recorded",
            "ceso mcp --inventory /srv/agent/inventory --state /srv/agent/.ceso/state.redb",
        ],
    ),
    (
        "ceso secret",
        &[
            "# Store the password of esxi-01 (typed twice, never shown); its Host says `password: { secret: esxi-01-root }`",
            "ceso secret set esxi-01-root",
            "# The stored secrets: names, where, last change (never values)",
            "ceso secret list",
        ],
    ),
    (
        "ceso secret set",
        &[
            "# Into ceso's encrypted store (typed twice without echo; piped standard input works too)",
            "ceso secret set esxi-01-root",
            "# Into the OS keyring instead; the Host then says `password: { keyring: esxi-01-root }`",
            "ceso secret set esxi-01-root --keyring",
        ],
    ),
    (
        "ceso secret list",
        &[
            "# Names, where they are (store or keyring) and when they changed; never values",
            "ceso secret list",
            "# As JSON",
            "ceso secret list --json",
        ],
    ),
    (
        "ceso secret rm",
        &[
            "# Remove a secret from the encrypted store",
            "ceso secret rm esxi-01-root",
            "# Remove an entry from the OS keyring",
            "ceso secret rm esxi-01-root --keyring",
        ],
    ),
];

/// The example lines of the command at `path` (`ceso`, `ceso vm create`, ...), if it has any.
pub fn examples_of(path: &str) -> Option<&'static [&'static str]> {
    EXAMPLES
        .iter()
        .find(|(command, _)| *command == path)
        .map(|(_, lines)| *lines)
}

/// Adds the examples to `command` and its subcommands, as the text after their help.
pub fn with_examples(command: clap::Command) -> clap::Command {
    let styles = command.get_styles().clone();
    let path = command.get_name().to_owned();
    add_examples(command, &path, &styles)
}

fn add_examples(mut command: clap::Command, path: &str, styles: &Styles) -> clap::Command {
    if let Some(lines) = examples_of(path) {
        command = command.after_help(render(lines, styles));
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = format!("{path} {name}");
        command = command.mut_subcommand(&name, |sub| add_examples(sub, &sub_path, styles));
    }
    command
}

/// `Examples:` as a heading like clap's own, then the lines indented, a blank line between
/// examples, invocations in the literal style (styles are dropped when not on a terminal).
fn render(lines: &[&str], styles: &Styles) -> StyledStr {
    let header = styles.get_header();
    let literal = styles.get_literal();
    let mut text = format!("{header}Examples:{header:#}\n");
    let mut previous: Option<&str> = None;
    for line in lines {
        if line.starts_with('#') && previous.is_some_and(|p| !p.starts_with('#')) {
            text.push('\n');
        }
        previous = Some(line);
        if line.starts_with('#') {
            text.push_str(&format!("  {line}\n"));
        } else {
            text.push_str(&format!("  {literal}{line}{literal:#}\n"));
        }
    }
    StyledStr::from(text.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn command_paths(command: &clap::Command, path: &str, paths: &mut Vec<String>) {
        paths.push(path.to_owned());
        for sub in command.get_subcommands() {
            command_paths(sub, &format!("{path} {}", sub.get_name()), paths);
        }
    }

    #[test]
    fn every_example_belongs_to_a_command_that_exists() {
        let mut paths = Vec::new();
        command_paths(
            &super::super::command_line(&Config::default()),
            "ceso",
            &mut paths,
        );
        for (path, _) in EXAMPLES {
            assert!(
                paths.iter().any(|p| p == path),
                "examples for `{path}`, which is not a command; the commands: {paths:?}"
            );
        }
    }

    #[test]
    fn every_example_starts_with_a_comment_and_has_an_invocation() {
        for (path, lines) in EXAMPLES {
            assert!(
                lines.first().is_some_and(|line| line.starts_with("# ")),
                "the examples of `{path}` start with a `# ` comment"
            );
            assert!(
                lines.iter().any(|line| line.starts_with("ceso ")),
                "`{path}` has an invocation"
            );
        }
    }
}
