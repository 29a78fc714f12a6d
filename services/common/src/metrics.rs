//! The Prometheus `/metrics` endpoint every binary serves on its own port: the binary's
//! own registry and the process-wide one ([`process`]).

pub mod process;
pub mod query;

use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Renders a registry, and the process-wide metrics, in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut families = registry.gather();
    families.extend(prometheus::gather());
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = TextEncoder::new().encode(&families, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Serves `GET /metrics` for `registry` on `listener` until shutdown.
pub async fn serve_metrics(
    registry: Registry,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    render(&registry),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}

/// Serves `GET /metrics` on `listener`: first what `upstream` (another exporter of this
/// process, on loopback) serves, then `registry` and the process-wide metrics. The worker
/// uses it to put the Temporal SDK's metrics and its own on one port.
pub async fn serve_metrics_after(
    upstream: String,
    registry: Registry,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (registry, http, upstream) = (registry.clone(), http.clone(), upstream.clone());
            async move {
                let before = match http.get(&upstream).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(%upstream, error = %e, "metrics exporter unreachable");
                        String::new()
                    }
                };
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    format!("{before}\n{}", render(&registry)),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_endpoint_serves_registered_counters() {
        let registry = Registry::new();
        let counter =
            prometheus::IntCounter::new("apex_test_things_total", "things").expect("counter");
        registry
            .register(Box::new(counter.clone()))
            .expect("register");
        counter.inc_by(3);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve_metrics(registry, listener, shutdown.clone()));
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut body = String::new();
        stream.read_to_string(&mut body).await.expect("read");
        assert!(body.contains("apex_test_things_total 3"), "{body}");
        shutdown.trigger();
        task.await.expect("join").expect("serve");
    }
}
