//! The Apex Ingest HTTP gateway: uploads (`POST /v1/documents`), status, deletion, search,
//! health and metrics. Each document goes to the Temporal path or the legacy path as the
//! [`rollout::RolloutCoordinator`] decides from a percentage every replica shares (Redis).

pub mod app;
pub mod auth;
pub mod claims;
pub mod documents;
pub mod error;
pub mod formats;
pub mod intake;
pub mod legacy;
pub mod metrics;
pub mod openapi;
pub mod rollout;
pub mod search;
pub mod settings;
pub mod shared;
pub mod state;
pub mod upload;
pub mod waiting;
pub mod webhooks;

use std::sync::Arc;

use apex_common::Shutdown;
use tokio::net::TcpListener;

pub use app::router;
pub use settings::GatewaySettings;
pub use state::Gateway;

/// Serves the gateway on `listener` until `shutdown`; requests in progress finish first,
/// then legacy ingestions get `shutdown_grace_secs` to end (see [`Gateway::drain`]).
pub async fn run(
    settings: GatewaySettings,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let metrics_listener = if settings.metrics_addr.is_empty() {
        None
    } else {
        Some(
            TcpListener::bind(&settings.metrics_addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.metrics_addr))?,
        )
    };
    let gateway = Arc::new(Gateway::new(settings).await?);
    let metrics = metrics_listener.map(|l| {
        tokio::spawn(apex_common::metrics::serve_metrics(
            gateway.metrics.registry.clone(),
            l,
            shutdown.clone(),
        ))
    });
    // Stops with the server (or when the server fails); a batch in progress finishes.
    let stop_dispatcher = shutdown.clone();
    let dispatcher = gateway.settings.webhooks.dispatch.then(|| {
        tokio::spawn(webhooks::dispatch::run(
            Arc::clone(&gateway),
            shutdown.clone(),
        ))
    });
    let reload_every = gateway.settings.webhooks.reload_secs;
    let reloader = (reload_every > 0).then(|| {
        let (g, stop) = (Arc::clone(&gateway), shutdown.clone());
        tokio::spawn(async move {
            let every = std::time::Duration::from_secs(reload_every);
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = stop.wait() => return,
                }
                // Reading a few small files; off the runtime's threads all the same.
                let g2 = Arc::clone(&g);
                if let Ok(true) = tokio::task::spawn_blocking(move || g2.webhooks.reload()).await {
                    tracing::info!("webhook secrets changed; the new ones verify from now on");
                }
            }
        })
    });
    let addr = listener.local_addr()?;
    tracing::info!(%addr, percent = gateway.rollout.percent(), "gateway serving");
    let grace = std::time::Duration::from_secs(gateway.settings.shutdown_grace_secs);
    axum::serve(listener, router(Arc::clone(&gateway)))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    stop_dispatcher.trigger();
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
    if let Some(r) = reloader {
        let _ = r.await;
    }
    gateway.drain(grace).await;
    if let Some(m) = metrics {
        m.await??;
    }
    tracing::info!("gateway stopped");
    Ok(())
}
