//! Plaid, as far as webhooks and polling need it: `POST /transactions/sync` (see
//! [`super::plaid_sync`]), and for webhooks `POST /webhook_verification_key/get` with
//! `{client_id, secret, key_id}` answers `{"key": <JWK>, "request_id"}` for a key it holds,
//! and Plaid's error object (`INVALID_API_KEYS`, `INVALID_WEBHOOK_VERIFICATION_KEY_ID`)
//! otherwise. [`FakePlaid::sign`] signs a webhook body the way Plaid does: an ES256 JWT
//! with `kid` in its header and `iat` and `request_body_sha256` in its claims.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The fake's credentials.
pub const CLIENT_ID: &str = "fake-plaid-client";
pub const SECRET: &str = "fake-plaid-secret";

struct Inner {
    kid: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// Key requests served (to show the gateway caches keys).
    requests: AtomicUsize,
    /// The item's transactions, for `/transactions/sync`.
    ledger: super::plaid_sync::Ledger,
}

/// A running fake Plaid.
pub struct FakePlaid {
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakePlaid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePlaid")
            .field("url", &self.url)
            .field("kid", &self.inner.kid)
            .finish_non_exhaustive()
    }
}

impl Drop for FakePlaid {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePlaid {
    /// Starts on a free port of 127.0.0.1 with a new P-256 key.
    pub async fn start() -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a P-256 key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("cannot load the generated key"))?;
        let inner = Arc::new(Inner {
            kid: uuid::Uuid::new_v4().to_string(),
            key,
            rng,
            requests: AtomicUsize::new(0),
            ledger: super::plaid_sync::Ledger::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/webhook_verification_key/get", post(key_get))
            .route("/transactions/sync", post(sync))
            .with_state(Arc::clone(&inner));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, inner, task })
    }

    /// The id of the key this fake signs with.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The item's transactions (`/transactions/sync`) and the faults it can be told to show.
    pub fn ledger(&self) -> &super::plaid_sync::Ledger {
        &self.inner.ledger
    }

    /// How many key requests it answered.
    pub fn key_requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// The `Plaid-Verification` header for `body`, issued at `iat`, naming key `kid`.
    pub fn sign(&self, body: &[u8], iat: i64, kid: &str) -> String {
        let header = json!({"alg": "ES256", "kid": kid, "typ": "JWT"});
        let claims = json!({
            "iat": iat,
            "request_body_sha256": hex::encode(Sha256::digest(body)),
        });
        let signed = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature = self
            .inner
            .key
            .sign(&self.inner.rng, signed.as_bytes())
            .map(|s| B64URL.encode(s.as_ref()))
            .unwrap_or_default();
        format!("{signed}.{signature}")
    }
}

pub(crate) fn plaid_error(
    status: StatusCode,
    error_type: &str,
    code: &str,
    message: &str,
) -> Response {
    let body = json!({
        "display_message": null,
        "error_code": code,
        "error_message": message,
        "error_type": error_type,
        "request_id": uuid::Uuid::new_v4().simple().to_string(),
    });
    (status, Json(body)).into_response()
}

async fn sync(State(inner): State<Arc<Inner>>, Json(request): Json<Value>) -> Response {
    inner.ledger.sync(request).await
}

async fn key_get(State(inner): State<Arc<Inner>>, Json(request): Json<Value>) -> Response {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    if request["client_id"] != CLIENT_ID || request["secret"] != SECRET {
        return plaid_error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_API_KEYS",
            "invalid client_id or secret provided",
        );
    }
    if request["key_id"] != inner.kid.as_str() {
        return plaid_error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_WEBHOOK_VERIFICATION_KEY_ID",
            "invalid key_id provided",
        );
    }
    // The public key is the uncompressed point 04 || x || y.
    let point = inner.key.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    Json(json!({
        "key": {
            "alg": "ES256",
            "created_at": 1_560_466_143,
            "crv": "P-256",
            "expired_at": null,
            "kid": inner.kid,
            "kty": "EC",
            "use": "sig",
            "x": B64URL.encode(x),
            "y": B64URL.encode(y),
        },
        "request_id": uuid::Uuid::new_v4().simple().to_string(),
    }))
    .into_response()
}
