//! Tests of the configuration: the layers and their precedence, the errors, and that the
//! committed `Leptos.toml` and README table say what the declaration says.

use super::*;
use std::collections::HashMap;
use std::path::Path;

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Builds a configuration from TOML text, environment variables and a command line.
fn layered(file: &str, env: &[(&str, &str)], line: &str) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Layers::new()
        .toml(file, Path::new("test.toml"))?
        .env(|name| env.get(name).cloned())
        .flags(&load::parse_flags(&args(line))?)?
        .build()
}

/// The file overrides defaults, the environment overrides the file, and flags override the
/// environment; untouched settings keep their default.
#[test]
fn file_then_env_then_flags_override_defaults() {
    let file = "[server]\naddr = \"127.0.0.1:4000\"\n[limits]\nmax_message_chars = 10\n\
                message_burst = 7\nchannels_per_minute = 3\n";
    let env = [
        ("FLACK_LIMITS_MAX_MESSAGE_CHARS", "20"),
        ("FLACK_LIMITS_MESSAGE_BURST", "8"),
    ];
    let config = layered(file, &env, "--limits-max-message-chars=30").unwrap();
    assert_eq!(config.server.addr.port(), 4000, "from the file");
    assert_eq!(config.limits.channels_per_minute, 3, "from the file");
    assert_eq!(
        config.limits.message_burst, 8,
        "the environment beats the file"
    );
    assert_eq!(config.limits.max_message_chars, 30, "flags beat both");
    assert_eq!(
        config.server.site_pkg_dir, "pkg",
        "untouched settings keep their default"
    );
}

/// The command lines the scripts, the benchmark and Playwright use still mean what they did.
#[test]
fn existing_command_lines_still_work() {
    let line = "--server-addr 127.0.0.1:3100 --server-site-root /tmp/site --server-env dev \
                --data-dir /tmp/data --limits-message-burst 200 --data-store memory \
                --limits-dead-after-secs 600";
    let config = layered("", &[], line).unwrap();
    assert_eq!(config.server.addr, "127.0.0.1:3100".parse().unwrap());
    assert_eq!(config.server.site_root, Path::new("/tmp/site"));
    assert_eq!(config.server.env, SiteEnv::Dev);
    assert_eq!(config.data.dir, Path::new("/tmp/data"));
    assert_eq!(config.limits.message_burst, 200);
    assert_eq!(config.data.store, StoreKind::Memory);
    assert_eq!(config.limits.dead_after, Duration::from_secs(600));
}

/// Only settings' own variables are read: others that share the prefix (the scripts export
/// `FLACK_BIN` and `FLACK_SITE_ROOT`) neither fail the start nor change a setting.
#[test]
fn other_flack_variables_are_ignored() {
    let env = [
        ("FLACK_BIN", "/bin/flack"),
        ("FLACK_SITE_ROOT", "/elsewhere"),
    ];
    assert_eq!(layered("", &env, "").unwrap(), Config::default());
}

/// Unknown settings and bad values are reported with the setting and the layer named, not
/// ignored.
#[test]
fn mistakes_are_reported() {
    let error = layered("[server]\nadress = \"x\"\n", &[], "")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("adress") && error.contains("test.toml"),
        "{error}"
    );
    let env = [("FLACK_LIMITS_MAX_FRAME_BYTES", "12")];
    match layered("", &env, "") {
        Err(ConfigError::Invalid { key, from, .. }) => {
            assert_eq!(key, "limits.max_frame_bytes");
            assert_eq!(from, "FLACK_LIMITS_MAX_FRAME_BYTES");
        }
        other => panic!("expected an invalid setting, got {other:?}"),
    }
    assert!(matches!(
        load::parse_flags(&args("--server-addr")),
        Err(ConfigError::MissingValue(_))
    ));
    assert!(matches!(
        layered("", &[], "--server-adress 127.0.0.1:1"),
        Err(ConfigError::Unknown(_))
    ));
    assert!(matches!(
        layered("", &[], "--data-store disk"),
        Err(ConfigError::Invalid { .. })
    ));
}

/// A number too large for its setting is refused, never truncated to fit.
#[test]
fn out_of_range_values_are_refused() {
    for line in [
        "--limits-message-burst 4294967296",
        "--limits-messages-per-second -1",
        "--limits-heartbeat-secs 0",
        "--limits-idle-after-secs -5",
    ] {
        match layered("", &[], line) {
            Err(ConfigError::Invalid { key, from, .. }) => {
                assert_eq!(
                    format!("--{}", key.replace(['.', '_'], "-")),
                    from,
                    "{line}"
                );
            }
            other => panic!("{line}: expected an invalid setting, got {other:?}"),
        }
    }
}

/// The `*_secs` settings take whole seconds as before, and fractions too; the code holds
/// durations.
#[test]
fn seconds_become_durations() {
    let config = layered(
        "[limits]\nheartbeat_secs = 2\ndead_after_secs = 2.5\n",
        &[("FLACK_LIMITS_IDLE_AFTER_SECS", "0.25")],
        "",
    )
    .unwrap();
    assert_eq!(config.limits.heartbeat, Duration::from_secs(2));
    assert_eq!(config.limits.dead_after, Duration::from_millis(2500));
    assert_eq!(config.limits.idle_after, Duration::from_millis(250));
}

/// Trusted proxies are a list of IP addresses; anything else is refused with the entry
/// named, and an empty value trusts none.
#[test]
fn trusted_proxies_are_addresses() {
    let config = layered("", &[], "--server-trusted-proxies 127.0.0.1,::1").unwrap();
    assert_eq!(config.server.trusted_proxies.len(), 2);
    let error = layered("", &[], "--server-trusted-proxies 127.0.0.1,proxy.lan")
        .unwrap_err()
        .to_string();
    assert!(error.contains("proxy.lan"), "{error}");
    let config = layered("[server]\ntrusted_proxies = \"\"\n", &[], "").unwrap();
    assert!(config.server.trusted_proxies.is_empty());
}

/// The committed Leptos.toml is valid and holds every setting at its built-in default, and
/// nothing else (as its header says).
#[test]
fn committed_file_holds_every_default() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/Leptos.toml"));
    let config = Layers::new().file(path).unwrap().build().unwrap();
    assert_eq!(config, Config::default());
    let text = std::fs::read_to_string(path).unwrap();
    let file: toml::Table = text.parse().unwrap();
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    assert_eq!(
        Some(&file),
        defaults.as_table(),
        "Leptos.toml must list every setting with its default value"
    );
}

/// README's configuration table lists every setting once, with its variable, its flag and
/// its default, and no setting that does not exist.
#[test]
fn readme_table_matches_the_declaration() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let header = "| setting | environment | flag | default |";
    let table = readme
        .split_once(header)
        .expect("README has the configuration table")
        .1;
    let mut rows: HashMap<String, Vec<String>> = HashMap::new();
    for line in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().to_owned())
            .collect();
        let key = cells[0].trim_matches('`').to_owned();
        assert!(rows.insert(key.clone(), cells).is_none(), "{key} twice");
    }
    let settings = Config::settings();
    for setting in &settings {
        let cells = rows
            .get(&setting.key)
            .unwrap_or_else(|| panic!("README lacks {}", setting.key));
        assert_eq!(cells[1], format!("`{}`", setting.env));
        assert_eq!(cells[2], format!("`--{}`", setting.flag));
        let default = setting.default_text();
        let shown = if default.is_empty() {
            cells[3].starts_with("none")
        } else {
            cells[3].starts_with(&format!("`{default}`"))
        };
        assert!(
            shown,
            "{}: README says {}, not {default:?}",
            setting.key, cells[3]
        );
    }
    assert_eq!(rows.len(), settings.len(), "README lists unknown settings");
}

/// The hub is handed the configured limits and the data directory's files folder.
#[test]
fn hub_settings_follow_the_config() {
    let config = layered("", &[], "--limits-message-burst 3 --data-dir /srv/flack").unwrap();
    let hub = config.hub_settings();
    assert_eq!(hub.message_burst, 3);
    assert_eq!(
        hub.files_dir.as_deref(),
        Some(Path::new("/srv/flack/files"))
    );
    assert_eq!(hub.max_message_chars, config.limits.max_message_chars);
}
