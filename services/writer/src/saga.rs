//! The write saga: PostgreSQL first (the source of truth), then the graph and the vectors
//! in parallel, then Redis; each step logged. A failed step undoes the steps before it in
//! reverse order, putting back the previous version when there was one.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use apex_common::ServiceError;
use apex_common::blob::BlobStore;
use apex_proto::common::v1::DocumentRef;
use apex_proto::writer::v1::{
    DeleteDocumentRequest, DeleteDocumentResponse, InspectDocumentResponse, StepState, Store,
    StoreOutcome, StoreView, WriteDocumentRequest, WriteDocumentResponse,
};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::breaker::Breaker;
use crate::graph::Graph;
use crate::metrics::Metrics;
use crate::model::{self, Artifacts, DocumentData, Identity};
use crate::postgres::{PgStore, SagaRef, StoredVersion, WriteOutcome};
use crate::redis_store::{RedisStore, RedisView};
use crate::settings::WriterSettings;
use crate::vectors::VectorStore;

/// The four stores, in saga order.
pub const STORES: [Store; 4] = [Store::Postgres, Store::Graph, Store::Vectors, Store::Redis];

pub fn store_name(store: Store) -> &'static str {
    match store {
        Store::Postgres => "postgres",
        Store::Graph => "graph",
        Store::Vectors => "vectors",
        Store::Redis => "redis",
        Store::Unspecified => "unspecified",
    }
}

fn index(store: Store) -> usize {
    match store {
        Store::Postgres | Store::Unspecified => 0,
        Store::Graph => 1,
        Store::Vectors => 2,
        Store::Redis => 3,
    }
}

/// A failed write or delete: the error, and what each store ended as.
#[derive(Debug)]
pub struct SagaError {
    pub error: ServiceError,
    pub outcomes: Vec<StoreOutcome>,
}

impl From<ServiceError> for SagaError {
    fn from(error: ServiceError) -> Self {
        Self {
            error,
            outcomes: Vec::new(),
        }
    }
}

impl SagaError {
    /// The gRPC status: the error's code and message, with the per-store outcomes (a
    /// `WriteDocumentResponse`) as the status details when any store was touched.
    pub fn into_status(self, document: Option<DocumentRef>) -> tonic::Status {
        if self.outcomes.is_empty() {
            return self.error.into();
        }
        let summary: Vec<String> = self
            .outcomes
            .iter()
            .map(|o| {
                let state = StepState::try_from(o.state)
                    .map_or("unknown", |s| s.as_str_name())
                    .trim_start_matches("STEP_STATE_")
                    .to_lowercase();
                let store = store_name(Store::try_from(o.store).unwrap_or(Store::Unspecified));
                if o.error.is_empty() {
                    format!("{store} {state}")
                } else {
                    format!("{store} {state} ({})", o.error)
                }
            })
            .collect();
        let code = self.error.code().grpc();
        let message = format!("{}; stores: {}", self.error, summary.join(", "));
        let details = WriteDocumentResponse {
            document,
            outcomes: self.outcomes,
            replayed: false,
        };
        tonic::Status::with_details(code, message, details.encode_to_vec().into())
    }
}

/// Per-store outcomes of one saga.
#[derive(Debug, Default)]
struct Outcomes(BTreeMap<usize, (StepState, String)>);

impl Outcomes {
    fn set(&mut self, store: Store, state: StepState, error: impl Into<String>) {
        self.0.insert(index(store), (state, error.into()));
    }

    fn get(&self, store: Store) -> Option<StepState> {
        self.0.get(&index(store)).map(|(s, _)| *s)
    }

    fn into_vec(self) -> Vec<StoreOutcome> {
        STORES
            .iter()
            .map(|&store| {
                let (state, error) = self
                    .0
                    .get(&index(store))
                    .cloned()
                    .unwrap_or((StepState::Skipped, String::new()));
                StoreOutcome {
                    store: store as i32,
                    state: state as i32,
                    error,
                }
            })
            .collect()
    }
}

/// Whether an error says the store is unhealthy (counts against its breaker).
fn is_store_failure(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::Unavailable(_) | ServiceError::Timeout(_) | ServiceError::Internal(_)
    )
}

/// The stores, their breakers and timeouts.
#[derive(Debug)]
pub struct Writer {
    pub pg: PgStore,
    pub graph: Graph,
    pub vectors: VectorStore,
    pub redis: RedisStore,
    pub blobs: BlobStore,
    breakers: [Breaker; 4],
    timeouts: [Duration; 4],
    lock_ttl: Duration,
    lock_wait: Duration,
    idempotency_ttl: Duration,
    cache_token_limits: Vec<u32>,
    /// (collection, model, dimension) triples PostgreSQL has confirmed.
    claimed: std::sync::Mutex<std::collections::HashSet<String>>,
    pub metrics: Metrics,
}

impl Writer {
    pub fn new(
        settings: &WriterSettings,
        pg: PgStore,
        graph: Graph,
        vectors: VectorStore,
        redis: RedisStore,
        blobs: BlobStore,
        metrics: Metrics,
    ) -> Self {
        let b = &settings.breaker;
        let breaker = || Breaker::new(b.failure_threshold, Duration::from_millis(b.open_ms));
        Self {
            pg,
            graph,
            vectors,
            redis,
            blobs,
            breakers: [breaker(), breaker(), breaker(), breaker()],
            timeouts: [
                Duration::from_millis(settings.postgres.timeout_ms),
                Duration::from_millis(settings.graph.timeout_ms),
                Duration::from_millis(settings.vectors.timeout_ms),
                Duration::from_millis(settings.redis.timeout_ms),
            ],
            lock_ttl: Duration::from_millis(settings.redis.lock_ttl_ms),
            lock_wait: Duration::from_millis(settings.redis.lock_wait_ms),
            idempotency_ttl: Duration::from_secs(settings.redis.idempotency_ttl_secs),
            claimed: std::sync::Mutex::default(),
            cache_token_limits: settings.redis.embedding_cache_token_limits.clone(),
            metrics,
        }
    }

    fn is_claimed(&self, collection: &str) -> bool {
        self.claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(collection)
    }

    pub fn breaker(&self, store: Store) -> &Breaker {
        &self.breakers[index(store)]
    }

    fn refused(store: Store, r: crate::breaker::Refused) -> ServiceError {
        ServiceError::Unavailable(format!(
            "{}: circuit open after {} consecutive failures; next probe in {} ms",
            store_name(store),
            r.failures,
            r.retry_in.as_millis()
        ))
    }

    /// Fails fast when any store's breaker is open (nothing is touched).
    fn check_breakers(&self) -> Result<(), ServiceError> {
        let now = Instant::now();
        for store in STORES {
            self.breaker(store)
                .would_allow_at(now)
                .map_err(|r| Self::refused(store, r))?;
        }
        Ok(())
    }

    fn record_breaker(&self, store: Store) {
        self.metrics
            .breaker_state
            .with_label_values(&[store_name(store)])
            .set(self.breaker(store).state().gauge());
    }

    /// Runs one store call through the store's breaker and timeout.
    async fn step<T>(
        &self,
        store: Store,
        op: &str,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        self.step_within(store, op, self.timeouts[index(store)], call)
            .await
    }

    async fn step_within<T>(
        &self,
        store: Store,
        op: &str,
        limit: Duration,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let breaker = self.breaker(store);
        breaker.try_acquire().map_err(|r| Self::refused(store, r))?;
        let result = self.timed_within(store, op, limit, call).await;
        match &result {
            Err(e) if is_store_failure(e) => breaker.on_failure(),
            _ => breaker.on_success(),
        }
        self.record_breaker(store);
        result
    }

    /// A store call with the store's timeout, without the breaker (compensations and
    /// reads for `InspectDocument`).
    async fn timed<T>(
        &self,
        store: Store,
        op: &str,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        self.timed_within(store, op, self.timeouts[index(store)], call)
            .await
    }

    async fn timed_within<T>(
        &self,
        store: Store,
        op: &str,
        limit: Duration,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let start = Instant::now();
        let result = match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => Err(ServiceError::Timeout(format!(
                "{}: {op} took longer than {} ms",
                store_name(store),
                limit.as_millis()
            ))),
        };
        self.metrics
            .step_seconds
            .with_label_values(&[store_name(store), op])
            .observe(start.elapsed().as_secs_f64());
        result
    }

    async fn log(&self, saga: &SagaRef, step: &str, state: &str, error: Option<&str>) {
        let logged = self
            .timed(
                Store::Postgres,
                "saga_log",
                self.pg.log_step(saga, step, state, error),
            )
            .await;
        if let Err(e) = logged {
            tracing::warn!(saga = %saga.id, step, state, error = %e, "saga log not written");
        }
    }

    /// Takes the document's lock. Waiting for another write is not a store failure:
    /// it ends in `UNAVAILABLE` (retryable) without counting against Redis's breaker.
    async fn lock(&self, id: Uuid) -> Result<crate::redis_store::Lock, ServiceError> {
        let limit = self.lock_wait + self.timeouts[index(Store::Redis)];
        self.step_within(
            Store::Redis,
            "lock",
            limit,
            self.redis.lock(id, self.lock_ttl, self.lock_wait),
        )
        .await?
        .ok_or_else(|| {
            ServiceError::Unavailable(format!(
                "document {id} stayed locked by another write for {} ms",
                self.lock_wait.as_millis()
            ))
        })
    }

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

    /// The stored answer for `key`, or `FAILED_PRECONDITION` when the key was used for a
    /// different request (another `fingerprint`).
    async fn replay<M: prost::Message + Default>(
        &self,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<M>, ServiceError> {
        let Some(record) = self
            .step(
                Store::Redis,
                "idempotency",
                self.redis.idempotency_record(key),
            )
            .await?
        else {
            return Ok(None);
        };
        if record.len() < 64 || &record[..64] != fingerprint.as_bytes() {
            return Err(ServiceError::FailedPrecondition(format!(
                "idempotency key `{key}` was already used for a different request"
            )));
        }
        M::decode(&record[64..]).map(Some).map_err(|e| {
            ServiceError::Internal(anyhow::anyhow!("idempotency record for `{key}`: {e}"))
        })
    }

    /// A write's stored answer, marked `replayed`.
    async fn replay_write(
        &self,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<WriteDocumentResponse>, ServiceError> {
        Ok(self
            .replay::<WriteDocumentResponse>(key, fingerprint)
            .await?
            .map(|mut r| {
                r.replayed = true;
                r
            }))
    }

    /// Stores `answer` under `key` with the request's fingerprint. A failure only costs a
    /// retry its replay (it rewrites the same state), so it is logged, not returned.
    async fn remember(&self, key: &str, fingerprint: String, answer: &impl prost::Message) {
        let mut record = fingerprint.into_bytes();
        record.extend(answer.encode_to_vec());
        if let Err(e) = self
            .redis
            .put_idempotency_record(key, &record, self.idempotency_ttl)
            .await
        {
            tracing::warn!(key, error = %e, "idempotency record not stored; a retry rewrites");
        }
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

    /// Undoes a failed write in reverse order: Redis, vectors, graph, PostgreSQL. A store
    /// whose own step failed is cleaned too (it may hold part of the write). Each undo
    /// puts the previous version back when there was one, and is idempotent.
    async fn compensate(
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
        for store in [Store::Redis, Store::Vectors, Store::Graph, Store::Postgres] {
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
                    (StepState::Compensated, String::new(), "compensated")
                }
                (Ok(()), _) => {
                    let (_, e) = outcomes.0.get(&index(store)).cloned().unwrap_or_default();
                    (StepState::Failed, e, "cleaned")
                }
                (Err(e), _) => {
                    let (_, before) = outcomes.0.get(&index(store)).cloned().unwrap_or_default();
                    let note = if before.is_empty() {
                        format!("compensation failed: {e}")
                    } else {
                        format!("{before}; compensation failed: {e}")
                    };
                    (StepState::Failed, note, "compensation_failed")
                }
            };
            self.metrics
                .compensations
                .with_label_values(&[
                    store_name(store),
                    if undo.is_ok() { "ok" } else { "failed" },
                ])
                .inc();
            self.log(
                saga,
                store_name(store),
                log_state,
                undo.as_ref().err().map(|e| e.to_string()).as_deref(),
            )
            .await;
            outcomes.set(store, new_state, note);
        }
    }

    async fn undo(
        &self,
        store: Store,
        doc: &DocumentData,
        collection: Option<&str>,
        previous: Option<&StoredVersion>,
        prev: Option<&DocumentData>,
    ) -> Result<(), ServiceError> {
        let id = doc.document_id;
        match (store, prev) {
            (Store::Redis, Some(p)) => {
                let view = RedisView {
                    version: p.version,
                    chunks: p.chunks.len() as u32,
                    entities: p.entities.len() as u32,
                    vectors: p.vector_count() as u32,
                };
                let c = previous.and_then(|s| s.vector_collection.as_deref());
                self.redis.put_state(id, &p.source, &view, c).await
            }
            (Store::Redis, None) => self.redis.delete_state(id).await,
            (Store::Vectors, Some(p)) => {
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
            (Store::Vectors, None) => match collection {
                Some(c) => self.vectors.delete_in(c, id).await,
                None => Ok(()),
            },
            (Store::Graph, Some(p)) => self.graph.write(p).await,
            (Store::Graph, None) => self.graph.delete(id).await.map(|_| ()),
            (Store::Postgres, Some(p)) => {
                let c = previous.and_then(|s| s.vector_collection.as_deref());
                match self.pg.write(p, c, Some(doc.version)).await? {
                    WriteOutcome::Written { .. } => Ok(()),
                    WriteOutcome::Fenced { stored } => {
                        tracing::info!(%id, stored, "a newer version was written meanwhile; it stands");
                        Ok(())
                    }
                }
            }
            (Store::Postgres, None) => self.pg.delete(id, Some(doc.version)).await.map(|_| ()),
            (Store::Unspecified, _) => Ok(()),
        }
    }

    /// Rebuilds a stored version from its artifacts (for a compensation).
    async fn load_stored(
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
        let (stored, texts, model) = match self.step(Store::Postgres, "read", read).await {
            Ok(s) => s,
            Err(e) => {
                outcomes.set(Store::Postgres, StepState::Failed, e.to_string());
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
        self.log(&saga, "saga", "started", None).await;
        let collection = stored.as_ref().and_then(|s| s.vector_collection.clone());
        let graph = self.step(Store::Graph, "delete", self.graph.delete(id));
        let vectors = async {
            match &collection {
                Some(c) => {
                    self.step(Store::Vectors, "delete", self.vectors.delete_in(c, id))
                        .await
                }
                None => {
                    self.step(Store::Vectors, "delete", self.vectors.delete_everywhere(id))
                        .await
                }
            }
        };
        let (graph, vectors) = tokio::join!(graph, vectors);
        let mut failure = None;
        let mut graph_existed = false;
        match graph {
            Ok(existed) => {
                graph_existed = existed;
                outcomes.set(Store::Graph, StepState::Written, "");
            }
            Err(e) => {
                outcomes.set(Store::Graph, StepState::Failed, e.to_string());
                failure = Some(e);
            }
        }
        match vectors {
            Ok(()) => outcomes.set(Store::Vectors, StepState::Written, ""),
            Err(e) => {
                outcomes.set(Store::Vectors, StepState::Failed, e.to_string());
                failure.get_or_insert(e);
            }
        }
        if failure.is_none() {
            let redis = async {
                self.redis.delete_state(id).await?;
                // Deleting a document drops the cached embeddings of its text too.
                if let Some(model) = &model {
                    self.redis
                        .delete_cached_embeddings(model, &self.cache_token_limits, &texts)
                        .await?;
                }
                Ok(())
            };
            match self.step(Store::Redis, "delete", redis).await {
                Ok(()) => outcomes.set(Store::Redis, StepState::Written, ""),
                Err(e) => {
                    outcomes.set(Store::Redis, StepState::Failed, e.to_string());
                    failure = Some(e);
                }
            }
        }
        let mut pg_existed = false;
        if failure.is_none() {
            match self
                .step(Store::Postgres, "delete", self.pg.delete(id, None))
                .await
            {
                Ok(existed) => {
                    pg_existed = existed;
                    outcomes.set(Store::Postgres, StepState::Written, "");
                }
                Err(e) => {
                    outcomes.set(Store::Postgres, StepState::Failed, e.to_string());
                    failure = Some(e);
                }
            }
        }
        if let Some(error) = failure {
            let msg = error.to_string();
            self.log(&saga, "saga", "failed", Some(&msg)).await;
            return Err(SagaError {
                error,
                outcomes: outcomes.into_vec(),
            });
        }
        // The log outlives the document: its rows name the id, not a foreign key.
        self.log(&saga, "saga", "completed", None).await;
        Ok(DeleteDocumentResponse {
            outcomes: outcomes.into_vec(),
            existed: pg_existed || graph_existed || stored.is_some(),
        })
    }

    /// `SearchChunks`: the nearest stored chunks to a query vector, with text and entities.
    pub async fn search(
        &self,
        req: apex_proto::writer::v1::SearchChunksRequest,
    ) -> Result<apex_proto::writer::v1::SearchChunksResponse, ServiceError> {
        use apex_proto::writer::v1::{ChunkHit, EntityRef, SearchChunksResponse};
        if req.vector.is_empty() {
            return Err(ServiceError::invalid_field(
                "vector",
                "the query vector is empty",
            ));
        }
        if req.vector.iter().any(|v| !v.is_finite()) {
            return Err(ServiceError::invalid_field(
                "vector",
                "the query vector holds a NaN or an infinity",
            ));
        }
        if req.model_id.trim().is_empty() {
            return Err(ServiceError::invalid_field(
                "model_id",
                "the model id is required",
            ));
        }
        if req.limit > 100 {
            return Err(ServiceError::invalid_field(
                "limit",
                format!("at most 100 hits, not {}", req.limit),
            ));
        }
        let limit = if req.limit == 0 { 10 } else { req.limit };
        let collection = self
            .vectors
            .collection_for(&req.model_id, req.vector.len() as u32);
        let source = Some(req.source.trim()).filter(|s| !s.is_empty());
        let nearest = self
            .timed(
                Store::Vectors,
                "search",
                self.vectors
                    .search(&collection, req.vector, u64::from(limit), source),
            )
            .await?;
        let ids: Vec<Uuid> = nearest.iter().map(|(id, _)| *id).collect();
        let mut rows: std::collections::HashMap<Uuid, crate::postgres::ChunkRow> = self
            .timed(Store::Postgres, "search", self.pg.chunk_hits(&ids))
            .await?
            .into_iter()
            .map(|r| (r.chunk_id, r))
            .collect();
        let hits = nearest
            .into_iter()
            .filter_map(|(id, score)| {
                let r = rows.remove(&id)?;
                Some(ChunkHit {
                    chunk_id: r.chunk_id.to_string(),
                    document_id: r.document_id.to_string(),
                    source: r.source,
                    version: r.version,
                    ordinal: r.ordinal,
                    score,
                    text: r.text,
                    page: r.page,
                    section: r.section,
                    entities: r
                        .entities
                        .into_iter()
                        .map(|(id, t, n)| EntityRef {
                            entity_id: id.to_string(),
                            entity_type: t,
                            name: n,
                        })
                        .collect(),
                })
            })
            .collect();
        Ok(SearchChunksResponse { hits, collection })
    }

    /// `InspectDocument`: what each store holds, and whether they agree.
    pub async fn inspect(
        &self,
        document_id: &str,
    ) -> Result<InspectDocumentResponse, ServiceError> {
        let id = model::parse_document_id("document_id", document_id)?;
        let pg = self
            .timed(Store::Postgres, "inspect", self.pg.inspect(id))
            .await?;
        let stored = self
            .timed(Store::Postgres, "inspect", self.pg.stored(id))
            .await?;
        let (content_sha256, stored_version) = stored.as_ref().map_or((String::new(), 0), |s| {
            (s.content_sha256.clone(), s.version)
        });
        // PostgreSQL is the source of truth: without it there is no answer. The other
        // stores are read as they can be; one that cannot be read says why.
        let graph = self
            .timed(Store::Graph, "inspect", self.graph.inspect(id))
            .await;
        let redis = self
            .timed(Store::Redis, "inspect", self.redis.state(id))
            .await;
        let vector_view = async {
            let collections = match stored.and_then(|s| s.vector_collection) {
                Some(c) => vec![c],
                None => {
                    self.timed(Store::Vectors, "inspect", self.vectors.collections())
                        .await?
                }
            };
            let mut points = 0u32;
            let mut versions: Vec<u64> = Vec::new();
            for c in &collections {
                let v = self
                    .timed(Store::Vectors, "inspect", self.vectors.inspect(c, id))
                    .await?;
                points += v.points;
                versions.extend(v.versions);
            }
            Ok::<_, ServiceError>((points, versions))
        }
        .await;
        let (graph_error, redis_error, vector_error) = (
            read_error(&graph),
            read_error(&redis),
            read_error(&vector_view),
        );
        let readable = graph.is_ok() && redis.is_ok() && vector_view.is_ok();
        let graph = graph.unwrap_or(None);
        let redis = redis.unwrap_or(None);
        let (points, mut versions) = vector_view.unwrap_or_default();
        versions.sort_unstable();
        versions.dedup();

        let mut stores = Vec::new();
        stores.push(StoreView {
            store: Store::Postgres as i32,
            version: pg.map_or(0, |p| p.version),
            chunk_count: pg.map_or(0, |p| p.chunks),
            entity_count: pg.map_or(0, |p| p.entities),
            vector_count: pg.map_or(0, |p| p.vectors),
            present: pg.is_some(),
            error: String::new(),
        });
        stores.push(StoreView {
            store: Store::Graph as i32,
            version: graph.map_or(0, |g| g.version),
            chunk_count: graph.map_or(0, |g| g.chunks),
            entity_count: graph.map_or(0, |g| g.entities),
            vector_count: 0,
            present: graph.is_some(),
            error: graph_error,
        });
        stores.push(StoreView {
            store: Store::Vectors as i32,
            version: if versions.len() == 1 { versions[0] } else { 0 },
            chunk_count: 0,
            entity_count: 0,
            vector_count: points,
            present: points > 0,
            error: vector_error,
        });
        stores.push(StoreView {
            store: Store::Redis as i32,
            version: redis.as_ref().map_or(0, |r| r.version),
            chunk_count: redis.as_ref().map_or(0, |r| r.chunks),
            entity_count: redis.as_ref().map_or(0, |r| r.entities),
            vector_count: redis.as_ref().map_or(0, |r| r.vectors),
            present: redis.is_some(),
            error: redis_error,
        });
        let consistent = readable
            && match pg {
                None => graph.is_none() && points == 0 && redis.is_none(),
                Some(p) => {
                    graph.is_some_and(|g| {
                        g.version == p.version && g.chunks == p.chunks && g.entities == p.entities
                    }) && points == p.vectors
                        && (points == 0 || versions == [p.version])
                        && redis.as_ref().is_some_and(|r| {
                            r.version == p.version
                                && r.chunks == p.chunks
                                && r.entities == p.entities
                                && r.vectors == p.vectors
                        })
                }
            };
        Ok(InspectDocumentResponse {
            stores,
            consistent,
            content_sha256,
            version: stored_version,
        })
    }
}

/// Why a store could not be read, or empty.
fn read_error<T>(r: &Result<T, ServiceError>) -> String {
    r.as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
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
