//! Reads for search, inspection and deletion: chunk texts and model, chunks with their
//! entities, and the counts `InspectDocument` shows.

use apex_common::ServiceError;
use sqlx::Row as _;
use uuid::Uuid;

use super::{PgStore, pg_error};

/// PostgreSQL's view of a document for `InspectDocument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PgView {
    pub version: u64,
    pub chunks: u32,
    pub entities: u32,
    pub vectors: u32,
}

/// A stored chunk as search shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub chunk_id: Uuid,
    pub document_id: Uuid,
    pub source: String,
    pub version: u64,
    pub ordinal: u32,
    pub text: String,
    pub page: u32,
    pub section: String,
    /// (entity id, type, display name) of each entity mentioned.
    pub entities: Vec<(Uuid, String, String)>,
    /// The parser's chunk metadata (OCR marks).
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl PgStore {
    /// The document's chunk texts and the embedding model of its vectors (for dropping
    /// cached embeddings when it is deleted).
    pub async fn texts_and_model(
        &self,
        document_id: Uuid,
    ) -> Result<(Vec<String>, Option<String>), ServiceError> {
        let texts = sqlx::query("SELECT text FROM chunks WHERE document_id = $1")
            .bind(document_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| pg_error("read chunk texts", e))?
            .into_iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        let model = sqlx::query(
            "SELECT c.model_id FROM documents d JOIN vector_collections c ON c.name = d.vector_collection
             WHERE d.document_id = $1",
        )
        .bind(document_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| pg_error("read model", e))?
        .map(|r| r.get::<String, _>(0));
        Ok((texts, model))
    }

    /// The stored chunks among `ids`, with their document, text and the entities they
    /// mention (chunks no longer stored are left out).
    pub async fn chunk_hits(&self, ids: &[Uuid]) -> Result<Vec<ChunkRow>, ServiceError> {
        let rows = sqlx::query(
            "SELECT c.chunk_id, c.document_id, d.source, c.version, c.ordinal, c.text, c.page,
                    c.section,
                    coalesce(array_agg(e.entity_id ORDER BY e.entity_type, e.display_name)
                             FILTER (WHERE e.entity_id IS NOT NULL), '{}') AS entity_ids,
                    coalesce(array_agg(e.entity_type ORDER BY e.entity_type, e.display_name)
                             FILTER (WHERE e.entity_id IS NOT NULL), '{}') AS entity_types,
                    coalesce(array_agg(e.display_name ORDER BY e.entity_type, e.display_name)
                             FILTER (WHERE e.entity_id IS NOT NULL), '{}') AS entity_names,
                    c.metadata::text
             FROM chunks c
             JOIN documents d ON d.document_id = c.document_id
             LEFT JOIN (SELECT DISTINCT chunk_id, entity_id FROM mentions) m ON m.chunk_id = c.chunk_id
             LEFT JOIN entities e ON e.entity_id = m.entity_id
             WHERE c.chunk_id = ANY($1)
             GROUP BY c.chunk_id, d.source",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| pg_error("read chunks", e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let ids: Vec<Uuid> = r.get(8);
                let types: Vec<String> = r.get(9);
                let names: Vec<String> = r.get(10);
                let metadata: String = r.get(11);
                ChunkRow {
                    chunk_id: r.get(0),
                    document_id: r.get(1),
                    source: r.get(2),
                    version: r.get::<i64, _>(3) as u64,
                    ordinal: r.get::<i32, _>(4) as u32,
                    text: r.get(5),
                    page: r.get::<i32, _>(6) as u32,
                    section: r.get(7),
                    entities: ids
                        .into_iter()
                        .zip(types)
                        .zip(names)
                        .map(|((id, t), n)| (id, t, n))
                        .collect(),
                    // Written by this writer from a string map; anything else reads as empty.
                    metadata: serde_json::from_str(&metadata).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// What PostgreSQL holds for a document.
    pub async fn inspect(&self, document_id: Uuid) -> Result<Option<PgView>, ServiceError> {
        let row = sqlx::query(
            "SELECT d.version,
                    (SELECT count(*) FROM chunks c WHERE c.document_id = d.document_id) AS chunks,
                    (SELECT count(*) FROM document_entities e WHERE e.document_id = d.document_id) AS entities,
                    d.vector_count
             FROM documents d WHERE d.document_id = $1",
        )
        .bind(document_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| pg_error("inspect", e))?;
        Ok(row.map(|r| PgView {
            version: r.get::<i64, _>(0) as u64,
            chunks: r.get::<i64, _>(1) as u32,
            entities: r.get::<i64, _>(2) as u32,
            vectors: r.get::<i32, _>(3) as u32,
        }))
    }
}
