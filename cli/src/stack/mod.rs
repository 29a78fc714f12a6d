//! The local stack: which components exist, how each starts, how each is probed, and the
//! `up` / `down` / `status` commands over them.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{
    probe::{self, ProbeResult},
    process::{self, Files},
    settings::StackSettings,
};

mod commands;
mod monitoring;
mod postgres;
pub mod replicas;

pub use commands::SEARCH_ATTRIBUTES;
use commands::command_for;
pub use monitoring::receiver_dir;
pub use postgres::postgres_bin;
use postgres::{ensure_postgres_role, postgres_log, start_postgres, stop_postgres};
use replicas::Instance;

/// A component of the local stack, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Postgres,
    Redis,
    Graph,
    Vectors,
    Traces,
    Temporal,
    Parser,
    Extractor,
    Embedder,
    Writer,
    Worker,
    Gateway,
    AlertReceiver,
    Alerts,
    Prometheus,
}

impl Component {
    pub const ALL: [Component; 15] = [
        Component::Postgres,
        Component::Redis,
        Component::Graph,
        Component::Vectors,
        Component::Traces,
        Component::Temporal,
        Component::Parser,
        Component::Extractor,
        Component::Embedder,
        Component::Writer,
        Component::Worker,
        Component::Gateway,
        Component::AlertReceiver,
        Component::Alerts,
        Component::Prometheus,
    ];

    /// The gRPC service's binary, port, `/metrics` port and health name.
    fn grpc_service(self, s: &StackSettings) -> Option<(&'static str, u16, u16, &'static str)> {
        match self {
            Self::Parser => Some((
                "apex-parser",
                s.parser_port,
                s.parser_metrics_port,
                "apex.parser.v1.ParserService",
            )),
            Self::Extractor => Some((
                "apex-extractor",
                s.extractor_port,
                s.extractor_metrics_port,
                "apex.extractor.v1.ExtractorService",
            )),
            Self::Embedder => Some((
                "apex-embedder",
                s.embedder_port,
                s.embedder_metrics_port,
                "apex.embedder.v1.EmbedderService",
            )),
            Self::Writer => Some((
                "apex-writer",
                s.writer_port,
                s.writer_metrics_port,
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
            Self::Traces => "traces",
            Self::Temporal => "temporal",
            Self::Parser => "parser",
            Self::Extractor => "extractor",
            Self::Embedder => "embedder",
            Self::Writer => "writer",
            Self::Worker => "worker",
            Self::Gateway => "gateway",
            Self::AlertReceiver => "alert-receiver",
            Self::Alerts => "alertmanager",
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
            Self::Traces => format!("{} (OTLP {})", s.traces_url(), s.otlp_endpoint()),
            Self::Temporal => format!("127.0.0.1:{} (UI {})", s.temporal_port, s.temporal_ui()),
            Self::Parser | Self::Extractor | Self::Embedder | Self::Writer => {
                let port = self.grpc_service(s).map_or(0, |g| g.1);
                let tls = if s.tls { ", mutual TLS" } else { "" };
                format!("{}://127.0.0.1:{port} (gRPC{tls})", s.grpc_scheme())
            }
            Self::Worker => format!("http://127.0.0.1:{}/metrics", s.worker_metrics_port),
            Self::Gateway => format!("{} (HTTP API)", s.gateway_url()),
            Self::AlertReceiver => format!("http://127.0.0.1:{}/alerts", s.alert_receiver_port),
            Self::Alerts => s.alertmanager_url(),
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
                    None,
                )
                .await
            }
            // Ready: its database answers; the OTLP receiver listens.
            Self::Traces => {
                let ready = probe::http(&format!("{}/readyz", s.traces_url())).await?;
                probe::tcp(s.otlp_port).await?;
                Ok(format!("{ready}; OTLP listening"))
            }
            Self::Parser | Self::Extractor | Self::Embedder | Self::Writer => {
                let (_, port, _, name) = self.grpc_service(s).ok_or("not a gRPC service")?;
                let tls = tls_material(s)?;
                let url = format!("{}://127.0.0.1:{port}", s.grpc_scheme());
                probe::grpc_health(&url, name, tls.as_ref()).await
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
            Self::AlertReceiver => {
                probe::http(&format!(
                    "http://127.0.0.1:{}/healthz",
                    s.alert_receiver_port
                ))
                .await
            }
            Self::Alerts => probe::http(&format!("{}/-/ready", s.alertmanager_url())).await,
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

/// The marker `apex up --tls` leaves in the state directory.
fn tls_marker(s: &StackSettings) -> PathBuf {
    s.tls_dir().join("on")
}

/// The settings with TLS on when `apex up --tls` said so earlier.
pub fn remembered_tls(mut s: StackSettings) -> StackSettings {
    if tls_marker(&s).is_file() {
        s.tls = true;
    }
    s
}

/// What the CLI's own gRPC calls trust and present when TLS is on: the local CA and the
/// client certificate.
pub fn tls_material(s: &StackSettings) -> Result<Option<apex_common::tls::ClientMaterial>, String> {
    let Some(pki) = s.local_pki() else {
        return Ok(None);
    };
    let settings = apex_common::tls::ClientTlsSettings {
        reload_secs: 0,
        ..pki.client_settings()
    };
    apex_common::tls::ClientTls::load(&settings)
        .map(|t| Some(t.material().as_ref().clone()))
        .map_err(|e| format!("local TLS (run `apex up --tls` to make it): {e}"))
}

/// The components whose gRPC TLS follows the stack's: the four services and their clients.
const MESH: [Component; 6] = [
    Component::Parser,
    Component::Extractor,
    Component::Embedder,
    Component::Writer,
    Component::Worker,
    Component::Gateway,
];

/// Turns TLS on or off for good (until switched again): a running mesh is stopped first,
/// since its processes were started the other way; the local CA is made when missing.
fn switch_tls(s: &mut StackSettings, on: Option<bool>) -> anyhow::Result<()> {
    if let Some(on) = on
        && on != s.tls
    {
        println!(
            "  switching the mesh's gRPC to {}: stopping the mesh first",
            if on { "mutual TLS" } else { "plaintext" }
        );
        down(s, &MESH)?;
        s.tls = on;
        fs::create_dir_all(s.tls_dir())?;
        if on {
            fs::write(tls_marker(s), "apex up --tls\n")?;
        } else if tls_marker(s).is_file() {
            fs::remove_file(tls_marker(s))?;
        }
    }
    if let Some(pki) = s.local_pki() {
        apex_common::tls::local::LocalPki::ensure(&pki.dir)?;
        println!("  tls         local CA {}", pki.ca().display());
    }
    Ok(())
}

/// Starts every component (or only `only`) that is not already healthy, with as many
/// replicas of each stage as the scale says; `scale` (`embedder=3,parser=2`) changes the
/// scale first: replicas past it are stopped (after the clients' lists no longer name
/// them), missing ones started. `tls` switches the mesh's gRPC to mutual TLS or back.
pub async fn up(
    s: &StackSettings,
    only: &[Component],
    scale: Option<&str>,
    tls: Option<bool>,
) -> anyhow::Result<()> {
    let mut s = s.clone();
    let s = &mut s;
    switch_tls(s, tls)?;
    let s = &*s;
    let state = state_dir(s)?;
    let mut wanted = replicas::load(s, &state);
    if let Some(spec) = scale {
        wanted = wanted.with(spec).map_err(anyhow::Error::msg)?;
        let problems = apex_common::Settings::validate(&StackSettings {
            scale: wanted,
            ..s.clone()
        });
        if !problems.is_empty() {
            bail!("cannot scale to {spec}: {}", problems.join("; "));
        }
        replicas::save(&state, &wanted)?;
    }
    replicas::write_lists(s, &state, &wanted)?;
    for c in Component::ALL {
        for r in replicas::replicas(c, &wanted) + 1..=apex_common::stack::Scale::MAX {
            let i = Instance {
                component: c,
                replica: r,
            };
            if Files::new(&state, &i.name()).running_pid().is_some() {
                process::stop(&Files::new(&state, &i.name()), Duration::from_secs(20))?;
                println!("  {:<11} stopped (scaled down)", i.name());
            }
        }
    }
    for c in Component::ALL {
        if !only.is_empty() && !only.contains(&c) {
            continue;
        }
        for r in 1..=replicas::replicas(c, &wanted) {
            start(
                Instance {
                    component: c,
                    replica: r,
                },
                s,
                &state,
            )
            .await?;
        }
    }
    if only.is_empty() || only.contains(&Component::Gateway) {
        crate::keys::ensure_local_admin(s).await?;
    }
    Ok(())
}

/// Starts one replica of a component unless it is already healthy.
async fn start(i: Instance, s: &StackSettings, state: &Path) -> anyhow::Result<()> {
    let c = i.component;
    let rs = i.settings(s);
    let files = Files::new(state, &i.name());
    if let Ok(detail) = c.probe(&rs).await {
        if c == Component::Postgres {
            ensure_postgres_role(s, state)?;
        }
        println!(
            "  {:<11} already running   {}  {detail}",
            i.name(),
            c.endpoint(&rs)
        );
        return Ok(());
    }
    match c {
        Component::Postgres => {
            start_postgres(s, state)?;
            ensure_postgres_role(s, state)?;
        }
        _ => {
            process::spawn(command_for(c, &rs, state)?, &files)?;
        }
    }
    let detail = wait_healthy(c, &rs, &files).await?;
    println!(
        "  {:<11} started           {}  {detail}",
        i.name(),
        c.endpoint(&rs)
    );
    Ok(())
}

/// Stops what `up` started (or only `only`), every replica, in reverse order.
pub fn down(s: &StackSettings, only: &[Component]) -> anyhow::Result<()> {
    let state = state_dir(s)?;
    for c in Component::ALL.into_iter().rev() {
        if !only.is_empty() && !only.contains(&c) {
            continue;
        }
        let last = if s.scale.of(c.name()).is_some() {
            apex_common::stack::Scale::MAX
        } else {
            1
        };
        for r in (1..=last).rev() {
            let i = Instance {
                component: c,
                replica: r,
            };
            let stopped = match c {
                Component::Postgres => stop_postgres(s, &state)?,
                // The dev server persists on every write; a generous grace lets it close
                // cleanly.
                _ => process::stop(&Files::new(&state, &i.name()), Duration::from_secs(20))?,
            };
            if r == 1 || stopped {
                println!(
                    "  {:<11} {}",
                    i.name(),
                    if stopped {
                        "stopped"
                    } else {
                        "was not running"
                    }
                );
            }
        }
    }
    Ok(())
}

/// Prints one line per component replica; returns whether all are healthy.
pub async fn status(s: &StackSettings) -> anyhow::Result<bool> {
    let state = state_dir(s)?;
    let scale = replicas::load(s, &state);
    let mut all = true;
    println!(
        "  {:<11} {:<8} {:<8} {:<46} detail",
        "component", "state", "pid", "endpoint"
    );
    for c in Component::ALL {
        for r in 1..=replicas::replicas(c, &scale) {
            let i = Instance {
                component: c,
                replica: r,
            };
            let rs = i.settings(s);
            let pid = Files::new(&state, &i.name())
                .running_pid()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into());
            let (state_word, detail) = match c.probe(&rs).await {
                Ok(d) => ("healthy", d),
                Err(e) => {
                    all = false;
                    ("down", e)
                }
            };
            println!(
                "  {:<11} {:<8} {:<8} {:<46} {detail}",
                i.name(),
                state_word,
                pid,
                c.endpoint(&rs)
            );
        }
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
