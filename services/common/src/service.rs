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
    tls::{ServerTls, ServerTlsSettings},
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
    /// TLS of the gRPC listener (empty = plaintext); `client_ca` set = mutual TLS.
    pub tls: ServerTlsSettings,
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
            tls: ServerTlsSettings::default(),
            telemetry: TelemetrySettings::default(),
        }
    }

    /// Problems with these values.
    pub fn validate(&self) -> Vec<String> {
        let mut p = self.telemetry.validate("telemetry");
        p.extend(self.tls.validate("tls"));
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
/// metrics listener is given. With TLS settings the gRPC listener serves TLS only (the
/// certificate files are read before anything is served: a bad one is an error here).
pub async fn serve_services(
    settings: &ServiceSettings,
    services: &'static [&'static str],
    add: impl FnOnce(grpc::Router) -> grpc::Router,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    registry: prometheus::Registry,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let tls = ServerTls::load(&settings.tls)?;
    let (reporter, router) =
        grpc::with_health_and_reflection(grpc::server(settings.request_timeout()), services)
            .await?;
    let router = add(router);
    let metrics =
        metrics_listener.map(|l| tokio::spawn(serve_metrics(registry, l, shutdown.clone())));
    grpc::serve_tls(router, listener, tls, reporter, services, shutdown).await?;
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
    let grpc = bind_retrying(&settings.listen_addr, BIND_PATIENCE).await?;
    let metrics = if settings.metrics_addr.is_empty() {
        None
    } else {
        Some(bind_retrying(&settings.metrics_addr, BIND_PATIENCE).await?)
    };
    Ok((grpc, metrics))
}

/// How long a port found in use is tried again.
const BIND_PATIENCE: Duration = Duration::from_secs(15);

/// Binds `addr`, trying again for up to `patience` while the port is in use. The gRPC ports
/// (50051-50054) lie in Linux's ephemeral range: while a service is down, a client dialling
/// it again and again can be handed that very port as its own source port and connect to
/// itself (TCP self-connect), holding the port for the moment it takes to fail. A restart
/// in that moment must wait it out, not exit.
pub async fn bind_retrying(addr: &str, patience: Duration) -> std::io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut warned = false;
    loop {
        match TcpListener::bind(addr).await {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                if !warned {
                    tracing::warn!(%addr, "address in use; trying again");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr}: {e}"),
                ));
            }
            Ok(l) => return Ok(l),
        }
    }
}

#[cfg(test)]
mod bind_tests {
    use super::*;

    #[tokio::test]
    async fn a_port_in_use_is_waited_for_then_named_in_the_error() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = holder.local_addr().expect("addr").to_string();
        let err = bind_retrying(&addr, Duration::from_millis(300))
            .await
            .expect_err("held");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(
            err.to_string()
                .contains(&format!("cannot listen on {addr}")),
            "{err}"
        );

        // Freed while it waits: it gets the port.
        let waiting = tokio::spawn({
            let addr = addr.clone();
            async move { bind_retrying(&addr, Duration::from_secs(30)).await }
        });
        drop(holder);
        let listener = waiting.await.expect("join").expect("bound once freed");
        assert_eq!(listener.local_addr().expect("addr").to_string(), addr);
    }
}
