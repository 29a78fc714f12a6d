//! PostgreSQL, the saga's source of truth: one transaction per document version, batched
//! with `UNNEST`, fenced by the stored version.

mod reads;
mod rows;

use std::time::Duration;

use apex_common::ServiceError;
use apex_proto::common::v1::BlobRef;
use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

pub use reads::{ChunkRow, PgView};

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

pub use apex_common::settings::redact_url as redact;
