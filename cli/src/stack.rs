//! The local stack: which components exist, how each starts, how each is probed, and the
//! `up` / `down` / `status` commands over them.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use apex_common::ports;

use crate::{
    probe::{self, ProbeResult},
    process::{self, Files},
    settings::StackSettings,
};

/// A component of the local stack, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Postgres,
    Redis,
    Graph,
    Vectors,
    Temporal,
    Parser,
    Extractor,
    Embedder,
    Writer,
    Worker,
    Gateway,
    Prometheus,
}

impl Component {
    pub const ALL: [Component; 12] = [
        Component::Postgres,
        Component::Redis,
        Component::Graph,
        Component::Vectors,
        Component::Temporal,
        Component::Parser,
        Component::Extractor,
        Component::Embedder,
        Component::Writer,
        Component::Worker,
        Component::Gateway,
        Component::Prometheus,
    ];

    /// The gRPC service's binary, port, `/metrics` port and health name.
    fn grpc_service(self, s: &StackSettings) -> Option<(&'static str, u16, u16, &'static str)> {
        match self {
            Self::Parser => Some((
                "apex-parser",
                s.parser_port,
                ports::PARSER.metrics,
                "apex.parser.v1.ParserService",
            )),
            Self::Extractor => Some((
                "apex-extractor",
                s.extractor_port,
                ports::EXTRACTOR.metrics,
                "apex.extractor.v1.ExtractorService",
            )),
            Self::Embedder => Some((
                "apex-embedder",
                s.embedder_port,
                ports::EMBEDDER.metrics,
                "apex.embedder.v1.EmbedderService",
            )),
            Self::Writer => Some((
                "apex-writer",
                s.writer_port,
                ports::WRITER.metrics,
                "apex.writer.v1.WriterService",
            )),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Graph => "graph",
            Self::Vectors => "vectors",
            Self::Temporal => "temporal",
            Self::Parser => "parser",
            Self::Extractor => "extractor",
            Self::Embedder => "embedder",
            Self::Writer => "writer",
            Self::Worker => "worker",
            Self::Gateway => "gateway",
            Self::Prometheus => "prometheus",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn endpoint(self, s: &StackSettings) -> String {
        match self {
            Self::Postgres => format!("127.0.0.1:{}", s.postgres_port),
            Self::Redis => format!("127.0.0.1:{}", s.redis_port),
            Self::Graph => format!("127.0.0.1:{} (bolt {})", s.graph_port, s.bolt_port),
            Self::Vectors => format!("http://127.0.0.1:{} (Qdrant gRPC)", s.vectors_port),
            Self::Temporal => format!("127.0.0.1:{} (UI {})", s.temporal_port, s.temporal_ui()),
            Self::Parser | Self::Extractor | Self::Embedder | Self::Writer => {
                let port = self.grpc_service(s).map_or(0, |g| g.1);
                format!("http://127.0.0.1:{port} (gRPC)")
            }
            Self::Worker => format!("http://127.0.0.1:{}/metrics", s.worker_metrics_port),
            Self::Gateway => format!("{} (HTTP API)", s.gateway_url()),
            Self::Prometheus => format!("http://127.0.0.1:{}", s.prometheus_port),
        }
    }

    /// Probes the component through its own protocol.
    pub async fn probe(self, s: &StackSettings) -> ProbeResult {
        match self {
            Self::Postgres => probe::postgres(&s.postgres_url()).await,
            Self::Redis => probe::redis(s.redis_port, false).await,
            Self::Graph => {
                let resp = probe::redis(s.graph_port, true).await?;
                let bolt = probe::bolt(s.bolt_port).await?;
                Ok(format!("{resp}; {bolt}"))
            }
            Self::Vectors => {
                probe::grpc_health(
                    &format!("http://127.0.0.1:{}", s.vectors_port),
                    "qdrant.Points",
                )
                .await
            }
            Self::Parser | Self::Extractor | Self::Embedder | Self::Writer => {
                let (_, port, _, name) = self.grpc_service(s).ok_or("not a gRPC service")?;
                probe::grpc_health(&format!("http://127.0.0.1:{port}"), name).await
            }
            // Liveness: the gateway serves only once it has reached Redis; its readiness
            // (`/readyz`) also depends on the writer and Temporal, which `status` shows
            // on their own lines.
            Self::Gateway => probe::http(&format!("{}/livez", s.gateway_url())).await,
            Self::Temporal => {
                let frontend = probe::temporal(&s.temporal_address()).await?;
                let ui = probe::http(&s.temporal_ui())
                    .await
                    .map_err(|e| format!("frontend up but UI {}: {e}", s.temporal_ui()))?;
                Ok(format!("{frontend}; UI {ui}"))
            }
            Self::Worker => {
                probe::http(&format!(
                    "http://127.0.0.1:{}/metrics",
                    s.worker_metrics_port
                ))
                .await
            }
            Self::Prometheus => {
                probe::http(&format!("http://127.0.0.1:{}/-/ready", s.prometheus_port)).await
            }
        }
    }

    fn files(self, state: &Path) -> Files {
        Files::new(state, self.name())
    }
}

/// Absolute state directory, created if needed.
pub fn state_dir(s: &StackSettings) -> anyhow::Result<PathBuf> {
    let state = s.state();
    fs::create_dir_all(&state).with_context(|| format!("cannot create {}", state.display()))?;
    Ok(state.canonicalize()?)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Directory of the newest installed PostgreSQL server binaries.
pub fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

/// PostgreSQL refuses to run as root, and its data directory must be reachable by the
/// `postgres` user, which a private checkout (mode 700) is not; as root the cluster lives
/// under /var/lib/apex instead of the state directory.
fn postgres_data(s: &StackSettings, state: &Path) -> PathBuf {
    if is_root() {
        PathBuf::from(format!("/var/lib/apex/postgres-{}", s.postgres_port))
    } else {
        state.join("postgres")
    }
}

/// The server log; beside the data directory when that lives outside the state directory,
/// since the `postgres` user cannot write into a private checkout either.
fn postgres_log(s: &StackSettings, state: &Path) -> PathBuf {
    if is_root() {
        PathBuf::from(format!("/var/lib/apex/postgres-{}.log", s.postgres_port))
    } else {
        Files::new(state, "postgres").log
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut cmd = if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    // The caller's directory may be unreadable for the postgres user.
    cmd.current_dir("/");
    cmd
}

fn run_checked(mut cmd: Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn start_postgres(s: &StackSettings, state: &Path) -> anyhow::Result<()> {
    let bin = postgres_bin().context("PostgreSQL is not installed: run deploy/local/bootstrap")?;
    let data = postgres_data(s, state);
    if !data.join("PG_VERSION").exists() {
        fs::create_dir_all(&data)?;
        if is_root() {
            run_checked(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"])
                        .arg(data.parent().unwrap_or(&data));
                    c
                },
                "chown",
            )?;
        }
        let mut init = as_postgres(&bin.join("initdb"));
        init.arg("-D").arg(&data).args([
            "--username=postgres",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]);
        run_checked(init, "initdb")?;
    }
    let log = postgres_log(s, state);
    fs::create_dir_all(log.parent().unwrap_or(state))?;
    if is_root() {
        // The server (running as postgres) appends to this log.
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let _ = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&log)
            .status();
    }
    let mut ctl = as_postgres(&bin.join("pg_ctl"));
    ctl.arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            s.postgres_port,
            data.display()
        ));
    ctl.args(["-w", "-t", "60", "start"]);
    run_checked(ctl, "pg_ctl start")
        .map(|_| ())
        .with_context(|| process::tail(&log, 20))
}

fn ensure_postgres_role(s: &StackSettings, state: &Path) -> anyhow::Result<()> {
    let bin = postgres_bin().context("PostgreSQL is not installed")?;
    let data = postgres_data(s, state);
    let psql = |sql: &str| {
        let mut c = as_postgres(&bin.join("psql"));
        c.arg("-h")
            .arg(&data)
            .args(["-p", &s.postgres_port.to_string(), "-U", "postgres"]);
        c.args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc", sql]);
        run_checked(c, "psql")
    };
    let user = &s.postgres_user;
    let password = s.postgres_password.replace('\'', "''");
    if psql(&format!("SELECT 1 FROM pg_roles WHERE rolname = '{user}'"))?.trim() != "1" {
        psql(&format!(
            "CREATE ROLE \"{user}\" LOGIN CREATEDB PASSWORD '{password}'"
        ))?;
    } else {
        psql(&format!("ALTER ROLE \"{user}\" PASSWORD '{password}'"))?;
    }
    let db = &s.postgres_db;
    if psql(&format!("SELECT 1 FROM pg_database WHERE datname = '{db}'"))?.trim() != "1" {
        psql(&format!("CREATE DATABASE \"{db}\" OWNER \"{user}\""))?;
    }
    Ok(())
}

fn stop_postgres(s: &StackSettings, state: &Path) -> anyhow::Result<bool> {
    let Some(bin) = postgres_bin() else {
        return Ok(false);
    };
    let data = postgres_data(s, state);
    if !data.join("postmaster.pid").exists() {
        return Ok(false);
    }
    let mut ctl = as_postgres(&bin.join("pg_ctl"));
    ctl.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
    run_checked(ctl, "pg_ctl stop")?;
    Ok(true)
}

fn command_for(c: Component, s: &StackSettings, state: &Path) -> anyhow::Result<Command> {
    let dir = state.join(c.name());
    fs::create_dir_all(&dir)?;
    let cmd = match c {
        Component::Postgres => bail!("postgres is started by pg_ctl"),
        Component::Redis => {
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
                .arg(&dir);
            cmd
        }
        Component::Graph => {
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
                .arg(&dir)
                .arg("--loadmodule")
                .arg(fdb.join("falkordb.so"))
                .args(["BOLT_PORT", &s.bolt_port.to_string()]);
            cmd
        }
        Component::Temporal => {
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
            cmd
        }
        Component::Vectors => {
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
            .env("APEX_VECTORD__DATA_DIR", &dir)
            .env("APEX_VECTORD__TELEMETRY__LOG_FORMAT", "json");
            cmd
        }
        Component::Parser | Component::Extractor | Component::Embedder | Component::Writer => {
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
            cmd
        }
        Component::Worker => {
            let mut cmd = Command::new(sibling("apex-worker")?);
            cmd.env("APEX_WORKER__TEMPORAL__ADDRESS", s.temporal_address())
                .env(
                    "APEX_WORKER__METRICS_ADDR",
                    format!("127.0.0.1:{}", s.worker_metrics_port),
                );
            service_addresses(&mut cmd, "APEX_WORKER", s);
            cmd
        }
        Component::Gateway => {
            let mut cmd = Command::new(sibling("apex-gateway")?);
            cmd.env("APEX_GATEWAY__TEMPORAL__ADDRESS", s.temporal_address())
                .env(
                    "APEX_GATEWAY__LISTEN_ADDR",
                    format!("127.0.0.1:{}", s.gateway_port),
                )
                .env("APEX_GATEWAY__REDIS_URL", s.redis_url())
                .env("APEX_GATEWAY__TELEMETRY__LOG_FORMAT", "json");
            service_addresses(&mut cmd, "APEX_GATEWAY", s);
            cmd
        }
        Component::Prometheus => {
            let config = dir.join("prometheus.yml");
            fs::write(&config, prometheus_config(s))?;
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
            cmd
        }
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

/// Search attributes registered on the dev server at start.
pub use apex_ingestion::workflows::SEARCH_ATTRIBUTES;

fn prometheus_config(s: &StackSettings) -> String {
    format!(
        "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: temporal-server\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n  - job_name: apex-worker\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n  - job_name: apex-services\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}', '127.0.0.1:{}', '127.0.0.1:{}']\n  - job_name: apex-gateway\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        s.temporal_metrics_port,
        s.worker_metrics_port,
        ports::PARSER.metrics,
        ports::EXTRACTOR.metrics,
        ports::EMBEDDER.metrics,
        ports::WRITER.metrics,
        ports::GATEWAY_METRICS,
    )
}

async fn wait_healthy(c: Component, s: &StackSettings, files: &Files) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(s.start_timeout_secs);
    let mut last = String::new();
    while Instant::now() < deadline {
        match c.probe(s).await {
            Ok(detail) => return Ok(detail),
            Err(e) => last = e,
        }
        if c != Component::Postgres && files.running_pid().is_none() {
            bail!(
                "{} exited during start: {}\n{}",
                c.name(),
                last,
                process::tail(&files.log, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "{} not healthy after {}s: {last}\n{}",
        c.name(),
        s.start_timeout_secs,
        process::tail(&files.log, 20)
    )
}

/// Starts every component (or only `only`) that is not already healthy.
pub async fn up(s: &StackSettings, only: &[Component]) -> anyhow::Result<()> {
    let state = state_dir(s)?;
    for c in Component::ALL {
        if !only.is_empty() && !only.contains(&c) {
            continue;
        }
        let files = c.files(&state);
        if let Ok(detail) = c.probe(s).await {
            if c == Component::Postgres {
                ensure_postgres_role(s, &state)?;
            }
            println!(
                "  {:<11} already running   {}  {detail}",
                c.name(),
                c.endpoint(s)
            );
            continue;
        }
        match c {
            Component::Postgres => {
                start_postgres(s, &state)?;
                ensure_postgres_role(s, &state)?;
            }
            _ => {
                process::spawn(command_for(c, s, &state)?, &files)?;
            }
        }
        let detail = wait_healthy(c, s, &files).await?;
        println!(
            "  {:<11} started           {}  {detail}",
            c.name(),
            c.endpoint(s)
        );
    }
    Ok(())
}

/// Stops what `up` started (or only `only`), in reverse order.
pub fn down(s: &StackSettings, only: &[Component]) -> anyhow::Result<()> {
    let state = state_dir(s)?;
    for c in Component::ALL.into_iter().rev() {
        if !only.is_empty() && !only.contains(&c) {
            continue;
        }
        let stopped = match c {
            Component::Postgres => stop_postgres(s, &state)?,
            // The dev server persists on every write; a generous grace lets it close cleanly.
            _ => process::stop(&c.files(&state), Duration::from_secs(20))?,
        };
        println!(
            "  {:<11} {}",
            c.name(),
            if stopped {
                "stopped"
            } else {
                "was not running"
            }
        );
    }
    Ok(())
}

/// Prints one line per component; returns whether all are healthy.
pub async fn status(s: &StackSettings) -> anyhow::Result<bool> {
    let state = state_dir(s)?;
    let mut all = true;
    println!(
        "  {:<11} {:<8} {:<8} {:<46} detail",
        "component", "state", "pid", "endpoint"
    );
    for c in Component::ALL {
        let pid = c
            .files(&state)
            .running_pid()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let (state_word, detail) = match c.probe(s).await {
            Ok(d) => ("healthy", d),
            Err(e) => {
                all = false;
                ("down", e)
            }
        };
        println!(
            "  {:<11} {:<8} {:<8} {:<46} {detail}",
            c.name(),
            state_word,
            pid,
            c.endpoint(s)
        );
    }
    Ok(all)
}

/// The log file of a component.
pub fn log_path(s: &StackSettings, c: Component) -> anyhow::Result<PathBuf> {
    let state = state_dir(s)?;
    Ok(match c {
        Component::Postgres => postgres_log(s, &state),
        _ => c.files(&state).log,
    })
}
