//! [`Poller::page`]: one call to a provider's API through the guarded client, its answer
//! read by the provider, each record stored in the blob store.

use std::time::Duration;

use apex_common::blob::BlobStore;
use bytes::Bytes;

use super::{Account, Answer, PageRequest, PolledPage, PolledRecord, Provider, Secrets};
use crate::settings::IngestSettings;

/// Why a page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// HTTP 429: try again after `retry_after` (the API's `Retry-After`, else a second).
    #[error("{message} (rate limited; retry after {} s)", retry_after.as_secs_f32())]
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    /// The API or the blob store is away, or answered 5xx: try again later.
    #[error("{0}")]
    Transient(String),
    /// The API refused the request (credentials, a missing secret, a bad account) or
    /// answered something unreadable: trying again as it is cannot help.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
}

impl PollError {
    pub fn refused(code: &str, message: impl Into<String>) -> Self {
        Self::Refused {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The guarded HTTP client, the blob store and the secrets a poll needs (cheap to clone).
#[derive(Clone)]
pub struct Poller {
    http: reqwest::Client,
    policy: apex_common::fetch::FetchPolicy,
    blobs: BlobStore,
    secrets: Secrets,
    max_bytes: u64,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

/// The longest `Retry-After` honoured as given (a longer one is waited in steps of this).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds; `None` when absent or not a number of seconds.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
}

impl Poller {
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        let policy = settings
            .fetch_policy()
            .map_err(|e| anyhow::anyhow!("ingest.fetch_allow: {e}"))?;
        let http = policy.client(
            reqwest::Client::builder().timeout(Duration::from_secs(settings.fetch_timeout_secs)),
        )?;
        Ok(Self {
            http,
            policy,
            blobs: BlobStore::open(&settings.blob_url)?,
            secrets: Secrets::new(&settings.poll_secrets_dir),
            max_bytes: settings.fetch_max_bytes,
        })
    }

    /// Reads one page of `req.account` from `req.state`, stores its records and returns
    /// their references with the next state.
    pub async fn page(&self, req: PageRequest) -> Result<PolledPage, PollError> {
        let account = &req.account;
        if let Some(problem) = account.problems().into_iter().next() {
            return Err(PollError::refused("InvalidAccount", problem));
        }
        let url = url::Url::parse(account.base_url())
            .map_err(|e| PollError::refused("InvalidAccount", format!("base_url: {e}")))?;
        if let Err(refusal) = self.policy.check_url(&url) {
            return Err(PollError::refused("FetchRefused", refusal.to_string()));
        }
        let secret = |name: &str| {
            self.secrets
                .get(&account.name, name)
                .map_err(|m| PollError::refused("MissingSecret", m))
        };
        let request = match account.provider {
            Provider::Plaid => super::plaid::request(&self.http, account, &req.state, secret)?,
            Provider::Hubspot => super::hubspot::request(&self.http, account, &req.state, secret)?,
            Provider::Stripe => super::stripe::request(&self.http, account, &req.state, secret)?,
        };
        let (status, headers, body) = self.send(account, request).await?;
        let shown = account.provider.as_str();
        if status == 429 {
            return Err(PollError::RateLimited {
                retry_after: retry_after(&headers).unwrap_or(Duration::from_secs(1)),
                message: format!("{shown}: HTTP 429: {}", excerpt(&body)),
            });
        }
        if status >= 500 || status == 408 {
            return Err(PollError::Transient(format!(
                "{shown}: HTTP {status}: {}",
                excerpt(&body)
            )));
        }
        let answer = match account.provider {
            Provider::Plaid => super::plaid::answer(&req.state, status, &body)?,
            Provider::Hubspot => super::hubspot::answer(account, &req.state, status, &body)?,
            Provider::Stripe => super::stripe::answer(&req.state, status, &body)?,
        };
        self.store(answer).await
    }

    async fn send(
        &self,
        account: &Account,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, Bytes), PollError> {
        let shown = account.provider.as_str();
        let mut response = request.send().await.map_err(|e| {
            match apex_common::fetch::refusal_of(&e) {
                Some(refusal) => PollError::refused("FetchRefused", refusal.to_string()),
                // Without the URL: a query string may hold a cursor, never a secret, but
                // the error need not carry either.
                None => PollError::Transient(format!(
                    "{shown}: {}",
                    crate::error_chain(&e.without_url())
                )),
            }
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            PollError::Transient(format!("{shown}: {}", crate::error_chain(&e.without_url())))
        })? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > self.max_bytes {
                return Err(PollError::refused(
                    "TooLarge",
                    format!(
                        "{shown}: an answer over {} bytes (ingest.fetch_max_bytes)",
                        self.max_bytes
                    ),
                ));
            }
        }
        Ok((status, headers, body.into()))
    }

    async fn store(&self, answer: Answer) -> Result<PolledPage, PollError> {
        let mut records = Vec::with_capacity(answer.records.len());
        for item in answer.records {
            let bytes = serde_json::to_vec_pretty(&item.json)
                .map_err(|e| PollError::refused("InvalidAnswer", e.to_string()))?;
            let blob = self
                .blobs
                .put("documents", "application/json", bytes.into())
                .await
                .map_err(|e| PollError::Transient(format!("blob store: {e}")))?;
            records.push(PolledRecord {
                id: item.id,
                kind: item.kind,
                blob: blob.into(),
            });
        }
        Ok(PolledPage {
            records,
            removed: answer.removed,
            state: answer.state,
            more: answer.more,
            cursor: answer.cursor,
            restarted: answer.restarted,
        })
    }
}

/// The start of a body, for an error message (an API's error object, not a secret: the
/// secrets travel in the request only).
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The JSON of an answer, or a refusal naming the provider.
pub(crate) fn json(provider: &str, body: &[u8]) -> Result<serde_json::Value, PollError> {
    serde_json::from_slice(body).map_err(|e| {
        PollError::refused(
            "InvalidAnswer",
            format!(
                "{provider}: the answer is not JSON ({e}): {}",
                excerpt(body)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(reqwest::header::RETRY_AFTER, "0.5".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "86400".parse().expect("value"),
        );
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
