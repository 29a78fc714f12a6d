//! The chaos suite: documents through the Temporal path while one dependency at a time (each
//! service, each store, Temporal, the gateway) is taken away for a while, then a check with
//! the stores' own clients that every document completed exactly once and the four stores
//! agree. `make chaos` runs it with long outages (`apex-chaos`); `make test` runs a short
//! round per dependency (the e2e test `chaos`).
//!
//! A round: half the documents are uploaded, the target is stopped (`apex down`) or killed
//! (SIGKILL), the other half is uploaded while it is away (a refused upload is sent again,
//! as `apex ingest` does), the target is brought back (`apex up`) after the outage, and the
//! round waits for every document to end. The time from the target's return to the last
//! document's end is the recovery time.

pub mod check;
pub mod docs;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use apex_common::stack::StackSettings;
use tokio::task::JoinSet;

pub use check::Verdict;
pub use docs::Doc;

/// Everything a round can take away, in the order the suite takes them.
pub const TARGETS: [&str; 11] = [
    "parser",
    "extractor",
    "embedder",
    "writer",
    "worker",
    "gateway",
    "temporal",
    "postgres",
    "redis",
    "graph",
    "vectors",
];

/// How a target is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `apex down`: a clean stop (SIGTERM, or `pg_ctl stop`).
    Stop,
    /// SIGKILL of its process (PostgreSQL, which has no pid file of the stack's, is stopped).
    Kill,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Stop => "stop",
            How::Kill => "kill",
        }
    }
}

/// A chaos run.
#[derive(Debug, Clone)]
pub struct Config {
    pub stack: StackSettings,
    /// The `apex` CLI, which starts and stops the stack's pieces.
    pub apex: PathBuf,
    pub targets: Vec<String>,
    pub away: Duration,
    pub documents: usize,
    pub how: How,
    /// How long the documents may take to end once the target is back.
    pub settle: Duration,
    /// Makes this run's documents its own (external ids, source).
    pub run_id: String,
}

/// One round's outcome.
#[derive(Debug, Clone)]
pub struct Round {
    pub target: String,
    pub how: How,
    pub away: Duration,
    pub documents: usize,
    pub verdict: Verdict,
    /// From the target's return to the last document's end; `None` if some never ended.
    pub recovered: Option<Duration>,
}

/// Runs `apex <args>`; an error with its output when it fails.
fn apex(config: &Config, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(&config.apex).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "apex {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Takes `target` away: SIGKILL of the pid the stack recorded, or `apex down`.
fn take_away(config: &Config, target: &str) -> anyhow::Result<()> {
    if config.how == How::Kill {
        let pid_file = config
            .stack
            .state()
            .join("run")
            .join(format!("{target}.pid"));
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            use nix::sys::signal::{Signal, kill};
            kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)?;
            return Ok(());
        }
    }
    apex(config, &["down", target])
}

/// Runs every round in turn; `progress` hears what happens.
pub async fn run(config: &Config, mut progress: impl FnMut(&str)) -> anyhow::Result<Vec<Round>> {
    // Every document on the Temporal path (the legacy path is not built to wait out
    // outages); the rollout as it was afterwards, even when a round fails.
    use apex_ingestion::rollout::{ROLLOUT_KEY, Rollout};
    let rollout = Rollout::connect(&config.stack.redis_url(), ROLLOUT_KEY).await?;
    let before = rollout.get().await?;
    rollout.set(100).await?;
    let rounds = rounds(config, &mut progress).await;
    // A new connection: the first one may have lived through a restart of Redis.
    let rollout = Rollout::connect(&config.stack.redis_url(), ROLLOUT_KEY).await?;
    let restored = match before {
        Some(p) => rollout.set(p).await,
        None => rollout.clear().await,
    };
    let rounds = rounds?;
    restored?;
    Ok(rounds)
}

async fn rounds(config: &Config, progress: &mut impl FnMut(&str)) -> anyhow::Result<Vec<Round>> {
    let mut rounds = Vec::new();
    for target in &config.targets {
        progress(&format!(
            "{target}: {} for {} s, {} documents",
            config.how.as_str(),
            config.away.as_secs(),
            config.documents
        ));
        let r = round(config, target).await?;
        progress(&format!("{target}: {}", line(&r)));
        rounds.push(r);
    }
    Ok(rounds)
}

type Uploads = JoinSet<(String, Result<Doc, String>)>;

fn spawn_uploads(
    config: &Config,
    target: &str,
    range: std::ops::Range<usize>,
    give_up: Instant,
    set: &mut Uploads,
) {
    let http = reqwest::Client::new();
    let gateway = config.stack.gateway_url();
    let source = format!("chaos-{}", config.run_id);
    for i in range {
        let (http, gateway, source) = (http.clone(), gateway.clone(), source.clone());
        let external_id = format!("{}-{target}-{i}", config.run_id);
        set.spawn(async move {
            let r = docs::upload(&http, &gateway, &source, &external_id, give_up).await;
            (external_id, r)
        });
    }
}

async fn round(config: &Config, target: &str) -> anyhow::Result<Round> {
    let give_up = Instant::now() + config.away + config.settle;
    let half = config.documents / 2;
    let mut uploads = JoinSet::new();
    spawn_uploads(config, target, 0..half, give_up, &mut uploads);
    take_away(config, target)?;
    spawn_uploads(
        config,
        target,
        half..config.documents,
        give_up,
        &mut uploads,
    );
    // The outage itself: nothing to wait for but the clock.
    tokio::time::sleep(config.away).await;
    apex(config, &["up", target])?;
    let back = Instant::now();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    while let Some(joined) = uploads.join_next().await {
        match joined? {
            (_, Ok(doc)) => accepted.push(doc),
            (id, Err(e)) => refused.push(format!("{id} was never accepted: {e}")),
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    docs::settle(
        &http,
        &config.stack.gateway_url(),
        &mut accepted,
        back + config.settle,
    )
    .await;
    let ended = accepted
        .iter()
        .all(|d| apex_ingestion::status::is_final(&d.status));
    let recovered = ended.then(|| back.elapsed());
    // Connections of its own, opened after the outage: a client that lived through the
    // store's restart is not what is being checked.
    let writer = apex_writer::connect(&check::writer_settings(&config.stack)).await?;
    let verdict = check::check(&writer, &accepted, &refused).await;
    Ok(Round {
        target: target.to_owned(),
        how: config.how,
        away: config.away,
        documents: config.documents,
        verdict,
        recovered,
    })
}

/// One round as a line of the report's table.
pub fn line(r: &Round) -> String {
    let v = &r.verdict;
    format!(
        "| {} | {} | {} s | {} | {} | {} | {} | {} | {} | {} |",
        r.target,
        r.how.as_str(),
        r.away.as_secs(),
        r.documents,
        v.completed,
        v.failed,
        v.lost,
        v.duplicated,
        v.disagree,
        r.recovered.map_or_else(
            || "never".to_owned(),
            |d| format!("{:.1} s", d.as_secs_f64())
        ),
    )
}

/// The report: a Markdown table, one line per round, and every problem under it.
pub fn report(rounds: &[Round]) -> String {
    let mut out = String::from(
        "| taken away | how | for | documents | completed | failed | lost | duplicated | stores disagree | recovered after |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rounds {
        out.push_str(&line(r));
        out.push('\n');
    }
    for r in rounds {
        for p in &r.verdict.problems {
            out.push_str(&format!("- {}: {p}\n", r.target));
        }
    }
    out
}
