//! The ingestion stages as plain calls: each builds one request, calls one service (or,
//! for [`Stages::fetch`], copies the bytes into the blob store) and maps the answer to a
//! [`StageError`] that says whether trying again can help. The Temporal activities wrap
//! these with heartbeats, deadlines and retry policies; the gateway's legacy path calls
//! them directly in sequence. Both paths therefore send the services identical requests.

mod clients;
mod error;
mod fetch;
mod messages;
mod span;

use std::time::Duration;

use apex_common::blob::BlobStore;
use apex_proto::embedder::v1::EmbedBlobRequest;
use apex_proto::extractor::v1::ExtractBlobRequest;
use apex_proto::parser::v1::ParseBlobRequest;
use apex_proto::writer::v1::{DeleteDocumentRequest, InspectDocumentRequest, WriteDocumentRequest};

pub use self::clients::{ServiceClients, Traced};
pub use self::error::StageError;
pub use self::messages::{
    ArtifactInput, Deleted, Embedded, Extracted, FetchInput, Fetched, ParseInput, Parsed, Stored,
    WriteInput, Written,
};
use crate::settings::IngestSettings;

/// The clients, the blob store and the fetch limits every stage needs (cheap to clone).
#[derive(Clone)]
pub struct Stages {
    clients: ServiceClients,
    blobs: BlobStore,
    fetch_max_bytes: u64,
    fetch_timeout: Duration,
    fetch_policy: apex_common::fetch::FetchPolicy,
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
        let fetch_policy = settings
            .fetch_policy()
            .map_err(|e| anyhow::anyhow!("ingest.fetch_allow: {e}"))?;
        let http = fetch_policy.client(
            reqwest::Client::builder().timeout(Duration::from_secs(settings.fetch_timeout_secs)),
        )?;
        Ok(Self {
            clients: ServiceClients::new(settings)?,
            blobs: BlobStore::open(&settings.blob_url)?,
            fetch_max_bytes: settings.fetch_max_bytes,
            fetch_timeout: Duration::from_secs(settings.fetch_timeout_secs),
            fetch_policy,
            http,
        })
    }

    pub fn clients(&self) -> &ServiceClients {
        &self.clients
    }

    /// The guard fetches by URL go through (the gateway asks it before accepting a URL).
    pub fn fetch_policy(&self) -> &apex_common::fetch::FetchPolicy {
        &self.fetch_policy
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The writer's view of the document: is it stored, at which version and hash.
    pub async fn check(
        &self,
        document_id: String,
        timeout: Option<Duration>,
    ) -> Result<Stored, StageError> {
        let span = span::step_of("check", &document_id);
        span::traced(span, async move {
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
        })
        .await
    }

    /// `ParseBlob`.
    pub async fn parse(
        &self,
        input: ParseInput,
        timeout: Option<Duration>,
    ) -> Result<Parsed, StageError> {
        let span = span::step("parse", &input.document);
        span::traced(span, async move {
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
        })
        .await
    }

    /// `ExtractBlob`.
    pub async fn extract(
        &self,
        input: ArtifactInput,
        timeout: Option<Duration>,
    ) -> Result<Extracted, StageError> {
        let span = span::step("extract", &input.document);
        span::traced(span, async move {
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
        })
        .await
    }

    /// `EmbedBlob`.
    pub async fn embed(
        &self,
        input: ArtifactInput,
        timeout: Option<Duration>,
    ) -> Result<Embedded, StageError> {
        let span = span::step("embed", &input.document);
        span::traced(span, async move {
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
        })
        .await
    }

    /// `WriteDocument` under `idempotency_key`: a retry with the same key gets the first
    /// call's answer.
    pub async fn write(
        &self,
        input: WriteInput,
        idempotency_key: String,
        timeout: Option<Duration>,
    ) -> Result<Written, StageError> {
        let span = span::step("write", &input.document);
        span::traced(span, async move {
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
        })
        .await
    }

    /// `DeleteDocument` under `idempotency_key`.
    pub async fn delete(
        &self,
        document_id: String,
        idempotency_key: String,
        timeout: Option<Duration>,
    ) -> Result<Deleted, StageError> {
        let span = span::step_of("delete", &document_id);
        span::traced(span, async move {
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
        })
        .await
    }
}
