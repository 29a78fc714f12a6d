//! Sending a call again on another replica. Every method of the mesh is unary and
//! idempotent (a write of the same document version is the same write), so a call that a
//! replica refused (the connection failed, or a replica shutting down refused the stream)
//! or dropped (it died mid-call) is sent again, up to `retries` times within the call's
//! deadline. Before each new attempt the membership is refreshed, which drops the replica
//! that failed when it no longer answers health, so the attempt goes elsewhere.
//!
//! An answer is never sent again, not even UNAVAILABLE: a replica that answers is up, and
//! its UNAVAILABLE says a dependency behind it is away (a store), which another replica
//! shares; repeating the call would only hammer that dependency and trip its breaker. The
//! caller (Temporal's retry policy) decides about those.
//!
//! The request body is a unary message: it is read once and sent again from memory.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tonic::body::Body;
use tower::ServiceExt as _;

use super::{BalanceOptions, Membership};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// When a call is sent again (see the module docs).
#[derive(Debug, Clone)]
struct Retrying {
    membership: Membership,
    retries: u32,
    call_timeout: Duration,
}

/// A channel whose refused or dropped calls are sent again on another replica.
#[derive(Debug, Clone)]
pub struct RetryingService<S> {
    inner: S,
    policy: Retrying,
}

impl<S> RetryingService<S> {
    pub fn new(inner: S, membership: Membership, options: &BalanceOptions) -> Self {
        Self {
            inner,
            policy: Retrying {
                membership,
                retries: options.retries,
                call_timeout: options.call_timeout,
            },
        }
    }

    /// Refreshes the membership now and waits until it is done (at most 5 s).
    pub async fn refresh(&self) {
        self.policy.membership.refresh(Duration::from_secs(5)).await;
    }

    /// The replicas calls go to now.
    pub fn replicas(&self) -> Vec<String> {
        self.policy
            .membership
            .members()
            .iter()
            .map(super::Replica::uri)
            .collect()
    }
}

impl<S> tower::Service<http::Request<Body>> for RetryingService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited per attempt, within the call's deadline.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        Box::pin(policy.run(inner, req))
    }
}

impl Retrying {
    async fn run<S>(
        self,
        mut inner: S,
        req: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError>
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
        S::Error: Into<BoxError>,
    {
        let start = Instant::now();
        let timeout = super::super::client_timeout_header(req.headers())
            .map_or(self.call_timeout, |t| t.min(self.call_timeout));
        let deadline = start + timeout;
        let (parts, body) = req.into_parts();
        let service = parts.uri.path().to_owned();
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            // The message could not be encoded (too large, say): no attempt can succeed,
            // and the caller gets that error from the one attempt.
            Err(status) => {
                let req = http::Request::from_parts(parts, Body::new(Failed(Some(status))));
                return inner
                    .ready()
                    .await
                    .map_err(Into::into)?
                    .call(req)
                    .await
                    .map_err(Into::into);
            }
        };
        let mut attempt = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.membership.any(left).await {
                return Err(Box::new(tonic::Status::unavailable(format!(
                    "no replica of {service} is listed"
                ))));
            }
            let req = rebuild(&parts, bytes.clone(), deadline);
            let ready = tokio::time::timeout(left, inner.ready()).await;
            let svc = match ready {
                Ok(Ok(svc)) => svc,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(Box::new(tonic::Status::deadline_exceeded(format!(
                        "no replica of {service} was ready within the call's deadline"
                    ))));
                }
            };
            // The endpoint's own timeout covers a call once a replica has it; this one also
            // covers the wait in the channel's queue for a replica to become ready.
            let result = match tokio::time::timeout(left, svc.call(req)).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => {
                    return Err(Box::new(tonic::Status::deadline_exceeded(format!(
                        "{service}: no answer within the call's deadline ({} ms)",
                        timeout.as_millis()
                    ))));
                }
            };
            if result.is_ok() || attempt >= self.retries || Instant::now() >= deadline {
                return result;
            }
            attempt += 1;
            crate::metrics::process::RPC_CLIENT_RETRIES
                .with_label_values(&[
                    crate::metrics::process::service(),
                    super::super::rpc_parts(&service).0,
                ])
                .inc();
            tracing::debug!(%service, attempt, "a replica refused or dropped the call; sending it again");
            self.membership.refresh(Duration::from_secs(3)).await;
        }
    }
}

/// The request again, with the deadline left.
fn rebuild(parts: &http::request::Parts, body: Bytes, deadline: Instant) -> http::Request<Body> {
    let mut req = http::Request::new(Body::new(http_body_util::Full::new(body)));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    *req.extensions_mut() = parts.extensions.clone();
    let left = deadline.saturating_duration_since(Instant::now());
    let millis = left.as_millis().clamp(1, 99_999_999);
    if let Ok(v) = http::HeaderValue::from_str(&format!("{millis}m")) {
        req.headers_mut().insert("grpc-timeout", v);
    }
    req
}

/// A body that fails with the error its encoding met.
struct Failed(Option<tonic::Status>);

impl http_body::Body for Failed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}
