//! The profiles file, `/etc/ceso/profiles.yaml`: which OS users are agents (`restricted`) and
//! which are people (`standard`), and the keys of the people who may approve promotions.
//!
//! It is read from that fixed path only (no flag or variable can name another) and trusted only
//! when it and every directory above it belong to root and cannot be written by group or others,
//! like sudoers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

/// The one place the profiles file is read from.
pub const PROFILES_PATH: &str = "/etc/ceso/profiles.yaml";

/// The longest profile name.
pub const MAX_PROFILE_NAME: usize = 64;

/// The longest promotion a profile may allow.
pub const LONGEST_PROMOTION: Duration = Duration::from_secs(24 * 3600);

/// The promotion length a profile allows when it does not say.
pub const DEFAULT_MAX_PROMOTION_TTL: Duration = Duration::from_secs(3600);

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Agents: reads, plans and dry runs; changes only under an approved promotion.
    Restricted,
    /// People: everything.
    Standard,
}

impl Role {
    /// `restricted` or `standard`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Restricted => "restricted",
            Role::Standard => "standard",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A public key allowed to approve promotions: `ed25519:` and the base64 of the 32 key bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ApproverKey {
    bytes: [u8; 32],
}

/// How an approver key is written.
pub const KEY_PREFIX: &str = "ed25519:";

impl ApproverKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ApproverKey { bytes }
    }

    /// The 32 bytes of the Ed25519 public key.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl std::fmt::Display for ApproverKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(self.bytes)
        )
    }
}

impl std::str::FromStr for ApproverKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let Some(encoded) = text.trim().strip_prefix(KEY_PREFIX) else {
            return Err(format!(
                "{text:?} is not an approver key: it starts with {KEY_PREFIX:?} (`ceso promote keygen` prints one)"
            ));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("{text:?} is not an approver key: its base64 is invalid ({e})"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "{text:?} is not an approver key: an Ed25519 public key has 32 bytes, this has {}",
                b.len()
            )
        })?;
        Ok(ApproverKey { bytes })
    }
}

impl TryFrom<String> for ApproverKey {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// A promotion length as written in the file (`30m`, `2h`); checked by [`Profiles::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Ttl(pub String);

/// Parses a promotion length: at least 1s, at most 24h (`30m`, `2h`, `90s`, `1h 30m`).
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let duration = crate::watch::parse_duration(text)?;
    if duration < Duration::from_secs(1) {
        return Err(format!("{text:?} is shorter than 1s"));
    }
    if duration > LONGEST_PROMOTION {
        return Err(format!(
            "{text:?} is longer than {}",
            format_duration(LONGEST_PROMOTION)
        ));
    }
    Ok(duration)
}

/// `2h`, `30m`, `1h 30m`, `45s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(h, "h"), (m, "m"), (s, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// One profile of the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub role: Role,
    /// The OS accounts bound to this profile.
    #[serde(default)]
    pub users: Vec<String>,
    /// The longest promotion its users may ask for (default 1h).
    #[serde(default)]
    pub max_promotion_ttl: Option<Ttl>,
    /// Keys of people who may approve promotions (standard profiles only).
    #[serde(default)]
    pub approver_keys: Vec<ApproverKey>,
}

impl Profile {
    /// The longest promotion this profile's users may ask for.
    pub fn max_promotion_ttl(&self) -> Duration {
        self.max_promotion_ttl
            .as_ref()
            .and_then(|ttl| parse_ttl(&ttl.0).ok())
            .unwrap_or(DEFAULT_MAX_PROMOTION_TTL)
    }
}

/// The profiles file as read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profiles {
    pub profiles: Vec<Profile>,
    /// The role of OS users no profile lists (default: restricted, the safe side).
    #[serde(default = "restricted")]
    pub default_role: Role,
}

fn restricted() -> Role {
    Role::Restricted
}

/// Problems with the profiles file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfilesError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} is not trusted: {problem}")]
    Untrusted { path: PathBuf, problem: String },
    #[error("{path}:{line}:{column}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
        message: String,
    },
}

impl ProfilesError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ProfilesError::Read { .. } => {
                "root must be able to read it, and every user to read it (mode 0644)"
            }
            ProfilesError::Untrusted { .. } => {
                "the file and every directory above it must belong to root and be writable by root only: chown root:root, chmod 0644 (directories 0755); docs/roles.md"
            }
            ProfilesError::Invalid { .. } => {
                "the keys are profiles (name, role, users, maxPromotionTtl, approverKeys) and defaultRole; docs/roles.md"
            }
        }
    }
}

impl Profiles {
    /// Reads the profiles file at `path`: `Ok(None)` when there is none (no sandbox configured);
    /// an error when it is not trusted or not valid.
    pub fn load(path: &Path) -> Result<Option<Profiles>, ProfilesError> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ProfilesError::Read {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
            Ok(_) => {}
        }
        check_trusted(path).map_err(|problem| ProfilesError::Untrusted {
            path: path.to_path_buf(),
            problem,
        })?;
        let text = std::fs::read_to_string(path).map_err(|e| ProfilesError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Profiles::parse(&text).map(Some).map_err(|e| e.at(path))
    }

    /// Parses and checks the text of a profiles file.
    pub fn parse(text: &str) -> Result<Profiles, ParseError> {
        let profiles: Profiles = crate::config::parse_located(text).map_err(|e| ParseError {
            line: e.line,
            column: e.column,
            field: e.field,
            message: e.message,
        })?;
        profiles.check(text)?;
        Ok(profiles)
    }

    /// The checks across fields: names and users appear once, approver keys only in standard
    /// profiles.
    fn check(&self, text: &str) -> Result<(), ParseError> {
        let mut names: Vec<&str> = Vec::new();
        let mut users: Vec<(&str, &str)> = Vec::new();
        let mut ttls = 0;
        for (index, profile) in self.profiles.iter().enumerate() {
            if let Some(ttl) = &profile.max_promotion_ttl {
                ttls += 1;
                if let Err(message) = parse_ttl(&ttl.0) {
                    return Err(ParseError::near(
                        text,
                        "maxPromotionTtl",
                        ttls,
                        format!("profiles[{index}].maxPromotionTtl"),
                        message,
                    ));
                }
            }
            if !crate::manifest::is_valid_name(&profile.name, MAX_PROFILE_NAME) {
                return Err(ParseError::near(
                    text,
                    &profile.name,
                    1,
                    format!("profiles[{index}].name"),
                    format!(
                        "{:?} is not a valid profile name: {}",
                        profile.name,
                        crate::manifest::name_rule(MAX_PROFILE_NAME)
                    ),
                ));
            }
            if names.contains(&profile.name.as_str()) {
                return Err(ParseError::near(
                    text,
                    &profile.name,
                    2,
                    format!("profiles[{index}].name"),
                    format!("profile {:?} is declared twice", profile.name),
                ));
            }
            names.push(&profile.name);
            for (position, user) in profile.users.iter().enumerate() {
                if let Some((_, other)) = users.iter().find(|(u, _)| u == user) {
                    return Err(ParseError::near(
                        text,
                        user,
                        2,
                        format!("profiles[{index}].users[{position}]"),
                        format!(
                            "user {user:?} is already bound to profile {other:?}: an OS user has one profile"
                        ),
                    ));
                }
                users.push((user, &profile.name));
            }
            if profile.role == Role::Restricted && !profile.approver_keys.is_empty() {
                return Err(ParseError::near(
                    text,
                    "approverKeys",
                    1,
                    format!("profiles[{index}].approverKeys"),
                    format!(
                        "profile {:?} is restricted: only people in a standard profile approve promotions",
                        profile.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The profile that lists OS user `user`.
    pub fn profile_of(&self, user: &str) -> Option<&Profile> {
        self.profiles
            .iter()
            .find(|p| p.users.iter().any(|u| u == user))
    }

    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }
}

/// A problem in the text, before the file's path is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl ParseError {
    /// A problem found after parsing, placed on the `occurrence`th line that mentions `needle`
    /// (the first line of the file if none does).
    fn near(
        text: &str,
        needle: &str,
        occurrence: usize,
        field: String,
        message: String,
    ) -> ParseError {
        let (line, column) = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
            .nth(occurrence.saturating_sub(1))
            .or_else(|| {
                text.lines()
                    .enumerate()
                    .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
            })
            .unwrap_or((1, 1));
        ParseError {
            line,
            column,
            field,
            message,
        }
    }

    fn at(self, path: &Path) -> ProfilesError {
        ProfilesError::Invalid {
            path: path.to_path_buf(),
            line: self.line,
            column: self.column,
            field: self.field,
            message: self.message,
        }
    }
}

/// Whether `path` may be trusted: a regular file (not a symbolic link) owned by root, and it and
/// every directory above it writable by root only. The problem, naming the file or directory,
/// when not.
pub fn check_trusted(path: &Path) -> Result<(), String> {
    let metadata = std::fs::symlink_metadata(path).map_err(|e| format!("{e}"))?;
    if metadata.file_type().is_symlink() {
        return Err(format!("{} is a symbolic link", path.display()));
    }
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    owned_by_root_only(path, &metadata)?;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("the working directory: {e}"))?
            .join(path)
    };
    for directory in absolute.ancestors().skip(1) {
        let metadata = std::fs::symlink_metadata(directory)
            .map_err(|e| format!("{}: {e}", directory.display()))?;
        if metadata.file_type().is_symlink() {
            return Err(format!(
                "the directory {} is a symbolic link",
                directory.display()
            ));
        }
        owned_by_root_only(directory, &metadata)?;
    }
    Ok(())
}

fn owned_by_root_only(path: &Path, metadata: &std::fs::Metadata) -> Result<(), String> {
    if metadata.uid() != 0 {
        return Err(format!(
            "{} belongs to uid {}, not root",
            path.display(),
            metadata.uid()
        ));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} can be written by its group or others (mode {:04o})",
            path.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    fn parse(text: &str) -> Result<Profiles, ParseError> {
        Profiles::parse(text)
    }

    #[test]
    fn the_documented_example_parses() {
        let profiles = parse(&format!(
            "profiles:\n  - name: agent\n    role: restricted\n    users: [ceso-agent]\n    maxPromotionTtl: 2h\n  - name: ops\n    role: standard\n    users: [root, alice]\n    approverKeys: [\"{KEY}\"]\ndefaultRole: standard\n"
        ))
        .unwrap();
        assert_eq!(profiles.default_role, Role::Standard);
        let agent = profiles.profile_of("ceso-agent").unwrap();
        assert_eq!(agent.role, Role::Restricted);
        assert_eq!(agent.max_promotion_ttl(), Duration::from_secs(7200));
        let ops = profiles.profile_of("alice").unwrap();
        assert_eq!(ops.max_promotion_ttl(), DEFAULT_MAX_PROMOTION_TTL);
        assert_eq!(ops.approver_keys[0].to_string(), KEY);
        assert!(profiles.profile_of("bob").is_none());
    }

    #[test]
    fn the_default_role_is_restricted_when_not_given() {
        let profiles = parse("profiles: []\n").unwrap();
        assert_eq!(profiles.default_role, Role::Restricted);
    }

    #[test]
    fn a_wrong_role_names_its_line_and_field() {
        let error = parse("profiles:\n  - name: agent\n    role: admin\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert_eq!(error.field, "profiles[0].role");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let error =
            parse("profiles:\n  - name: agent\n    role: restricted\n    rol: x\n").unwrap_err();
        assert_eq!(error.line, 4);
        assert!(error.message.contains("rol"), "{}", error.message);
    }

    #[test]
    fn a_bad_key_or_ttl_names_its_line() {
        let error = parse(
            "profiles:\n  - name: ops\n    role: standard\n    approverKeys: [\"ed25519:AAAA\"]\n",
        )
        .unwrap_err();
        assert_eq!(error.line, 4);
        assert!(error.message.contains("32 bytes"), "{}", error.message);
        let error =
            parse("profiles:\n  - name: agent\n    role: restricted\n    maxPromotionTtl: 25h\n")
                .unwrap_err();
        assert_eq!(error.field, "profiles[0].maxPromotionTtl");
        assert_eq!(error.line, 4);
        assert!(
            error.message.contains("longer than 24h"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_user_in_two_profiles_is_refused_at_the_second() {
        let error = parse(
            "profiles:\n  - name: agent\n    role: restricted\n    users: [bot]\n  - name: ops\n    role: standard\n    users: [bot]\n",
        )
        .unwrap_err();
        assert_eq!(error.line, 7);
        assert_eq!(error.field, "profiles[1].users[0]");
    }

    #[test]
    fn approver_keys_in_a_restricted_profile_are_refused() {
        let error = parse(&format!(
            "profiles:\n  - name: agent\n    role: restricted\n    approverKeys: [\"{KEY}\"]\n"
        ))
        .unwrap_err();
        assert_eq!(error.line, 4);
        assert!(error.message.contains("restricted"), "{}", error.message);
    }

    #[test]
    fn ttls_are_between_a_second_and_a_day() {
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_ttl("500ms").is_err());
        assert!(parse_ttl("25h").is_err());
        assert!(parse_ttl("soon").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
    }

    #[test]
    fn a_file_writable_by_others_or_a_link_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("profiles.yaml");
        std::fs::write(&file, "profiles: []\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let problem = check_trusted(&file).unwrap_err();
        assert!(
            problem.starts_with(&file.display().to_string()) && problem.contains("0666"),
            "{problem}"
        );
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(check_trusted(&link).unwrap_err().contains("symbolic link"));
    }

    #[test]
    fn a_directory_above_that_others_can_write_makes_the_file_untrusted() {
        // /tmp is writable by everyone: whoever can write there can replace the directory.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("profiles.yaml");
        std::fs::write(&file, "profiles: []\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let owner = std::fs::metadata(&file).unwrap().uid();
        let problem = check_trusted(&file).unwrap_err();
        if owner == 0 {
            assert!(
                problem.contains("can be written by its group or others"),
                "{problem}"
            );
            assert!(!problem.contains("profiles.yaml"), "{problem}");
        } else {
            assert!(problem.contains("not root"), "{problem}");
        }
    }
}
