//! The extractor's gRPC service on 127.0.0.1 port 0: the inline form, the claim-check form
//! over a real parser artifact, and the error codes.

use apex_common::Shutdown;
use apex_extractor::ExtractorSettings;
use apex_proto::common::v1::BlobRef;
use apex_proto::extractor::v1::{ExtractBlobRequest, ExtractRequest, ExtractionResult};
use prost::Message as _;
use tonic::Code;

mod support;

use support::{chunk, start, start_with};

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
            ..ExtractBlobRequest::default()
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
    assert!(keys.contains(&"2026-03-15T09:30:00+01:00"), "{keys:?}");
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
            ..ExtractBlobRequest::default()
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
            ..ExtractBlobRequest::default()
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

fn status_of(
    result: Result<tonic::Response<apex_proto::extractor::v1::ExtractResponse>, tonic::Status>,
) -> tonic::Status {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(status) => status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_limits_are_refused_with_the_reason() {
    let mut s = start_with(
        |settings| {
            settings.max_chunks = 3;
            settings.max_chunk_chars = 100;
            settings.max_metadata_entries = 2;
        },
        None,
    )
    .await;
    let many = (0..4).map(|i| chunk(&format!("c{i}"), "text")).collect();
    let status = status_of(
        s.client
            .extract(ExtractRequest {
                chunks: many,
                ..ExtractRequest::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("max_chunks"),
        "{}",
        status.message()
    );

    let status = status_of(
        s.client
            .extract(ExtractRequest {
                chunks: vec![chunk("a", &"é".repeat(101))],
                ..ExtractRequest::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("101 characters"),
        "{}",
        status.message()
    );
    // 100 two-byte characters are within a 100-character limit.
    s.client
        .extract(ExtractRequest {
            chunks: vec![chunk("a", &"é".repeat(100))],
            ..ExtractRequest::default()
        })
        .await
        .expect("at the limit");

    let status = status_of(
        s.client
            .extract(ExtractRequest {
                chunks: vec![chunk("a", "one"), chunk("a", "two")],
                ..ExtractRequest::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("appears twice"),
        "{}",
        status.message()
    );

    let metadata = (0..3).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let status = status_of(
        s.client
            .extract(ExtractRequest {
                chunks: vec![chunk("a", "text")],
                metadata,
                ..ExtractRequest::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("max_metadata_entries"),
        "{}",
        status.message()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_metadata_becomes_entities_with_typed_relations() {
    let mut s = start().await;
    let metadata = [
        ("shipment.id", "SHP-7781"),
        ("PO-Number", "4500012345"),
        ("shipper", "Apex Foods Inc."),
        ("consignee", "Lone Star Grocers LLC"),
        ("carrier_scac", "odfl"),
        ("driver", "Ana Ruiz"),
        ("destination", "Dallas"),
        ("sender", "dispatch@odfl.example"),
        ("unrelated_key", "ignored"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let result = s
        .client
        .extract(ExtractRequest {
            chunks: vec![chunk(
                "a",
                "Delivery for Lone Star Grocers LLC confirmed; shipment SHP-7781 arrived in Dallas.",
            )],
            metadata,
            ..ExtractRequest::default()
        })
        .await
        .expect("extract")
        .into_inner()
        .result
        .expect("result");
    let idx = |t: &str, k: &str| {
        result
            .entities
            .iter()
            .position(|e| e.entity_type == t && e.canonical_key == k)
            .unwrap_or_else(|| panic!("{t} {k}: {:?}", result.entities)) as u32
    };
    let ship = idx("SHIPMENT_NUMBER", "SHP-7781");
    let consignee = idx("ORGANIZATION", "lone star grocers");
    let shipper = idx("ORGANIZATION", "apex foods");
    let has = |from: u32, to: u32, kind: &str| {
        result.relations.iter().any(|r| {
            r.from_entity_index == from && r.to_entity_index == to && r.relation_type == kind
        })
    };
    assert!(has(ship, consignee, "DELIVERED_TO"));
    assert!(has(ship, shipper, "SHIPPED_BY"));
    assert!(has(shipper, consignee, "SHIPS_TO"));
    assert!(has(ship, idx("SCAC", "ODFL"), "CARRIED_BY"));
    assert!(has(ship, idx("PO_NUMBER", "4500012345"), "REFERENCES"));
    assert!(has(ship, idx("PERSON", "ana ruiz"), "DRIVEN_BY"));
    assert!(has(ship, idx("LOCATION", "city:dallas-us"), "DESTINED_FOR"));
    assert!(has(
        ship,
        idx("EMAIL", "dispatch@odfl.example"),
        "REPORTED_BY"
    ));
    // The text's shipment, consignee and city are the metadata's nodes, not copies.
    for key in ["SHP-7781", "lone star grocers", "city:dallas-us"] {
        assert_eq!(
            result
                .entities
                .iter()
                .filter(|e| e.canonical_key == key)
                .count(),
            1,
            "{key}"
        );
    }
    assert!(!result.entities.iter().any(|e| e.display_name == "ignored"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_gazetteer_file_names_customers_and_carriers() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("customers.csv");
    std::fs::write(
        &file,
        "entity_type,name,canonical_key,aliases\n\
         CUSTOMER,Lone Star Grocers,cust-1042,LSG\n\
         FACILITY,Dock 7 Laredo,,\n",
    )
    .expect("write");
    let mut s = start_with(
        |settings| settings.gazetteer.files = vec![file.clone()],
        None,
    )
    .await;
    let result = s
        .client
        .extract(ExtractRequest {
            chunks: vec![chunk(
                "a",
                "lsg reports the pallets reached Dock 7 Laredo; Lone Star Grocers will pay.",
            )],
            ..ExtractRequest::default()
        })
        .await
        .expect("extract")
        .into_inner()
        .result
        .expect("result");
    let found: Vec<(&str, &str)> = result
        .entities
        .iter()
        .map(|e| (e.entity_type.as_str(), e.canonical_key.as_str()))
        .collect();
    assert_eq!(
        found,
        [("CUSTOMER", "cust-1042"), ("FACILITY", "dock 7 laredo")],
        "both spellings of the customer are one entity; the facility wins over the city"
    );
    assert_eq!(result.mentions.len(), 3);
    s.stop().await;

    // A configured gazetteer that cannot be read stops the service from starting.
    let dir2 = tempfile::tempdir().expect("dir");
    let mut settings = ExtractorSettings::default();
    settings.service.blob_url = dir2.path().display().to_string();
    settings.gazetteer.files = vec![dir.path().join("missing.csv")];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = apex_extractor::run(settings, listener, None, Shutdown::new())
        .await
        .expect_err("missing gazetteer");
    assert!(format!("{err:#}").contains("missing.csv"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_chunks_empty_chunks_and_mentions() {
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = metrics.local_addr().expect("addr");
    let mut s = start_with(|_| {}, Some(metrics)).await;
    s.client
        .extract(ExtractRequest {
            chunks: vec![chunk("a", "Mail ops@apex.example"), chunk("b", " ")],
            ..ExtractRequest::default()
        })
        .await
        .expect("extract");
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(body.contains("apex_extractor_chunks_total 2"), "{body}");
    assert!(
        body.contains("apex_extractor_empty_chunks_total 1"),
        "{body}"
    );
    assert!(
        body.contains(r#"apex_extractor_mentions_total{entity_type="EMAIL"} 1"#),
        "{body}"
    );
    s.stop().await;
}

/// grpcurl against the extractor lists the extractor, health and reflection, over reflection
/// v1 and v1alpha, and none of the other services whose contracts share the descriptor set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_only_the_extractor() {
    let server = support::start().await;
    let (v1, v1alpha) = apex_common::grpc::reflected_services(server.channel.clone())
        .await
        .expect("reflection");
    assert_eq!(
        v1,
        apex_common::grpc::expected_reflection(&["apex.extractor.v1.ExtractorService"])
    );
    assert_eq!(v1alpha, v1);
    server.stop().await;
}
