//! The rows of one document version, written inside the write's transaction: the document,
//! its chunks, entities and mentions, and the version's artifacts.

use apex_common::ServiceError;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{PgStore, pg_error};
use crate::model::{ChunkRow, DocumentData, EntityRow, MentionRow};

impl PgStore {
    /// Writes every row of `doc`; `false` when the document row was fenced by a newer
    /// version (and nothing else was written).
    pub(super) async fn write_rows(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        doc: &DocumentData,
        collection: Option<&str>,
        restoring: bool,
    ) -> Result<bool, ServiceError> {
        let metadata = serde_json::to_value(&doc.metadata).map_err(anyhow::Error::from)?;
        if !upsert_document(tx, doc, &metadata, collection, restoring).await? {
            return Ok(false);
        }
        delete_superseded(tx, doc.document_id).await?;
        for batch in doc.chunks.chunks(self.batch_rows) {
            insert_chunks(tx, doc, batch).await?;
        }
        // Entities in a fixed order so concurrent writers sharing entities lock rows in
        // the same order (no deadlocks).
        let mut entities: Vec<_> = doc.entities.iter().collect();
        entities.sort_by_key(|e| e.id);
        for batch in entities.chunks(self.batch_rows) {
            upsert_entities(tx, doc.document_id, batch).await?;
        }
        for batch in doc.mentions.chunks(self.batch_rows) {
            insert_mentions(tx, batch).await?;
        }
        record_version(tx, doc, &metadata).await?;
        Ok(true)
    }
}

/// The document row; `false` when a newer version is stored (unless restoring).
async fn upsert_document(
    tx: &mut Transaction<'_, Postgres>,
    doc: &DocumentData,
    metadata: &serde_json::Value,
    collection: Option<&str>,
    restoring: bool,
) -> Result<bool, ServiceError> {
    let upserted = sqlx::query(
        "INSERT INTO documents (document_id, source, version, content_sha256, metadata,
             chunk_count, entity_count, vector_count, vector_collection)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (document_id) DO UPDATE SET
             source = EXCLUDED.source, version = EXCLUDED.version,
             content_sha256 = EXCLUDED.content_sha256, metadata = EXCLUDED.metadata,
             chunk_count = EXCLUDED.chunk_count, entity_count = EXCLUDED.entity_count,
             vector_count = EXCLUDED.vector_count,
             vector_collection = EXCLUDED.vector_collection, updated_at = now()
         WHERE $10 OR documents.version <= EXCLUDED.version",
    )
    .bind(doc.document_id)
    .bind(&doc.source)
    .bind(doc.version as i64)
    .bind(&doc.content_sha256)
    .bind(metadata)
    .bind(doc.chunks.len() as i32)
    .bind(doc.entities.len() as i32)
    .bind(doc.vector_count() as i32)
    .bind(collection)
    .bind(restoring)
    .execute(&mut **tx)
    .await
    .map_err(|e| pg_error("upsert document", e))?;
    Ok(upserted.rows_affected() > 0)
}

/// The version replaces what the document had: chunks (and their mentions by cascade) and
/// the document's entity links.
async fn delete_superseded(
    tx: &mut Transaction<'_, Postgres>,
    document_id: Uuid,
) -> Result<(), ServiceError> {
    sqlx::query("DELETE FROM chunks WHERE document_id = $1")
        .bind(document_id)
        .execute(&mut **tx)
        .await
        .map_err(|e| pg_error("delete superseded chunks", e))?;
    sqlx::query("DELETE FROM document_entities WHERE document_id = $1")
        .bind(document_id)
        .execute(&mut **tx)
        .await
        .map_err(|e| pg_error("delete superseded entity links", e))?;
    Ok(())
}

async fn insert_chunks(
    tx: &mut Transaction<'_, Postgres>,
    doc: &DocumentData,
    batch: &[ChunkRow],
) -> Result<(), ServiceError> {
    sqlx::query(
        "INSERT INTO chunks (chunk_id, document_id, version, ordinal, text, token_count,
             page, section, char_start, char_end, metadata)
         SELECT t.id, $1, $2, t.ordinal, t.text, t.tokens, t.page, t.section, t.cs, t.ce,
                t.meta::jsonb
         FROM UNNEST($3::uuid[], $4::int4[], $5::text[], $6::int4[], $7::int4[],
                     $8::text[], $9::int8[], $10::int8[], $11::text[])
              AS t(id, ordinal, text, tokens, page, section, cs, ce, meta)
         ON CONFLICT (chunk_id) DO UPDATE SET
             document_id = EXCLUDED.document_id, version = EXCLUDED.version,
             ordinal = EXCLUDED.ordinal, text = EXCLUDED.text,
             token_count = EXCLUDED.token_count, page = EXCLUDED.page,
             section = EXCLUDED.section, char_start = EXCLUDED.char_start,
             char_end = EXCLUDED.char_end, metadata = EXCLUDED.metadata",
    )
    .bind(doc.document_id)
    .bind(doc.version as i64)
    .bind(batch.iter().map(|c| c.id).collect::<Vec<_>>())
    .bind(batch.iter().map(|c| c.ordinal as i32).collect::<Vec<_>>())
    .bind(batch.iter().map(|c| c.text.as_str()).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|c| c.token_count as i32)
            .collect::<Vec<_>>(),
    )
    .bind(batch.iter().map(|c| c.page as i32).collect::<Vec<_>>())
    .bind(batch.iter().map(|c| c.section.as_str()).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|c| c.char_start as i64)
            .collect::<Vec<_>>(),
    )
    .bind(batch.iter().map(|c| c.char_end as i64).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|c| serde_json::to_string(&c.metadata).unwrap_or_else(|_| "{}".to_owned()))
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await
    .map_err(|e| pg_error("insert chunks", e))?;
    Ok(())
}

/// The entities (shared between documents) and this document's links to them.
async fn upsert_entities(
    tx: &mut Transaction<'_, Postgres>,
    document_id: Uuid,
    batch: &[&EntityRow],
) -> Result<(), ServiceError> {
    sqlx::query(
        "INSERT INTO entities (entity_id, entity_type, canonical_key, display_name)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (entity_id) DO UPDATE SET display_name = EXCLUDED.display_name
         WHERE entities.display_name IS DISTINCT FROM EXCLUDED.display_name",
    )
    .bind(batch.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|e| e.entity_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|e| e.canonical_key.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|e| e.display_name.as_str())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await
    .map_err(|e| pg_error("upsert entities", e))?;
    sqlx::query(
        "INSERT INTO document_entities (document_id, entity_id, confidence)
         SELECT $1, t.id, t.confidence FROM UNNEST($2::uuid[], $3::real[]) AS t(id, confidence)
         ON CONFLICT (document_id, entity_id) DO UPDATE SET confidence = EXCLUDED.confidence",
    )
    .bind(document_id)
    .bind(batch.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.confidence).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .map_err(|e| pg_error("link entities", e))?;
    Ok(())
}

async fn insert_mentions(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[MentionRow],
) -> Result<(), ServiceError> {
    sqlx::query(
        "INSERT INTO mentions (chunk_id, entity_id, char_start, char_end, text)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::int8[], $5::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(batch.iter().map(|m| m.chunk_id).collect::<Vec<_>>())
    .bind(batch.iter().map(|m| m.entity_id).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|m| m.char_start as i64)
            .collect::<Vec<_>>(),
    )
    .bind(batch.iter().map(|m| m.char_end as i64).collect::<Vec<_>>())
    .bind(batch.iter().map(|m| m.text.as_str()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .map_err(|e| pg_error("insert mentions", e))?;
    Ok(())
}

/// The version's artifacts, kept so that a compensation can restore it.
async fn record_version(
    tx: &mut Transaction<'_, Postgres>,
    doc: &DocumentData,
    metadata: &serde_json::Value,
) -> Result<(), ServiceError> {
    let parsed = doc.artifacts.parsed.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO document_versions (document_id, version, content_sha256, metadata,
             parsed_key, parsed_sha256, entities_key, entities_sha256, vectors_key, vectors_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (document_id, version) DO UPDATE SET
             content_sha256 = EXCLUDED.content_sha256, metadata = EXCLUDED.metadata,
             parsed_key = EXCLUDED.parsed_key, parsed_sha256 = EXCLUDED.parsed_sha256,
             entities_key = EXCLUDED.entities_key, entities_sha256 = EXCLUDED.entities_sha256,
             vectors_key = EXCLUDED.vectors_key, vectors_sha256 = EXCLUDED.vectors_sha256,
             written_at = now()",
    )
    .bind(doc.document_id)
    .bind(doc.version as i64)
    .bind(&doc.content_sha256)
    .bind(metadata)
    .bind(&parsed.key)
    .bind(&parsed.sha256)
    .bind(doc.artifacts.entities.as_ref().map(|b| b.key.as_str()))
    .bind(doc.artifacts.entities.as_ref().map(|b| b.sha256.as_str()))
    .bind(doc.artifacts.vectors.as_ref().map(|b| b.key.as_str()))
    .bind(doc.artifacts.vectors.as_ref().map(|b| b.sha256.as_str()))
    .execute(&mut **tx)
    .await
    .map_err(|e| pg_error("record version", e))?;
    Ok(())
}
