//! The extractor's gRPC service on 127.0.0.1 port 0: the inline form, the claim-check form
//! over a real parser artifact, and the error codes.

use apex_common::Shutdown;
use apex_common::blob::BlobStore;
use apex_extractor::ExtractorSettings;
use apex_proto::common::v1::{BlobRef, Chunk};
use apex_proto::extractor::v1::extractor_service_client::ExtractorServiceClient;
use apex_proto::extractor::v1::{ExtractBlobRequest, ExtractRequest, ExtractionResult};
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    client: ExtractorServiceClient<Channel>,
    blobs: BlobStore,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = ExtractorSettings::default();
    settings.0.blob_url = dir.path().display().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(apex_extractor::run(
        settings,
        listener,
        None,
        shutdown.clone(),
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    Server {
        client: ExtractorServiceClient::new(channel),
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
}

fn chunk(id: &str, text: &str) -> Chunk {
    Chunk {
        chunk_id: id.to_owned(),
        text: text.to_owned(),
        ..Chunk::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_extraction_counts_empty_chunks_and_refuses_chunks_without_ids() {
    let mut s = start().await;
    let result = s
        .client
        .extract(ExtractRequest {
            chunks: vec![
                chunk(
                    "a",
                    "BOL: BL-88231 for container CSQU3054383 from Rotterdam to Chicago.",
                ),
                chunk("b", "  "),
            ],
            ..ExtractRequest::default()
        })
        .await
        .expect("extract")
        .into_inner()
        .result
        .expect("result");
    assert_eq!(result.empty_chunks, 1);
    let mut found: Vec<(String, String)> = result
        .entities
        .iter()
        .map(|e| (e.entity_type.clone(), e.canonical_key.clone()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("BOL_NUMBER".to_owned(), "BL-88231".to_owned()),
            ("CONTAINER_NUMBER".to_owned(), "CSQU3054383".to_owned()),
            ("LOCATION".to_owned(), "city:chicago-us".to_owned()),
            ("LOCATION".to_owned(), "city:rotterdam-nl".to_owned()),
        ]
    );
    assert_eq!(result.mentions.len(), 4);
    assert_eq!(
        result.relations.len(),
        6,
        "4 entities in one chunk: 6 pairs"
    );

    let status = s
        .client
        .extract(ExtractRequest {
            chunks: vec![chunk("", "text")],
            ..ExtractRequest::default()
        })
        .await
        .expect_err("no chunk id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("chunk_id"),
        "{}",
        status.message()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_check_form_reads_a_parser_artifact_and_writes_entities() {
    let mut s = start().await;
    // A real parsed artifact: the parser's email fixture, with a CSV and an email attached.
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
        .extract_blob(ExtractBlobRequest {
            parsed: Some(parsed),
            document: None,
        })
        .await
        .expect("extract blob")
        .into_inner();
    let summary = reply.summary.expect("summary");
    let artifact = reply.artifact.expect("artifact");
    assert!(artifact.key.starts_with("entities/"), "{}", artifact.key);
    let result = ExtractionResult::decode(s.blobs.get_verified(&artifact).await.expect("artifact"))
        .expect("decode");
    assert_eq!(summary.entity_count as usize, result.entities.len());
    assert_eq!(summary.mention_count as usize, result.mentions.len());
    let keys: Vec<&str> = result
        .entities
        .iter()
        .map(|e| e.canonical_key.as_str())
        .collect();
    // From the top-level message and from the forwarded email inside it.
    assert!(keys.contains(&"ada@apex.example"), "{keys:?}");
    assert!(keys.contains(&"dispatch@acme.example"), "{keys:?}");
    assert!(keys.contains(&"2026-03-15T09:30:00"), "{keys:?}");
    assert!(
        keys.contains(&"10:00"),
        "the pickup time in the forwarded email: {keys:?}"
    );

    // A missing artifact is NOT_FOUND; bytes that are not an artifact are INVALID_ARGUMENT.
    let missing = BlobRef {
        key: format!("parsed/{}", "0".repeat(64)),
        sha256: "0".repeat(64),
        ..BlobRef::default()
    };
    let status = s
        .client
        .extract_blob(ExtractBlobRequest {
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
            bytes::Bytes::from_static(b"\xff\xff\xff not protobuf"),
        )
        .await
        .expect("put junk");
    let status = s
        .client
        .extract_blob(ExtractBlobRequest {
            parsed: Some(junk),
            document: None,
        })
        .await
        .expect_err("junk");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = s
        .client
        .extract_blob(ExtractBlobRequest::default())
        .await
        .expect_err("no artifact");
    assert_eq!(status.code(), Code::InvalidArgument);
    s.stop().await;
}
