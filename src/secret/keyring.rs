//! The OS keyring: entries of service `ceso` whose user is the secret's name (`{ keyring: NAME }`,
//! `ceso secret set NAME --keyring`), through the `keyring` crate — on Linux the Secret Service
//! over D-Bus (GNOME Keyring, KWallet, KeePassXC), on macOS the Keychain, on Windows the
//! Credential Manager. Built only with the cargo feature `os-keyring` (on by default).
//!
//! Keyrings cannot be listed portably, so ceso keeps the names (never the values) it put there,
//! with their times of change, in `$XDG_DATA_HOME/ceso/keyring-names.json` for
//! `ceso secret list`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{base_dir, lock_beside, write_private_file};
use super::{NAME_RULE, Secret, is_valid_name};

/// The service of every ceso entry in the OS keyring.
pub const SERVICE: &str = "ceso";

/// Why the OS keyring could not be used. Never holds a secret value.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("invalid secret name {name:?}")]
    InvalidName { name: String },
    #[error(
        "keyring entry {name}: this ceso was built without OS keyring support (cargo feature os-keyring)"
    )]
    NotBuilt { name: String },
    #[error("keyring entry {name}: no OS keyring is reachable ({detail})")]
    Unavailable { name: String, detail: String },
    #[error("keyring entry {name} (service {SERVICE}) does not exist in the OS keyring")]
    NotFound { name: String },
    #[error("keyring entry {name}: the OS keyring is locked or refused access ({detail})")]
    NoAccess { name: String, detail: String },
    #[error("keyring entry {name} holds a value that is not UTF-8 text")]
    NotText { name: String },
    #[error("keyring entry {name}: the OS keyring failed: {detail}")]
    Failed { name: String, detail: String },
    #[error("cannot update the list of keyring names {}: {source}", path.display())]
    Index {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl KeyringError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        let use_store = |name: &str| {
            format!(
                "without a keyring (headless machines, CI) use ceso's encrypted store: \
                 `ceso secret set {name}`, then `password: {{ secret: {name} }}`"
            )
        };
        match self {
            KeyringError::InvalidName { .. } => NAME_RULE.to_owned(),
            KeyringError::NotBuilt { name } => use_store(name),
            KeyringError::Unavailable { name, .. } => format!(
                "on Linux the keyring is a Secret Service (GNOME Keyring, KWallet, KeePassXC) on \
                 the D-Bus session bus; {}",
                use_store(name)
            ),
            KeyringError::NotFound { name } => format!(
                "`ceso secret set {name} --keyring` stores it; `ceso secret list` shows the names"
            ),
            KeyringError::NoAccess { name, .. } => {
                format!(
                    "unlock the keyring (log in to the desktop session); {}",
                    use_store(name)
                )
            }
            KeyringError::NotText { name } => {
                format!("store it again: `ceso secret set {name} --keyring`")
            }
            KeyringError::Failed { name, .. } => use_store(name),
            KeyringError::Index { .. } => "check the path and its permissions".to_owned(),
        }
    }
}

/// Whether this ceso was built with OS keyring support.
pub fn is_built_in() -> bool {
    cfg!(feature = "os-keyring")
}

/// Reads the entry `name` of service `ceso`.
pub fn get(name: &str) -> Result<Secret, KeyringError> {
    check_name(name)?;
    os::get(name)
}

/// Stores `value` as the entry `name` of service `ceso` and records the name for
/// `ceso secret list`.
pub fn set(name: &str, value: &Secret) -> Result<(), KeyringError> {
    check_name(name)?;
    os::set(name, value)?;
    let index = KeyringIndex::from_env().map_err(|source| index_error(Path::new(""), source))?;
    index.record(name, Some(jiff::Timestamp::now()))
}

/// Removes the entry `name` of service `ceso` (and its name from ceso's list).
pub fn remove(name: &str) -> Result<(), KeyringError> {
    check_name(name)?;
    let removed = os::remove(name);
    let index = KeyringIndex::from_env().map_err(|source| index_error(Path::new(""), source))?;
    match removed {
        // Gone already: the name is only dropped from the list.
        Ok(()) | Err(KeyringError::NotFound { .. }) if index.contains(name)? => {
            index.record(name, None)
        }
        Ok(()) => Ok(()),
        Err(error) => Err(error),
    }
}

/// A name ceso put into the OS keyring, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyringName {
    pub name: String,
    pub changed: jiff::Timestamp,
}

/// The names ceso put into the OS keyring (without asking the keyring).
pub fn names() -> Result<Vec<KeyringName>, KeyringError> {
    let index = KeyringIndex::from_env().map_err(|source| index_error(Path::new(""), source))?;
    Ok(index
        .read()?
        .names
        .into_iter()
        .map(|(name, changed)| KeyringName { name, changed })
        .collect())
}

/// The file of names ceso put into the OS keyring.
struct KeyringIndex {
    path: PathBuf,
}

#[derive(Default, Serialize, Deserialize)]
struct IndexContents {
    names: BTreeMap<String, jiff::Timestamp>,
}

impl KeyringIndex {
    fn from_env() -> Result<Self, std::io::Error> {
        let dir = base_dir("XDG_DATA_HOME", ".local/share").map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither XDG_DATA_HOME nor HOME is set",
            )
        })?;
        Ok(Self {
            path: dir.join("ceso/keyring-names.json"),
        })
    }

    fn read(&self) -> Result<IndexContents, KeyringError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                index_error(
                    &self.path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IndexContents::default()),
            Err(e) => Err(index_error(&self.path, e)),
        }
    }

    fn contains(&self, name: &str) -> Result<bool, KeyringError> {
        Ok(self.read()?.names.contains_key(name))
    }

    /// Records `name` as changed at `changed`, or drops it (`None`).
    fn record(&self, name: &str, changed: Option<jiff::Timestamp>) -> Result<(), KeyringError> {
        let _lock = lock_beside(&self.path).map_err(|e| index_error(&self.path, e))?;
        let mut contents = self.read()?;
        match changed {
            Some(time) => contents.names.insert(name.to_owned(), time),
            None => contents.names.remove(name),
        };
        let json = serde_json::to_vec_pretty(&contents)
            .map_err(|e| index_error(&self.path, std::io::Error::other(e)))?;
        write_private_file(&self.path, &json).map_err(|e| index_error(&self.path, e))
    }
}

fn index_error(path: &Path, source: std::io::Error) -> KeyringError {
    KeyringError::Index {
        path: path.to_path_buf(),
        source,
    }
}

fn check_name(name: &str) -> Result<(), KeyringError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(KeyringError::InvalidName {
            name: name.to_owned(),
        })
    }
}

#[cfg(feature = "os-keyring")]
mod os {
    //! The `keyring` crate. Its errors are turned into [`KeyringError`] here, variant by
    //! variant: some carry the secret's bytes, which must never be formatted.

    use super::{KeyringError, SERVICE, Secret};

    fn entry(name: &str) -> Result<keyring::Entry, KeyringError> {
        keyring::Entry::new(SERVICE, name).map_err(|error| match error {
            keyring::Error::NoDefaultStore => KeyringError::Unavailable {
                name: name.to_owned(),
                detail: match keyring::Entry::store_status() {
                    Err(why) => describe(why),
                    Ok(()) => "no default credential store".to_owned(),
                },
            },
            other => convert(name, other),
        })
    }

    pub(super) fn get(name: &str) -> Result<Secret, KeyringError> {
        let entry = entry(name)?;
        entry
            .get_password()
            .map(Secret::new)
            .map_err(|e| convert(name, e))
    }

    pub(super) fn set(name: &str, value: &Secret) -> Result<(), KeyringError> {
        entry(name)?
            .set_password(value.expose())
            .map_err(|e| convert(name, e))
    }

    pub(super) fn remove(name: &str) -> Result<(), KeyringError> {
        entry(name)?
            .delete_credential()
            .map_err(|e| convert(name, e))
    }

    fn convert(name: &str, error: keyring::Error) -> KeyringError {
        let name = name.to_owned();
        match error {
            keyring::Error::NoEntry => KeyringError::NotFound { name },
            keyring::Error::BadEncoding(_) => KeyringError::NotText { name },
            keyring::Error::NoStorageAccess(why) => KeyringError::NoAccess {
                name,
                detail: why.to_string(),
            },
            keyring::Error::PlatformFailure(why) if is_unreachable(&why.to_string()) => {
                KeyringError::Unavailable {
                    name,
                    detail: why.to_string(),
                }
            }
            keyring::Error::NoDefaultStore => KeyringError::Unavailable {
                name,
                detail: "no default credential store".to_owned(),
            },
            other => KeyringError::Failed {
                name,
                detail: describe(&other),
            },
        }
    }

    /// An error's text without any data it carries.
    fn describe(error: &keyring::Error) -> String {
        match error {
            keyring::Error::PlatformFailure(why) | keyring::Error::NoStorageAccess(why) => {
                why.to_string()
            }
            keyring::Error::BadEncoding(_) => "the value is not UTF-8 text".to_owned(),
            keyring::Error::BadDataFormat(_, why) => format!("malformed data: {why}"),
            keyring::Error::Ambiguous(entries) => {
                format!("{} entries match", entries.len())
            }
            other => other.to_string(),
        }
    }

    /// Whether a platform error means that no keyring service answers at all.
    fn is_unreachable(text: &str) -> bool {
        [
            "org.freedesktop.secrets",
            "ServiceUnknown",
            "DBUS_SESSION_BUS_ADDRESS",
        ]
        .iter()
        .any(|sign| text.contains(sign))
    }
}

#[cfg(not(feature = "os-keyring"))]
mod os {
    use super::{KeyringError, Secret};

    pub(super) fn get(name: &str) -> Result<Secret, KeyringError> {
        Err(KeyringError::NotBuilt {
            name: name.to_owned(),
        })
    }

    pub(super) fn set(name: &str, _value: &Secret) -> Result<(), KeyringError> {
        get(name).map(drop)
    }

    pub(super) fn remove(name: &str) -> Result<(), KeyringError> {
        get(name).map(drop)
    }
}
