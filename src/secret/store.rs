//! ceso's encrypted secret store: one file (default `$XDG_DATA_HOME/ceso/secrets.age`)
//! encrypted with [age](https://age-encryption.org) to an X25519 identity (default
//! `$XDG_CONFIG_HOME/ceso/identity.txt`, created with mode 0600 by the first `ceso secret set`).
//!
//! For CI and headless machines the identity may come from `CESO_SECRET_KEY` (the key itself,
//! `AGE-SECRET-KEY-1...`) or `CESO_IDENTITY_FILE` (a path), and the store from
//! `CESO_SECRETS_FILE`. The plaintext (a JSON document of names, values and times of change)
//! only ever exists in memory. Writes replace the file atomically (a 0600 temporary file renamed
//! over it) under an OS lock on `<store>.lock`, so two `ceso secret set` never lose a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{NAME_RULE, Secret, is_valid_name};

/// The variable naming the store file.
pub const STORE_VARIABLE: &str = "CESO_SECRETS_FILE";
/// The variable naming the identity file.
pub const IDENTITY_FILE_VARIABLE: &str = "CESO_IDENTITY_FILE";
/// The variable holding the identity itself (`AGE-SECRET-KEY-1...`); it wins over
/// [`IDENTITY_FILE_VARIABLE`].
pub const KEY_VARIABLE: &str = "CESO_SECRET_KEY";

/// The format name written into the (encrypted) store.
const FORMAT: &str = "ceso-secrets/1";

/// Where the key that decrypts the store comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// The key in `CESO_SECRET_KEY` (the contents of an identity file, or its key line).
    Key(Secret),
    /// An age identity file.
    File(PathBuf),
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentitySource::Key(_) => write!(f, "the key in {KEY_VARIABLE}"),
            IdentitySource::File(path) => write!(f, "the identity file {}", path.display()),
        }
    }
}

impl fmt::Debug for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What went wrong with the store. Never holds a secret value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid secret name {name:?}")]
    InvalidName { name: String },
    #[error(
        "cannot find the secret store: none of {STORE_VARIABLE}, XDG_DATA_HOME and HOME is set"
    )]
    NoHome,
    #[error("secret {name}: there is no secret store at {}", store.display())]
    NoStore { name: String, store: PathBuf },
    #[error("secret {name} is not in the store {}", store.display())]
    NotFound { name: String, store: PathBuf },
    #[error("cannot read the secret store {}: {source}", store.display())]
    Read { store: PathBuf, source: io::Error },
    #[error("cannot write the secret store {}: {source}", store.display())]
    Write { store: PathBuf, source: io::Error },
    #[error("cannot lock the secret store {}: {source}", store.display())]
    Lock { store: PathBuf, source: io::Error },
    #[error("cannot decrypt the secret store {}: {identity} does not exist", store.display())]
    NoIdentity {
        store: PathBuf,
        identity: IdentitySource,
    },
    #[error("cannot read {identity}: {source}")]
    ReadIdentity {
        identity: IdentitySource,
        source: io::Error,
    },
    #[error("cannot create {identity}: {source}")]
    CreateIdentity {
        identity: IdentitySource,
        source: io::Error,
    },
    #[error("{identity} is readable by other users (mode {mode:04o}); it is not used")]
    IdentityPermissions {
        identity: IdentitySource,
        path: PathBuf,
        mode: u32,
    },
    #[error("{identity} holds no usable age identity: {detail}")]
    BadIdentity {
        identity: IdentitySource,
        detail: String,
    },
    #[error(
        "the secret store {} cannot be decrypted with {identity}: it was encrypted to another key",
        store.display()
    )]
    WrongIdentity {
        store: PathBuf,
        identity: IdentitySource,
    },
    #[error("the secret store {} is damaged or not a ceso secret store: {detail}", store.display())]
    Damaged { store: PathBuf, detail: String },
    #[error("cannot encrypt the secret store {} to {identity}: {detail}", store.display())]
    Encrypt {
        store: PathBuf,
        identity: IdentitySource,
        detail: String,
    },
}

impl StoreError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        let find_elsewhere = format!(
            "a store made elsewhere is found through {STORE_VARIABLE}, its key through \
             {IDENTITY_FILE_VARIABLE} (a file) or {KEY_VARIABLE} (the key itself)"
        );
        match self {
            StoreError::InvalidName { .. } => NAME_RULE.to_owned(),
            StoreError::NoHome => format!("set {STORE_VARIABLE} to the store's path"),
            StoreError::NoStore { name, .. } => {
                format!(
                    "`ceso secret set {name}` stores it (and creates the store); {find_elsewhere}"
                )
            }
            StoreError::NotFound { name, .. } => format!(
                "`ceso secret set {name}` stores it; `ceso secret list` shows the names in the store"
            ),
            StoreError::Read { .. } | StoreError::Write { .. } | StoreError::Lock { .. } => {
                format!("check the path and its permissions; {find_elsewhere}")
            }
            StoreError::NoIdentity { .. } => format!(
                "restore the identity the store was encrypted to, or point {IDENTITY_FILE_VARIABLE} \
                 at it; in CI put the key itself in {KEY_VARIABLE}"
            ),
            StoreError::ReadIdentity { .. } | StoreError::CreateIdentity { .. } => format!(
                "check the path and its permissions, or set {IDENTITY_FILE_VARIABLE} or \
                 {KEY_VARIABLE}"
            ),
            StoreError::IdentityPermissions { path, .. } => format!(
                "`chmod 600 {}`; if others could read it, make a new identity and set the \
                 secrets again",
                path.display()
            ),
            StoreError::BadIdentity { .. } => format!(
                "an identity is a line `AGE-SECRET-KEY-1...` (as `ceso secret set` or `age-keygen` \
                 write it); check {IDENTITY_FILE_VARIABLE} and {KEY_VARIABLE}"
            ),
            StoreError::WrongIdentity { .. } => format!(
                "use the identity the store was made with ({IDENTITY_FILE_VARIABLE} or \
                 {KEY_VARIABLE}); if it is lost, remove the store and set the secrets again"
            ),
            StoreError::Damaged { store, .. } => format!(
                "restore {} from a backup, or remove it and set the secrets again",
                store.display()
            ),
            StoreError::Encrypt { .. } => "check the identity".to_owned(),
        }
    }
}

/// A secret in the store, as `ceso secret list` shows it: its name and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredSecretInfo {
    pub name: String,
    pub changed: jiff::Timestamp,
}

/// What [`SecretStore::set`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    /// The secret existed and was replaced.
    pub replaced: bool,
    /// The identity file created for a new store (back it up: nothing else decrypts the store).
    pub created_identity: Option<PathBuf>,
}

/// The decrypted contents: never printed, never written unencrypted.
#[derive(Serialize, Deserialize)]
struct Contents {
    format: String,
    secrets: BTreeMap<String, StoredSecret>,
}

impl Default for Contents {
    fn default() -> Self {
        Contents {
            format: FORMAT.to_owned(),
            secrets: BTreeMap::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSecret {
    value: String,
    changed: jiff::Timestamp,
}

/// The encrypted secret store at one path, read with one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretStore {
    path: PathBuf,
    identity: IdentitySource,
}

impl SecretStore {
    /// The store at `path`, decrypted with `identity`.
    pub fn new(path: impl Into<PathBuf>, identity: IdentitySource) -> Self {
        Self {
            path: path.into(),
            identity,
        }
    }

    /// The store and identity the environment names: the store `$CESO_SECRETS_FILE`, else
    /// `$XDG_DATA_HOME/ceso/secrets.age`, else `~/.local/share/ceso/secrets.age`; the identity
    /// `$CESO_SECRET_KEY`, else the file `$CESO_IDENTITY_FILE`, else
    /// `$XDG_CONFIG_HOME/ceso/identity.txt`, else `~/.config/ceso/identity.txt`.
    pub fn from_env() -> Result<Self, StoreError> {
        let path = match env_path(STORE_VARIABLE) {
            Some(path) => path,
            None => base_dir("XDG_DATA_HOME", ".local/share")?.join("ceso/secrets.age"),
        };
        let identity = match std::env::var(KEY_VARIABLE)
            .ok()
            .filter(|k| !k.trim().is_empty())
        {
            Some(key) => IdentitySource::Key(Secret::new(key)),
            None => IdentitySource::File(match env_path(IDENTITY_FILE_VARIABLE) {
                Some(path) => path,
                None => base_dir("XDG_CONFIG_HOME", ".config")?.join("ceso/identity.txt"),
            }),
        };
        Ok(Self::new(path, identity))
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the key comes from.
    pub fn identity(&self) -> &IdentitySource {
        &self.identity
    }

    /// The secret `name`.
    pub fn get(&self, name: &str) -> Result<Secret, StoreError> {
        check_name(name)?;
        let Some(contents) = self.read()? else {
            return Err(StoreError::NoStore {
                name: name.to_owned(),
                store: self.path.clone(),
            });
        };
        contents
            .secrets
            .get(name)
            .map(|stored| Secret::new(stored.value.clone()))
            .ok_or_else(|| StoreError::NotFound {
                name: name.to_owned(),
                store: self.path.clone(),
            })
    }

    /// The names in the store with their times of change, by name (none when there is no
    /// store yet; the identity is then not needed).
    pub fn list(&self) -> Result<Vec<StoredSecretInfo>, StoreError> {
        Ok(self
            .read()?
            .map(|contents| {
                contents
                    .secrets
                    .iter()
                    .map(|(name, stored)| StoredSecretInfo {
                        name: name.clone(),
                        changed: stored.changed,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Stores `value` as `name`, creating the store (and, for a new store without one, the
    /// identity file) when missing.
    pub fn set(&self, name: &str, value: &Secret) -> Result<SetOutcome, StoreError> {
        check_name(name)?;
        let _lock = self.lock()?;
        let created_identity = if self.path.exists() {
            None
        } else {
            self.create_identity_if_missing()?
        };
        let mut contents = self.read()?.unwrap_or_default();
        let stored = StoredSecret {
            value: value.expose().to_owned(),
            changed: jiff::Timestamp::now(),
        };
        let replaced = contents.secrets.insert(name.to_owned(), stored).is_some();
        self.write(&contents)?;
        Ok(SetOutcome {
            replaced,
            created_identity,
        })
    }

    /// Removes `name` from the store.
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        let _lock = self.lock()?;
        let Some(mut contents) = self.read()? else {
            return Err(StoreError::NoStore {
                name: name.to_owned(),
                store: self.path.clone(),
            });
        };
        if contents.secrets.remove(name).is_none() {
            return Err(StoreError::NotFound {
                name: name.to_owned(),
                store: self.path.clone(),
            });
        }
        self.write(&contents)
    }

    /// Decrypts the store (`None`: there is none).
    fn read(&self) -> Result<Option<Contents>, StoreError> {
        let ciphertext = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Read {
                    store: self.path.clone(),
                    source,
                });
            }
        };
        warn_if_readable_by_others(&self.path);
        let identities =
            self.identity_file()?
                .into_identities()
                .map_err(|e| StoreError::BadIdentity {
                    identity: self.identity.clone(),
                    detail: e.to_string(),
                })?;
        let damaged = |detail: String| StoreError::Damaged {
            store: self.path.clone(),
            detail,
        };
        let decryptor =
            age::Decryptor::new(ciphertext.as_slice()).map_err(|e| damaged(e.to_string()))?;
        let mut reader = decryptor
            .decrypt(identities.iter().map(|identity| identity.as_ref()))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => StoreError::WrongIdentity {
                    store: self.path.clone(),
                    identity: self.identity.clone(),
                },
                other => damaged(other.to_string()),
            })?;
        let mut plaintext = Vec::new();
        reader
            .read_to_end(&mut plaintext)
            .map_err(|e| damaged(e.to_string()))?;
        // serde's messages may quote the text they stumbled on: only the position is kept.
        let contents: Contents = serde_json::from_slice(&plaintext).map_err(|e| {
            damaged(format!(
                "unreadable contents at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        if contents.format != FORMAT {
            return Err(damaged(format!(
                "unknown format {:?} (this ceso reads {FORMAT})",
                contents.format
            )));
        }
        Ok(Some(contents))
    }

    /// Encrypts `contents` to the identity and replaces the store with it.
    fn write(&self, contents: &Contents) -> Result<(), StoreError> {
        let encrypt_error = |detail: String| StoreError::Encrypt {
            store: self.path.clone(),
            identity: self.identity.clone(),
            detail,
        };
        let recipients = self
            .identity_file()?
            .to_recipients()
            .map_err(|e| encrypt_error(e.to_string()))?;
        let encryptor = age::Encryptor::with_recipients(
            recipients
                .iter()
                .map(|recipient| recipient.as_ref() as &dyn age::Recipient),
        )
        .map_err(|e| encrypt_error(e.to_string()))?;
        let plaintext = serde_json::to_vec(contents).map_err(|e| encrypt_error(e.to_string()))?;
        let mut ciphertext = Vec::new();
        let mut writer = encryptor
            .wrap_output(&mut ciphertext)
            .map_err(|e| encrypt_error(e.to_string()))?;
        writer
            .write_all(&plaintext)
            .and_then(|()| writer.finish().map(drop))
            .map_err(|e| encrypt_error(e.to_string()))?;
        write_private_file(&self.path, &ciphertext).map_err(|source| StoreError::Write {
            store: self.path.clone(),
            source,
        })
    }

    /// Parses the identity (file or key), refusing a file others can read.
    fn identity_file(&self) -> Result<age::IdentityFile<age::NoCallbacks>, StoreError> {
        let bad = |detail: String| StoreError::BadIdentity {
            identity: self.identity.clone(),
            detail,
        };
        let parsed = match &self.identity {
            IdentitySource::Key(key) => {
                age::IdentityFile::from_buffer(key.expose().trim().as_bytes())
            }
            IdentitySource::File(path) => {
                let text = match fs::read_to_string(path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(StoreError::NoIdentity {
                            store: self.path.clone(),
                            identity: self.identity.clone(),
                        });
                    }
                    Err(source) => {
                        return Err(StoreError::ReadIdentity {
                            identity: self.identity.clone(),
                            source,
                        });
                    }
                };
                if let Some(mode) = readable_by_others(path) {
                    return Err(StoreError::IdentityPermissions {
                        identity: self.identity.clone(),
                        path: path.clone(),
                        mode,
                    });
                }
                age::IdentityFile::from_buffer(text.as_bytes())
            }
        }
        // age's message names a line number, never the line.
        .map_err(|e| bad(e.to_string()))?;
        let mut recipients = Vec::new();
        if parsed.write_recipients_file(&mut recipients).is_err() {
            return Err(bad("no `AGE-SECRET-KEY-1...` line".to_owned()));
        }
        Ok(parsed)
    }

    /// Creates the identity file (mode 0600) when the identity is a file that does not exist.
    fn create_identity_if_missing(&self) -> Result<Option<PathBuf>, StoreError> {
        let IdentitySource::File(path) = &self.identity else {
            return Ok(None);
        };
        if path.exists() {
            return Ok(None);
        }
        let identity = age::x25519::Identity::generate();
        let text = format!(
            "# created: {}\n# public key: {}\n{}\n",
            jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            identity.to_public(),
            identity.to_string().expose_secret()
        );
        write_private_file(path, text.as_bytes()).map_err(|source| StoreError::CreateIdentity {
            identity: self.identity.clone(),
            source,
        })?;
        Ok(Some(path.clone()))
    }

    /// Takes the OS lock on `<store>.lock` (released when the file is dropped).
    fn lock(&self) -> Result<File, StoreError> {
        lock_beside(&self.path).map_err(|source| StoreError::Lock {
            store: self.path.clone(),
            source,
        })
    }
}

/// Takes an exclusive OS lock on `<path>.lock` (0600, created with its directory), waiting for
/// another holder; released when the returned file is dropped, or when the process ends.
pub(super) fn lock_beside(path: &Path) -> io::Result<File> {
    create_private_dir(parent_dir(path))?;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = private_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(PathBuf::from(name))?;
    file.lock()?;
    Ok(file)
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// A path from a variable (unset or empty: `None`).
fn env_path(variable: &str) -> Option<PathBuf> {
    std::env::var_os(variable)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// `$variable` when it is an absolute path (as the XDG specification asks), else
/// `$HOME/fallback`.
pub(super) fn base_dir(variable: &str, fallback: &str) -> Result<PathBuf, StoreError> {
    if let Some(dir) = env_path(variable).filter(|dir| dir.is_absolute()) {
        return Ok(dir);
    }
    env_path("HOME")
        .map(|home| home.join(fallback))
        .ok_or(StoreError::NoHome)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Creates `dir` and its missing parents, only the owner may enter the ones created.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Options that create files only the owner can read and write.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Replaces `path` with `bytes` atomically: a 0600 temporary file beside it, synced, renamed over
/// it. A reader sees the old file or the new one, never a part.
pub(super) fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    create_private_dir(dir)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = dir.join(temporary_name);
    let _ = fs::remove_file(&temporary);
    let written = (|| {
        let mut file = private_options()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    // The rename itself is durable once the directory is synced.
    if let Ok(directory) = File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// The mode of `path` when group or others may read or write it.
fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn warn_if_readable_by_others(path: &Path) {
    if let Some(mode) = readable_by_others(path) {
        tracing::warn!(
            "the secret store {} is readable by other users (mode {mode:04o}); it is encrypted, \
             but `chmod 600 {}` keeps even the names to you",
            path.display(),
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_in(dir: &Path) -> SecretStore {
        SecretStore::new(
            dir.join("data/secrets.age"),
            IdentitySource::File(dir.join("config/identity.txt")),
        )
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ceso-store-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_secret_set_is_read_back_and_the_file_holds_only_ciphertext() {
        let dir = temp_dir("roundtrip");
        let store = store_in(&dir);
        let outcome = store
            .set("esxi-01-root", &Secret::new("Unit-Value-31"))
            .unwrap();
        assert_eq!(
            outcome.created_identity,
            Some(dir.join("config/identity.txt"))
        );
        assert!(!outcome.replaced);
        assert_eq!(store.get("esxi-01-root").unwrap().expose(), "Unit-Value-31");
        let bytes = fs::read(store.path()).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1"));
        assert!(!String::from_utf8_lossy(&bytes).contains("Unit-Value-31"));
        assert!(!String::from_utf8_lossy(&bytes).contains("esxi-01-root"));
        #[cfg(unix)]
        {
            assert_eq!(mode(store.path()), 0o600);
            assert_eq!(mode(&dir.join("config/identity.txt")), 0o600);
            assert_eq!(mode(&dir.join("config")), 0o700);
        }
        let again = store
            .set("esxi-01-root", &Secret::new("Unit-Value-32"))
            .unwrap();
        assert!(again.replaced);
        assert_eq!(again.created_identity, None);
        assert_eq!(store.get("esxi-01-root").unwrap().expose(), "Unit-Value-32");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn list_and_remove() {
        let dir = temp_dir("list");
        let store = store_in(&dir);
        assert_eq!(store.list().unwrap(), vec![]);
        store.set("b", &Secret::new("1")).unwrap();
        store.set("a", &Secret::new("2")).unwrap();
        let names: Vec<String> = store.list().unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "b"]);
        store.remove("a").unwrap();
        assert!(matches!(
            store.remove("a"),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(store.get("a"), Err(StoreError::NotFound { .. })));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn another_identity_cannot_read_the_store() {
        let dir = temp_dir("wrong");
        let store = store_in(&dir);
        store.set("x", &Secret::new("Unit-Value-33")).unwrap();
        let other = age::x25519::Identity::generate();
        let wrong = SecretStore::new(
            store.path(),
            IdentitySource::Key(Secret::new(other.to_string().expose_secret().to_owned())),
        );
        let error = wrong.get("x").unwrap_err();
        assert!(matches!(error, StoreError::WrongIdentity { .. }), "{error}");
        assert!(error.to_string().contains("the key in CESO_SECRET_KEY"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_in_the_variable_works_like_the_file() {
        let dir = temp_dir("key");
        let identity = age::x25519::Identity::generate();
        let key = identity.to_string().expose_secret().to_owned();
        let store = SecretStore::new(
            dir.join("s.age"),
            IdentitySource::Key(Secret::new(format!("  {key}\n"))),
        );
        let outcome = store.set("ci", &Secret::new("Unit-Value-34")).unwrap();
        assert_eq!(outcome.created_identity, None);
        assert_eq!(store.get("ci").unwrap().expose(), "Unit-Value-34");
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn an_identity_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("perm");
        let store = store_in(&dir);
        store.set("x", &Secret::new("v")).unwrap();
        let identity = dir.join("config/identity.txt");
        fs::set_permissions(&identity, fs::Permissions::from_mode(0o644)).unwrap();
        let error = store.get("x").unwrap_err();
        assert!(
            matches!(error, StoreError::IdentityPermissions { mode: 0o644, .. }),
            "{error}"
        );
        assert!(error.hint().contains("chmod 600"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_identity_is_named() {
        let dir = temp_dir("noid");
        let store = store_in(&dir);
        store.set("x", &Secret::new("v")).unwrap();
        fs::remove_file(dir.join("config/identity.txt")).unwrap();
        let error = store.get("x").unwrap_err();
        assert!(matches!(error, StoreError::NoIdentity { .. }), "{error}");
        // A store that exists is never re-keyed to a fresh identity behind the user's back.
        assert!(matches!(
            store.set("y", &Secret::new("v")),
            Err(StoreError::NoIdentity { .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_garbled_key_is_refused_without_echoing_it() {
        let store = SecretStore::new(
            "/nonexistent/s.age",
            IdentitySource::Key(Secret::new("Unit-Not-A-Key-35")),
        );
        let error = store.set("x", &Secret::new("v")).unwrap_err();
        assert!(matches!(error, StoreError::BadIdentity { .. }), "{error}");
        assert!(!error.to_string().contains("Unit-Not-A-Key-35"));
    }

    #[test]
    fn invalid_names_are_refused() {
        let dir = temp_dir("names");
        let store = store_in(&dir);
        for name in ["", "a b", "../x", "-x"] {
            assert!(matches!(
                store.set(name, &Secret::new("v")),
                Err(StoreError::InvalidName { .. })
            ));
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = temp_dir("concurrent");
        let store = store_in(&dir);
        store.set("first", &Secret::new("v")).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || store.set(&format!("s{i}"), &Secret::new("v")).unwrap())
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.list().unwrap().len(), 9);
        fs::remove_dir_all(dir).unwrap();
    }
}
