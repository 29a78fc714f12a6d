//! The ingestion activities. Each builds one request, calls one service with a deadline
//! taken from the activity's own timeout and the current trace context, and maps the
//! answer: input errors become non-retryable failures carrying the service's reason,
//! outages retryable ones. `fetch_document` is the exception that calls no service: it
//! copies the bytes into the blob store (a claim check) with a size limit.

// The activity macros generate marker types without `Debug`.
#![allow(missing_debug_implementations)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apex_common::blob::BlobStore;
use apex_common::grpc::TracePropagation;
use apex_proto::embedder::v1::EmbedBlobRequest;
use apex_proto::embedder::v1::embedder_service_client::EmbedderServiceClient;
use apex_proto::extractor::v1::ExtractBlobRequest;
use apex_proto::extractor::v1::extractor_service_client::ExtractorServiceClient;
use apex_proto::parser::v1::ParseBlobRequest;
use apex_proto::parser::v1::parser_service_client::ParserServiceClient;
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;
use apex_proto::writer::v1::{
    DeleteDocumentRequest, InspectDocumentRequest, StepState, Store, WriteDocumentRequest,
    WriteDocumentResponse,
};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;
use tracing::Instrument as _;

use super::status::{Retry, failure_type, retry_class};
use super::{Blob, DocRef};
use crate::settings::IngestSettings;

type Traced = InterceptedService<Channel, TracePropagation>;

/// Lazily connected clients of the four services.
#[derive(Clone)]
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

/// The ingestion activities and what they share (cheap to clone: clients and handles).
#[derive(Clone)]
pub struct IngestActivities {
    clients: ServiceClients,
    blobs: BlobStore,
    fetch_max_bytes: u64,
    fetch_timeout: Duration,
    http: reqwest::Client,
    metrics: Option<IngestMetrics>,
}

/// `apex_ingest_warnings_total{kind}`: documents that gave no chunks (`no_chunks`) or no
/// entities from a non-empty text (`no_entities`). Served with the SDK's metrics.
#[derive(Clone)]
struct IngestMetrics {
    warnings: temporalio_common::telemetry::metrics::Counter,
    no_chunks: temporalio_common::telemetry::metrics::MetricAttributes,
    no_entities: temporalio_common::telemetry::metrics::MetricAttributes,
}

impl IngestActivities {
    pub fn new(settings: &IngestSettings) -> anyhow::Result<Self> {
        Ok(Self {
            clients: ServiceClients::new(settings)?,
            blobs: BlobStore::open(&settings.blob_url)?,
            fetch_max_bytes: settings.fetch_max_bytes,
            fetch_timeout: Duration::from_secs(settings.fetch_timeout_secs),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(settings.fetch_timeout_secs))
                .build()?,
            metrics: None,
        })
    }

    /// Counts silent outcomes on `meter` (the worker's Prometheus exporter).
    pub fn with_metrics(
        mut self,
        meter: Option<std::sync::Arc<dyn temporalio_common::telemetry::metrics::CoreMeter>>,
    ) -> Self {
        use temporalio_common::telemetry::metrics::{
            MetricKeyValue, MetricParameters, NewAttributes,
        };
        self.metrics = meter.map(|m| {
            let kind = |k: &str| {
                m.new_attributes(NewAttributes::from([MetricKeyValue::new(
                    "kind",
                    k.to_owned(),
                )]))
            };
            IngestMetrics {
                warnings: m.counter(
                    MetricParameters::builder()
                        .name("apex_ingest_warnings")
                        .description(
                            "Documents that gave no chunks, or no entities from non-empty text",
                        )
                        .build(),
                ),
                no_chunks: kind("no_chunks"),
                no_entities: kind("no_entities"),
            }
        });
        self
    }
}

/// A failure carrying the service's reason, retryable or not by its code.
pub fn grpc_failure(service: &str, status: &tonic::Status) -> ActivityError {
    let message = format!("{service}: {}", status.message());
    let failure = ApplicationFailure::builder(message)
        .type_name(failure_type(status.code()))
        .non_retryable(retry_class(status.code(), status.message()) == Retry::Never)
        .build();
    ActivityError::application(failure)
}

fn final_failure(type_name: &str, message: String) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(type_name.to_owned())
            .non_retryable(true)
            .build(),
    )
}

fn retryable(message: String) -> ActivityError {
    ActivityError::application(ApplicationFailure::new(message))
}

/// A request with the activity's remaining time as its gRPC deadline (less a margin for
/// the answer to come back), so a service stops working on a call nobody waits for.
fn request<T>(ctx: &ActivityContext, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(timeout) = call_timeout(ctx.info().deadline, SystemTime::now()) {
        req.set_timeout(timeout);
    }
    req
}

/// The gRPC timeout for a call made at `now` by an activity that must finish by
/// `deadline`: the time left less 5 % (at most 2 s) for the answer to come back, and at
/// least 100 ms. `None` without a deadline.
pub fn call_timeout(deadline: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    let left = deadline?.duration_since(now).unwrap_or_default();
    let margin = (left / 20).min(Duration::from_secs(2));
    Some(left.saturating_sub(margin).max(Duration::from_millis(100)))
}

/// The span a service call runs in: its context travels to the service as `traceparent`,
/// so the service's spans join the activity's trace.
fn activity_span(ctx: &ActivityContext, name: &'static str) -> tracing::Span {
    let info = ctx.info();
    tracing::info_span!(
        "activity",
        otel.name = name,
        activity.attempt = info.attempt,
        workflow.id = info.workflow_id.as_deref().unwrap_or_default(),
        workflow.run_id = info.workflow_run_id.as_deref().unwrap_or_default(),
    )
}

/// Awaits `call` inside the activity's span, recording a heartbeat every few seconds so a
/// lost worker is noticed within the heartbeat timeout instead of the whole start-to-close
/// timeout.
async fn with_heartbeats<F: std::future::Future>(
    ctx: &ActivityContext,
    name: &'static str,
    call: F,
) -> F::Output {
    let call = call.instrument(activity_span(ctx, name));
    let every = ctx
        .info()
        .heartbeat_timeout
        .map_or(Duration::from_secs(5), |t| {
            (t / 3).max(Duration::from_millis(200))
        });
    tokio::pin!(call);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            out = &mut call => return out,
            _ = tick.tick() => {
                let _ = ctx.record_heartbeat(()).await;
            }
        }
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
    pub metadata: std::collections::BTreeMap<String, String>,
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
    pub metadata: std::collections::BTreeMap<String, String>,
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

/// `<workflow run id>/<activity id>`: the same for every attempt of one activity, so the
/// writer answers a retry from its record of the first.
fn idempotency_key(ctx: &ActivityContext) -> String {
    let info = ctx.info();
    format!(
        "{}/{}",
        info.workflow_run_id.as_deref().unwrap_or_default(),
        info.activity_id
    )
}

/// The failing store of a failed write, from the status details the writer attaches.
fn write_failure(status: &tonic::Status) -> ActivityError {
    let stores = WriteDocumentResponse::decode(status.details())
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
    if stores.is_empty() {
        return grpc_failure("writer", status);
    }
    let message = format!(
        "writer: store {} failed: {}",
        stores.join(", "),
        status.message()
    );
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(failure_type(status.code()))
            .non_retryable(retry_class(status.code(), status.message()) == Retry::Never)
            .build(),
    )
}

#[activities]
impl IngestActivities {
    /// Copies the document's bytes into the blob store: `documents/<sha256>`.
    #[activity]
    pub async fn fetch_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: FetchInput,
    ) -> Result<Fetched, ActivityError> {
        let attempt = ctx.info().attempt;
        let location = input.location.trim();
        if let Some(key) = location.strip_prefix("blob:") {
            let bytes = self.blobs.get(key).await.map_err(|e| match e {
                apex_common::ServiceError::NotFound(m) => final_failure("NotFound", m),
                apex_common::ServiceError::InvalidArgument { message, .. } => {
                    final_failure("InvalidArgument", format!("location: {message}"))
                }
                other => retryable(other.to_string()),
            })?;
            let blob = self
                .blobs
                .put("documents", &input.mime_type, bytes)
                .await
                .map_err(|e| retryable(e.to_string()))?;
            return Ok(Fetched {
                blob: blob.into(),
                attempt,
            });
        }
        let bytes = if location.starts_with("http://") || location.starts_with("https://") {
            self.fetch_http(location).await?
        } else {
            self.fetch_object(location).await?
        };
        let blob = self
            .blobs
            .put("documents", &input.mime_type, bytes)
            .await
            .map_err(|e| retryable(e.to_string()))?;
        Ok(Fetched {
            blob: blob.into(),
            attempt,
        })
    }

    /// The writer's view of the document: is it stored, at which version and hash.
    #[activity]
    pub async fn check_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        document_id: String,
    ) -> Result<Stored, ActivityError> {
        let mut writer = self.clients.writer.clone();
        let r = writer
            .inspect_document(request(&ctx, InspectDocumentRequest { document_id }))
            .instrument(activity_span(&ctx, "check_document"))
            .await
            .map_err(|s| grpc_failure("writer", &s))?
            .into_inner();
        Ok(Stored {
            present: r.version > 0,
            version: r.version,
            content_sha256: r.content_sha256,
        })
    }

    /// `ParseBlob`, heartbeating while the parser works.
    #[activity]
    pub async fn parse_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ParseInput,
    ) -> Result<Parsed, ActivityError> {
        let mut parser = self.clients.parser.clone();
        let req = request(
            &ctx,
            ParseBlobRequest {
                source: Some(input.source.into()),
                file_name: input.file_name,
                mime_type: input.mime_type,
                document: Some(input.document.into()),
                ..Default::default()
            },
        );
        let r = with_heartbeats(&ctx, "parse_document", parser.parse_blob(req))
            .await
            .map_err(|s| grpc_failure("parser", &s))?
            .into_inner();
        let summary = r.summary.unwrap_or_default();
        if summary.chunk_count == 0
            && let Some(m) = &self.metrics
        {
            m.warnings.add(1, &m.no_chunks);
        }
        Ok(Parsed {
            artifact: r.artifact.unwrap_or_default().into(),
            format: summary.format,
            chunk_count: summary.chunk_count,
            text_chars: summary.text_chars,
            warnings: summary.warnings,
            attempt: ctx.info().attempt,
        })
    }

    /// `ExtractBlob`.
    #[activity]
    pub async fn extract_entities(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ArtifactInput,
    ) -> Result<Extracted, ActivityError> {
        let mut extractor = self.clients.extractor.clone();
        let text_chars = input.text_chars;
        let req = request(
            &ctx,
            ExtractBlobRequest {
                parsed: Some(input.parsed.into()),
                document: Some(input.document.into()),
                metadata: input.metadata.into_iter().collect(),
            },
        );
        let r = with_heartbeats(&ctx, "extract_entities", extractor.extract_blob(req))
            .await
            .map_err(|s| grpc_failure("extractor", &s))?
            .into_inner();
        let summary = r.summary.unwrap_or_default();
        if summary.entity_count == 0
            && text_chars > 0
            && let Some(m) = &self.metrics
        {
            m.warnings.add(1, &m.no_entities);
        }
        Ok(Extracted {
            artifact: r.artifact.unwrap_or_default().into(),
            entity_count: summary.entity_count,
            mention_count: summary.mention_count,
            relation_count: summary.relation_count,
            attempt: ctx.info().attempt,
        })
    }

    /// `EmbedBlob`.
    #[activity]
    pub async fn generate_embeddings(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ArtifactInput,
    ) -> Result<Embedded, ActivityError> {
        let mut embedder = self.clients.embedder.clone();
        let req = request(
            &ctx,
            EmbedBlobRequest {
                parsed: Some(input.parsed.into()),
                document: Some(input.document.into()),
            },
        );
        let r = with_heartbeats(&ctx, "generate_embeddings", embedder.embed_blob(req))
            .await
            .map_err(|s| grpc_failure("embedder", &s))?
            .into_inner();
        let summary = r.summary.unwrap_or_default();
        Ok(Embedded {
            artifact: r.artifact.unwrap_or_default().into(),
            vector_count: summary.vector_count,
            model_id: summary.model_id,
            dimension: summary.dimension,
            attempt: ctx.info().attempt,
        })
    }

    /// `WriteDocument`, with `<workflow run id>/<activity id>` as the idempotency key so a
    /// retried attempt gets the first attempt's answer.
    #[activity]
    pub async fn write_to_databases(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: WriteInput,
    ) -> Result<Written, ActivityError> {
        let key = idempotency_key(&ctx);
        let mut writer = self.clients.writer.clone();
        let req = request(
            &ctx,
            WriteDocumentRequest {
                document: Some(input.document.into()),
                metadata: input.metadata.into_iter().collect(),
                content_sha256: input.content_sha256,
                parsed: Some(input.parsed.into()),
                entities: input.entities.map(Into::into),
                vectors: input.vectors.map(Into::into),
                idempotency_key: key,
            },
        );
        let r = with_heartbeats(&ctx, "write_to_databases", writer.write_document(req))
            .await
            .map_err(|s| write_failure(&s))?
            .into_inner();
        Ok(Written {
            replayed: r.replayed,
            attempt: ctx.info().attempt,
        })
    }

    /// `DeleteDocument`.
    #[activity]
    pub async fn delete_document(
        self: Arc<Self>,
        ctx: ActivityContext,
        document_id: String,
    ) -> Result<Deleted, ActivityError> {
        let key = idempotency_key(&ctx);
        let mut writer = self.clients.writer.clone();
        let r = writer
            .delete_document(request(
                &ctx,
                DeleteDocumentRequest {
                    document_id,
                    idempotency_key: key,
                },
            ))
            .instrument(activity_span(&ctx, "delete_document"))
            .await
            .map_err(|s| write_failure(&s))?
            .into_inner();
        Ok(Deleted { existed: r.existed })
    }
}

impl IngestActivities {
    async fn fetch_http(&self, url: &str) -> Result<bytes::Bytes, ActivityError> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| retryable(format!("fetch {url}: {e}")))?;
        let status = response.status();
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            return Err(final_failure(
                "FetchRefused",
                format!("fetch {url}: HTTP {status}"),
            ));
        }
        if !status.is_success() {
            return Err(retryable(format!("fetch {url}: HTTP {status}")));
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
            .map_err(|e| retryable(format!("fetch {url}: {e}")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > self.fetch_max_bytes {
                return Err(self.too_large(url, body.len() as u64));
            }
        }
        Ok(body.into())
    }

    async fn fetch_object(&self, location: &str) -> Result<bytes::Bytes, ActivityError> {
        let url = if location.starts_with('/') {
            format!("file://{location}")
        } else {
            location.to_owned()
        };
        let parsed = url::Url::parse(&url).map_err(|e| {
            final_failure(
                "InvalidArgument",
                format!("location `{location}` is not a URL, an absolute path or blob:<key>: {e}"),
            )
        })?;
        let (store, path) = object_store::parse_url(&parsed)
            .map_err(|e| final_failure("InvalidArgument", format!("location `{location}`: {e}")))?;
        let read = async {
            let meta = store.head(&path).await?;
            if meta.size > self.fetch_max_bytes {
                return Ok(Err(self.too_large(location, meta.size)));
            }
            let bytes = store.get(&path).await?.bytes().await?;
            Ok::<_, object_store::Error>(Ok(bytes))
        };
        match tokio::time::timeout(self.fetch_timeout, read).await {
            Err(_) => Err(retryable(format!(
                "fetch {location}: no answer within {} s",
                self.fetch_timeout.as_secs()
            ))),
            Ok(Ok(result)) => result,
            Ok(Err(object_store::Error::NotFound { .. })) => Err(final_failure(
                "NotFound",
                format!("fetch {location}: not found"),
            )),
            Ok(Err(e)) => Err(retryable(format!("fetch {location}: {e}"))),
        }
    }

    fn too_large(&self, location: &str, size: u64) -> ActivityError {
        final_failure(
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
    fn calls_get_the_activitys_remaining_time_less_a_margin() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(call_timeout(None, now), None);
        assert_eq!(
            call_timeout(Some(now + Duration::from_secs(600)), now),
            Some(Duration::from_secs(598))
        );
        assert_eq!(
            call_timeout(Some(now + Duration::from_secs(10)), now),
            Some(Duration::from_millis(9_500))
        );
        // Past the deadline: the shortest timeout, never zero.
        assert_eq!(
            call_timeout(Some(now - Duration::from_secs(1)), now),
            Some(Duration::from_millis(100))
        );
    }

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
        let status = tonic::Status::with_details(
            tonic::Code::Unavailable,
            "unavailable: graph: down",
            details.encode_to_vec().into(),
        );
        let ActivityError::Application(failure) = write_failure(&status) else {
            panic!("an application failure");
        };
        assert!(
            failure.to_string().contains("store graph failed"),
            "{failure}"
        );
        assert!(!failure.is_non_retryable());
        let ActivityError::Application(refused) =
            write_failure(&tonic::Status::failed_precondition("older version"))
        else {
            panic!("an application failure");
        };
        assert!(refused.is_non_retryable());
        assert_eq!(refused.type_name(), Some("GrpcFailedPrecondition"));
    }
}
