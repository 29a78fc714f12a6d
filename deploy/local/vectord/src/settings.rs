//! Settings of `apex-vectord` (`APEX_VECTORD__…`, or a TOML file named by `APEX_VECTORD_CONFIG`).

use std::path::PathBuf;

use apex_common::Settings;
use apex_common::settings::{TelemetrySettings, check_socket_addr};
use serde::{Deserialize, Serialize};

/// Where the server listens and keeps its data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct VectordSettings {
    /// gRPC address (Qdrant's own default gRPC port is 6334).
    pub listen_addr: String,
    /// Directory holding `collections/<name>/`; created if missing.
    pub data_dir: PathBuf,
    /// How often collections written since their last flush are flushed to disk.
    pub flush_interval_ms: u64,
    /// Largest gRPC message accepted or sent, in bytes (Qdrant also allows 64 MiB).
    pub max_message_bytes: usize,
    pub telemetry: TelemetrySettings,
}

impl Default for VectordSettings {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:6334".to_owned(),
            data_dir: PathBuf::from(".apex/vectord"),
            flush_interval_ms: 1000,
            max_message_bytes: 64 * 1024 * 1024,
            telemetry: TelemetrySettings::default(),
        }
    }
}

impl Settings for VectordSettings {
    const ENV_PREFIX: &'static str = "APEX_VECTORD";

    fn validate(&self) -> Vec<String> {
        let mut problems = self.telemetry.validate("telemetry");
        check_socket_addr("listen_addr", &self.listen_addr, &mut problems);
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir must not be empty".to_owned());
        }
        if !(10..=600_000).contains(&self.flush_interval_ms) {
            problems.push(format!(
                "flush_interval_ms must be between 10 and 600000, not {}",
                self.flush_interval_ms
            ));
        }
        if self.max_message_bytes < 1024 * 1024 {
            problems.push(format!(
                "max_message_bytes must be at least 1 MiB, not {}",
                self.max_message_bytes
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use apex_common::settings::{Source, load};

    use super::VectordSettings;

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
    fn defaults_listen_on_qdrants_grpc_port_on_loopback() {
        let s: VectordSettings = load(&env(&[])).expect("defaults are valid");
        assert_eq!(s.listen_addr, "127.0.0.1:6334");
        assert_eq!(s.flush_interval_ms, 1000);
    }

    #[test]
    fn environment_overrides_and_every_problem_is_reported() {
        let s: VectordSettings = load(&env(&[
            ("APEX_VECTORD__DATA_DIR", "/tmp/v"),
            ("APEX_VECTORD__FLUSH_INTERVAL_MS", "250"),
        ]))
        .expect("valid");
        assert_eq!(s.data_dir, std::path::PathBuf::from("/tmp/v"));
        assert_eq!(s.flush_interval_ms, 250);

        let err = load::<VectordSettings>(&env(&[
            ("APEX_VECTORD__LISTEN_ADDR", "nowhere"),
            ("APEX_VECTORD__FLUSH_INTERVAL_MS", "0"),
            ("APEX_VECTORD__COLLECTION", "x"),
        ]))
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "listen_addr",
            "flush_interval_ms",
            "unknown key `collection`",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }
}
