//! The write saga: PostgreSQL first (the source of truth), then the graph and the vectors
//! in parallel, then Redis; each step logged. A failed step undoes the steps before it in
//! reverse order, putting back the previous version when there was one.
//!
//! This module holds the [`Writer`] (the stores, their breakers and timeouts, and the step
//! wrappers every operation goes through); the operations live beside it: [`write`] (the
//! saga), [`compensate`] (undoing a failed write), [`delete`], [`idempotency`] (replaying a
//! retried request's first answer) and [`read`] (search and inspect).

mod compensate;
mod delete;
mod idempotency;
mod read;
mod write;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use apex_common::ServiceError;
use apex_common::blob::BlobStore;
use apex_proto::common::v1::DocumentRef;
use apex_proto::writer::v1::{StepState, Store, StoreOutcome, WriteDocumentResponse};
use uuid::Uuid;

use crate::breaker::Breaker;
use crate::graph::Graph;
use crate::metrics::Metrics;
use crate::postgres::{PgStore, SagaRef};
use crate::redis_store::RedisStore;
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
        let code = self.error.code();
        let message = format!("{}; stores: {}", self.error, summary.join(", "));
        let outcomes = WriteDocumentResponse {
            document,
            outcomes: self.outcomes,
            replayed: false,
        };
        code.status(
            message,
            vec![apex_common::error::pack(
                apex_proto::writer::v1::WRITE_OUTCOMES,
                &outcomes,
            )],
        )
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
}
