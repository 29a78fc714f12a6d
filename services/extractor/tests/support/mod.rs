//! Shared by the extractor's integration tests: a server on 127.0.0.1 port 0 with its own
//! blob directory, and a chunk builder.
#![allow(dead_code, unreachable_pub)]

pub mod openai;

use apex_common::Shutdown;
use apex_common::blob::BlobStore;
use apex_extractor::ExtractorSettings;
use apex_proto::common::v1::Chunk;
use apex_proto::extractor::v1::extractor_service_client::ExtractorServiceClient;
use tonic::transport::Channel;

pub struct Server {
    pub client: ExtractorServiceClient<Channel>,
    pub channel: Channel,
    pub blobs: BlobStore,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

pub async fn start() -> Server {
    start_with(|_| {}, None).await
}

pub async fn start_with(
    configure: impl FnOnce(&mut ExtractorSettings),
    metrics: Option<tokio::net::TcpListener>,
) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = ExtractorSettings::default();
    settings.service.blob_url = dir.path().display().to_string();
    configure(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(apex_extractor::run(
        settings,
        listener,
        metrics,
        shutdown.clone(),
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    Server {
        client: ExtractorServiceClient::new(channel.clone()),
        channel,
        blobs: BlobStore::open(&dir.path().display().to_string()).expect("blobs"),
        shutdown,
        task,
        _dir: dir,
    }
}

impl Server {
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("server ran cleanly");
    }
}

pub fn chunk(id: &str, text: &str) -> Chunk {
    Chunk {
        chunk_id: id.to_owned(),
        text: text.to_owned(),
        ..Chunk::default()
    }
}
