//! Who may call the API: every route but the probes, the metrics and the API description
//! needs an API key (`Authorization: Bearer apex_…`) with the route's scope.
//!
//! | route | scope |
//! | --- | --- |
//! | `POST /v1/documents` | `ingest` |
//! | `GET /v1/documents/{id}`, `GET /v1/search` | `read` |
//! | `DELETE /v1/documents/{id}` | `delete` |
//! | `/v1/rollout` | `admin` |
//! | `/livez`, `/readyz`, `/metrics`, `/openapi.json` | none |
//! | `POST`, `HEAD /v1/webhooks/{source}` | none: the provider's signature ([`crate::webhooks`]) |
//!
//! An `admin` key holds every scope. No key or a bad one is a `401` with `WWW-Authenticate`;
//! a key without the scope a `403`; PostgreSQL away a `503` (never a pass). Every refusal is
//! counted in `apex_gateway_auth_refusals_total{reason}`. A verified key is remembered for
//! `auth.cache_secs`, so a revocation takes effect within that time. Keys are never logged:
//! only their id is.

pub use apex_ingestion::keys;
pub use apex_ingestion::keys::Scope;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use self::keys::{KeyStore, Rejected, Verified};

pub mod limit;
use crate::state::Gateway;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Needs(Scope),
}

/// The scope of `method` on the route template `route`. A route not in the table (a
/// fallback, a method not served) needs `admin`: nothing is open by omission.
pub fn access(method: &Method, route: Option<&str>) -> Access {
    match (method, route.unwrap_or_default()) {
        (_, "/livez" | "/readyz" | "/metrics" | "/openapi.json") => Access::Open,
        // Signed by the provider, checked by the handler before anything is stored.
        (&Method::POST | &Method::HEAD, "/v1/webhooks/{source}") => Access::Open,
        (&Method::POST, "/v1/documents") => Access::Needs(Scope::Ingest),
        (&Method::GET, "/v1/documents/{id}" | "/v1/search") => Access::Needs(Scope::Read),
        (&Method::DELETE, "/v1/documents/{id}") => Access::Needs(Scope::Delete),
        _ => Access::Needs(Scope::Admin),
    }
}

/// A verdict on a presented key, and when it was reached.
type Remembered = (Instant, Result<Verified, Rejected>);

/// The keys and what was verified lately.
pub struct Auth {
    store: Option<KeyStore>,
    /// Requests per second per key (`None`: no limit).
    limit: Option<limit::Limit>,
    cache_for: Duration,
    /// By the SHA-256 of the whole presented key (the key itself is not kept).
    cache: Mutex<HashMap<[u8; 32], Remembered>>,
    refusals: prometheus::IntCounterVec,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("required", &self.store.is_some())
            .field("cache_for", &self.cache_for)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Verified keys remembered at most; then the memory is cleared.
const CACHE_MAX: usize = 10_000;

impl Auth {
    /// `store` `None`: authentication is off (`auth.required = false`).
    pub fn new(
        store: Option<KeyStore>,
        cache_for: Duration,
        limit: Option<limit::Limit>,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Self> {
        let refusals = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "apex_gateway_auth_refusals_total",
                "Requests refused for their API key, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(refusals.clone()))?;
        for reason in [
            "missing",
            "malformed",
            "unknown",
            "revoked",
            "expired",
            "scope",
            "rate_limited",
        ] {
            refusals.with_label_values(&[reason]);
        }
        Ok(Self {
            store,
            limit,
            cache_for,
            cache: Mutex::new(HashMap::new()),
            refusals,
        })
    }

    pub fn store(&self) -> Option<&KeyStore> {
        self.store.as_ref()
    }

    async fn judge(
        &self,
        store: &KeyStore,
        key: &str,
    ) -> Result<Result<Verified, Rejected>, String> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if !self.cache_for.is_zero()
            && let Some((at, verdict)) = self.cache.lock().await.get(&digest)
            && at.elapsed() < self.cache_for
        {
            return Ok(verdict.clone());
        }
        let verdict = store
            .verify(key)
            .await
            .map_err(|e| format!("the API keys cannot be checked: {e}"))?;
        if let Ok(v) = &verdict {
            // Once per cache period at most: when the key was last used.
            store.touch(&v.id).await;
        }
        if !self.cache_for.is_zero() {
            let mut cache = self.cache.lock().await;
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(digest, (Instant::now(), verdict.clone()));
        }
        Ok(verdict)
    }

    fn refuse(&self, reason: &str) {
        self.refusals.with_label_values(&[reason]).inc();
    }
}

fn refusal(
    status: StatusCode,
    code: &str,
    challenge: String,
    message: String,
    reason: &str,
) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "details": {"reason": reason},
        "retryable": false,
    }});
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn unauthenticated(reason: &str, message: &str) -> Response {
    let challenge = if reason == "missing" {
        r#"Bearer realm="apex-ingest""#.to_owned()
    } else {
        format!(
            r#"Bearer realm="apex-ingest", error="invalid_token", error_description="{message}""#
        )
    };
    refusal(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        challenge,
        message.to_owned(),
        reason,
    )
}

/// The middleware: lets a request through only with a key that has the route's scope.
pub async fn require(State(g): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let Access::Needs(scope) = access(request.method(), route.as_deref()) else {
        return next.run(request).await;
    };
    let auth = &g.auth;
    let Some(store) = auth.store() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(key) = presented.filter(|k| !k.is_empty()) else {
        auth.refuse("missing");
        return unauthenticated(
            "missing",
            "this route needs an API key: send `Authorization: Bearer <key>` (create one with `apex keys create`)",
        );
    };
    let verified = match auth.judge(store, key).await {
        Err(why) => {
            tracing::warn!(error = %why, "cannot check an API key");
            return crate::error::ApiError::unavailable(why).into_response();
        }
        Ok(Err(rejected)) => {
            auth.refuse(rejected.as_str());
            let message = match rejected {
                Rejected::Malformed => "the API key is not of the form apex_<id>_<secret>",
                Rejected::Unknown => "the API key is not known",
                Rejected::Revoked => "the API key was revoked",
                Rejected::Expired => "the API key has expired",
            };
            return unauthenticated(rejected.as_str(), message);
        }
        Ok(Ok(v)) => v,
    };
    if !verified.scopes.contains(&scope) && !verified.scopes.contains(&Scope::Admin) {
        auth.refuse("scope");
        tracing::info!(key = %verified.id, needs = scope.as_str(), "an API key without the scope was refused");
        return refusal(
            StatusCode::FORBIDDEN,
            "permission_denied",
            format!(
                r#"Bearer realm="apex-ingest", error="insufficient_scope", scope="{}""#,
                scope.as_str()
            ),
            format!(
                "the API key `{}` does not have the `{}` scope this route needs",
                verified.id,
                scope.as_str()
            ),
            "scope",
        );
    }
    if let Some(limit) = auth.limit {
        match limit.take(g.shared.redis(), "apex", &verified.id).await {
            Ok(None) => {}
            Ok(Some(wait)) => {
                auth.refuse("rate_limited");
                return rate_limited(&verified.id, limit, wait);
            }
            // The limit protects capacity, not secrets: without Redis, requests go through.
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the rate limit; the request goes through")
            }
        }
    }
    next.run(request).await
}

/// 429 with `Retry-After` in whole seconds (at least 1).
fn rate_limited(key_id: &str, limit: limit::Limit, wait: Duration) -> Response {
    let secs = wait.as_millis().div_ceil(1000).max(1);
    let body = json!({"error": {
        "code": "resource_exhausted",
        "message": format!(
            "the API key `{key_id}` is over its rate of {} requests per second (burst {}); try again in {secs} s",
            limit.per_sec, limit.burst
        ),
        "details": {"reason": "rate_limited", "retry_after_secs": secs},
        "retryable": true,
    }});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_its_scope_and_nothing_is_open_by_omission() {
        let a = |m: Method, r: &str| access(&m, Some(r));
        assert_eq!(
            a(Method::POST, "/v1/documents"),
            Access::Needs(Scope::Ingest)
        );
        assert_eq!(
            a(Method::GET, "/v1/documents/{id}"),
            Access::Needs(Scope::Read)
        );
        assert_eq!(a(Method::GET, "/v1/search"), Access::Needs(Scope::Read));
        assert_eq!(
            a(Method::DELETE, "/v1/documents/{id}"),
            Access::Needs(Scope::Delete)
        );
        assert_eq!(a(Method::GET, "/v1/rollout"), Access::Needs(Scope::Admin));
        assert_eq!(
            a(Method::PUT, "/v1/documents/{id}"),
            Access::Needs(Scope::Admin)
        );
        assert_eq!(access(&Method::GET, None), Access::Needs(Scope::Admin));
        for open in ["/livez", "/readyz", "/metrics", "/openapi.json"] {
            assert_eq!(a(Method::GET, open), Access::Open, "{open}");
        }
    }

    #[test]
    fn scope_lists_parse_or_name_the_bad_one() {
        assert_eq!(
            Scope::parse_list("ingest, read"),
            Ok(vec![Scope::Ingest, Scope::Read])
        );
        let e = Scope::parse_list("ingest,write").expect_err("write");
        assert!(e.contains("`write`"), "{e}");
    }
}
