//! Settings of the gateway binary (`APEX_GATEWAY__…`, or a TOML file named by
//! `APEX_GATEWAY_CONFIG`). `TEMPORAL_ROLLOUT` is accepted for `temporal.rollout`.

use apex_common::{
    Settings,
    settings::{TelemetrySettings, check_socket_addr},
    temporal::TemporalSettings,
};
use apex_ingestion::IngestSettings;
use serde::{Deserialize, Serialize};

/// Everything the gateway reads at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GatewaySettings {
    /// HTTP listen address (API, `/metrics`, `/livez`, `/readyz`, `/openapi.json`).
    pub listen_addr: String,
    /// A second `/metrics` listener, on the port the other binaries' metrics use (9106);
    /// empty = only on `listen_addr`.
    pub metrics_addr: String,
    pub temporal: TemporalSettings,
    pub telemetry: TelemetrySettings,
    /// The services, the blob store and the fetch limits, as the worker has them: the
    /// legacy path calls the same services the activities call.
    pub ingest: IngestSettings,
    /// Where the rollout percentage and the legacy path's statuses live (shared by every
    /// gateway replica).
    pub redis_url: String,
    /// The Redis key holding the rollout percentage (absent: `temporal.rollout`).
    pub rollout_key: String,
    /// Run a document on the legacy path when Temporal cannot be reached, instead of
    /// answering 503.
    pub fallback_to_legacy: bool,
    /// Ingestions accepted and not finished, per gateway; beyond it uploads get 429.
    pub max_in_flight: usize,
    /// What a 429 asks the client to wait.
    pub retry_after_secs: u64,
    /// Largest document accepted in an upload.
    pub max_upload_bytes: u64,
    /// Attempts per stage on the legacy path (transient failures only). The legacy path
    /// cannot wait out a long outage: after these it fails the document.
    pub legacy_max_attempts: u32,
    /// How long an ingestion on the Temporal path waits out outages (a stage or a store
    /// away) before it fails, in seconds.
    pub ingest_deadline_secs: u64,
    /// Whether JSON uploads may name files on the machine (`file:///…`, `/path`), read by
    /// the gateway or the worker. Off by default: anyone who can call the API could
    /// otherwise have any readable file ingested and searchable.
    pub allow_local_files: bool,
    /// How long a legacy ingestion's status is kept in Redis.
    pub status_ttl_secs: u64,
    /// On SIGTERM, how long legacy ingestions in progress may run on; those still running
    /// then are stopped and recorded as failed.
    pub shutdown_grace_secs: u64,
    /// How long the gateway waits for Temporal to accept a start (or a query) before it
    /// counts Temporal as unreachable.
    pub temporal_timeout_ms: u64,
    /// How old a Temporal-path ingestion's live status (written to Redis by the worker as
    /// the status moves) may be for a status read to answer from it without asking
    /// Temporal; a final one answers at any age. 0: always ask Temporal.
    pub live_status_fresh_ms: u64,
    /// Whether each `GET /v1/documents/{id}` (a status read) makes a trace of its own. Off
    /// by default: clients poll a document's status many times while it is ingested, and
    /// those traces would outnumber and bury the ingestion's (the trace viewer spent more
    /// CPU on them than the ingestions did); they are still counted and timed in metrics.
    pub trace_status_reads: bool,
    /// API keys ([`crate::auth`]).
    pub auth: AuthSettings,
    /// Signed webhooks ([`crate::webhooks`]); their secrets come from the environment.
    pub webhooks: crate::webhooks::sources::WebhookSettings,
}

/// Who may call the API (`APEX_GATEWAY__AUTH__…`).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AuthSettings {
    /// Every route but `/livez`, `/readyz`, `/metrics` and `/openapi.json` needs an API key
    /// with its scope. Turn off only behind a proxy that authenticates every caller.
    pub required: bool,
    /// The PostgreSQL database holding the keys (the writer's is fine).
    pub database_url: String,
    /// How long a verified key is trusted before PostgreSQL is asked again; a revocation
    /// takes effect within this time (0: every request asks).
    pub cache_secs: u64,
    /// Requests per second each key may make, shared by every gateway replica (a token
    /// bucket in Redis); past it a 429 with `Retry-After`. 0 (the default): no limit.
    pub rate_per_sec: f64,
    /// Requests a key may make at once before the rate applies (0: the rate, at least 1).
    pub rate_burst: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            required: true,
            database_url: "postgres://apex:apex-dev@127.0.0.1:5432/apex".to_owned(),
            cache_secs: 10,
            rate_per_sec: 0.0,
            rate_burst: 0,
        }
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("required", &self.required)
            .field(
                "database_url",
                &crate::auth::keys::redact(&self.database_url),
            )
            .field("cache_secs", &self.cache_secs)
            .field("rate_per_sec", &self.rate_per_sec)
            .field("rate_burst", &self.rate_burst)
            .finish()
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen_addr: format!("127.0.0.1:{}", apex_common::ports::GATEWAY_HTTP),
            metrics_addr: format!("127.0.0.1:{}", apex_common::ports::GATEWAY_METRICS),
            temporal: TemporalSettings::default(),
            telemetry: TelemetrySettings::default(),
            ingest: IngestSettings::default(),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            rollout_key: crate::shared::ROLLOUT_KEY.to_owned(),
            fallback_to_legacy: true,
            max_in_flight: 256,
            retry_after_secs: 2,
            max_upload_bytes: 64 * 1024 * 1024,
            legacy_max_attempts: 3,
            ingest_deadline_secs: apex_ingestion::steps::DEFAULT_DEADLINE.as_secs(),
            allow_local_files: false,
            status_ttl_secs: 7 * 24 * 3600,
            temporal_timeout_ms: 3_000,
            live_status_fresh_ms: 10_000,
            shutdown_grace_secs: 30,
            trace_status_reads: false,
            auth: AuthSettings::default(),
            webhooks: Default::default(),
        }
    }
}

impl Settings for GatewaySettings {
    const ENV_PREFIX: &'static str = "APEX_GATEWAY";

    fn aliases() -> &'static [(&'static str, &'static str)] {
        apex_common::temporal::ENV_ALIASES
    }

    fn validate(&self) -> Vec<String> {
        let mut p = self.temporal.validate("temporal");
        p.extend(self.telemetry.validate("telemetry"));
        if !self.auth.rate_per_sec.is_finite() || self.auth.rate_per_sec < 0.0 {
            p.push(format!(
                "auth.rate_per_sec must be 0 (no limit) or a positive number, not {}",
                self.auth.rate_per_sec
            ));
        }
        check_socket_addr("listen_addr", &self.listen_addr, &mut p);
        if !self.metrics_addr.is_empty() {
            check_socket_addr("metrics_addr", &self.metrics_addr, &mut p);
        }
        if !self.redis_url.starts_with("redis://") && !self.redis_url.starts_with("rediss://") {
            p.push(format!(
                "redis_url must be a redis:// URL, not `{}`",
                self.redis_url
            ));
        }
        if self.rollout_key.trim().is_empty() {
            p.push("rollout_key must not be empty".to_owned());
        }
        if self.max_in_flight == 0 {
            p.push("max_in_flight must be at least 1".to_owned());
        }
        if self.max_upload_bytes == 0 {
            p.push("max_upload_bytes must be at least 1".to_owned());
        }
        if self.legacy_max_attempts == 0 {
            p.push("legacy_max_attempts must be at least 1".to_owned());
        }
        if self.ingest_deadline_secs < 60 {
            p.push("ingest_deadline_secs must be at least 60".to_owned());
        }
        if self.temporal_timeout_ms < 100 {
            p.push("temporal_timeout_ms must be at least 100".to_owned());
        }
        if self.auth.required
            && !self.auth.database_url.starts_with("postgres://")
            && !self.auth.database_url.starts_with("postgresql://")
        {
            p.push("auth.database_url must be a postgres:// URL".to_owned());
        }
        p.extend(self.ingest.problems());
        p.extend(self.webhooks.problems());
        p
    }
}

#[cfg(test)]
mod tests {
    use apex_common::settings::{Source, load};

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Source {
        Source {
            file: None,
            env: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn webhook_schemes_are_a_map_of_free_names_and_other_keys_stay_checked() {
        let s: GatewaySettings = load(&env(&[
            (
                "APEX_GATEWAY__WEBHOOKS__SCHEMES__PARTNER-A",
                "standard-webhooks",
            ),
            ("APEX_GATEWAY__WEBHOOKS__TOLERANCE_SECS", "120"),
        ]))
        .expect("a new source by its scheme");
        assert_eq!(s.webhooks.schemes["partner-a"], "standard-webhooks");
        assert_eq!(s.webhooks.tolerance_secs, 120);
        let e = load::<GatewaySettings>(&env(&[
            ("APEX_GATEWAY__WEBHOOKS__TOLERANCE", "120"),
            ("APEX_GATEWAY__WEBHOOKS__SCHEMES__PARTNER-B", "hmac-md5"),
        ]))
        .expect_err("a misspelt key and an unknown scheme");
        let text = e.to_string();
        assert!(text.contains("unknown key `webhooks.tolerance`"), "{text}");
        assert!(text.contains("hmac-md5"), "{text}");
    }
}
