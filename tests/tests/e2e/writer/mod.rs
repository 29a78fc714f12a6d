//! The writer's saga and lock against the local stack's real servers. The harness runs the
//! writer on 127.0.0.1 port 0, reaching each store through a [`Proxy`] the test can cut.
//! Every harness has its own FalkorDB graph and vector collection prefix (from
//! [`Names`]), and random document ids, so tests run in parallel without seeing each other.
//!
//! The servers are the stack's (its settings, `APEX_STACK__…`, say where);
//! `APEX_NEO4J_URI` (+ `APEX_NEO4J_USER`, `APEX_NEO4J_PASSWORD`) runs the graph tests
//! against Neo4j instead of FalkorDB.

#![allow(dead_code, unreachable_pub)]

mod lock;
mod saga;

use std::net::SocketAddr;

use apex_common::Shutdown;
use apex_common::blob::BlobStore;
use apex_proto::writer::v1::writer_service_client::WriterServiceClient;
use apex_proto::writer::v1::{
    InspectDocumentRequest, InspectDocumentResponse, StepState, Store, WriteDocumentRequest,
    WriteDocumentResponse,
};
pub use apex_writer::fixture::Fixture;
use apex_writer::{GraphBackend, Writer, WriterSettings};
use tonic::transport::Channel;
use uuid::Uuid;

use apex_e2e::fault::Proxy;
use apex_e2e::{Names, Stack};

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// `host:port` of a URL.
fn socket_of(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).expect("url");
    let host = u.host_str().expect("host");
    let port = u.port_or_known_default().expect("port");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}").parse().expect("socket address")
}

fn through(url: &str, proxy: &Proxy) -> String {
    let mut u = url::Url::parse(url).expect("url");
    u.set_host(Some("127.0.0.1")).expect("host");
    u.set_port(Some(proxy.addr.port())).expect("port");
    u.to_string()
}

/// The servers' real addresses, and the graph backend.
pub fn direct_settings(stack: &Stack) -> WriterSettings {
    let names = Names::new();
    let mut s = WriterSettings::default();
    s.postgres.url = stack.postgres_url();
    s.redis.url = stack.redis_url();
    s.vectors.url = stack.vectors_url();
    match std::env::var("APEX_NEO4J_URI") {
        Ok(uri) if !uri.is_empty() => {
            s.graph.backend = GraphBackend::Neo4j;
            s.graph.url = uri;
            s.graph.user = env_or("APEX_NEO4J_USER", "neo4j");
            s.graph.graph = String::new();
        }
        _ => {
            s.graph.url = stack.graph_url();
            s.graph.graph = names.graph();
        }
    }
    s.vectors.collection_prefix = names.collection_prefix();
    s.service.metrics_addr = String::new();
    // Failing stores are cut by proxies: answer fast.
    s.postgres.acquire_timeout_ms = 1_000;
    s.postgres.timeout_ms = 5_000;
    s.graph.timeout_ms = 5_000;
    s.vectors.timeout_ms = 5_000;
    s.redis.timeout_ms = 2_000;
    s.redis.lock_ttl_ms = 1_000;
    s.redis.lock_wait_ms = 20_000;
    s
}

pub struct Harness {
    pub client: WriterServiceClient<Channel>,
    pub channel: Channel,
    pub blobs: BlobStore,
    /// A writer with direct (unproxied) connections, for looking into the stores.
    pub observer: Writer,
    pub postgres: Proxy,
    pub graph: Proxy,
    pub vectors: Proxy,
    pub redis: Proxy,
    pub settings: WriterSettings,
    /// The stores' real addresses (not through the proxies).
    direct: WriterSettings,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(stack: &Stack, configure: impl FnOnce(&mut WriterSettings)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("dir");
        let mut direct = direct_settings(stack);
        direct.service.blob_url = dir.path().display().to_string();
        configure(&mut direct);
        let postgres = Proxy::start(socket_of(&direct.postgres.url))
            .await
            .expect("proxy");
        let graph = Proxy::start(socket_of(&direct.graph.url))
            .await
            .expect("proxy");
        let vectors = Proxy::start(socket_of(&direct.vectors.url))
            .await
            .expect("proxy");
        let redis = Proxy::start(socket_of(&direct.redis.url))
            .await
            .expect("proxy");
        let mut settings = direct.clone();
        settings.postgres.url = through(&direct.postgres.url, &postgres);
        settings.graph.url = through(&direct.graph.url, &graph);
        settings.vectors.url = through(&direct.vectors.url, &vectors);
        settings.redis.url = through(&direct.redis.url, &redis);

        let observer = apex_writer::connect(&direct)
            .await
            .expect("observer connects");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(apex_writer::run(
            settings.clone(),
            listener,
            None,
            shutdown.clone(),
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut client = WriterServiceClient::new(channel.clone());
        // The first answer means the server has connected its stores and is serving (the
        // call waits in the listen backlog until then).
        client
            .inspect_document(InspectDocumentRequest {
                document_id: Uuid::new_v4().to_string(),
            })
            .await
            .expect("the writer serves");
        Self {
            client,
            channel,
            blobs: BlobStore::open(&dir.path().display().to_string()).expect("blobs"),
            observer,
            postgres,
            graph,
            vectors,
            redis,
            settings,
            direct,
            shutdown,
            task,
            _dir: dir,
        }
    }

    /// Stops the server and drops the test's graph and collections.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("server ran cleanly");
        if self.settings.graph.backend == GraphBackend::Falkordb {
            let client = redis::Client::open(self.direct.graph.url.as_str()).expect("client");
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let _: Result<(), _> = redis::cmd("GRAPH.DELETE")
                    .arg(&self.settings.graph.graph)
                    .query_async(&mut conn)
                    .await;
            }
        }
        let qdrant = qdrant_client::Qdrant::from_url(&self.direct.vectors.url)
            .skip_compatibility_check()
            .build()
            .expect("qdrant");
        if let Ok(list) = qdrant.list_collections().await {
            for c in list.collections {
                if c.name
                    .starts_with(&format!("{}_", self.settings.vectors.collection_prefix))
                {
                    let _ = qdrant.delete_collection(c.name).await;
                }
            }
        }
    }

    pub async fn write(
        &mut self,
        req: WriteDocumentRequest,
    ) -> Result<WriteDocumentResponse, tonic::Status> {
        self.client
            .write_document(req)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn inspect(&mut self, id: Uuid) -> InspectDocumentResponse {
        self.client
            .inspect_document(InspectDocumentRequest {
                document_id: id.to_string(),
            })
            .await
            .expect("inspect")
            .into_inner()
    }

    /// Writes until it succeeds (a store just came back: clients reconnect on their next
    /// call), at most 40 attempts.
    pub async fn write_until_ok(&mut self, req: WriteDocumentRequest) -> WriteDocumentResponse {
        let mut last = None;
        for attempt in 0..40u32 {
            match self.write(req.clone()).await {
                Ok(r) => return r,
                Err(s) => last = Some(s),
            }
            tokio::time::sleep(std::time::Duration::from_millis(
                50 * u64::from(attempt.min(6)),
            ))
            .await;
        }
        panic!("the write never succeeded: {last:?}")
    }
}

/// The per-store outcome of a reply or of a failed call's status details.
pub fn outcome(outcomes: &[apex_proto::writer::v1::StoreOutcome], store: Store) -> StepState {
    outcomes
        .iter()
        .find(|o| o.store == store as i32)
        .map_or(StepState::Unspecified, |o| {
            StepState::try_from(o.state).unwrap_or(StepState::Unspecified)
        })
}

/// The outcomes carried in a failed write's status details.
pub fn failed_outcomes(status: &tonic::Status) -> Vec<apex_proto::writer::v1::StoreOutcome> {
    apex_common::error::decode_details(status)
        .and_then(|d| d.find::<WriteDocumentResponse>(apex_proto::writer::v1::WRITE_OUTCOMES))
        .map(|r| r.outcomes)
        .unwrap_or_default()
}

pub fn view(r: &InspectDocumentResponse, store: Store) -> apex_proto::writer::v1::StoreView {
    r.stores
        .iter()
        .find(|v| v.store == store as i32)
        .cloned()
        .expect("a view of every store")
}
