//! The parser's gRPC service on 127.0.0.1 port 0: both forms, the error codes of bad input,
//! health and reflection.

use apex_common::Shutdown;
use apex_common::blob::BlobStore;
use apex_parser::ParserSettings;
use apex_proto::common::v1::{BlobRef, DocumentRef};
use apex_proto::parser::v1::parser_service_client::ParserServiceClient;
use apex_proto::parser::v1::{ParseBlobRequest, ParseOptions, ParseRequest, ParsedDocument};
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    channel: Channel,
    blobs: BlobStore,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(max_input_bytes: u64) -> Server {
    start_with(|s| s.max_input_bytes = max_input_bytes).await
}

async fn start_with(configure: impl FnOnce(&mut ParserSettings)) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = ParserSettings::default();
    settings.service.blob_url = dir.path().display().to_string();
    configure(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(apex_parser::run(settings, listener, None, shutdown.clone()));
    // The listener is bound: connecting succeeds and calls wait in the backlog until served.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let blobs = BlobStore::open(&dir.path().display().to_string()).expect("blob store");
    Server {
        channel,
        blobs,
        shutdown,
        task,
        _dir: dir,
    }
}

impl Server {
    fn client(&self) -> ParserServiceClient<Channel> {
        ParserServiceClient::new(self.channel.clone())
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("server ran cleanly");
    }
}

fn doc_ref() -> DocumentRef {
    DocumentRef {
        document_id: "5d1c0f4e-8a9b-5c3d-a1e2-f3b4c5d6e7f8".to_owned(),
        source: "upload".to_owned(),
        version: 1,
    }
}

/// Small documents that cannot need OCR are parsed on the gRPC worker thread, the rest on
/// the blocking pool (`inline_max_bytes`): the same reply either way, for every sample
/// format (the PDF takes the pool under both settings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_parsed_inline_and_on_the_blocking_pool_are_the_same() {
    let inline = start_with(|_| {}).await;
    let pooled = start_with(|s| s.inline_max_bytes = 0).await;
    let samples = apex_parser::corpus::samples();
    assert!(samples.len() >= 8, "{} samples", samples.len());
    for (name, bytes) in samples {
        let request = ParseRequest {
            content: bytes.into(),
            file_name: name.to_owned(),
            document: Some(doc_ref()),
            ..ParseRequest::default()
        };
        let a = inline.client().parse(request.clone()).await;
        let b = pooled.client().parse(request).await;
        match (a, b) {
            (Ok(a), Ok(b)) => {
                let (a, b) = (a.into_inner().document, b.into_inner().document);
                assert!(a.as_ref().is_some_and(|d| !d.format.is_empty()), "{name}");
                assert_eq!(a, b, "{name}");
            }
            (Err(a), Err(b)) => {
                assert_eq!((a.code(), a.message()), (b.code(), b.message()), "{name}");
            }
            (a, b) => panic!("{name}: inline {a:?}, pool {b:?}"),
        }
    }
    inline.stop().await;
    pooled.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_and_claim_check_forms_give_the_same_document() {
    let server = start(64 << 20).await;
    let bytes = apex_parser::corpus::docx();
    let options = ParseOptions {
        max_chunk_tokens: 32,
        overlap_tokens: 4,
    };
    let inline = server
        .client()
        .parse(ParseRequest {
            content: bytes.clone().into(),
            file_name: "agreement.docx".to_owned(),
            mime_type: String::new(),
            document: Some(doc_ref()),
            options: Some(options),
        })
        .await
        .expect("parse")
        .into_inner()
        .document
        .expect("document");
    assert_eq!(inline.format, "docx");
    assert!(inline.chunks.len() >= 2);

    let source: BlobRef = server
        .blobs
        .put("raw", "application/octet-stream", bytes.into())
        .await
        .expect("put");
    let reply = server
        .client()
        .parse_blob(ParseBlobRequest {
            source: Some(source),
            file_name: "agreement.docx".to_owned(),
            mime_type: String::new(),
            document: Some(doc_ref()),
            options: Some(options),
        })
        .await
        .expect("parse blob")
        .into_inner();
    let summary = reply.summary.expect("summary");
    let artifact = reply.artifact.expect("artifact");
    assert!(artifact.key.starts_with("parsed/"), "{}", artifact.key);
    assert_eq!(summary.format, "docx");
    assert_eq!(summary.chunk_count as usize, inline.chunks.len());
    assert_eq!(summary.sha256, inline.sha256);
    assert_eq!(summary.text_chars, inline.text.chars().count() as u64);
    // The reply stays far below Temporal's payload limits: a few hundred bytes.
    let reply_size = summary.encoded_len() + artifact.encoded_len();
    assert!(reply_size < 1024, "{reply_size} bytes");
    let stored = server
        .blobs
        .get_verified(&artifact)
        .await
        .expect("artifact");
    let from_blob = ParsedDocument::decode(stored).expect("decode artifact");
    assert_eq!(from_blob, inline);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_code_and_reason() {
    let server = start(4096).await;
    let parse = |content: Vec<u8>, file_name: &str| ParseRequest {
        content: content.into(),
        file_name: file_name.to_owned(),
        ..ParseRequest::default()
    };
    let status = server
        .client()
        .parse(parse(vec![b'a'; 5000], "big.txt"))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("limit of 4096 bytes"),
        "{}",
        status.message()
    );

    let binary: Vec<u8> = (0..=255u8).cycle().take(2048).collect();
    let status = server
        .client()
        .parse(parse(binary, "x.bin"))
        .await
        .expect_err("binary");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("unsupported format"),
        "{}",
        status.message()
    );

    let status = server
        .client()
        .parse(parse(apex_parser::corpus::docx_with_dtd(), "lol.docx"))
        .await
        .expect_err("dtd");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("DTD"), "{}", status.message());

    let status = server
        .client()
        .parse_blob(ParseBlobRequest::default())
        .await
        .expect_err("no source");
    assert_eq!(status.code(), Code::InvalidArgument);

    let missing = BlobRef {
        key: format!("raw/{}", "0".repeat(64)),
        sha256: "0".repeat(64),
        size_bytes: 10,
        content_type: String::new(),
    };
    let status = server
        .client()
        .parse_blob(ParseBlobRequest {
            source: Some(missing),
            ..ParseBlobRequest::default()
        })
        .await
        .expect_err("missing blob");
    assert_eq!(status.code(), Code::NotFound);

    // The server is still healthy after all of that.
    let ok = server
        .client()
        .parse(parse(b"fine".to_vec(), "ok.txt"))
        .await
        .expect("ok");
    assert_eq!(ok.into_inner().document.expect("doc").text, "fine");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_describe_the_service() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let server = start(64 << 20).await;
    let status = HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest {
            service: "apex.parser.v1.ParserService".to_owned(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    // Reflection over v1 and v1alpha lists the parser, health and reflection: not the other
    // services of the mesh, whose contracts share the descriptor set.
    let (v1, v1alpha) = apex_common::grpc::reflected_services(server.channel.clone())
        .await
        .expect("reflection");
    assert_eq!(
        v1,
        apex_common::grpc::expected_reflection(&["apex.parser.v1.ParserService"])
    );
    assert_eq!(v1alpha, v1);
    server.stop().await;
}
