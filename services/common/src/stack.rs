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
    /// How many replicas of each stage `apex up` runs (`APEX_STACK__SCALE__EMBEDDER=3`);
    /// `apex up --scale embedder=3` overrides it and is remembered in the state directory.
    pub scale: Scale,
    /// Replica n (from 2) of a stage listens on the stage's ports plus (n − 1) × this step:
    /// embedder-2 on 50063 (gRPC) and 9113 (`/metrics`) with the defaults.
    pub replica_port_step: u16,
    /// How often the worker and the gateway read the replica lists again and check each
    /// replica's health (seconds).
    pub refresh_secs: u64,
    /// Whether the mesh's gRPC runs over mutual TLS with certificates of a local CA in
    /// `<state>/tls` (`apex up --tls` turns it on and remembers it, `--no-tls` off).
    pub tls: bool,
}

/// Replicas per stage (each from 1 to [`Scale::MAX`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Scale {
    pub parser: u16,
    pub extractor: u16,
    pub embedder: u16,
    pub writer: u16,
    pub worker: u16,
}

impl Default for Scale {
    fn default() -> Self {
        Self {
            parser: 1,
            extractor: 1,
            embedder: 1,
            writer: 1,
            worker: 1,
        }
    }
}

impl Scale {
    pub const MAX: u16 = 8;
    /// The stages that scale, by their component names.
    pub const STAGES: [&'static str; 5] = ["parser", "extractor", "embedder", "writer", "worker"];

    /// Replicas of `stage` (None: it does not scale).
    pub fn of(&self, stage: &str) -> Option<u16> {
        Some(match stage {
            "parser" => self.parser,
            "extractor" => self.extractor,
            "embedder" => self.embedder,
            "writer" => self.writer,
            "worker" => self.worker,
            _ => return None,
        })
    }

    fn slot(&mut self, stage: &str) -> Option<&mut u16> {
        Some(match stage {
            "parser" => &mut self.parser,
            "extractor" => &mut self.extractor,
            "embedder" => &mut self.embedder,
            "writer" => &mut self.writer,
            "worker" => &mut self.worker,
            _ => return None,
        })
    }

    /// This scale with `spec` (`embedder=3,parser=2`) applied over it.
    pub fn with(mut self, spec: &str) -> Result<Self, String> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (stage, n) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected <stage>=<replicas>"))?;
            let n: u16 = n
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the replica count must be a number"))?;
            let slot = self.slot(stage.trim()).ok_or_else(|| {
                format!(
                    "`{part}`: `{}` does not scale; the stages that do are {}",
                    stage.trim(),
                    Self::STAGES.join(", ")
                )
            })?;
            *slot = n;
        }
        let problems = self.problems();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems.join("; "))
        }
    }

    fn problems(&self) -> Vec<String> {
        Self::STAGES
            .iter()
            .filter_map(|stage| {
                let n = self.of(stage).unwrap_or(1);
                (!(1..=Self::MAX).contains(&n))
                    .then(|| format!("scale.{stage} must be from 1 to {}, not {n}", Self::MAX))
            })
            .collect()
    }
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
            scale: Scale::default(),
            replica_port_step: 10,
            refresh_secs: 2,
            tls: false,
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
        let mut ports: Vec<(String, u16)> =
            ports.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect();
        p.extend(self.scale.problems());
        if self.replica_port_step == 0 {
            p.push("replica_port_step must not be 0".to_owned());
        }
        for (stage, bases) in [
            ("parser", [self.parser_port, self.parser_metrics_port]),
            (
                "extractor",
                [self.extractor_port, self.extractor_metrics_port],
            ),
            ("embedder", [self.embedder_port, self.embedder_metrics_port]),
            ("writer", [self.writer_port, self.writer_metrics_port]),
            (
                "worker",
                [self.worker_metrics_port, self.worker_metrics_port],
            ),
        ] {
            let n = self.scale.of(stage).unwrap_or(1).min(Scale::MAX);
            for r in 2..=n {
                for (i, base) in bases.iter().enumerate() {
                    if stage == "worker" && i == 1 {
                        continue;
                    }
                    match self.replica_port(*base, r) {
                        Some(port) => ports.push((format!("{stage}-{r} port"), port)),
                        None => p.push(format!(
                            "{stage}-{r}: port {base} + {} × replica_port_step is past 65535",
                            r - 1
                        )),
                    }
                }
            }
        }
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
    /// The port replica `replica` (from 1) of a stage uses where replica 1 uses `base`.
    pub fn replica_port(&self, base: u16, replica: u16) -> Option<u16> {
        let offset = u32::from(replica.saturating_sub(1)) * u32::from(self.replica_port_step);
        u16::try_from(u32::from(base) + offset).ok()
    }

    /// These settings as replica `replica` of `stage` sees them: that stage's ports moved
    /// by the replica step (the other stages' unchanged).
    pub fn for_replica(&self, stage: &str, replica: u16) -> Self {
        let mut s = self.clone();
        let shift = |base: u16| self.replica_port(base, replica).unwrap_or(base);
        match stage {
            "parser" => {
                s.parser_port = shift(self.parser_port);
                s.parser_metrics_port = shift(self.parser_metrics_port);
            }
            "extractor" => {
                s.extractor_port = shift(self.extractor_port);
                s.extractor_metrics_port = shift(self.extractor_metrics_port);
            }
            "embedder" => {
                s.embedder_port = shift(self.embedder_port);
                s.embedder_metrics_port = shift(self.embedder_metrics_port);
            }
            "writer" => {
                s.writer_port = shift(self.writer_port);
                s.writer_metrics_port = shift(self.writer_metrics_port);
            }
            "worker" => s.worker_metrics_port = shift(self.worker_metrics_port),
            _ => {}
        }
        s
    }

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

    /// The local stack's admin API key (`apex up` creates it, mode 0600).
    pub fn api_key_file(&self) -> PathBuf {
        self.state().join("admin.key")
    }

    /// The blob store every service, the worker and the gateway share.
    pub fn blob_dir(&self) -> PathBuf {
        self.state().join("blobs")
    }

    /// Webhook secrets (`<dir>/webhooks/<source>`) and polling accounts' secrets
    /// (`<dir>/poll/<account>/<name>`) of the local stack, written by `apex sources secret`
    /// (mode 0600, outside git).
    pub fn secrets_dir(&self) -> PathBuf {
        self.state().join("secrets")
    }

    /// The local CA and certificates of `apex up --tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.state().join("tls")
    }

    /// The scheme of the mesh's gRPC addresses.
    pub fn grpc_scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The local PKI when TLS is on.
    pub fn local_pki(&self) -> Option<crate::tls::local::LocalPki> {
        self.tls.then(|| crate::tls::local::LocalPki {
            dir: self.tls_dir(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_spec_applies_over_the_settings_and_bad_ones_say_why() {
        let s = Scale::default()
            .with("embedder=3, parser=2")
            .expect("valid");
        assert_eq!((s.embedder, s.parser, s.worker), (3, 2, 1));
        let s = s.with("worker=2").expect("valid");
        assert_eq!((s.embedder, s.worker), (3, 2));
        for (spec, reason) in [
            ("embedder", "expected <stage>=<replicas>"),
            ("embedder=x", "must be a number"),
            ("gateway=2", "does not scale"),
            ("embedder=0", "must be from 1 to 8"),
            ("embedder=9", "must be from 1 to 8"),
        ] {
            let err = Scale::default().with(spec).expect_err(spec);
            assert!(err.contains(reason), "{spec}: {err}");
        }
    }

    #[test]
    fn replicas_get_ports_of_their_own_and_a_clash_is_named() {
        let mut s = StackSettings {
            scale: Scale::default().with("embedder=3,worker=2").expect("valid"),
            ..StackSettings::default()
        };
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        let e3 = s.for_replica("embedder", 3);
        assert_eq!((e3.embedder_port, e3.embedder_metrics_port), (50073, 9123));
        assert_eq!(e3.parser_port, s.parser_port);
        assert_eq!(s.for_replica("worker", 2).worker_metrics_port, 9115);
        // With a step of 1, the parser's second replica lands on the extractor's port.
        s.replica_port_step = 1;
        s.scale.parser = 2;
        let problems = s.validate().join("; ");
        assert!(
            problems.contains("parser-2 port and extractor_port both use port 50052"),
            "{problems}"
        );
    }
}
