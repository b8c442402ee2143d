//! The file, environment and flag layers, all derived from [`Config`]'s declaration: the
//! defaults serialized to TOML list every setting and its kind, the layers are merged into
//! one TOML table by `section.key`, and serde turns that table into a [`Config`] (filling in
//! what no layer set, refusing what the declaration does not know).
//!
//! A layering crate was weighed and not used: `figment` splits `FLACK_SERVER_SITE_ROOT` at
//! every underscore and would read unrelated `FLACK_*` variables (the scripts set
//! `FLACK_BIN`), so it would need this key list anyway; `clap` cannot prefix a flattened
//! section's flags. Over `toml`, which the file needs regardless, the layering is this file.

use super::Config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The flag naming another configuration file.
pub const CONFIG_FLAG: &str = "config";
/// The environment variable naming another configuration file.
pub const CONFIG_VAR: &str = "FLACK_CONFIG";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    /// A setting is unknown or its value is not one it takes.
    #[error("setting {key} (from {from}) is invalid: {reason}")]
    Invalid {
        /// `section.key`, or as far as the error could be placed.
        key: String,
        /// Which layer gave the value: the file's path, a variable or a flag.
        from: String,
        reason: String,
    },
    /// A command-line argument that is not a setting's flag.
    #[error("unknown flag {0}")]
    Unknown(String),
    /// A command-line flag without its value.
    #[error("flag --{0} needs a value")]
    MissingValue(String),
}

/// One setting, as each layer names it.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// `section.key`, as in the file.
    pub key: String,
    /// `FLACK_SECTION_KEY`.
    pub env: String,
    /// `section-key`, given as `--section-key VALUE` or `--section-key=VALUE`.
    pub flag: String,
    /// The built-in default, as the file writes it.
    pub default: toml::Value,
}

impl Setting {
    /// The default as text, as README's table shows it (strings without quotes).
    pub fn default_text(&self) -> String {
        match &self.default {
            toml::Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

impl Config {
    /// Every setting, in declaration order.
    pub fn settings() -> Vec<Setting> {
        let defaults = toml::Value::try_from(Config::default())
            .expect("the defaults serialize to TOML (the config tests check it)");
        let mut settings = Vec::new();
        for (section, fields) in defaults.as_table().into_iter().flatten() {
            for (name, default) in fields.as_table().into_iter().flatten() {
                settings.push(Setting {
                    key: format!("{section}.{name}"),
                    env: format!("FLACK_{section}_{name}").to_ascii_uppercase(),
                    flag: format!("{section}-{name}").replace('_', "-"),
                    default: default.clone(),
                });
            }
        }
        settings
    }
}

/// The layers given so far, merged: later ones win.
#[derive(Debug, Default)]
pub struct Layers {
    /// `section -> key -> value`, as in the file.
    table: toml::Table,
    /// Which layer last set each `section.key`, for error messages.
    from: HashMap<String, String>,
    /// The file read, if any: unknown keys come from it.
    file: Option<PathBuf>,
}

impl Layers {
    /// No layer yet: every setting has its default.
    pub fn new() -> Layers {
        Layers::default()
    }

    /// Adds a TOML file.
    pub fn file(self, path: &Path) -> Result<Layers, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.toml(&text, path)
    }

    /// Adds TOML text, read from `path`.
    pub fn toml(mut self, text: &str, path: &Path) -> Result<Layers, ConfigError> {
        let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let from = path.display().to_string();
        for (section, fields) in table {
            match fields {
                toml::Value::Table(fields) => {
                    for (name, value) in fields {
                        self.set(&format!("{section}.{name}"), value, &from);
                    }
                }
                // Not a section: left for serde to refuse.
                other => {
                    self.table.insert(section, other);
                }
            }
        }
        self.file = Some(path.to_owned());
        Ok(self)
    }

    /// Adds every setting's `FLACK_SECTION_KEY` variable that `lookup` finds. Other
    /// variables, even `FLACK_*` ones, are not settings and are left alone.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Layers {
        for setting in Config::settings() {
            if let Some(text) = lookup(&setting.env) {
                self.set(&setting.key, typed(&text, &setting.default), &setting.env);
            }
        }
        self
    }

    /// Adds parsed command-line flags (see [`parse_flags`]); `--config` is skipped, as it
    /// names the file rather than a setting.
    pub fn flags(mut self, flags: &[(String, String)]) -> Result<Layers, ConfigError> {
        let settings = Config::settings();
        for (flag, text) in flags.iter().filter(|(flag, _)| flag != CONFIG_FLAG) {
            let setting = settings
                .iter()
                .find(|s| s.flag == *flag)
                .ok_or_else(|| ConfigError::Unknown(format!("--{flag}")))?;
            self.set(
                &setting.key,
                typed(text, &setting.default),
                &format!("--{flag}"),
            );
        }
        Ok(self)
    }

    /// The configuration the layers describe.
    pub fn build(self) -> Result<Config, ConfigError> {
        serde_path_to_error::deserialize(toml::Value::Table(self.table)).map_err(|error| {
            let key = error.path().to_string();
            let from = self
                .from
                .get(&key)
                .cloned()
                .or_else(|| self.file.map(|path| path.display().to_string()))
                .unwrap_or_else(|| "the defaults".into());
            ConfigError::Invalid {
                key,
                from,
                // The message alone: this error already says which setting it is.
                reason: error.inner().message().to_owned(),
            }
        })
    }

    fn set(&mut self, key: &str, value: toml::Value, from: &str) {
        let (section, name) = key.split_once('.').unwrap_or((key, ""));
        let fields = self
            .table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(fields) = fields {
            fields.insert(name.to_owned(), value);
        }
        self.from.insert(key.to_owned(), from.to_owned());
    }
}

/// Text from the environment or a flag as the value the file would hold: a number where
/// the default is one (`"200"` is `200`), else the text itself, which serde then takes or
/// refuses like any other value.
fn typed(text: &str, default: &toml::Value) -> toml::Value {
    let number = matches!(default, toml::Value::Integer(_) | toml::Value::Float(_));
    if number {
        if let Ok(n) = text.trim().parse::<i64>() {
            return toml::Value::Integer(n);
        }
        if let Ok(x) = text.trim().parse::<f64>() {
            return toml::Value::Float(x);
        }
    }
    toml::Value::String(text.to_owned())
}

/// Splits `--name value` and `--name=value` arguments into `(name, value)` pairs.
pub fn parse_flags(args: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(ConfigError::Unknown(arg.clone()));
        };
        match flag.split_once('=') {
            Some((name, value)) => out.push((name.to_owned(), value.to_owned())),
            None => {
                let value = iter
                    .next()
                    .ok_or_else(|| ConfigError::MissingValue(flag.to_owned()))?;
                out.push((flag.to_owned(), value.clone()));
            }
        }
    }
    Ok(out)
}
