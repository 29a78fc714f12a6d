//! The gRPC service `apex.extractor.v1.ExtractorService`: `Extract` (chunks inline) and
//! `ExtractBlob` (a parsed-document artifact in, an entities artifact out, plus a summary).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
use crate::engine::{Engine, add_structured_sources};
use crate::llm::{LlmClient, LlmEngine};
use crate::metrics::Metrics;
use crate::user_gazetteer;

/// Content type of an entities artifact in the blob store.
pub const ARTIFACT_CONTENT_TYPE: &str =
    "application/x-protobuf; type=apex.extractor.v1.ExtractionResult";

const SERVICES: &[&str] = &["apex.extractor.v1.ExtractorService"];

/// The gRPC face of the engines.
#[derive(Debug, Clone)]
pub struct ExtractorGrpc {
    engine: Arc<RwLock<Arc<Engine>>>,
    llm: Option<Arc<LlmEngine>>,
    blobs: Arc<BlobStore>,
    metrics: Metrics,
    settings: Arc<ExtractorSettings>,
}

fn check_request(
    settings: &ExtractorSettings,
    chunks: &[Chunk],
    metadata: &HashMap<String, String>,
) -> Result<(), ServiceError> {
    if chunks.len() > settings.max_chunks {
        return Err(ServiceError::TooLarge(format!(
            "{} chunks in one request; the limit is {} (max_chunks)",
            chunks.len(),
            settings.max_chunks
        )));
    }
    let mut ids = HashSet::with_capacity(chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        if c.chunk_id.trim().is_empty() {
            return Err(ServiceError::invalid_field(
                format!("chunks[{i}].chunk_id"),
                format!(
                    "chunks[{i}].chunk_id is empty: every chunk needs its id (mentions refer to it)"
                ),
            ));
        }
        if !ids.insert(c.chunk_id.as_str()) {
            return Err(ServiceError::invalid_field(
                format!("chunks[{i}].chunk_id"),
                format!(
                    "chunks[{i}].chunk_id {:?} appears twice: mentions could not say which chunk they are in",
                    c.chunk_id
                ),
            ));
        }
        if c.text.len() > settings.max_chunk_chars
            && c.text.chars().count() > settings.max_chunk_chars
        {
            return Err(ServiceError::TooLarge(format!(
                "chunks[{i}] has {} characters; the limit is {} (max_chunk_chars)",
                c.text.chars().count(),
                settings.max_chunk_chars
            )));
        }
    }
    if metadata.len() > settings.max_metadata_entries {
        return Err(ServiceError::TooLarge(format!(
            "{} metadata entries; the limit is {} (max_metadata_entries)",
            metadata.len(),
            settings.max_metadata_entries
        )));
    }
    for (k, v) in metadata {
        if k.trim().is_empty() {
            return Err(ServiceError::invalid_field(
                "metadata",
                "metadata has an empty key",
            ));
        }
        if k.chars().count() > settings.max_metadata_value_chars
            || v.chars().count() > settings.max_metadata_value_chars
        {
            return Err(ServiceError::TooLarge(format!(
                "metadata entry {:?} is longer than {} characters (max_metadata_value_chars)",
                k.chars().take(64).collect::<String>(),
                settings.max_metadata_value_chars
            )));
        }
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
        llm_chunks: r.llm_chunks,
        fallback_chunks: r.fallback_chunks,
    }
}

impl ExtractorGrpc {
    /// Builds the service: loads the user gazetteers (failing if a configured one cannot be
    /// read) and, when enabled, the LLM client.
    pub async fn from_settings(
        settings: ExtractorSettings,
        blobs: Arc<BlobStore>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let entries = if settings.gazetteer.is_configured() {
            user_gazetteer::load(&settings.gazetteer).await?
        } else {
            Vec::new()
        };
        let engine = Engine::new(entries);
        metrics
            .gazetteer_forms
            .set(engine.user_gazetteer_len() as i64);
        let llm = if settings.llm.enabled {
            let client = LlmClient::new(settings.llm.clone(), metrics.clone())?;
            tracing::info!(base_url = %settings.llm.base_url, model = %settings.llm.model, "LLM engine on");
            Some(Arc::new(LlmEngine {
                client: Arc::new(client),
            }))
        } else {
            None
        };
        Ok(Self {
            engine: Arc::new(RwLock::new(Arc::new(engine))),
            llm,
            blobs,
            metrics,
            settings: Arc::new(settings),
        })
    }

    /// The engine in use now.
    pub fn engine(&self) -> Arc<Engine> {
        match self.engine.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the user gazetteers again and swaps them in; on failure the previous stays.
    pub async fn reload_gazetteer(&self) -> anyhow::Result<usize> {
        let entries = user_gazetteer::load(&self.settings.gazetteer).await;
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                self.metrics.gazetteer_reload_errors.inc();
                return Err(e);
            }
        };
        let engine = Arc::new(Engine::new(entries));
        let forms = engine.user_gazetteer_len();
        match self.engine.write() {
            Ok(mut slot) => *slot = engine,
            Err(poisoned) => *poisoned.into_inner() = engine,
        }
        self.metrics.gazetteer_forms.set(forms as i64);
        Ok(forms)
    }

    fn deadline(&self, metadata: &tonic::metadata::MetadataMap) -> Instant {
        let own = Duration::from_secs(self.settings.extract_timeout_secs);
        // Leave the client a tenth of its budget to receive the answer.
        let budget = grpc::client_timeout(metadata).map_or(own, |t| own.min(t.mul_f32(0.9)));
        Instant::now() + budget
    }

    async fn run(
        &self,
        rpc: &str,
        chunks: Vec<Chunk>,
        records: Vec<Record>,
        metadata: HashMap<String, String>,
        deadline: Instant,
    ) -> Result<ExtractionResult, ServiceError> {
        let started = Instant::now();
        let total = chunks.len();
        let engine = self.engine();
        let result = match &self.llm {
            Some(llm) => llm.extract(engine, chunks, deadline).await,
            None => {
                tokio::task::spawn_blocking(move || engine.extract_until(&chunks, Some(deadline)))
                    .await
                    .map_err(|e| {
                        ServiceError::Internal(anyhow::anyhow!("extraction task failed: {e}"))
                    })?
                    .map_err(|t| {
                        ServiceError::Timeout(format!(
                            "extraction passed its deadline after {} of {total} chunks",
                            t.chunks_done
                        ))
                    })?
            }
        };
        let result = add_structured_sources(result, &records, &metadata);
        let m = &self.metrics;
        m.chunks.inc_by(total as u64);
        m.empty_chunks.inc_by(u64::from(result.empty_chunks));
        for mention in &result.mentions {
            if let Some(e) = result.entities.get(mention.entity_index as usize) {
                m.mentions.with_label_values(&[&e.entity_type]).inc();
            }
        }
        m.request_seconds
            .with_label_values(&[rpc])
            .observe(started.elapsed().as_secs_f64());
        Ok(result)
    }
}

#[tonic::async_trait]
impl ExtractorService for ExtractorGrpc {
    async fn extract(
        &self,
        request: Request<ExtractRequest>,
    ) -> Result<Response<ExtractResponse>, Status> {
        let deadline = self.deadline(request.metadata());
        let r = request.into_inner();
        check_request(&self.settings, &r.chunks, &r.metadata)?;
        let result = self
            .run("Extract", r.chunks, Vec::new(), r.metadata, deadline)
            .await?;
        Ok(Response::new(ExtractResponse {
            result: Some(result),
        }))
    }

    async fn extract_blob(
        &self,
        request: Request<ExtractBlobRequest>,
    ) -> Result<Response<ExtractBlobResponse>, Status> {
        let deadline = self.deadline(request.metadata());
        let r = request.into_inner();
        apex_common::telemetry::record_document(r.document.as_ref());
        let doc = self.blobs.get_parsed(r.parsed.as_ref()).await?;
        let (mut chunks, mut records) = (Vec::new(), Vec::new());
        flatten(doc, &mut chunks, &mut records);
        check_request(&self.settings, &chunks, &r.metadata)?;
        let chunks_with_text = chunks.iter().filter(|c| !c.text.trim().is_empty()).count();
        let result = self
            .run("ExtractBlob", chunks, records, r.metadata, deadline)
            .await?;
        let summary = summary(&result);
        self.metrics
            .document_entities
            .observe(f64::from(summary.entity_count));
        if summary.entity_count == 0 && chunks_with_text > 0 {
            self.metrics.documents_without_entities.inc();
        }
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

/// Reloads the user gazetteers every `reload_secs` until shutdown.
async fn reload_loop(service: ExtractorGrpc, shutdown: Shutdown) {
    let every = Duration::from_secs(service.settings.gazetteer.reload_secs);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(every) => {}
        }
        match service.reload_gazetteer().await {
            Ok(forms) => tracing::debug!(forms, "user gazetteer reloaded"),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "user gazetteer reload failed; keeping the previous one"
            ),
        }
    }
}

pub(crate) async fn serve(
    settings: ExtractorSettings,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let blobs = Arc::new(BlobStore::open(&settings.service.blob_url)?);
    let service_settings = settings.service.clone();
    let max = service_settings.max_message_bytes;
    let metrics = Metrics::new();
    let service = ExtractorGrpc::from_settings(settings, blobs, metrics.clone()).await?;
    let reload = (service.settings.gazetteer.is_configured()
        && service.settings.gazetteer.reload_secs > 0)
        .then(|| tokio::spawn(reload_loop(service.clone(), shutdown.clone())));
    let grpc_service = ExtractorServiceServer::new(service)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    apex_common::service::serve_services(
        &service_settings,
        SERVICES,
        |router| router.add_service(grpc_service),
        listener,
        metrics_listener,
        metrics.registry.clone(),
        shutdown,
    )
    .await?;
    if let Some(task) = reload {
        task.await?;
    }
    Ok(())
}
