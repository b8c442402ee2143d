//! The server's runtime configuration, declared once: the serde-derived [`Config`] below names
//! every setting, its type and (in its section's `Default`) its default value.
//!
//! Everything else follows from that declaration ([`load`] does the layering): a setting
//! `key` of section `section` is `section.key` in the file (`Leptos.toml` unless `--config` or
//! `FLACK_CONFIG` names another; the file is optional), `FLACK_SECTION_KEY` in the
//! environment and `--section-key VALUE` on the command line, for example `server.addr`,
//! `FLACK_SERVER_ADDR`, `--server-addr 127.0.0.1:8080`. Flags win over the environment,
//! which wins over the file, which wins over the defaults. A test keeps `Leptos.toml` and
//! the README's table in step with the declaration.
//!
//! Durations are written as seconds (`limits.heartbeat_secs = 10`, fractions allowed) and
//! held as [`Duration`]s. A value out of its type's range, or under a setting's minimum, is an
//! error naming the setting and where the value came from; nothing is truncated.

pub mod load;
mod serde_forms;
#[cfg(test)]
mod tests;

pub use load::{ConfigError, Layers, Setting};

use crate::chat::hub::HubSettings;
use crate::chat::store::Retention;
use axum::http::uri::Authority;
use serde::{Deserialize, Serialize};
use serde_forms::{at_least, comma_list, seconds};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The runtime configuration file read when no other is named.
pub const DEFAULT_CONFIG_FILE: &str = "Leptos.toml";

/// Everything the server can be configured with, by section. A missing section or key keeps
/// its default; an unknown one is an error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the server listens and what it serves.
    pub server: ServerSection,
    /// Where chat data is kept.
    pub data: DataSection,
    /// What one user, connection or request may use.
    pub limits: LimitsSection,
    /// Several instances on one PostgreSQL database and one Redis.
    pub cluster: ClusterSection,
}

/// `[cluster]`: cluster mode, several instances sharing the PostgreSQL database at
/// `data.postgres_url` (with `data.store = "postgres"`) and one Redis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// The Redis that carries changes between instances, as a URL
    /// (`redis://host:port/`). Empty: one instance, no cluster.
    pub redis_url: String,
    /// What every Redis channel name of this cluster starts with, so clusters can share a
    /// Redis.
    pub prefix: String,
    /// `check_secs`: how often every room is compared with the database (repairs what Redis
    /// lost, at the latest this long after).
    #[serde(rename = "check_secs", with = "seconds")]
    pub check_every: Duration,
    /// `reorder_secs`: how long a room waits for a missing message before reading it from
    /// the database.
    #[serde(rename = "reorder_secs", with = "seconds")]
    pub reorder_wait: Duration,
    /// Holds each change this instance publishes back this many milliseconds. A testing
    /// aid (other instances then see changes out of order); keep it at 0.
    pub publish_delay_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            redis_url: String::new(),
            prefix: "flack".into(),
            check_every: Duration::from_secs(1),
            reorder_wait: Duration::from_millis(100),
            publish_delay_ms: 0,
        }
    }
}

impl Config {
    /// True when this instance is one of a cluster's.
    pub fn clustered(&self) -> bool {
        !self.cluster.redis_url.is_empty()
    }

    /// What cluster mode needs, from these settings.
    pub fn cluster_settings(&self) -> crate::chat::cluster::ClusterSettings {
        let hub = self.hub_settings();
        crate::chat::cluster::ClusterSettings {
            postgres_url: self.data.postgres_url.clone(),
            redis_url: self.cluster.redis_url.clone(),
            prefix: self.cluster.prefix.clone(),
            retain: hub.history,
            retention: self.data.retain_messages,
            check_every: self.cluster.check_every,
            reorder_wait: self.cluster.reorder_wait,
            publish_delay: Duration::from_millis(self.cluster.publish_delay_ms),
            max_users: hub.max_users,
            max_channels: hub.max_channels,
            hub,
        }
    }
}

/// `[server]`: where the server listens and what it serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// The folder cargo-leptos builds the site into.
    pub site_root: PathBuf,
    /// The folder under `site_root` holding the JS, wasm and CSS.
    pub site_pkg_dir: String,
    /// `prod` or `dev` (what Leptos is told; `production` and `development` are accepted).
    pub env: SiteEnv,
    /// Extra page origins (besides the server's own address) whose pages may open
    /// WebSockets, comma-separated in the file, e.g. `https://chat.example.com`.
    #[serde(with = "comma_list")]
    pub allowed_origins: Vec<String>,
    /// Addresses of reverse proxies in front of the server, comma-separated in the file. A
    /// connection from one of them is counted against the client address the proxy reports
    /// in `X-Forwarded-For`, not the proxy's own.
    #[serde(with = "comma_list")]
    pub trusted_proxies: Vec<IpAddr>,
    /// The names (with or without a port) clients may reach the server by, comma-separated
    /// in the file, e.g. `chat.example.com`; a request naming another `Host` is refused
    /// (against DNS rebinding). A name without a port allows any port. Empty: any host.
    #[serde(with = "comma_list")]
    pub allowed_hosts: Vec<Authority>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            site_root: PathBuf::from("target/site"),
            site_pkg_dir: "pkg".into(),
            env: SiteEnv::Prod,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// `[data]`: where chat data is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Where persistent data lives (the database, and uploaded files in `files/`).
    pub dir: PathBuf,
    /// `sqlite` (durable, in `dir/flack.db`), `postgres` (durable, in the database at
    /// `postgres_url`, for a single instance) or `memory` (nothing kept).
    pub store: StoreKind,
    /// The PostgreSQL database `store = "postgres"` keeps chat data in, as a libpq URL
    /// (`postgres://user:password@host:port/database`); a missing database is created.
    pub postgres_url: String,
    /// How many of each room's messages a durable store keeps: `all`, or a number of the
    /// newest (at least 100, the messages each room keeps in memory; 100 keeps nothing
    /// older). Older ones are read back when a reader scrolls up.
    pub retain_messages: Retention,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            dir: PathBuf::from("data"),
            store: StoreKind::Sqlite,
            postgres_url: "postgres://postgres@127.0.0.1:5432/flack".into(),
            retain_messages: Retention::All,
        }
    }
}

/// `[limits]`: what one user, connection or request may use. Counts must be at least 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Longest message body, in characters.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub max_message_chars: usize,
    /// Largest WebSocket frame or message accepted, in bytes.
    #[serde(deserialize_with = "at_least::<1024, _, _>")]
    pub max_frame_bytes: usize,
    /// Outgoing frames a connection may have queued before it counts as behind and is
    /// resynced from history.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub outbox_frames: usize,
    /// Outgoing bytes a connection may have queued before it counts as behind (a frame
    /// larger than this still goes, alone).
    #[serde(deserialize_with = "at_least::<65536, _, _>")]
    pub outbox_bytes: usize,
    /// Messages a user may post per second, on average.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub messages_per_second: u32,
    /// Messages a user may post at once.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub message_burst: u32,
    /// Channels a user may create per minute.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub channels_per_minute: u32,
    /// Channels a user may join per second on average (a connection that joins, leaves,
    /// authenticates or renames faster is read more slowly; a user, across connections, is
    /// refused).
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub joins_per_second: u32,
    /// Channels a user (or one connection) may join at once.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub join_burst: u32,
    /// Times a user may change their display name per minute.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub renames_per_minute: u32,
    /// Private conversations a user may start per minute.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub directs_per_minute: u32,
    /// Channels the server holds at most.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub max_channels: usize,
    /// Users the server registers at most.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub max_users: usize,
    /// Free bytes the data directory's disk must keep: an upload is refused when the disk
    /// has less than this plus `max_upload_bytes` free.
    pub min_free_disk_bytes: u64,
    /// Accounts one client address may register per hour (also the burst).
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub registrations_per_hour: u32,
    /// Pages one client address may load per minute (also the burst); built assets do not
    /// count.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub pages_per_minute: u32,
    /// Uploads a user may have waiting for the message that carries them.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub unsent_files: usize,
    /// Bytes a user's waiting uploads may hold together.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub unsent_file_bytes: u64,
    /// Open WebSocket connections allowed from one IP address.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub connections_per_ip: usize,
    /// Largest file attachment, in bytes.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub max_upload_bytes: u64,
    /// `heartbeat_secs`: how often the server pings each connection.
    #[serde(rename = "heartbeat_secs", with = "seconds")]
    pub heartbeat: Duration,
    /// `dead_after_secs`: a connection that sent nothing (not even a pong) for this long is
    /// considered dead and closed.
    #[serde(rename = "dead_after_secs", with = "seconds")]
    pub dead_after: Duration,
    /// `idle_after_secs`: a connection whose client sent no event (pongs do not count) for
    /// this long is closed as idle.
    #[serde(rename = "idle_after_secs", with = "seconds")]
    pub idle_after: Duration,
    /// `behind_after_secs`: how far behind a connection's reader may fall (the age of the
    /// oldest byte written to it and not yet taken, outbox and socket) before the server stops
    /// sending it every frame and sends it what it missed once it has caught up.
    #[serde(rename = "behind_after_secs", with = "seconds")]
    pub behind_after: Duration,
    /// `request_header_secs`: how long a client may take to send a request's headers,
    /// counted from when its connection opens or its previous response is sent, so it is also
    /// how long an idle keep-alive connection is kept. Then the connection is closed.
    #[serde(rename = "request_header_secs", with = "seconds")]
    pub request_header: Duration,
    /// `request_body_secs`: how long a request's body may pause between two pieces before the
    /// request fails (an upload answers 408).
    #[serde(rename = "request_body_secs", with = "seconds")]
    pub request_body: Duration,
    /// Open TCP connections in all (pages, files and WebSockets). Lowered at start to what
    /// the open-file limit leaves room for. Connections beyond it are closed at once.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub max_connections: usize,
    /// Open TCP connections from one address (an IPv6 client per /64). Connections from
    /// `server.trusted_proxies` count only against `max_connections`.
    #[serde(deserialize_with = "at_least::<1, _, _>")]
    pub max_connections_per_ip: usize,
}

impl Default for LimitsSection {
    /// The hub's own defaults for what it enforces, so each number is written once.
    fn default() -> Self {
        let hub = HubSettings::default();
        LimitsSection {
            max_message_chars: hub.max_message_chars,
            max_frame_bytes: 64 * 1024,
            outbox_frames: 256,
            outbox_bytes: crate::chat::hub::DEFAULT_OUTBOX_BYTES,
            messages_per_second: hub.messages_per_second,
            message_burst: hub.message_burst,
            channels_per_minute: hub.channels_per_minute,
            joins_per_second: hub.joins_per_second,
            join_burst: hub.join_burst,
            renames_per_minute: hub.renames_per_minute,
            directs_per_minute: hub.directs_per_minute,
            max_channels: hub.max_channels,
            max_users: hub.max_users,
            registrations_per_hour: 60,
            pages_per_minute: 120,
            min_free_disk_bytes: 1 << 30,
            unsent_files: hub.unsent_files,
            unsent_file_bytes: hub.unsent_file_bytes,
            connections_per_ip: 100,
            max_upload_bytes: hub.max_upload_bytes,
            // A connection lost without a close (a dropped network) leaves its rooms'
            // Online lists within dead_after + heartbeat: 15 s.
            heartbeat: Duration::from_secs(5),
            dead_after: Duration::from_secs(10),
            idle_after: Duration::from_secs(3600),
            behind_after: Duration::from_secs(3),
            request_header: Duration::from_secs(10),
            request_body: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 256,
        }
    }
}

/// What Leptos is told about the site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SiteEnv {
    /// Built for release: hashed, compressed assets.
    Prod,
    /// Built for development.
    Dev,
}

impl TryFrom<String> for SiteEnv {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "prod" | "production" => Ok(SiteEnv::Prod),
            "dev" | "development" => Ok(SiteEnv::Dev),
            _ => Err(format!("{text:?}: expected prod or dev")),
        }
    }
}

impl From<SiteEnv> for String {
    fn from(env: SiteEnv) -> String {
        match env {
            SiteEnv::Prod => "prod".into(),
            SiteEnv::Dev => "dev".into(),
        }
    }
}

/// Where chat data is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A SQLite file in the data directory: survives restarts.
    Sqlite,
    /// A PostgreSQL database (`data.postgres_url`), for one instance: survives restarts.
    Postgres,
    /// Nothing is written: a restart starts empty.
    Memory,
}

impl Config {
    /// Loads the configuration for this process: defaults, the file (`--config` or
    /// `FLACK_CONFIG`, else `Leptos.toml` if it exists), the environment, then `args` (the
    /// command-line arguments without the program name).
    pub fn load(args: &[String]) -> Result<Config, ConfigError> {
        let flags = load::parse_flags(args)?;
        let named = flags
            .iter()
            .find(|(name, _)| name == load::CONFIG_FLAG)
            .map(|(_, path)| PathBuf::from(path))
            .or_else(|| std::env::var_os(load::CONFIG_VAR).map(PathBuf::from));
        let layers = match named {
            Some(path) => Layers::new().file(&path)?,
            None if std::path::Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Layers::new().file(std::path::Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Layers::new(),
        };
        layers
            .env(|name| std::env::var(name).ok())
            .flags(&flags)?
            .build()
    }

    /// What the hub enforces, from these settings.
    pub fn hub_settings(&self) -> HubSettings {
        HubSettings {
            max_message_chars: self.limits.max_message_chars,
            files_dir: Some(self.data.dir.join("files")),
            messages_per_second: self.limits.messages_per_second,
            message_burst: self.limits.message_burst,
            channels_per_minute: self.limits.channels_per_minute,
            joins_per_second: self.limits.joins_per_second,
            join_burst: self.limits.join_burst,
            renames_per_minute: self.limits.renames_per_minute,
            directs_per_minute: self.limits.directs_per_minute,
            max_channels: self.limits.max_channels,
            max_users: self.limits.max_users,
            unsent_files: self.limits.unsent_files,
            unsent_file_bytes: self.limits.unsent_file_bytes,
            max_upload_bytes: self.limits.max_upload_bytes,
            ..HubSettings::default()
        }
    }
}
