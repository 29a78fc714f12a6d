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
//! document's end is the recovery time; the documents that ended after the return over that
//! time are the drain rate. A first round with nothing taken away gives the normal rate: the
//! same number of documents over the time from their upload to the last one's end, on the
//! same stack, to compare it with.

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

/// The first round's target: nothing is taken away, which gives the normal rate.
pub const BASELINE: &str = "nothing";

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
    /// Documents per second: those that ended after the return over the time from the return
    /// to the last end; `None` when none did.
    pub drain: Option<f64>,
}

/// Completions per second since `since`: the ends at or after it over the time from `since`
/// to the last of them; `None` when there is none, or no time passed.
pub fn rate(since: Instant, ends: impl IntoIterator<Item = Instant>) -> Option<f64> {
    let after: Vec<Instant> = ends.into_iter().filter(|e| *e >= since).collect();
    let span = after.iter().max()?.duration_since(since).as_secs_f64();
    (span > 0.0).then(|| after.len() as f64 / span)
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

/// The baseline round first, then one per target.
async fn rounds(config: &Config, progress: &mut impl FnMut(&str)) -> anyhow::Result<Vec<Round>> {
    let mut rounds = Vec::new();
    progress(&format!(
        "{BASELINE} taken away (the normal rate), {} documents",
        config.documents
    ));
    let baseline = round(config, BASELINE).await?;
    progress(&format!("{BASELINE}: {}", line(&baseline, None)));
    let normal = baseline.drain;
    rounds.push(baseline);
    for target in &config.targets {
        progress(&format!(
            "{target}: {} for {} s, {} documents",
            config.how.as_str(),
            config.away.as_secs(),
            config.documents
        ));
        let r = round(config, target).await?;
        progress(&format!("{target}: {}", line(&r, normal)));
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
    let http = gateway_http(&config.stack).build().expect("client");
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

/// One round; [`BASELINE`] takes nothing away, and its "return" is the first upload.
async fn round(config: &Config, target: &str) -> anyhow::Result<Round> {
    let outage = target != BASELINE;
    let away = if outage { config.away } else { Duration::ZERO };
    let give_up = Instant::now() + away + config.settle;
    let half = config.documents / 2;
    let mut uploads = JoinSet::new();
    let start = Instant::now();
    spawn_uploads(config, target, 0..half, give_up, &mut uploads);
    if outage {
        take_away(config, target)?;
    }
    spawn_uploads(
        config,
        target,
        half..config.documents,
        give_up,
        &mut uploads,
    );
    let back = if outage {
        // The outage itself: nothing to wait for but the clock.
        tokio::time::sleep(away).await;
        apex(config, &["up", target])?;
        Instant::now()
    } else {
        start
    };
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    while let Some(joined) = uploads.join_next().await {
        match joined? {
            (_, Ok(doc)) => accepted.push(doc),
            (id, Err(e)) => refused.push(format!("{id} was never accepted: {e}")),
        }
    }
    let http = gateway_http(&config.stack)
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
    let ends: Vec<Instant> = accepted.iter().filter_map(|d| d.ended).collect();
    let last_end = ends.iter().max().copied().unwrap_or(back);
    let recovered = ended.then(|| last_end.saturating_duration_since(back));
    let drain = rate(back, ends);
    // Connections of its own, opened after the outage: a client that lived through the
    // store's restart is not what is being checked.
    let writer = apex_writer::connect(&check::writer_settings(&config.stack)).await?;
    let verdict = check::check(&writer, &accepted, &refused).await;
    Ok(Round {
        target: target.to_owned(),
        how: config.how,
        away,
        documents: config.documents,
        verdict,
        recovered,
        drain,
    })
}

/// One round as a line of the report's table; `normal` is the baseline's rate.
pub fn line(r: &Round, normal: Option<f64>) -> String {
    let v = &r.verdict;
    let drain = match (r.drain, normal) {
        (Some(d), Some(n)) if r.target != BASELINE => format!("{d:.2} ({:.2}×)", d / n),
        (Some(d), _) => format!("{d:.2}"),
        (None, _) => "–".to_owned(),
    };
    let how = if r.target == BASELINE {
        "–"
    } else {
        r.how.as_str()
    };
    format!(
        "| {} | {} | {} s | {} | {} | {} | {} | {} | {} | {} | {} |",
        r.target,
        how,
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
        drain,
    )
}

/// The report: a Markdown table, one line per round (the baseline's first), and every problem
/// under it. The drain column compares each round's drain rate with the baseline's.
pub fn report(rounds: &[Round]) -> String {
    let normal = rounds
        .iter()
        .find(|r| r.target == BASELINE)
        .and_then(|r| r.drain);
    let mut out = String::from(
        "| taken away | how | for | documents | completed | failed | lost | duplicated | stores disagree | recovered after | drain, docs/s (× normal) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rounds {
        out.push_str(&line(r, normal));
        out.push('\n');
    }
    for r in rounds {
        for p in &r.verdict.problems {
            out.push_str(&format!("- {}: {p}\n", r.target));
        }
    }
    out
}

/// A client builder whose requests carry the stack's admin API key.
fn gateway_http(stack: &StackSettings) -> reqwest::ClientBuilder {
    apex_common::api_key::authorized(
        reqwest::Client::builder(),
        apex_common::api_key::find(stack).as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_the_ends_after_the_start_over_the_time_to_the_last() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let since = at(1_000);
        // Four ends within two seconds of `since`, in any order; the one before it is not
        // part of the backlog.
        let r = rate(since, [at(3_000), at(0), at(1_500), at(2_000), at(2_500)]).expect("ends");
        assert!((r - 2.0).abs() < 1e-9, "{r}");
        assert_eq!(rate(since, [at(500)]), None, "nothing ended after it");
        assert_eq!(rate(since, []), None);
        assert_eq!(rate(since, [since]), None, "no time passed");
    }
}
