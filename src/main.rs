//! The Flack server binary: reads the configuration, starts tracing, binds, serves.

use flack::chat::hub::{Hub, HubSettings, MemoryStore};
use flack::server::{self, config::Config, AppState};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,flack=info")),
        )
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = Config::load(&args)?;
    let limits = HubSettings {
        max_message_chars: config.max_message_chars,
        files_dir: Some(config.data_dir.join("files")),
        ..HubSettings::default()
    };
    let hub = Hub::open(Arc::new(MemoryStore), limits)?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, site_root = %config.site_root.display(), "Flack is listening");
    let state = AppState::new(config, hub);
    server::serve(listener, server::router(state), server::shutdown_signal()).await?;
    Ok(())
}
