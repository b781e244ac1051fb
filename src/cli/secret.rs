//! `ceso secret set|list|rm`: the secrets manifests name with `password: { secret: NAME }`
//! (ceso's encrypted store, the default) or `password: { keyring: NAME }` (the OS keyring,
//! `--keyring`). Values are read from the terminal without echo, or from standard input, never
//! from an argument, and never printed. See docs/secrets.md.

use std::io::{IsTerminal, Read};
use std::path::Path;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::inspect::{Align, Cell, Table, print_json};
use super::{CommandError, Outcome};
use crate::plan::render::Colour;
use crate::secret::{self, KeyringError, Secret, SecretStore, StoreError, keyring};

/// Largest secret read from standard input.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// `ceso secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret: typed twice without echo on a terminal, else read from standard input
    /// (one trailing newline removed). Never taken from an argument.
    Set(SecretSetArgs),
    /// The stored secrets: name, where, last change (never values).
    List(SecretListArgs),
    /// Remove a secret.
    Rm(SecretRmArgs),
}

/// Arguments of `ceso secret set`.
#[derive(Debug, Args)]
pub struct SecretSetArgs {
    /// The secret's name (letters, digits, '.', '_', '-'); a Host names it with
    /// `password: { secret: NAME }`.
    pub name: String,
    /// Store it in the OS keyring (service `ceso`) instead of ceso's encrypted store; a Host
    /// then names it with `password: { keyring: NAME }`.
    #[arg(long)]
    pub keyring: bool,
}

/// Arguments of `ceso secret list`.
#[derive(Debug, Args)]
pub struct SecretListArgs {
    /// Print JSON (docs/secrets.md) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ceso secret rm`.
#[derive(Debug, Args)]
pub struct SecretRmArgs {
    /// The secret's name.
    pub name: String,
    /// Remove it from the OS keyring instead of ceso's encrypted store.
    #[arg(long)]
    pub keyring: bool,
}

/// Runs a `ceso secret` command (the state file plays no part).
pub async fn run(command: SecretCommand, _state: &Path) -> Result<Outcome, CommandError> {
    match command {
        SecretCommand::Set(args) => set(&args),
        SecretCommand::List(args) => list(&args),
        SecretCommand::Rm(args) => remove(&args),
    }
}

fn set(args: &SecretSetArgs) -> Result<Outcome, CommandError> {
    let name = &args.name;
    if !secret::is_valid_name(name) {
        return Err(CommandError::with_hint(
            format!("invalid secret name {name:?}"),
            secret::NAME_RULE,
        ));
    }
    // Where it goes is settled (and reported) before anyone types a secret.
    let store = if args.keyring {
        None
    } else {
        let store = SecretStore::from_env().map_err(store_error)?;
        // An existing store must be readable (identity present, private, right key) before
        // anyone types a secret into it.
        store.list().map_err(store_error)?;
        Some(store)
    };
    let value = read_value(name)?;
    match store {
        None => {
            keyring::set(name, &value).map_err(keyring_error)?;
            println!(
                "Stored secret {name} in the OS keyring (service {}).",
                keyring::SERVICE
            );
            println!("In a Host manifest: password: {{ keyring: {name} }}");
        }
        Some(store) => {
            let outcome = store.set(name, &value).map_err(store_error)?;
            if let Some(identity) = &outcome.created_identity {
                println!(
                    "Created the identity {} (mode 0600): back it up, nothing else decrypts the \
                     store; on a CI runner put its AGE-SECRET-KEY-1... line in {}.",
                    identity.display(),
                    secret::store::KEY_VARIABLE
                );
            }
            println!(
                "{} secret {name} in {} (encrypted to {}).",
                if outcome.replaced {
                    "Replaced"
                } else {
                    "Stored"
                },
                store.path().display(),
                store.identity()
            );
            println!("In a Host manifest: password: {{ secret: {name} }}");
        }
    }
    Ok(Outcome::Success)
}

/// The value: typed twice without echo on a terminal, else all of standard input.
fn read_value(name: &str) -> Result<Secret, CommandError> {
    let value = if std::io::stdin().is_terminal() {
        let first = prompt(&format!("Value of secret {name}: "))?;
        let second = prompt(&format!("Value of secret {name} again: "))?;
        if first != second {
            return Err(CommandError::with_hint(
                "the two values differ; nothing was stored",
                format!("run `ceso secret set {name}` again"),
            ));
        }
        first
    } else {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_SECRET_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                CommandError::new(format!("reading the secret from standard input: {e}"))
            })?;
        if bytes.len() as u64 > MAX_SECRET_BYTES {
            return Err(CommandError::new(format!(
                "the secret on standard input is longer than {} KiB; nothing was stored",
                MAX_SECRET_BYTES / 1024
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            CommandError::new("the secret on standard input is not UTF-8 text; nothing was stored")
        })?;
        Secret::new(secret::without_trailing_newline(text))
    };
    if value.is_empty() {
        return Err(CommandError::with_hint(
            "the secret is empty; nothing was stored",
            format!(
                "type it when asked, or pipe it in: `printf '%s' \"$VALUE\" | ceso secret set {name}`"
            ),
        ));
    }
    Ok(value)
}

fn prompt(text: &str) -> Result<Secret, CommandError> {
    rpassword::prompt_password(text)
        .map(Secret::new)
        .map_err(|e| CommandError::new(format!("reading the secret from the terminal: {e}")))
}

/// One line of `ceso secret list` (also its JSON).
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    /// `store` or `keyring`.
    #[serde(rename = "where")]
    location: &'static str,
    changed: jiff::Timestamp,
}

/// The JSON document of `ceso secret list`.
#[derive(Debug, Serialize)]
struct ListDocument {
    /// The store file.
    store: String,
    /// Where its key comes from.
    identity: String,
    secrets: Vec<Listed>,
}

fn list(args: &SecretListArgs) -> Result<Outcome, CommandError> {
    let store = SecretStore::from_env().map_err(store_error)?;
    let mut secrets: Vec<Listed> = store
        .list()
        .map_err(store_error)?
        .into_iter()
        .map(|s| Listed {
            name: s.name,
            location: "store",
            changed: s.changed,
        })
        .collect();
    secrets.extend(
        keyring::names()
            .map_err(keyring_error)?
            .into_iter()
            .map(|k| Listed {
                name: k.name,
                location: "keyring",
                changed: k.changed,
            }),
    );
    secrets.sort_by(|a, b| (&a.name, a.location).cmp(&(&b.name, b.location)));
    if args.json {
        print_json(&ListDocument {
            store: store.path().display().to_string(),
            identity: store.identity().to_string(),
            secrets,
        });
        return Ok(Outcome::Success);
    }
    if secrets.is_empty() {
        println!(
            "No secrets yet. `ceso secret set NAME` stores one in {} (`--keyring`: in the OS keyring).",
            store.path().display()
        );
        return Ok(Outcome::Success);
    }
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("WHERE", Align::Left),
        ("CHANGED", Align::Left),
        ("IN A HOST MANIFEST", Align::Left),
    ]);
    for s in &secrets {
        let reference = match s.location {
            "keyring" => format!("password: {{ keyring: {} }}", s.name),
            _ => format!("password: {{ secret: {} }}", s.name),
        };
        table.row(vec![
            Cell::plain(&s.name),
            Cell::plain(s.location),
            Cell::plain(&s.changed.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()),
            Cell::plain(&reference),
        ]);
    }
    print!("{}", table.render(Colour::for_stdout()));
    println!(
        "store: {} (encrypted to {})",
        store.path().display(),
        store.identity()
    );
    Ok(Outcome::Success)
}

fn remove(args: &SecretRmArgs) -> Result<Outcome, CommandError> {
    let name = &args.name;
    if args.keyring {
        keyring::remove(name).map_err(keyring_error)?;
        println!(
            "Removed secret {name} from the OS keyring (service {}).",
            keyring::SERVICE
        );
    } else {
        let store = SecretStore::from_env().map_err(store_error)?;
        store.remove(name).map_err(store_error)?;
        println!("Removed secret {name} from {}.", store.path().display());
    }
    println!("A Host whose password still names it can no longer connect.");
    Ok(Outcome::Success)
}

fn store_error(error: StoreError) -> CommandError {
    CommandError::with_hint(error.to_string(), error.hint())
}

fn keyring_error(error: KeyringError) -> CommandError {
    CommandError::with_hint(error.to_string(), error.hint())
}
