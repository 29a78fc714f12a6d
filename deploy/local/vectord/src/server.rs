//! Serving: open the store, serve the three Qdrant services plus gRPC health, flush
//! periodically, and flush and close every collection on shutdown.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apex_common::Shutdown;
use qdrant_client::qdrant::{
    collections_server::CollectionsServer, points_server::PointsServer, qdrant_server::QdrantServer,
};
use tokio::net::TcpListener;

use crate::VectordSettings;
use crate::service::Vectord;
use crate::store::Store;

/// The gRPC services served, as health reports them.
pub const SERVICES: &[&str] = &["qdrant.Qdrant", "qdrant.Collections", "qdrant.Points"];

/// A running server (see [`serve`]): its address, and a handle to stop it.
#[derive(Debug)]
pub struct Server {
    pub addr: std::net::SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Starts a server on `listener` in the background.
    pub fn start(settings: VectordSettings, listener: TcpListener) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve(settings, listener, shutdown.clone()));
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    /// `http://ADDR`, for `qdrant_client::Qdrant::from_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits until every collection is flushed and closed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.task.await.context("server task panicked")?
    }
}

/// Serves until `shutdown`; then drains calls, flushes and closes every collection.
pub async fn serve(
    settings: VectordSettings,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let data_dir = settings.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    // One server per data directory: a second one would corrupt the shards.
    let lock_path = data_dir.join(".lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.try_lock().map_err(|e| {
        anyhow::anyhow!(
            "{} is in use by another apex-vectord ({e}); stop it or choose another data_dir",
            data_dir.display()
        )
    })?;

    let store = {
        let data_dir = data_dir.clone();
        Arc::new(tokio::task::spawn_blocking(move || Store::open(&data_dir)).await??)
    };
    tracing::info!(
        data_dir = %data_dir.display(),
        collections = store.names().len(),
        "store opened"
    );

    let flusher = {
        let store = store.clone();
        let shutdown = shutdown.clone();
        let every = Duration::from_millis(settings.flush_interval_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.wait() => break,
                }
                let store = store.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || store.flush_all()).await {
                    tracing::error!(error = %e, "periodic flush failed");
                }
            }
        })
    };

    let service = Vectord::new(store.clone());
    let max = settings.max_message_bytes;
    let (reporter, health) = apex_common::grpc::health(SERVICES).await;
    let router = apex_common::grpc::server(Duration::from_secs(600))
        .add_service(health)
        .add_service(
            QdrantServer::new(service.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            CollectionsServer::new(service.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            PointsServer::new(service)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );
    let served = apex_common::grpc::serve(router, listener, reporter, SERVICES, shutdown).await;

    let _ = flusher.await;
    tokio::task::spawn_blocking(move || store.close()).await?;
    tracing::info!(data_dir = %data_dir.display(), "every collection flushed and closed");
    drop(lock);
    served
}
