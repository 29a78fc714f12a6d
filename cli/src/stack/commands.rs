//! The command line of each component `apex up` starts: its binary, ports, state directory
//! and the environment that points it at the rest of the stack.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::bail;

use super::Component;
use crate::settings::StackSettings;

pub(super) fn command_for(
    c: Component,
    s: &StackSettings,
    state: &Path,
) -> anyhow::Result<Command> {
    let dir = state.join(c.name());
    fs::create_dir_all(&dir)?;
    let cmd = match c {
        Component::Postgres => bail!("postgres is started by pg_ctl"),
        Component::Redis => redis_command(s, &dir)?,
        Component::Graph => graph_command(s, &dir)?,
        Component::Temporal => temporal_command(s, &dir)?,
        Component::Vectors => vectors_command(s, &dir)?,
        Component::Traces => traces_command(s, &dir)?,
        Component::Parser | Component::Extractor | Component::Embedder | Component::Writer => {
            service_command(c, s, &dir)?
        }
        Component::Worker => worker_command(s)?,
        Component::Gateway => gateway_command(s)?,
        Component::Prometheus => prometheus_command(s, &dir)?,
    };
    Ok(cmd)
}

/// A binary built next to this one.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?.with_file_name(name);
    if !exe.exists() {
        bail!(
            "{} is not built: run `cargo build --workspace`",
            exe.display()
        );
    }
    Ok(exe)
}

/// Where the worker's activities and the gateway's legacy path find the services and the
/// shared blob store.
fn service_addresses(cmd: &mut Command, prefix: &str, s: &StackSettings) {
    for (key, port) in [
        ("PARSER_ADDR", s.parser_port),
        ("EXTRACTOR_ADDR", s.extractor_port),
        ("EMBEDDER_ADDR", s.embedder_port),
        ("WRITER_ADDR", s.writer_port),
    ] {
        cmd.env(
            format!("{prefix}__INGEST__{key}"),
            format!("http://127.0.0.1:{port}"),
        );
    }
    cmd.env(format!("{prefix}__INGEST__BLOB_URL"), s.blob_dir());
}

/// Every process of the stack sends its spans to the trace viewer.
fn export_traces(cmd: &mut Command, prefix: &str, s: &StackSettings) {
    cmd.env(
        format!("{prefix}__TELEMETRY__OTLP_ENDPOINT"),
        s.otlp_endpoint(),
    );
}

/// The launcher that keeps Phoenix's OTLP/gRPC receiver on loopback.
const PHOENIX_LAUNCHER: &str = include_str!("../../../deploy/local/phoenix_loopback.py");

/// Arize Phoenix: UI and REST API on `traces_port`, OTLP/gRPC on `otlp_port`, both on
/// loopback, its SQLite database in the state directory, nothing fetched from outside.
fn traces_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let python = s.tools().join("phoenix-venv/bin/python");
    if !python.exists() {
        bail!(
            "{} is missing: run deploy/local/bootstrap (it installs Arize Phoenix)",
            python.display()
        );
    }
    let launcher = dir.join("phoenix_loopback.py");
    fs::write(&launcher, PHOENIX_LAUNCHER)?;
    let mut cmd = Command::new(python);
    cmd.arg(launcher)
        .env("PHOENIX_HOST", "127.0.0.1")
        .env("PHOENIX_PORT", s.traces_port.to_string())
        .env("PHOENIX_GRPC_PORT", s.otlp_port.to_string())
        .env("PHOENIX_WORKING_DIR", dir.join("data"))
        .env("PHOENIX_ALLOW_EXTERNAL_RESOURCES", "false")
        .env("PHOENIX_TELEMETRY_ENABLED", "false")
        .env("PHOENIX_DISABLE_AGENT_ASSISTANT", "true")
        .env("PHOENIX_ALLOWED_SANDBOX_PROVIDERS", "NONE")
        .env("PHOENIX_ENABLE_MCP_SERVER", "false")
        .env("PHOENIX_LOG_MIGRATIONS", "false");
    Ok(cmd)
}

/// Search attributes registered on the dev server at start.
pub use apex_ingestion::workflows::SEARCH_ATTRIBUTES;

/// The alert rules (`deploy/prometheus/alerts.yml`), written beside the configuration.
const ALERT_RULES: &str = include_str!("../../../deploy/prometheus/alerts.yml");

fn prometheus_config(s: &StackSettings) -> String {
    format!(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nrule_files:\n  - alerts.yml\nscrape_configs:\n  - job_name: temporal-server\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n  - job_name: apex-worker\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n  - job_name: apex-services\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}', '127.0.0.1:{}', '127.0.0.1:{}']\n  - job_name: apex-gateway\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        s.temporal_metrics_port,
        s.worker_metrics_port,
        s.parser_metrics_port,
        s.extractor_metrics_port,
        s.embedder_metrics_port,
        s.writer_metrics_port,
        s.gateway_metrics_port,
    )
}

fn redis_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &s.redis_port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ])
        .arg("--dir")
        .arg(dir);
    Ok(cmd)
}

fn graph_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let fdb = s.falkordb_dir();
    let server = fdb.join("redis-server");
    if !server.exists() {
        bail!(
            "FalkorDB is not installed at {}: run deploy/local/bootstrap",
            fdb.display()
        );
    }
    let mut cmd = Command::new(server);
    cmd.args(["--port", &s.graph_port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "300 1", "--protected-mode", "yes"])
        .arg("--dir")
        .arg(dir)
        .arg("--loadmodule")
        .arg(fdb.join("falkordb.so"))
        .args(["BOLT_PORT", &s.bolt_port.to_string()]);
    Ok(cmd)
}

fn temporal_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let temporal = s.venv_bin("temporal");
    if !temporal.exists() {
        bail!(
            "the Temporal CLI is not installed at {}: run deploy/local/bootstrap",
            temporal.display()
        );
    }
    let mut cmd = Command::new(temporal);
    cmd.args(["server", "start-dev", "--ip", "127.0.0.1"])
        .args(["--port", &s.temporal_port.to_string()])
        .args(["--ui-port", &s.temporal_ui_port.to_string()])
        .args(["--http-port", &s.temporal_http_port.to_string()])
        .args(["--metrics-port", &s.temporal_metrics_port.to_string()])
        .arg("--db-filename")
        .arg(dir.join("temporal.db"))
        .args(["--ui-disable-news-fetch", "--log-level", "warn"]);
    for attr in SEARCH_ATTRIBUTES {
        cmd.args(["--search-attribute", attr]);
    }
    Ok(cmd)
}

fn vectors_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let exe = std::env::current_exe()?.with_file_name("apex-vectord");
    if !exe.exists() {
        bail!(
            "{} is not built: run `cargo build --workspace`",
            exe.display()
        );
    }
    let mut cmd = Command::new(exe);
    cmd.env(
        "APEX_VECTORD__LISTEN_ADDR",
        format!("127.0.0.1:{}", s.vectors_port),
    )
    .env("APEX_VECTORD__DATA_DIR", dir)
    .env("APEX_VECTORD__TELEMETRY__LOG_FORMAT", "json");
    Ok(cmd)
}

fn service_command(c: Component, s: &StackSettings, _dir: &Path) -> anyhow::Result<Command> {
    let Some((bin, port, metrics, _)) = c.grpc_service(s) else {
        bail!("{} is not a gRPC service", c.name());
    };
    let mut cmd = Command::new(sibling(bin)?);
    let prefix = format!("APEX_{}", c.name().to_ascii_uppercase());
    cmd.env(
        format!("{prefix}__LISTEN_ADDR"),
        format!("127.0.0.1:{port}"),
    )
    .env(
        format!("{prefix}__METRICS_ADDR"),
        format!("127.0.0.1:{metrics}"),
    )
    .env(format!("{prefix}__BLOB_URL"), s.blob_dir())
    .env(format!("{prefix}__TELEMETRY__LOG_FORMAT"), "json");
    export_traces(&mut cmd, &prefix, s);
    match c {
        Component::Parser => {
            cmd.env(
                "APEX_PARSER__TOKENIZER_PATH",
                s.model_dir().join("tokenizer.json"),
            );
        }
        Component::Embedder => {
            cmd.env("APEX_EMBEDDER__MODEL_DIR", s.model_dir())
                .env("APEX_EMBEDDER__CACHE_URL", s.redis_url())
                .env(
                    "APEX_EMBEDDER__ONNXRUNTIME_LIBRARY",
                    s.tools().join("lib/libonnxruntime.so"),
                );
        }
        Component::Writer => {
            cmd.env("APEX_WRITER__POSTGRES__URL", s.postgres_url())
                .env(
                    "APEX_WRITER__GRAPH__URL",
                    format!("redis://127.0.0.1:{}", s.graph_port),
                )
                .env(
                    "APEX_WRITER__VECTORS__URL",
                    format!("http://127.0.0.1:{}", s.vectors_port),
                )
                .env("APEX_WRITER__REDIS__URL", s.redis_url());
        }
        _ => {}
    }
    Ok(cmd)
}

fn worker_command(s: &StackSettings) -> anyhow::Result<Command> {
    let mut cmd = Command::new(sibling("apex-worker")?);
    cmd.env("APEX_WORKER__TEMPORAL__ADDRESS", s.temporal_address())
        .env(
            "APEX_WORKER__METRICS_ADDR",
            format!("127.0.0.1:{}", s.worker_metrics_port),
        );
    service_addresses(&mut cmd, "APEX_WORKER", s);
    export_traces(&mut cmd, "APEX_WORKER", s);
    Ok(cmd)
}

fn gateway_command(s: &StackSettings) -> anyhow::Result<Command> {
    let mut cmd = Command::new(sibling("apex-gateway")?);
    cmd.env("APEX_GATEWAY__TEMPORAL__ADDRESS", s.temporal_address())
        .env(
            "APEX_GATEWAY__LISTEN_ADDR",
            format!("127.0.0.1:{}", s.gateway_port),
        )
        .env(
            "APEX_GATEWAY__METRICS_ADDR",
            format!("127.0.0.1:{}", s.gateway_metrics_port),
        )
        .env("APEX_GATEWAY__REDIS_URL", s.redis_url())
        .env("APEX_GATEWAY__TELEMETRY__LOG_FORMAT", "json");
    service_addresses(&mut cmd, "APEX_GATEWAY", s);
    export_traces(&mut cmd, "APEX_GATEWAY", s);
    Ok(cmd)
}

fn prometheus_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let config = dir.join("prometheus.yml");
    fs::write(&config, prometheus_config(s))?;
    fs::write(dir.join("alerts.yml"), ALERT_RULES)?;
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!(
            "--web.listen-address=127.0.0.1:{}",
            s.prometheus_port
        ));
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promtool(args: &[&str]) -> String {
        let out = Command::new("promtool")
            .args(args)
            .output()
            .expect("promtool runs (deploy/local/bootstrap installs it with prometheus)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {}: {text}", args.join(" "));
        text
    }

    #[test]
    fn the_local_prometheus_configuration_loads_the_alert_rules() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("prometheus.yml");
        fs::write(&config, prometheus_config(&StackSettings::default())).expect("written");
        fs::write(dir.path().join("alerts.yml"), ALERT_RULES).expect("written");
        let text = promtool(&["check", "config", &config.to_string_lossy()]);
        assert!(text.contains("SUCCESS: 2 rules found"), "{text}");
    }

    #[test]
    fn the_alert_rules_pass_their_promtool_tests() {
        let tests = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/prometheus/alerts.test.yml"
        );
        let text = promtool(&["test", "rules", tests]);
        assert!(text.contains("SUCCESS"), "{text}");
    }
}
