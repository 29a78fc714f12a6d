//! [`Stages::fetch`]: the document's bytes, from the blob store, an http(s) URL or an object
//! store, copied into the blob store under their SHA-256, within the fetch limits.

use super::{FetchInput, StageError, Stages};
use crate::input::Blob;

impl Stages {
    /// Copies the document's bytes into the blob store: `documents/<sha256>`.
    pub async fn fetch(&self, input: FetchInput) -> Result<Blob, StageError> {
        super::span::traced(super::span::step_of("fetch", ""), async move {
            let location = input.location.trim();
            let bytes = if let Some(key) = location.strip_prefix("blob:") {
                self.blobs.get(key).await.map_err(|e| match e {
                    apex_common::ServiceError::NotFound(m) => StageError::fatal("NotFound", m),
                    apex_common::ServiceError::InvalidArgument { message, .. } => {
                        StageError::fatal("InvalidArgument", format!("location: {message}"))
                    }
                    other => StageError::transient(other.to_string()),
                })?
            } else if location.starts_with("http://") || location.starts_with("https://") {
                self.fetch_http(location).await?
            } else {
                self.fetch_object(location).await?
            };
            let blob = self
                .blobs
                .put("documents", &input.mime_type, bytes)
                .await
                .map_err(|e| StageError::transient(e.to_string()))?;
            Ok(blob.into())
        })
        .await
    }

    async fn fetch_http(&self, url: &str) -> Result<bytes::Bytes, StageError> {
        let parsed = url::Url::parse(url).map_err(|e| {
            StageError::fatal("InvalidArgument", format!("the location is not a URL: {e}"))
        })?;
        // An address literal never reaches the client's resolver: judge it here. Names are
        // judged by the resolver, redirects by the redirect policy.
        let shown = apex_common::fetch::shown(&parsed);
        if let Err(refusal) = self.fetch_policy.check_url(&parsed) {
            return Err(StageError::fatal("FetchRefused", refusal.to_string()));
        }
        let mut response =
            self.http.get(parsed).send().await.map_err(
                |e| match apex_common::fetch::refusal_of(&e) {
                    Some(refusal) => StageError::fatal("FetchRefused", refusal.to_string()),
                    None => StageError::transient(format!(
                        "fetch {shown}: {}",
                        crate::error_chain(&e.without_url())
                    )),
                },
            )?;
        let status = response.status();
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            return Err(StageError::fatal(
                "FetchRefused",
                format!("fetch {shown}: HTTP {status}"),
            ));
        }
        if status.is_redirection() {
            return Err(StageError::fatal(
                "FetchRefused",
                format!(
                    "fetch {shown}: HTTP {status}, a redirect to a location that is not fetched (only http and https)"
                ),
            ));
        }
        if !status.is_success() {
            return Err(StageError::transient(format!(
                "fetch {shown}: HTTP {status}"
            )));
        }
        if let Some(len) = response.content_length()
            && len > self.fetch_max_bytes
        {
            return Err(self.too_large(&shown, len));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            StageError::transient(format!(
                "fetch {shown}: {}",
                crate::error_chain(&e.without_url())
            ))
        })? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > self.fetch_max_bytes {
                return Err(self.too_large(&shown, body.len() as u64));
            }
        }
        Ok(body.into())
    }

    async fn fetch_object(&self, location: &str) -> Result<bytes::Bytes, StageError> {
        let url = if location.starts_with('/') {
            format!("file://{location}")
        } else {
            location.to_owned()
        };
        let parsed = url::Url::parse(&url).map_err(|e| {
            StageError::fatal(
                "InvalidArgument",
                format!("location `{location}` is not a URL, an absolute path or blob:<key>: {e}"),
            )
        })?;
        let (store, path) = object_store::parse_url(&parsed).map_err(|e| {
            StageError::fatal("InvalidArgument", format!("location `{location}`: {e}"))
        })?;
        let read = async {
            let meta = store.head(&path).await?;
            if meta.size > self.fetch_max_bytes {
                return Ok(Err(self.too_large(location, meta.size)));
            }
            let bytes = store.get(&path).await?.bytes().await?;
            Ok::<_, object_store::Error>(Ok(bytes))
        };
        match tokio::time::timeout(self.fetch_timeout, read).await {
            Err(_) => Err(StageError::transient(format!(
                "fetch {location}: no answer within {} s",
                self.fetch_timeout.as_secs()
            ))),
            Ok(Ok(result)) => result,
            Ok(Err(object_store::Error::NotFound { .. })) => Err(StageError::fatal(
                "NotFound",
                format!("fetch {location}: not found"),
            )),
            Ok(Err(e)) => Err(StageError::transient(format!("fetch {location}: {e}"))),
        }
    }

    fn too_large(&self, location: &str, size: u64) -> StageError {
        StageError::fatal(
            "TooLarge",
            format!(
                "{location} is {size} bytes, over the fetch limit of {} bytes (ingest.fetch_max_bytes)",
                self.fetch_max_bytes
            ),
        )
    }
}
