//! The Flack server binary: reads the configuration, starts tracing, binds, serves.

use flack::chat::cluster::Cluster;
use flack::chat::hub::{Hub, HubSettings, MemoryStore, Store};
use flack::chat::postgres::PostgresStore;
use flack::chat::sqlite::SqliteStore;
use flack::server::config::{Config, StoreKind};
use flack::server::{self, AppState};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Rendering pages allocates and frees many small strings from several threads; mimalloc
/// handles that pattern with far less contention than the system allocator (see
/// BENCHMARKS.md for the before and after).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,flack=info")),
        )
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            std::process::exit(1);
        }
    };
    let limits = config.hub_settings();
    let encode = flack::protocol::encode_hub_event;
    let (hub, store, cluster) = if config.clustered() {
        let (hub, store, cluster) = open_cluster(&config, limits).await;
        (hub, store, Some(cluster))
    } else {
        let store = open_store(&config, &limits);
        (Hub::open(store.clone(), limits, encode)?, store, None)
    };
    server::files::spawn_unsent_sweeper(hub.clone());
    let listener = server::listen::bind(config.server.addr)?;
    let listen = server::ListenSettings::from_config(&config).fit_open_file_limit();
    tracing::info!(addr = %listener.local_addr()?, site_root = %config.server.site_root.display(), "Flack is listening");
    let mut state = AppState::new(config, hub.clone());
    if let Some(cluster) = cluster {
        state.cluster = Some(cluster.start(hub.clone(), state.address_counts()));
    }
    let stopping = state.clone();
    let cluster = state.cluster.clone();
    let must_restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let restart = must_restart.clone();
    let shutdown = async move {
        let epoch_left = async {
            match &cluster {
                Some(cluster) => cluster.stopped().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = server::shutdown_signal() => {}
            reason = epoch_left => {
                tracing::error!(%reason, "stopping; restart this instance");
                restart.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        // Stop accepting, and close live sockets with "going away".
        stopping.begin_shutdown();
    };
    server::serve(listener, server::router(state), listen, shutdown).await?;
    // Give sockets a moment to send their close frames.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while hub.connection_count() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Commit what is still queued and mark the stop as clean, so the next start keeps the
    // epoch and clients resume where they were.
    tokio::task::block_in_place(|| store.close());
    tracing::info!("stopped");
    if must_restart.load(std::sync::atomic::Ordering::SeqCst) {
        // A supervisor restarts it; started again, it loads the new epoch.
        std::process::exit(75);
    }
    Ok(())
}

/// Logs a start-up failure and stops.
fn fail(error: impl std::fmt::Display) -> ! {
    tracing::error!("{error}");
    std::process::exit(1);
}

/// The store of a single instance, as configured.
fn open_store(config: &Config, limits: &HubSettings) -> Arc<dyn Store> {
    match config.data.store {
        StoreKind::Sqlite => {
            let path = config.data.dir.join("flack.db");
            tracing::info!(path = %path.display(), "storing chat data in SQLite");
            Arc::new(
                SqliteStore::open_keeping(&path, limits.history, config.data.retain_messages)
                    .unwrap_or_else(|e| fail(e)),
            )
        }
        StoreKind::Postgres => {
            let store = PostgresStore::open_keeping(
                &config.data.postgres_url,
                limits.history,
                config.data.retain_messages,
            )
            .unwrap_or_else(|e| fail(e));
            tracing::info!(database = %store.place(), "storing chat data in PostgreSQL");
            Arc::new(store)
        }
        StoreKind::Memory => {
            tracing::warn!("storage is off: everything is lost when the server stops");
            Arc::new(MemoryStore)
        }
    }
}

/// A cluster instance's hub, loaded from the database, and the cluster to start once the
/// server's state exists.
async fn open_cluster(config: &Config, limits: HubSettings) -> (Hub, Arc<dyn Store>, Cluster) {
    if config.data.store != StoreKind::Postgres {
        fail("cluster mode (cluster.redis_url) needs data.store = \"postgres\"");
    }
    let cluster = Cluster::open(config.cluster_settings())
        .await
        .unwrap_or_else(|e| fail(e));
    let store = cluster.store();
    let hub = Hub::open_replica(
        store.clone(),
        limits,
        flack::protocol::encode_hub_event,
        cluster.sequencer(),
    )
    .unwrap_or_else(|e| fail(e));
    (hub, store, cluster)
}
