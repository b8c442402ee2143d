//! The HTTP side of Flack (server only): shared application state, the router (pages, server
//! functions, the WebSocket, static files) and `serve` (in `listen`) with graceful shutdown.

pub mod config;
pub mod files;
pub mod guard;
pub mod health;
pub mod listen;
pub mod page_cache;
pub mod per_address;
pub mod ws;

use crate::app::nav::{CHANNEL_PREFIX, DIRECT_PREFIX};
use crate::app::shell;
use crate::chat::hub::Hub;
use axum::extract::FromRef;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use config::Config;
use leptos::prelude::*;
use std::sync::Arc;
use tokio::sync::watch;
use tower_http::services::ServeDir;

pub use listen::{serve, ListenSettings};

/// Everything request handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The one owner of chat state.
    pub hub: Hub,
    /// What Leptos needs to render pages and find the built assets.
    pub leptos_options: LeptosOptions,
    /// The runtime configuration the server started with.
    pub config: Arc<Config>,
    /// Becomes true when the server is shutting down: live connections close with "going
    /// away" so browsers reconnect to the next instance.
    pub stopping: watch::Receiver<bool>,
    stop: Arc<watch::Sender<bool>>,
    /// Open WebSocket connections per client address, to enforce
    /// `limits.connections_per_ip`.
    pub connections_by_ip:
        Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    /// Each client address's allowance of new accounts (`limits.registrations_per_hour`).
    pub registrations: Arc<per_address::PerAddress>,
    /// Each client address's allowance of page loads (`limits.pages_per_minute`).
    pub page_loads: Arc<per_address::PerAddress>,
    /// The last readiness answer, so probes cost the store at most one write a second.
    pub readiness: Arc<health::Readiness>,
    /// Cluster mode: allowances and connection counts that hold across instances.
    pub cluster: Option<crate::chat::cluster::ClusterHandle>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// State for a configuration, with a hub already opened.
    pub fn new(config: Config, hub: Hub) -> AppState {
        let env = match config.server.env {
            config::SiteEnv::Dev => leptos::config::Env::DEV,
            config::SiteEnv::Prod => leptos::config::Env::PROD,
        };
        // cargo-leptos writes the hashed asset names next to the binary it builds.
        let hash_files = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("hash.txt").exists()))
            .unwrap_or(false);
        let leptos_options = LeptosOptions::builder()
            .output_name("flack")
            .hash_files(hash_files)
            .site_root(config.server.site_root.to_string_lossy().into_owned())
            .site_pkg_dir(config.server.site_pkg_dir.clone())
            .site_addr(config.server.addr)
            .env(env)
            .build();
        let (stop, stopping) = watch::channel(false);
        let registrations = Arc::new(per_address::PerAddress::new(
            config.limits.registrations_per_hour,
            std::time::Duration::from_secs(3600),
        ));
        let page_loads = Arc::new(per_address::PerAddress::new(
            config.limits.pages_per_minute,
            std::time::Duration::from_secs(60),
        ));
        AppState {
            hub,
            leptos_options,
            config: Arc::new(config),
            stopping,
            stop: Arc::new(stop),
            connections_by_ip: Arc::default(),
            registrations,
            page_loads,
            readiness: Arc::default(),
            cluster: None,
        }
    }

    /// Each client address's open WebSocket connections here: what this instance reports
    /// to the others in cluster mode.
    pub fn address_counts(&self) -> crate::chat::cluster::AddressCounts {
        let table = self.connections_by_ip.clone();
        Arc::new(move || {
            table
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(ip, count)| (*ip, *count))
                .collect()
        })
    }

    /// Tells every live connection to close with "going away".
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }
}

/// The whole application as a router: pages, server functions, `/ws`, and static files.
pub fn router(state: AppState) -> Router {
    // Rendering spawns tasks on tokio (set once per process; later calls change nothing).
    let _ = any_spawner::Executor::init_tokio();
    let hashed = state.leptos_options.hash_files;
    let context = {
        let state = state.clone();
        move || {
            provide_context(state.clone());
            provide_context(state.hub.clone());
            // Server functions reach the cluster's shared allowances through this.
            if let Some(cluster) = &state.cluster {
                provide_context(cluster.clone());
            }
        }
    };
    let app = {
        let options = state.leptos_options.clone();
        move || shell(options.clone())
    };
    // Channel pages are sent once their history is in them; a private conversation is
    // loaded by the browser (which holds the token), so its page streams.
    let whole_page = leptos_axum::render_app_async_with_context(context.clone(), app.clone());
    let streamed_page = leptos_axum::render_app_to_stream_with_context(context.clone(), app);
    let server_fn = {
        let context = context.clone();
        move |request| leptos_axum::handle_server_fns_with_context(context.clone(), request)
    };
    let pkg_path = format!("/{}", state.config.server.site_pkg_dir);
    let pkg_files = ServeDir::new(
        state
            .config
            .server
            .site_root
            .join(&state.config.server.site_pkg_dir),
    )
    .precompressed_br()
    .precompressed_gzip();
    // Pages, server functions and static files are compressed; sockets and uploads are not.
    // The page addresses are those of `app::nav::Route`; any other is "not found". (Listed
    // here by hand: Leptos's route-list generation switches server resources off for the
    // whole process while it runs, so a page rendering meanwhile could wait forever.)
    let pages = Router::new()
        .route("/", get(whole_page.clone()))
        .route(&format!("{CHANNEL_PREFIX}{{name}}"), get(whole_page))
        .route(&format!("{DIRECT_PREFIX}{{id}}"), get(streamed_page))
        .route("/api/{*function}", post(server_fn))
        // Built assets. A release build (`cargo leptos build --release --precompress`) writes
        // brotli and gzip copies beside each file, served to browsers that accept them.
        .nest_service(&pkg_path, pkg_files)
        // Built files, or the "not found" page (with the channel list in its sidebar).
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .layer(axum::middleware::from_fn_with_state(
            page_cache::PageCache::new(state.hub.clone()),
            page_cache::serve,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            follow_page_channel,
        ))
        .layer(axum::middleware::from_fn(move |request, next| {
            cache_headers(hashed, request, next)
        }))
        // The fastest level: compressing a page per request must stay cheap. Built assets
        // are not compressed again: a release build has best-level copies beside them.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            per_address::limit_pages,
        ));
    Router::new()
        .route(crate::protocol::WS_PATH, get(ws::upgrade))
        .route("/files", post(files::upload))
        .route("/files/{id}", get(files::download))
        .merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            per_address::limit_registrations,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::refuse_cross_site,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::refuse_unknown_host,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        // A request body that pauses for longer fails; its handler answers or gives up.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.config.limits.request_body,
        ))
        // Added after the layers above, so the checks a balancer makes pass none of them.
        .route(health::HEALTHZ_PATH, get(health::healthz))
        .route(health::READYZ_PATH, get(health::readyz))
        .with_state(state)
}

/// Cluster mode: a channel's page first has the channel followed here (see
/// [`crate::chat::cluster::ClusterHandle::follow_room`]), so it shows what the database
/// holds, and the page cache, which follows the hub, stays right.
async fn follow_page_channel(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let (Some(cluster), crate::app::nav::Route::Channel(name)) = (
        &state.cluster,
        crate::app::nav::Route::from_path(request.uri().path()),
    ) {
        if let Some(channel) = state.hub.channel_named(&name) {
            cluster
                .follow_room(&crate::chat::model::Room::Channel(channel))
                .await;
        }
    }
    next.run(request).await
}

/// Built assets under `/pkg/` with content-hashed names never change, so browsers may keep
/// them for a year; without hashing they must be revalidated. Either way their encoding
/// depends on the request's `Accept-Encoding`, which caches must know.
async fn cache_headers(hashed: bool, request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    if is_asset && response.status().is_success() {
        let policy = if hashed {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// The policy for anything that is not a page: load nothing, never be framed.
const STRICT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds the headers every response carries. Pages set their own Content-Security-Policy
/// (with the nonce of their inline scripts, see `app::page_policy`); everything else gets the
/// strict one.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(STRICT_CSP));
    response
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
