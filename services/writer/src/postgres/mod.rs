//! PostgreSQL, the saga's source of truth: one transaction per document version, batched
//! with `UNNEST`, fenced by the stored version.

use std::time::Duration;

use apex_common::ServiceError;
use apex_proto::common::v1::BlobRef;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row as _, Transaction};
use uuid::Uuid;

use crate::model::{Artifacts, DocumentData};
use crate::settings::PostgresSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Maps a driver error: connection trouble is `UNAVAILABLE` (retryable), the rest internal.
pub fn pg_error(context: &str, e: sqlx::Error) -> ServiceError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => {
            ServiceError::Unavailable(format!("postgres: {context}: {e}"))
        }
        other => ServiceError::Internal(anyhow::anyhow!("postgres: {context}: {other}")),
    }
}

/// The version a document has in PostgreSQL, with what is needed to put it back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVersion {
    pub version: u64,
    pub source: String,
    pub content_sha256: String,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub artifacts: Artifacts,
    pub vector_collection: Option<String>,
}

/// One run of a saga, as the log names it.
#[derive(Debug, Clone, Copy)]
pub struct SagaRef {
    pub id: Uuid,
    /// "write" or "delete".
    pub operation: &'static str,
    pub document_id: Uuid,
    pub version: Option<u64>,
}

/// What a write found before it wrote.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Written; `previous` is the version that was stored before, if any.
    Written {
        previous: Option<Box<StoredVersion>>,
    },
    /// A newer version is stored; nothing was changed.
    Fenced { stored: u64 },
}

/// PostgreSQL's view of a document for `InspectDocument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PgView {
    pub version: u64,
    pub chunks: u32,
    pub entities: u32,
    pub vectors: u32,
}

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    batch_rows: usize,
}

fn blob(key: Option<String>, sha: Option<String>) -> Option<BlobRef> {
    key.map(|key| BlobRef {
        key,
        sha256: sha.unwrap_or_default(),
        ..Default::default()
    })
}

impl PgStore {
    /// Connects lazily (the first query opens connections) and runs the migrations.
    pub async fn connect(settings: &PostgresSettings, batch_rows: usize) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .connect_lazy(&settings.url)
            .map_err(|e| anyhow::anyhow!("postgres url: {e}"))?;
        MIGRATOR.run(&pool).await.map_err(|e| {
            anyhow::anyhow!("postgres migrations at {}: {e}", redact(&settings.url))
        })?;
        Ok(Self {
            pool,
            batch_rows: batch_rows.max(1),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The stored version of a document, if any.
    pub async fn stored(&self, document_id: Uuid) -> Result<Option<StoredVersion>, ServiceError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| pg_error("acquire", e))?;
        stored_version(&mut conn, document_id, false).await
    }

    /// Writes `doc` in one transaction unless a newer version is stored. `restore_of`:
    /// when `Some(v)`, this is a compensation putting back an older version, allowed only
    /// while the stored version is still `v` (the one being undone).
    pub async fn write(
        &self,
        doc: &DocumentData,
        collection: Option<&str>,
        restore_of: Option<u64>,
    ) -> Result<WriteOutcome, ServiceError> {
        let mut tx = self.pool.begin().await.map_err(|e| pg_error("begin", e))?;
        let previous = stored_version(&mut tx, doc.document_id, true).await?;
        match (restore_of, &previous) {
            (None, Some(p)) if p.version > doc.version => {
                return Ok(WriteOutcome::Fenced { stored: p.version });
            }
            (Some(undone), Some(p)) if p.version != undone => {
                // Someone else wrote since; their version stands.
                return Ok(WriteOutcome::Fenced { stored: p.version });
            }
            _ => {}
        }
        if !self
            .write_rows(&mut tx, doc, collection, restore_of.is_some())
            .await?
        {
            // A first write of this document by someone else committed in between with a
            // newer version.
            let stored = stored_version(&mut tx, doc.document_id, false)
                .await?
                .map_or(0, |s| s.version);
            return Ok(WriteOutcome::Fenced { stored });
        }
        tx.commit().await.map_err(|e| pg_error("commit", e))?;
        Ok(WriteOutcome::Written {
            previous: previous.map(Box::new),
        })
    }

    async fn write_rows(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        doc: &DocumentData,
        collection: Option<&str>,
        restoring: bool,
    ) -> Result<bool, ServiceError> {
        let metadata = serde_json::to_value(&doc.metadata).map_err(anyhow::Error::from)?;
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
        .bind(&metadata)
        .bind(doc.chunks.len() as i32)
        .bind(doc.entities.len() as i32)
        .bind(doc.vector_count() as i32)
        .bind(collection)
        .bind(restoring)
        .execute(&mut **tx)
        .await
        .map_err(|e| pg_error("upsert document", e))?;
        if upserted.rows_affected() == 0 {
            return Ok(false);
        }

        // The version replaces what the document had: chunks (and their mentions by
        // cascade) and the document's entity links.
        sqlx::query("DELETE FROM chunks WHERE document_id = $1")
            .bind(doc.document_id)
            .execute(&mut **tx)
            .await
            .map_err(|e| pg_error("delete superseded chunks", e))?;
        sqlx::query("DELETE FROM document_entities WHERE document_id = $1")
            .bind(doc.document_id)
            .execute(&mut **tx)
            .await
            .map_err(|e| pg_error("delete superseded entity links", e))?;

        for batch in doc.chunks.chunks(self.batch_rows) {
            sqlx::query(
                "INSERT INTO chunks (chunk_id, document_id, version, ordinal, text, token_count,
                     page, section, char_start, char_end)
                 SELECT t.id, $1, $2, t.ordinal, t.text, t.tokens, t.page, t.section, t.cs, t.ce
                 FROM UNNEST($3::uuid[], $4::int4[], $5::text[], $6::int4[], $7::int4[],
                             $8::text[], $9::int8[], $10::int8[])
                      AS t(id, ordinal, text, tokens, page, section, cs, ce)
                 ON CONFLICT (chunk_id) DO UPDATE SET
                     document_id = EXCLUDED.document_id, version = EXCLUDED.version,
                     ordinal = EXCLUDED.ordinal, text = EXCLUDED.text,
                     token_count = EXCLUDED.token_count, page = EXCLUDED.page,
                     section = EXCLUDED.section, char_start = EXCLUDED.char_start,
                     char_end = EXCLUDED.char_end",
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
            .execute(&mut **tx)
            .await
            .map_err(|e| pg_error("insert chunks", e))?;
        }

        // Entities in a fixed order so concurrent writers sharing entities lock rows in
        // the same order (no deadlocks).
        let mut entities: Vec<_> = doc.entities.iter().collect();
        entities.sort_by_key(|e| e.id);
        for batch in entities.chunks(self.batch_rows) {
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
            .bind(doc.document_id)
            .bind(batch.iter().map(|e| e.id).collect::<Vec<_>>())
            .bind(batch.iter().map(|e| e.confidence).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await
            .map_err(|e| pg_error("link entities", e))?;
        }

        for batch in doc.mentions.chunks(self.batch_rows) {
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
        }

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
        .bind(&metadata)
        .bind(&parsed.key)
        .bind(&parsed.sha256)
        .bind(doc.artifacts.entities.as_ref().map(|b| b.key.as_str()))
        .bind(doc.artifacts.entities.as_ref().map(|b| b.sha256.as_str()))
        .bind(doc.artifacts.vectors.as_ref().map(|b| b.key.as_str()))
        .bind(doc.artifacts.vectors.as_ref().map(|b| b.sha256.as_str()))
        .execute(&mut **tx)
        .await
        .map_err(|e| pg_error("record version", e))?;
        Ok(true)
    }

    /// Deletes a document written at `only_version` (a compensation of a first write), or
    /// whatever version is stored when `None`. Absent = done. Returns whether it existed.
    pub async fn delete(
        &self,
        document_id: Uuid,
        only_version: Option<u64>,
    ) -> Result<bool, ServiceError> {
        let done = sqlx::query(
            "DELETE FROM documents WHERE document_id = $1 AND ($2::int8 IS NULL OR version = $2)",
        )
        .bind(document_id)
        .bind(only_version.map(|v| v as i64))
        .execute(&self.pool)
        .await
        .map_err(|e| pg_error("delete document", e))?;
        Ok(done.rows_affected() > 0)
    }

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
                             FILTER (WHERE e.entity_id IS NOT NULL), '{}') AS entity_names
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

    /// Records which model and dimension a collection holds; refuses a collection already
    /// recorded with another model or dimension.
    pub async fn claim_collection(
        &self,
        name: &str,
        model_id: &str,
        dimension: u32,
    ) -> Result<(), ServiceError> {
        sqlx::query(
            "INSERT INTO vector_collections (name, model_id, dimension) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(model_id)
        .bind(dimension as i32)
        .execute(&self.pool)
        .await
        .map_err(|e| pg_error("record collection", e))?;
        let row = sqlx::query("SELECT model_id, dimension FROM vector_collections WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| pg_error("read collection", e))?;
        let (m, d): (String, i32) = (row.get(0), row.get(1));
        if m != model_id || d as u32 != dimension {
            return Err(ServiceError::FailedPrecondition(format!(
                "vector collection {name} holds model {m} with dimension {d}; \
                 vectors of model {model_id} with dimension {dimension} cannot be mixed into it"
            )));
        }
        Ok(())
    }

    /// Appends one saga step to the log.
    pub async fn log_step(
        &self,
        saga: &SagaRef,
        step: &str,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), ServiceError> {
        sqlx::query(
            "INSERT INTO saga_log (saga_id, operation, document_id, version, step, state, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(saga.id)
        .bind(saga.operation)
        .bind(saga.document_id)
        .bind(saga.version.map(|v| v as i64))
        .bind(step)
        .bind(state)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(|e| pg_error("saga log", e))?;
        Ok(())
    }
}

async fn stored_version(
    conn: &mut sqlx::PgConnection,
    document_id: Uuid,
    for_update: bool,
) -> Result<Option<StoredVersion>, ServiceError> {
    let sql = if for_update {
        "SELECT d.version, d.source, d.content_sha256, d.metadata, d.vector_collection,
                v.parsed_key, v.parsed_sha256, v.entities_key, v.entities_sha256,
                v.vectors_key, v.vectors_sha256
         FROM documents d LEFT JOIN document_versions v
              ON v.document_id = d.document_id AND v.version = d.version
         WHERE d.document_id = $1 FOR UPDATE OF d"
    } else {
        "SELECT d.version, d.source, d.content_sha256, d.metadata, d.vector_collection,
                v.parsed_key, v.parsed_sha256, v.entities_key, v.entities_sha256,
                v.vectors_key, v.vectors_sha256
         FROM documents d LEFT JOIN document_versions v
              ON v.document_id = d.document_id AND v.version = d.version
         WHERE d.document_id = $1"
    };
    let row = sqlx::query(sql)
        .bind(document_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| pg_error("read stored version", e))?;
    Ok(row.map(|r| {
        let metadata: serde_json::Value = r.get(3);
        StoredVersion {
            version: r.get::<i64, _>(0) as u64,
            source: r.get(1),
            content_sha256: r.get(2),
            metadata: serde_json::from_value(metadata).unwrap_or_default(),
            vector_collection: r.get(4),
            artifacts: Artifacts {
                parsed: blob(r.get(5), r.get(6)),
                entities: blob(r.get(7), r.get(8)),
                vectors: blob(r.get(9), r.get(10)),
            },
        }
    }))
}

/// A URL with its password replaced, for messages.
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
}

pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
