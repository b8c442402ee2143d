//! Built assets under `/pkg/` (the WebAssembly, its JavaScript and the stylesheet),
//! compressed once at the best brotli and gzip levels and then served from memory.
//!
//! Compressing per request must use the fastest level to stay cheap, and at that level the
//! WebAssembly is about half as large again as at the best. So a blocking thread makes the
//! best-level copies (for every asset when the server starts, or at a file's first request);
//! until they are ready, requests are compressed per request as before. Copies are keyed by
//! the file's name, length and modification time, so a rebuilt file is compressed again
//! rather than served stale.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The best-level copies of the files in one folder.
#[derive(Clone)]
pub struct Precompressed {
    dir: PathBuf,
    files: Arc<Mutex<HashMap<String, Entry>>>,
}

/// Which contents of a file a copy was made from.
#[derive(Clone, Debug, PartialEq)]
struct Version {
    len: u64,
    modified: Option<SystemTime>,
}

enum Entry {
    /// A blocking thread is making the copies.
    Compressing(Version),
    Ready {
        version: Version,
        brotli: Bytes,
        gzip: Bytes,
    },
}

/// The compressed encodings served from memory.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        })
    }
}

impl Precompressed {
    /// Copies of the files in `dir` (the site's `pkg` folder), made on first request.
    pub fn new(dir: PathBuf) -> Precompressed {
        Precompressed {
            dir,
            files: Arc::default(),
        }
    }

    /// Starts compressing every asset in the folder now, so the first visitors after a start
    /// do not share the CPU with it. (The server does this; test servers do not.)
    pub async fn warm(&self) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if content_type(&name).is_some() && meta.is_file() {
                let version = Version {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                };
                self.get(&name, &version, Encoding::Brotli);
            }
        }
    }

    /// The copy of `name` in `encoding` if it is ready and made from `version`; otherwise
    /// starts making the copies (unless that is under way) and returns `None`.
    fn get(&self, name: &str, version: &Version, encoding: Encoding) -> Option<Bytes> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        match files.get(name) {
            Some(Entry::Ready {
                version: made_from,
                brotli,
                gzip,
            }) if made_from == version => {
                return Some(match encoding {
                    Encoding::Brotli => brotli.clone(),
                    Encoding::Gzip => gzip.clone(),
                })
            }
            Some(Entry::Compressing(made_from)) if made_from == version => return None,
            _ => {}
        }
        files.insert(name.to_owned(), Entry::Compressing(version.clone()));
        let (this, name, version) = (self.clone(), name.to_owned(), version.clone());
        tokio::task::spawn_blocking(move || this.compress(name, version));
        None
    }

    /// Makes both copies of a file and keeps them, unless the file changed meanwhile.
    fn compress(&self, name: String, version: Version) {
        let made = best_copies(&self.dir.join(&name));
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(files.get(&name), Some(Entry::Compressing(v)) if *v == version) {
            return;
        }
        match made {
            Ok((brotli, gzip)) => {
                tracing::debug!(%name, brotli = brotli.len(), gzip = gzip.len(), "asset compressed");
                files.insert(
                    name,
                    Entry::Ready {
                        version,
                        brotli,
                        gzip,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(%name, error = %e, "cannot compress an asset");
                files.remove(&name);
            }
        }
    }
}

/// Brotli at quality 11 and gzip at level 9.
fn best_copies(path: &Path) -> std::io::Result<(Bytes, Bytes)> {
    let raw = std::fs::read(path)?;
    let mut brotli = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut raw.as_slice(), &mut brotli, &params)?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&raw)?;
    Ok((brotli.into(), gzip.finish()?.into()))
}

/// Middleware: answers `GET /pkg/<file>` from memory when the copy in an encoding the
/// client accepts is ready; passes everything else on.
pub async fn serve(State(assets): State<Precompressed>, request: Request, next: Next) -> Response {
    let Some(name) = request.uri().path().strip_prefix("/pkg/") else {
        return next.run(request).await;
    };
    let wanted = (request.method() == Method::GET
        && !request.headers().contains_key(header::RANGE))
    .then(|| Some((content_type(name)?, accepted(&request)?)))
    .flatten();
    let Some((content_type, encoding)) = wanted else {
        return next.run(request).await;
    };
    let Ok(meta) = tokio::fs::metadata(assets.dir.join(name)).await else {
        return next.run(request).await;
    };
    let version = Version {
        len: meta.len(),
        modified: meta.modified().ok(),
    };
    let Some(body) = assets.get(name, &version, encoding) else {
        return next.run(request).await;
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_ENCODING, encoding.header());
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// The type of a built asset, by its extension; `None` for anything else, and for names
/// that are not a plain file name (so nothing outside the folder is ever read).
fn content_type(name: &str) -> Option<&'static str> {
    let plain = !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plain {
        return None;
    }
    match name.rsplit_once('.')?.1 {
        "wasm" => Some("application/wasm"),
        "js" => Some("text/javascript; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        _ => None,
    }
}

/// The best encoding the request accepts: brotli, else gzip, else none. A coding with
/// `q=0` is refused.
fn accepted(request: &Request) -> Option<Encoding> {
    let value = request
        .headers()
        .get(header::ACCEPT_ENCODING)?
        .to_str()
        .ok()?;
    let mut gzip = false;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        if refused {
            continue;
        }
        if coding.eq_ignore_ascii_case("br") {
            return Some(Encoding::Brotli);
        }
        gzip |= coding.eq_ignore_ascii_case("gzip");
    }
    gzip.then_some(Encoding::Gzip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(accept_encoding: &str) -> Option<Encoding> {
        let request = Request::builder()
            .header(header::ACCEPT_ENCODING, accept_encoding)
            .body(Body::empty())
            .unwrap();
        accepted(&request)
    }

    /// Brotli is preferred, gzip taken when it is all the client accepts, and a coding
    /// refused with `q=0` is never chosen.
    #[test]
    fn picks_the_encoding_the_client_accepts() {
        assert_eq!(asking("gzip, deflate, br, zstd"), Some(Encoding::Brotli));
        assert_eq!(asking("gzip"), Some(Encoding::Gzip));
        assert_eq!(asking("br;q=0, gzip;q=0.5"), Some(Encoding::Gzip));
        assert_eq!(asking("br;q=0,gzip;q=0"), None);
        assert_eq!(asking("identity"), None);
        assert_eq!(asking("*"), None);
    }

    /// Only built assets with plain names are served from memory.
    #[test]
    fn serves_only_plain_asset_names() {
        assert_eq!(content_type("flack.abc_D-1.wasm"), Some("application/wasm"));
        assert_eq!(
            content_type("flack.js"),
            Some("text/javascript; charset=utf-8")
        );
        for name in [
            "../flack.wasm",
            "a/b.css",
            ".hidden.js",
            "notes.txt",
            "flack",
            "",
        ] {
            assert_eq!(content_type(name), None, "{name}");
        }
    }
}
