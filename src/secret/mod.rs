//! Secrets: [`Secret`], a value that never prints itself, and the four places a manifest's
//! `password` may point at — `{ env: NAME }`, `{ file: path }`, `{ secret: NAME }` (ceso's
//! encrypted store, [`store`]) and `{ keyring: NAME }` (the OS keyring, [`keyring`]).
//!
//! Errors name the reference (the variable, the file, the secret and its store, the keyring
//! entry), never a value.

pub mod keyring;
pub mod store;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::manifest::{EnvSecret, FileSecret, KeyringSecret, SecretRef, StoreSecret};

pub use keyring::KeyringError;
pub use store::{IdentitySource, SecretStore, StoreError};

/// A secret string. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`] reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that has to send it (e.g. the SOAP `Login`).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Longest secret name.
pub const NAME_MAX: usize = 128;

/// What a valid secret name looks like, for hints.
pub const NAME_RULE: &str =
    "use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit";

/// Whether `name` is a valid name for a secret in the store or the keyring: 1 to
/// [`NAME_MAX`] ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit (so
/// that it never reads as a command-line flag).
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= NAME_MAX
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// A secret reference that could not be read. Never holds a value.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("environment variable {name} is not set")]
    MissingEnv { name: String },
    #[error("environment variable {name} is not valid UTF-8")]
    EnvNotUnicode { name: String },
    #[error("cannot read the file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{reference} is empty")]
    Empty { reference: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(
        "{path} may have been written by another account ({reason}); ceso does not send your secrets where it says"
    )]
    UntrustedSource { path: PathBuf, reason: String },
}

impl ResolveError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            ResolveError::MissingEnv { name } | ResolveError::EnvNotUnicode { name } => format!(
                "set {name} in the environment ceso runs in, or keep the password in ceso's \
                 encrypted store: `ceso secret set NAME`, then `password: {{ secret: NAME }}`"
            ),
            ResolveError::File { .. } => "create the file (a relative path starts from the \
                 manifest's directory), or keep the password in ceso's encrypted store: \
                 `ceso secret set NAME`, then `password: { secret: NAME }`"
                .to_owned(),
            ResolveError::Empty { .. } => {
                "put the password there; an empty password is never sent".to_owned()
            }
            ResolveError::Store(error) => error.hint(),
            ResolveError::Keyring(error) => error.hint(),
            ResolveError::UntrustedSource { .. } => "a manifest or saved plan that makes ceso \
                 send a password must be yours (or root's) and writable by no one else: \
                 `chown` it to yourself and `chmod go-w` it and its directory, after checking \
                 the Host's address"
                .to_owned(),
        }
    }
}

/// Checks that `path` (a manifest's directory or a saved plan), if it exists, was written by the
/// caller or root: owned by one of them and writable by no one else. A file another account could write
/// could point a password at an address of that account's choosing.
#[cfg(unix)]
pub fn check_written_by_caller(path: &Path) -> Result<(), ResolveError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let untrusted = |reason: String| ResolveError::UntrustedSource {
        path: path.to_path_buf(),
        reason,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        // Nothing there was written by anyone (`ceso init` connects before it writes the
        // inventory; its host comes from the command line).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(untrusted(e.to_string())),
    };
    let caller = nix::unistd::getuid().as_raw();
    if metadata.uid() != caller && metadata.uid() != 0 {
        return Err(untrusted(format!(
            "it belongs to uid {}, not to you (uid {caller}) or root",
            metadata.uid()
        )));
    }
    if metadata.permissions().mode() & 0o022 != 0 {
        return Err(untrusted(
            "it is writable by its group or others".to_owned(),
        ));
    }
    Ok(())
}

/// Elsewhere file ownership is not checked.
#[cfg(not(unix))]
pub fn check_written_by_caller(_path: &Path) -> Result<(), ResolveError> {
    Ok(())
}

/// Reads the secret `reference` points at. `base` is the directory relative `{ file: path }`
/// references start from (the manifest's directory). `{ secret: NAME }` reads the store and
/// identity named by the environment ([`SecretStore::from_env`]).
pub fn resolve(reference: &SecretRef, base: &Path) -> Result<Secret, ResolveError> {
    let value = match reference {
        SecretRef::Env(EnvSecret { env }) => match std::env::var(env) {
            Ok(value) => Secret::new(value),
            Err(std::env::VarError::NotPresent) => {
                return Err(ResolveError::MissingEnv { name: env.clone() });
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ResolveError::EnvNotUnicode { name: env.clone() });
            }
        },
        SecretRef::File(FileSecret { file }) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ResolveError::File { path, source })?;
            Secret::new(without_trailing_newline(text))
        }
        SecretRef::Store(StoreSecret { secret }) => SecretStore::from_env()?.get(secret)?,
        SecretRef::Keyring(KeyringSecret { keyring }) => keyring::get(keyring)?,
    };
    if value.is_empty() {
        return Err(ResolveError::Empty {
            reference: reference.to_string(),
        });
    }
    Ok(value)
}

/// `text` without one trailing newline (`\n` or `\r\n`), as editors and `echo` leave it.
pub fn without_trailing_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn names_are_letters_digits_dots_underscores_and_dashes() {
        for good in ["esxi-01-root", "a", "lab.esxi_01", "0x"] {
            assert!(is_valid_name(good), "{good}");
        }
        let too_long = "a".repeat(NAME_MAX + 1);
        for bad in ["", "-flag", ".hidden", "a b", "a/b", "ü", &too_long] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn one_trailing_newline_is_removed() {
        assert_eq!(without_trailing_newline("pw\n".into()), "pw");
        assert_eq!(without_trailing_newline("pw\r\n".into()), "pw");
        assert_eq!(without_trailing_newline("pw\n\n".into()), "pw\n");
        assert_eq!(without_trailing_newline("pw".into()), "pw");
    }

    #[test]
    fn a_missing_variable_is_named_without_a_value() {
        let error = resolve(
            &SecretRef::env("CESO_TEST_SURELY_UNSET_VARIABLE"),
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable CESO_TEST_SURELY_UNSET_VARIABLE is not set"
        );
        assert!(error.hint().contains("ceso secret set"));
    }

    #[test]
    fn a_file_is_read_relative_to_the_base_without_its_newline() {
        let dir = std::env::temp_dir().join(format!("ceso-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "from-file\n").unwrap();
        let secret = resolve(&SecretRef::file("pw"), &dir).unwrap();
        assert_eq!(secret.expose(), "from-file");
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let error = resolve(&SecretRef::file("empty"), &dir).unwrap_err();
        assert_eq!(error.to_string(), "file empty is empty");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
