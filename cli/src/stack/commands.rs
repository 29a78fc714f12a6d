//! The command line of each component `apex up` starts: its binary, ports, state directory
//! and the environment that points it at the rest of the stack.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::bail;

use super::{Component, monitoring, replicas};
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
        Component::Traces => monitoring::traces_command(s, &dir)?,
        Component::Parser | Component::Extractor | Component::Embedder | Component::Writer => {
            service_command(c, s, &dir)?
        }
        Component::Worker => worker_command(s, state)?,
        Component::Gateway => gateway_command(s, state)?,
        Component::AlertReceiver => monitoring::receiver_command(s, &dir)?,
        Component::Alerts => monitoring::alertmanager_command(s, &dir)?,
        Component::Prometheus => monitoring::prometheus_command(s, state, &dir)?,
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

/// Where the worker's activities and the gateway's legacy path find the services (the
/// replica lists `apex up` keeps, read again every `refresh_secs`) and the shared blob
/// store.
fn service_addresses(cmd: &mut Command, prefix: &str, s: &StackSettings, state: &Path) {
    for stage in ["parser", "extractor", "embedder", "writer"] {
        cmd.env(
            format!("{prefix}__INGEST__{}_ADDR", stage.to_ascii_uppercase()),
            format!(
                "file://{}",
                replicas::endpoints_file(state, stage).display()
            ),
        );
    }
    cmd.env(
        format!("{prefix}__INGEST__REFRESH_SECS"),
        s.refresh_secs.to_string(),
    );
    cmd.env(format!("{prefix}__INGEST__BLOB_URL"), s.blob_dir());
    // Polling accounts' secrets (`apex sources secret`); the gateway's webhook secrets are
    // set where it starts.
    cmd.env(
        format!("{prefix}__INGEST__POLL_SECRETS_DIR"),
        s.secrets_dir().join("poll"),
    );
    // With `apex up --tls` the lists hold https:// addresses: trust the local CA and present
    // the local client certificate (the services demand one).
    if let Some(pki) = s.local_pki() {
        cmd.env(format!("{prefix}__INGEST__TLS__CA"), pki.ca())
            .env(format!("{prefix}__INGEST__TLS__CERT"), pki.client_cert())
            .env(format!("{prefix}__INGEST__TLS__KEY"), pki.client_key());
    }
}

/// Every process of the stack sends its spans to the trace viewer (unless `export_traces`
/// is off).
fn export_traces(cmd: &mut Command, prefix: &str, s: &StackSettings) {
    let endpoint = if s.export_traces {
        s.otlp_endpoint()
    } else {
        String::new()
    };
    cmd.env(format!("{prefix}__TELEMETRY__OTLP_ENDPOINT"), endpoint);
}

/// Search attributes registered on the dev server at start.
pub use apex_ingestion::workflows::{
    DEV_SERVER_DYNAMIC_CONFIG, DEV_SERVER_SQLITE_PRAGMAS, SEARCH_ATTRIBUTES,
};

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
    for value in DEV_SERVER_DYNAMIC_CONFIG {
        cmd.args(["--dynamic-config-value", value]);
    }
    for pragma in DEV_SERVER_SQLITE_PRAGMAS {
        cmd.args(["--sqlite-pragma", pragma]);
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
    if let Some(pki) = s.local_pki() {
        // Mutual TLS: the local server certificate, and only clients the local CA signed.
        cmd.env(format!("{prefix}__TLS__CERT"), pki.server_cert())
            .env(format!("{prefix}__TLS__KEY"), pki.server_key())
            .env(format!("{prefix}__TLS__CLIENT_CA"), pki.ca());
    }
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

fn worker_command(s: &StackSettings, state: &Path) -> anyhow::Result<Command> {
    let mut cmd = Command::new(sibling("apex-worker")?);
    // A Worker Deployment version (`apex-ingest.<build id>`): workflows stay on the version
    // they started on; `apex worker promote|rollback` moves new ones.
    cmd.env("APEX_WORKER__VERSIONING", "pinned")
        .env("APEX_WORKER__TEMPORAL__ADDRESS", s.temporal_address())
        .env("APEX_WORKER__LIVE_STATUS_REDIS_URL", s.redis_url())
        .env(
            "APEX_WORKER__METRICS_ADDR",
            format!("127.0.0.1:{}", s.worker_metrics_port),
        );
    service_addresses(&mut cmd, "APEX_WORKER", s, state);
    export_traces(&mut cmd, "APEX_WORKER", s);
    Ok(cmd)
}

fn gateway_command(s: &StackSettings, state: &Path) -> anyhow::Result<Command> {
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
        .env("APEX_GATEWAY__AUTH__DATABASE_URL", s.postgres_url())
        .env("APEX_GATEWAY__TELEMETRY__LOG_FORMAT", "json");
    service_addresses(&mut cmd, "APEX_GATEWAY", s, state);
    cmd.env(
        "APEX_GATEWAY__WEBHOOKS__SECRETS_DIR",
        s.secrets_dir().join("webhooks"),
    );
    export_traces(&mut cmd, "APEX_GATEWAY", s);
    Ok(cmd)
}
