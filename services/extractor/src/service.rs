//! The gRPC service `apex.extractor.v1.ExtractorService`: `Extract` (chunks inline) and
//! `ExtractBlob` (a parsed-document artifact in, an entities artifact out, plus a summary).

use std::sync::Arc;

use apex_common::blob::BlobStore;
use apex_common::{ServiceError, Shutdown, grpc};
use apex_proto::common::v1::Chunk;
use apex_proto::extractor::v1::extractor_service_server::{
    ExtractorService, ExtractorServiceServer,
};
use apex_proto::extractor::v1::{
    ExtractBlobRequest, ExtractBlobResponse, ExtractRequest, ExtractResponse, ExtractSummary,
    ExtractionResult,
};
use apex_proto::parser::v1::{ParsedDocument, Record};
use bytes::Bytes;
use prost::Message as _;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::ExtractorSettings;
use crate::engine::Engine;

/// Content type of an entities artifact in the blob store.
pub const ARTIFACT_CONTENT_TYPE: &str =
    "application/x-protobuf; type=apex.extractor.v1.ExtractionResult";

const SERVICES: &[&str] = &["apex.extractor.v1.ExtractorService"];

/// The gRPC face of the default [`Engine`].
#[derive(Debug, Clone)]
pub struct ExtractorGrpc {
    engine: Arc<Engine>,
    blobs: Arc<BlobStore>,
}

fn check_chunks(chunks: &[Chunk]) -> Result<(), ServiceError> {
    if let Some(i) = chunks.iter().position(|c| c.chunk_id.trim().is_empty()) {
        return Err(ServiceError::invalid_field(
            format!("chunks[{i}].chunk_id"),
            format!(
                "chunks[{i}].chunk_id is empty: every chunk needs its id (mentions refer to it)"
            ),
        ));
    }
    Ok(())
}

/// The chunks and records of a parsed document and of its parts (attachments), recursively.
fn flatten(doc: ParsedDocument, chunks: &mut Vec<Chunk>, records: &mut Vec<Record>) {
    chunks.extend(doc.chunks);
    records.extend(doc.records);
    for part in doc.parts {
        flatten(part, chunks, records);
    }
}

fn summary(r: &ExtractionResult) -> ExtractSummary {
    ExtractSummary {
        entity_count: r.entities.len() as u32,
        mention_count: r.mentions.len() as u32,
        relation_count: r.relations.len() as u32,
        empty_chunks: r.empty_chunks,
    }
}

impl ExtractorGrpc {
    pub fn new(engine: Arc<Engine>, blobs: Arc<BlobStore>) -> Self {
        Self { engine, blobs }
    }

    async fn run(&self, chunks: Vec<Chunk>) -> Result<ExtractionResult, ServiceError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.extract(&chunks))
            .await
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("extraction task failed: {e}")))
    }
}

#[tonic::async_trait]
impl ExtractorService for ExtractorGrpc {
    async fn extract(
        &self,
        request: Request<ExtractRequest>,
    ) -> Result<Response<ExtractResponse>, Status> {
        let r = request.into_inner();
        check_chunks(&r.chunks)?;
        let result = self.run(r.chunks).await?;
        Ok(Response::new(ExtractResponse {
            result: Some(result),
        }))
    }

    async fn extract_blob(
        &self,
        request: Request<ExtractBlobRequest>,
    ) -> Result<Response<ExtractBlobResponse>, Status> {
        let r = request.into_inner();
        let parsed = r.parsed.ok_or_else(|| {
            ServiceError::invalid_field("parsed", "a parsed-document artifact is required")
        })?;
        let bytes = self.blobs.get_verified(&parsed).await?;
        let doc = ParsedDocument::decode(bytes).map_err(|e| {
            ServiceError::invalid_field(
                "parsed",
                format!("{} is not a parsed-document artifact: {e}", parsed.key),
            )
        })?;
        let (mut chunks, mut records) = (Vec::new(), Vec::new());
        flatten(doc, &mut chunks, &mut records);
        check_chunks(&chunks)?;
        let mut result = self.run(chunks).await?;
        crate::engine::add_record_relations(&mut result, &records);
        let summary = summary(&result);
        let artifact = self
            .blobs
            .put(
                "entities",
                ARTIFACT_CONTENT_TYPE,
                Bytes::from(result.encode_to_vec()),
            )
            .await?;
        Ok(Response::new(ExtractBlobResponse {
            artifact: Some(artifact),
            summary: Some(summary),
        }))
    }
}

pub(crate) async fn serve(
    settings: ExtractorSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let service = &settings.0;
    let blobs = Arc::new(BlobStore::open(&service.blob_url)?);
    let max = service.max_message_bytes;
    let grpc_service =
        ExtractorServiceServer::new(ExtractorGrpc::new(Arc::new(Engine::default()), blobs))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
    let (reporter, health, reflection) = grpc::health_and_reflection(SERVICES).await?;
    let router = grpc::server(service.request_timeout())
        .add_service(health)
        .add_service(reflection)
        .add_service(grpc_service);
    let metrics = metrics.map(|l| {
        tokio::spawn(apex_common::metrics::serve_metrics(
            prometheus::Registry::new(),
            l,
            shutdown.clone(),
        ))
    });
    grpc::serve(router, listener, reporter, SERVICES, shutdown).await?;
    if let Some(task) = metrics {
        task.await??;
    }
    Ok(())
}
