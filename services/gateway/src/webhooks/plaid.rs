//! Plaid's webhook verification: the `Plaid-Verification` header is an ES256 JWT whose
//! header names the signing key (`kid`) and whose claims carry `iat` and the SHA-256 of the
//! raw body. Keys come from `POST /webhook_verification_key/get` (a JWK on P-256), fetched
//! through the guarded client and kept by `kid`; a key Plaid says has expired is refused.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::Mutex;

use super::verify::{Delivery, Refusal, Verified};

/// How long a `kid` Plaid did not know is not asked about again.
const UNKNOWN_KID_FOR: Duration = Duration::from_secs(60);
/// Keys (and unknown kids) kept at most; past it the cache starts over.
const MAX_CACHED: usize = 1024;

/// A P-256 public key as Plaid's key endpoint returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    #[serde(default)]
    pub alg: String,
    #[serde(default)]
    pub crv: String,
    pub x: String,
    pub y: String,
    /// Seconds since the epoch; set once Plaid has rotated the key out.
    #[serde(default)]
    pub expired_at: Option<i64>,
}

#[derive(Deserialize)]
struct KeyReply {
    key: Jwk,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

#[derive(Deserialize)]
struct Claims {
    iat: i64,
    request_body_sha256: String,
}

/// The JWT's key id, after checking that it is an ES256 JWT at all.
pub fn key_id(d: &Delivery<'_>) -> Result<String, Refusal> {
    let token = d.header("plaid-verification")?;
    let header = token
        .split('.')
        .next()
        .ok_or_else(|| Refusal::Malformed("plaid-verification is not a JWT".into()))?;
    let header: Header = decode_part(header, "header")?;
    if header.alg != "ES256" {
        // Never "none", never an HMAC keyed with a public value.
        return Err(Refusal::Malformed(format!(
            "plaid-verification: algorithm `{}` is not ES256",
            header.alg
        )));
    }
    Ok(header.kid)
}

/// Verifies the delivery against `key` (the key of its `kid`).
pub fn verify_with(key: &Jwk, d: &Delivery<'_>) -> Result<Verified, Refusal> {
    let token = d.header("plaid-verification")?;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(Refusal::Malformed(
            "plaid-verification is not a JWT of three parts".into(),
        ));
    };
    let kid = key_id(d)?;
    if kid != key.kid {
        return Err(Refusal::UnknownKey(kid));
    }
    if key.expired_at.is_some_and(|at| at <= d.now_secs) {
        return Err(Refusal::UnknownKey(format!("{kid} (expired)")));
    }
    let point = public_point(key)?;
    let signature = B64URL
        .decode(signature)
        .map_err(|_| Refusal::Malformed("plaid-verification signature is not base64url".into()))?;
    let signed = format!("{header}.{claims}");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| Refusal::BadSignature)?;
    let claims: Claims = decode_part(claims, "claims")?;
    let body_sha = hex::encode(Sha256::digest(d.body));
    if !bool::from(
        body_sha
            .as_bytes()
            .ct_eq(claims.request_body_sha256.to_ascii_lowercase().as_bytes()),
    ) {
        // Signed by Plaid, but for other bytes.
        return Err(Refusal::BadSignature);
    }
    d.check_time(claims.iat)?;
    Ok(Verified {
        timestamp: Some(claims.iat),
        secret_index: 0,
    })
}

fn public_point(key: &Jwk) -> Result<Vec<u8>, Refusal> {
    if !key.crv.is_empty() && key.crv != "P-256" {
        return Err(Refusal::Malformed(format!(
            "Plaid key {} is on `{}`, not P-256",
            key.kid, key.crv
        )));
    }
    let coordinate = |c: &str| {
        B64URL
            .decode(c)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                Refusal::Malformed(format!("Plaid key {} is not a P-256 point", key.kid))
            })
    };
    let mut point = vec![4u8];
    point.extend(coordinate(&key.x)?);
    point.extend(coordinate(&key.y)?);
    Ok(point)
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, Refusal> {
    let bytes = B64URL
        .decode(part)
        .map_err(|_| Refusal::Malformed(format!("plaid-verification {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::Malformed(format!("plaid-verification {what}: {e}")))
}

/// Plaid's keys, fetched when first needed and kept.
pub struct PlaidKeys {
    url: String,
    client_id: String,
    secret: String,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

enum Cached {
    Key(Jwk),
    Unknown(Instant),
}

impl std::fmt::Debug for PlaidKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaidKeys")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PlaidKeys {
    /// `base_url` is Plaid's API (`https://production.plaid.com`); `http` must be the
    /// guarded client.
    pub fn new(base_url: &str, client_id: String, secret: String, http: reqwest::Client) -> Self {
        Self {
            url: format!(
                "{}/webhook_verification_key/get",
                base_url.trim_end_matches('/')
            ),
            client_id,
            secret,
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Verifies a Plaid delivery, fetching its key when it is not known yet.
    pub async fn verify(&self, d: &Delivery<'_>) -> Result<Verified, Refusal> {
        let kid = key_id(d)?;
        let key = self.key(&kid).await?;
        verify_with(&key, d)
    }

    async fn key(&self, kid: &str) -> Result<Jwk, Refusal> {
        let mut cache = self.cache.lock().await;
        match cache.get(kid) {
            Some(Cached::Key(k)) => return Ok(k.clone()),
            Some(Cached::Unknown(at)) if at.elapsed() < UNKNOWN_KID_FOR => {
                return Err(Refusal::UnknownKey(kid.to_owned()));
            }
            _ => {}
        }
        let fetched = self.fetch(kid).await;
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        match fetched {
            Ok(key) => {
                cache.insert(kid.to_owned(), Cached::Key(key.clone()));
                Ok(key)
            }
            Err(Refusal::UnknownKey(k)) => {
                cache.insert(kid.to_owned(), Cached::Unknown(Instant::now()));
                Err(Refusal::UnknownKey(k))
            }
            Err(other) => Err(other),
        }
    }

    async fn fetch(&self, kid: &str) -> Result<Jwk, Refusal> {
        let body = serde_json::json!({
            "client_id": self.client_id,
            "secret": self.secret,
            "key_id": kid,
        });
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            // The error names the URL, never the request body (which holds the secret).
            .map_err(|e| Refusal::KeyUnavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status.as_u16() == 400 || status.as_u16() == 404 {
            return Err(Refusal::UnknownKey(kid.to_owned()));
        }
        if !status.is_success() {
            return Err(Refusal::KeyUnavailable(format!("Plaid answered {status}")));
        }
        let reply: KeyReply = response
            .json()
            .await
            .map_err(|e| Refusal::KeyUnavailable(format!("Plaid's key reply: {e}")))?;
        if reply.key.kid != kid {
            return Err(Refusal::KeyUnavailable(format!(
                "Plaid returned key {} for {kid}",
                reply.key.kid
            )));
        }
        Ok(reply.key)
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;

    const JWT: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6IjZjNTUxNmUxLTkyZGMtNDc5ZS1hOGZmLTVhNTE5OTJlMDAwMSIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE1OTA4ODcwMDEsInJlcXVlc3RfYm9keV9zaGEyNTYiOiJiNjNhMDdiNTQ3YjAwZjk5MjU0N2Y2YmJjOGQ5YWNjNjFhOGNjZWUxMzhiYzgyZjQ0YTZiYWEwOTY4M2E1ZDBmIn0.OOKvIihgqCj7Qrb2bmz7T3t7uK-0JyjiEqL2s1kWeJBM4MMmjaHKK8GmU_z91QolBWMzvPgs718EElY-rE3cwQ";
    const IAT: i64 = 1590887001;

    fn key() -> Jwk {
        Jwk {
            kid: "6c5516e1-92dc-479e-a8ff-5a51992e0001".into(),
            alg: "ES256".into(),
            crv: "P-256".into(),
            x: "35lvC8uz2QrWpQJ3TUH8t9o9DURMp7ydU518RKDl20k".into(),
            y: "I8BuXB2bvxelzJAd7OKhd-ZwjCst05Fx47Mb_0ugros".into(),
            expired_at: None,
        }
    }

    /// The published body: 2-space-indented JSON in this key order, no final newline.
    fn body() -> Vec<u8> {
        let text = "{\n  \"error\": null,\n  \"item_id\": \"yxQbxDjnD8hr69pKbQpbcKeVn3GL9QuyA7NV3\",\n  \"new_transactions\": 390,\n  \"webhook_code\": \"HISTORICAL_UPDATE\",\n  \"webhook_type\": \"TRANSACTIONS\"\n}";
        text.as_bytes().to_vec()
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "plaid-verification",
            HeaderValue::from_str(token).expect("well-formed in the test"),
        );
        h
    }

    fn delivery<'a>(h: &'a HeaderMap, body: &'a [u8], now: i64) -> Delivery<'a> {
        Delivery {
            headers: h,
            body,
            now_secs: now,
            tolerance_secs: 300,
        }
    }

    #[test]
    fn published_plaid_webhook_verifies_with_the_clock_frozen() {
        let body = body();
        assert_eq!(
            hex::encode(Sha256::digest(&body)),
            "b63a07b547b00f992547f6bbc8d9acc61a8ccee138bc82f44a6baa09683a5d0f"
        );
        let h = headers(JWT);
        let v =
            verify_with(&key(), &delivery(&h, &body, IAT + 10)).expect("well-formed in the test");
        assert_eq!(v.timestamp, Some(IAT));
        assert_eq!(
            key_id(&delivery(&h, &body, IAT)).expect("well-formed in the test"),
            "6c5516e1-92dc-479e-a8ff-5a51992e0001"
        );
    }

    #[test]
    fn plaid_refusals() {
        let body = body();
        let h = headers(JWT);
        // Five minutes and a second later.
        assert_eq!(
            verify_with(&key(), &delivery(&h, &body, IAT + 301))
                .expect_err("refused")
                .reason(),
            "stale"
        );
        // Another body under the same JWT.
        let mut changed = body.clone();
        changed.push(b' ');
        assert_eq!(
            verify_with(&key(), &delivery(&h, &changed, IAT)).expect_err("refused"),
            Refusal::BadSignature
        );
        // A tampered claim breaks the signature.
        let mut parts: Vec<String> = JWT.split('.').map(str::to_owned).collect();
        parts[1] = B64URL.encode(
            br#"{"iat":1590887001,"request_body_sha256":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
        );
        let forged = headers(&parts.join("."));
        assert_eq!(
            verify_with(&key(), &delivery(&forged, &body, IAT)).expect_err("refused"),
            Refusal::BadSignature
        );
        // Another key (x and y swapped is not even on the curve, or not this key).
        let mut other = key();
        std::mem::swap(&mut other.x, &mut other.y);
        assert!(verify_with(&other, &delivery(&h, &body, IAT)).is_err());
        // An expired key.
        let mut expired = key();
        expired.expired_at = Some(IAT - 1);
        assert_eq!(
            verify_with(&expired, &delivery(&h, &body, IAT))
                .expect_err("refused")
                .reason(),
            "unknown_key"
        );
        // alg none, or HS256.
        for alg in ["none", "HS256"] {
            let header = B64URL.encode(format!(
                r#"{{"alg":"{alg}","kid":"6c5516e1-92dc-479e-a8ff-5a51992e0001"}}"#
            ));
            let token = format!(
                "{header}.{}.",
                JWT.split('.').nth(1).expect("well-formed in the test")
            );
            let h = headers(&token);
            assert_eq!(
                verify_with(&key(), &delivery(&h, &body, IAT))
                    .expect_err("refused")
                    .reason(),
                "malformed"
            );
        }
        // No header at all, or not a JWT.
        let empty = HeaderMap::new();
        assert_eq!(
            verify_with(&key(), &delivery(&empty, &body, IAT)).expect_err("refused"),
            Refusal::MissingHeader("plaid-verification")
        );
        let h = headers("abc");
        assert_eq!(
            verify_with(&key(), &delivery(&h, &body, IAT))
                .expect_err("refused")
                .reason(),
            "malformed"
        );
    }
}
