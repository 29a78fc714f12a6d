//! The gateway's state, its router, and the small endpoints (rollout, health, metrics).
//! Uploads are in [`crate::upload`], status and deletion in [`crate::documents`], search in
//! [`crate::search`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use apex_common::error::ErrorCode;
use apex_worker::ingest::Stages;
use apex_worker::ingest::status::{COMPLETED, FAILED, UNCHANGED};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use temporalio_client::Client;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::legacy::Legacy;
use crate::metrics::Metrics;
use crate::rollout::{Path, RolloutCoordinator};
use crate::settings::GatewaySettings;
use crate::shared::{Claim, DocumentRecord, Shared};

/// How long the gateway holds an in-flight slot (and the document's claim) for a Temporal
/// ingestion at most; the workflow goes on after that.
pub(crate) const TEMPORAL_HOLD: Duration = Duration::from_secs(3600);

/// Deadline of each `/readyz` check.
const READY_CHECK: Duration = Duration::from_secs(3);

/// A lazily made Temporal client. After a failed connect, further attempts wait a second,
/// so a Temporal outage costs each request nothing instead of a connect timeout.
pub(crate) struct TemporalLink {
    address: String,
    namespace: String,
    timeout: Duration,
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    client: Option<Client>,
    /// When the last connect failed, and why.
    failed: Option<(Instant, String)>,
}

impl TemporalLink {
    pub(crate) async fn client(&self) -> Result<Client, String> {
        let mut state = self.state.lock().await;
        if let Some(c) = &state.client {
            return Ok(c.clone());
        }
        if let Some((at, why)) = &state.failed
            && at.elapsed() < Duration::from_secs(1)
        {
            return Err(why.clone());
        }
        let connect = apex_worker::client(&self.address, &self.namespace);
        let result = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!(
                "temporal at {} did not answer within {} ms",
                self.address,
                self.timeout.as_millis()
            )),
        };
        match result {
            Ok(c) => {
                state.client = Some(c.clone());
                state.failed = None;
                Ok(c)
            }
            Err(why) => {
                state.failed = Some((Instant::now(), why.clone()));
                Err(why)
            }
        }
    }
}

impl TemporalLink {
    /// Temporal failed a call: forget the client, and answer the next second's callers at
    /// once with `why` instead of letting each wait out a timeout.
    pub(crate) async fn mark_down(&self, why: &str) {
        let mut state = self.state.lock().await;
        state.client = None;
        state.failed = Some((Instant::now(), why.to_owned()));
    }
}

/// One in-flight ingestion's place: counted in `apex_gateway_in_flight` while held.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
}

impl Slot {
    pub(crate) fn new(permit: OwnedSemaphorePermit, gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self {
            _permit: permit,
            gauge: gauge.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A legacy ingestion running in this process: its latest record and its claim.
pub(crate) struct Running {
    pub(crate) record: DocumentRecord,
    pub(crate) claim: Claim,
}

/// Everything a request handler needs.
pub struct Gateway {
    pub settings: GatewaySettings,
    pub legacy: Legacy,
    pub shared: Shared,
    pub rollout: RolloutCoordinator,
    pub metrics: Metrics,
    pub(crate) temporal: TemporalLink,
    pub(crate) in_flight: Arc<Semaphore>,
    /// Legacy ingestions running in this process (they end with it), so a shutdown can
    /// wait for them and say which it had to stop.
    pub(crate) legacy_tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
    pub(crate) legacy_running: std::sync::Mutex<HashMap<String, Running>>,
}

pub(crate) fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen_addr", &self.settings.listen_addr)
            .finish_non_exhaustive()
    }
}

pub(crate) type AppState = Arc<Gateway>;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Gateway {
    /// Builds the gateway: connects Redis (required: the rollout lives there) and prepares
    /// lazy clients of the services and Temporal.
    pub async fn new(settings: GatewaySettings) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let rollout = RolloutCoordinator::new(settings.temporal.rollout, &metrics.registry)?;
        let shared = Shared::connect(
            &settings.redis_url,
            &settings.rollout_key,
            Duration::from_secs(settings.status_ttl_secs),
        )
        .await
        .map_err(|e| anyhow::anyhow!("redis at {}: {e}", settings.redis_url))?;
        let legacy = Legacy::new(Stages::new(&settings.ingest)?, settings.legacy_max_attempts);
        Ok(Self {
            temporal: TemporalLink {
                address: settings.temporal.address.clone(),
                namespace: settings.temporal.namespace.clone(),
                timeout: Duration::from_millis(settings.temporal_timeout_ms),
                state: Mutex::new(LinkState::default()),
            },
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            legacy_tasks: std::sync::Mutex::new(tokio::task::JoinSet::new()),
            legacy_running: std::sync::Mutex::new(HashMap::new()),
            settings,
            legacy,
            shared,
            rollout,
            metrics,
        })
    }

    pub(crate) fn stages(&self) -> &Stages {
        self.legacy.stages()
    }

    /// How long a document stays claimed by an ingestion on `path` if its holder vanishes.
    pub(crate) fn claim_ttl(&self, path: Path) -> Duration {
        match path {
            Path::Temporal => TEMPORAL_HOLD,
            Path::Legacy => self.legacy.longest(),
        }
    }

    /// After the HTTP server has stopped: waits up to `grace` for the legacy ingestions
    /// still running, then stops the rest and records each as failed with the reason (and
    /// frees its document), so no status is left claiming progress that will never come.
    pub async fn drain(&self, grace: Duration) {
        let mut tasks = std::mem::take(&mut *locked(&self.legacy_tasks));
        if tasks.is_empty() {
            return;
        }
        tracing::info!(
            running = tasks.len(),
            grace_secs = grace.as_secs(),
            "waiting for legacy ingestions"
        );
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_ok() {
            return;
        }
        tasks.abort_all();
        // Aborted tasks stop at their next await: wait until they have, so none of their
        // status writes lands after the ones below.
        while tasks.join_next().await.is_some() {}
        let stopped: Vec<(String, Running)> = locked(&self.legacy_running).drain().collect();
        for (id, Running { mut record, claim }) in stopped {
            let mut status = record.status.take().unwrap_or_default();
            status.error = Some(format!(
                "the gateway stopped before this legacy ingestion finished (after {} s of shutdown grace, at status {}); upload it again",
                grace.as_secs(),
                status.status
            ));
            status.status = FAILED.to_owned();
            record.status = Some(status);
            record.updated_at_ms = now_ms();
            tracing::warn!(document = %id, "legacy ingestion stopped by shutdown");
            self.metrics
                .finished
                .with_label_values(&["legacy", FAILED])
                .inc();
            if let Err(e) = self.shared.put_record(&id, &record).await {
                tracing::warn!(document = %id, error = %e, "cannot record the stopped ingestion");
            }
            if let Err(e) = self.shared.release(&id, &claim).await {
                tracing::warn!(document = %id, error = %e, "cannot release the claim");
            }
        }
    }

    /// The percentage every replica shares (Redis), or the last one known when Redis
    /// cannot be read.
    pub(crate) async fn refresh_rollout(&self) {
        match self.shared.rollout().await {
            Ok(Some(p)) => {
                let _ = self.rollout.set_percent(i64::from(p));
            }
            Ok(None) => {
                let _ = self.rollout.set_percent(self.settings.temporal.rollout);
            }
            Err(e) => {
                tracing::warn!(error = %e, percent = self.rollout.percent(), "cannot read the rollout percentage; keeping the last one");
            }
        }
    }

    pub(crate) fn temporal_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.temporal_timeout_ms)
    }
}

/// The router of the HTTP API.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let body_limit = usize::try_from(gateway.settings.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route("/v1/documents", post(crate::upload::create_document))
        .route(
            "/v1/documents/{id}",
            get(crate::documents::document_status).delete(crate::documents::delete_document),
        )
        .route("/v1/search", get(crate::search::search))
        .route("/v1/rollout", get(rollout_get))
        .route("/livez", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .fallback(|| async {
            ApiError::not_found("no such route; the API is described at /openapi.json")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&gateway),
            crate::metrics::observe,
        ))
        .with_state(gateway)
}

/// This gateway's view of the rollout: the percentage, the decisions so far and how the
/// ingestions it saw end went on each path (to compare their error rates).
async fn rollout_get(State(g): State<AppState>) -> Json<Value> {
    g.refresh_rollout().await;
    let outcomes = |path: Path| {
        let count = |status: &str| {
            g.metrics
                .finished
                .with_label_values(&[path.as_str(), status])
                .get()
        };
        let (completed, unchanged, failed) = (count(COMPLETED), count(UNCHANGED), count(FAILED));
        let ended = completed + unchanged + failed;
        json!({
            "completed": completed,
            "unchanged": unchanged,
            "failed": failed,
            "error_rate": if ended == 0 { Value::Null } else { json!(failed as f64 / ended as f64) },
        })
    };
    Json(json!({
        "temporal_percent": g.rollout.percent(),
        "fallback_to_legacy": g.settings.fallback_to_legacy,
        "decisions": {
            "temporal": g.rollout.decided(Path::Temporal),
            "legacy": g.rollout.decided(Path::Legacy),
        },
        "fallbacks": g.metrics.fallbacks.get(),
        "outcomes": {
            "temporal": outcomes(Path::Temporal),
            "legacy": outcomes(Path::Legacy),
        },
    }))
}

async fn readyz(State(g): State<AppState>) -> Response {
    let redis = g.shared.ping().await.map_err(|e| e.to_string());
    let mut writer_client = g.stages().clients().writer.clone();
    let inspect = writer_client.inspect_document(apex_proto::writer::v1::InspectDocumentRequest {
        document_id: uuid::Uuid::nil().to_string(),
    });
    let writer = match tokio::time::timeout(READY_CHECK, inspect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(s)) => Err(s.message().to_owned()),
        Err(_) => Err(format!("no answer within {} s", READY_CHECK.as_secs())),
    };
    let temporal = g.temporal.client().await.map(|_| ());
    let ok = |r: &Result<(), String>| match r {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    // Temporal is optional while the legacy path can take its traffic.
    let ready =
        redis.is_ok() && writer.is_ok() && (temporal.is_ok() || g.settings.fallback_to_legacy);
    let body = json!({
        "ready": ready,
        "checks": { "redis": ok(&redis), "writer": ok(&writer), "temporal": ok(&temporal) },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(g): State<AppState>) -> Response {
    match g.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => ApiError::new(ErrorCode::Internal, e.to_string()).into_response(),
    }
}
