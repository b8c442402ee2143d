//! The direction of dependencies, checked on the source: `server` → `app` / `api` /
//! `protocol` → `chat`. A module that names one it must not depend on fails here, before it
//! becomes a cycle.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, or `dir` itself if it is a file.
fn sources(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The places under `src/{part}` that name any of `forbidden` (outside comments).
fn uses(part: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(part);
    let mut found = Vec::new();
    for file in sources(&root) {
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for name in forbidden {
                if code.contains(name) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

/// The domain (`chat/`) depends on no transport, UI or framework: it emits domain events
/// and is handed an encoder.
#[test]
fn the_domain_imports_no_transport_and_no_ui() {
    let found = uses(
        "chat",
        &[
            "crate::protocol",
            "crate::server",
            "crate::api",
            "crate::app",
            "leptos",
            "axum",
        ],
    );
    assert!(found.is_empty(), "chat/ depends on:\n{}", found.join("\n"));
}

/// The wire protocol depends only on the domain.
#[test]
fn the_protocol_depends_only_on_the_domain() {
    let found = uses("protocol", &["crate::server", "crate::api", "crate::app"]);
    assert!(
        found.is_empty(),
        "protocol/ depends on:\n{}",
        found.join("\n")
    );
}

/// The components and the server functions never reach into the server.
#[test]
fn the_app_does_not_depend_on_the_server() {
    let mut found = uses("app", &["crate::server"]);
    found.extend(uses("api.rs", &["crate::server", "crate::app"]));
    assert!(
        found.is_empty(),
        "app/ or api.rs depends on:\n{}",
        found.join("\n")
    );
}
