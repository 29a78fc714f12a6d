//! The ingestion stages as plain calls: each builds one request, calls one service (or,
//! for [`Stages::fetch`], copies the bytes into the blob store) and maps the answer to a
//! [`StageError`] that says whether trying again can help. The Temporal activities wrap
//! these with heartbeats, deadlines and retry policies; the gateway's legacy path calls
//! them directly in sequence. Both paths therefore send the services identical requests.

use std::collections::BTreeMap;
use std::time::Duration;

use apex_common::blob::BlobStore;
use apex_common::grpc::TracePropagation;
use apex_proto::embedder::v1::EmbedBlobRequest;
use apex_proto::embedder::v1::embedder_service_client::EmbedderServiceClient;
use apex_proto::extractor::v1::ExtractBlobRequest;
use apex_proto::extractor::v1::extractor_service_client::ExtractorServiceClient;
use apex_proto::parser::v1::ParseBlobRequest;
use apex_proto::parser::v1::parser_service_client::ParserServiceClient;
use apex_proto::writer::v1::WRITE_OUTCOMES;
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;
use apex_proto::writer::v1::{
    DeleteDocumentRequest, InspectDocumentRequest, StepState, Store, WriteDocumentRequest,
    WriteDocumentResponse,
};
use serde::{Deserialize, Serialize};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

use crate::input::{Blob, DocRef};
use crate::settings::IngestSettings;
use crate::status::{Retry, failure_type, retry_class};

pub type Traced = InterceptedService<Channel, TracePropagation>;

/// Lazily connected clients of the four services.
#[derive(Clone, Debug)]
pub struct ServiceClients {
    pub parser: ParserServiceClient<Traced>,
    pub extractor: ExtractorServiceClient<Traced>,
    pub embedder: EmbedderServiceClient<Traced>,
    pub writer: WriterServiceClient<Traced>,
}

fn channel(addr: &str) -> anyhow::Result<Traced> {
    let channel = Channel::from_shared(addr.to_owned())
        .map_err(|e| anyhow::anyhow!("service address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    Ok(InterceptedService::new(channel, TracePropagation))
}

impl ServiceClients {
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        let max = settings.max_message_bytes;
        Ok(Self {
            parser: ParserServiceClient::new(channel(&settings.parser_addr)?)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            extractor: ExtractorServiceClient::new(channel(&settings.extractor_addr)?)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            embedder: EmbedderServiceClient::new(channel(&settings.embedder_addr)?)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            writer: WriterServiceClient::new(channel(&settings.writer_addr)?)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        })
    }
}

/// A stage that did not succeed: the failure type (as Temporal records it), the reason,
/// and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub type_name: String,
    pub message: String,
    pub retryable: bool,
    /// The error contract's code of the service's answer (from its details, else its gRPC
    /// code), when a service answered.
    pub kind: Option<apex_common::error::ErrorCode>,
}

impl StageError {
    /// A failure carrying the service's reason, retryable or not by its code.
    pub fn grpc(service: &str, status: &tonic::Status) -> Self {
        Self {
            type_name: failure_type(status.code()),
            message: format!("{service}: {}", status.message()),
            retryable: retry_class(status) == Retry::Backoff,
            kind: Some(apex_common::error::ErrorCode::of_status(status)),
        }
    }

    /// A failure no retry can fix.
    pub fn fatal(type_name: &str, message: String) -> Self {
        Self {
            type_name: type_name.to_owned(),
            message,
            retryable: false,
            kind: None,
        }
    }

    /// A transient failure.
    pub fn transient(message: String) -> Self {
        Self {
            type_name: "Transient".to_owned(),
            message,
            retryable: true,
            kind: None,
        }
    }

    /// A failed write, naming the failing stores from the status details the writer
    /// attaches.
    pub fn write(status: &tonic::Status) -> Self {
        let stores = apex_common::error::decode_details(status)
            .and_then(|d| d.find::<WriteDocumentResponse>(WRITE_OUTCOMES))
            .map(|r| {
                r.outcomes
                    .iter()
                    .filter(|o| o.state == StepState::Failed as i32)
                    .filter_map(|o| Store::try_from(o.store).ok())
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("STORE_")
                            .to_ascii_lowercase()
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut e = Self::grpc("writer", status);
        if !stores.is_empty() {
            e.message = format!(
                "writer: store {} failed: {}",
                stores.join(", "),
                status.message()
            );
        }
        e
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FetchInput {
    pub location: String,
    pub mime_type: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Fetched {
    pub blob: Blob,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ParseInput {
    pub source: Blob,
    pub file_name: String,
    pub mime_type: String,
    pub document: DocRef,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Parsed {
    pub artifact: Blob,
    pub format: String,
    pub chunk_count: u32,
    pub text_chars: u64,
    pub warnings: Vec<String>,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ArtifactInput {
    pub parsed: Blob,
    pub document: DocRef,
    pub metadata: BTreeMap<String, String>,
    /// Characters of text in the parsed document (a document with text and no entities
    /// is counted).
    pub text_chars: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Extracted {
    pub artifact: Blob,
    pub entity_count: u32,
    pub mention_count: u32,
    pub relation_count: u32,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Embedded {
    pub artifact: Blob,
    pub vector_count: u32,
    pub model_id: String,
    pub dimension: u32,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct WriteInput {
    pub document: DocRef,
    pub metadata: BTreeMap<String, String>,
    pub content_sha256: String,
    pub parsed: Blob,
    pub entities: Option<Blob>,
    pub vectors: Option<Blob>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Written {
    pub replayed: bool,
    pub attempt: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Stored {
    pub present: bool,
    pub version: u64,
    pub content_sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Deleted {
    pub existed: bool,
}

/// The clients, the blob store and the fetch limits every stage needs (cheap to clone).
#[derive(Clone)]
pub struct Stages {
    clients: ServiceClients,
    blobs: BlobStore,
    fetch_max_bytes: u64,
    fetch_timeout: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stages")
            .field("fetch_max_bytes", &self.fetch_max_bytes)
            .finish_non_exhaustive()
    }
}

fn with_timeout<T>(message: T, timeout: Option<Duration>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(t) = timeout {
        req.set_timeout(t);
    }
    req
}

impl Stages {
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        Ok(Self {
            clients: ServiceClients::new(settings)?,
            blobs: BlobStore::open(&settings.blob_url)?,
            fetch_max_bytes: settings.fetch_max_bytes,
            fetch_timeout: Duration::from_secs(settings.fetch_timeout_secs),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(settings.fetch_timeout_secs))
                .build()?,
        })
    }

    pub fn clients(&self) -> &ServiceClients {
        &self.clients
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Copies the document's bytes into the blob store: `documents/<sha256>`.
    pub async fn fetch(&self, input: FetchInput) -> Result<Blob, StageError> {
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
    }

    /// The writer's view of the document: is it stored, at which version and hash.
    pub async fn check(
        &self,
        document_id: String,
        timeout: Option<Duration>,
    ) -> Result<Stored, StageError> {
        let r = self
            .clients
            .writer
            .clone()
            .inspect_document(with_timeout(
                InspectDocumentRequest { document_id },
                timeout,
            ))
            .await
            .map_err(|s| StageError::grpc("writer", &s))?
            .into_inner();
        Ok(Stored {
            present: r.version > 0,
            version: r.version,
            content_sha256: r.content_sha256,
        })
    }

    /// `ParseBlob`.
    pub async fn parse(
        &self,
        input: ParseInput,
        timeout: Option<Duration>,
    ) -> Result<Parsed, StageError> {
        let req = with_timeout(
            ParseBlobRequest {
                source: Some(input.source.into()),
                file_name: input.file_name,
                mime_type: input.mime_type,
                document: Some(input.document.into()),
                ..Default::default()
            },
            timeout,
        );
        let r = self
            .clients
            .parser
            .clone()
            .parse_blob(req)
            .await
            .map_err(|s| StageError::grpc("parser", &s))?
            .into_inner();
        let summary = r.summary.unwrap_or_default();
        Ok(Parsed {
            artifact: r.artifact.unwrap_or_default().into(),
            format: summary.format,
            chunk_count: summary.chunk_count,
            text_chars: summary.text_chars,
            warnings: summary.warnings,
            attempt: 0,
        })
    }

    /// `ExtractBlob`.
    pub async fn extract(
        &self,
        input: ArtifactInput,
        timeout: Option<Duration>,
    ) -> Result<Extracted, StageError> {
        let req = with_timeout(
            ExtractBlobRequest {
                parsed: Some(input.parsed.into()),
                document: Some(input.document.into()),
                metadata: input.metadata.into_iter().collect(),
            },
            timeout,
        );
        let r = self
            .clients
            .extractor
            .clone()
            .extract_blob(req)
            .await
            .map_err(|s| StageError::grpc("extractor", &s))?
            .into_inner();
        let summary = r.summary.unwrap_or_default();
        Ok(Extracted {
            artifact: r.artifact.unwrap_or_default().into(),
            entity_count: summary.entity_count,
            mention_count: summary.mention_count,
            relation_count: summary.relation_count,
            attempt: 0,
        })
    }

    /// `EmbedBlob`.
    pub async fn embed(
        &self,
        input: ArtifactInput,
        timeout: Option<Duration>,
    ) -> Result<Embedded, StageError> {
        let req = with_timeout(
            EmbedBlobRequest {
                parsed: Some(input.parsed.into()),
                document: Some(input.document.into()),
            },
            timeout,
        );
        let r = self
            .clients
            .embedder
            .clone()
            .embed_blob(req)
            .await
            .map_err(|s| StageError::grpc("embedder", &s))?
            .into_inner();
        let summary = r.summary.unwrap_or_default();
        Ok(Embedded {
            artifact: r.artifact.unwrap_or_default().into(),
            vector_count: summary.vector_count,
            model_id: summary.model_id,
            dimension: summary.dimension,
            attempt: 0,
        })
    }

    /// `WriteDocument` under `idempotency_key`: a retry with the same key gets the first
    /// call's answer.
    pub async fn write(
        &self,
        input: WriteInput,
        idempotency_key: String,
        timeout: Option<Duration>,
    ) -> Result<Written, StageError> {
        let req = with_timeout(
            WriteDocumentRequest {
                document: Some(input.document.into()),
                metadata: input.metadata.into_iter().collect(),
                content_sha256: input.content_sha256,
                parsed: Some(input.parsed.into()),
                entities: input.entities.map(Into::into),
                vectors: input.vectors.map(Into::into),
                idempotency_key,
            },
            timeout,
        );
        let r = self
            .clients
            .writer
            .clone()
            .write_document(req)
            .await
            .map_err(|s| StageError::write(&s))?
            .into_inner();
        Ok(Written {
            replayed: r.replayed,
            attempt: 0,
        })
    }

    /// `DeleteDocument` under `idempotency_key`.
    pub async fn delete(
        &self,
        document_id: String,
        idempotency_key: String,
        timeout: Option<Duration>,
    ) -> Result<Deleted, StageError> {
        let r = self
            .clients
            .writer
            .clone()
            .delete_document(with_timeout(
                DeleteDocumentRequest {
                    document_id,
                    idempotency_key,
                },
                timeout,
            ))
            .await
            .map_err(|s| StageError::write(&s))?
            .into_inner();
        Ok(Deleted { existed: r.existed })
    }

    async fn fetch_http(&self, url: &str) -> Result<bytes::Bytes, StageError> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| StageError::transient(format!("fetch {url}: {e}")))?;
        let status = response.status();
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            return Err(StageError::fatal(
                "FetchRefused",
                format!("fetch {url}: HTTP {status}"),
            ));
        }
        if !status.is_success() {
            return Err(StageError::transient(format!("fetch {url}: HTTP {status}")));
        }
        if let Some(len) = response.content_length()
            && len > self.fetch_max_bytes
        {
            return Err(self.too_large(url, len));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| StageError::transient(format!("fetch {url}: {e}")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > self.fetch_max_bytes {
                return Err(self.too_large(url, body.len() as u64));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_names_the_failed_store_and_keeps_the_retry_class() {
        use apex_proto::writer::v1::StoreOutcome;
        let details = WriteDocumentResponse {
            outcomes: vec![
                StoreOutcome {
                    store: Store::Postgres as i32,
                    state: StepState::Compensated as i32,
                    error: String::new(),
                },
                StoreOutcome {
                    store: Store::Graph as i32,
                    state: StepState::Failed as i32,
                    error: "down".into(),
                },
            ],
            ..Default::default()
        };
        let status = apex_common::error::ErrorCode::Unavailable.status(
            "unavailable: graph: down",
            vec![apex_common::error::pack(WRITE_OUTCOMES, &details)],
        );
        let failure = StageError::write(&status);
        assert!(failure.message.contains("store graph failed"), "{failure}");
        assert!(failure.retryable);
        let refused = StageError::write(
            &apex_common::error::ErrorCode::FailedPrecondition.status("older version", Vec::new()),
        );
        assert!(!refused.retryable);
        assert_eq!(refused.type_name, "GrpcFailedPrecondition");
        assert_eq!(refused.message, "writer: older version");
    }
}
