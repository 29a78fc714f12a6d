//! The embedder's gRPC service on 127.0.0.1 port 0 with the real model: `Info`, `Embed`
//! (order, truncation flag, the empty-text policy, concurrent requests sharing batches,
//! limits), `EmbedBlob` over a real parser artifact, and both encoders agreeing.

mod common;

use apex_common::Shutdown;
use apex_common::blob::BlobStore;
use apex_embedder::{EmbedderSettings, EngineChoice, Precision};
use apex_proto::common::v1::BlobRef;
use apex_proto::embedder::v1::embedder_service_client::EmbedderServiceClient;
use apex_proto::embedder::v1::{EmbedBlobRequest, EmbedRequest, EmbeddingSet, InfoRequest};
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

use common::{cosine, reference_of};

struct Server {
    client: EmbedderServiceClient<Channel>,
    channel: Channel,
    metrics: std::net::SocketAddr,
    blobs: BlobStore,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(configure: impl FnOnce(&mut EmbedderSettings)) -> Server {
    let dir = tempfile::tempdir().expect("dir");
    let mut settings = EmbedderSettings::default();
    settings.service.blob_url = dir.path().display().to_string();
    settings.service.metrics_addr = String::new();
    settings.workers = 2;
    // Most tests look at the model; the cache test turns the cache on.
    settings.cache_url = String::new();
    configure(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics = metrics_listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(apex_embedder::run(
        settings,
        listener,
        Some(metrics_listener),
        shutdown.clone(),
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    Server {
        client: EmbedderServiceClient::new(channel.clone()),
        channel,
        metrics,
        blobs: BlobStore::open(&dir.path().display().to_string()).expect("blobs"),
        shutdown,
        task,
        _dir: dir,
    }
}

impl Server {
    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("server ran cleanly");
    }

    async fn embed(
        &mut self,
        texts: &[&str],
    ) -> Result<apex_proto::embedder::v1::EmbedResponse, tonic::Status> {
        self.client
            .embed(EmbedRequest {
                texts: texts.iter().map(|t| (*t).to_owned()).collect(),
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_keeps_order_flags_truncation_and_follows_the_empty_text_policy() {
    let mut s = start(|_| {}).await;
    let info = s
        .client
        .info(InfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!(
        (
            info.model_id.as_str(),
            info.dimension,
            info.max_tokens,
            info.normalized
        ),
        ("sentence-transformers/all-MiniLM-L6-v2", 384, 256, true)
    );
    let long = "freight ".repeat(400);
    let reply = s
        .embed(&["Hello, world!", &long, "", "a"])
        .await
        .expect("embed");
    assert_eq!((reply.dimension, reply.vectors.len()), (384, 4));
    // The default engine is int8 (it passed the fidelity gate): within the gate's bound of
    // sentence-transformers' own vectors.
    let bound = f64::from(apex_embedder::gate::MIN_COSINE);
    assert!(cosine(&reply.vectors[0].values, &reference_of("Hello, world!")) >= bound);
    assert!(cosine(&reply.vectors[3].values, &reference_of("a")) >= bound);
    // Empty text: the model's vector for "" (as sentence-transformers gives it).
    assert!(cosine(&reply.vectors[2].values, &reference_of("")) >= 0.999);
    let flags: Vec<bool> = reply.vectors.iter().map(|v| v.truncated).collect();
    assert_eq!(flags, [false, true, false, false]);
    // A truncated text is the embedding of its first 256 tokens.
    let first = "freight ".repeat(254);
    let cut = s.embed(&[&first]).await.expect("embed");
    assert!(cosine(&cut.vectors[0].values, &reply.vectors[1].values) >= 0.9999);
    assert!(!cut.vectors[0].truncated);
    // No texts, no vectors.
    assert!(
        s.embed(&[])
            .await
            .expect("empty request")
            .vectors
            .is_empty()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_batches_and_each_gets_its_own_vectors() {
    let s = start(|settings| {
        settings.max_batch = 8;
        settings.max_wait_ms = 20;
    })
    .await;
    let texts = [
        "Shipment delayed at the border",
        "Invoice paid in full",
        "Driver checked in at dock 4",
        "Pallets damaged on arrival",
    ];
    let mut solo = Vec::new();
    for t in texts {
        let mut c = s.client.clone();
        solo.push(
            c.embed(EmbedRequest {
                texts: vec![t.to_owned()],
            })
            .await
            .expect("solo")
            .into_inner()
            .vectors[0]
                .values
                .clone(),
        );
    }
    let mut tasks = Vec::new();
    for round in 0..4 {
        for (i, t) in texts.iter().enumerate() {
            let mut c = s.client.clone();
            let t = (*t).to_owned();
            tasks.push(tokio::spawn(async move {
                let v = c
                    .embed(EmbedRequest { texts: vec![t] })
                    .await
                    .expect("embed")
                    .into_inner();
                (round, i, v.vectors[0].values.clone())
            }));
        }
    }
    // Its own vector, whatever it was batched with: int8 quantizes each batch's activations
    // with that batch's range, so the same text may move a little (within the gate's bound),
    // but always stays nearer to its own vector than to any other text's.
    for task in tasks {
        let (_, i, v) = task.await.expect("join");
        let own = cosine(&v, &solo[i]);
        assert!(
            own >= f64::from(apex_embedder::gate::MIN_COSINE),
            "text {i}: {own}"
        );
        for (j, other) in solo.iter().enumerate().filter(|(j, _)| *j != i) {
            assert!(cosine(&v, other) < own, "text {i} got text {j}'s vector");
        }
    }
    let s = s;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_texts_come_from_the_redis_cache() {
    // The cache is the local stack's Redis: without a running stack this test is skipped.
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let redis = stack.redis_url();
    let mut s = start(move |settings| settings.cache_url = redis).await;
    let nonce = format!(
        "cache probe {:?} {}",
        std::time::SystemTime::now(),
        std::process::id()
    );
    let long = format!("{nonce} {}", "pallet ".repeat(300));
    let first = s.embed(&[&nonce, &long]).await.expect("first");
    assert_eq!(first.cache_hits, 0);
    let second = s
        .embed(&[&nonce, &format!("not cached yet {nonce}"), &long])
        .await
        .expect("second");
    assert_eq!(second.cache_hits, 2, "the two unchanged texts");
    assert_eq!(second.vectors[0].values, first.vectors[0].values);
    assert_eq!(second.vectors[2].values, first.vectors[1].values);
    assert!(
        second.vectors[2].truncated,
        "the truncation flag is cached too"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_refused_with_the_setting_named() {
    let mut s = start(|settings| {
        settings.max_texts = 3;
        settings.max_text_chars = 50;
    })
    .await;
    let status = s.embed(&["a", "b", "c", "d"]).await.expect_err("too many");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("max_texts"),
        "{}",
        status.message()
    );
    let long = "x".repeat(51);
    let status = s.embed(&[&long]).await.expect_err("too long");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("max_text_chars"),
        "{}",
        status.message()
    );
    // What was served is counted on /metrics.
    s.embed(&["one", "two"]).await.expect("embed");
    let body = reqwest::get(format!("http://{}/metrics", s.metrics))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(body.contains("apex_embedder_texts_total 2"), "{body}");
    // A reduced precision passed the fidelity gate at start (OpenVINO's bf16 where the CPU
    // has it, else the int8 graph), and the metrics say which.
    let engine = if apex_openvino::cpu_has_bf16() {
        "openvino-bf16"
    } else {
        "onnxruntime-int8"
    };
    assert!(
        body.contains(&format!(
            "apex_embedder_engine_info{{engine=\"{engine}\"}} 1"
        )),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_blob_writes_one_vector_per_chunk_of_a_parsed_document() {
    let mut s = start(|_| {}).await;
    let parser = apex_parser::Parser::new(apex_parser::ParserSettings::default()).expect("parser");
    let doc = parser
        .parse(
            &apex_parser::corpus::email(),
            apex_parser::Hints {
                file_name: "report.eml",
                ..apex_parser::Hints::default()
            },
        )
        .expect("parse");
    let mut chunk_ids = Vec::new();
    fn ids(d: &apex_proto::parser::v1::ParsedDocument, out: &mut Vec<String>) {
        out.extend(d.chunks.iter().map(|c| c.chunk_id.clone()));
        for p in &d.parts {
            ids(p, out);
        }
    }
    ids(&doc, &mut chunk_ids);
    let parsed = s
        .blobs
        .put(
            "parsed",
            apex_parser::ARTIFACT_CONTENT_TYPE,
            doc.encode_to_vec().into(),
        )
        .await
        .expect("put");
    let reply = s
        .client
        .embed_blob(EmbedBlobRequest {
            parsed: Some(parsed),
            document: None,
        })
        .await
        .expect("embed blob")
        .into_inner();
    let summary = reply.summary.expect("summary");
    let artifact = reply.artifact.expect("artifact");
    assert!(artifact.key.starts_with("vectors/"), "{}", artifact.key);
    let set = EmbeddingSet::decode(s.blobs.get_verified(&artifact).await.expect("artifact"))
        .expect("decode");
    assert_eq!(set.dimension, 384);
    assert_eq!(summary.vector_count as usize, chunk_ids.len());
    assert_eq!(
        set.vectors
            .iter()
            .map(|v| v.chunk_id.clone())
            .collect::<Vec<_>>(),
        chunk_ids,
        "one vector per chunk, attachments included, in order"
    );
    assert!(set.vectors.iter().all(|v| v.values.len() == 384));

    let missing = BlobRef {
        key: format!("parsed/{}", "0".repeat(64)),
        sha256: "0".repeat(64),
        ..BlobRef::default()
    };
    let status = s
        .client
        .embed_blob(EmbedBlobRequest {
            parsed: Some(missing),
            document: None,
        })
        .await
        .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    let junk = s
        .blobs
        .put(
            "parsed",
            "text/plain",
            bytes::Bytes::from_static(b"\xff\xff not protobuf"),
        )
        .await
        .expect("junk");
    let status = s
        .client
        .embed_blob(EmbedBlobRequest {
            parsed: Some(junk),
            document: None,
        })
        .await
        .expect_err("junk");
    assert_eq!(status.code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candle_encoder_gives_the_same_vectors() {
    let mut onnx = start(|s| {
        s.engine = EngineChoice::Onnx;
        s.precision = Precision::Fp32;
    })
    .await;
    let mut candle = start(|s| {
        s.engine = EngineChoice::Candle;
        s.workers = 1;
    })
    .await;
    let texts = [
        "Container MSCU1234565 arrived at the Port of Long Beach",
        "Refund requested",
    ];
    let a = onnx.embed(&texts).await.expect("onnx");
    let b = candle.embed(&texts).await.expect("candle");
    for (x, y) in a.vectors.iter().zip(&b.vectors) {
        assert!(cosine(&x.values, &y.values) >= 0.9999);
    }
    onnx.stop().await;
    candle.stop().await;
}

/// grpcurl against the embedder lists the embedder, health and reflection, over reflection v1
/// and v1alpha, and none of the other services whose contracts share the descriptor set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_only_the_embedder() {
    let server = start(|_| {}).await;
    let (v1, v1alpha) = apex_common::grpc::reflected_services(server.channel.clone())
        .await
        .expect("reflection");
    assert_eq!(
        v1,
        apex_common::grpc::expected_reflection(&["apex.embedder.v1.EmbedderService"])
    );
    assert_eq!(v1alpha, v1);
    server.stop().await;
}
