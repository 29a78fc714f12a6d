//! Synthetic document versions (parsed chunks, entities, vectors) for the integration
//! tests and the benchmark: the artifacts the parser, extractor and embedder would store.

use apex_common::blob::BlobStore;
use apex_proto::common::v1::{BlobRef, Chunk, DocumentRef, Entity, Mention, Relation, Span};
use apex_proto::embedder::v1::{ChunkVector, EmbeddingSet};
use apex_proto::extractor::v1::ExtractionResult;
use apex_proto::parser::v1::ParsedDocument;
use apex_proto::writer::v1::WriteDocumentRequest;
use prost::Message as _;
use uuid::Uuid;

/// A document version: `chunks` chunks, `entities` entities (named with
/// `tag` so they are the test's own) mentioned round-robin, a relation chain, and
/// `dimension`-d unit vectors from `model`.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub id: Uuid,
    pub version: u64,
    pub chunks: usize,
    pub entities: usize,
    pub dimension: u32,
    pub model: String,
    pub tag: String,
    pub source: String,
}

impl Fixture {
    pub fn new(id: Uuid, version: u64) -> Self {
        Self {
            id,
            version,
            chunks: 20,
            entities: 10,
            dimension: 384,
            model: "sentence-transformers/all-MiniLM-L6-v2".into(),
            tag: id.simple().to_string(),
            source: "test".into(),
        }
    }

    pub fn chunk_id(&self, ordinal: usize) -> Uuid {
        Uuid::new_v5(&self.id, format!("{}/{ordinal}", self.version).as_bytes())
    }

    pub fn entity_keys(&self) -> Vec<(String, String)> {
        (0..self.entities)
            .map(|i| ("ORGANIZATION".to_owned(), format!("org-{}-{i}", self.tag)))
            .collect()
    }

    pub fn entity_ids(&self) -> Vec<Uuid> {
        self.entity_keys()
            .iter()
            .map(|(t, k)| crate::model::entity_id(t, k))
            .collect()
    }

    pub fn parsed(&self) -> ParsedDocument {
        ParsedDocument {
            text: String::new(),
            format: "text".into(),
            sha256: "a".repeat(64),
            chunks: (0..self.chunks)
                .map(|i| Chunk {
                    chunk_id: self.chunk_id(i).to_string(),
                    ordinal: i as u32,
                    text: format!(
                        "Chunk {i} of {} version {}: freight moved.",
                        self.id, self.version
                    ),
                    token_count: 12,
                    location: None,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn extraction(&self) -> ExtractionResult {
        let entities: Vec<Entity> = self
            .entity_keys()
            .into_iter()
            .map(|(t, k)| Entity {
                entity_type: t,
                display_name: k.to_uppercase(),
                canonical_key: k,
                confidence: 0.9,
            })
            .collect();
        let mentions = if self.chunks == 0 {
            Vec::new()
        } else {
            (0..self.entities)
                .map(|i| Mention {
                    chunk_id: self.chunk_id(i % self.chunks).to_string(),
                    entity_index: i as u32,
                    span: Some(Span {
                        char_start: 0,
                        char_end: 5,
                    }),
                    text: "Chunk".into(),
                })
                .collect()
        };
        let relations = (1..self.entities)
            .map(|i| Relation {
                from_entity_index: (i - 1) as u32,
                to_entity_index: i as u32,
                relation_type: "CO_OCCURS".into(),
                weight: 1.0,
            })
            .collect();
        ExtractionResult {
            entities,
            mentions,
            relations,
            ..Default::default()
        }
    }

    pub fn embeddings(&self) -> EmbeddingSet {
        let d = self.dimension as usize;
        EmbeddingSet {
            model_id: self.model.clone(),
            dimension: self.dimension,
            vectors: (0..self.chunks)
                .map(|i| {
                    let mut values = vec![0.0f32; d];
                    values[i % d] = 1.0;
                    ChunkVector {
                        chunk_id: self.chunk_id(i).to_string(),
                        values,
                        truncated: false,
                    }
                })
                .collect(),
        }
    }

    async fn put(blobs: &BlobStore, kind: &str, bytes: Vec<u8>) -> BlobRef {
        blobs
            .put(kind, "application/x-protobuf", bytes.into())
            .await
            .expect("put artifact")
    }

    /// Stores the artifacts and returns the request (idempotency key `key`).
    pub async fn request(&self, blobs: &BlobStore, key: &str) -> WriteDocumentRequest {
        WriteDocumentRequest {
            document: Some(DocumentRef {
                document_id: self.id.to_string(),
                source: self.source.clone(),
                version: self.version,
            }),
            metadata: [("customer".to_owned(), "acme".to_owned())].into(),
            content_sha256: "b".repeat(64),
            parsed: Some(Self::put(blobs, "parsed", self.parsed().encode_to_vec()).await),
            entities: Some(Self::put(blobs, "entities", self.extraction().encode_to_vec()).await),
            vectors: Some(Self::put(blobs, "vectors", self.embeddings().encode_to_vec()).await),
            idempotency_key: key.to_owned(),
        }
    }
}
