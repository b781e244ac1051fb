//! `ceso host check`: connects to the hosts the way ceso does — the API with the pinned
//! certificate, SSH with the pinned host key where the Host manifest has `spec.ssh` — and says
//! per host what was checked and what came of it. `--show-ssh-keys` lists the SSH host keys a
//! host presents, to pin one on first use (nothing is trusted, nobody logs in).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::connect::{connect, disconnect, load_inventory_to_show};
use super::inspect::print_json;
use super::{CommandError, Outcome, known};
use crate::desired::{DesiredHost, DesiredState};
use crate::manifest::HostSshSpec;
use crate::ssh::{
    CONNECT_TIMEOUT, CommandOutput, HOST_KEY_HINT, HostKeyFingerprint, PresentedKey, SshError,
    SshOptions, SshSession, SshTarget, presented_host_keys,
};

/// The harmless command run over SSH: ESXi's version.
const VERSION_COMMAND: &str = "vmware -vl";
/// Run instead when the host has no `vmware` command (not ESXi, e.g. a test server).
const FALLBACK_COMMAND: &str = "uname -sr";
/// The shell's exit status for a command it cannot find.
const COMMAND_NOT_FOUND: u32 = 127;
/// How long the command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How to read the fingerprints on the host itself.
const CONSOLE_COMMAND: &str = "for k in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $k; done";

/// `ceso host ...`
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Connect to a host the way ceso does (API and SSH) and check every pin.
    Check(HostCheckArgs),
}

/// Arguments of `ceso host check`.
#[derive(Debug, Args)]
pub struct HostCheckArgs {
    /// Hosts to check (`Host` names of the inventory) [default: every host].
    #[arg(value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Inventory directory (it names the hosts, their pins and how to log in to them).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub inventory: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only list the SSH host keys each host presents (one per key type) with their
    /// fingerprints, to pin one: nothing is trusted and nobody logs in.
    #[arg(long, visible_alias = "show-ssh-key")]
    pub show_ssh_keys: bool,
    /// The SSH port to ask with --show-ssh-keys [default: spec.ssh.port, else 22].
    #[arg(long, value_name = "PORT", requires = "show_ssh_keys")]
    pub ssh_port: Option<u16>,
}

/// Runs a `ceso host` command.
pub async fn run(command: HostCommand, _state: &Path) -> Result<Outcome, CommandError> {
    match command {
        HostCommand::Check(args) => check(args).await,
    }
}

/// `ceso host check`
async fn check(args: HostCheckArgs) -> Result<Outcome, CommandError> {
    let inventory = load_inventory_to_show(&args.inventory)?;
    let desired = DesiredState::from_inventory(&inventory);
    let hosts = selected_hosts(&desired, &args.hosts)?;
    if args.show_ssh_keys {
        show_ssh_keys(&hosts, args.ssh_port, args.json).await
    } else {
        check_hosts(&hosts, args.json).await
    }
}

/// The named hosts (every host when none is named), each once, in name order.
fn selected_hosts<'a>(
    desired: &'a DesiredState,
    names: &[String],
) -> Result<Vec<&'a DesiredHost>, CommandError> {
    if desired.hosts.is_empty() {
        return Err(CommandError::with_hint(
            "the inventory declares no Host",
            "pass --inventory DIR, the directory of the manifests",
        ));
    }
    if names.is_empty() {
        return Ok(desired.hosts.values().collect());
    }
    let mut selected = BTreeMap::new();
    for name in names {
        let host = desired.hosts.get(name).ok_or_else(|| {
            CommandError::with_hint(
                format!("the inventory declares no host named {name}"),
                known("hosts", desired.hosts.keys()),
            )
        })?;
        selected.insert(name.as_str(), host);
    }
    Ok(selected.into_values().collect())
}

/// `"N host(s)"`.
fn hosts_count(count: usize) -> String {
    if count == 1 {
        "1 host".to_owned()
    } else {
        format!("{count} hosts")
    }
}

// ------------------------------------------------------------------------------------------------
// checking

/// What `ceso host check` found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckReport {
    /// Whether every check of every host passed.
    ok: bool,
    hosts: Vec<HostReport>,
}

/// One host's checks.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HostReport {
    name: String,
    ok: bool,
    api: ApiReport,
    /// `None`: the Host manifest has no `spec.ssh` (ceso does not use SSH with it).
    ssh: Option<SshReport>,
}

/// The API check: the certificate as the manifest says, then the login.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiReport {
    address: String,
    /// `pinned` (spec.thumbprint), `insecure` (insecure: true) or `plainHttp` (loopback only).
    certificate: &'static str,
    username: String,
    ok: bool,
    /// The product the host reports, e.g. `VMware ESXi 8.0.2 build-22380479`.
    product: Option<String>,
    error: Option<String>,
    hint: Option<String>,
}

/// The SSH check: the pinned host key, the login, and one harmless command.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SshReport {
    /// `host:port`.
    address: String,
    /// `spec.ssh.hostKey`.
    pinned: String,
    username: String,
    ok: bool,
    /// The key the host presented, when it was the pinned one.
    host_key: Option<PresentedKey>,
    /// The command run after logging in.
    command: Option<String>,
    /// Its output and exit status.
    output: Option<CommandOutput>,
    error: Option<String>,
    hint: Option<String>,
}

/// Checks every host (concurrently), prints what was checked; exit 1 when anything failed.
async fn check_hosts(hosts: &[&DesiredHost], json: bool) -> Result<Outcome, CommandError> {
    let reports = futures::future::join_all(hosts.iter().map(|host| check_host(host))).await;
    let failed = reports.iter().filter(|report| !report.ok).count();
    let report = CheckReport {
        ok: failed == 0,
        hosts: reports,
    };
    if json {
        print_json(&report);
    } else {
        print!("{}", render_check(&report));
    }
    if failed == 0 {
        Ok(Outcome::Success)
    } else {
        Err(CommandError::new(format!(
            "{failed} of {} failed the check",
            hosts_count(report.hosts.len())
        )))
    }
}

async fn check_host(host: &DesiredHost) -> HostReport {
    let api = check_api(host).await;
    let ssh = match &host.ssh {
        Some(ssh) => Some(check_ssh(host, ssh).await),
        None => None,
    };
    HostReport {
        name: host.name.clone(),
        ok: api.ok && ssh.as_ref().is_none_or(|ssh| ssh.ok),
        api,
        ssh,
    }
}

/// Logs in to the API exactly as `plan` and `apply` do, reads the product, logs out.
async fn check_api(host: &DesiredHost) -> ApiReport {
    let connection = &host.connection;
    let mut report = ApiReport {
        address: connection.address.clone(),
        certificate: if connection.thumbprint.is_some() {
            "pinned"
        } else if connection.insecure {
            "insecure"
        } else {
            "plainHttp"
        },
        username: connection.username.clone(),
        ok: false,
        product: None,
        error: None,
        hint: None,
    };
    match connect(&BTreeMap::from([(host.name.clone(), connection.clone())])).await {
        Ok(clients) => {
            report.ok = true;
            report.product = clients
                .values()
                .next()
                .map(|client| client.about().full_name.clone());
            disconnect(&clients).await;
        }
        Err(error) => {
            report.error = Some(error.message());
            report.hint = error.hint().map(str::to_owned);
        }
    }
    report
}

/// Connects with SSH, accepting only the pinned key, logs in and runs the version command.
async fn check_ssh(host: &DesiredHost, ssh: &HostSshSpec) -> SshReport {
    let connection = &host.connection;
    let mut report = SshReport {
        address: SshTarget::from_address(&connection.address, ssh.port)
            .map(|target| target.to_string())
            .unwrap_or_else(|_| connection.address.clone()),
        pinned: ssh.host_key.clone(),
        username: connection.username.clone(),
        ok: false,
        host_key: None,
        command: None,
        output: None,
        error: None,
        hint: None,
    };
    let options = match ssh_options(host, ssh) {
        Ok(options) => options,
        Err((error, hint)) => {
            report.error = Some(error);
            report.hint = hint;
            return report;
        }
    };
    let session = match SshSession::connect(options).await {
        Ok(session) => session,
        Err(error) => {
            report.error = Some(error.to_string());
            report.hint = error.hint();
            return report;
        }
    };
    report.host_key = Some(session.host_key().clone());
    match run_version_command(&session).await {
        Ok((command, output)) => {
            report.ok = output.exit_status == Some(0);
            if !report.ok {
                report.error = Some(format!(
                    "`{command}` {}{}",
                    match output.exit_status {
                        Some(status) => format!("exited with status {status}"),
                        None => "ended without an exit status".to_owned(),
                    },
                    first_line(&output.stderr)
                        .map(|line| format!(": {line}"))
                        .unwrap_or_default()
                ));
            }
            report.command = Some(command.to_owned());
            report.output = Some(output);
        }
        Err(error) => {
            report.error = Some(error.to_string());
            report.hint = error.hint();
        }
    }
    session.close().await;
    report
}

/// What [`SshSession::connect`] needs, or the error (and hint) that keeps it from starting.
fn ssh_options(
    host: &DesiredHost,
    ssh: &HostSshSpec,
) -> Result<SshOptions, (String, Option<String>)> {
    let ssh_error = |error: SshError| (error.to_string(), error.hint());
    let target = SshTarget::from_address(&host.connection.address, ssh.port).map_err(ssh_error)?;
    let host_key = HostKeyFingerprint::parse(&ssh.host_key).map_err(|e| {
        (
            format!("spec.ssh.hostKey: {e}"),
            Some(HOST_KEY_HINT.to_owned()),
        )
    })?;
    let password = host
        .connection
        .resolve_password(&host.name)
        .map_err(|e| (e.to_string(), Some(e.hint())))?;
    Ok(SshOptions {
        target,
        host_key,
        username: host.connection.username.clone(),
        password,
        connect_timeout: CONNECT_TIMEOUT,
    })
}

/// `vmware -vl`, or `uname -sr` where there is no `vmware` command.
async fn run_version_command(
    session: &SshSession,
) -> Result<(&'static str, CommandOutput), SshError> {
    let output = session.run(VERSION_COMMAND, COMMAND_TIMEOUT).await?;
    if output.exit_status == Some(COMMAND_NOT_FOUND) {
        let fallback = session.run(FALLBACK_COMMAND, COMMAND_TIMEOUT).await?;
        return Ok((FALLBACK_COMMAND, fallback));
    }
    Ok((VERSION_COMMAND, output))
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|line| !line.is_empty())
}

/// The non-empty lines of a command's output on one line.
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    const LIMIT: usize = 200;
    if joined.chars().count() > LIMIT {
        let cut: String = joined.chars().take(LIMIT).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

fn render_check(report: &CheckReport) -> String {
    let mut out = String::new();
    for host in &report.hosts {
        let _ = writeln!(out, "{}", host.name);
        let api = &host.api;
        let certificate = match api.certificate {
            "pinned" => "certificate pinned",
            "insecure" => "certificate NOT verified (insecure: true)",
            _ => "plain http (loopback)",
        };
        if api.ok {
            let _ = writeln!(
                out,
                "  api  ok      {}: {certificate}, logged in as {}; {}",
                api.address,
                api.username,
                api.product.as_deref().unwrap_or("product unknown")
            );
        } else {
            render_failure(&mut out, "api", api.error.as_deref(), api.hint.as_deref());
        }
        match &host.ssh {
            None => {
                let _ = writeln!(
                    out,
                    "  ssh  -       not used (the Host manifest has no spec.ssh)"
                );
            }
            Some(ssh) if ssh.ok => {
                let key = ssh
                    .host_key
                    .as_ref()
                    .map(PresentedKey::to_string)
                    .unwrap_or_else(|| ssh.pinned.clone());
                let command = ssh.command.as_deref().unwrap_or_default();
                let output = ssh
                    .output
                    .as_ref()
                    .map(|output| one_line(&output.stdout))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  ssh  ok      {}: host key {key} is the pinned one, logged in as {}; `{command}`: {output}",
                    ssh.address, ssh.username
                );
            }
            Some(ssh) => {
                render_failure(&mut out, "ssh", ssh.error.as_deref(), ssh.hint.as_deref());
            }
        }
    }
    if report.ok {
        let _ = writeln!(
            out,
            "\n{} checked: every pin matched.",
            hosts_count(report.hosts.len())
        );
    }
    out
}

fn render_failure(out: &mut String, what: &str, error: Option<&str>, hint: Option<&str>) {
    let _ = writeln!(
        out,
        "  {what}  FAILED  {}",
        error.unwrap_or("failed (no details)")
    );
    if let Some(hint) = hint {
        let _ = writeln!(out, "               hint: {hint}");
    }
}

// ------------------------------------------------------------------------------------------------
// --show-ssh-keys

/// The SSH host keys of each host.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KeysReport {
    hosts: Vec<HostKeys>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HostKeys {
    name: String,
    /// `host:port` asked.
    address: String,
    /// `spec.ssh.hostKey`, if the manifest pins one.
    pinned: Option<String>,
    keys: Vec<ShownKey>,
    error: Option<String>,
    hint: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ShownKey {
    #[serde(flatten)]
    key: PresentedKey,
    /// Whether this is the key the manifest pins.
    pinned: bool,
}

/// Lists the keys each host presents; exit 1 when a host could not be asked.
async fn show_ssh_keys(
    hosts: &[&DesiredHost],
    port: Option<u16>,
    json: bool,
) -> Result<Outcome, CommandError> {
    let lists = futures::future::join_all(hosts.iter().map(|host| host_keys(host, port))).await;
    let failed = lists.iter().filter(|host| host.error.is_some()).count();
    let report = KeysReport { hosts: lists };
    if json {
        print_json(&report);
    } else {
        print!("{}", render_keys(&report));
    }
    if failed == 0 {
        Ok(Outcome::Success)
    } else {
        Err(CommandError::new(format!(
            "{failed} of {} could not be asked for their SSH host keys",
            hosts_count(report.hosts.len())
        )))
    }
}

async fn host_keys(host: &DesiredHost, port: Option<u16>) -> HostKeys {
    let port = port.or(host.ssh.as_ref().and_then(|ssh| ssh.port));
    let mut report = HostKeys {
        name: host.name.clone(),
        address: host.connection.address.clone(),
        pinned: host.ssh.as_ref().map(|ssh| ssh.host_key.clone()),
        keys: vec![],
        error: None,
        hint: None,
    };
    let pin = report
        .pinned
        .as_deref()
        .and_then(|pin| HostKeyFingerprint::parse(pin).ok());
    let keys = match SshTarget::from_address(&host.connection.address, port) {
        Ok(target) => {
            report.address = target.to_string();
            presented_host_keys(&target, CONNECT_TIMEOUT).await
        }
        Err(error) => Err(error),
    };
    match keys {
        Ok(keys) => {
            report.keys = keys
                .into_iter()
                .map(|key| ShownKey {
                    pinned: pin
                        .as_ref()
                        .is_some_and(|pin| pin.to_string() == key.fingerprint),
                    key,
                })
                .collect();
        }
        Err(error) => {
            report.error = Some(error.to_string());
            report.hint = error.hint();
        }
    }
    report
}

fn render_keys(report: &KeysReport) -> String {
    let mut out = String::new();
    let mut example = None;
    for host in &report.hosts {
        if let Some(error) = &host.error {
            let _ = writeln!(out, "{}: {error}", host.name);
            if let Some(hint) = &host.hint {
                let _ = writeln!(out, "  hint: {hint}");
            }
            continue;
        }
        let _ = writeln!(
            out,
            "{}: {} presents {} (shown, not trusted; nobody logged in):",
            host.name,
            host.address,
            match host.keys.len() {
                1 => "1 SSH host key".to_owned(),
                n => format!("{n} SSH host keys"),
            }
        );
        for shown in &host.keys {
            let _ = writeln!(
                out,
                "  {}  {}{}",
                shown.key.fingerprint,
                shown.key.algorithm,
                if shown.pinned { "  (pinned)" } else { "" }
            );
        }
        if let Some(pinned) = &host.pinned
            && !host.keys.iter().any(|shown| shown.pinned)
        {
            let _ = writeln!(
                out,
                "  The Host manifest pins {pinned}, which is not among them: `ceso host check` refuses this host."
            );
        }
        if example.is_none() {
            example = host.keys.first().map(|shown| shown.key.fingerprint.clone());
        }
    }
    if let Some(fingerprint) = example {
        let _ = writeln!(
            out,
            "\nCompare a fingerprint with what the host's console prints\n  {CONSOLE_COMMAND}\nbefore pinning it in the Host manifest:\n  spec:\n    ssh:\n      hostKey: \"{fingerprint}\""
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_command_output_is_shown_on_one_shortened_line() {
        assert_eq!(
            one_line("VMware ESXi 8.0.2 build-22380479\n\nVMware ESXi 8.0 Update 2\n"),
            "VMware ESXi 8.0.2 build-22380479; VMware ESXi 8.0 Update 2"
        );
        let long = "x".repeat(500);
        assert_eq!(one_line(&long).chars().count(), 203);
    }
}
