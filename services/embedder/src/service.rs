//! The gRPC service `apex.embedder.v1.EmbedderService`: `Info`, `Embed` (texts inline) and
//! `EmbedBlob` (a parsed-document artifact in, a `vectors/<sha256>` artifact out).

use std::sync::Arc;
use std::time::Duration;

use apex_common::blob::BlobStore;
use apex_common::{ServiceError, Shutdown};
use apex_proto::embedder::v1::embedder_service_server::{EmbedderService, EmbedderServiceServer};
use apex_proto::embedder::v1::{
    ChunkVector, EmbedBlobRequest, EmbedBlobResponse, EmbedRequest, EmbedResponse, EmbedSummary,
    EmbeddingSet, InfoRequest, InfoResponse, Vector,
};
use bytes::Bytes;
use prost::Message as _;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::EmbedderSettings;
use crate::batcher::{BatchOptions, Batcher};
use crate::engine::encoders;
use crate::model::MiniLm;

/// Content type of a vectors artifact in the blob store.
pub const ARTIFACT_CONTENT_TYPE: &str =
    "application/x-protobuf; type=apex.embedder.v1.EmbeddingSet";

const SERVICES: &[&str] = &["apex.embedder.v1.EmbedderService"];

/// The embedder's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: prometheus::Registry,
    /// Texts asked for, and texts served from the cache.
    pub texts: prometheus::IntCounter,
    pub cache_hits: prometheus::IntCounter,
    /// Texts cut at the token limit.
    pub truncated: prometheus::IntCounter,
    /// Requests refused because the queue was full.
    pub rejected: prometheus::IntCounter,
    pub request_seconds: prometheus::HistogramVec,
    /// Vectors per document (`EmbedBlob`).
    pub document_vectors: prometheus::Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = prometheus::Registry::new();
        let counter = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help)
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let request_seconds = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new("apex_embedder_request_seconds", "Seconds per request")
                .buckets(vec![
                    0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
                ]),
            &["rpc"],
        )
        .unwrap_or_else(|e| panic!("histogram: {e}"));
        let _ = registry.register(Box::new(request_seconds.clone()));
        let document_vectors = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "apex_embedder_document_vectors",
                "Vectors per document embedded by EmbedBlob",
            )
            .buckets(vec![
                0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
            ]),
        )
        .unwrap_or_else(|e| panic!("histogram: {e}"));
        let _ = registry.register(Box::new(document_vectors.clone()));
        Self {
            document_vectors,
            texts: counter(
                "apex_embedder_texts_total",
                "Texts embedded (cached or computed)",
            ),
            cache_hits: counter(
                "apex_embedder_cache_hits_total",
                "Texts served from the embedding cache",
            ),
            truncated: counter(
                "apex_embedder_truncated_total",
                "Texts cut at the model's token limit",
            ),
            rejected: counter(
                "apex_embedder_queue_full_total",
                "Requests refused because the queue was full",
            ),
            request_seconds,
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The gRPC face of the model.
#[derive(Debug, Clone)]
pub struct EmbedderGrpc {
    /// The local model and its batcher, unless the remote provider is on.
    local: Option<(Arc<MiniLm>, Batcher)>,
    remote: Option<Arc<crate::remote::RemoteClient>>,
    model_id: String,
    dimension: u32,
    max_tokens: u32,
    cache: Option<Arc<crate::cache::Cache>>,
    blobs: Arc<BlobStore>,
    settings: Arc<EmbedderSettings>,
    engine: &'static str,
    metrics: Metrics,
}

impl EmbedderGrpc {
    /// Loads the tokenizer and weights and starts the workers, or sets up the remote
    /// provider when it is enabled.
    pub fn from_settings(
        settings: EmbedderSettings,
        blobs: Arc<BlobStore>,
    ) -> anyhow::Result<Self> {
        let (local, remote, model_id, dimension, max_tokens, engine) = if settings.remote.enabled {
            let client = crate::remote::RemoteClient::new(settings.remote.clone())?;
            let r = client.settings().clone();
            tracing::info!(base_url = %r.base_url, model = %r.model, "embedder uses the remote provider");
            (
                None,
                Some(Arc::new(client)),
                r.model,
                r.dimensions,
                r.max_tokens,
                "remote",
            )
        } else {
            let tokens = Arc::new(MiniLm::load(&settings.model_dir, settings.max_tokens)?);
            let (encoders, engine) = encoders(&settings, &tokens)?;
            let batcher = Batcher::start(
                encoders,
                BatchOptions {
                    max_batch: settings.max_batch,
                    max_wait: Duration::from_millis(settings.max_wait_ms),
                    capacity: settings.queue_capacity,
                },
            );
            tracing::info!(engine, workers = settings.workers, "embedder ready");
            let (id, dim, max) = (
                tokens.model_id().to_owned(),
                tokens.dimension() as u32,
                tokens.max_tokens() as u32,
            );
            (Some((tokens, batcher)), None, id, dim, max, engine)
        };
        let cache = if settings.cache_url.is_empty() {
            None
        } else {
            // Reduced-precision vectors (int8, bf16) are cached apart from fp32 ones (which
            // candle's and OpenVINO f32's equal).
            let namespace = match engine.rsplit('-').next() {
                Some(p @ ("int8" | "bf16" | "f16")) => format!("{model_id}:{p}"),
                _ => model_id.clone(),
            };
            Some(Arc::new(crate::cache::Cache::new(
                &settings.cache_url,
                &namespace,
                max_tokens as usize,
                dimension as usize,
                settings.cache_ttl_secs,
            )?))
        };
        let metrics = Metrics::new();
        if let Some((_, batcher)) = &local {
            batcher.stats().register(&metrics.registry);
        }
        // Which encoder runs (int8 or fp32 after the fidelity gate, candle, remote).
        let engine_info = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "apex_embedder_engine_info",
                "The encoder this embedder runs (1 for its engine label)",
            ),
            &["engine"],
        )?;
        engine_info.with_label_values(&[engine]).set(1);
        metrics.registry.register(Box::new(engine_info))?;
        Ok(Self {
            local,
            remote,
            model_id,
            dimension,
            max_tokens,
            cache,
            blobs,
            settings: Arc::new(settings),
            engine,
            metrics,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Which encoder runs: `onnxruntime`, `candle` or `remote`.
    pub fn engine(&self) -> &'static str {
        self.engine
    }

    /// The local batcher (none with the remote provider).
    pub fn batcher(&self) -> Option<&Batcher> {
        self.local.as_ref().map(|(_, b)| b)
    }

    /// Embeds texts (from the cache, or through the shared batches), in order; also says
    /// how many came from the cache.
    pub async fn embed_texts(&self, texts: &[String]) -> Result<(Vec<Vector>, u32), ServiceError> {
        if texts.len() > self.settings.max_texts {
            return Err(ServiceError::TooLarge(format!(
                "{} texts in one request; the limit is {} (max_texts)",
                texts.len(),
                self.settings.max_texts
            )));
        }
        for (i, t) in texts.iter().enumerate() {
            if t.len() > self.settings.max_text_chars
                && t.chars().count() > self.settings.max_text_chars
            {
                return Err(ServiceError::TooLarge(format!(
                    "texts[{i}] has {} characters; the limit is {} (max_text_chars)",
                    t.chars().count(),
                    self.settings.max_text_chars
                )));
            }
        }
        let mut out: Vec<Option<Vector>> = vec![None; texts.len()];
        let keys: Vec<String> = match &self.cache {
            Some(cache) => texts.iter().map(|t| cache.key(t)).collect(),
            None => Vec::new(),
        };
        let mut hits = 0u32;
        if let Some(cache) = &self.cache {
            for (slot, cached) in out.iter_mut().zip(cache.get_many(&keys).await) {
                if let Some(c) = cached {
                    *slot = Some(Vector {
                        values: c.values,
                        truncated: c.truncated,
                    });
                    hits += 1;
                }
            }
        }
        let missing: Vec<usize> = (0..texts.len()).filter(|i| out[*i].is_none()).collect();
        if !missing.is_empty() {
            let owned: Vec<String> = missing.iter().map(|i| texts[*i].clone()).collect();
            let computed: Vec<(Vec<f32>, bool)> = match (&self.remote, &self.local) {
                (Some(remote), _) => remote
                    .embed(&owned)
                    .await?
                    .into_iter()
                    .map(|v| (v, false))
                    .collect(),
                (None, Some((tokens, batcher))) => {
                    self.embed_locally(tokens, batcher, owned).await?
                }
                (None, None) => {
                    return Err(ServiceError::Internal(anyhow::anyhow!(
                        "no embedding backend"
                    )));
                }
            };
            let mut fresh = Vec::with_capacity(missing.len());
            for ((values, truncated), i) in computed.into_iter().zip(&missing) {
                if self.cache.is_some() {
                    fresh.push((
                        keys[*i].clone(),
                        crate::cache::Cached {
                            values: values.clone(),
                            truncated,
                        },
                    ));
                }
                out[*i] = Some(Vector { values, truncated });
            }
            if let Some(cache) = &self.cache {
                cache.put_many(&fresh).await;
            }
        }
        let vectors: Vec<Vector> = out.into_iter().flatten().collect();
        self.metrics.texts.inc_by(vectors.len() as u64);
        self.metrics.cache_hits.inc_by(u64::from(hits));
        self.metrics
            .truncated
            .inc_by(vectors.iter().filter(|v| v.truncated).count() as u64);
        Ok((vectors, hits))
    }

    /// Tokenises and runs texts through the shared batches: (vector, truncated) in order.
    async fn embed_locally(
        &self,
        tokens: &Arc<MiniLm>,
        batcher: &Batcher,
        texts: Vec<String>,
    ) -> Result<Vec<(Vec<f32>, bool)>, ServiceError> {
        let tokens = tokens.clone();
        let tokenize = tracing::info_span!(
            "embed.tokenize",
            otel.name = "tokenize",
            apex.texts = texts.len()
        );
        let tokenized = tokio::task::spawn_blocking(move || {
            tokenize.in_scope(|| {
                texts
                    .iter()
                    .map(|t| tokens.tokenize(t))
                    .collect::<anyhow::Result<Vec<_>>>()
            })
        })
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("tokenizer task: {e}")))?
        .map_err(ServiceError::Internal)?;
        let (windows, truncated): (Vec<Vec<u32>>, Vec<bool>) = tokenized.into_iter().unzip();
        // The request's wait for the shared batches; each batch's inference span hangs
        // under the first request in it.
        let wait = tracing::info_span!(
            "embed.batches",
            otel.name = "wait for batches",
            apex.texts = windows.len()
        );
        let receivers = wait.in_scope(|| batcher.submit(windows)).map_err(|full| {
            self.metrics.rejected.inc();
            ServiceError::ResourceExhausted(format!(
                "the embedding queue is full ({} of {} texts waiting); retry later",
                full.queued, full.capacity
            ))
        })?;
        let collect = async move {
            let mut out = Vec::with_capacity(receivers.len());
            for (rx, truncated) in receivers.into_iter().zip(truncated) {
                let values = rx
                    .await
                    .map_err(|_| {
                        ServiceError::Unavailable("the embedding worker stopped".to_owned())
                    })?
                    .map_err(|e| {
                        ServiceError::Internal(anyhow::anyhow!("inference failed: {e}"))
                    })?;
                out.push((values, truncated));
            }
            Ok(out)
        };
        tracing::Instrument::instrument(collect, wait).await
    }
}

#[tonic::async_trait]
impl EmbedderService for EmbedderGrpc {
    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(InfoResponse {
            model_id: self.model_id.clone(),
            dimension: self.dimension,
            max_tokens: self.max_tokens,
            normalized: true,
        }))
    }

    async fn embed(
        &self,
        request: Request<EmbedRequest>,
    ) -> Result<Response<EmbedResponse>, Status> {
        let started = std::time::Instant::now();
        let texts = request.into_inner().texts;
        let (vectors, cache_hits) = self.embed_texts(&texts).await?;
        self.metrics
            .request_seconds
            .with_label_values(&["Embed"])
            .observe(started.elapsed().as_secs_f64());
        Ok(Response::new(EmbedResponse {
            vectors,
            model_id: self.model_id.clone(),
            dimension: self.dimension,
            cache_hits,
        }))
    }

    async fn embed_blob(
        &self,
        request: Request<EmbedBlobRequest>,
    ) -> Result<Response<EmbedBlobResponse>, Status> {
        let r = request.into_inner();
        apex_common::telemetry::record_document(r.document.as_ref());
        let doc = self.blobs.get_parsed(r.parsed.as_ref()).await?;
        let chunks = apex_common::blob::all_chunks(doc);
        let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
        let (vectors, cache_hits) = self.embed_texts(&texts).await?;
        let truncated_count = vectors.iter().filter(|v| v.truncated).count() as u32;
        let set = EmbeddingSet {
            model_id: self.model_id.clone(),
            dimension: self.dimension,
            vectors: chunks
                .into_iter()
                .zip(vectors)
                .map(|(c, v)| ChunkVector {
                    chunk_id: c.chunk_id,
                    values: v.values,
                    truncated: v.truncated,
                })
                .collect(),
        };
        self.metrics
            .document_vectors
            .observe(set.vectors.len() as f64);
        let summary = EmbedSummary {
            vector_count: set.vectors.len() as u32,
            dimension: set.dimension,
            model_id: set.model_id.clone(),
            truncated_count,
            cache_hits,
        };
        let artifact = self
            .blobs
            .put(
                "vectors",
                ARTIFACT_CONTENT_TYPE,
                Bytes::from(set.encode_to_vec()),
            )
            .await?;
        Ok(Response::new(EmbedBlobResponse {
            artifact: Some(artifact),
            summary: Some(summary),
        }))
    }
}

pub(crate) async fn serve(
    settings: EmbedderSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let blobs = Arc::new(BlobStore::open(&settings.service.blob_url)?);
    let service_settings = settings.service.clone();
    let max = service_settings.max_message_bytes;
    let service = tokio::task::block_in_place(|| EmbedderGrpc::from_settings(settings, blobs))?;
    let batcher = service.batcher().cloned();
    let registry = service.metrics().registry.clone();
    let grpc_service = EmbedderServiceServer::new(service)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let served = apex_common::service::serve_services(
        &service_settings,
        SERVICES,
        |router| router.add_service(grpc_service),
        listener,
        metrics,
        registry,
        shutdown,
    )
    .await;
    if let Some(b) = batcher {
        b.close();
    }
    served
}
