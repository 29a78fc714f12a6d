//! Temporal connection settings shared by the worker, the gateway and the CLI
//! (the plan's `TemporalConfig`), including the rollout percentage.

use serde::{Deserialize, Serialize};

use crate::tls::ClientTlsSettings;

/// Plain environment variables every binary with [`TemporalSettings`] under `temporal`
/// accepts: (variable, dotted key).
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("TEMPORAL_ROLLOUT", "temporal.rollout"),
    ("TEMPORAL_ADDRESS", "temporal.address"),
    ("TEMPORAL_NAMESPACE", "temporal.namespace"),
    ("TEMPORAL_API_KEY", "temporal.api_key"),
];

/// The task queue every Apex workflow and activity runs on.
pub const TASK_QUEUE: &str = "apex-ingest";

/// How to reach Temporal and how much traffic it gets.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TemporalSettings {
    /// Frontend URL, for example `http://127.0.0.1:7233`.
    pub address: String,
    pub namespace: String,
    pub task_queue: String,
    /// Identifies this build of the worker's workflow code.
    pub build_id: String,
    /// Percentage of documents routed through Temporal (0–100); also read from `TEMPORAL_ROLLOUT`.
    pub rollout: i64,
    /// Whether the worker exports the SDK's Prometheus metrics.
    pub metrics_enabled: bool,
    /// API key (Temporal Cloud), sent as a bearer token; it turns TLS on. Also read from
    /// `TEMPORAL_API_KEY`. Never logged.
    pub api_key: String,
    /// TLS to the frontend, used for an `https://` address or with an API key: the CA to
    /// trust (empty = the system's roots), a client certificate for mutual TLS, the name to
    /// check. Read when connecting (`reload_secs` does not apply).
    pub tls: ClientTlsSettings,
}

impl std::fmt::Debug for TemporalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporalSettings")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("task_queue", &self.task_queue)
            .field("build_id", &self.build_id)
            .field("rollout", &self.rollout)
            .field("metrics_enabled", &self.metrics_enabled)
            .field(
                "api_key",
                &if self.api_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("tls", &self.tls)
            .finish()
    }
}

impl Default for TemporalSettings {
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:7233".to_owned(),
            namespace: "default".to_owned(),
            task_queue: TASK_QUEUE.to_owned(),
            build_id: concat!("apex-", env!("CARGO_PKG_VERSION")).to_owned(),
            rollout: 100,
            metrics_enabled: true,
            api_key: String::new(),
            tls: ClientTlsSettings::default(),
        }
    }
}

impl TemporalSettings {
    /// Problems with these values, each naming its key under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        match url::Url::parse(&self.address) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => p.push(format!(
                "{at}.address `{}` must be an http(s) URL like http://127.0.0.1:7233",
                self.address
            )),
        }
        for (key, value) in [
            ("namespace", &self.namespace),
            ("task_queue", &self.task_queue),
            ("build_id", &self.build_id),
        ] {
            if value.trim().is_empty() {
                p.push(format!("{at}.{key} must not be empty"));
            }
        }
        p.extend(self.tls.validate(&format!("{at}.tls")));
        if !self.api_key.is_empty() && self.address.starts_with("http://") {
            p.push(format!(
                "{at}.api_key needs TLS: write the address as https://, the key must not travel in the clear"
            ));
        }
        if !(0..=100).contains(&self.rollout) {
            p.push(format!(
                "{at}.rollout (TEMPORAL_ROLLOUT) must be between 0 and 100, not {}",
                self.rollout
            ));
        }
        p
    }

    /// Whether any traffic goes to Temporal at all; 0 % is the emergency rollback.
    pub fn use_temporal(&self) -> bool {
        self.rollout > 0
    }

    /// Whether the connection to the frontend uses TLS.
    pub fn uses_tls(&self) -> bool {
        self.address.starts_with("https://") || !self.api_key.is_empty()
    }

    /// Settings for `address` and `namespace` with everything else as it defaults.
    pub fn at(address: &str, namespace: &str) -> Self {
        Self {
            address: address.to_owned(),
            namespace: namespace.to_owned(),
            ..Self::default()
        }
    }
}
