//! `apex-loadtest`: drives ingestions through the gateway at a fixed concurrency and
//! measures each path end to end (upload until the status is final). The path is forced
//! through the rollout percentage every gateway reads (100 = Temporal, 0 = legacy), which is
//! put back when the run ends. Bounded in documents and time; targets 127.0.0.1 only by
//! default.

mod documents;
mod files;
mod phase;
mod report;
mod sustain;
mod webhooks;

use std::time::Duration;

use anyhow::{Context as _, bail};
use apex_ingestion::rollout::Rollout;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt as _;

use crate::phase::phase;
use crate::report::finish;

#[derive(Debug, Parser)]
#[command(
    name = "apex-loadtest",
    version,
    about = "Load generator for Apex Ingest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload generated documents and follow each until it is completed or failed.
    Ingest(IngestArgs),
    /// Upload at a fixed rate for a fixed time (open loop) and print, every interval, the
    /// rate finished, latency, backlog and each process's memory.
    Sustain(sustain::SustainArgs),
    /// Signed webhook deliveries at a fixed rate against a gateway of the run's own, beside
    /// `GET /livez` at the same rate: how fast the gateway answers a webhook.
    Webhooks(webhooks::WebhookArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PathChoice {
    Temporal,
    Legacy,
    Both,
}

#[derive(Debug, Clone, clap::Args)]
struct IngestArgs {
    /// Ingestions in flight at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Documents per path.
    #[arg(long, default_value_t = 300)]
    documents: usize,
    #[arg(long, value_enum, default_value_t = PathChoice::Both)]
    path: PathChoice,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// An API key with the `ingest`, `read` and `delete` scopes (default: the local stack's
    /// admin key, `.apex/admin.key`).
    #[arg(long, env = "APEX_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The Redis holding the rollout percentage the gateways read.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    #[arg(long, default_value = apex_ingestion::rollout::ROLLOUT_KEY)]
    rollout_key: String,
    /// Where the JSON report goes.
    #[arg(long, default_value = DEFAULT_REPORT)]
    report: String,
    /// Longest a whole phase may take; documents not done by then count as failed.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// How often each document's status is polled.
    #[arg(long, default_value_t = 250)]
    poll_ms: u64,
    /// Paragraphs of generated text per document (about 60 words each).
    #[arg(long, default_value_t = 6)]
    paragraphs: usize,
    /// Keep the generated documents in the stores (by default they are deleted at the end).
    #[arg(long)]
    keep: bool,
    /// Upload the files of this directory instead of generated notes (`--documents` and
    /// `--paragraphs` are then not used): each path uploads every file as a new document,
    /// and the embedder's cache is emptied before each path.
    #[arg(long)]
    files: Option<std::path::PathBuf>,
}

async fn ingest(args: IngestArgs) -> anyhow::Result<bool> {
    check_target(&args)?;
    let http = ready_gateway(&args).await?;
    let shared = Rollout::connect(&args.redis_url, &args.rollout_key)
        .await
        .with_context(|| format!("cannot reach redis at {}", args.redis_url))?;
    let before = shared.get().await?;
    let paths: &[&'static str] = match args.path {
        PathChoice::Temporal => &["temporal"],
        PathChoice::Legacy => &["legacy"],
        PathChoice::Both => &["legacy", "temporal"],
    };
    let mut reports = Vec::new();
    let mut outcome = Ok(());
    let mut ids = Vec::new();
    let phases = async {
        for path in paths {
            match phase(&http, &shared, &args, path, &mut ids).await {
                Ok(r) => reports.push(r),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
    };
    let interrupted = tokio::select! {
        () = phases => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    restore(&shared, before).await;
    if interrupted {
        eprintln!("interrupted: the rollout is restored; the documents made so far are kept");
        return Ok(false);
    }
    if !args.keep {
        delete_generated(&http, &args, &ids).await;
    }
    outcome?;
    finish(&args, &reports)
}

/// A sustained run on one path ([`sustain`]): the rollout forced and put back, the rows
/// printed as they come, the whole written to the report (default
/// `.apex/loadtest/sustain.json`), the documents deleted unless `--keep`.
async fn sustained(mut args: sustain::SustainArgs) -> anyhow::Result<bool> {
    sustain::check(&args)?;
    check_target(&args.common)?;
    let path: &'static str = match args.common.path {
        PathChoice::Temporal => "temporal",
        PathChoice::Legacy => "legacy",
        PathChoice::Both => bail!("a sustained run takes one path: --path temporal or legacy"),
    };
    if args.common.report == DEFAULT_REPORT {
        args.common.report = ".apex/loadtest/sustain.json".to_owned();
    }
    let http = ready_gateway(&args.common).await?;
    let shared = Rollout::connect(&args.common.redis_url, &args.common.rollout_key)
        .await
        .with_context(|| format!("cannot reach redis at {}", args.common.redis_url))?;
    let before = shared.get().await?;
    shared.set(if path == "temporal" { 100 } else { 0 }).await?;
    let outcome = tokio::select! {
        o = sustain::run(&http, &args, path) => Some(o),
        _ = tokio::signal::ctrl_c() => None,
    };
    restore(&shared, before).await;
    let Some(outcome) = outcome else {
        eprintln!("interrupted: the rollout is restored; the documents made so far are kept");
        return Ok(false);
    };
    println!(
        "\n{path}: {} started at {}/s for {} s; {} succeeded, {} failed; {:.2} docs/s; p50 {:.0} ms, p99 {:.0} ms{}",
        outcome.started,
        args.rate,
        args.seconds,
        outcome.succeeded,
        outcome.failed,
        outcome.docs_per_sec,
        outcome.p50_ms,
        outcome.p99_ms,
        outcome
            .gave_up_at_secs
            .map_or_else(String::new, |t| format!(
                "; the rate did not hold (backlog full at {t} s)"
            ))
    );
    let report = serde_json::json!({
        "path": path,
        "rate": args.rate,
        "seconds": args.seconds,
        "interval_secs": args.interval_secs,
        "poll_ms": args.common.poll_ms,
        "paragraphs": args.common.paragraphs,
        "outcome": outcome,
    });
    let file = std::path::Path::new(&args.common.report);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(file, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", file.display());
    if !args.common.keep {
        delete_generated(&http, &args.common, &outcome.ids).await;
    }
    Ok(outcome.failed == 0 && outcome.gave_up_at_secs.is_none())
}

const DEFAULT_REPORT: &str = ".apex/loadtest/report.json";

/// Refuses an empty run, and any gateway not on this machine.
fn check_target(args: &IngestArgs) -> anyhow::Result<()> {
    if (args.documents == 0 && args.files.is_none()) || args.concurrency == 0 {
        bail!("--documents and --concurrency must be at least 1");
    }
    let host = reqwest::Url::parse(&args.gateway)
        .context("--gateway must be a URL")?
        .host_str()
        .unwrap_or_default()
        .to_owned();
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1" | "[::1]") {
        bail!("the load test only targets a gateway on this machine (127.0.0.1), not {host}");
    }
    Ok(())
}

/// The HTTP client of the run, once the gateway answers ready.
async fn ready_gateway(args: &IngestArgs) -> anyhow::Result<reqwest::Client> {
    let key = args
        .api_key
        .clone()
        .or_else(|| apex_common::api_key::find(&apex_common::stack::StackSettings::default()));
    let http = apex_common::api_key::authorized(reqwest::Client::builder(), key.as_deref())
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let live = http
        .get(format!("{}/readyz", args.gateway))
        .send()
        .await
        .with_context(|| format!("no gateway at {} (run `apex up`)", args.gateway))?;
    if !live.status().is_success() {
        bail!(
            "the gateway is not ready: {}",
            live.text().await.unwrap_or_default()
        );
    }
    Ok(http)
}

/// Puts the rollout back as it was, whatever happened (unset stays unset, so every
/// gateway goes back to its own TEMPORAL_ROLLOUT).
async fn restore(shared: &Rollout, before: Option<u8>) {
    let restored = match before {
        Some(p) => shared.set(p).await,
        None => shared.clear().await,
    };
    if let Err(e) = &restored {
        eprintln!(
            "could not restore the rollout to {}: {e:#}; set it with `apex rollout set`",
            before.map_or_else(|| "unset".to_owned(), |p| format!("{p}%"))
        );
    }
}

/// Deletes the documents the run made.
async fn delete_generated(http: &reqwest::Client, args: &IngestArgs, ids: &[String]) {
    let deleted = futures::stream::iter(ids.iter().map(|id| {
        let http = http.clone();
        let url = format!("{}/v1/documents/{id}", args.gateway);
        async move {
            http.delete(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    }))
    .buffer_unordered(args.concurrency.clamp(1, 16))
    .filter(|ok| futures::future::ready(*ok))
    .count()
    .await;
    eprintln!("deleted {deleted} of {} generated documents", ids.len());
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(args) => ingest(args).await,
        Command::Sustain(args) => sustained(args).await,
        Command::Webhooks(args) => webhooks::run(args).await,
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
