//! The configuration file and `CESO_*` environment variables: defaults for the options most
//! commands share. Precedence, highest first: a command-line flag, its `CESO_*` variable, the
//! configuration file, ceso's built-in default (docs/configuration.md).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The project's configuration file, relative to the working directory.
pub const PROJECT_CONFIG: &str = ".ceso/config.yaml";

/// Names the variable that gives the configuration file (like `--config`).
pub const CONFIG_VARIABLE: &str = "CESO_CONFIG";

/// One setting: its key in the configuration file, its variable, and the command-line
/// arguments (clap ids) it is the default of.
struct Setting {
    key: &'static str,
    variable: &'static str,
    args: &'static [&'static str],
}

/// The settings, in the order docs/configuration.md lists them.
const SETTINGS: &[Setting] = &[
    Setting {
        key: "inventory",
        variable: "CESO_INVENTORY",
        // `path` is the inventory of validate/plan/apply/watch/status, `inventory` the
        // `--inventory` option of the other commands.
        args: &["inventory", "path"],
    },
    Setting {
        key: "state",
        variable: "CESO_STATE",
        args: &["state"],
    },
    Setting {
        key: "output",
        variable: "CESO_OUTPUT",
        args: &["output"],
    },
    Setting {
        key: "parallelism",
        variable: "CESO_PARALLELISM",
        args: &["parallelism"],
    },
];

/// Commands whose positional `path` is an inventory (other commands' `path` is not).
const INVENTORY_PATH_COMMANDS: &[&str] = &["validate", "plan", "apply", "watch", "status"];

/// What a configuration file may say. Every key is optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The inventory directory (relative paths: to the working directory).
    pub inventory: Option<PathBuf>,
    /// The state file.
    pub state: Option<PathBuf>,
    /// `human` or `json`.
    pub output: Option<OutputFormat>,
    /// How many steps an apply runs at the same time (1 to 64).
    pub parallelism: Option<u16>,
    /// Where this configuration was read from (not a key of the file).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// How commands print their results.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Text for people (colour on a terminal).
    #[default]
    Human,
    /// JSON, for programs (docs/cli.md).
    Json,
}

/// Problems with the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}:{line}:{column}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        /// The key, e.g. `parallelism` (`.` for the whole file).
        field: String,
        message: String,
    },
}

impl ConfigError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            ConfigError::Read { .. } => format!(
                "give an existing file with --config or {CONFIG_VARIABLE}, or remove the option"
            ),
            ConfigError::Invalid { .. } => "the keys are inventory, state, output (human|json) and parallelism (1-64); docs/configuration.md".to_owned(),
        }
    }
}

impl Config {
    /// Finds and reads the configuration: `--config FILE` in `args`, else `$CESO_CONFIG`, else
    /// `.ceso/config.yaml` in the working directory, else `$XDG_CONFIG_HOME/ceso/config.yaml`
    /// (`~/.config/ceso/config.yaml`). No file is no configuration; a named file must exist.
    pub fn discover(args: &[OsString]) -> Result<Config, ConfigError> {
        let named =
            config_flag(args).or_else(|| std::env::var_os(CONFIG_VARIABLE).map(PathBuf::from));
        if let Some(path) = named {
            return Config::load(&path);
        }
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))
            .map(|dir| dir.join("ceso/config.yaml"));
        for candidate in std::iter::once(PathBuf::from(PROJECT_CONFIG)).chain(user) {
            if candidate.is_file() {
                return Config::load(&candidate);
            }
        }
        Ok(Config::default())
    }

    /// Reads one configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut config = Config::parse(&text).map_err(|e| e.at(path))?;
        if let Some(parallelism) = config.parallelism
            && !(1..=64).contains(&parallelism)
        {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("parallelism"))
                .map_or(1, |i| i + 1);
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column: 1,
                field: "parallelism".to_owned(),
                message: format!("{parallelism} is not in 1..=64"),
            });
        }
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    fn parse(text: &str) -> Result<Config, ParseError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        parse_located(text)
    }

    /// The value of a setting as a command-line default.
    fn value_of(&self, key: &str) -> Option<OsString> {
        match key {
            "inventory" => self.inventory.clone().map(OsString::from),
            "state" => self.state.clone().map(OsString::from),
            "output" => self.output.map(|o| match o {
                OutputFormat::Human => "human".into(),
                OutputFormat::Json => "json".into(),
            }),
            "parallelism" => self.parallelism.map(|p| p.to_string().into()),
            _ => None,
        }
    }

    /// Makes the settings the defaults of `command`'s arguments (and its subcommands'), each
    /// also read from its `CESO_*` variable.
    pub fn apply_to(&self, command: clap::Command) -> clap::Command {
        let mut command = self.apply_to_arguments(command);
        let names: Vec<String> = command
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        for name in names {
            command = command.mut_subcommand(&name, |sub| self.apply_to(sub));
        }
        command
    }

    fn apply_to_arguments(&self, mut command: clap::Command) -> clap::Command {
        let inventory_path = INVENTORY_PATH_COMMANDS.contains(&command.get_name());
        for setting in SETTINGS {
            for &id in setting.args {
                if id == "path" && !inventory_path {
                    continue;
                }
                if !command.get_arguments().any(|a| a.get_id() == id) {
                    continue;
                }
                let value = self.value_of(setting.key);
                command = command.mut_arg(id, |arg| {
                    let arg = arg.env(setting.variable);
                    match &value {
                        Some(value) => arg.default_value(value.clone()).required(false),
                        None => arg,
                    }
                });
            }
        }
        command
    }
}

/// A parse error before the file's path is known.
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) field: String,
    pub(crate) message: String,
}

/// Parses a small YAML settings file (this one, or `/etc/ceso/profiles.yaml`), placing an error
/// at its line, column and field path.
pub(crate) fn parse_located<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner.location().map_or((1, 1), |l| (l.line(), l.column()));
        ParseError {
            line,
            column,
            field,
            message: inner.to_string(),
        }
    })
}

impl ParseError {
    fn at(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line: self.line,
            column: self.column,
            field: self.field,
            message: self.message,
        }
    }
}

/// The value of `--config FILE` / `--config=FILE` among the arguments, if given.
fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            return None;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(value));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let config = Config::parse(
            "inventory: inventory\nstate: /var/lib/ceso/state.redb\noutput: json\nparallelism: 8\n",
        )
        .unwrap_or_else(|_| panic!("parses"));
        assert_eq!(config.inventory, Some(PathBuf::from("inventory")));
        assert_eq!(config.output, Some(OutputFormat::Json));
        assert_eq!(config.parallelism, Some(8));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let Err(error) = Config::parse("state: s.redb\nparalelism: 4\n") else {
            panic!("must fail");
        };
        assert_eq!(error.line, 2);
        assert!(error.message.contains("paralelism"), "{}", error.message);
    }

    #[test]
    fn a_wrong_value_names_its_field() {
        let Err(error) = Config::parse("output: yaml\n") else {
            panic!("must fail");
        };
        assert_eq!(error.field, "output");
        assert_eq!(error.line, 1);
    }

    #[test]
    fn the_config_flag_is_found_in_both_spellings() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_flag(&args(&["ceso", "plan", "--config", "c.yaml"])),
            Some(PathBuf::from("c.yaml"))
        );
        assert_eq!(
            config_flag(&args(&["ceso", "--config=c.yaml", "plan"])),
            Some(PathBuf::from("c.yaml"))
        );
        assert_eq!(
            config_flag(&args(&["ceso", "plan", "--", "--config"])),
            None
        );
    }
}
