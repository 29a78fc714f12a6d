//! The Apex Ingest writer: the only code that writes the four stores, as one saga over
//! PostgreSQL (source of truth), the graph (FalkorDB or Neo4j), the vectors (Qdrant) and
//! Redis. `WriteDocument`, `DeleteDocument` and `InspectDocument` (`apex.writer.v1`).

#![recursion_limit = "256"]

#[cfg(feature = "devtools")]
pub mod bench;
pub mod breaker;
#[cfg(feature = "testsuite")]
pub mod fixture;
pub mod graph;
pub mod metrics;
pub mod model;
pub mod postgres;
pub mod redis_store;
pub mod saga;
pub mod service;
pub mod settings;
pub mod vectors;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apex_common::Shutdown;
use apex_common::blob::BlobStore;
use apex_proto::writer::v1::writer_service_server::WriterServiceServer;
use tokio::net::TcpListener;

pub use saga::Writer;
pub use settings::{GraphBackend, WriterSettings};

/// The gRPC services the writer reports health for.
pub const SERVICES: &[&str] = &["apex.writer.v1.WriterService"];

/// Connects the four stores (running the PostgreSQL migrations and creating the graph's
/// constraints) and returns the saga.
pub async fn connect(settings: &WriterSettings) -> anyhow::Result<Writer> {
    let pg = postgres::PgStore::connect(&settings.postgres, settings.batch_rows).await?;
    let g = &settings.graph;
    let timeout = Duration::from_millis(g.timeout_ms);
    let store: Arc<dyn graph::GraphStore> = match g.backend {
        GraphBackend::Falkordb => Arc::new(
            graph::falkor::FalkorStore::connect(
                &g.url,
                &g.graph,
                g.connections.min(255) as u8,
                timeout,
            )
            .await?,
        ),
        GraphBackend::Neo4j => {
            let password = apex_common::settings::read_secret(
                "graph.password_file",
                "APEX_NEO4J_PASSWORD",
                &g.password_file,
            )?
            .unwrap_or_default();
            Arc::new(
                graph::neo4j::Neo4jStore::connect(
                    &g.url,
                    &g.user,
                    &password,
                    &g.graph,
                    g.connections as usize,
                )
                .await?,
            )
        }
    };
    let graph = graph::Graph::new(store, settings.batch_rows);
    graph
        .ensure_schema()
        .await
        .with_context(|| format!("graph schema at {}", g.url))?;
    let v = &settings.vectors;
    let api_key = apex_common::settings::read_secret(
        "vectors.api_key_file",
        "APEX_QDRANT_API_KEY",
        &v.api_key_file,
    )?;
    let vectors = vectors::VectorStore::connect(
        &v.url,
        api_key,
        &v.collection_prefix,
        v.batch_size,
        Duration::from_millis(v.timeout_ms),
    )?;
    let r = &settings.redis;
    let redis = redis_store::RedisStore::connect(
        &r.url,
        Duration::from_millis(r.timeout_ms),
        Duration::from_secs(r.state_ttl_secs),
    )
    .await?;
    let blobs = BlobStore::open(&settings.service.blob_url)?;
    Ok(Writer::new(
        settings,
        pg,
        graph,
        vectors,
        redis,
        blobs,
        metrics::Metrics::new(),
    ))
}

/// Runs the writer on `listener` until `shutdown`.
pub async fn run(
    settings: WriterSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let writer = Arc::new(connect(&settings).await?);
    let registry = writer.metrics.registry.clone();
    let max = settings.service.max_message_bytes;
    let svc = WriterServiceServer::new(service::WriterGrpc::new(writer))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    apex_common::service::serve_services(
        &settings.service,
        SERVICES,
        |router| router.add_service(svc),
        listener,
        metrics,
        registry,
        shutdown,
    )
    .await
}
