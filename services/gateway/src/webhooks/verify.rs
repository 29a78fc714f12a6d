//! The HMAC signature schemes of the webhook sources, checked on the raw request bytes.
//!
//! | scheme | headers | signed bytes | key |
//! | --- | --- | --- | --- |
//! | `front-app` | `x-front-signature`, `x-front-request-timestamp` (ms or s) | base64 HMAC-SHA256 of `ts:body` | the secret's UTF-8 bytes |
//! | `front-rule` | `x-front-signature` | base64 HMAC-SHA1 of the body | the secret's UTF-8 bytes |
//! | `samsara` | `x-samsara-timestamp` (s), `x-samsara-signature: v1=<hex>` | HMAC-SHA256 of `v1:ts:body` | the secret base64-decoded |
//! | `stripe` | `stripe-signature: t=…,v1=…[,v1=…]` | hex HMAC-SHA256 of `t.body` | the whole `whsec_…` string |
//! | `standard-webhooks` | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64> …` | base64 HMAC-SHA256 of `id.ts.body` | the part after `whsec_`, base64-decoded |
//!
//! Every configured secret of a source is tried (rotation), every signature the request
//! carries too; the comparison is ring's constant-time `hmac::verify`. The signature is
//! checked before the timestamp, so `stale` and `future` are said only of authentic
//! requests (a replay, a skewed clock).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// How a source signs its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    FrontApp,
    FrontRule,
    Samsara,
    Stripe,
    StandardWebhooks,
    Plaid,
}

impl Scheme {
    pub const NAMES: [&'static str; 6] = [
        "front-app",
        "front-rule",
        "samsara",
        "stripe",
        "standard-webhooks",
        "plaid",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FrontApp => "front-app",
            Self::FrontRule => "front-rule",
            Self::Samsara => "samsara",
            Self::Stripe => "stripe",
            Self::StandardWebhooks => "standard-webhooks",
            Self::Plaid => "plaid",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name.trim()))
            .map(|i| {
                [
                    Self::FrontApp,
                    Self::FrontRule,
                    Self::Samsara,
                    Self::Stripe,
                    Self::StandardWebhooks,
                    Self::Plaid,
                ][i]
            })
    }

    /// Whether the scheme signs a timestamp (and so refuses stale deliveries).
    pub fn has_timestamp(self) -> bool {
        !matches!(self, Self::FrontRule)
    }

    /// The HMAC key of a configured secret, or why the secret cannot be one. Plaid signs
    /// with its own keys (see [`super::plaid`]) and takes no secret.
    pub fn key(self, secret: &str) -> Result<Secret, String> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        let bytes = match self {
            Self::FrontApp | Self::FrontRule | Self::Stripe => secret.as_bytes().to_vec(),
            Self::Samsara => B64
                .decode(secret)
                .map_err(|e| format!("a Samsara secret is base64: {e}"))?,
            Self::StandardWebhooks => B64
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .map_err(|e| format!("a Standard Webhooks secret is whsec_<base64>: {e}"))?,
            Self::Plaid => return Err("Plaid deliveries are verified with Plaid's keys".into()),
        };
        if bytes.is_empty() {
            return Err("the secret decodes to no bytes".to_owned());
        }
        Ok(Secret(bytes))
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Self::FrontRule => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            _ => hmac::HMAC_SHA256,
        }
    }
}

/// An HMAC key. Its bytes are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Why a delivery was refused. [`Refusal::reason`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("the signature does not match any configured secret")]
    BadSignature,
    #[error("the signed timestamp is {age_secs} s old (tolerance {tolerance_secs} s)")]
    Stale { age_secs: i64, tolerance_secs: i64 },
    #[error("the signed timestamp is {ahead_secs} s ahead (tolerance {tolerance_secs} s)")]
    Future {
        ahead_secs: i64,
        tolerance_secs: i64,
    },
    #[error("unknown signing key `{0}`")]
    UnknownKey(String),
    #[error("cannot fetch the signing key: {0}")]
    KeyUnavailable(String),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Stale { .. } => "stale",
            Self::Future { .. } => "future",
            Self::UnknownKey(_) => "unknown_key",
            Self::KeyUnavailable(_) => "key_unavailable",
        }
    }
}

/// A delivery as received: the headers, the raw body, and the clock to judge it by.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Now, in seconds since the epoch.
    pub now_secs: i64,
    /// How far the signed timestamp may be from now, either way.
    pub tolerance_secs: i64,
}

impl<'a> Delivery<'a> {
    /// The header's value, trimmed; missing or not visible ASCII is refused.
    pub fn header(&self, name: &'static str) -> Result<&'a str, Refusal> {
        let value = self.headers.get(name).ok_or(Refusal::MissingHeader(name))?;
        let value = value
            .to_str()
            .map_err(|_| Refusal::Malformed(format!("header `{name}` is not ASCII")))?
            .trim();
        if value.is_empty() {
            return Err(Refusal::MissingHeader(name));
        }
        Ok(value)
    }

    /// Refuses a signed timestamp outside the tolerance.
    pub fn check_time(&self, signed_secs: i64) -> Result<(), Refusal> {
        let tolerance_secs = self.tolerance_secs;
        let age_secs = self.now_secs.saturating_sub(signed_secs);
        if age_secs > tolerance_secs {
            return Err(Refusal::Stale {
                age_secs,
                tolerance_secs,
            });
        }
        if -age_secs > tolerance_secs {
            return Err(Refusal::Future {
                ahead_secs: -age_secs,
                tolerance_secs,
            });
        }
        Ok(())
    }
}

/// What a verified delivery told about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed timestamp, in seconds (none for schemes without one).
    pub timestamp: Option<i64>,
    /// Which configured secret matched (0 = the first), to tell when an old one is unused.
    pub secret_index: usize,
}

/// Verifies an HMAC-signed delivery against every secret.
pub fn verify(scheme: Scheme, secrets: &[Secret], d: &Delivery<'_>) -> Result<Verified, Refusal> {
    let (timestamp, message, signatures) = match scheme {
        Scheme::FrontApp => {
            let signature = d.header("x-front-signature")?;
            let ts_text = d.header("x-front-request-timestamp")?;
            let ts = parse_int(ts_text, "x-front-request-timestamp")?;
            // Front sends milliseconds; seconds are accepted too.
            let secs = if ts > 100_000_000_000 { ts / 1000 } else { ts };
            (
                Some(secs),
                joined(&[ts_text.as_bytes(), b":", d.body]),
                vec![b64(signature, "x-front-signature")?],
            )
        }
        Scheme::FrontRule => {
            let signature = d.header("x-front-signature")?;
            (
                None,
                d.body.to_vec(),
                vec![b64(signature, "x-front-signature")?],
            )
        }
        Scheme::Samsara => {
            let ts_text = d.header("x-samsara-timestamp")?;
            let ts = parse_int(ts_text, "x-samsara-timestamp")?;
            let signature = d.header("x-samsara-signature")?;
            let hex_sig = signature.strip_prefix("v1=").ok_or_else(|| {
                Refusal::Malformed("x-samsara-signature does not start with `v1=`".into())
            })?;
            (
                Some(ts),
                joined(&[b"v1:", ts_text.as_bytes(), b":", d.body]),
                vec![unhex(hex_sig, "x-samsara-signature")?],
            )
        }
        Scheme::Stripe => {
            let header = d.header("stripe-signature")?;
            let mut ts_text = None;
            let mut signatures = Vec::new();
            for part in header.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => ts_text = Some(v.trim()),
                    // v0 (test mode's) and unknown schemes are ignored, as Stripe asks.
                    Some(("v1", v)) => signatures.push(unhex(v.trim(), "stripe-signature")?),
                    _ => {}
                }
            }
            let ts_text =
                ts_text.ok_or_else(|| Refusal::Malformed("stripe-signature has no `t=`".into()))?;
            if signatures.is_empty() {
                return Err(Refusal::Malformed("stripe-signature has no `v1=`".into()));
            }
            (
                Some(parse_int(ts_text, "stripe-signature t")?),
                joined(&[ts_text.as_bytes(), b".", d.body]),
                signatures,
            )
        }
        Scheme::StandardWebhooks => {
            let id = d.header("webhook-id")?;
            let ts_text = d.header("webhook-timestamp")?;
            let ts = parse_int(ts_text, "webhook-timestamp")?;
            let mut signatures = Vec::new();
            for part in d.header("webhook-signature")?.split_whitespace() {
                // Other versions (v1a: asymmetric) are not ours to check.
                if let Some(sig) = part.strip_prefix("v1,") {
                    signatures.push(b64(sig, "webhook-signature")?);
                }
            }
            if signatures.is_empty() {
                return Err(Refusal::Malformed("webhook-signature has no `v1,`".into()));
            }
            (
                Some(ts),
                joined(&[id.as_bytes(), b".", ts_text.as_bytes(), b".", d.body]),
                signatures,
            )
        }
        Scheme::Plaid => {
            return Err(Refusal::Malformed(
                "Plaid deliveries are verified by their JWT".into(),
            ));
        }
    };
    let secret_index = secrets
        .iter()
        .position(|secret| {
            let key = hmac::Key::new(scheme.algorithm(), &secret.0);
            signatures
                .iter()
                .any(|sig| hmac::verify(&key, &message, sig).is_ok())
        })
        .ok_or(Refusal::BadSignature)?;
    if let Some(ts) = timestamp {
        d.check_time(ts)?;
    }
    Ok(Verified {
        timestamp,
        secret_index,
    })
}

/// Signs `body` as `scheme` would with `secret` at `ts` (seconds; Front's in ms) and, for
/// Standard Webhooks, message id `id`: the headers a sender adds. For the test servers and
/// `apex sources`' self-test; never used to verify.
pub fn sign(
    scheme: Scheme,
    secret: &Secret,
    ts: i64,
    id: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let key = hmac::Key::new(scheme.algorithm(), &secret.0);
    let tag = |message: &[u8]| hmac::sign(&key, message);
    match scheme {
        Scheme::FrontApp => {
            let ts = (ts * 1000).to_string();
            let sig = tag(&joined(&[ts.as_bytes(), b":", body]));
            vec![
                ("x-front-request-timestamp", ts),
                ("x-front-signature", B64.encode(sig.as_ref())),
            ]
        }
        Scheme::FrontRule => vec![("x-front-signature", B64.encode(tag(body).as_ref()))],
        Scheme::Samsara => {
            let ts = ts.to_string();
            let sig = tag(&joined(&[b"v1:", ts.as_bytes(), b":", body]));
            vec![
                ("x-samsara-timestamp", ts),
                ("x-samsara-signature", format!("v1={}", hex::encode(sig))),
            ]
        }
        Scheme::Stripe => {
            let ts = ts.to_string();
            let sig = tag(&joined(&[ts.as_bytes(), b".", body]));
            vec![(
                "stripe-signature",
                format!("t={ts},v1={}", hex::encode(sig)),
            )]
        }
        Scheme::StandardWebhooks => {
            let ts = ts.to_string();
            let sig = tag(&joined(&[id.as_bytes(), b".", ts.as_bytes(), b".", body]));
            vec![
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", ts),
                (
                    "webhook-signature",
                    format!("v1,{}", B64.encode(sig.as_ref())),
                ),
            ]
        }
        Scheme::Plaid => Vec::new(),
    }
}

fn joined(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn parse_int(text: &str, what: &str) -> Result<i64, Refusal> {
    text.parse()
        .map_err(|_| Refusal::Malformed(format!("{what} is not a whole number of seconds")))
}

fn b64(text: &str, what: &str) -> Result<Vec<u8>, Refusal> {
    B64.decode(text.trim())
        .map_err(|_| Refusal::Malformed(format!("{what} is not base64")))
}

fn unhex(text: &str, what: &str) -> Result<Vec<u8>, Refusal> {
    hex::decode(text.trim()).map_err(|_| Refusal::Malformed(format!("{what} is not hex")))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
