//! The common shape of a gRPC service binary: settings, a gRPC listener with health and
//! reflection, and a `/metrics` listener, all stopped by one shutdown signal.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::{
    grpc,
    metrics::serve_metrics,
    settings::{TelemetrySettings, check_socket_addr},
    shutdown::Shutdown,
};

/// Listener addresses and limits every gRPC service has (`APEX_<SERVICE>__…`).
/// No `Default`: the ports differ per service, so each service supplies its own defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceSettings {
    /// gRPC listen address.
    pub listen_addr: String,
    /// `/metrics` listen address; empty = off.
    pub metrics_addr: String,
    /// Per-request deadline enforced by the server.
    pub request_timeout_secs: u64,
    /// Largest message accepted or sent.
    pub max_message_bytes: usize,
    /// Blob store location (`file:///dir`, a path, `s3://bucket/prefix`, `memory://`).
    pub blob_url: String,
    pub telemetry: TelemetrySettings,
}

impl ServiceSettings {
    /// Defaults for a service on the given ports.
    pub fn with_ports(ports: crate::ports::ServicePorts) -> Self {
        Self {
            listen_addr: format!("127.0.0.1:{}", ports.grpc),
            metrics_addr: format!("127.0.0.1:{}", ports.metrics),
            request_timeout_secs: 60,
            max_message_bytes: grpc::DEFAULT_MAX_MESSAGE_BYTES,
            blob_url: ".apex/blobs".to_owned(),
            telemetry: TelemetrySettings::default(),
        }
    }

    /// Problems with these values.
    pub fn validate(&self) -> Vec<String> {
        let mut p = self.telemetry.validate("telemetry");
        check_socket_addr("listen_addr", &self.listen_addr, &mut p);
        if !self.metrics_addr.is_empty() {
            check_socket_addr("metrics_addr", &self.metrics_addr, &mut p);
        }
        if self.request_timeout_secs == 0 {
            p.push("request_timeout_secs must be at least 1".to_owned());
        }
        if self.max_message_bytes < 1024 {
            p.push("max_message_bytes must be at least 1024".to_owned());
        }
        if self.blob_url.trim().is_empty() {
            p.push("blob_url must not be empty".to_owned());
        }
        p
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// Serves one service binary until `shutdown`: health and reflection for `services`, the
/// application services `add` puts on the router, and `registry` on `/metrics` when a
/// metrics listener is given.
pub async fn serve_services(
    settings: &ServiceSettings,
    services: &'static [&'static str],
    add: impl FnOnce(grpc::Router) -> grpc::Router,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    registry: prometheus::Registry,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let (reporter, router) =
        grpc::with_health_and_reflection(grpc::server(settings.request_timeout()), services)
            .await?;
    let router = add(router);
    let metrics =
        metrics_listener.map(|l| tokio::spawn(serve_metrics(registry, l, shutdown.clone())));
    grpc::serve(router, listener, reporter, services, shutdown).await?;
    if let Some(task) = metrics {
        task.await??;
    }
    Ok(())
}

/// Serves health and reflection for a service whose RPCs are not implemented yet, plus
/// `/metrics`. The gRPC services themselves are added by their own issues.
pub async fn run_skeleton(
    settings: ServiceSettings,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    serve_services(
        &settings,
        &[],
        |router| router,
        listener,
        metrics_listener,
        prometheus::Registry::new(),
        shutdown,
    )
    .await
}

/// Binds the gRPC and metrics listeners named in `settings`.
pub async fn bind(
    settings: &ServiceSettings,
) -> anyhow::Result<(TcpListener, Option<TcpListener>)> {
    let grpc = TcpListener::bind(&settings.listen_addr).await?;
    let metrics = if settings.metrics_addr.is_empty() {
        None
    } else {
        Some(TcpListener::bind(&settings.metrics_addr).await?)
    };
    Ok((grpc, metrics))
}
