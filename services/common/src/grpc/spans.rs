//! OpenTelemetry spans for gRPC, named and attributed as the RPC semantic conventions say
//! (`<package.Service>/<Method>`, `rpc.system`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`, `server.address`, `server.port`): a server layer that continues
//! the caller's W3C trace, and a client layer that opens a client span per call and sends
//! its context as `traceparent`. Health checks and reflection get no span: they are probes,
//! not work, and would bury the traces that matter.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::time::Instant;

use prometheus::{HistogramVec, IntCounterVec};
use tracing::Instrument;

use crate::metrics::process::{
    RPC_CLIENT_REQUESTS, RPC_CLIENT_SECONDS, RPC_SERVER_REQUESTS, RPC_SERVER_SECONDS, service,
};

use crate::telemetry::{continue_trace, send_trace};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The gRPC status codes the conventions count as a server-side error; the client counts
/// every non-zero code.
const SERVER_ERRORS: [i64; 6] = [2, 4, 12, 13, 14, 15];

/// `(service, method)` of a gRPC path `/<service>/<method>`.
pub fn rpc_parts(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.rsplit_once('/').unwrap_or((path, ""))
}

/// Probes that get no span.
fn is_probe(service: &str) -> bool {
    service == super::HEALTH_SERVICE || service.starts_with("grpc.reflection.")
}

/// The status a response carries in its headers (a Trailers-Only error answer); a
/// response without one is OK so far (its status follows in the trailers).
fn header_status(headers: &http::HeaderMap) -> i64 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn record_status(span: &tracing::Span, code: i64, error: bool) {
    span.record("rpc.grpc.status_code", code);
    if error {
        span.record("otel.status_code", "ERROR");
    }
}

/// The RPC metrics of one side (server or client): calls by status code, and their time.
type RpcMetrics = (&'static IntCounterVec, &'static HistogramVec);

/// Awaits `call` in `span`, then records its gRPC status on the span (marked as an error
/// when `is_error` says so) and counts and times the call of `path` since `since`. A call
/// that got no answer at all (no connection, a broken stream) counts as UNAVAILABLE.
fn observed<F, R, E>(
    call: F,
    span: tracing::Span,
    path: String,
    since: Instant,
    (requests, seconds): RpcMetrics,
    is_error: fn(i64) -> bool,
) -> BoxFuture<Result<http::Response<R>, E>>
where
    F: Future<Output = Result<http::Response<R>, E>> + Send + 'static,
{
    Box::pin(async move {
        let result = call.instrument(span.clone()).await;
        let code = match &result {
            Ok(response) => header_status(response.headers()),
            Err(_) => 14,
        };
        record_status(&span, code, is_error(code));
        let (rpc_service, method) = rpc_parts(&path);
        requests
            .with_label_values(&[service(), rpc_service, method, &code.to_string()])
            .inc();
        seconds
            .with_label_values(&[service(), rpc_service, method])
            .observe(since.elapsed().as_secs_f64());
        result
    })
}

/// The server span for a request, parented on the caller's `traceparent` when present.
pub fn server_span<B>(req: &http::Request<B>) -> tracing::Span {
    let (service, method) = rpc_parts(req.uri().path());
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        apex.document_id = tracing::field::Empty,
        apex.version = tracing::field::Empty,
        apex.source = tracing::field::Empty,
    );
    continue_trace(&span, req.headers());
    span
}

/// The client span for a call to `uri`, a child of the current span.
pub fn client_span(uri: &http::Uri) -> tracing::Span {
    let (service, method) = rpc_parts(uri.path());
    tracing::info_span!(
        "grpc.client",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        server.address = uri.host().unwrap_or_default(),
        server.port = uri.port_u16().unwrap_or_default(),
    )
}

/// Server layer: every call runs in its [`server_span`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerSpans;

impl<S> tower::Layer<S> for ServerSpans {
    type Service = ServerSpansService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerSpansService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ServerSpansService<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for ServerSpansService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if is_probe(rpc_parts(req.uri().path()).0) {
            return Box::pin(self.inner.call(req));
        }
        let span = server_span(&req);
        let path = req.uri().path().to_owned();
        let since = Instant::now();
        let call = span.in_scope(|| self.inner.call(req));
        observed(
            call,
            span,
            path,
            since,
            (&RPC_SERVER_REQUESTS, &RPC_SERVER_SECONDS),
            |code| SERVER_ERRORS.contains(&code),
        )
    }
}

/// Client layer: every call runs in its [`client_span`], whose context goes along.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientSpans;

impl<S> tower::Layer<S> for ClientSpans {
    type Service = ClientSpansService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientSpansService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ClientSpansService<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for ClientSpansService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let span = client_span(req.uri());
        send_trace(&span, req.headers_mut());
        let path = req.uri().path().to_owned();
        let since = Instant::now();
        let call = span.in_scope(|| self.inner.call(req));
        observed(
            call,
            span,
            path,
            since,
            (&RPC_CLIENT_REQUESTS, &RPC_CLIENT_SECONDS),
            |code| code != 0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_path_splits_into_service_and_method() {
        assert_eq!(
            rpc_parts("/apex.parser.v1.ParserService/Parse"),
            ("apex.parser.v1.ParserService", "Parse")
        );
        assert_eq!(rpc_parts("/nomethod"), ("nomethod", ""));
        assert!(is_probe("grpc.health.v1.Health"));
        assert!(is_probe("grpc.reflection.v1.ServerReflection"));
        assert!(!is_probe("apex.parser.v1.ParserService"));
    }

    #[test]
    fn the_status_comes_from_a_trailers_only_answer() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(header_status(&headers), 0);
        headers.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(header_status(&headers), 14);
        assert!(SERVER_ERRORS.contains(&14));
        assert!(
            !SERVER_ERRORS.contains(&3),
            "INVALID_ARGUMENT is the caller's error"
        );
    }
}
