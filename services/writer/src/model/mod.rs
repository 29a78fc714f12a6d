//! One document version as the writer stores it: the request plus its three artifacts
//! (parsed chunks, entities, vectors), checked against each other and turned into rows.
//! Everything here is pure: no store is touched, so bad input is refused before the saga.

mod entities;
mod vectors;

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
    /// The parser's chunk metadata (OCR marks), stored as a JSON object.
    pub metadata: std::collections::BTreeMap<String, String>,
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
    let (rows, by_id) = chunk_rows(chunks)?;
    let (entity_rows, mentions, relations) = match entities {
        None => (Vec::new(), Vec::new(), Vec::new()),
        Some(result) => entities::graph_rows(result, &by_id)?,
    };
    let vectors = match vectors {
        None => None,
        Some(set) => Some(vectors::check_vectors(set, |id| {
            chunk_of(&by_id, "vectors", id)
        })?),
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

/// Chunk id (as the artifacts write it) to its UUID and ordinal.
type ChunkIds = HashMap<String, (Uuid, u32)>;

/// The parsed chunks as rows, with the index the other artifacts are checked against; a
/// chunk id must be a UUID and unique.
fn chunk_rows(
    chunks: Vec<apex_proto::common::v1::Chunk>,
) -> Result<(Vec<ChunkRow>, ChunkIds), ServiceError> {
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
            metadata: c.metadata.into_iter().collect(),
        });
    }
    Ok((rows, by_id))
}

/// The chunk `id`; `field` names the artifact that refers to it when it is not one.
fn chunk_of(by_id: &ChunkIds, field: &str, id: &str) -> Result<(Uuid, u32), ServiceError> {
    by_id.get(id).copied().ok_or_else(|| {
        ServiceError::invalid_field(
            field,
            format!("chunk {id} is not a chunk of the parsed document"),
        )
    })
}

#[cfg(test)]
mod tests;
