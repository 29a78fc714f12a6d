//! The gRPC service `apex.parser.v1.ParserService`: `Parse` (inline) and `ParseBlob`
//! (claim check: the parsed artifact goes to the blob store, the reply is a small summary).

use std::sync::Arc;

use apex_common::blob::BlobStore;
use apex_common::{ServiceError, Shutdown};
use apex_proto::parser::v1::parser_service_server::{ParserService, ParserServiceServer};
use apex_proto::parser::v1::{
    ParseBlobRequest, ParseBlobResponse, ParseRequest, ParseResponse, ParseSummary, ParsedDocument,
};
use bytes::Bytes;
use prost::Message as _;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::metrics::ParserMetrics;
use crate::{Hints, Parser, ParserSettings};

/// Content type of a parsed artifact in the blob store.
pub const ARTIFACT_CONTENT_TYPE: &str =
    "application/x-protobuf; type=apex.parser.v1.ParsedDocument";

const SERVICES: &[&str] = &["apex.parser.v1.ParserService"];

/// The gRPC face of a [`Parser`].
#[derive(Debug, Clone)]
pub struct ParserGrpc {
    parser: Arc<Parser>,
    blobs: Arc<BlobStore>,
    metrics: ParserMetrics,
}

impl ParserGrpc {
    pub fn new(parser: Arc<Parser>, blobs: Arc<BlobStore>, metrics: ParserMetrics) -> Self {
        Self {
            parser,
            blobs,
            metrics,
        }
    }

    async fn run(
        &self,
        content: Bytes,
        file_name: String,
        mime_type: String,
        document: Option<apex_proto::common::v1::DocumentRef>,
        options: Option<apex_proto::parser::v1::ParseOptions>,
    ) -> Result<ParsedDocument, ServiceError> {
        // Small inputs that cannot need OCR are parsed on this thread (milliseconds of
        // work; the runtime's other worker keeps serving): the document and its reply stay
        // in this core's caches instead of crossing to a pool thread and back, which cost
        // 10-15 % of a small document's round trip. Everything else on the blocking pool.
        let inline = content.len() as u64 <= self.parser.settings().inline_max_bytes
            && !crate::detect::may_need_ocr(&content);
        let parser = self.parser.clone();
        let parse = move || {
            parser.parse(
                &content,
                Hints {
                    file_name: &file_name,
                    mime_type: &mime_type,
                    document: document.as_ref(),
                    options: options.as_ref(),
                },
            )
        };
        let result = if inline {
            parse()
        } else {
            tokio::task::spawn_blocking(parse)
                .await
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!("parser task failed: {e}")))?
        };
        match result {
            Ok(doc) => {
                self.metrics
                    .parsed(&doc.format, chunk_total(&doc), &doc.warnings);
                Ok(doc)
            }
            Err(e) => {
                let e = ServiceError::from(e);
                self.metrics.refused(e.code().as_str());
                Err(e)
            }
        }
    }
}

/// Chunks of a document and its parts, recursively (what the metrics count; the
/// characters of [`totals`] would cost a pass over the whole text).
fn chunk_total(doc: &ParsedDocument) -> u32 {
    doc.parts
        .iter()
        .map(chunk_total)
        .fold(doc.chunks.len() as u32, u32::saturating_add)
}

/// Chunks and characters of text of a document and its parts (attachments), recursively:
/// what the extractor, the embedder and the writer will see.
fn totals(doc: &ParsedDocument) -> (u32, u64) {
    doc.parts.iter().map(totals).fold(
        (doc.chunks.len() as u32, doc.text.chars().count() as u64),
        |(c, t), (pc, pt)| (c + pc, t + pt),
    )
}

fn summary(doc: &ParsedDocument) -> ParseSummary {
    let (chunk_count, text_chars) = totals(doc);
    ParseSummary {
        format: doc.format.clone(),
        chunk_count,
        text_chars,
        sha256: doc.sha256.clone(),
        warnings: doc.warnings.clone(),
        no_text_layer: doc.no_text_layer,
        record_count: doc.records.len() as u32,
        part_count: doc.parts.len() as u32,
        page_count: doc.structure.as_ref().map_or(0, |s| s.pages.len() as u32),
    }
}

#[tonic::async_trait]
impl ParserService for ParserGrpc {
    async fn parse(
        &self,
        request: Request<ParseRequest>,
    ) -> Result<Response<ParseResponse>, Status> {
        let r = request.into_inner();
        apex_common::telemetry::record_document(r.document.as_ref());
        let document = self
            .run(r.content, r.file_name, r.mime_type, r.document, r.options)
            .await?;
        Ok(Response::new(ParseResponse {
            document: Some(document),
        }))
    }

    async fn parse_blob(
        &self,
        request: Request<ParseBlobRequest>,
    ) -> Result<Response<ParseBlobResponse>, Status> {
        let r = request.into_inner();
        apex_common::telemetry::record_document(r.document.as_ref());
        let source = r
            .source
            .ok_or_else(|| ServiceError::invalid_field("source", "a source blob is required"))?;
        let size = self.parser.settings().max_input_bytes;
        if source.size_bytes > size {
            return Err(ServiceError::from(crate::ParseError::TooLarge {
                size: source.size_bytes,
                limit: size,
            })
            .into());
        }
        let content = self.blobs.get_verified(&source).await?;
        let document = self
            .run(content, r.file_name, r.mime_type, r.document, r.options)
            .await?;
        let summary = summary(&document);
        let artifact = self
            .blobs
            .put(
                "parsed",
                ARTIFACT_CONTENT_TYPE,
                Bytes::from(document.encode_to_vec()),
            )
            .await?;
        Ok(Response::new(ParseBlobResponse {
            artifact: Some(artifact),
            summary: Some(summary),
        }))
    }
}

pub(crate) async fn serve(
    settings: ParserSettings,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let blobs = Arc::new(BlobStore::open(&settings.service.blob_url)?);
    let max = settings.service.max_message_bytes;
    let parser = {
        let settings = settings.clone();
        Arc::new(tokio::task::spawn_blocking(move || Parser::new(settings)).await??)
    };
    let metrics = ParserMetrics::new()?;
    let registry = metrics.registry.clone();
    let grpc_service = ParserServiceServer::new(ParserGrpc::new(parser, blobs, metrics))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    apex_common::service::serve_services(
        &settings.service,
        SERVICES,
        |router| router.add_service(grpc_service),
        listener,
        metrics_listener,
        registry,
        shutdown,
    )
    .await
}
