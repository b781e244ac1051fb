//! Who may do what: roles (`restricted` for agents, `standard` for people), the profiles that
//! bind them to credentials, and promotions.
//!
//! The role comes from `/etc/ceso/profiles.yaml` and the real uid of the process (no flag, and no
//! variable but `CESO_ROLE=restricted`, which only narrows). Every command is classified in
//! `cli/promote.rs` ([`CommandAccess`]); [`authorize`] runs before every command and refuses,
//! and records in the audit log, what the caller's role may not do. docs/roles.md.

pub mod profiles;
pub mod promotion;

use std::path::Path;
use std::sync::OnceLock;

use crate::cli::Command;
use crate::state::{
    ActingPromotion, Actor, PromotionRecord, PromotionStatus, PromotionUpdate, SecurityEvent,
    SecurityEventKind, StateStore,
};
pub use profiles::{PROFILES_PATH, Profile, Profiles, ProfilesError, Role};

/// The variable that narrows the role of a process to `restricted` (any other value is ignored).
pub const ROLE_VARIABLE: &str = "CESO_ROLE";

/// What a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reads, plans, dry runs, and asking for or giving back a promotion: every role.
    Read,
    /// Changes a host, the state or the inventory: the standard role, or the restricted role
    /// under an active promotion.
    Change,
    /// Approves, denies or revokes promotions, or makes an approver key: the standard role only,
    /// never under a promotion.
    Approve,
    /// Runs without end (`watch`): the standard role only, since a promotion ends and a
    /// running process would not.
    Unbounded,
}

/// What a command needs, and how it is named in the audit log (never with a secret value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAccess {
    pub need: Need,
    /// E.g. `apply inventory`, `vm delete web-01`.
    pub command: String,
}

/// Why a command was refused, or the role could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The caller's role may not run the command.
    #[error("`ceso {command}` is refused: {reason}. {hint}")]
    Refused {
        command: String,
        reason: String,
        hint: String,
    },
    /// Root and a profiles file that cannot be used: root is told instead of being restricted.
    #[error("{error}; fix it before running ceso as root ({})", error.hint())]
    Profiles { error: ProfilesError },
}

/// The hint of every refusal that a promotion would lift.
pub const PROMOTION_HINT: &str =
    "To ask a person for a promotion: ceso promote request --reason \"...\" --ttl 30m";

/// Where the role came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSource {
    /// No profiles file: no sandbox is configured.
    NoProfilesFile,
    /// The caller's profile.
    Profile,
    /// The file's `defaultRole` (the caller is in no profile).
    DefaultRole,
    /// The profiles file cannot be trusted or read: every non-root caller is restricted.
    UnusableProfilesFile,
    /// `CESO_ROLE=restricted`.
    Environment,
}

/// The profiles file as found.
#[derive(Debug, Clone)]
pub enum ProfilesState {
    Missing,
    Trusted(Profiles),
    Unusable(ProfilesError),
}

/// The OS user running ceso, from the real uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub uid: u32,
}

impl Caller {
    /// The real uid of this process and its name.
    pub fn of_process() -> Caller {
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |user| user.name);
        Caller {
            user,
            uid: uid.as_raw(),
        }
    }
}

/// Who is calling and what they may do.
#[derive(Debug, Clone)]
pub struct Access {
    pub caller: Caller,
    pub hostname: String,
    pub role: Role,
    /// The caller's profile (a trusted profiles file lists them).
    pub profile: Option<Profile>,
    pub source: RoleSource,
    pub profiles: ProfilesState,
}

impl Access {
    /// The caller's profile name.
    pub fn profile_name(&self) -> Option<&str> {
        self.profile.as_ref().map(|p| p.name.as_str())
    }

    /// The trusted profiles, if any.
    pub fn trusted_profiles(&self) -> Option<&Profiles> {
        match &self.profiles {
            ProfilesState::Trusted(profiles) => Some(profiles),
            _ => None,
        }
    }

    /// The caller as the audit log records them.
    pub fn actor(&self) -> Actor {
        Actor {
            os_user: self.caller.user.clone(),
            uid: self.caller.uid,
            hostname: self.hostname.clone(),
            pid: std::process::id(),
            profile: self.profile_name().map(str::to_owned),
            role: self.role.as_str().to_owned(),
        }
    }

    /// A security event by this caller, now.
    pub fn event(&self, kind: SecurityEventKind, command: &str) -> SecurityEvent {
        SecurityEvent {
            event: kind,
            at: promotion::format_time(jiff::Timestamp::now()),
            actor: self.actor(),
            command: Some(command.to_owned()),
            promotion: None,
            run_id: None,
            reason: None,
            record: None,
        }
    }

    /// `user ceso-agent, profile agent` (what the messages say about the caller).
    pub fn who(&self) -> String {
        match self.profile_name() {
            Some(profile) => format!("user {}, profile {profile}", self.caller.user),
            None => format!("user {}, no profile", self.caller.user),
        }
    }

    /// Why the caller has their role, in words.
    pub fn why(&self) -> String {
        match &self.source {
            RoleSource::NoProfilesFile => format!("no {PROFILES_PATH}: no sandbox is configured"),
            RoleSource::Profile => format!(
                "profile {} of {PROFILES_PATH}",
                self.profile_name().unwrap_or_default()
            ),
            RoleSource::DefaultRole => {
                format!("defaultRole of {PROFILES_PATH} (no profile lists you)")
            }
            RoleSource::UnusableProfilesFile => match &self.profiles {
                ProfilesState::Unusable(error) => format!("{error}"),
                _ => format!("{PROFILES_PATH} cannot be used"),
            },
            RoleSource::Environment => format!("{ROLE_VARIABLE}=restricted"),
        }
    }
}

/// Decides the role: pure, for the profiles file as found, the caller, and `CESO_ROLE`. Returns
/// the warnings to print.
pub fn decide(
    caller: Caller,
    hostname: String,
    profiles: ProfilesState,
    role_variable: Option<&str>,
) -> Result<(Access, Vec<String>), AccessError> {
    let mut warnings = Vec::new();
    let (mut role, profile, mut source) = match &profiles {
        ProfilesState::Missing => (Role::Standard, None, RoleSource::NoProfilesFile),
        ProfilesState::Trusted(file) => match file.profile_of(&caller.user) {
            Some(profile) => (profile.role, Some(profile.clone()), RoleSource::Profile),
            None => (file.default_role, None, RoleSource::DefaultRole),
        },
        ProfilesState::Unusable(error) => {
            if caller.uid == 0 {
                return Err(AccessError::Profiles {
                    error: error.clone(),
                });
            }
            warnings.push(format!(
                "{error}: every user but root is in the restricted role until it is fixed ({})",
                error.hint()
            ));
            (Role::Restricted, None, RoleSource::UnusableProfilesFile)
        }
    };
    match role_variable.map(str::trim) {
        None | Some("") => {}
        Some(value) if value.eq_ignore_ascii_case("restricted") => {
            if role == Role::Standard {
                role = Role::Restricted;
                source = RoleSource::Environment;
            }
        }
        Some(value) => warnings.push(format!(
            "{ROLE_VARIABLE}={value} is ignored: it can only narrow the role (to restricted); the role comes from {PROFILES_PATH}"
        )),
    }
    Ok((
        Access {
            caller,
            hostname,
            role,
            profile,
            source,
            profiles,
        },
        warnings,
    ))
}

static CURRENT: OnceLock<Access> = OnceLock::new();

/// The access of this process: decided once (warnings printed then), from the profiles file at
/// its fixed path, the real uid and `CESO_ROLE`.
pub fn current() -> Result<&'static Access, AccessError> {
    if let Some(access) = CURRENT.get() {
        return Ok(access);
    }
    let profiles = match Profiles::load(Path::new(PROFILES_PATH)) {
        Ok(None) => ProfilesState::Missing,
        Ok(Some(profiles)) => ProfilesState::Trusted(profiles),
        Err(error) => ProfilesState::Unusable(error),
    };
    // A value that is not UTF-8 cannot be read as a role: it counts as `restricted`.
    let variable = match std::env::var(ROLE_VARIABLE) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => Some("restricted".to_owned()),
    };
    let (access, warnings) = decide(
        Caller::of_process(),
        hostname(),
        profiles,
        variable.as_deref(),
    )?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(CURRENT.get_or_init(|| access))
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Decides whether `command` may run; refusals are audited in the state file at `state`. A
/// restricted caller's changing command runs only under an active promotion, whose use is
/// recorded (and named by every audit run the command records).
pub fn authorize(command: &Command, state: &Path) -> Result<(), AccessError> {
    let access = current()?;
    let needed = command.access();
    if access.role == Role::Standard {
        return Ok(());
    }
    let (reason, hint) = match needed.need {
        Need::Read => return Ok(()),
        Need::Change => return authorize_change(access, state, &needed.command),
        Need::Approve => (
            format!(
                "only the standard role approves, denies or revokes promotions, and you are restricted ({}; {})",
                access.who(),
                access.why()
            ),
            "a person in a standard profile runs it at their terminal",
        ),
        Need::Unbounded => (
            format!(
                "it runs without end, and the restricted role ({}) changes things only under a promotion, which ends",
                access.who()
            ),
            "`ceso plan` shows drift; a person runs watch",
        ),
    };
    record_refusal(access, state, &needed.command, &reason, None);
    Err(refused(&needed.command, reason, hint.to_owned()))
}

/// A changing command of a restricted caller: runs under an active promotion, or is refused.
fn authorize_change(access: &Access, state: &Path, command: &str) -> Result<(), AccessError> {
    match active_promotion(access, state) {
        Ok(Active { record, store }) => {
            let mut event = access.event(SecurityEventKind::PromotionUsed, command);
            event.promotion = Some(record.id.clone());
            if let Err(e) = store.record_security_event(&event) {
                return Err(refused(
                    command,
                    format!("its use of promotion {} cannot be audited: {e}", record.id),
                    "check that the state file can be written".to_owned(),
                ));
            }
            crate::state::set_acting_promotion(ActingPromotion {
                id: record.id.clone(),
                actor: access.actor(),
                command: command.to_owned(),
            });
            let approval = record.approval.as_ref();
            eprintln!(
                "Running under promotion {} (approved by {}, until {}).",
                record.id,
                approval.map_or("?", |a| a.approver.as_str()),
                approval.map_or("?", |a| a.expires_at.as_str())
            );
            Ok(())
        }
        Err(NoPromotion { reason, promotion }) => {
            let reason = format!(
                "the restricted role ({}) may not change hosts, the state or the inventory, {reason}",
                access.who()
            );
            record_refusal(access, state, command, &reason, promotion);
            Err(refused(command, reason, PROMOTION_HINT.to_owned()))
        }
    }
}

fn refused(command: &str, reason: String, hint: String) -> AccessError {
    AccessError::Refused {
        command: command.to_owned(),
        reason,
        hint,
    }
}

/// Records a refusal in the audit log of `state`; says so on stderr when it cannot.
pub fn record_refusal(
    access: &Access,
    state: &Path,
    command: &str,
    reason: &str,
    promotion: Option<String>,
) {
    let mut event = access.event(SecurityEventKind::Refused, command);
    event.reason = Some(reason.to_owned());
    event.promotion = promotion;
    // The issue asks for every refusal to be audited: a state file is created if need be.
    let recorded = StateStore::open(state).and_then(|store| store.record_security_event(&event));
    if let Err(e) = recorded {
        eprintln!("warning: the refusal could not be recorded in the audit log: {e}");
    }
}

/// An active promotion of the caller and the state file it lives in.
pub struct Active {
    pub record: PromotionRecord,
    pub store: StateStore,
}

/// Why no promotion lifts a refusal: a reason that completes "may not change ..., ", and the
/// promotion concerned, if one was considered.
#[derive(Debug)]
pub struct NoPromotion {
    pub reason: String,
    pub promotion: Option<String>,
}

/// The caller's active promotion in the state file at `state`: approved by a key of a trusted
/// standard profile, for this caller, this state file and this machine, unchanged, not expired,
/// and recorded so in an audit chain that verifies. A promotion found expired is marked so.
pub fn active_promotion(access: &Access, state: &Path) -> Result<Active, NoPromotion> {
    let none = |reason: String| NoPromotion {
        reason,
        promotion: None,
    };
    let Some(profiles) = access.trusted_profiles() else {
        return Err(none(format!(
            "and promotions need a trusted {PROFILES_PATH} with approver keys"
        )));
    };
    if !state.exists() {
        return Err(none("and no promotion is active".to_owned()));
    }
    let store = StateStore::open(state).map_err(|e| none(format!("and {e}")))?;
    let mine: Vec<PromotionRecord> = store
        .promotions()
        .map_err(|e| none(format!("and {e}")))?
        .into_iter()
        .filter(|p| p.requester == access.caller.user && p.requester_uid == access.caller.uid)
        .collect();
    let candidates: Vec<&PromotionRecord> = mine
        .iter()
        .filter(|p| p.status == PromotionStatus::Approved)
        .collect();
    if candidates.is_empty() {
        let pending = mine
            .iter()
            .rev()
            .find(|p| p.status == PromotionStatus::Pending);
        return Err(match pending {
            Some(p) => NoPromotion {
                reason: format!(
                    "and promotion {} is still pending: a person approves it with `ceso promote approve {}`",
                    p.id, p.id
                ),
                promotion: Some(p.id.clone()),
            },
            None => none("and no promotion is active".to_owned()),
        });
    }
    let verification = store.verify_audit().map_err(|e| none(format!("and {e}")))?;
    if !verification.problems.is_empty() {
        return Err(NoPromotion {
            reason: format!(
                "and promotions are not honoured from {}: its audit log does not verify ({}; `ceso audit verify` lists them)",
                state.display(),
                verification.problems.join("; ")
            ),
            promotion: candidates.last().map(|p| p.id.clone()),
        });
    }
    let state_id = store.state_id().map_err(|e| none(format!("and {e}")))?;
    let holder = promotion::Holder {
        user: &access.caller.user,
        uid: access.caller.uid,
        profile: access.profile_name(),
        hostname: &access.hostname,
        state_id: &state_id,
    };
    let now = jiff::Timestamp::now();
    let mut valid: Option<(&PromotionRecord, String)> = None;
    let mut last_problem: Option<(String, String)> = None;
    for candidate in candidates {
        match promotion::check(candidate, &holder, profiles, now) {
            Ok(approval) => {
                if valid
                    .as_ref()
                    .is_none_or(|(_, expires)| approval.expires_at > *expires)
                {
                    valid = Some((candidate, approval.expires_at));
                }
            }
            Err(promotion::Invalid::Expired { id, expires_at }) => {
                mark_expired(access, &store, &id);
                last_problem = Some((
                    id.clone(),
                    format!("and promotion {id} expired at {expires_at}"),
                ));
            }
            Err(invalid) => {
                last_problem = Some((candidate.id.clone(), format!("and {invalid}")));
            }
        }
    }
    match (valid, last_problem) {
        (Some((record, _)), _) => Ok(Active {
            record: record.clone(),
            store,
        }),
        (None, Some((id, reason))) => Err(NoPromotion {
            reason,
            promotion: Some(id),
        }),
        (None, None) => Err(none("and no promotion is active".to_owned())),
    }
}

/// Marks an approved promotion found past its expiry as expired (one event, the first time).
fn mark_expired(access: &Access, store: &StateStore, id: &str) {
    let mut event = access.event(SecurityEventKind::PromotionExpired, "");
    event.command = None;
    let at = event.at.clone();
    let by = access.caller.user.clone();
    let result = store.update_promotion(
        id,
        PromotionStatus::Approved,
        |mut record| {
            record.status = PromotionStatus::Expired;
            record.closed_at = Some(at);
            record.closed_by = Some(by);
            record
        },
        &event,
    );
    match result {
        Ok(PromotionUpdate::Updated(_) | PromotionUpdate::StatusWas(_)) => {}
        Ok(PromotionUpdate::NotFound) => {}
        Err(e) => eprintln!("warning: the expiry of promotion {id} could not be recorded: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user: &str, uid: u32) -> Caller {
        Caller {
            user: user.to_owned(),
            uid,
        }
    }

    fn trusted() -> ProfilesState {
        ProfilesState::Trusted(
            Profiles::parse(
                "profiles:\n  - name: agent\n    role: restricted\n    users: [bot]\n  - name: ops\n    role: standard\n    users: [root, alice]\ndefaultRole: standard\n",
            )
            .unwrap(),
        )
    }

    fn role(
        caller: Caller,
        profiles: ProfilesState,
        variable: Option<&str>,
    ) -> (Role, Vec<String>) {
        let (access, warnings) = decide(caller, "h".to_owned(), profiles, variable).unwrap();
        (access.role, warnings)
    }

    #[test]
    fn the_profile_decides_and_unlisted_users_get_the_default_role() {
        assert_eq!(
            role(caller("bot", 1001), trusted(), None).0,
            Role::Restricted
        );
        assert_eq!(
            role(caller("alice", 1000), trusted(), None).0,
            Role::Standard
        );
        assert_eq!(
            role(caller("carol", 1003), trusted(), None).0,
            Role::Standard
        );
    }

    #[test]
    fn without_a_profiles_file_everyone_is_standard() {
        assert_eq!(
            role(caller("bot", 1001), ProfilesState::Missing, None).0,
            Role::Standard
        );
    }

    #[test]
    fn the_variable_narrows_but_never_widens() {
        assert_eq!(
            role(caller("alice", 1000), trusted(), Some("restricted")).0,
            Role::Restricted
        );
        assert_eq!(
            role(
                caller("alice", 1000),
                ProfilesState::Missing,
                Some("restricted")
            )
            .0,
            Role::Restricted
        );
        let (widened, warnings) = role(caller("bot", 1001), trusted(), Some("standard"));
        assert_eq!(widened, Role::Restricted);
        assert!(
            warnings[0].contains("CESO_ROLE=standard is ignored"),
            "{warnings:?}"
        );
    }

    #[test]
    fn an_unusable_profiles_file_restricts_everyone_but_root_who_is_told() {
        let unusable = || {
            ProfilesState::Unusable(ProfilesError::Untrusted {
                path: PROFILES_PATH.into(),
                problem: "/etc/ceso can be written by its group or others (mode 0775)".to_owned(),
            })
        };
        let (restricted, warnings) = role(caller("alice", 1000), unusable(), None);
        assert_eq!(restricted, Role::Restricted);
        assert!(warnings[0].contains("/etc/ceso/profiles.yaml is not trusted"));
        assert!(matches!(
            decide(caller("root", 0), "h".to_owned(), unusable(), None),
            Err(AccessError::Profiles { .. })
        ));
    }
}
