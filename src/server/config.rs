//! The server's runtime configuration: built-in defaults, overridden by `Leptos.toml` (if
//! present), then by `FLACK_*` environment variables, then by command-line flags.
//!
//! Every setting has one name, used in all three places: `section.key` in the file,
//! `FLACK_SECTION_KEY` in the environment and `--section-key` on the command line (for
//! example `server.addr`, `FLACK_SERVER_ADDR`, `--server-addr 127.0.0.1:8080`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The runtime configuration file read when no other is named.
pub const DEFAULT_CONFIG_FILE: &str = "Leptos.toml";

/// Everything the server can be configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `server.addr`: the address to listen on.
    pub addr: SocketAddr,
    /// `server.site_root`: the folder cargo-leptos builds the site into.
    pub site_root: PathBuf,
    /// `server.site_pkg_dir`: the folder under `site_root` holding the JS, wasm and CSS.
    pub site_pkg_dir: String,
    /// `server.env`: `prod` or `dev`.
    pub env: String,
    /// `data.dir`: where persistent data lives.
    pub data_dir: PathBuf,
    /// `data.store`: `sqlite` (durable, in `data.dir/flack.db`) or `memory` (nothing kept).
    pub store: StoreKind,
    /// `limits.max_message_chars`: longest message body, in characters.
    pub max_message_chars: usize,
    /// `limits.max_frame_bytes`: largest WebSocket frame or message accepted, in bytes.
    pub max_frame_bytes: usize,
    /// `limits.outbox_frames`: how many outgoing frames a connection may have queued before
    /// it counts as behind and is resynced from history.
    pub outbox_frames: usize,
    /// `limits.messages_per_second`: messages a user may post per second, on average.
    pub messages_per_second: u32,
    /// `limits.message_burst`: messages a user may post at once.
    pub message_burst: u32,
    /// `limits.channels_per_minute`: channels a user may create per minute.
    pub channels_per_minute: u32,
    /// `limits.connections_per_ip`: open WebSocket connections allowed from one IP address.
    pub connections_per_ip: usize,
    /// `server.allowed_origins`: extra page origins (besides the server's own address) whose
    /// pages may open WebSockets, comma-separated, e.g. `https://chat.example.com`.
    pub allowed_origins: Vec<String>,
    /// `server.trusted_proxies`: addresses of reverse proxies in front of the server,
    /// comma-separated, e.g. `127.0.0.1`. A connection from one of them is counted against
    /// the client address the proxy reports in `X-Forwarded-For`, not the proxy's own.
    pub trusted_proxies: Vec<IpAddr>,
    /// `limits.max_upload_bytes`: largest file attachment, in bytes.
    pub max_upload_bytes: u64,
    /// `limits.heartbeat_secs`: how often the server pings each connection.
    pub heartbeat_secs: u64,
    /// `limits.dead_after_secs`: a connection that sent nothing (not even a pong) for this
    /// long is considered dead and closed.
    pub dead_after_secs: u64,
    /// `limits.idle_after_secs`: a connection whose client sent no event (pongs do not
    /// count) for this long is closed as idle.
    pub idle_after_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            site_root: PathBuf::from("target/site"),
            site_pkg_dir: "pkg".into(),
            env: "prod".into(),
            data_dir: PathBuf::from("data"),
            store: StoreKind::Sqlite,
            max_message_chars: crate::chat::model::DEFAULT_MAX_MESSAGE_CHARS,
            max_frame_bytes: 64 * 1024,
            outbox_frames: 256,
            messages_per_second: 10,
            message_burst: 20,
            channels_per_minute: 5,
            connections_per_ip: 100,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            max_upload_bytes: 10 * 1024 * 1024,
            heartbeat_secs: 10,
            dead_after_secs: 30,
            idle_after_secs: 3600,
        }
    }
}

/// Where chat data is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// A SQLite file in the data directory: survives restarts.
    Sqlite,
    /// Nothing is written: a restart starts empty.
    Memory,
}

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
    /// A setting has a value of the wrong kind.
    #[error("setting {key} = {value:?} is invalid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    /// A setting that does not exist.
    #[error("unknown setting {0}")]
    Unknown(String),
    /// A command-line flag without its value.
    #[error("flag --{0} needs a value")]
    MissingValue(String),
}

/// Every setting's name, as `section.key`.
pub const KEYS: &[&str] = &[
    "server.addr",
    "server.site_root",
    "server.site_pkg_dir",
    "server.env",
    "data.dir",
    "data.store",
    "limits.max_message_chars",
    "limits.max_frame_bytes",
    "limits.outbox_frames",
    "server.allowed_origins",
    "server.trusted_proxies",
    "limits.messages_per_second",
    "limits.message_burst",
    "limits.channels_per_minute",
    "limits.connections_per_ip",
    "limits.max_upload_bytes",
    "limits.heartbeat_secs",
    "limits.dead_after_secs",
    "limits.idle_after_secs",
];

impl Config {
    /// What the hub enforces, from these settings.
    pub fn hub_settings(&self) -> crate::chat::hub::HubSettings {
        crate::chat::hub::HubSettings {
            max_message_chars: self.max_message_chars,
            history: crate::chat::model::HISTORY_LIMIT,
            files_dir: Some(self.data_dir.join("files")),
            messages_per_second: self.messages_per_second,
            message_burst: self.message_burst,
            channels_per_minute: self.channels_per_minute,
        }
    }

    /// Loads the configuration for this process: defaults, the file (`--config` or
    /// `FLACK_CONFIG`, else `Leptos.toml` if it exists), the environment, then `args` (the
    /// command-line arguments without the program name).
    pub fn load(args: &[String]) -> Result<Config, ConfigError> {
        let flags = parse_flags(args)?;
        let named_file = flags
            .iter()
            .find(|(k, _)| k == "config")
            .map(|(_, v)| PathBuf::from(v))
            .or_else(|| std::env::var_os("FLACK_CONFIG").map(PathBuf::from));
        let mut config = Config::default();
        match named_file {
            Some(path) => config.apply_file(&path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                config.apply_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => {}
        }
        for key in KEYS {
            let var = format!("FLACK_{}", key.replace('.', "_").to_uppercase());
            if let Ok(value) = std::env::var(&var) {
                config.set(key, &value)?;
            }
        }
        for (flag, value) in flags.iter().filter(|(k, _)| k != "config") {
            let key = KEYS
                .iter()
                .find(|k| k.replace(['.', '_'], "-") == *flag)
                .ok_or_else(|| ConfigError::Unknown(format!("--{flag}")))?;
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Applies every setting found in a TOML file.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.apply_toml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Applies every setting found in TOML text.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
            path: PathBuf::new(),
            source: Box::new(source),
        })?;
        for (section, values) in &table {
            let toml::Value::Table(values) = values else {
                return Err(ConfigError::Unknown(section.clone()));
            };
            for (name, value) in values {
                let key = format!("{section}.{name}");
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.set(&key, &text)?;
            }
        }
        Ok(())
    }

    /// Sets one setting from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let count = |min: usize| -> Result<usize, ConfigError> {
            let n: usize = value.trim().parse().map_err(|e| invalid(format!("{e}")))?;
            if n < min {
                return Err(invalid(format!("must be at least {min}")));
            }
            Ok(n)
        };
        match key {
            "server.addr" => {
                self.addr = value.trim().parse().map_err(|e| invalid(format!("{e}")))?
            }
            "server.site_root" => self.site_root = PathBuf::from(value),
            "server.site_pkg_dir" => self.site_pkg_dir = value.to_owned(),
            "server.env" => match value.trim().to_ascii_lowercase().as_str() {
                "prod" | "production" => self.env = "prod".into(),
                "dev" | "development" => self.env = "dev".into(),
                _ => return Err(invalid("expected prod or dev".into())),
            },
            "data.dir" => self.data_dir = PathBuf::from(value),
            "data.store" => match value.trim() {
                "sqlite" => self.store = StoreKind::Sqlite,
                "memory" => self.store = StoreKind::Memory,
                _ => return Err(invalid("expected sqlite or memory".into())),
            },
            "limits.max_message_chars" => self.max_message_chars = count(1)?,
            "limits.max_frame_bytes" => self.max_frame_bytes = count(1024)?,
            "limits.outbox_frames" => self.outbox_frames = count(1)?,
            "server.allowed_origins" => {
                self.allowed_origins = value
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            }
            "server.trusted_proxies" => {
                self.trusted_proxies = value
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| a.parse().map_err(|e| invalid(format!("{a}: {e}"))))
                    .collect::<Result<_, _>>()?
            }
            "limits.messages_per_second" => self.messages_per_second = count(1)? as u32,
            "limits.message_burst" => self.message_burst = count(1)? as u32,
            "limits.channels_per_minute" => self.channels_per_minute = count(1)? as u32,
            "limits.connections_per_ip" => self.connections_per_ip = count(1)?,
            "limits.max_upload_bytes" => self.max_upload_bytes = count(1)? as u64,
            "limits.heartbeat_secs" => self.heartbeat_secs = count(1)? as u64,
            "limits.dead_after_secs" => self.dead_after_secs = count(1)? as u64,
            "limits.idle_after_secs" => self.idle_after_secs = count(1)? as u64,
            other => return Err(ConfigError::Unknown(other.to_owned())),
        }
        Ok(())
    }
}

/// Splits `--name value` and `--name=value` arguments into pairs.
fn parse_flags(args: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The file overrides defaults, and flags override the file.
    #[test]
    fn file_then_flags_override_defaults() {
        let mut config = Config::default();
        config
            .apply_toml("[server]\naddr = \"127.0.0.1:4000\"\n[limits]\nmax_message_chars = 10\n")
            .unwrap();
        assert_eq!(config.addr.port(), 4000);
        assert_eq!(config.max_message_chars, 10);
        for (flag, value) in parse_flags(&["--limits-max-message-chars=20".into()]).unwrap() {
            let key = KEYS
                .iter()
                .find(|k| k.replace(['.', '_'], "-") == flag)
                .unwrap();
            config.set(key, &value).unwrap();
        }
        assert_eq!(config.max_message_chars, 20);
        assert_eq!(
            config.site_pkg_dir, "pkg",
            "untouched settings keep their default"
        );
    }

    /// Unknown settings and bad values are reported, not ignored.
    #[test]
    fn mistakes_are_reported() {
        let mut config = Config::default();
        assert!(matches!(
            config.apply_toml("[server]\nadress = \"x\"\n"),
            Err(ConfigError::Unknown(_))
        ));
        assert!(matches!(
            config.set("limits.max_frame_bytes", "12"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            parse_flags(&["--server-addr".into()]),
            Err(ConfigError::MissingValue(_))
        ));
    }

    /// The committed Leptos.toml is valid, names only real settings, and (as it says) holds
    /// the built-in defaults.
    #[test]
    fn committed_file_is_valid() {
        let mut config = Config::default();
        config
            .apply_file(Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/Leptos.toml"
            )))
            .unwrap();
        assert_eq!(config, Config::default());
    }

    /// Trusted proxies are a list of IP addresses; anything else is refused with the entry
    /// named, and an empty value trusts none.
    #[test]
    fn trusted_proxies_are_addresses() {
        let mut config = Config::default();
        config
            .set("server.trusted_proxies", "127.0.0.1, ::1")
            .unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        let error = config
            .set("server.trusted_proxies", "127.0.0.1,proxy.lan")
            .unwrap_err()
            .to_string();
        assert!(error.contains("proxy.lan"), "{error}");
        config.set("server.trusted_proxies", "").unwrap();
        assert!(config.trusted_proxies.is_empty());
    }
}
