//! `apex-loadtest`: drives ingestions through the gateway at a fixed concurrency and
//! measures each path end to end (upload until the status is final). The path is forced
//! through the rollout percentage every gateway reads (100 = Temporal, 0 = legacy), which is
//! put back when the run ends. Bounded in documents and time; targets 127.0.0.1 only by
//! default.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};

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
    /// The Redis holding the rollout percentage the gateways read.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    #[arg(long, default_value = apex_ingestion::rollout::ROLLOUT_KEY)]
    rollout_key: String,
    /// Where the JSON report goes.
    #[arg(long, default_value = ".apex/loadtest/report.json")]
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
}

/// What one document did.
#[derive(Debug, Clone)]
struct Sample {
    ok: bool,
    /// The document id, once accepted.
    document_id: Option<String>,
    /// Upload to final status.
    latency: Duration,
    /// Upload to 202.
    accept: Duration,
    busy_retries: u32,
    error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct PathReport {
    path: String,
    documents: usize,
    succeeded: usize,
    failed: usize,
    success_rate: f64,
    error_rate: f64,
    wall_seconds: f64,
    throughput_docs_per_sec: f64,
    latency_ms: Percentiles,
    accept_ms: Percentiles,
    busy_retries: u64,
    errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Percentiles {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut xs: Vec<Duration>) -> Percentiles {
    xs.sort();
    let at = |q: f64| {
        if xs.is_empty() {
            return 0.0;
        }
        let i = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1;
        xs[i].as_secs_f64() * 1000.0
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
    }
}

const WORDS: &[&str] = &[
    "shipment",
    "carrier",
    "consignee",
    "pallets",
    "reefer",
    "dock",
    "appointment",
    "invoice",
    "detention",
    "linehaul",
    "fuel",
    "surcharge",
    "pickup",
    "delivery",
    "trailer",
    "seal",
    "manifest",
    "customs",
    "broker",
    "warehouse",
    "cross-dock",
    "lumper",
    "accessorial",
    "rate",
];
const CITIES: &[&str] = &[
    "Chicago",
    "Dallas",
    "Toledo",
    "Nashville",
    "Denver",
    "Atlanta",
    "Memphis",
    "Phoenix",
];

/// A unique logistics note: ids and numbers that differ per document, words that vary.
fn document(run: &str, n: usize, paragraphs: usize) -> String {
    let mut seed = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = format!(
        "Load LT-{run}-{n:06} tendered to Apex Freight Lines on March {}, 2026.\n\n",
        n % 28 + 1
    );
    for p in 0..paragraphs {
        let from = CITIES[(next() % CITIES.len() as u64) as usize];
        let to = CITIES[(next() % CITIES.len() as u64) as usize];
        out.push_str(&format!(
            "Leg {p}: from {from} to {to}, PRO {}, weight {} lb, charge USD {}.{:02}. ",
            next() % 9_000_000 + 1_000_000,
            next() % 40_000 + 500,
            next() % 9_000 + 100,
            next() % 100
        ));
        for _ in 0..50 {
            out.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
            out.push(' ');
        }
        out.push_str("\n\n");
    }
    out
}

async fn one(
    http: reqwest::Client,
    args: IngestArgs,
    text: String,
    name: String,
    expected_path: &'static str,
    deadline: Instant,
) -> Sample {
    let start = Instant::now();
    let mut busy_retries = 0u32;
    let fail = |error: String, busy_retries: u32, accept: Duration| Sample {
        ok: false,
        document_id: None,
        latency: start.elapsed(),
        accept,
        busy_retries,
        error: Some(error),
    };
    let accepted: Value = loop {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::text(text.clone())
                    .file_name(name.clone())
                    .mime_str("text/plain")
                    .unwrap_or_else(|_| reqwest::multipart::Part::text(text.clone())),
            )
            .text("source", "loadtest");
        let response = match http
            .post(format!("{}/v1/documents", args.gateway))
            .multipart(form)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return fail(format!("upload: {e}"), busy_retries, start.elapsed()),
        };
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS && Instant::now() < deadline {
            busy_retries += 1;
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.min(10))).await;
            continue;
        }
        let body = response.text().await.unwrap_or_default();
        if status != reqwest::StatusCode::ACCEPTED {
            return fail(
                format!("upload: HTTP {status}: {body}"),
                busy_retries,
                start.elapsed(),
            );
        }
        match serde_json::from_str(&body) {
            Ok(v) => break v,
            Err(e) => return fail(format!("upload answer: {e}"), busy_retries, start.elapsed()),
        }
    };
    let accept = start.elapsed();
    let took = accepted["path"].as_str().unwrap_or_default().to_owned();
    let id = accepted["document_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let with_id = |mut s: Sample| {
        s.document_id = Some(id.clone());
        s
    };
    // A document that took the other path (a fallback) measures the wrong thing.
    if took != expected_path {
        return with_id(fail(
            format!(
                "took the {took} path, not {expected_path} (fallback: {})",
                accepted["fallback"]
            ),
            busy_retries,
            accept,
        ));
    }
    loop {
        if Instant::now() >= deadline {
            return with_id(fail(
                "not finished before the phase deadline".into(),
                busy_retries,
                accept,
            ));
        }
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
        let Ok(response) = http
            .get(format!("{}/v1/documents/{id}", args.gateway))
            .send()
            .await
        else {
            continue;
        };
        if !response.status().is_success() {
            continue;
        }
        let Ok(status) = response.json::<Value>().await else {
            continue;
        };
        match status["status"].as_str() {
            Some("completed" | "unchanged") => {
                return Sample {
                    ok: true,
                    document_id: Some(id.clone()),
                    latency: start.elapsed(),
                    accept,
                    busy_retries,
                    error: None,
                };
            }
            Some("failed") => {
                return with_id(fail(
                    format!("ingestion failed: {}", status["error"]),
                    busy_retries,
                    accept,
                ));
            }
            _ => {}
        }
    }
}

async fn phase(
    http: &reqwest::Client,
    shared: &apex_ingestion::rollout::Rollout,
    args: &IngestArgs,
    path: &'static str,
    ids: &mut Vec<String>,
) -> anyhow::Result<PathReport> {
    shared.set(if path == "temporal" { 100 } else { 0 }).await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    eprintln!(
        "{path}: {} documents at concurrency {} (run {run})",
        args.documents, args.concurrency
    );
    let started = Instant::now();
    let mut done = 0usize;
    let mut samples = Vec::with_capacity(args.documents);
    let mut stream = futures::stream::iter((0..args.documents).map(|n| {
        one(
            http.clone(),
            args.clone(),
            document(&run, n, args.paragraphs),
            format!("lt-{run}-{n}.txt"),
            path,
            deadline,
        )
    }))
    .buffer_unordered(args.concurrency.max(1));
    while let Some(s) = stream.next().await {
        samples.push(s);
        done += 1;
        if done.is_multiple_of(50) || done == args.documents {
            let failed = samples.iter().filter(|s| !s.ok).count();
            eprintln!(
                "  {path}: {done}/{} done, {failed} failed, {:.1} s",
                args.documents,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let wall = started.elapsed().as_secs_f64();
    ids.extend(samples.iter().filter_map(|s| s.document_id.clone()));
    let succeeded = samples.iter().filter(|s| s.ok).count();
    let n = samples.len().max(1);
    let mut errors: Vec<String> = samples.iter().filter_map(|s| s.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(10);
    Ok(PathReport {
        path: path.to_owned(),
        documents: samples.len(),
        succeeded,
        failed: samples.len() - succeeded,
        success_rate: succeeded as f64 / n as f64,
        error_rate: (samples.len() - succeeded) as f64 / n as f64,
        wall_seconds: wall,
        throughput_docs_per_sec: succeeded as f64 / wall.max(1e-9),
        latency_ms: percentiles(samples.iter().filter(|s| s.ok).map(|s| s.latency).collect()),
        accept_ms: percentiles(samples.iter().map(|s| s.accept).collect()),
        busy_retries: samples.iter().map(|s| u64::from(s.busy_retries)).sum(),
        errors,
    })
}

fn print(reports: &[PathReport]) {
    println!(
        "\n{:<9} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
        "path",
        "docs",
        "success",
        "docs/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "accept p99",
        "429s"
    );
    for r in reports {
        println!(
            "{:<9} {:>6} {:>7.1}% {:>8.2} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>10.0} {:>8}",
            r.path,
            r.documents,
            r.success_rate * 100.0,
            r.throughput_docs_per_sec,
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.latency_ms.p99,
            r.latency_ms.max,
            r.accept_ms.p99,
            r.busy_retries
        );
        for e in &r.errors {
            println!("    error: {e}");
        }
    }
}

/// The plan's gates, comparing the Temporal path with the legacy path of the same run.
fn gates(temporal: &PathReport, legacy: &PathReport) -> Value {
    let error_ratio = if legacy.error_rate > 0.0 {
        temporal.error_rate / legacy.error_rate
    } else if temporal.error_rate == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    let p99_ratio = temporal.latency_ms.p99 / legacy.latency_ms.p99.max(1e-9);
    let throughput_ratio =
        temporal.throughput_docs_per_sec / legacy.throughput_docs_per_sec.max(1e-9);
    let errors_pass = temporal.error_rate == 0.0 || error_ratio < 2.0;
    // A p99 over a handful of successes says nothing: at least half must succeed.
    let p99_pass = p99_ratio < 5.0 && temporal.success_rate >= 0.5 && legacy.success_rate >= 0.5;
    println!(
        "\ntemporal/legacy: error rate {:.2}% vs {:.2}% (ratio {}), p99 ratio {p99_ratio:.2}, p50 ratio {:.2}, throughput ratio {throughput_ratio:.2}",
        temporal.error_rate * 100.0,
        legacy.error_rate * 100.0,
        if error_ratio.is_finite() {
            format!("{error_ratio:.2}")
        } else {
            "inf".to_owned()
        },
        temporal.latency_ms.p50 / legacy.latency_ms.p50.max(1e-9),
    );
    println!(
        "gate: temporal error rate < 2x legacy: {}; temporal p99 < 5x legacy: {}",
        if errors_pass { "PASS" } else { "FAIL" },
        if p99_pass { "PASS" } else { "FAIL" }
    );
    json!({
        "error_rate_ratio": if error_ratio.is_finite() { json!(error_ratio) } else { json!("inf") },
        "p99_ratio": p99_ratio,
        "p50_ratio": temporal.latency_ms.p50 / legacy.latency_ms.p50.max(1e-9),
        "throughput_ratio": throughput_ratio,
        "error_rate_gate_pass": errors_pass,
        "p99_gate_pass": p99_pass,
    })
}

async fn ingest(args: IngestArgs) -> anyhow::Result<bool> {
    if args.documents == 0 || args.concurrency == 0 {
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
    let http = reqwest::Client::builder()
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
    let shared = apex_ingestion::rollout::Rollout::connect(&args.redis_url, &args.rollout_key)
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
    // Put the rollout back as it was, whatever happened (unset stays unset, so every
    // gateway goes back to its own TEMPORAL_ROLLOUT).
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
    if interrupted {
        eprintln!("interrupted: the rollout is restored; the documents made so far are kept");
        return Ok(false);
    }
    if !args.keep {
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
    outcome?;
    print(&reports);
    let gate = match (
        reports.iter().find(|r| r.path == "temporal"),
        reports.iter().find(|r| r.path == "legacy"),
    ) {
        (Some(t), Some(l)) => Some(gates(t, l)),
        _ => None,
    };
    let report = json!({
        "concurrency": args.concurrency,
        "documents_per_path": args.documents,
        "paragraphs": args.paragraphs,
        "poll_ms": args.poll_ms,
        "paths": reports,
        "comparison": gate,
    });
    let path = std::path::Path::new(&args.report);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", path.display());
    Ok(gate.is_none_or(|g| g["error_rate_gate_pass"] == true && g["p99_gate_pass"] == true))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(args) => ingest(args).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let xs: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(xs);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(percentiles(Vec::new()).p99, 0.0);
    }

    #[test]
    fn documents_differ_per_number_and_run() {
        let a = document("r1", 1, 2);
        assert_ne!(a, document("r1", 2, 2));
        assert_ne!(a, document("r2", 1, 2));
        assert_eq!(a, document("r1", 1, 2));
        assert!(a.split_whitespace().count() > 100);
    }
}
