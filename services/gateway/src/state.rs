//! The gateway's shared state: the [`Gateway`] every handler gets (settings, the Temporal
//! link, the stages of the legacy path, Redis, metrics, the in-flight slots and the legacy
//! ingestions running here), and the small helpers around it. The handlers live in their own
//! modules and import this one; this one imports none of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use apex_ingestion::Stages;
use apex_ingestion::status::FAILED;
use temporalio_client::Client;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::legacy::Legacy;
use crate::metrics::Metrics;
use crate::rollout::{Path, RolloutCoordinator};
use crate::settings::GatewaySettings;
use crate::shared::{Claim, DocumentRecord, Shared};

/// How long the gateway holds an in-flight slot (and the document's claim) for a Temporal
/// ingestion at most; the workflow goes on after that.
pub(crate) const TEMPORAL_HOLD: Duration = Duration::from_secs(3600);

/// A lazily made Temporal client. After a failed connect, further attempts wait a second,
/// so a Temporal outage costs each request nothing instead of a connect timeout.
pub(crate) struct TemporalLink {
    settings: apex_common::temporal::TemporalSettings,
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
        let connect = apex_ingestion::workflows::connect(&self.settings, "apex-gateway");
        let result = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!(
                "temporal at {} did not answer within {} ms",
                self.settings.address,
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
    pub auth: crate::auth::Auth,
    /// The webhook sources and their verifiers.
    pub webhooks: crate::webhooks::sources::Registry,
    /// Delivered webhook events, durably (`webhook_events`).
    pub(crate) webhook_log: crate::webhooks::events::EventLog,
    /// Wakes this replica's webhook dispatcher when a delivery was stored.
    pub(crate) webhook_wake: tokio::sync::Notify,
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
        let keys = if settings.auth.required {
            let store = crate::auth::keys::KeyStore::lazy(&settings.auth.database_url)?;
            if let Err(e) = store.ensure_table().await {
                tracing::warn!(error = %format!("{e:#}"), "the API key table is not ready; requests that need a key get 503 until PostgreSQL answers");
            }
            Some(store)
        } else {
            tracing::warn!("auth.required is off: the API answers anyone who reaches it");
            None
        };
        let auth = crate::auth::Auth::new(
            keys,
            Duration::from_secs(settings.auth.cache_secs),
            crate::auth::limit::Limit::of(settings.auth.rate_per_sec, settings.auth.rate_burst),
            &metrics.registry,
        )?;
        // Plaid's keys are fetched through the guarded client, like every outbound call.
        let http = legacy
            .stages()
            .fetch_policy()
            .client(reqwest::Client::builder())
            .map_err(|e| anyhow::anyhow!("the guarded HTTP client: {e}"))?;
        let webhooks = crate::webhooks::sources::Registry::new(
            &settings.webhooks,
            Box::new(|name| std::env::var(name).ok()),
            http,
            metrics.webhook_secrets.clone(),
        );
        for (source, why) in webhooks.current().unconfigured() {
            tracing::info!(
                source,
                reason = why,
                "webhook source refuses every delivery until its secret is configured"
            );
        }
        let webhook_log = crate::webhooks::events::EventLog::lazy(&settings.auth.database_url)?;
        Ok(Self {
            auth,
            webhooks,
            webhook_log,
            webhook_wake: tokio::sync::Notify::new(),
            temporal: TemporalLink {
                settings: settings.temporal.clone(),
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
