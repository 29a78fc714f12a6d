//! Unit tests for building a document: shared entity rows, refusals by field name.

use super::*;
use apex_proto::common::v1::{Chunk, DocumentRef, Entity, Mention, Relation, Span};
use apex_proto::embedder::v1::ChunkVector;

fn identity() -> Identity {
    Identity {
        document_id: Uuid::new_v4(),
        source: "test".into(),
        version: 1,
    }
}

fn chunks(n: u32) -> Vec<Chunk> {
    (0..n)
        .map(|i| Chunk {
            chunk_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &i.to_be_bytes()).to_string(),
            ordinal: i,
            text: format!("chunk {i}"),
            ..Default::default()
        })
        .collect()
}

fn entity(t: &str, k: &str) -> Entity {
    Entity {
        entity_type: t.into(),
        canonical_key: k.into(),
        display_name: k.into(),
        confidence: 0.9,
    }
}

fn mention(chunk: &Chunk, entity_index: u32) -> Mention {
    Mention {
        chunk_id: chunk.chunk_id.clone(),
        entity_index,
        span: Some(Span {
            char_start: 0,
            char_end: 3,
        }),
        text: "abc".into(),
    }
}

fn build_with(
    entities: Option<ExtractionResult>,
    vectors: Option<EmbeddingSet>,
) -> Result<DocumentData, ServiceError> {
    build(
        identity(),
        String::new(),
        BTreeMap::new(),
        Artifacts::default(),
        chunks(2),
        entities,
        vectors,
    )
}

fn field_of(err: ServiceError) -> (String, String) {
    match err {
        ServiceError::InvalidArgument {
            field: Some(f),
            message,
        } => (f, message),
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn equal_entities_share_one_row_and_mentions_map_to_it() {
    let c = chunks(2);
    let result = ExtractionResult {
        entities: vec![
            entity("ORG", "acme"),
            entity("ORG", "acme"),
            entity("CITY", "x"),
        ],
        mentions: vec![mention(&c[0], 0), mention(&c[1], 1)],
        relations: vec![Relation {
            from_entity_index: 1,
            to_entity_index: 2,
            relation_type: "CO_OCCURS".into(),
            weight: 2.0,
        }],
        ..Default::default()
    };
    let doc = build_with(Some(result), None).expect("builds");
    assert_eq!(doc.entities.len(), 2);
    let acme = entity_id("ORG", "acme");
    assert!(doc.mentions.iter().all(|m| m.entity_id == acme));
    assert_eq!(doc.relations[0].from, acme);
    assert_eq!(doc.document_level_entities(), vec![entity_id("CITY", "x")]);
    assert_eq!(doc.mention_edges().len(), 2);
}

#[test]
fn a_mention_of_an_unknown_chunk_or_entity_is_refused_by_name() {
    let c = chunks(2);
    let mut stray = mention(&c[0], 0);
    stray.chunk_id = Uuid::new_v4().to_string();
    let result = ExtractionResult {
        entities: vec![entity("ORG", "acme")],
        mentions: vec![stray],
        ..Default::default()
    };
    let (field, message) = field_of(build_with(Some(result), None).expect_err("refused"));
    assert_eq!(field, "entities");
    assert!(
        message.contains("not a chunk of the parsed document"),
        "{message}"
    );

    let result = ExtractionResult {
        entities: vec![entity("ORG", "acme")],
        mentions: vec![mention(&c[0], 5)],
        ..Default::default()
    };
    let (_, message) = field_of(build_with(Some(result), None).expect_err("refused"));
    assert!(message.contains("names entity 5"), "{message}");
}

#[test]
fn vectors_must_match_the_sets_dimension_and_the_documents_chunks() {
    let c = chunks(2);
    let set = |values: Vec<f32>, chunk_id: String| EmbeddingSet {
        model_id: "m".into(),
        dimension: 3,
        vectors: vec![ChunkVector {
            chunk_id,
            values,
            truncated: false,
        }],
    };
    let ok =
        build_with(None, Some(set(vec![0.1, 0.2, 0.3], c[1].chunk_id.clone()))).expect("builds");
    assert_eq!(ok.vector_count(), 1);
    assert_eq!(ok.vectors.as_ref().map(|v| v.points[0].ordinal), Some(1));

    let (field, message) = field_of(
        build_with(None, Some(set(vec![0.1, 0.2], c[0].chunk_id.clone()))).expect_err("refused"),
    );
    assert_eq!(field, "vectors");
    assert!(
        message.contains("has 2 values") && message.contains("dimension 3"),
        "{message}"
    );

    let (_, message) = field_of(
        build_with(
            None,
            Some(set(vec![0.1, f32::NAN, 0.3], c[0].chunk_id.clone())),
        )
        .expect_err("refused"),
    );
    assert!(message.contains("not finite"), "{message}");

    let (_, message) = field_of(
        build_with(
            None,
            Some(set(vec![0.1, 0.2, 0.3], Uuid::new_v4().to_string())),
        )
        .expect_err("refused"),
    );
    assert!(message.contains("not a chunk"), "{message}");
}

#[test]
fn request_fields_are_checked_with_their_names() {
    let good = WriteDocumentRequest {
        document: Some(DocumentRef {
            document_id: Uuid::new_v4().to_string(),
            source: "s".into(),
            version: 3,
        }),
        parsed: Some(BlobRef::default()),
        ..Default::default()
    };
    assert_eq!(check_request(&good).expect("ok").version, 3);
    type Spoil = Box<dyn Fn(&mut WriteDocumentRequest)>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("document", Box::new(|r| r.document = None)),
        (
            "document.document_id",
            Box::new(|r| r.document.as_mut().expect("doc").document_id = "nope".into()),
        ),
        (
            "document.source",
            Box::new(|r| r.document.as_mut().expect("doc").source = " ".into()),
        ),
        (
            "document.version",
            Box::new(|r| r.document.as_mut().expect("doc").version = 0),
        ),
        (
            "document.version",
            Box::new(|r| r.document.as_mut().expect("doc").version = u64::MAX),
        ),
        (
            "content_sha256",
            Box::new(|r| r.content_sha256 = "xyz".into()),
        ),
        ("parsed", Box::new(|r| r.parsed = None)),
    ];
    for (field, spoil) in cases {
        let mut r = good.clone();
        spoil(&mut r);
        assert_eq!(field_of(check_request(&r).expect_err("refused")).0, field);
    }
}

#[test]
fn duplicate_chunk_ids_are_refused() {
    let mut c = chunks(2);
    c[1].chunk_id = c[0].chunk_id.clone();
    let err = build(
        identity(),
        String::new(),
        BTreeMap::new(),
        Artifacts::default(),
        c,
        None,
        None,
    )
    .expect_err("refused");
    assert!(field_of(err).1.contains("appears twice"));
}
