//! Runs of documents through the local stack's gateway at a given scale, for the replica
//! tests and `make bench-scale`: `apex up --scale`, each replica's own request counter (from
//! its `/metrics`), SIGKILL of one replica by the pid the stack recorded, and a run of
//! uploads followed to the end with the stores checked.

use std::process::Command;
use std::time::{Duration, Instant};

use apex_common::stack::StackSettings;
use tokio::task::JoinSet;

use crate::chaos::{
    check::{self, Verdict},
    docs::{self, Doc},
};

/// Runs `apex <args>` (the workspace's own binary) against the stack; its output, or an
/// error with it.
pub fn apex(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(crate::bins::bin("apex")).args(args).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        out.status.success(),
        "apex {} failed: {text}",
        args.join(" ")
    );
    Ok(text)
}

/// The name `apex status` gives replica `replica` (from 1) of `stage`.
pub fn replica_name(stage: &str, replica: u16) -> String {
    if replica <= 1 {
        stage.to_owned()
    } else {
        format!("{stage}-{replica}")
    }
}

/// The pid the stack recorded for a replica, if that process is alive.
pub fn pid(stack: &StackSettings, name: &str) -> Option<i32> {
    let text = std::fs::read_to_string(stack.state().join("run").join(format!("{name}.pid")));
    let pid: i32 = text.ok()?.trim().parse().ok()?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
        .is_ok()
        .then_some(pid)
}

/// SIGKILLs a replica; its pid.
pub fn kill(stack: &StackSettings, name: &str) -> anyhow::Result<i32> {
    let pid = pid(stack, name).ok_or_else(|| anyhow::anyhow!("{name} is not running"))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    Ok(pid)
}

/// The `/metrics` port of replica `replica` of a gRPC stage.
pub fn metrics_port(stack: &StackSettings, stage: &str, replica: u16) -> u16 {
    let s = stack.for_replica(stage, replica);
    match stage {
        "parser" => s.parser_metrics_port,
        "extractor" => s.extractor_metrics_port,
        "embedder" => s.embedder_metrics_port,
        "writer" => s.writer_metrics_port,
        _ => s.worker_metrics_port,
    }
}

/// Calls of `rpc_service` a process has served (`apex_rpc_server_requests_total`, every
/// method and code), read from its `/metrics` on `port`.
pub async fn served(port: u16, rpc_service: &str) -> anyhow::Result<u64> {
    metric(
        port,
        "apex_rpc_server_requests_total",
        &format!("rpc_service=\"{rpc_service}\""),
    )
    .await
}

/// The sum of every series of counter `name` whose labels contain `label` (empty: all),
/// read from the `/metrics` on `port`.
pub async fn metric(port: u16, name: &str, label: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let series = format!("{name}{{");
    Ok(text
        .lines()
        .filter(|l| l.starts_with(&series) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// A run's documents and what became of them.
#[derive(Debug)]
pub struct Run {
    pub docs: Vec<Doc>,
    /// Uploads the gateway never accepted, with why.
    pub refused: Vec<String>,
    pub verdict: Verdict,
    /// From the first upload to the last document seen final.
    pub elapsed: Duration,
    /// Per document, from its upload's acceptance to its status first seen final (the
    /// status is polled every half second or so).
    pub latencies: Vec<Duration>,
}

impl Run {
    pub fn docs_per_sec(&self) -> f64 {
        self.docs.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0–1) of the latencies.
    pub fn latency(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        if l.is_empty() {
            return Duration::ZERO;
        }
        let i = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1;
        l[i]
    }
}

/// Uploads `count` new documents (source `source`) through the gateway, calls `mid_run`
/// once `mid_after` of them are final, follows every one to its end (at most `give_up`),
/// and checks the stores.
pub async fn ingest(
    stack: &StackSettings,
    source: &str,
    count: usize,
    mid_after: usize,
    mut mid_run: impl FnMut() -> anyhow::Result<()>,
    give_up: Duration,
) -> anyhow::Result<Run> {
    let start = Instant::now();
    let deadline = start + give_up;
    let http = apex_common::api_key::authorized(
        reqwest::Client::builder(),
        apex_common::api_key::find(stack).as_deref(),
    )
    .timeout(Duration::from_secs(10))
    .build()?;
    let gateway = stack.gateway_url();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut uploads = JoinSet::new();
    for i in 0..count {
        let (http, gateway, source) = (http.clone(), gateway.clone(), source.to_owned());
        let external_id = format!("{source}-{}-{i}", &run_id[..8]);
        uploads.spawn(async move {
            let r = docs::upload(&http, &gateway, &source, &external_id, deadline).await;
            (external_id, r, Instant::now())
        });
    }
    let mut accepted = Vec::new();
    let mut accepted_at = Vec::new();
    let mut refused = Vec::new();
    while let Some(joined) = uploads.join_next().await {
        match joined? {
            (_, Ok(doc), at) => {
                accepted.push(doc);
                accepted_at.push(at);
            }
            (id, Err(e), _) => refused.push(format!("{id} was never accepted: {e}")),
        }
    }
    let mut called = false;
    loop {
        let now = Instant::now();
        docs::settle(
            &http,
            &gateway,
            &mut accepted,
            now + Duration::from_millis(1),
        )
        .await;
        let finished = accepted
            .iter()
            .filter(|d| apex_ingestion::status::is_final(&d.status))
            .count();
        if !called && finished >= mid_after {
            mid_run()?;
            called = true;
        }
        if (called && finished == accepted.len()) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ends: Vec<Instant> = accepted.iter().filter_map(|d| d.ended).collect();
    let elapsed = ends
        .iter()
        .max()
        .map_or(give_up, |e| e.saturating_duration_since(start));
    let latencies = accepted
        .iter()
        .zip(&accepted_at)
        .filter_map(|(d, at)| Some(d.ended?.saturating_duration_since(*at)))
        .collect();
    let writer = apex_writer::connect(&check::writer_settings(stack)).await?;
    let verdict = check::check(&writer, &accepted, &refused).await;
    Ok(Run {
        docs: accepted,
        refused,
        verdict,
        elapsed,
        latencies,
    })
}
