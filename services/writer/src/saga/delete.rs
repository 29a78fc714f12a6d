//! `DeleteDocument`: the derived stores first, PostgreSQL last, no undo.

use apex_common::ServiceError;
use apex_proto::writer::v1::{DeleteDocumentRequest, DeleteDocumentResponse, StepState};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{LogState, LogStep, Outcomes, SagaError, StoreKind, Writer};
use crate::model;
use crate::postgres::SagaRef;

impl Writer {
    /// `DeleteDocument`: the derived stores first (graph, vectors, Redis), PostgreSQL
    /// last, so a failure leaves the source of truth in place and a retry finishes the job.
    pub async fn delete(
        &self,
        req: DeleteDocumentRequest,
    ) -> Result<DeleteDocumentResponse, SagaError> {
        let id = model::parse_document_id("document_id", &req.document_id)?;
        let key = req.idempotency_key.trim().to_owned();
        let fingerprint = hex::encode(Sha256::digest(format!("delete\u{1f}{id}")));
        if !key.is_empty()
            && let Some(answer) = self.replay(&key, &fingerprint).await?
        {
            return Ok(answer);
        }
        self.check_breakers()?;
        let lock = self.lock(id).await?;
        let result = self.delete_locked(id).await;
        if let Err(e) = self.redis.unlock(lock).await {
            tracing::warn!(document = %id, error = %e, "lock not released; it expires");
        }
        let response = result?;
        if !key.is_empty() {
            self.remember(&key, fingerprint, &response).await;
        }
        Ok(response)
    }

    async fn delete_locked(&self, id: Uuid) -> Result<DeleteDocumentResponse, SagaError> {
        let mut outcomes = Outcomes::default();
        let read = async {
            let stored = self.pg.stored(id).await?;
            let (texts, model) = self.pg.texts_and_model(id).await?;
            Ok((stored, texts, model))
        };
        let (stored, texts, model) = match self.step(StoreKind::Postgres, "read", read).await {
            Ok(s) => s,
            Err(e) => {
                outcomes.set(StoreKind::Postgres, StepState::Failed, e.to_string());
                return Err(SagaError {
                    error: e,
                    outcomes: outcomes.into_vec(),
                });
            }
        };
        let saga = SagaRef {
            id: Uuid::new_v4(),
            operation: "delete",
            document_id: id,
            version: stored.as_ref().map(|s| s.version),
        };
        self.log(&saga, LogStep::Saga, LogState::Started, None)
            .await;
        let collection = stored.as_ref().and_then(|s| s.vector_collection.as_deref());
        let (graph_existed, mut failure) = self.delete_derived(id, collection, &mut outcomes).await;
        if failure.is_none()
            && let Err(e) = settle(
                &mut outcomes,
                StoreKind::Redis,
                self.delete_cached(id, model.as_deref(), &texts).await,
            )
        {
            failure = Some(e);
        }
        let mut pg_existed = false;
        if failure.is_none() {
            let deleted = self
                .step(StoreKind::Postgres, "delete", self.pg.delete(id, None))
                .await;
            match settle(&mut outcomes, StoreKind::Postgres, deleted) {
                Ok(existed) => pg_existed = existed,
                Err(e) => failure = Some(e),
            }
        }
        if let Some(error) = failure {
            let msg = error.to_string();
            self.log(&saga, LogStep::Saga, LogState::Failed, Some(&msg))
                .await;
            return Err(SagaError {
                error,
                outcomes: outcomes.into_vec(),
            });
        }
        // The log outlives the document: its rows name the id, not a foreign key.
        self.log(&saga, LogStep::Saga, LogState::Completed, None)
            .await;
        Ok(DeleteDocumentResponse {
            outcomes: outcomes.into_vec(),
            existed: pg_existed || graph_existed || stored.is_some(),
        })
    }

    /// The graph and the vectors, concurrently: whether the graph had the document, and the
    /// failure to report (the graph's when both failed).
    async fn delete_derived(
        &self,
        id: Uuid,
        collection: Option<&str>,
        outcomes: &mut Outcomes,
    ) -> (bool, Option<ServiceError>) {
        let graph = self.step(StoreKind::Graph, "delete", self.graph.delete(id));
        let vectors = async {
            match collection {
                Some(c) => {
                    self.step(StoreKind::Vectors, "delete", self.vectors.delete_in(c, id))
                        .await
                }
                None => {
                    self.step(
                        StoreKind::Vectors,
                        "delete",
                        self.vectors.delete_everywhere(id),
                    )
                    .await
                }
            }
        };
        let (graph, vectors) = tokio::join!(graph, vectors);
        let mut failure = None;
        let graph_existed = match settle(outcomes, StoreKind::Graph, graph) {
            Ok(existed) => existed,
            Err(e) => {
                failure = Some(e);
                false
            }
        };
        if let Err(e) = settle(outcomes, StoreKind::Vectors, vectors) {
            failure.get_or_insert(e);
        }
        (graph_existed, failure)
    }

    /// The document's Redis state and the cached embeddings of its text.
    async fn delete_cached(
        &self,
        id: Uuid,
        model: Option<&str>,
        texts: &[String],
    ) -> Result<(), ServiceError> {
        let redis = async {
            self.redis.delete_state(id).await?;
            // Deleting a document drops the cached embeddings of its text too.
            if let Some(model) = model {
                self.redis
                    .delete_cached_embeddings(model, &self.cache_token_limits, texts)
                    .await?;
            }
            Ok(())
        };
        self.step(StoreKind::Redis, "delete", redis).await
    }
}

/// Records a store's step as written or failed, and passes its result on.
fn settle<T>(
    outcomes: &mut Outcomes,
    store: StoreKind,
    result: Result<T, ServiceError>,
) -> Result<T, ServiceError> {
    match &result {
        Ok(_) => outcomes.set(store, StepState::Written, ""),
        Err(e) => outcomes.set(store, StepState::Failed, e.to_string()),
    }
    result
}
