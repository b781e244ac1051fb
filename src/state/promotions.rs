//! Promotions and security events: what the access check (`crate::access`) records.
//!
//! A *security event* is a refusal, a step of a promotion (requested, approved, denied, revoked,
//! ended, expired) or the use of one; each is appended to the audit chain in the same
//! transaction, like runs and steps. A *promotion* is kept by id in its own table, and every
//! change of it is written together with an event that carries the promotion as it is after the
//! change, so `ceso audit verify` (and every ceso process before it honours a promotion) can tell
//! a promotion row changed behind ceso's back from one ceso wrote.
//!
//! Nothing here decides whether a promotion is valid: the approval's signature and its expiry
//! are checked by `crate::access::promotion`.

use std::sync::OnceLock;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::chain::append_security;
use super::{StateError, StateStore, corrupt, to_json};

/// Security events by number (0, 1, ...): JSON [`SecurityEvent`].
pub(super) const SECURITY_EVENTS: TableDefinition<u64, &str> =
    TableDefinition::new("security_events");
/// Promotions by id: JSON [`PromotionRecord`].
pub(super) const PROMOTIONS: TableDefinition<&str, &str> = TableDefinition::new("promotions");
/// Facts about this state file: `state_id`, the random id an approval is bound to.
pub(super) const STATE_META: TableDefinition<&str, &str> = TableDefinition::new("state_meta");

const STATE_ID: &str = "state_id";

/// Where a promotion is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromotionStatus {
    /// Requested, waiting for a person.
    Pending,
    /// Approved (signed); valid until `expires_at` unless revoked or ended.
    Approved,
    /// Refused by a person.
    Denied,
    /// Withdrawn by a person before it expired.
    Revoked,
    /// Given back by the agent that held it.
    Ended,
    /// Found past its expiry when it was to be used.
    Expired,
}

impl std::fmt::Display for PromotionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            PromotionStatus::Pending => "pending",
            PromotionStatus::Approved => "approved",
            PromotionStatus::Denied => "denied",
            PromotionStatus::Revoked => "revoked",
            PromotionStatus::Ended => "ended",
            PromotionStatus::Expired => "expired",
        })
    }
}

/// A person's approval of a promotion, signed with their Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approving OS user.
    pub approver: String,
    pub approver_uid: u32,
    /// The standard profile whose `approverKeys` lists `key`.
    pub approver_profile: String,
    /// The public key, as in the profiles file: `ed25519:BASE64`.
    pub key: String,
    pub approved_at: String,
    pub expires_at: String,
    /// Base64 of the Ed25519 signature over the promotion and this approval (without itself).
    pub signature: String,
}

/// One promotion: who asked, why, for how long, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionRecord {
    /// Random, e.g. `prm-3f9a1c0b7d2e`; the approver types it back.
    pub id: String,
    /// The state file it was requested in ([`StateStore::state_id`]).
    pub state_id: String,
    /// The machine it was requested on.
    pub hostname: String,
    /// The requesting OS user (from the real uid).
    pub requester: String,
    pub requester_uid: u32,
    /// The requester's profile; `None` for a user the profiles file does not list.
    pub profile: Option<String>,
    pub reason: String,
    pub ttl_secs: u64,
    pub requested_at: String,
    pub status: PromotionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// When it was denied, revoked, ended or found expired, and by whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
}

/// What a security event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// A command was refused.
    Refused,
    PromotionRequested,
    PromotionApproved,
    PromotionDenied,
    PromotionRevoked,
    PromotionEnded,
    /// A promotion was found past its expiry when it was to be used.
    PromotionExpired,
    /// A command ran under a promotion.
    PromotionUsed,
    /// An audit run (`run_id`) was recorded by a command running under a promotion.
    PromotionRun,
}

impl SecurityEventKind {
    /// The name used in the audit log (`refused`, `promotion_approved`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::Refused => "refused",
            SecurityEventKind::PromotionRequested => "promotion_requested",
            SecurityEventKind::PromotionApproved => "promotion_approved",
            SecurityEventKind::PromotionDenied => "promotion_denied",
            SecurityEventKind::PromotionRevoked => "promotion_revoked",
            SecurityEventKind::PromotionEnded => "promotion_ended",
            SecurityEventKind::PromotionExpired => "promotion_expired",
            SecurityEventKind::PromotionUsed => "promotion_used",
            SecurityEventKind::PromotionRun => "promotion_run",
        }
    }
}

impl std::fmt::Display for SecurityEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who did something: the OS user (from the real uid), where, and in which role and profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub os_user: String,
    pub uid: u32,
    pub hostname: String,
    pub pid: u32,
    /// `None` for a user the profiles file does not list (or without a profiles file).
    pub profile: Option<String>,
    /// `restricted` or `standard`.
    pub role: String,
}

/// One security event. Never holds a secret value: commands are described by their
/// subcommand and the names they act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    pub event: SecurityEventKind,
    pub at: String,
    #[serde(flatten)]
    pub actor: Actor,
    /// The command, e.g. `apply inventory` or `vm delete web-01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The promotion concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<String>,
    /// The audit run concerned (`promotion_run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why (a refusal's reason, a revocation's note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The promotion as it is after this event (for every event that creates or changes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<PromotionRecord>,
}

/// What [`StateStore::update_promotion`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionUpdate {
    /// Changed and recorded; the promotion as it is now.
    Updated(Box<PromotionRecord>),
    /// No promotion of that id in this state file.
    NotFound,
    /// Its status was not the expected one (someone else changed it first): it is this.
    StatusWas(PromotionStatus),
}

/// The promotion a command of this process runs under, and who runs it: set by the access check
/// before the command starts, so that every audit run the command records names the promotion.
#[derive(Debug, Clone)]
pub struct ActingPromotion {
    pub id: String,
    pub actor: Actor,
    pub command: String,
}

static ACTING: OnceLock<ActingPromotion> = OnceLock::new();

/// Records that this process runs under a promotion (once per process; later calls are ignored).
pub fn set_acting_promotion(acting: ActingPromotion) {
    let _ = ACTING.set(acting);
}

/// The promotion this process runs under, if any.
pub fn acting_promotion() -> Option<&'static ActingPromotion> {
    ACTING.get()
}

/// Appends `event` to the security events and the chain, in `txn`; returns its number.
pub(super) fn record_event(
    txn: &redb::WriteTransaction,
    event: &SecurityEvent,
) -> Result<u64, redb::Error> {
    let mut events = txn.open_table(SECURITY_EVENTS)?;
    let number = events.last()?.map_or(0, |(key, _)| key.value() + 1);
    let text = to_json(event);
    events.insert(number, text.as_str())?;
    drop(events);
    append_security(txn, number, &text)?;
    Ok(number)
}

impl StateStore {
    /// This state file's id (random, created on first use): approvals are bound to it, so an
    /// approval copied into another state file is worth nothing there.
    pub fn state_id(&self) -> Result<String, StateError> {
        if let Some(id) = self.read(|txn| {
            let meta = match txn.open_table(STATE_META) {
                Ok(meta) => meta,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(meta.get(STATE_ID)?.map(|v| v.value().to_owned()))
        })? {
            return Ok(id);
        }
        self.write(|txn| {
            let mut meta = txn.open_table(STATE_META)?;
            if let Some(id) = meta.get(STATE_ID)? {
                return Ok(id.value().to_owned());
            }
            let id = uuid::Uuid::new_v4().to_string();
            meta.insert(STATE_ID, id.as_str())?;
            Ok(id)
        })
    }

    /// Records a security event (with its chain entry); returns its number.
    pub fn record_security_event(&self, event: &SecurityEvent) -> Result<u64, StateError> {
        self.write(|txn| record_event(txn, event))
    }

    /// Every security event with its number, oldest first.
    pub fn security_events(&self) -> Result<Vec<(u64, SecurityEvent)>, StateError> {
        self.read(|txn| {
            let events = match txn.open_table(SECURITY_EVENTS) {
                Ok(events) => events,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for entry in events.iter()? {
                let (key, value) = entry?;
                out.push((
                    key.value(),
                    serde_json::from_str(value.value()).map_err(corrupt)?,
                ));
            }
            Ok(out)
        })
    }

    /// Stores a new promotion and the event that requested it (`event.record` is set to it).
    /// Returns `false`, storing nothing, when the id is taken.
    pub fn create_promotion(
        &self,
        record: &PromotionRecord,
        event: &SecurityEvent,
    ) -> Result<bool, StateError> {
        self.write(|txn| {
            let mut promotions = txn.open_table(PROMOTIONS)?;
            if promotions.get(record.id.as_str())?.is_some() {
                return Ok(false);
            }
            promotions.insert(record.id.as_str(), to_json(record).as_str())?;
            drop(promotions);
            let mut event = event.clone();
            event.promotion = Some(record.id.clone());
            event.record = Some(record.clone());
            record_event(txn, &event)?;
            Ok(true)
        })
    }

    /// Changes promotion `id` with `change` if its status is `expected`, and records `event`
    /// (carrying the changed promotion) in the same transaction.
    pub fn update_promotion(
        &self,
        id: &str,
        expected: PromotionStatus,
        change: impl FnOnce(PromotionRecord) -> PromotionRecord,
        event: &SecurityEvent,
    ) -> Result<PromotionUpdate, StateError> {
        self.write(|txn| {
            let mut promotions = txn.open_table(PROMOTIONS)?;
            let current: PromotionRecord = match promotions.get(id)? {
                Some(text) => serde_json::from_str(text.value()).map_err(corrupt)?,
                None => return Ok(PromotionUpdate::NotFound),
            };
            if current.status != expected {
                return Ok(PromotionUpdate::StatusWas(current.status));
            }
            let changed = change(current);
            promotions.insert(id, to_json(&changed).as_str())?;
            drop(promotions);
            let mut event = event.clone();
            event.promotion = Some(id.to_owned());
            event.record = Some(changed.clone());
            record_event(txn, &event)?;
            Ok(PromotionUpdate::Updated(Box::new(changed)))
        })
    }

    /// One promotion, if this state file has it.
    pub fn promotion(&self, id: &str) -> Result<Option<PromotionRecord>, StateError> {
        self.read(|txn| {
            let promotions = match txn.open_table(PROMOTIONS) {
                Ok(promotions) => promotions,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            match promotions.get(id)? {
                Some(text) => Ok(Some(serde_json::from_str(text.value()).map_err(corrupt)?)),
                None => Ok(None),
            }
        })
    }

    /// Every promotion, oldest request first.
    pub fn promotions(&self) -> Result<Vec<PromotionRecord>, StateError> {
        let mut out: Vec<PromotionRecord> = self.read(|txn| {
            let promotions = match txn.open_table(PROMOTIONS) {
                Ok(promotions) => promotions,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for entry in promotions.iter()? {
                let (_, value) = entry?;
                out.push(serde_json::from_str(value.value()).map_err(corrupt)?);
            }
            Ok(out)
        })?;
        out.sort_by(|a, b| (&a.requested_at, &a.id).cmp(&(&b.requested_at, &b.id)));
        Ok(out)
    }
}
