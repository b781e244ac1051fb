//! Approvals: the approver's Ed25519 key (`~/.config/ceso/approver.key`), what an approval signs,
//! and the checks every ceso process makes before it honours a promotion.
//!
//! The signature covers everything that makes a promotion what it is: its id, the state file and
//! machine it was requested in, the requesting user (name and uid) and profile, the reason, the
//! length, when it was requested, who approved it with which key, when, and until when. Change
//! any of these in the state file, or copy the approval onto another request or into another
//! state file, and the signature no longer verifies. Cryptography is ring's Ed25519.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use jiff::Timestamp;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::Serialize;

use super::profiles::{ApproverKey, Profiles, Role};
use crate::state::{Approval, PromotionRecord, PromotionStatus};

/// The approver key file, relative to the user's configuration directory.
pub const APPROVER_KEY_FILE: &str = "ceso/approver.key";

/// What an approval's signature is made over comes after this line, so a signature made for
/// anything else can never pass for an approval.
const SIGNING_CONTEXT: &str = "ceso promotion approval v1\n";

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// How far an approval's time may lie ahead of this machine's clock.
const CLOCK_SKEW_SECS: i64 = 60;

/// The format of every time ceso records.
pub fn format_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Problems with the approver key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no approver key at {path}")]
    Missing { path: PathBuf },
    #[error("cannot read the approver key {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("the approver key {path} is not safe: {problem}")]
    Unsafe { path: PathBuf, problem: String },
    #[error("{path} is not an approver key: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write the approver key {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("neither XDG_CONFIG_HOME nor HOME is set: no place for the approver key")]
    NoHome,
}

impl KeyError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            KeyError::Missing { .. } => "create one with `ceso promote keygen` and have its public key added to approverKeys of your profile in /etc/ceso/profiles.yaml".to_owned(),
            KeyError::Unsafe { path, .. } => format!(
                "the key must be yours and readable by you only: chmod 600 {}",
                path.display()
            ),
            _ => "docs/roles.md#approver-keys".to_owned(),
        }
    }
}

/// Where the approver key of the user running ceso is: `$XDG_CONFIG_HOME/ceso/approver.key`,
/// else `~/.config/ceso/approver.key`.
pub fn approver_key_path() -> Result<PathBuf, KeyError> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| Path::new(&home).join(".config"))
        })
        .map(|dir| dir.join(APPROVER_KEY_FILE))
        .ok_or(KeyError::NoHome)
}

/// An approver's key pair.
pub struct ApproverKeyPair {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for ApproverKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApproverKeyPair({})", self.public_key())
    }
}

impl ApproverKeyPair {
    /// Creates a new key pair and writes it to `path` (mode 0600, the directory 0700 when
    /// created). Refuses to replace an existing file.
    pub fn generate(path: &Path) -> Result<ApproverKeyPair, KeyError> {
        let write_error = |e: &dyn std::fmt::Display| KeyError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let random = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&random).map_err(|e| write_error(&e))?;
        let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).map_err(|e| write_error(&e))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| write_error(&e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| write_error(&e))?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(document.as_ref());
        let mut text = format!("{PEM_BEGIN}\n");
        for chunk in encoded.as_bytes().chunks(64) {
            text.push_str(&String::from_utf8_lossy(chunk));
            text.push('\n');
        }
        text.push_str(PEM_END);
        text.push('\n');
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| write_error(&e))?;
        Ok(ApproverKeyPair { pair })
    }

    /// Reads the key at `path`, which must belong to the user running ceso and be readable by
    /// them only.
    pub fn load(path: &Path) -> Result<ApproverKeyPair, KeyError> {
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => {
                return Err(KeyError::Read {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        let uid = nix::unistd::getuid().as_raw();
        if metadata.uid() != uid {
            return Err(KeyError::Unsafe {
                path: path.to_path_buf(),
                problem: format!(
                    "it belongs to uid {}, not to you (uid {uid})",
                    metadata.uid()
                ),
            });
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Unsafe {
                path: path.to_path_buf(),
                problem: format!("others can read it (mode {mode:04o})"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        ApproverKeyPair::from_pem(&text).map_err(|message| KeyError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The key pair from its PEM text (PKCS#8).
    pub fn from_pem(text: &str) -> Result<ApproverKeyPair, String> {
        let body: String = text
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != PEM_BEGIN)
            .skip(1)
            .take_while(|l| *l != PEM_END)
            .collect();
        if body.is_empty() {
            return Err(format!("no {PEM_BEGIN} block"));
        }
        let document = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("its base64 is invalid ({e})"))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&document)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key ({e})"))?;
        Ok(ApproverKeyPair { pair })
    }

    /// The public key, as written in approverKeys.
    pub fn public_key(&self) -> ApproverKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        ApproverKey::from_bytes(bytes)
    }

    fn sign(&self, message: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.pair.sign(message).as_ref())
    }
}

/// Exactly what an approval signs, in this order.
#[derive(Serialize)]
struct Signed<'a> {
    id: &'a str,
    state_id: &'a str,
    hostname: &'a str,
    requester: &'a str,
    requester_uid: u32,
    profile: Option<&'a str>,
    reason: &'a str,
    ttl_secs: u64,
    requested_at: &'a str,
    approver: &'a str,
    approver_uid: u32,
    approver_profile: &'a str,
    key: &'a str,
    approved_at: &'a str,
    expires_at: &'a str,
}

fn signed_message(record: &PromotionRecord, approval: &Approval) -> Vec<u8> {
    let signed = Signed {
        id: &record.id,
        state_id: &record.state_id,
        hostname: &record.hostname,
        requester: &record.requester,
        requester_uid: record.requester_uid,
        profile: record.profile.as_deref(),
        reason: &record.reason,
        ttl_secs: record.ttl_secs,
        requested_at: &record.requested_at,
        approver: &approval.approver,
        approver_uid: approval.approver_uid,
        approver_profile: &approval.approver_profile,
        key: &approval.key,
        approved_at: &approval.approved_at,
        expires_at: &approval.expires_at,
    };
    let mut message = SIGNING_CONTEXT.as_bytes().to_vec();
    message.extend(serde_json::to_vec(&signed).expect("the signed fields serialize"));
    message
}

/// Who approves: the OS user and the standard profile whose approverKeys lists their key.
#[derive(Debug, Clone)]
pub struct Approver {
    pub user: String,
    pub uid: u32,
    pub profile: String,
}

/// The approval of `record` by `approver` with `key`, at `now`, for the record's ttl.
pub fn approve(
    record: &PromotionRecord,
    approver: &Approver,
    key: &ApproverKeyPair,
    now: Timestamp,
) -> Result<Approval, String> {
    let ttl = jiff::SignedDuration::from_secs(
        i64::try_from(record.ttl_secs).map_err(|_| "the ttl is too long".to_owned())?,
    );
    let expires = now
        .checked_add(ttl)
        .map_err(|e| format!("the expiry cannot be computed: {e}"))?;
    let mut approval = Approval {
        approver: approver.user.clone(),
        approver_uid: approver.uid,
        approver_profile: approver.profile.clone(),
        key: key.public_key().to_string(),
        approved_at: format_time(now),
        expires_at: format_time(expires),
        signature: String::new(),
    };
    approval.signature = key.sign(&signed_message(record, &approval));
    Ok(approval)
}

/// The caller a promotion must belong to, and where it must be used.
#[derive(Debug, Clone)]
pub struct Holder<'a> {
    pub user: &'a str,
    pub uid: u32,
    pub profile: Option<&'a str>,
    pub hostname: &'a str,
    pub state_id: &'a str,
}

/// Why a promotion is not honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("promotion {id} is {status}, not approved")]
    NotApproved { id: String, status: PromotionStatus },
    #[error("promotion {id} expired at {expires_at}")]
    Expired { id: String, expires_at: String },
    #[error("promotion {id} belongs to {requester} (uid {uid}, profile {profile}), not to you")]
    NotYours {
        id: String,
        requester: String,
        uid: u32,
        profile: String,
    },
    #[error(
        "promotion {id} was requested in another state file or on another machine: an approval is valid only where it was requested"
    )]
    Elsewhere { id: String },
    #[error("promotion {id} was not approved by a key of a standard profile in {profiles}: {why}")]
    UnknownApprover {
        id: String,
        profiles: String,
        why: String,
    },
    #[error(
        "the approval of promotion {id} does not verify: it was forged, or the promotion was changed after it was approved"
    )]
    BadSignature { id: String },
    #[error("promotion {id} is longer than profile {profile} now allows ({max})")]
    TooLong {
        id: String,
        profile: String,
        max: String,
    },
}

/// Checks that `record` is an approved promotion of `holder`, signed by a key of a standard
/// profile of `profiles`, unchanged since, and not expired at `now`. (Whether it was revoked or
/// ended is its status, which the caller takes from a state file whose audit chain verifies.)
pub fn check(
    record: &PromotionRecord,
    holder: &Holder<'_>,
    profiles: &Profiles,
    now: Timestamp,
) -> Result<Approval, Invalid> {
    let id = record.id.clone();
    let (PromotionStatus::Approved, Some(approval)) = (record.status, &record.approval) else {
        return Err(Invalid::NotApproved {
            id,
            status: record.status,
        });
    };
    if record.requester != holder.user
        || record.requester_uid != holder.uid
        || record.profile.as_deref() != holder.profile
    {
        return Err(Invalid::NotYours {
            id,
            requester: record.requester.clone(),
            uid: record.requester_uid,
            profile: record.profile.clone().unwrap_or_else(|| "none".to_owned()),
        });
    }
    if record.state_id != holder.state_id || record.hostname != holder.hostname {
        return Err(Invalid::Elsewhere { id });
    }
    let unknown = |why: String| Invalid::UnknownApprover {
        id: record.id.clone(),
        profiles: super::profiles::PROFILES_PATH.to_owned(),
        why,
    };
    let approver_profile = profiles
        .profile(&approval.approver_profile)
        .ok_or_else(|| unknown(format!("no profile {:?}", approval.approver_profile)))?;
    if approver_profile.role != Role::Standard {
        return Err(unknown(format!(
            "profile {:?} is not standard",
            approver_profile.name
        )));
    }
    let key: ApproverKey = approval.key.parse().map_err(unknown)?;
    if !approver_profile.approver_keys.contains(&key) {
        return Err(unknown(format!(
            "profile {:?} does not list key {key}",
            approver_profile.name
        )));
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(&approval.signature)
        .map_err(|_| Invalid::BadSignature { id: id.clone() })?;
    UnparsedPublicKey::new(&ED25519, key.bytes())
        .verify(&signed_message(record, approval), &signature)
        .map_err(|_| Invalid::BadSignature { id: id.clone() })?;
    // Signed, so these are what the approver wrote; still, hold them to what an approval is.
    let approved_at: Timestamp = approval
        .approved_at
        .parse()
        .map_err(|_| Invalid::BadSignature { id: id.clone() })?;
    let expires_at: Timestamp = approval
        .expires_at
        .parse()
        .map_err(|_| Invalid::BadSignature { id: id.clone() })?;
    let ttl = i64::try_from(record.ttl_secs).unwrap_or(i64::MAX);
    if expires_at.as_second() - approved_at.as_second() > ttl
        || approved_at.as_second() > now.as_second() + CLOCK_SKEW_SECS
    {
        return Err(Invalid::BadSignature { id });
    }
    if let Some(profile) = holder.profile.and_then(|name| profiles.profile(name)) {
        let max = profile.max_promotion_ttl();
        if record.ttl_secs > max.as_secs() {
            return Err(Invalid::TooLong {
                id,
                profile: profile.name.clone(),
                max: super::profiles::format_duration(max),
            });
        }
    }
    if now >= expires_at {
        return Err(Invalid::Expired {
            id,
            expires_at: approval.expires_at.clone(),
        });
    }
    Ok(approval.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pair() -> ApproverKeyPair {
        let random = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&random).unwrap();
        ApproverKeyPair {
            pair: Ed25519KeyPair::from_pkcs8(document.as_ref()).unwrap(),
        }
    }

    fn profiles(key: &ApproverKeyPair) -> Profiles {
        Profiles::parse(&format!(
            "profiles:\n  - name: agent\n    role: restricted\n    users: [bot]\n  - name: ops\n    role: standard\n    users: [alice]\n    approverKeys: [\"{}\"]\ndefaultRole: standard\n",
            key.public_key()
        ))
        .unwrap()
    }

    fn request(id: &str) -> PromotionRecord {
        PromotionRecord {
            id: id.to_owned(),
            state_id: "state-1".to_owned(),
            hostname: "ops-01".to_owned(),
            requester: "bot".to_owned(),
            requester_uid: 1001,
            profile: Some("agent".to_owned()),
            reason: "resize web-01".to_owned(),
            ttl_secs: 1800,
            requested_at: "2026-11-27T09:00:00.000Z".to_owned(),
            status: PromotionStatus::Pending,
            approval: None,
            closed_at: None,
            closed_by: None,
        }
    }

    const HOLDER: Holder<'static> = Holder {
        user: "bot",
        uid: 1001,
        profile: Some("agent"),
        hostname: "ops-01",
        state_id: "state-1",
    };

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn approved(id: &str, key: &ApproverKeyPair) -> PromotionRecord {
        let mut record = request(id);
        let approver = Approver {
            user: "alice".to_owned(),
            uid: 1000,
            profile: "ops".to_owned(),
        };
        record.approval =
            Some(approve(&record, &approver, key, at("2026-11-27T09:01:00Z")).unwrap());
        record.status = PromotionStatus::Approved;
        record
    }

    #[test]
    fn an_approved_promotion_holds_until_it_expires() {
        let key = key_pair();
        let record = approved("prm-1", &key);
        let approval = check(
            &record,
            &HOLDER,
            &profiles(&key),
            at("2026-11-27T09:20:00Z"),
        )
        .unwrap();
        assert_eq!(approval.expires_at, "2026-11-27T09:31:00.000Z");
        assert_eq!(
            check(
                &record,
                &HOLDER,
                &profiles(&key),
                at("2026-11-27T09:31:00Z")
            ),
            Err(Invalid::Expired {
                id: "prm-1".to_owned(),
                expires_at: "2026-11-27T09:31:00.000Z".to_owned()
            })
        );
    }

    #[test]
    fn any_signed_field_changed_breaks_the_signature() {
        let key = key_pair();
        let profiles = profiles(&key);
        let now = at("2026-11-27T09:02:00Z");
        type Change = fn(&mut PromotionRecord);
        let changes: Vec<(&str, Change)> = vec![
            ("expiry", |r| {
                r.approval.as_mut().unwrap().expires_at = "2026-11-27T23:00:00.000Z".to_owned()
            }),
            ("ttl", |r| r.ttl_secs = 3600),
            ("reason", |r| r.reason = "anything".to_owned()),
            ("requested_at", |r| {
                r.requested_at = "2026-11-27T08:00:00.000Z".to_owned()
            }),
            ("approver", |r| {
                r.approval.as_mut().unwrap().approver = "root".to_owned()
            }),
        ];
        for (what, change) in changes {
            let mut record = approved("prm-1", &key);
            change(&mut record);
            assert_eq!(
                check(&record, &HOLDER, &profiles, now),
                Err(Invalid::BadSignature {
                    id: "prm-1".to_owned()
                }),
                "{what}"
            );
        }
    }

    #[test]
    fn an_approval_copied_onto_another_request_does_not_verify() {
        let key = key_pair();
        let original = approved("prm-1", &key);
        let mut other = request("prm-2");
        other.status = PromotionStatus::Approved;
        other.approval = original.approval.clone();
        assert_eq!(
            check(&other, &HOLDER, &profiles(&key), at("2026-11-27T09:02:00Z")),
            Err(Invalid::BadSignature {
                id: "prm-2".to_owned()
            })
        );
    }

    #[test]
    fn an_approval_with_a_key_no_standard_profile_lists_is_refused() {
        let key = key_pair();
        let forger = key_pair();
        let record = approved("prm-1", &forger);
        let Err(Invalid::UnknownApprover { why, .. }) = check(
            &record,
            &HOLDER,
            &profiles(&key),
            at("2026-11-27T09:02:00Z"),
        ) else {
            panic!("must be refused");
        };
        assert!(why.contains("does not list key"), "{why}");
    }

    #[test]
    fn a_promotion_is_only_for_its_requester_state_file_and_machine() {
        let key = key_pair();
        let record = approved("prm-1", &key);
        let now = at("2026-11-27T09:02:00Z");
        let other_user = Holder {
            user: "bot2",
            uid: 1002,
            ..HOLDER
        };
        assert!(matches!(
            check(&record, &other_user, &profiles(&key), now),
            Err(Invalid::NotYours { .. })
        ));
        let other_state = Holder {
            state_id: "state-2",
            ..HOLDER
        };
        assert!(matches!(
            check(&record, &other_state, &profiles(&key), now),
            Err(Invalid::Elsewhere { .. })
        ));
    }

    #[test]
    fn a_pending_or_ended_promotion_is_not_honoured() {
        let key = key_pair();
        let mut record = approved("prm-1", &key);
        record.status = PromotionStatus::Ended;
        assert!(matches!(
            check(
                &record,
                &HOLDER,
                &profiles(&key),
                at("2026-11-27T09:02:00Z")
            ),
            Err(Invalid::NotApproved { .. })
        ));
    }

    #[test]
    fn a_key_file_round_trips_and_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ceso/approver.key");
        let created = ApproverKeyPair::generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = ApproverKeyPair::load(&path).unwrap();
        assert_eq!(loaded.public_key(), created.public_key());
        assert!(matches!(
            ApproverKeyPair::generate(&path),
            Err(KeyError::Write { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            ApproverKeyPair::load(&path),
            Err(KeyError::Unsafe { .. })
        ));
    }
}
