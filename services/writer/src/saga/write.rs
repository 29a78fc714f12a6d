//! `WriteDocument`: the saga itself.

use apex_common::ServiceError;
use apex_proto::common::v1::DocumentRef;
use apex_proto::writer::v1::{StepState, WriteDocumentRequest, WriteDocumentResponse};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{LogState, LogStep, Outcomes, SagaError, StoreKind, Writer};
use crate::model::{self, Artifacts, DocumentData};
use crate::postgres::{SagaRef, StoredVersion, WriteOutcome};
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

    /// The saga under the document's lock: check the vector collection, write PostgreSQL,
    /// then the graph and the vectors side by side, then Redis; undo on any failure.
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
        if let Err(e) = self.prepare_collection(doc, collection.as_deref()).await {
            outcomes.set(e.0, StepState::Failed, e.1.to_string());
            return Err(SagaError {
                error: e.1,
                outcomes: outcomes.into_vec(),
            });
        }

        self.log(&saga, LogStep::Saga, LogState::Started, None)
            .await;
        let previous = self
            .write_source(&saga, doc, collection.as_deref(), &mut outcomes)
            .await?;
        let mut failure = self
            .write_derived(
                &saga,
                doc,
                collection.as_deref(),
                previous.as_ref(),
                &mut outcomes,
            )
            .await;
        if failure.is_none() {
            failure = self
                .write_state(&saga, doc, collection.as_deref(), &mut outcomes)
                .await;
        }

        if let Some(error) = failure {
            self.compensate(&saga, doc, collection.as_deref(), previous, &mut outcomes)
                .await;
            self.log(
                &saga,
                LogStep::Saga,
                LogState::Compensated,
                Some(&error.to_string()),
            )
            .await;
            return Err(SagaError {
                error,
                outcomes: outcomes.into_vec(),
            });
        }
        self.log(&saga, LogStep::Saga, LogState::Completed, None)
            .await;
        tracing::info!(
            document = %id,
            version = doc.version,
            chunks = doc.chunks.len(),
            entities = doc.entities.len(),
            vectors = doc.vector_count(),
            "document written"
        );
        for (kind, n) in [
            ("documents", 1),
            ("chunks", doc.chunks.len()),
            ("entities", doc.entities.len()),
            ("vectors", doc.vector_count()),
        ] {
            self.metrics
                .stored
                .with_label_values(&[&doc.source, kind])
                .inc_by(n as u64);
        }
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

    /// A collection of another model or dimension is refused before anything is written:
    /// PostgreSQL records which model and dimension each collection holds, and the vector
    /// store's collection must exist with that dimension. Fails with the store at fault.
    async fn prepare_collection(
        &self,
        doc: &DocumentData,
        collection: Option<&str>,
    ) -> Result<(), (StoreKind, ServiceError)> {
        let (Some(c), Some(v)) = (collection, &doc.vectors) else {
            return Ok(());
        };
        let claim = format!("{c}\u{1f}{}\u{1f}{}", v.model_id, v.dimension);
        if !self.is_claimed(&claim) {
            self.step(
                StoreKind::Postgres,
                "claim_collection",
                self.pg.claim_collection(c, &v.model_id, v.dimension),
            )
            .await
            .map_err(|e| (StoreKind::Postgres, e))?;
            self.claimed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(claim);
        }
        self.step(
            StoreKind::Vectors,
            "ensure_collection",
            self.vectors.ensure_collection(c, v.dimension),
        )
        .await
        .map_err(|e| (StoreKind::Vectors, e))
    }

    /// PostgreSQL, the source of truth, in one transaction fenced by version. Returns the
    /// version it replaced (to put back if a later store fails).
    async fn write_source(
        &self,
        saga: &SagaRef,
        doc: &DocumentData,
        collection: Option<&str>,
        outcomes: &mut Outcomes,
    ) -> Result<Option<StoredVersion>, SagaError> {
        let written = self
            .step(
                StoreKind::Postgres,
                "write",
                self.pg.write(doc, collection, None),
            )
            .await;
        match written {
            Ok(WriteOutcome::Written { previous }) => {
                outcomes.set(StoreKind::Postgres, StepState::Written, "");
                self.log(
                    saga,
                    LogStep::Store(StoreKind::Postgres),
                    LogState::Written,
                    None,
                )
                .await;
                Ok(previous.map(|p| *p))
            }
            Ok(WriteOutcome::Fenced { stored }) => {
                self.log(
                    saga,
                    LogStep::Store(StoreKind::Postgres),
                    LogState::Refused,
                    None,
                )
                .await;
                Err(ServiceError::FailedPrecondition(format!(
                    "document {} is at version {stored}; version {} is older and was not written",
                    doc.document_id, doc.version
                ))
                .into())
            }
            Err(e) => {
                let msg = e.to_string();
                self.log(
                    saga,
                    LogStep::Store(StoreKind::Postgres),
                    LogState::Failed,
                    Some(&msg),
                )
                .await;
                outcomes.set(StoreKind::Postgres, StepState::Failed, msg);
                Err(SagaError {
                    error: e,
                    outcomes: std::mem::take(outcomes).into_vec(),
                })
            }
        }
    }

    /// The graph and the vectors, side by side; each store's outcome logged. Returns the
    /// first failure. Vectors are also written when only a stale collection must be
    /// emptied (the previous version's vectors live in another collection).
    async fn write_derived(
        &self,
        saga: &SagaRef,
        doc: &DocumentData,
        collection: Option<&str>,
        previous: Option<&StoredVersion>,
        outcomes: &mut Outcomes,
    ) -> Option<ServiceError> {
        let stale = previous
            .and_then(|p| p.vector_collection.clone())
            .filter(|p| Some(p.as_str()) != collection);
        let vectors_needed = doc.vectors.is_some() || stale.is_some();
        let graph_step = self.step(StoreKind::Graph, "write", self.graph.write(doc));
        let vector_step = async {
            if !vectors_needed {
                return Ok(false);
            }
            let c = collection
                .map(str::to_owned)
                .or_else(|| stale.clone())
                .unwrap_or_default();
            self.step(
                StoreKind::Vectors,
                "write",
                self.vectors.write(doc, &c, stale.as_deref()),
            )
            .await
            .map(|()| true)
        };
        let (graph_result, vector_result) = tokio::join!(graph_step, vector_step);
        let mut failure: Option<ServiceError> = None;
        match graph_result {
            Ok(()) => outcomes.set(StoreKind::Graph, StepState::Written, ""),
            Err(e) => {
                outcomes.set(StoreKind::Graph, StepState::Failed, e.to_string());
                failure = Some(e);
            }
        }
        match vector_result {
            Ok(true) => outcomes.set(StoreKind::Vectors, StepState::Written, ""),
            Ok(false) => outcomes.set(StoreKind::Vectors, StepState::Skipped, ""),
            Err(e) => {
                outcomes.set(StoreKind::Vectors, StepState::Failed, e.to_string());
                failure.get_or_insert(e);
            }
        }
        for store in [StoreKind::Graph, StoreKind::Vectors] {
            let state = outcomes.get(store);
            if state == Some(StepState::Written) || state == Some(StepState::Failed) {
                let msg = Some(outcomes.error(store));
                let state = if state == Some(StepState::Written) {
                    LogState::Written
                } else {
                    LogState::Failed
                };
                self.log(
                    saga,
                    LogStep::Store(store),
                    state,
                    msg.as_deref().filter(|m| !m.is_empty()),
                )
                .await;
            }
        }
        failure
    }

    /// Redis, last: the state readers poll. Returns its failure.
    async fn write_state(
        &self,
        saga: &SagaRef,
        doc: &DocumentData,
        collection: Option<&str>,
        outcomes: &mut Outcomes,
    ) -> Option<ServiceError> {
        let view = RedisView {
            version: doc.version,
            chunks: doc.chunks.len() as u32,
            entities: doc.entities.len() as u32,
            vectors: doc.vector_count() as u32,
        };
        let written = self
            .step(
                StoreKind::Redis,
                "state",
                self.redis
                    .put_state(doc.document_id, &doc.source, &view, collection),
            )
            .await;
        match written {
            Ok(()) => {
                outcomes.set(StoreKind::Redis, StepState::Written, "");
                self.log(
                    saga,
                    LogStep::Store(StoreKind::Redis),
                    LogState::Written,
                    None,
                )
                .await;
                None
            }
            Err(e) => {
                let msg = e.to_string();
                outcomes.set(StoreKind::Redis, StepState::Failed, msg.clone());
                self.log(
                    saga,
                    LogStep::Store(StoreKind::Redis),
                    LogState::Failed,
                    Some(&msg),
                )
                .await;
                Some(e)
            }
        }
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
