//! Settings of the worker binary (`APEX_WORKER__…`).

use apex_common::{
    Settings,
    settings::{TelemetrySettings, check_socket_addr},
    temporal::TemporalSettings,
};
pub use apex_ingestion::IngestSettings;
use serde::{Deserialize, Serialize};

/// Everything the worker reads at start. Unknown keys are caught by the loader, which
/// reports them together with every other problem.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WorkerSettings {
    pub temporal: TemporalSettings,
    pub telemetry: TelemetrySettings,
    /// Workflow tasks processed at once.
    pub max_concurrent_workflow_tasks: usize,
    /// Activities executed at once.
    pub max_concurrent_activities: usize,
    /// Where `/metrics` (the SDK's Prometheus metrics) is served; empty = off.
    pub metrics_addr: String,
    /// How long in-flight activities may run after SIGTERM before they are cancelled.
    pub graceful_shutdown_secs: u64,
    /// Upper bound of the backoff between connection attempts.
    pub connect_max_backoff_secs: u64,
    /// Where the ingestion activities find the services and the blob store.
    pub ingest: IngestSettings,
    /// Worker Deployment versioning: `off`, `pinned` (a workflow stays on the worker
    /// version it started on until it ends) or `auto-upgrade` (it moves to the current
    /// version at its next workflow task). The version is `deployment_name` and
    /// `temporal.build_id`.
    pub versioning: String,
    pub deployment_name: String,
    /// With versioning on: a worker that finds its deployment without a current version
    /// (the first deployment) makes its own version current.
    pub promote_if_none: bool,
    /// The Redis the ingestion workflows write their live status to, for the gateway's
    /// status reads ([`apex_ingestion::live`]); empty = off (the gateway then asks Temporal).
    pub live_status_redis_url: String,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            temporal: TemporalSettings::default(),
            telemetry: TelemetrySettings::default(),
            max_concurrent_workflow_tasks: 100,
            max_concurrent_activities: 100,
            metrics_addr: format!("127.0.0.1:{}", apex_common::ports::WORKER_METRICS),
            graceful_shutdown_secs: 30,
            connect_max_backoff_secs: 30,
            ingest: IngestSettings::default(),
            versioning: "off".to_owned(),
            deployment_name: "apex-ingest".to_owned(),
            promote_if_none: true,
            live_status_redis_url: String::new(),
        }
    }
}

impl Settings for WorkerSettings {
    const ENV_PREFIX: &'static str = "APEX_WORKER";

    fn aliases() -> &'static [(&'static str, &'static str)] {
        apex_common::temporal::ENV_ALIASES
    }

    fn validate(&self) -> Vec<String> {
        let mut p = self.temporal.validate("temporal");
        p.extend(self.telemetry.validate("telemetry"));
        if self.max_concurrent_workflow_tasks < 2 {
            p.push("max_concurrent_workflow_tasks must be at least 2".to_owned());
        }
        if self.max_concurrent_activities == 0 {
            p.push("max_concurrent_activities must be at least 1".to_owned());
        }
        if !self.metrics_addr.is_empty() {
            check_socket_addr("metrics_addr", &self.metrics_addr, &mut p);
        }
        let url = &self.live_status_redis_url;
        if !url.is_empty() && !url.starts_with("redis://") && !url.starts_with("rediss://") {
            p.push(
                "live_status_redis_url must be a redis:// or rediss:// URL (or empty: off)"
                    .to_owned(),
            );
        }
        if self.connect_max_backoff_secs == 0 {
            p.push("connect_max_backoff_secs must be at least 1".to_owned());
        }
        p.extend(self.ingest.problems());
        if !["off", "pinned", "auto-upgrade"].contains(&self.versioning.as_str()) {
            p.push(format!(
                "versioning must be off, pinned or auto-upgrade, not `{}`",
                self.versioning
            ));
        } else if self.versioning != "off" {
            if self.deployment_name.is_empty() || self.deployment_name.contains('.') {
                p.push(format!(
                    "deployment_name must be set and hold no `.` when versioning is on, not `{}`",
                    self.deployment_name
                ));
            }
            if self.temporal.build_id.is_empty() {
                p.push("temporal.build_id must be set when versioning is on".to_owned());
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apex_common::settings::{Source, load};

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
    fn defaults_load_without_any_environment() {
        let s: WorkerSettings = load(&env(&[])).expect("defaults are valid");
        assert_eq!(s, WorkerSettings::default());
        assert_eq!(s.temporal.task_queue, "apex-ingest");
        assert_eq!(s.temporal.namespace, "default");
        assert_eq!(s.temporal.address, "http://127.0.0.1:7233");
    }

    #[test]
    fn nested_environment_variables_override_defaults() {
        let s: WorkerSettings = load(&env(&[
            ("APEX_WORKER__TEMPORAL__NAMESPACE", "ingest"),
            ("APEX_WORKER__MAX_CONCURRENT_ACTIVITIES", "7"),
            ("APEX_WORKER__TEMPORAL__METRICS_ENABLED", "false"),
            ("UNRELATED", "ignored"),
        ]))
        .expect("valid");
        assert_eq!(s.temporal.namespace, "ingest");
        assert_eq!(s.max_concurrent_activities, 7);
        assert!(!s.temporal.metrics_enabled);
    }

    #[test]
    fn rollout_accepts_the_whole_range_from_the_plain_variable() {
        for pct in ["0", "10", "50", "100"] {
            let s: WorkerSettings = load(&env(&[("TEMPORAL_ROLLOUT", pct)])).expect(pct);
            assert_eq!(s.temporal.rollout.to_string(), pct);
            assert_eq!(s.temporal.use_temporal(), pct != "0");
        }
    }

    #[test]
    fn rollout_outside_zero_to_hundred_is_refused_with_the_reason() {
        for pct in ["101", "-1", "250"] {
            let err = load::<WorkerSettings>(&env(&[("TEMPORAL_ROLLOUT", pct)])).expect_err(pct);
            assert_eq!(err.problems.len(), 1, "{err}");
            assert!(err.problems[0].contains("between 0 and 100"), "{err}");
            assert!(err.problems[0].contains(pct), "{err}");
        }
        let err = load::<WorkerSettings>(&env(&[("TEMPORAL_ROLLOUT", "half")])).expect_err("text");
        assert!(err.to_string().contains("rollout"), "{err}");
    }

    #[test]
    fn every_unknown_key_is_reported_at_once() {
        let err = load::<WorkerSettings>(&env(&[
            ("APEX_WORKER__TEMPORAL__NAMESPAEC", "x"),
            ("APEX_WORKER__MAX_WORKERS", "3"),
        ]))
        .expect_err("unknown keys");
        let text = err.to_string();
        assert!(text.contains("temporal.namespaec"), "{text}");
        assert!(text.contains("APEX_WORKER__TEMPORAL__NAMESPAEC"), "{text}");
        assert!(text.contains("max_workers"), "{text}");
        assert_eq!(err.problems.len(), 2, "{text}");
    }

    #[test]
    fn several_bad_values_are_all_reported() {
        let err = load::<WorkerSettings>(&env(&[
            ("APEX_WORKER__TEMPORAL__ADDRESS", "not a url"),
            ("APEX_WORKER__METRICS_ADDR", "nowhere"),
            ("APEX_WORKER__TELEMETRY__LOG_FORMAT", "xml"),
            ("TEMPORAL_ROLLOUT", "400"),
        ]))
        .expect_err("bad values");
        assert_eq!(err.problems.len(), 4, "{err}");
    }

    #[test]
    fn a_config_file_is_read_and_the_environment_wins_over_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            "max_concurrent_activities = 3\n[temporal]\nnamespace = \"from-file\"\nrollout = 10\n",
        )
        .expect("write");
        let mut source = env(&[("APEX_WORKER__TEMPORAL__NAMESPACE", "from-env")]);
        source.file = Some(path);
        let s: WorkerSettings = load(&source).expect("valid");
        assert_eq!(s.max_concurrent_activities, 3);
        assert_eq!(s.temporal.rollout, 10);
        assert_eq!(s.temporal.namespace, "from-env");
    }

    #[test]
    fn a_missing_config_file_is_a_problem() {
        let mut source = env(&[]);
        source.file = Some("/nonexistent/apex.toml".into());
        let err = load::<WorkerSettings>(&source).expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/apex.toml"), "{err}");
    }

    #[test]
    fn versioning_is_off_pinned_or_auto_upgrade_with_a_deployment_name_and_build_id() {
        let s: WorkerSettings =
            load(&env(&[("APEX_WORKER__VERSIONING", "pinned")])).expect("valid");
        assert_eq!(
            (s.versioning.as_str(), s.deployment_name.as_str()),
            ("pinned", "apex-ingest")
        );
        for (pairs, reason) in [
            (
                vec![("APEX_WORKER__VERSIONING", "sticky")],
                "versioning must be off, pinned or auto-upgrade",
            ),
            (
                vec![
                    ("APEX_WORKER__VERSIONING", "pinned"),
                    ("APEX_WORKER__DEPLOYMENT_NAME", "a.b"),
                ],
                "deployment_name must be set and hold no `.`",
            ),
            (
                vec![
                    ("APEX_WORKER__VERSIONING", "auto-upgrade"),
                    ("APEX_WORKER__TEMPORAL__BUILD_ID", ""),
                ],
                "build_id",
            ),
        ] {
            let err = load::<WorkerSettings>(&env(&pairs)).expect_err(reason);
            assert!(err.to_string().contains(reason), "{err}");
        }
    }
}
