//! gRPC plumbing shared by the services and their clients: a server builder whose calls run
//! in spans that continue the caller's W3C trace, health and reflection services, and a
//! client layer that opens a span per call and sends its context along.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::layer::util::{Identity, Stack};

use crate::shutdown::Shutdown;
use crate::tls::ServerTls;

pub mod balance;
mod spans;

pub use spans::{
    ClientSpans, ClientSpansService, ServerSpans, client_span, rpc_parts, server_span,
};

/// The layers every server of the mesh runs its calls through.
pub type ServerLayers = Stack<ServerSpans, Identity>;
/// A server with [`ServerLayers`].
pub type TracedServer = Server<ServerLayers>;
/// A router of a [`TracedServer`].
pub type Router = tonic::transport::server::Router<ServerLayers>;

/// Largest message a service accepts or sends unless configured otherwise (16 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The timeout a client set with the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
pub fn client_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    parse_timeout(value)
}

/// The `grpc-timeout` of a request's headers.
pub fn client_timeout_header(headers: &http::HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

fn parse_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A tonic server builder with tracing, keepalive and a request timeout.
pub fn server(request_timeout: Duration) -> TracedServer {
    Server::builder()
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(ServerSpans)
}

/// The standard services every binary of the mesh serves besides its own.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
pub const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
pub const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Health for a binary that serves `services` (full gRPC names). Every named service starts
/// NOT_SERVING; call [`mark_serving`] once dependencies answer.
pub async fn health(
    services: &[&str],
) -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in services {
        reporter
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    (reporter, health)
}

/// A reflection builder that describes exactly what this binary serves: its own `services`
/// (the mesh's descriptor set holds all four services' contracts, so without naming them every
/// binary would list the others' too, which then answer UNIMPLEMENTED), health and reflection.
fn reflection_builder(services: &[&str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(apex_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for name in services
        .iter()
        .copied()
        .chain([HEALTH_SERVICE, REFLECTION_V1, REFLECTION_V1ALPHA])
    {
        builder = builder.with_service_name(name);
    }
    builder
}

/// `server` with health and reflection for a binary that serves `services`. Reflection is
/// served over v1 and v1alpha: grpcurl and current clients speak v1, older grpcurl, Postman
/// and Python's grpcio-reflection v1alpha.
pub async fn with_health_and_reflection(
    mut server: TracedServer,
    services: &[&str],
) -> anyhow::Result<(HealthReporter, Router)> {
    let (reporter, health) = health(services).await;
    let v1 = reflection_builder(services)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = reflection_builder(services)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let router = server
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha);
    Ok((reporter, router))
}

/// Asks a server's reflection service (of protocol module `$v`) for its service list.
macro_rules! list_services {
    ($v:ident, $channel:expr) => {{
        use tonic_reflection::pb::$v;
        let request = $v::ServerReflectionRequest {
            host: String::new(),
            message_request: Some($v::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let response = $v::server_reflection_client::ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await?
            .into_inner()
            .message()
            .await?
            .and_then(|m| m.message_response);
        let Some($v::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            response
        else {
            anyhow::bail!(
                "reflection {}: no service list in {response:?}",
                stringify!($v)
            );
        };
        let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    }};
}

/// The services a server lists over reflection v1 and over v1alpha, each sorted: what
/// `grpcurl list` shows with a current and with an older client.
pub async fn reflected_services(
    channel: tonic::transport::Channel,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let current = list_services!(v1, channel.clone());
    let alpha = list_services!(v1alpha, channel);
    Ok((current, alpha))
}

/// What [`reflected_services`] must answer for a binary serving `services`.
pub fn expected_reflection(services: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = services
        .iter()
        .copied()
        .chain([HEALTH_SERVICE, REFLECTION_V1, REFLECTION_V1ALPHA])
        .map(str::to_owned)
        .collect();
    all.sort();
    all
}

/// Sets every named service (and the server as a whole, "") to `status`.
pub async fn set_health(reporter: &HealthReporter, services: &[&str], status: ServingStatus) {
    for name in services {
        reporter.set_service_status(*name, status).await;
    }
    reporter.set_service_status("", status).await;
}

/// Serves `router` on `listener` until `shutdown` fires, flipping health to NOT_SERVING first
/// so that load balancers stop sending work, then draining in-flight calls.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    reporter: HealthReporter,
    services: &'static [&'static str],
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    serve_tls(router, listener, None, reporter, services, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (every connection's handshake first; with mutual
/// TLS a client without a certificate the client CA signed never reaches a service).
pub async fn serve_tls(
    router: Router,
    listener: TcpListener,
    tls: Option<ServerTls>,
    reporter: HealthReporter,
    services: &'static [&'static str],
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    set_health(&reporter, services, ServingStatus::Serving).await;
    let stop = async move {
        shutdown.wait().await;
        set_health(&reporter, services, ServingStatus::NotServing).await;
        tracing::info!("draining grpc server");
    };
    match tls {
        Some(tls) => {
            tracing::info!(%addr, mutual = tls.mutual(), "grpc server listening (TLS)");
            router
                .serve_with_incoming_shutdown(tls.incoming(listener), stop)
                .await?;
        }
        None => {
            tracing::info!(%addr, "grpc server listening");
            // Every accepted connection without Nagle's algorithm: a reply written as
            // headers then data otherwise waits for the client's delayed ACK (about 40 ms a
            // call, measured on the parser: 42 ms per small document).
            let incoming = TcpListenerStream::new(listener).map(|accepted| {
                accepted.inspect(|tcp| {
                    let _ = tcp.set_nodelay(true);
                })
            });
            router.serve_with_incoming_shutdown(incoming, stop).await?;
        }
    }
    tracing::info!(%addr, "grpc server stopped");
    Ok(())
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_units() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(client_timeout(&m), None);
        for (v, d) in [
            ("2S", Duration::from_secs(2)),
            ("1500m", Duration::from_millis(1500)),
            ("3M", Duration::from_secs(180)),
            ("7u", Duration::from_micros(7)),
        ] {
            m.insert("grpc-timeout", v.parse().expect("ascii"));
            assert_eq!(client_timeout(&m), Some(d), "{v}");
        }
        for bad in ["S", "12X", "-1S", "1234567890S"] {
            m.insert("grpc-timeout", bad.parse().expect("ascii"));
            assert_eq!(client_timeout(&m), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    #[tokio::test]
    async fn server_reports_serving_then_not_serving_after_shutdown() {
        let (reporter, router) =
            with_health_and_reflection(server(Duration::from_secs(5)), &["apex.test.v1.Test"])
                .await
                .expect("health");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve(
            router,
            listener,
            reporter.clone(),
            &["apex.test.v1.Test"],
            shutdown.clone(),
        ));

        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        // Reflection lists this binary's service, health and reflection itself, over both
        // protocol versions, and nothing of the rest of the mesh.
        let (v1, v1alpha) = reflected_services(channel.clone())
            .await
            .expect("reflection");
        assert_eq!(v1, expected_reflection(&["apex.test.v1.Test"]));
        assert_eq!(v1alpha, v1);
        assert!(!v1.iter().any(|s| s.starts_with("apex.parser")), "{v1:?}");
        let mut client = HealthClient::new(channel);
        let mut watch = client
            .watch(HealthCheckRequest {
                service: "apex.test.v1.Test".into(),
            })
            .await
            .expect("watch")
            .into_inner();
        let mut seen = Vec::new();
        while let Some(msg) = watch.message().await.expect("stream") {
            seen.push(msg.status);
            if msg.status == ServingStatus::Serving as i32 {
                break;
            }
        }
        assert_eq!(seen.last(), Some(&(ServingStatus::Serving as i32)));

        shutdown.trigger();
        let next = watch
            .message()
            .await
            .expect("stream")
            .expect("status change");
        assert_eq!(next.status, ServingStatus::NotServing as i32);
        drop(watch);
        drop(client);
        task.await.expect("join").expect("serve");
    }
}
