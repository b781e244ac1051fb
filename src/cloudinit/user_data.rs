//! The user-data (`guestinfo.userdata`): what ceso generates merged with the manifest's own
//! cloud-config, and its redaction for display.

use serde_json::Value;
use serde_yaml::{Mapping, Value as Yaml};

use super::encoding::json_kind;

/// The first line of every cloud-config user-data.
const CLOUD_CONFIG_HEADER: &str = "#cloud-config";

/// Keys that set passwords in cloud-config; a manifest holding one is refused.
const PASSWORD_KEYS: [&str; 5] = [
    "passwd",
    "hashed_passwd",
    "plain_text_passwd",
    "password",
    "chpasswd",
];

/// Lists that the manifest's user-data extends rather than replaces.
const MERGED_LISTS: [&str; 5] = [
    "packages",
    "users",
    "runcmd",
    "write_files",
    "ssh_authorized_keys",
];

/// Shown instead of a secret by [`redact_user_data`].
const REDACTED: &str = "(redacted)";

/// What ceso puts into a VM's user-data.
#[derive(Debug, Clone, Copy)]
pub struct UserDataInput<'a> {
    /// The guest's hostname; with dots it is a fully qualified name.
    pub hostname: &'a str,
    /// cloud-config `users` entries, as given. cloud-init creates the distro's default user
    /// (the one `public-keys-data` in the metadata goes to) only when the list contains
    /// `"default"`; an empty list leaves `users` out, which means just the default user.
    pub users: &'a [Value],
    /// Packages to install (with `package_update: true`).
    pub packages: &'a [String],
    /// The manifest's own cloud-config (`userData`), merged in: a mapping.
    pub extra: Option<&'a Value>,
}

/// Why the user-data could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    /// `path` is e.g. `users[1].passwd` or `userData.chpasswd`.
    #[error(
        "{path}: manifests must not hold passwords; give users SSH keys instead (references to \
         secrets kept outside the manifest are not supported yet)"
    )]
    Password { path: String },
    #[error("userData must be a mapping of cloud-config keys, not {found}")]
    ExtraNotMapping { found: &'static str },
    #[error(
        "userData.{key} must be a list (it is appended to the one ceso generates), not {found}"
    )]
    NotAList { key: String, found: &'static str },
    #[error(
        "userData.{key} is {given}, but ceso generates {generated} from the cloudInit section; \
         leave {key} out of userData"
    )]
    Conflict {
        key: String,
        given: String,
        generated: String,
    },
    /// Converting the values for rendering failed (not expected for JSON values).
    #[error("the user-data cannot be rendered: {0}")]
    Yaml(String),
}

/// The user-data for a VM: `#cloud-config`, then a mapping (written as JSON, which is the YAML
/// that cloud-init's YAML 1.1 parser cannot misread) with, in this order,
/// `hostname` (the short name), `fqdn` (when the hostname has dots), `preserve_hostname: false`,
/// `users` (when given), `packages` and `package_update: true` (when packages are given), then
/// the keys of `extra` in their order. The lists `packages`, `users`, `runcmd`, `write_files`
/// and `ssh_authorized_keys` of `extra` are appended to the generated ones; any other key ceso
/// sets may appear in `extra` only with the same value. Deterministic.
///
/// Refuses password keys (`passwd`, `hashed_passwd`, `plain_text_passwd`, `password`,
/// `chpasswd`) anywhere in `users` or `extra`.
pub fn user_data(input: &UserDataInput) -> Result<String, UserDataError> {
    for (index, user) in input.users.iter().enumerate() {
        refuse_passwords(user, &format!("users[{index}]"))?;
    }
    let extra = match input.extra {
        None => None,
        Some(Value::Object(extra)) => Some(extra),
        Some(other) => {
            return Err(UserDataError::ExtraNotMapping {
                found: json_kind(other),
            });
        }
    };
    if let Some(extra) = extra {
        refuse_passwords_in_mapping(extra, "userData")?;
    }

    let mut document = Mapping::new();
    let short_name = input.hostname.split('.').next().unwrap_or_default();
    document.insert("hostname".into(), short_name.into());
    if input.hostname.contains('.') {
        document.insert("fqdn".into(), input.hostname.into());
    }
    document.insert("preserve_hostname".into(), false.into());
    if !input.users.is_empty() {
        document.insert("users".into(), to_yaml(input.users)?);
    }
    if !input.packages.is_empty() {
        document.insert("packages".into(), to_yaml(input.packages)?);
        document.insert("package_update".into(), true.into());
    }
    for (key, given) in extra.into_iter().flatten() {
        merge(&mut document, key, given)?;
    }
    // JSON is YAML, and the one form of it that PyYAML's YAML 1.1 (cloud-init's parser) reads
    // exactly as written: plain YAML scalars such as `yes`, `off`, `12:30` or `1_000` would
    // turn from strings into booleans and numbers. The mapping keeps the order built above.
    let json = serde_json::to_string_pretty(&document)
        .map_err(|error| UserDataError::Yaml(error.to_string()))?;
    Ok(format!("{CLOUD_CONFIG_HEADER}\n{json}\n"))
}

/// Merges the manifest's `key: given` into the generated `document`.
fn merge(document: &mut Mapping, key: &str, given: &Value) -> Result<(), UserDataError> {
    let is_merged_list = MERGED_LISTS.contains(&key);
    if is_merged_list && !given.is_array() {
        return Err(UserDataError::NotAList {
            key: key.to_owned(),
            found: json_kind(given),
        });
    }
    let given_yaml = to_yaml(given)?;
    match document.get_mut(key) {
        None => {
            document.insert(key.into(), given_yaml);
        }
        Some(Yaml::Sequence(generated)) if is_merged_list => {
            if let Yaml::Sequence(items) = given_yaml {
                generated.extend(items);
            }
        }
        Some(generated) if *generated == given_yaml => {}
        Some(generated) => {
            return Err(UserDataError::Conflict {
                key: key.to_owned(),
                given: given.to_string(),
                generated: serde_json::to_string(generated)
                    .unwrap_or_else(|_| format!("{generated:?}")),
            });
        }
    }
    Ok(())
}

fn to_yaml<T: serde::Serialize + ?Sized>(value: &T) -> Result<Yaml, UserDataError> {
    serde_yaml::to_value(value).map_err(|error| UserDataError::Yaml(error.to_string()))
}

fn refuse_passwords(value: &Value, path: &str) -> Result<(), UserDataError> {
    match value {
        Value::Object(mapping) => refuse_passwords_in_mapping(mapping, path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(index, item)| refuse_passwords(item, &format!("{path}[{index}]"))),
        _ => Ok(()),
    }
}

fn refuse_passwords_in_mapping(
    mapping: &serde_json::Map<String, Value>,
    path: &str,
) -> Result<(), UserDataError> {
    for (key, value) in mapping {
        let key_path = format!("{path}.{key}");
        if PASSWORD_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(UserDataError::Password { path: key_path });
        }
        refuse_passwords(value, &key_path)?;
    }
    Ok(())
}

/// `user_data` for display (`ceso vm info`): the values of password-like keys (`passwd`,
/// `hashed_passwd`, `plain_text_passwd`, `password`, any key containing `password`, `secret`,
/// `token` or `private`, and `chpasswd.list`) replaced by `(redacted)`, wherever they are; the
/// content of `write_files` (only its size is shown) and `runcmd`/`bootcmd` commands that look
/// like they handle a secret, too.
/// User-data that is not a `#cloud-config` mapping (a script, say) is not shown at all, only
/// its size: it may hold anything.
pub fn redact_user_data(user_data: &str) -> String {
    let hidden = || {
        format!(
            "(not shown: {} bytes of user-data that is not a #cloud-config mapping and may hold \
             secrets)",
            user_data.len()
        )
    };
    if !user_data.starts_with(CLOUD_CONFIG_HEADER) {
        return hidden();
    }
    let Ok(Yaml::Mapping(mut document)) = serde_yaml::from_str::<Yaml>(user_data) else {
        return hidden();
    };
    redact_mapping(&mut document);
    match serde_yaml::to_string(&document) {
        Ok(yaml) => format!("{CLOUD_CONFIG_HEADER}\n{yaml}"),
        Err(_) => hidden(),
    }
}

fn redact(value: &mut Yaml) {
    match value {
        Yaml::Mapping(mapping) => redact_mapping(mapping),
        Yaml::Sequence(items) => items.iter_mut().for_each(redact),
        Yaml::Tagged(tagged) => redact(&mut tagged.value),
        Yaml::String(text) if text.contains("PRIVATE KEY") => *value = REDACTED.into(),
        _ => {}
    }
}

fn redact_mapping(mapping: &mut Mapping) {
    for (key, value) in mapping.iter_mut() {
        let Some(key) = key.as_str() else {
            redact(value);
            continue;
        };
        if is_secret_key(key) {
            *value = REDACTED.into();
        } else if key == "write_files" {
            redact_written_files(value);
        } else if matches!(key, "runcmd" | "bootcmd") {
            redact_commands(value);
        } else if key == "chpasswd" {
            if let Some(list) = value.get_mut("list") {
                *list = REDACTED.into();
            }
            redact(value);
        } else {
            redact(value);
        }
    }
}

/// `write_files`: what a file holds (`content`, and `source`, whose URL may carry a token) is
/// never shown, only its size; the path, owner and permissions are.
fn redact_written_files(files: &mut Yaml) {
    let Yaml::Sequence(files) = files else {
        *files = REDACTED.into();
        return;
    };
    for file in files.iter_mut() {
        let Yaml::Mapping(file) = file else {
            *file = REDACTED.into();
            continue;
        };
        for (key, value) in file.iter_mut() {
            match key.as_str() {
                Some("content") => {
                    let size = value.as_str().map_or(0, str::len);
                    *value = format!("(redacted: {size} bytes)").into();
                }
                Some("source") => *value = REDACTED.into(),
                _ => redact(value),
            }
        }
    }
}

/// `runcmd`/`bootcmd`: a command that looks like it handles a secret (a password, token, key,
/// authorization header) is replaced as a whole; the others are shown.
fn redact_commands(commands: &mut Yaml) {
    let Yaml::Sequence(commands) = commands else {
        return;
    };
    for command in commands.iter_mut() {
        let text = match &*command {
            Yaml::String(text) => text.clone(),
            Yaml::Sequence(words) => words
                .iter()
                .filter_map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => continue,
        };
        let lower = text.to_ascii_lowercase();
        if [
            "passw",
            "secret",
            "token",
            "bearer",
            "authorization",
            "api_key",
            "apikey",
            "private",
            "credential",
        ]
        .iter()
        .any(|word| lower.contains(word))
        {
            *command = REDACTED.into();
        }
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        key.as_str(),
        "passwd" | "hashed_passwd" | "plain_text_passwd" | "password"
    ) || ["password", "secret", "token", "private"]
        .iter()
        .any(|word| key.contains(word))
}
