//! `ceso promote ...`: an agent asks for the right to change things for a while; a person
//! approves it at a terminal with their key. Also what every command needs
//! ([`Command::access`]), for the access check that runs before every command.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;

use super::{Command, CommandError, Outcome, TemplateCommand, VmCommand};
use crate::access::profiles::{DEFAULT_MAX_PROMOTION_TTL, format_duration, parse_ttl};
use crate::access::promotion::{self, Approver, ApproverKeyPair, KeyError};
use crate::access::{
    Access, AccessError, CommandAccess, Need, PROFILES_PATH, ProfilesState, Role, active_promotion,
    record_refusal,
};
use crate::state::{
    PromotionRecord, PromotionStatus, PromotionUpdate, SecurityEventKind, StateStore,
};

/// The longest reason a request may give.
const MAX_REASON: usize = 500;

/// How long a request can wait for its approval.
const REQUEST_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// `ceso promote ...`
#[derive(Debug, Subcommand)]
pub enum PromoteCommand {
    /// Ask a person for the right to change things (restricted role): prints the promotion's
    /// ID and the command that approves it.
    Request {
        /// Why, for the person who approves (one line, at most 500 characters).
        #[arg(long)]
        reason: String,
        /// How long the promotion lasts once approved (at most the profile's maxPromotionTtl,
        /// default 1h), e.g. 30m.
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Duration,
        /// Print JSON (`id`, `status`, ...).
        #[arg(long)]
        json: bool,
    },
    /// Approve a promotion (standard role, at an interactive terminal: type its ID back). The
    /// approval is signed with your key (~/.config/ceso/approver.key).
    Approve {
        /// The promotion's ID (from `ceso promote list`).
        id: String,
    },
    /// Refuse a pending promotion (standard role).
    Deny {
        id: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Withdraw an approved promotion before it expires (standard role).
    Revoke {
        id: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Give your active promotion back before it expires.
    End {
        /// The promotion (default: every active promotion of yours).
        id: Option<String>,
    },
    /// Every promotion of the state file and what became of it.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Your role, your profile, and your active promotion.
    Status {
        /// Print JSON (`role`, `profile`, `promotion`).
        #[arg(long)]
        json: bool,
    },
    /// Create your approver key (~/.config/ceso/approver.key, mode 0600) and print the public
    /// key line for approverKeys in /etc/ceso/profiles.yaml (standard role).
    Keygen,
}

impl Command {
    /// What this command needs from the caller's role, and its name in the audit log. Changing
    /// commands (hosts, the state, the inventory) need the standard role or a promotion; dry
    /// runs and reads do not. New subcommands of `secret` and `host` count as changing until
    /// they are listed here.
    pub(crate) fn access(&self) -> CommandAccess {
        use super::audit::AuditCommand;
        use super::backup::BackupCommand;
        use super::host::HostCommand;
        use super::ip::IpCommand;
        use super::secret::SecretCommand;
        let path = |p: &Path| p.display().to_string();
        let (need, command) = match self {
            Command::Validate(args) => (Need::Read, format!("validate {}", path(&args.path))),
            Command::Plan(args) => (Need::Read, format!("plan {}", path(&args.path))),
            Command::Apply(args) => (Need::Change, format!("apply {}", path(&args.path))),
            Command::Audit(command) => (
                Need::Read,
                match command {
                    AuditCommand::List { .. } => "audit list".to_owned(),
                    AuditCommand::Verify { .. } => "audit verify".to_owned(),
                    AuditCommand::Export { .. } => "audit export".to_owned(),
                    AuditCommand::Show { run, .. } => format!("audit show {run}"),
                },
            ),
            Command::Schema(_) => (Need::Read, "schema".to_owned()),
            Command::Vm(VmCommand::Create(args)) => {
                (Need::Change, format!("vm create {}", args.name))
            }
            Command::Vm(VmCommand::Clone(args)) => (
                Need::Change,
                format!("vm clone {} {}", args.source, args.name),
            ),
            Command::Vm(VmCommand::Delete(args)) => {
                (Need::Change, format!("vm delete {}", args.name))
            }
            Command::Vm(VmCommand::List(_)) => (Need::Read, "vm list".to_owned()),
            Command::Vm(VmCommand::Info(args)) => (Need::Read, format!("vm info {}", args.name)),
            Command::Template(TemplateCommand::Import(args)) => (
                Need::Change,
                format!("template import {} --name {}", path(&args.file), args.name),
            ),
            Command::Ip(IpCommand::List(_)) => (Need::Read, "ip list".to_owned()),
            Command::Backup(command) => match command {
                BackupCommand::Create(args) => (Need::Change, format!("backup create {}", args.vm)),
                BackupCommand::List(_) => (Need::Read, "backup list".to_owned()),
                BackupCommand::Verify(args) => (Need::Read, format!("backup verify {}", args.id)),
                BackupCommand::Prune(args) if args.dry_run => {
                    (Need::Read, "backup prune --dry-run".to_owned())
                }
                BackupCommand::Prune(_) => (Need::Change, "backup prune".to_owned()),
                BackupCommand::Run(args) if args.dry_run => {
                    (Need::Read, "backup run --dry-run".to_owned())
                }
                BackupCommand::Run(_) => (Need::Change, "backup run".to_owned()),
                BackupCommand::Restore(args) => {
                    (Need::Change, format!("backup restore {}", args.id))
                }
            },
            Command::Watch(args) => (Need::Unbounded, format!("watch {}", path(&args.path))),
            Command::Status(_) => (Need::Read, "status".to_owned()),
            Command::Init(args) => (Need::Change, format!("init {}", path(&args.dir))),
            Command::Completions(_) => (Need::Read, "completions".to_owned()),
            Command::Man(_) => (Need::Read, "man".to_owned()),
            Command::Secret(SecretCommand::List { .. }) => (Need::Read, "secret list".to_owned()),
            Command::Secret(SecretCommand::Set { .. }) => (Need::Change, "secret set".to_owned()),
            Command::Secret(SecretCommand::Rm { .. }) => (Need::Change, "secret rm".to_owned()),
            #[allow(unreachable_patterns)]
            Command::Secret(_) => (Need::Change, "secret".to_owned()),
            Command::Promote(command) => match command {
                PromoteCommand::Request { .. } => (Need::Read, "promote request".to_owned()),
                PromoteCommand::List { .. } => (Need::Read, "promote list".to_owned()),
                PromoteCommand::Status { .. } => (Need::Read, "promote status".to_owned()),
                PromoteCommand::End { .. } => (Need::Read, "promote end".to_owned()),
                PromoteCommand::Approve { id } => (Need::Approve, format!("promote approve {id}")),
                PromoteCommand::Deny { id, .. } => (Need::Approve, format!("promote deny {id}")),
                PromoteCommand::Revoke { id, .. } => {
                    (Need::Approve, format!("promote revoke {id}"))
                }
                PromoteCommand::Keygen => (Need::Approve, "promote keygen".to_owned()),
            },
            Command::Mcp(_) => (Need::Read, "mcp".to_owned()),
            Command::Host(HostCommand::Check { .. }) => (Need::Read, "host check".to_owned()),
            #[allow(unreachable_patterns)]
            Command::Host(_) => (Need::Change, "host".to_owned()),
        };
        CommandAccess { need, command }
    }
}

/// Runs a `ceso promote` command.
pub async fn run(command: PromoteCommand, state: &Path) -> Result<Outcome, CommandError> {
    let access = crate::access::current().map_err(access_error)?;
    match command {
        PromoteCommand::Request { reason, ttl, json } => request(access, state, &reason, ttl, json),
        PromoteCommand::Approve { id } => approve(access, state, &id),
        PromoteCommand::Deny { id, reason } => close(access, state, &id, Closing::Deny, reason),
        PromoteCommand::Revoke { id, reason } => close(access, state, &id, Closing::Revoke, reason),
        PromoteCommand::End { id } => end(access, state, id.as_deref()),
        PromoteCommand::List { json } => list(state, json),
        PromoteCommand::Status { json } => status(access, state, json),
        PromoteCommand::Keygen => keygen(),
    }
}

fn access_error(error: AccessError) -> CommandError {
    CommandError::new(error.to_string())
}

fn open_existing(state: &Path) -> Result<StateStore, CommandError> {
    if !state.exists() {
        return Err(CommandError::with_hint(
            format!("no state file at {}", state.display()),
            "pass the --state the promotion was requested with",
        ));
    }
    Ok(StateStore::open(state)?)
}

fn absolute(state: &Path) -> PathBuf {
    std::path::absolute(state).unwrap_or_else(|_| state.to_path_buf())
}

/// The command a person runs to approve `id`.
fn approve_command(id: &str, state: &Path) -> String {
    format!(
        "ceso promote approve {id} --state {}",
        absolute(state).display()
    )
}

/// A reason as given: one line of printable text.
fn check_reason(reason: &str, flag: &str) -> Result<String, CommandError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(CommandError::new(format!(
            "{flag} is empty: say why, for the person who approves"
        )));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(CommandError::new(format!(
            "{flag} is longer than {MAX_REASON} characters"
        )));
    }
    if reason.chars().any(misleads_on_a_terminal) {
        return Err(CommandError::new(format!(
            "{flag} contains control characters or invisible ones (line breaks, escapes, direction overrides): give one line of plain text"
        )));
    }
    Ok(reason.to_owned())
}

/// Characters that could make the approver's terminal show something other than the text:
/// control characters, bidirectional overrides and isolates, zero-width characters, line and
/// paragraph separators, the byte-order mark.
fn misleads_on_a_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// `ceso promote request`
fn request(
    access: &Access,
    state: &Path,
    reason: &str,
    ttl: Duration,
    json: bool,
) -> Result<Outcome, CommandError> {
    if access.role == Role::Standard {
        return Err(CommandError::with_hint(
            format!(
                "you are in the standard role ({}; {}): you need no promotion",
                access.who(),
                access.why()
            ),
            "promotions are for the restricted role (agents)",
        ));
    }
    if access.trusted_profiles().is_none() {
        return Err(CommandError::with_hint(
            format!(
                "nobody could approve a promotion: {} ({})",
                match &access.profiles {
                    ProfilesState::Missing => format!("there is no {PROFILES_PATH}"),
                    ProfilesState::Unusable(error) => error.to_string(),
                    ProfilesState::Trusted(_) => String::new(),
                },
                access.why()
            ),
            "approvals are checked against approverKeys of a trusted profiles file; docs/roles.md",
        ));
    }
    let reason = check_reason(reason, "--reason")?;
    let max = access
        .profile
        .as_ref()
        .map_or(DEFAULT_MAX_PROMOTION_TTL, |p| p.max_promotion_ttl());
    if ttl > max {
        return Err(CommandError::with_hint(
            format!(
                "--ttl {} is longer than {} allows ({})",
                format_duration(ttl),
                access
                    .profile_name()
                    .map_or("the default".to_owned(), |p| format!("profile {p}")),
                format_duration(max)
            ),
            format!("ask for at most {}", format_duration(max)),
        ));
    }
    let store = StateStore::open(state)?;
    let state_id = store.state_id()?;
    let event = access.event(SecurityEventKind::PromotionRequested, "promote request");
    let record = loop {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let record = PromotionRecord {
            id: format!("prm-{}", &random[..12]),
            state_id: state_id.clone(),
            hostname: access.hostname.clone(),
            requester: access.caller.user.clone(),
            requester_uid: access.caller.uid,
            profile: access.profile_name().map(str::to_owned),
            reason: reason.clone(),
            ttl_secs: ttl.as_secs(),
            requested_at: event.at.clone(),
            status: PromotionStatus::Pending,
            approval: None,
            closed_at: None,
            closed_by: None,
        };
        if store.create_promotion(&record, &event)? {
            break record;
        }
    };
    let approve = approve_command(&record.id, state);
    if json {
        let value = serde_json::json!({
            "id": record.id,
            "status": record.status,
            "ttl": format_duration(ttl),
            "ttl_secs": record.ttl_secs,
            "reason": record.reason,
            "requester": record.requester,
            "profile": record.profile,
            "requested_at": record.requested_at,
            "approve_command": approve,
        });
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON"));
    } else {
        println!(
            "Requested promotion {} for {} (pending).",
            record.id,
            format_duration(ttl)
        );
        println!("A person in a standard profile approves it at their terminal with:");
        println!("  {approve}");
        println!("`ceso promote status` shows when it is active.");
    }
    Ok(Outcome::Success)
}

/// `ceso promote approve`
fn approve(access: &Access, state: &Path, id: &str) -> Result<Outcome, CommandError> {
    let command = format!("promote approve {id}");
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        let reason = "approving needs an interactive terminal (standard input and standard error), where a person types the promotion ID back";
        // Recorded in the state file of the request; a mistyped path gets no new file.
        if state.exists() {
            record_refusal(access, state, &command, reason, Some(id.to_owned()));
        }
        return Err(CommandError::with_hint(
            format!("`ceso {command}` is refused: {reason}"),
            "run it yourself in a terminal; there is no --yes",
        ));
    }
    let Some(profiles) = access.trusted_profiles() else {
        return Err(CommandError::with_hint(
            format!(
                "approving needs a trusted {PROFILES_PATH} ({})",
                access.why()
            ),
            "docs/roles.md",
        ));
    };
    let Some(profile) = access
        .profile
        .as_ref()
        .filter(|p| p.role == Role::Standard && !p.approver_keys.is_empty())
    else {
        return Err(CommandError::with_hint(
            format!(
                "you ({}) are not in a standard profile with approverKeys",
                access.who()
            ),
            format!(
                "run `ceso promote keygen` and have the key added to approverKeys of your profile in {PROFILES_PATH}"
            ),
        ));
    };
    let key_path = promotion::approver_key_path().map_err(key_error)?;
    let key = ApproverKeyPair::load(&key_path).map_err(key_error)?;
    if !profile.approver_keys.contains(&key.public_key()) {
        return Err(CommandError::with_hint(
            format!(
                "your key {} ({}) is not in approverKeys of profile {}",
                key.public_key(),
                key_path.display(),
                profile.name
            ),
            format!("add it to profile {} in {PROFILES_PATH}", profile.name),
        ));
    }
    let store = open_existing(state)?;
    let Some(record) = store.promotion(id)? else {
        return Err(CommandError::with_hint(
            format!("no promotion {id} in {}", state.display()),
            "`ceso promote list` shows them; pass the --state the request printed",
        ));
    };
    if record.status != PromotionStatus::Pending {
        return Err(CommandError::new(format!(
            "promotion {id} is {}, not pending: it cannot be approved",
            record.status
        )));
    }
    if record.state_id != store.state_id()? {
        return Err(CommandError::new(format!(
            "promotion {id} was requested in another state file and copied into {}: deny it",
            state.display()
        )));
    }
    let verification = store.verify_audit()?;
    if !verification.problems.is_empty() {
        return Err(CommandError::with_hint(
            format!(
                "the audit log of {} does not verify ({} problem(s)): no promotion from it would be honoured",
                state.display(),
                verification.problems.len()
            ),
            "`ceso audit verify` names them",
        ));
    }
    let now = jiff::Timestamp::now();
    let requested: jiff::Timestamp = record
        .requested_at
        .parse()
        .map_err(|e| CommandError::new(format!("promotion {id} has no valid request time: {e}")))?;
    if now.as_second() - requested.as_second() > REQUEST_VALIDITY.as_secs() as i64 {
        return Err(CommandError::with_hint(
            format!(
                "promotion {id} was requested at {}, more than {} ago: it can no longer be approved",
                record.requested_at,
                format_duration(REQUEST_VALIDITY)
            ),
            "deny it; the agent asks again",
        ));
    }
    if record.reason.chars().any(misleads_on_a_terminal) {
        return Err(CommandError::new(format!(
            "the reason of promotion {id} contains control characters (it was written outside ceso): deny it"
        )));
    }
    let max = record
        .profile
        .as_deref()
        .and_then(|name| profiles.profile(name))
        .map_or(DEFAULT_MAX_PROMOTION_TTL, |p| p.max_promotion_ttl());
    if record.ttl_secs > max.as_secs() {
        return Err(CommandError::new(format!(
            "promotion {id} asks for {}, longer than its profile allows ({}): deny it",
            format_duration(Duration::from_secs(record.ttl_secs)),
            format_duration(max)
        )));
    }
    eprintln!("Promotion {id}");
    eprintln!(
        "  requested by: {} (uid {}, profile {}) on {} at {}",
        record.requester,
        record.requester_uid,
        record.profile.as_deref().unwrap_or("none"),
        record.hostname,
        record.requested_at
    );
    eprintln!("  reason:       {}", record.reason);
    eprintln!(
        "  for:          {} from now",
        format_duration(Duration::from_secs(record.ttl_secs))
    );
    eprintln!("  state file:   {}", absolute(state).display());
    eprintln!(
        "Until it expires or is revoked, {} may change hosts, the state and the inventory with ceso.",
        record.requester
    );
    eprint!("Type the promotion ID to approve it (anything else cancels): ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CommandError::new(format!("reading the answer from the terminal: {e}")))?;
    if answer.trim() != id {
        return Err(CommandError::new(format!(
            "promotion {id} was not approved: what was typed is not its ID"
        )));
    }
    let approver = Approver {
        user: access.caller.user.clone(),
        uid: access.caller.uid,
        profile: profile.name.clone(),
    };
    let approval = promotion::approve(&record, &approver, &key, jiff::Timestamp::now())
        .map_err(CommandError::new)?;
    let expires_at = approval.expires_at.clone();
    let event = access.event(SecurityEventKind::PromotionApproved, &command);
    let update = store.update_promotion(
        id,
        PromotionStatus::Pending,
        |mut current| {
            current.status = PromotionStatus::Approved;
            current.approval = Some(approval);
            current
        },
        &event,
    )?;
    updated(update, id)?;
    println!(
        "Approved promotion {id} for {} until {expires_at}. Revoke it early with `ceso promote revoke {id}`.",
        record.requester
    );
    Ok(Outcome::Success)
}

fn key_error(error: KeyError) -> CommandError {
    let hint = error.hint();
    CommandError::with_hint(error.to_string(), hint)
}

fn updated(update: PromotionUpdate, id: &str) -> Result<PromotionRecord, CommandError> {
    match update {
        PromotionUpdate::Updated(record) => Ok(*record),
        PromotionUpdate::NotFound => Err(CommandError::new(format!("no promotion {id}"))),
        PromotionUpdate::StatusWas(status) => Err(CommandError::new(format!(
            "promotion {id} became {status} meanwhile; nothing was changed"
        ))),
    }
}

#[derive(Clone, Copy)]
enum Closing {
    Deny,
    Revoke,
}

/// `ceso promote deny` and `ceso promote revoke`
fn close(
    access: &Access,
    state: &Path,
    id: &str,
    closing: Closing,
    reason: Option<String>,
) -> Result<Outcome, CommandError> {
    let reason = reason.map(|r| check_reason(&r, "--reason")).transpose()?;
    let (from, to, kind, verb) = match closing {
        Closing::Deny => (
            PromotionStatus::Pending,
            PromotionStatus::Denied,
            SecurityEventKind::PromotionDenied,
            "deny",
        ),
        Closing::Revoke => (
            PromotionStatus::Approved,
            PromotionStatus::Revoked,
            SecurityEventKind::PromotionRevoked,
            "revoke",
        ),
    };
    let store = open_existing(state)?;
    let mut event = access.event(kind, &format!("promote {verb} {id}"));
    event.reason = reason;
    let at = event.at.clone();
    let by = access.caller.user.clone();
    let update = store.update_promotion(
        id,
        from,
        |mut record| {
            record.status = to;
            record.closed_at = Some(at);
            record.closed_by = Some(by);
            record
        },
        &event,
    )?;
    match update {
        PromotionUpdate::StatusWas(status) => Err(CommandError::new(format!(
            "promotion {id} is {status}, not {from}: there is nothing to {verb}"
        ))),
        other => {
            let record = updated(other, id)?;
            println!(
                "Promotion {id} of {} is {}.",
                record.requester, record.status
            );
            Ok(Outcome::Success)
        }
    }
}

/// `ceso promote end`
fn end(access: &Access, state: &Path, id: Option<&str>) -> Result<Outcome, CommandError> {
    let store = open_existing(state)?;
    let mine: Vec<PromotionRecord> = store
        .promotions()?
        .into_iter()
        .filter(|p| {
            p.status == PromotionStatus::Approved
                && p.requester == access.caller.user
                && p.requester_uid == access.caller.uid
                && id.is_none_or(|id| p.id == id)
        })
        .collect();
    if mine.is_empty() {
        return Err(CommandError::with_hint(
            match id {
                Some(id) => format!("promotion {id} is not an approved promotion of yours"),
                None => "you hold no approved promotion".to_owned(),
            },
            "`ceso promote status` shows yours",
        ));
    }
    for record in mine {
        let event = access.event(
            SecurityEventKind::PromotionEnded,
            &format!("promote end {}", record.id),
        );
        let at = event.at.clone();
        let by = access.caller.user.clone();
        let update = store.update_promotion(
            &record.id,
            PromotionStatus::Approved,
            |mut record| {
                record.status = PromotionStatus::Ended;
                record.closed_at = Some(at);
                record.closed_by = Some(by);
                record
            },
            &event,
        )?;
        updated(update, &record.id)?;
        println!("Ended promotion {}.", record.id);
    }
    Ok(Outcome::Success)
}

/// The status to show: an approved promotion past its expiry is expired, whether or not a use
/// has recorded that yet.
fn effective(mut record: PromotionRecord, now: jiff::Timestamp) -> PromotionRecord {
    if record.status == PromotionStatus::Approved
        && let Some(expires) = record
            .approval
            .as_ref()
            .and_then(|a| a.expires_at.parse::<jiff::Timestamp>().ok())
        && now >= expires
    {
        record.status = PromotionStatus::Expired;
    }
    record
}

/// `ceso promote list`
fn list(state: &Path, json: bool) -> Result<Outcome, CommandError> {
    let now = jiff::Timestamp::now();
    let promotions: Vec<PromotionRecord> = if state.exists() {
        StateStore::open(state)?
            .promotions()?
            .into_iter()
            .map(|p| effective(p, now))
            .collect()
    } else {
        Vec::new()
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&promotions).expect("promotions serialize")
        );
        return Ok(Outcome::Success);
    }
    if promotions.is_empty() {
        println!("No promotions in {}.", state.display());
        return Ok(Outcome::Success);
    }
    println!(
        "{:<16} {:<9} {:<14} {:<10} {:>7}  {:<24} {:<24} REASON",
        "ID", "STATUS", "USER", "PROFILE", "TTL", "REQUESTED", "EXPIRES"
    );
    for p in &promotions {
        println!(
            "{:<16} {:<9} {:<14} {:<10} {:>7}  {:<24} {:<24} {}",
            p.id,
            p.status,
            p.requester,
            p.profile.as_deref().unwrap_or("-"),
            format_duration(Duration::from_secs(p.ttl_secs)),
            p.requested_at,
            p.approval.as_ref().map_or("-", |a| a.expires_at.as_str()),
            p.reason
        );
    }
    Ok(Outcome::Success)
}

/// `ceso promote status`
fn status(access: &Access, state: &Path, json: bool) -> Result<Outcome, CommandError> {
    let (active, why_none) = if access.role == Role::Restricted {
        match active_promotion(access, state) {
            Ok(active) => (Some(active.record), None),
            Err(none) => (None, Some(none.reason)),
        }
    } else {
        (None, None)
    };
    let pending: Vec<String> = if state.exists() {
        StateStore::open(state)?
            .promotions()?
            .into_iter()
            .filter(|p| {
                p.status == PromotionStatus::Pending
                    && p.requester == access.caller.user
                    && p.requester_uid == access.caller.uid
            })
            .map(|p| p.id)
            .collect()
    } else {
        Vec::new()
    };
    let profiles_file = match &access.profiles {
        ProfilesState::Missing => serde_json::json!({ "path": PROFILES_PATH, "state": "missing" }),
        ProfilesState::Trusted(_) => {
            serde_json::json!({ "path": PROFILES_PATH, "state": "trusted" })
        }
        ProfilesState::Unusable(error) => serde_json::json!({
            "path": PROFILES_PATH, "state": "unusable", "problem": error.to_string()
        }),
    };
    if json {
        let promotion = active.as_ref().map(|record| {
            let approval = record.approval.as_ref();
            serde_json::json!({
                "id": record.id,
                "expires_at": approval.map(|a| a.expires_at.clone()),
                "approved_by": approval.map(|a| a.approver.clone()),
                "approved_at": approval.map(|a| a.approved_at.clone()),
                "reason": record.reason,
            })
        });
        let value = serde_json::json!({
            "user": access.caller.user,
            "uid": access.caller.uid,
            "role": access.role.as_str(),
            "profile": access.profile_name(),
            "because": access.why(),
            "profiles_file": profiles_file,
            "promotion": promotion,
            "pending": pending,
        });
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON"));
        return Ok(Outcome::Success);
    }
    println!(
        "User:      {} (uid {})",
        access.caller.user, access.caller.uid
    );
    println!("Role:      {} ({})", access.role, access.why());
    println!("Profile:   {}", access.profile_name().unwrap_or("none"));
    match (&active, access.role) {
        (Some(record), _) => {
            let approval = record.approval.as_ref();
            println!(
                "Promotion: {} until {} (approved by {}): you may change things until then",
                record.id,
                approval.map_or("?", |a| a.expires_at.as_str()),
                approval.map_or("?", |a| a.approver.as_str())
            );
        }
        (None, Role::Standard) => println!("Promotion: not needed in the standard role"),
        (None, Role::Restricted) => println!(
            "Promotion: none ({})",
            why_none
                .as_deref()
                .map(|r| r.trim_start_matches("and ").to_owned())
                .unwrap_or_default()
        ),
    }
    if !pending.is_empty() {
        println!("Pending:   {}", pending.join(", "));
    }
    Ok(Outcome::Success)
}

/// `ceso promote keygen`
fn keygen() -> Result<Outcome, CommandError> {
    let path = promotion::approver_key_path().map_err(key_error)?;
    let key = match ApproverKeyPair::load(&path) {
        Ok(key) => {
            eprintln!(
                "An approver key already exists at {}; its public key:",
                path.display()
            );
            key
        }
        Err(KeyError::Missing { .. }) => {
            let key = ApproverKeyPair::generate(&path).map_err(key_error)?;
            eprintln!(
                "Wrote your approver key to {} (mode 0600; keep it to yourself). Its public key:",
                path.display()
            );
            key
        }
        Err(other) => return Err(key_error(other)),
    };
    println!("{}", key.public_key());
    eprintln!(
        "Add it to approverKeys of your standard profile in {PROFILES_PATH} (root edits that file)."
    );
    Ok(Outcome::Success)
}
