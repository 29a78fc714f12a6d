//! One document version as the writer stores it: the request plus its three artifacts
//! (parsed chunks, entities, vectors), checked against each other and turned into rows.
//! Everything here is pure: no store is touched, so bad input is refused before the saga.

use std::collections::{BTreeMap, HashMap};

use apex_common::ServiceError;
use apex_common::blob::{BlobStore, all_chunks};
use apex_proto::common::v1::BlobRef;
use apex_proto::embedder::v1::EmbeddingSet;
use apex_proto::extractor::v1::ExtractionResult;
use apex_proto::writer::v1::WriteDocumentRequest;
use prost::Message as _;
use uuid::Uuid;

/// Largest version the stores can hold (PostgreSQL `bigint`, graph and payload integers).
pub const MAX_VERSION: u64 = i64::MAX as u64;

/// Namespace of entity ids: `UUIDv5(ENTITY_NAMESPACE, "<type>\x1f<canonical key>")`.
fn entity_namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://apex-ingest.dev/ns/entity")
}

/// The id of the entity node/row for `(entity_type, canonical_key)`.
pub fn entity_id(entity_type: &str, canonical_key: &str) -> Uuid {
    Uuid::new_v5(
        &entity_namespace(),
        format!("{entity_type}\u{1f}{canonical_key}").as_bytes(),
    )
}

/// Where the artifacts of a version live; kept with the version so that a compensation
/// can restore it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Artifacts {
    pub parsed: Option<BlobRef>,
    pub entities: Option<BlobRef>,
    pub vectors: Option<BlobRef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub id: Uuid,
    pub ordinal: u32,
    pub text: String,
    pub token_count: u32,
    pub page: u32,
    pub section: String,
    pub char_start: u64,
    pub char_end: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    pub id: Uuid,
    pub entity_type: String,
    pub canonical_key: String,
    pub display_name: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MentionRow {
    pub chunk_id: Uuid,
    pub entity_id: Uuid,
    pub char_start: u64,
    pub char_end: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationRow {
    pub from: Uuid,
    pub to: Uuid,
    pub relation_type: String,
    pub weight: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    pub chunk_id: Uuid,
    pub ordinal: u32,
    pub values: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorSet {
    pub model_id: String,
    pub dimension: u32,
    pub points: Vec<PointRow>,
}

/// One version of one document, ready for every store.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentData {
    pub document_id: Uuid,
    pub source: String,
    pub version: u64,
    pub content_sha256: String,
    pub metadata: BTreeMap<String, String>,
    pub artifacts: Artifacts,
    pub chunks: Vec<ChunkRow>,
    pub entities: Vec<EntityRow>,
    pub mentions: Vec<MentionRow>,
    pub relations: Vec<RelationRow>,
    pub vectors: Option<VectorSet>,
}

impl DocumentData {
    /// Entities no chunk mentions (webhook metadata, EDI envelope values): the graph links
    /// them to the document itself.
    pub fn document_level_entities(&self) -> Vec<Uuid> {
        let mentioned: std::collections::HashSet<Uuid> =
            self.mentions.iter().map(|m| m.entity_id).collect();
        self.entities
            .iter()
            .map(|e| e.id)
            .filter(|id| !mentioned.contains(id))
            .collect()
    }

    /// Mentions counted per (chunk, entity): one graph edge each.
    pub fn mention_edges(&self) -> Vec<(Uuid, Uuid, u32)> {
        let mut counts: BTreeMap<(Uuid, Uuid), u32> = BTreeMap::new();
        for m in &self.mentions {
            *counts.entry((m.chunk_id, m.entity_id)).or_default() += 1;
        }
        counts.into_iter().map(|((c, e), n)| (c, e, n)).collect()
    }

    pub fn vector_count(&self) -> usize {
        self.vectors.as_ref().map_or(0, |v| v.points.len())
    }
}

/// The checked identity of a request: document id, source and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub document_id: Uuid,
    pub source: String,
    pub version: u64,
}

/// Parses a document id, naming `field` when it is not a UUID.
pub fn parse_document_id(field: &str, id: &str) -> Result<Uuid, ServiceError> {
    if id.trim().is_empty() {
        return Err(ServiceError::invalid_field(
            field,
            "a document id is required",
        ));
    }
    Uuid::parse_str(id.trim()).map_err(|e| {
        ServiceError::invalid_field(field, format!("`{id}` is not a UUID document id: {e}"))
    })
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks the request's own fields (no artifact is read).
pub fn check_request(req: &WriteDocumentRequest) -> Result<Identity, ServiceError> {
    let doc = req.document.as_ref().ok_or_else(|| {
        ServiceError::invalid_field("document", "a document reference is required")
    })?;
    let document_id = parse_document_id("document.document_id", &doc.document_id)?;
    if doc.source.trim().is_empty() {
        return Err(ServiceError::invalid_field(
            "document.source",
            "a source is required",
        ));
    }
    if doc.version == 0 {
        return Err(ServiceError::invalid_field(
            "document.version",
            "versions start at 1",
        ));
    }
    if doc.version > MAX_VERSION {
        return Err(ServiceError::invalid_field(
            "document.version",
            format!(
                "{} is above the largest version, {MAX_VERSION}",
                doc.version
            ),
        ));
    }
    if !req.content_sha256.is_empty() && !is_sha256_hex(&req.content_sha256) {
        return Err(ServiceError::invalid_field(
            "content_sha256",
            "must be 64 lowercase hex characters (SHA-256)",
        ));
    }
    if req.parsed.is_none() {
        return Err(ServiceError::invalid_field(
            "parsed",
            "a parsed-document artifact is required",
        ));
    }
    if req.idempotency_key.len() > 200 {
        return Err(ServiceError::invalid_field(
            "idempotency_key",
            "at most 200 bytes",
        ));
    }
    Ok(Identity {
        document_id,
        source: doc.source.trim().to_owned(),
        version: doc.version,
    })
}

/// Reads the artifacts named by `artifacts` and builds the document. `INVALID_ARGUMENT`
/// names the artifact when they disagree with each other.
pub async fn load(
    blobs: &BlobStore,
    identity: Identity,
    content_sha256: String,
    metadata: BTreeMap<String, String>,
    artifacts: Artifacts,
) -> Result<DocumentData, ServiceError> {
    let parsed = blobs.get_parsed(artifacts.parsed.as_ref()).await?;
    let entities = match &artifacts.entities {
        Some(blob) => Some(
            ExtractionResult::decode(blobs.get_verified(blob).await?).map_err(|e| {
                ServiceError::invalid_field(
                    "entities",
                    format!("{} is not an entities artifact: {e}", blob.key),
                )
            })?,
        ),
        None => None,
    };
    let vectors = match &artifacts.vectors {
        Some(blob) => Some(
            EmbeddingSet::decode(blobs.get_verified(blob).await?).map_err(|e| {
                ServiceError::invalid_field(
                    "vectors",
                    format!("{} is not a vectors artifact: {e}", blob.key),
                )
            })?,
        ),
        None => None,
    };
    let content_sha256 = if content_sha256.is_empty() {
        parsed.sha256.clone()
    } else {
        content_sha256
    };
    build(
        identity,
        content_sha256,
        metadata,
        artifacts,
        all_chunks(parsed),
        entities,
        vectors,
    )
}

/// Builds and checks a document from decoded artifacts.
pub fn build(
    identity: Identity,
    content_sha256: String,
    metadata: BTreeMap<String, String>,
    artifacts: Artifacts,
    chunks: Vec<apex_proto::common::v1::Chunk>,
    entities: Option<ExtractionResult>,
    vectors: Option<EmbeddingSet>,
) -> Result<DocumentData, ServiceError> {
    let mut rows = Vec::with_capacity(chunks.len());
    let mut by_id: HashMap<String, (Uuid, u32)> = HashMap::with_capacity(chunks.len());
    for (i, c) in chunks.into_iter().enumerate() {
        let id = Uuid::parse_str(&c.chunk_id).map_err(|_| {
            ServiceError::invalid_field(
                "parsed",
                format!("chunk {i} has id `{}`, which is not a UUID", c.chunk_id),
            )
        })?;
        if by_id.insert(c.chunk_id.clone(), (id, c.ordinal)).is_some() {
            return Err(ServiceError::invalid_field(
                "parsed",
                format!("chunk id {} appears twice", c.chunk_id),
            ));
        }
        let location = c.location.unwrap_or_default();
        rows.push(ChunkRow {
            id,
            ordinal: c.ordinal,
            text: c.text,
            token_count: c.token_count,
            page: location.page,
            section: location.section,
            char_start: location.char_start,
            char_end: location.char_end,
        });
    }
    let chunk = |field: &str, id: &str| {
        by_id.get(id).copied().ok_or_else(|| {
            ServiceError::invalid_field(
                field,
                format!("chunk {id} is not a chunk of the parsed document"),
            )
        })
    };

    let (entity_rows, mentions, relations) = match entities {
        None => (Vec::new(), Vec::new(), Vec::new()),
        Some(result) => {
            // Equal (type, key) pairs share one row; `index_to_id` maps the reply's indices.
            let mut entity_rows: Vec<EntityRow> = Vec::new();
            let mut seen: HashMap<Uuid, usize> = HashMap::new();
            let mut index_to_id = Vec::with_capacity(result.entities.len());
            for (i, e) in result.entities.into_iter().enumerate() {
                if e.entity_type.trim().is_empty() || e.canonical_key.trim().is_empty() {
                    return Err(ServiceError::invalid_field(
                        "entities",
                        format!("entity {i} has an empty type or canonical key"),
                    ));
                }
                let id = entity_id(&e.entity_type, &e.canonical_key);
                index_to_id.push(id);
                match seen.get(&id) {
                    Some(&at) => {
                        let row = &mut entity_rows[at];
                        row.confidence = row.confidence.max(e.confidence);
                    }
                    None => {
                        seen.insert(id, entity_rows.len());
                        entity_rows.push(EntityRow {
                            id,
                            display_name: if e.display_name.is_empty() {
                                e.canonical_key.clone()
                            } else {
                                e.display_name
                            },
                            entity_type: e.entity_type,
                            canonical_key: e.canonical_key,
                            confidence: e.confidence,
                        });
                    }
                }
            }
            let entity_at = |what: &str, index: u32| {
                index_to_id.get(index as usize).copied().ok_or_else(|| {
                    ServiceError::invalid_field(
                        "entities",
                        format!(
                            "{what} names entity {index}, but there are {} entities",
                            index_to_id.len()
                        ),
                    )
                })
            };
            let mut mentions = std::collections::BTreeSet::new();
            for m in result.mentions {
                let (chunk_id, _) = chunk("entities", &m.chunk_id)?;
                let span = m.span.unwrap_or_default();
                if span.char_end < span.char_start {
                    return Err(ServiceError::invalid_field(
                        "entities",
                        format!(
                            "a mention in chunk {} ends ({}) before it starts ({})",
                            m.chunk_id, span.char_end, span.char_start
                        ),
                    ));
                }
                mentions.insert(MentionRow {
                    chunk_id,
                    entity_id: entity_at("a mention", m.entity_index)?,
                    char_start: span.char_start,
                    char_end: span.char_end,
                    text: m.text,
                });
            }
            // One edge per (from, to, type): repeated relations keep the largest weight.
            let mut relations: BTreeMap<(Uuid, Uuid, String), f32> = BTreeMap::new();
            for r in result.relations {
                if r.relation_type.trim().is_empty() {
                    return Err(ServiceError::invalid_field(
                        "entities",
                        "a relation has an empty type",
                    ));
                }
                if !r.weight.is_finite() {
                    return Err(ServiceError::invalid_field(
                        "entities",
                        format!(
                            "relation {} has a weight that is not finite",
                            r.relation_type
                        ),
                    ));
                }
                let key = (
                    entity_at("a relation", r.from_entity_index)?,
                    entity_at("a relation", r.to_entity_index)?,
                    r.relation_type,
                );
                let w = relations.entry(key).or_insert(r.weight);
                *w = w.max(r.weight);
            }
            (
                entity_rows,
                mentions.into_iter().collect(),
                relations
                    .into_iter()
                    .map(|((from, to, relation_type), weight)| RelationRow {
                        from,
                        to,
                        relation_type,
                        weight,
                    })
                    .collect(),
            )
        }
    };

    let vectors = match vectors {
        None => None,
        Some(set) => Some(check_vectors(set, |id| chunk("vectors", id))?),
    };

    Ok(DocumentData {
        document_id: identity.document_id,
        source: identity.source,
        version: identity.version,
        content_sha256,
        metadata,
        artifacts,
        chunks: rows,
        entities: entity_rows,
        mentions,
        relations,
        vectors,
    })
}

/// Checks an embedding set: a model, a dimension every vector has, finite values, each
/// chunk at most once and every chunk one of the document's.
fn check_vectors(
    set: EmbeddingSet,
    chunk: impl Fn(&str) -> Result<(Uuid, u32), ServiceError>,
) -> Result<VectorSet, ServiceError> {
    if set.model_id.trim().is_empty() {
        return Err(ServiceError::invalid_field(
            "vectors",
            "the embedding set names no model",
        ));
    }
    if set.dimension == 0 {
        return Err(ServiceError::invalid_field(
            "vectors",
            "the embedding set has dimension 0",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut points = Vec::with_capacity(set.vectors.len());
    for v in set.vectors {
        let (chunk_id, ordinal) = chunk(&v.chunk_id)?;
        if !seen.insert(chunk_id) {
            return Err(ServiceError::invalid_field(
                "vectors",
                format!("chunk {} has two vectors", v.chunk_id),
            ));
        }
        if v.values.len() != set.dimension as usize {
            return Err(ServiceError::invalid_field(
                "vectors",
                format!(
                    "the vector of chunk {} has {} values, but the set's model {} has dimension {}",
                    v.chunk_id,
                    v.values.len(),
                    set.model_id,
                    set.dimension
                ),
            ));
        }
        if v.values.iter().any(|x| !x.is_finite()) {
            return Err(ServiceError::invalid_field(
                "vectors",
                format!(
                    "the vector of chunk {} has a value that is not finite",
                    v.chunk_id
                ),
            ));
        }
        points.push(PointRow {
            chunk_id,
            ordinal,
            values: v.values,
        });
    }
    Ok(VectorSet {
        model_id: set.model_id,
        dimension: set.dimension,
        points,
    })
}

#[cfg(test)]
mod tests {
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
        let ok = build_with(None, Some(set(vec![0.1, 0.2, 0.3], c[1].chunk_id.clone())))
            .expect("builds");
        assert_eq!(ok.vector_count(), 1);
        assert_eq!(ok.vectors.as_ref().map(|v| v.points[0].ordinal), Some(1));

        let (field, message) = field_of(
            build_with(None, Some(set(vec![0.1, 0.2], c[0].chunk_id.clone())))
                .expect_err("refused"),
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
}
