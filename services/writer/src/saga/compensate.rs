//! Undoing a failed write in reverse order, putting the previous version back.

use apex_common::ServiceError;
use apex_proto::writer::v1::StepState;
use uuid::Uuid;

use super::{LogState, LogStep, Outcomes, StoreKind, Writer};
use crate::model::{self, DocumentData, Identity};
use crate::postgres::{SagaRef, StoredVersion, WriteOutcome};
use crate::redis_store::RedisView;

impl Writer {
    /// Undoes a failed write in reverse order: Redis, vectors, graph, PostgreSQL. A store
    /// whose own step failed is cleaned too (it may hold part of the write). Each undo
    /// puts the previous version back when there was one, and is idempotent.
    pub(super) async fn compensate(
        &self,
        saga: &SagaRef,
        doc: &DocumentData,
        collection: Option<&str>,
        previous: Option<StoredVersion>,
        outcomes: &mut Outcomes,
    ) {
        let id = doc.document_id;
        let previous_doc = match &previous {
            None => Ok(None),
            Some(p) => self.load_stored(id, p).await.map(Some),
        };
        for store in [
            StoreKind::Redis,
            StoreKind::Vectors,
            StoreKind::Graph,
            StoreKind::Postgres,
        ] {
            let Some(state) = outcomes.get(store) else {
                continue;
            };
            if state == StepState::Skipped {
                continue;
            }
            let undo: Result<(), ServiceError> = match &previous_doc {
                Err(e) => Err(ServiceError::FailedPrecondition(format!(
                    "the previous version's artifacts cannot be read: {e}"
                ))),
                Ok(prev) => {
                    self.timed(
                        store,
                        "compensate",
                        self.undo(store, doc, collection, previous.as_ref(), prev.as_ref()),
                    )
                    .await
                }
            };
            let (new_state, note, log_state) = match (&undo, state) {
                (Ok(()), StepState::Written) => {
                    (StepState::Compensated, String::new(), LogState::Compensated)
                }
                (Ok(()), _) => {
                    let e = outcomes.error(store);
                    (StepState::Failed, e, LogState::Cleaned)
                }
                (Err(e), _) => {
                    let before = outcomes.error(store);
                    let note = if before.is_empty() {
                        format!("compensation failed: {e}")
                    } else {
                        format!("{before}; compensation failed: {e}")
                    };
                    (StepState::Failed, note, LogState::CompensationFailed)
                }
            };
            self.metrics
                .compensations
                .with_label_values(&[store.name(), if undo.is_ok() { "ok" } else { "failed" }])
                .inc();
            self.log(
                saga,
                LogStep::Store(store),
                log_state,
                undo.as_ref().err().map(|e| e.to_string()).as_deref(),
            )
            .await;
            outcomes.set(store, new_state, note);
        }
    }

    async fn undo(
        &self,
        store: StoreKind,
        doc: &DocumentData,
        collection: Option<&str>,
        previous: Option<&StoredVersion>,
        prev: Option<&DocumentData>,
    ) -> Result<(), ServiceError> {
        let id = doc.document_id;
        match (store, prev) {
            (StoreKind::Redis, Some(p)) => {
                let view = RedisView {
                    version: p.version,
                    chunks: p.chunks.len() as u32,
                    entities: p.entities.len() as u32,
                    vectors: p.vector_count() as u32,
                };
                let c = previous.and_then(|s| s.vector_collection.as_deref());
                self.redis.put_state(id, &p.source, &view, c).await
            }
            (StoreKind::Redis, None) => self.redis.delete_state(id).await,
            (StoreKind::Vectors, Some(p)) => {
                let prev_collection = previous.and_then(|s| s.vector_collection.clone());
                let stale = collection.filter(|c| Some(*c) != prev_collection.as_deref());
                match &prev_collection {
                    Some(pc) => self.vectors.write(p, pc, stale).await,
                    None => match collection {
                        Some(c) => self.vectors.delete_in(c, id).await,
                        None => Ok(()),
                    },
                }
            }
            (StoreKind::Vectors, None) => match collection {
                Some(c) => self.vectors.delete_in(c, id).await,
                None => Ok(()),
            },
            (StoreKind::Graph, Some(p)) => self.graph.write(p).await,
            (StoreKind::Graph, None) => self.graph.delete(id).await.map(|_| ()),
            (StoreKind::Postgres, Some(p)) => {
                let c = previous.and_then(|s| s.vector_collection.as_deref());
                match self.pg.write(p, c, Some(doc.version)).await? {
                    WriteOutcome::Written { .. } => Ok(()),
                    WriteOutcome::Fenced { stored } => {
                        tracing::info!(%id, stored, "a newer version was written meanwhile; it stands");
                        Ok(())
                    }
                }
            }
            (StoreKind::Postgres, None) => self.pg.delete(id, Some(doc.version)).await.map(|_| ()),
        }
    }

    /// Rebuilds a stored version from its artifacts (for a compensation).
    pub(super) async fn load_stored(
        &self,
        id: Uuid,
        stored: &StoredVersion,
    ) -> Result<DocumentData, ServiceError> {
        model::load(
            &self.blobs,
            Identity {
                document_id: id,
                source: stored.source.clone(),
                version: stored.version,
            },
            stored.content_sha256.clone(),
            stored.metadata.clone(),
            stored.artifacts.clone(),
        )
        .await
    }
}
