//! The four services in this test process, on 127.0.0.1 port 0, sharing one blob
//! directory, writing to the local stack's real stores (the sandbox's own FalkorDB graph and
//! vector collection prefix). The worker process reaches them through `worker_env`.

use std::net::SocketAddr;

use apex_common::Shutdown;
use apex_common::tls::local::LocalPki;
use apex_e2e::fault::Proxy;
use apex_e2e::{Names, Stack};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One running service: where it listens and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.task.await;
    }
}

async fn listener(addr: Option<SocketAddr>) -> TcpListener {
    let addr = addr.unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr"));
    TcpListener::bind(addr).await.expect("bind service")
}

pub struct Services {
    pub parser: Running,
    pub extractor: Running,
    pub embedder: Option<Running>,
    pub writer: Running,
    pub writer_settings: apex_writer::WriterSettings,
    /// The writer reaches the graph through this proxy (cut it to fail the graph step).
    pub graph_proxy: Proxy,
    pub blob_dir: tempfile::TempDir,
    /// With a local PKI, every service demands mutual TLS and the worker gets https://
    /// addresses and the client certificate.
    pub tls: Option<LocalPki>,
}

impl Services {
    pub async fn start(stack: &Stack) -> Self {
        Self::start_with(stack, None).await
    }

    /// The services, under mutual TLS with `tls`'s certificates when given.
    pub async fn start_with(stack: &Stack, tls: Option<LocalPki>) -> Self {
        let blob_dir = tempfile::tempdir().expect("blob dir");
        let blob_url = blob_dir.path().display().to_string();
        let server_tls = tls
            .as_ref()
            .map(|p| p.server_settings(true))
            .unwrap_or_default();

        let mut parser = apex_parser::ParserSettings::default();
        parser.service.blob_url = blob_url.clone();
        parser.service.metrics_addr = String::new();
        parser.service.tls = server_tls.clone();
        let parser = spawn(listener(None).await, |l, s| {
            tokio::spawn(apex_parser::run(parser, l, None, s))
        });

        let mut extractor = apex_extractor::ExtractorSettings::default();
        extractor.service.blob_url = blob_url.clone();
        extractor.service.metrics_addr = String::new();
        extractor.service.tls = server_tls.clone();
        let extractor = spawn(listener(None).await, |l, s| {
            tokio::spawn(apex_extractor::run(extractor, l, None, s))
        });

        let embedder = Some(Self::embedder(&blob_url, None, tls.as_ref()).await);

        let names = Names::new();
        let mut writer = apex_writer::WriterSettings::default();
        writer.service.blob_url = blob_url.clone();
        writer.service.metrics_addr = String::new();
        writer.service.tls = server_tls;
        writer.graph.url = stack.graph_url();
        writer.graph.graph = names.graph();
        writer.vectors.url = stack.vectors_url();
        writer.vectors.collection_prefix = names.collection_prefix();
        writer.postgres.url = stack.postgres_url();
        writer.redis.url = stack.redis_url();
        let writer_settings = writer.clone();
        let graph_addr = ([127, 0, 0, 1], stack.settings.graph_port).into();
        let graph_proxy = Proxy::start(graph_addr).await.expect("graph proxy");
        writer.graph.url = format!("redis://{}", graph_proxy.addr);
        // Fail fast when the proxy is cut.
        writer.graph.timeout_ms = 5_000;
        let writer = spawn(listener(None).await, |l, s| {
            tokio::spawn(apex_writer::run(writer, l, None, s))
        });
        Self {
            parser,
            extractor,
            embedder,
            writer,
            writer_settings,
            graph_proxy,
            blob_dir,
            tls,
        }
    }

    /// Starts the embedder, on `addr` when given (to bring it back where it was).
    pub async fn embedder(
        blob_url: &str,
        addr: Option<SocketAddr>,
        tls: Option<&LocalPki>,
    ) -> Running {
        let mut embedder = apex_embedder::EmbedderSettings::default();
        if let Some(pki) = tls {
            embedder.service.tls = pki.server_settings(true);
        }
        embedder.service.blob_url = blob_url.to_owned();
        embedder.service.metrics_addr = String::new();
        embedder.cache_url = String::new();
        embedder.workers = 1;
        spawn(listener(addr).await, |l, s| {
            tokio::spawn(apex_embedder::run(embedder, l, None, s))
        })
    }

    pub fn blob_url(&self) -> String {
        self.blob_dir.path().display().to_string()
    }

    /// The worker's settings for these services.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let url = |r: &Running| format!("{scheme}://{}", r.addr);
        let embedder = self.embedder.as_ref().expect("embedder running");
        let mut tls = Vec::new();
        if let Some(pki) = &self.tls {
            let path = |p: std::path::PathBuf| p.display().to_string();
            tls = vec![
                ("APEX_WORKER__INGEST__TLS__CA".into(), path(pki.ca())),
                (
                    "APEX_WORKER__INGEST__TLS__CERT".into(),
                    path(pki.client_cert()),
                ),
                (
                    "APEX_WORKER__INGEST__TLS__KEY".into(),
                    path(pki.client_key()),
                ),
            ];
        }
        let mut env: Vec<(String, String)> = vec![
            ("APEX_WORKER__INGEST__PARSER_ADDR".into(), url(&self.parser)),
            (
                "APEX_WORKER__INGEST__EXTRACTOR_ADDR".into(),
                url(&self.extractor),
            ),
            ("APEX_WORKER__INGEST__EMBEDDER_ADDR".into(), url(embedder)),
            ("APEX_WORKER__INGEST__WRITER_ADDR".into(), url(&self.writer)),
            ("APEX_WORKER__INGEST__BLOB_URL".into(), self.blob_url()),
        ];
        env.extend(tls);
        env
    }

    /// A client of the writer (to look into the stores), with the client certificate when
    /// the services demand one.
    pub async fn writer_client(
        &self,
    ) -> apex_proto::writer::v1::writer_service_client::WriterServiceClient<tonic::transport::Channel>
    {
        let endpoint = match &self.tls {
            None => tonic::transport::Endpoint::from_shared(format!("http://{}", self.writer.addr))
                .expect("uri"),
            Some(pki) => {
                let tls = apex_common::tls::ClientTls::load(&pki.client_settings()).expect("tls");
                tonic::transport::Endpoint::from_shared(format!("https://{}", self.writer.addr))
                    .expect("uri")
                    .tls_config(tls.config("127.0.0.1"))
                    .expect("tls config")
            }
        };
        apex_proto::writer::v1::writer_service_client::WriterServiceClient::new(
            endpoint.connect().await.expect("writer"),
        )
    }

    pub async fn stop(self) {
        for r in [
            Some(self.parser),
            Some(self.extractor),
            self.embedder,
            Some(self.writer),
        ]
        .into_iter()
        .flatten()
        {
            r.stop().await;
        }
        let client = redis::Client::open(self.writer_settings.graph.url.as_str()).expect("redis");
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let _: Result<(), _> = redis::cmd("GRAPH.DELETE")
                .arg(&self.writer_settings.graph.graph)
                .query_async(&mut conn)
                .await;
        }
        if let Ok(qdrant) = qdrant_client::Qdrant::from_url(&self.writer_settings.vectors.url)
            .skip_compatibility_check()
            .build()
            && let Ok(list) = qdrant.list_collections().await
        {
            let prefix = format!("{}_", self.writer_settings.vectors.collection_prefix);
            for c in list.collections {
                if c.name.starts_with(&prefix) {
                    let _ = qdrant.delete_collection(c.name).await;
                }
            }
        }
    }
}

fn spawn(
    listener: TcpListener,
    start: impl FnOnce(TcpListener, Shutdown) -> JoinHandle<anyhow::Result<()>>,
) -> Running {
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let task = start(listener, shutdown.clone());
    Running {
        addr,
        shutdown,
        task,
    }
}
