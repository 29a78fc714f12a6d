//! `WriteDocument`: the saga itself.

use apex_common::ServiceError;
use apex_proto::common::v1::DocumentRef;
use apex_proto::writer::v1::{StepState, Store, WriteDocumentRequest, WriteDocumentResponse};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{Outcomes, SagaError, Writer, index, store_name};
use crate::model::{self, Artifacts, DocumentData};
use crate::postgres::{SagaRef, WriteOutcome};
use crate::redis_store::RedisView;

impl Writer {
    /// `WriteDocument`.
    pub async fn write(
        &self,
        req: WriteDocumentRequest,
    ) -> Result<WriteDocumentResponse, SagaError> {
        let identity = model::check_request(&req)?;
        let fingerprint = fingerprint(&req);
        let key = req.idempotency_key.trim().to_owned();
        if !key.is_empty()
            && let Some(replay) = self.replay_write(&key, &fingerprint).await?
        {
            self.metrics.writes.with_label_values(&["replayed"]).inc();
            return Ok(replay);
        }
        self.check_breakers()?;
        let artifacts = Artifacts {
            parsed: req.parsed.clone(),
            entities: req.entities.clone(),
            vectors: req.vectors.clone(),
        };
        let doc = model::load(
            &self.blobs,
            identity.clone(),
            req.content_sha256.clone(),
            req.metadata.clone().into_iter().collect(),
            artifacts,
        )
        .await?;
        let lock = self.lock(doc.document_id).await?;
        // Another holder may have finished the same request while we waited.
        let replay = if key.is_empty() {
            None
        } else {
            self.replay_write(&key, &fingerprint).await.ok().flatten()
        };
        let result = match replay {
            Some(r) => Ok(r),
            None => self.write_locked(&doc).await,
        };
        if let Err(e) = self.redis.unlock(lock).await {
            tracing::warn!(document = %doc.document_id, error = %e, "lock not released; it expires");
        }
        let label = match &result {
            Ok(r) if r.replayed => "replayed",
            Ok(_) => "written",
            Err(e) if matches!(e.error, ServiceError::FailedPrecondition(_)) => "refused",
            Err(_) => "failed",
        };
        self.metrics.writes.with_label_values(&[label]).inc();
        let response = result?;
        if !key.is_empty() && !response.replayed {
            self.remember(&key, fingerprint, &response).await;
        }
        Ok(response)
    }

    async fn write_locked(&self, doc: &DocumentData) -> Result<WriteDocumentResponse, SagaError> {
        let id = doc.document_id;
        let saga = SagaRef {
            id: Uuid::new_v4(),
            operation: "write",
            document_id: id,
            version: Some(doc.version),
        };
        let mut outcomes = Outcomes::default();
        let collection = doc
            .vectors
            .as_ref()
            .map(|v| self.vectors.collection_for(&v.model_id, v.dimension));

        // A collection of another model or dimension is refused before anything is written.
        if let (Some(c), Some(v)) = (&collection, &doc.vectors) {
            let claim = format!("{c}\u{1f}{}\u{1f}{}", v.model_id, v.dimension);
            if !self.is_claimed(&claim) {
                if let Err(e) = self
                    .step(
                        Store::Postgres,
                        "claim_collection",
                        self.pg.claim_collection(c, &v.model_id, v.dimension),
                    )
                    .await
                {
                    outcomes.set(Store::Postgres, StepState::Failed, e.to_string());
                    return Err(SagaError {
                        error: e,
                        outcomes: outcomes.into_vec(),
                    });
                }
                self.claimed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(claim);
            }
            if let Err(e) = self
                .step(
                    Store::Vectors,
                    "ensure_collection",
                    self.vectors.ensure_collection(c, v.dimension),
                )
                .await
            {
                outcomes.set(Store::Vectors, StepState::Failed, e.to_string());
                return Err(SagaError {
                    error: e,
                    outcomes: outcomes.into_vec(),
                });
            }
        }

        self.log(&saga, "saga", "started", None).await;
        let previous = match self
            .step(
                Store::Postgres,
                "write",
                self.pg.write(doc, collection.as_deref(), None),
            )
            .await
        {
            Ok(WriteOutcome::Written { previous }) => previous.map(|p| *p),
            Ok(WriteOutcome::Fenced { stored }) => {
                self.log(&saga, "postgres", "refused", None).await;
                return Err(ServiceError::FailedPrecondition(format!(
                    "document {id} is at version {stored}; version {} is older and was not written",
                    doc.version
                ))
                .into());
            }
            Err(e) => {
                let msg = e.to_string();
                self.log(&saga, "postgres", "failed", Some(&msg)).await;
                outcomes.set(Store::Postgres, StepState::Failed, msg);
                return Err(SagaError {
                    error: e,
                    outcomes: outcomes.into_vec(),
                });
            }
        };
        outcomes.set(Store::Postgres, StepState::Written, "");
        self.log(&saga, "postgres", "written", None).await;

        let stale = previous
            .as_ref()
            .and_then(|p| p.vector_collection.clone())
            .filter(|p| Some(p) != collection.as_ref());
        let vectors_needed = doc.vectors.is_some() || stale.is_some();
        let graph_step = self.step(Store::Graph, "write", self.graph.write(doc));
        let vector_step = async {
            if !vectors_needed {
                return Ok(false);
            }
            let c = collection
                .clone()
                .or_else(|| stale.clone())
                .unwrap_or_default();
            self.step(
                Store::Vectors,
                "write",
                self.vectors.write(doc, &c, stale.as_deref()),
            )
            .await
            .map(|()| true)
        };
        let (graph_result, vector_result) = tokio::join!(graph_step, vector_step);
        let mut failure: Option<ServiceError> = None;
        match graph_result {
            Ok(()) => outcomes.set(Store::Graph, StepState::Written, ""),
            Err(e) => {
                outcomes.set(Store::Graph, StepState::Failed, e.to_string());
                failure = Some(e);
            }
        }
        match vector_result {
            Ok(true) => outcomes.set(Store::Vectors, StepState::Written, ""),
            Ok(false) => outcomes.set(Store::Vectors, StepState::Skipped, ""),
            Err(e) => {
                outcomes.set(Store::Vectors, StepState::Failed, e.to_string());
                failure.get_or_insert(e);
            }
        }
        for store in [Store::Graph, Store::Vectors] {
            let state = outcomes.get(store);
            if state == Some(StepState::Written) || state == Some(StepState::Failed) {
                let msg = outcomes.0.get(&index(store)).map(|(_, e)| e.clone());
                let state = if state == Some(StepState::Written) {
                    "written"
                } else {
                    "failed"
                };
                self.log(
                    &saga,
                    store_name(store),
                    state,
                    msg.as_deref().filter(|m| !m.is_empty()),
                )
                .await;
            }
        }

        if failure.is_none() {
            let view = RedisView {
                version: doc.version,
                chunks: doc.chunks.len() as u32,
                entities: doc.entities.len() as u32,
                vectors: doc.vector_count() as u32,
            };
            match self
                .step(
                    Store::Redis,
                    "state",
                    self.redis
                        .put_state(id, &doc.source, &view, collection.as_deref()),
                )
                .await
            {
                Ok(()) => {
                    outcomes.set(Store::Redis, StepState::Written, "");
                    self.log(&saga, "redis", "written", None).await;
                }
                Err(e) => {
                    let msg = e.to_string();
                    outcomes.set(Store::Redis, StepState::Failed, msg.clone());
                    self.log(&saga, "redis", "failed", Some(&msg)).await;
                    failure = Some(e);
                }
            }
        }

        if let Some(error) = failure {
            self.compensate(&saga, doc, collection.as_deref(), previous, &mut outcomes)
                .await;
            self.log(&saga, "saga", "compensated", Some(&error.to_string()))
                .await;
            return Err(SagaError {
                error,
                outcomes: outcomes.into_vec(),
            });
        }
        self.log(&saga, "saga", "completed", None).await;
        Ok(WriteDocumentResponse {
            document: Some(DocumentRef {
                document_id: id.to_string(),
                source: doc.source.clone(),
                version: doc.version,
            }),
            outcomes: outcomes.into_vec(),
            replayed: false,
        })
    }
}

/// What makes two write requests "the same" for an idempotency key.
fn fingerprint(req: &WriteDocumentRequest) -> String {
    let doc = req.document.clone().unwrap_or_default();
    let key = |b: &Option<apex_proto::common::v1::BlobRef>| {
        b.as_ref().map(|b| b.key.clone()).unwrap_or_default()
    };
    let mut metadata: Vec<_> = req.metadata.iter().collect();
    metadata.sort();
    let text = format!(
        "write\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}",
        doc.document_id,
        doc.source,
        doc.version,
        req.content_sha256,
        key(&req.parsed),
        key(&req.entities),
        key(&req.vectors),
        metadata
    );
    hex::encode(Sha256::digest(text))
}
