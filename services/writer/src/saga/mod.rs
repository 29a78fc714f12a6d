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
use tracing::Instrument as _;
use uuid::Uuid;

use crate::breaker::Breaker;
use crate::graph::Graph;
use crate::metrics::Metrics;
use crate::postgres::{PgStore, SagaRef};
use crate::redis_store::RedisStore;
use crate::settings::WriterSettings;
use crate::vectors::VectorStore;

/// One of the four stores the saga writes. The wire enum (`apex.writer.v1.Store`) also has
/// `UNSPECIFIED`, which is no store; keeping the two apart means no per-store table can give
/// an unspecified store PostgreSQL's breaker, timeout or outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreKind {
    Postgres,
    Graph,
    Vectors,
    Redis,
}

impl StoreKind {
    /// The stores, in saga order.
    pub const ALL: [StoreKind; 4] = [
        StoreKind::Postgres,
        StoreKind::Graph,
        StoreKind::Vectors,
        StoreKind::Redis,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Graph => "graph",
            Self::Vectors => "vectors",
            Self::Redis => "redis",
        }
    }

    pub const fn wire(self) -> Store {
        match self {
            Self::Postgres => Store::Postgres,
            Self::Graph => Store::Graph,
            Self::Vectors => Store::Vectors,
            Self::Redis => Store::Redis,
        }
    }

    pub const fn from_wire(store: Store) -> Option<Self> {
        match store {
            Store::Postgres => Some(Self::Postgres),
            Store::Graph => Some(Self::Graph),
            Store::Vectors => Some(Self::Vectors),
            Store::Redis => Some(Self::Redis),
            Store::Unspecified => None,
        }
    }
}

/// The name of a store on the wire (`unspecified` for none).
pub fn store_name(store: Store) -> &'static str {
    StoreKind::from_wire(store).map_or("unspecified", StoreKind::name)
}

/// One value per store.
#[derive(Debug, Clone)]
pub struct PerStore<T> {
    pub postgres: T,
    pub graph: T,
    pub vectors: T,
    pub redis: T,
}

impl<T> PerStore<T> {
    pub fn new(mut make: impl FnMut(StoreKind) -> T) -> Self {
        Self {
            postgres: make(StoreKind::Postgres),
            graph: make(StoreKind::Graph),
            vectors: make(StoreKind::Vectors),
            redis: make(StoreKind::Redis),
        }
    }

    pub fn get(&self, store: StoreKind) -> &T {
        match store {
            StoreKind::Postgres => &self.postgres,
            StoreKind::Graph => &self.graph,
            StoreKind::Vectors => &self.vectors,
            StoreKind::Redis => &self.redis,
        }
    }
}

/// What a row of the saga log (`saga_log.step`) is about: the saga as a whole, or a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogStep {
    Saga,
    Store(StoreKind),
}

impl LogStep {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Saga => "saga",
            Self::Store(store) => store.name(),
        }
    }
}

/// The state a row of the saga log records (`saga_log.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogState {
    Started,
    Written,
    /// PostgreSQL holds a newer version: nothing was written.
    Refused,
    Failed,
    Compensated,
    /// A store whose own step failed, cleaned of what it may hold of the write.
    Cleaned,
    CompensationFailed,
    Completed,
}

impl LogState {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Written => "written",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Compensated => "compensated",
            Self::Cleaned => "cleaned",
            Self::CompensationFailed => "compensation_failed",
            Self::Completed => "completed",
        }
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
struct Outcomes(BTreeMap<StoreKind, (StepState, String)>);

impl Outcomes {
    fn set(&mut self, store: StoreKind, state: StepState, error: impl Into<String>) {
        self.0.insert(store, (state, error.into()));
    }

    fn get(&self, store: StoreKind) -> Option<StepState> {
        self.0.get(&store).map(|(s, _)| *s)
    }

    /// The error recorded for `store` (empty when none).
    fn error(&self, store: StoreKind) -> String {
        self.0
            .get(&store)
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    }

    fn into_vec(self) -> Vec<StoreOutcome> {
        StoreKind::ALL
            .iter()
            .map(|&store| {
                let (state, error) = self
                    .0
                    .get(&store)
                    .cloned()
                    .unwrap_or((StepState::Skipped, String::new()));
                StoreOutcome {
                    store: store.wire() as i32,
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
    breakers: PerStore<Breaker>,
    timeouts: PerStore<Duration>,
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
            breakers: PerStore::new(|_| breaker()),
            timeouts: PerStore::new(|store| {
                Duration::from_millis(match store {
                    StoreKind::Postgres => settings.postgres.timeout_ms,
                    StoreKind::Graph => settings.graph.timeout_ms,
                    StoreKind::Vectors => settings.vectors.timeout_ms,
                    StoreKind::Redis => settings.redis.timeout_ms,
                })
            }),
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

    pub fn breaker(&self, store: StoreKind) -> &Breaker {
        self.breakers.get(store)
    }

    fn refused(store: StoreKind, r: crate::breaker::Refused) -> ServiceError {
        ServiceError::Unavailable(format!(
            "{}: circuit open after {} consecutive failures; next probe in {} ms",
            store.name(),
            r.failures,
            r.retry_in.as_millis()
        ))
    }

    /// Fails fast when any store's breaker is open (nothing is touched).
    fn check_breakers(&self) -> Result<(), ServiceError> {
        let now = Instant::now();
        for store in StoreKind::ALL {
            self.breaker(store)
                .would_allow_at(now)
                .map_err(|r| Self::refused(store, r))?;
        }
        Ok(())
    }

    fn record_breaker(&self, store: StoreKind) {
        self.metrics
            .breaker_state
            .with_label_values(&[store.name()])
            .set(self.breaker(store).state().gauge());
    }

    /// Runs one store call through the store's breaker and timeout.
    async fn step<T>(
        &self,
        store: StoreKind,
        op: &str,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        self.step_within(store, op, *self.timeouts.get(store), call)
            .await
    }

    async fn step_within<T>(
        &self,
        store: StoreKind,
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
        store: StoreKind,
        op: &str,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        self.timed_within(store, op, *self.timeouts.get(store), call)
            .await
    }

    async fn timed_within<T>(
        &self,
        store: StoreKind,
        op: &str,
        limit: Duration,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let start = Instant::now();
        let span = self.store_span(store, op);
        let result = match tokio::time::timeout(limit, call.instrument(span.clone())).await {
            Ok(r) => r,
            Err(_) => Err(ServiceError::Timeout(format!(
                "{}: {op} took longer than {} ms",
                store.name(),
                limit.as_millis()
            ))),
        };
        if let Err(e) = &result {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", e.code().as_str());
            self.metrics
                .store_errors
                .with_label_values(&[store.name(), op, e.code().as_str()])
                .inc();
        }
        self.metrics
            .step_seconds
            .with_label_values(&[store.name(), op])
            .observe(start.elapsed().as_secs_f64());
        result
    }

    /// The client span of one store call, named and attributed as the database
    /// conventions say (`<operation> <store>`, `db.system.name`, `db.operation.name`).
    fn store_span(&self, store: StoreKind, op: &str) -> tracing::Span {
        let system = match store {
            StoreKind::Postgres => "postgresql",
            StoreKind::Graph => self.graph.kind(),
            StoreKind::Vectors => "qdrant",
            StoreKind::Redis => "redis",
        };
        tracing::info_span!(
            "store",
            otel.name = %format_args!("{op} {}", store.name()),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            db.system.name = system,
            db.operation.name = op,
            apex.store = store.name(),
        )
    }

    async fn log(&self, saga: &SagaRef, step: LogStep, state: LogState, error: Option<&str>) {
        let (step, state) = (step.as_str(), state.as_str());
        let logged = self
            .timed(
                StoreKind::Postgres,
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
        let limit = self.lock_wait + *self.timeouts.get(StoreKind::Redis);
        self.step_within(
            StoreKind::Redis,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_kind_has_its_own_wire_value_and_unspecified_has_none() {
        for kind in StoreKind::ALL {
            assert_eq!(StoreKind::from_wire(kind.wire()), Some(kind));
            assert_ne!(kind.wire(), Store::Unspecified);
            assert_eq!(store_name(kind.wire()), kind.name());
        }
        assert_eq!(StoreKind::from_wire(Store::Unspecified), None);
        assert_eq!(store_name(Store::Unspecified), "unspecified");
        let outcomes = Outcomes::default().into_vec();
        let stores: Vec<i32> = outcomes.iter().map(|o| o.store).collect();
        assert_eq!(
            stores,
            [Store::Postgres, Store::Graph, Store::Vectors, Store::Redis].map(|s| s as i32)
        );
    }
}
