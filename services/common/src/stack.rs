//! Where the local stack lives and which ports it uses (`APEX_STACK__…`): read by `apex up`
//! and friends, which run the stack, and by the end-to-end tests' sandbox, which finds it.

use std::path::PathBuf;

use crate::{Settings, ports};
use serde::{Deserialize, Serialize};

/// Layout and ports of the local stack. Defaults follow `ARCHITECTURE.md`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StackSettings {
    /// Data, logs and pids (git-ignored).
    pub state_dir: String,
    /// Installed tools: the Python venv with temporal and falkordb, and model files.
    pub tools_dir: String,
    pub temporal_port: u16,
    pub temporal_ui_port: u16,
    pub temporal_http_port: u16,
    pub temporal_metrics_port: u16,
    pub postgres_port: u16,
    pub postgres_user: String,
    pub postgres_db: String,
    /// Password of the local development role; override it outside a dev machine.
    pub postgres_password: String,
    pub redis_port: u16,
    pub graph_port: u16,
    pub bolt_port: u16,
    /// apex-vectord, the Qdrant-API vector database (Qdrant's own gRPC port).
    pub vectors_port: u16,
    pub worker_metrics_port: u16,
    pub prometheus_port: u16,
    /// The trace viewer (Arize Phoenix): its UI and REST API, and its OTLP/gRPC receiver,
    /// where every process of the stack sends its spans.
    pub traces_port: u16,
    pub otlp_port: u16,
    /// Whether the stack's processes export their spans to the viewer (the tracing
    /// overhead benchmark turns it off; trace context still propagates).
    pub export_traces: bool,
    /// Alertmanager (Prometheus's alerts go there) and the webhook receiver it sends
    /// them to (`apex alerts` lists what it got).
    pub alertmanager_port: u16,
    pub alert_receiver_port: u16,
    /// The gRPC services and the HTTP gateway.
    pub parser_port: u16,
    pub extractor_port: u16,
    pub embedder_port: u16,
    pub writer_port: u16,
    pub gateway_port: u16,
    /// Their `/metrics` listeners (9101–9104, and the gateway's second one on 9106).
    pub parser_metrics_port: u16,
    pub extractor_metrics_port: u16,
    pub embedder_metrics_port: u16,
    pub writer_metrics_port: u16,
    pub gateway_metrics_port: u16,
    /// Seconds to wait for a component to become healthy.
    pub start_timeout_secs: u64,
}

impl Default for StackSettings {
    fn default() -> Self {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned());
        Self {
            state_dir: default_state_dir(),
            tools_dir: format!("{home}/.cache/apex/tools"),
            temporal_port: 7233,
            temporal_ui_port: 8233,
            temporal_http_port: 7243,
            temporal_metrics_port: 7234,
            postgres_port: 5432,
            postgres_user: "apex".to_owned(),
            postgres_db: "apex".to_owned(),
            postgres_password: "apex-dev".to_owned(),
            redis_port: 6379,
            graph_port: 6380,
            bolt_port: 7687,
            vectors_port: 6334,
            worker_metrics_port: ports::WORKER_METRICS,
            prometheus_port: 9090,
            traces_port: 6006,
            otlp_port: 4317,
            export_traces: true,
            alertmanager_port: 9093,
            alert_receiver_port: 9096,
            parser_port: ports::PARSER.grpc,
            extractor_port: ports::EXTRACTOR.grpc,
            embedder_port: ports::EMBEDDER.grpc,
            writer_port: ports::WRITER.grpc,
            gateway_port: ports::GATEWAY_HTTP,
            parser_metrics_port: ports::PARSER.metrics,
            extractor_metrics_port: ports::EXTRACTOR.metrics,
            embedder_metrics_port: ports::EMBEDDER.metrics,
            writer_metrics_port: ports::WRITER.metrics,
            gateway_metrics_port: ports::GATEWAY_METRICS,
            start_timeout_secs: 90,
        }
    }
}

/// `.apex` in the checkout that contains the current directory (found by its
/// `deploy/local/bootstrap`), so that every command and test of one checkout shares one
/// stack whatever directory it runs from; `.apex` in the current directory otherwise.
fn default_state_dir() -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let root = cwd
        .ancestors()
        .find(|d| d.join("deploy/local/bootstrap").is_file())
        .unwrap_or(&cwd);
    root.join(".apex").display().to_string()
}

impl Settings for StackSettings {
    const ENV_PREFIX: &'static str = "APEX_STACK";

    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let ports = [
            ("temporal_port", self.temporal_port),
            ("temporal_ui_port", self.temporal_ui_port),
            ("temporal_http_port", self.temporal_http_port),
            ("temporal_metrics_port", self.temporal_metrics_port),
            ("postgres_port", self.postgres_port),
            ("redis_port", self.redis_port),
            ("graph_port", self.graph_port),
            ("bolt_port", self.bolt_port),
            ("vectors_port", self.vectors_port),
            ("worker_metrics_port", self.worker_metrics_port),
            ("prometheus_port", self.prometheus_port),
            ("traces_port", self.traces_port),
            ("otlp_port", self.otlp_port),
            ("alertmanager_port", self.alertmanager_port),
            ("alert_receiver_port", self.alert_receiver_port),
            ("parser_port", self.parser_port),
            ("extractor_port", self.extractor_port),
            ("embedder_port", self.embedder_port),
            ("writer_port", self.writer_port),
            ("gateway_port", self.gateway_port),
            ("parser_metrics_port", self.parser_metrics_port),
            ("extractor_metrics_port", self.extractor_metrics_port),
            ("embedder_metrics_port", self.embedder_metrics_port),
            ("writer_metrics_port", self.writer_metrics_port),
            ("gateway_metrics_port", self.gateway_metrics_port),
        ];
        for (i, (name, port)) in ports.iter().enumerate() {
            if *port == 0 {
                p.push(format!("{name} must not be 0"));
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, q)| q == port) {
                p.push(format!("{name} and {other} both use port {port}"));
            }
        }
        if self.state_dir.is_empty() {
            p.push("state_dir must not be empty".to_owned());
        }
        p
    }
}

impl StackSettings {
    pub fn state(&self) -> PathBuf {
        PathBuf::from(&self.state_dir)
    }

    pub fn tools(&self) -> PathBuf {
        PathBuf::from(&self.tools_dir)
    }

    pub fn venv_bin(&self, name: &str) -> PathBuf {
        self.tools().join("venv/bin").join(name)
    }

    pub fn falkordb_dir(&self) -> PathBuf {
        self.tools().join("falkordb")
    }

    pub fn model_dir(&self) -> PathBuf {
        self.tools().join("models/all-MiniLM-L6-v2")
    }

    pub fn temporal_address(&self) -> String {
        format!("http://127.0.0.1:{}", self.temporal_port)
    }

    pub fn temporal_ui(&self) -> String {
        format!("http://127.0.0.1:{}", self.temporal_ui_port)
    }

    /// The blob store every service, the worker and the gateway share.
    pub fn blob_dir(&self) -> PathBuf {
        self.state().join("blobs")
    }

    /// The trace viewer's UI and REST API.
    pub fn traces_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.traces_port)
    }

    /// Where the stack's processes export their spans (OTLP/gRPC).
    pub fn otlp_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_port)
    }

    pub fn alertmanager_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.alertmanager_port)
    }

    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    pub fn postgres_url(&self) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            self.postgres_user, self.postgres_password, self.postgres_port, self.postgres_db
        )
    }
}
