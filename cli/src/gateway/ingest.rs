//! `apex ingest`: every input uploaded a few at a time, each followed (with `--wait`) until
//! its status is final, with a progress bar per file and one overall, then a summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::upload::upload;
use super::{fetch_status, field_str, field_u64};

/// Statuses in the order an ingestion passes them, for the per-file bar.
const STEPS: [&str; 6] = [
    "pending",
    "fetched",
    "parsed",
    "entities_extracted",
    "embedded",
    "completed",
];

/// What one input became.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub input: String,
    pub document_id: String,
    pub path: String,
    pub status: String,
    pub version: u64,
    pub chunks: u64,
    pub entities: u64,
    pub vectors: u64,
    pub error: Option<String>,
    pub fallback: bool,
    pub seconds: f64,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.status == "failed"
    }
}

/// Options of `apex ingest`.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub gateway: String,
    pub source: String,
    pub priority: i64,
    pub metadata: BTreeMap<String, String>,
    pub wait: bool,
    pub concurrency: usize,
    /// Longest wait for one document with `--wait`.
    pub timeout: Duration,
}

/// Files under the given paths (directories walked, hidden entries skipped, sorted) and
/// URLs as given.
pub fn expand(inputs: &[String]) -> anyhow::Result<Vec<String>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.is_file() {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for input in inputs {
        if input.starts_with("http://") || input.starts_with("https://") {
            out.push(input.clone());
            continue;
        }
        let path = PathBuf::from(input);
        if path.is_dir() {
            let mut files = Vec::new();
            walk(&path, &mut files)?;
            out.extend(files.into_iter().map(|p| p.display().to_string()));
        } else if path.is_file() {
            out.push(input.clone());
        } else {
            bail!("{input}: no such file, directory or http(s) URL");
        }
    }
    Ok(out)
}

fn terminal(status: &str) -> bool {
    apex_ingestion::status::is_final(status)
}

async fn ingest_one(
    http: reqwest::Client,
    opts: Arc<IngestOptions>,
    input: String,
    bar: ProgressBar,
) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome {
        input: input.clone(),
        ..Default::default()
    };
    bar.set_message("uploading");
    let span = tracing::info_span!(
        "apex ingest",
        otel.name = "apex ingest",
        otel.kind = "client",
        apex.input = %input,
        apex.source = %opts.source,
    );
    let accepted = match tracing::Instrument::instrument(upload(&http, &opts, &input), span).await {
        Ok(v) => v,
        Err(e) => {
            outcome.error = Some(format!("{e:#}"));
            outcome.status = "refused".to_owned();
            bar.abandon_with_message(format!("refused: {e:#}"));
            return outcome;
        }
    };
    outcome.document_id = field_str(&accepted, "document_id");
    outcome.path = field_str(&accepted, "path");
    outcome.version = field_u64(&accepted, "version");
    outcome.fallback = accepted.get("fallback").is_some_and(|f| !f.is_null());
    outcome.status = "accepted".to_owned();
    bar.set_position(1);
    bar.set_message(format!("accepted ({})", outcome.path));
    if !opts.wait {
        bar.finish_with_message(format!("accepted via {}", outcome.path));
        outcome.seconds = start.elapsed().as_secs_f64();
        return outcome;
    }
    let deadline = Instant::now() + opts.timeout;
    let mut pause = Duration::from_millis(200);
    loop {
        match fetch_status(&http, &opts.gateway, &outcome.document_id).await {
            Ok(s) => {
                let status = field_str(&s, "status");
                let step = STEPS.iter().position(|x| *x == status).unwrap_or(0);
                bar.set_position(step as u64 + 1);
                bar.set_message(status.clone());
                outcome.status = status.clone();
                outcome.version = field_u64(&s, "version");
                outcome.chunks = field_u64(&s, "chunk_count");
                outcome.entities = field_u64(&s, "entity_count");
                outcome.vectors = field_u64(&s, "vector_count");
                if terminal(&status) {
                    if status == "failed" {
                        let why = field_str(&s, "error");
                        bar.abandon_with_message(format!("failed: {why}"));
                        outcome.error = Some(why);
                    } else {
                        bar.set_position(STEPS.len() as u64 + 1);
                        bar.finish_with_message(status);
                    }
                    break;
                }
            }
            // Just accepted: the status may not be readable for a moment.
            Err(e) if Instant::now() < deadline => bar.set_message(format!("waiting ({e:#})")),
            Err(e) => {
                outcome.error = Some(format!("{e:#}"));
                break;
            }
        }
        if Instant::now() >= deadline {
            outcome.error = Some(format!(
                "not finished after {} s (last status {})",
                opts.timeout.as_secs(),
                outcome.status
            ));
            bar.abandon_with_message("timed out");
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(2));
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    outcome
}

/// `apex ingest`: uploads every input (a few at a time), shows a bar per file and one
/// overall, and returns what each became.
pub async fn ingest(inputs: Vec<String>, opts: IngestOptions) -> anyhow::Result<Vec<Outcome>> {
    if inputs.is_empty() {
        bail!("nothing to ingest: give files, directories or http(s) URLs");
    }
    let http = super::http().timeout(Duration::from_secs(300)).build()?;
    // One clear error up front instead of one per file.
    let live = http
        .get(format!("{}/livez", opts.gateway))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    if !live.as_ref().is_ok_and(|r| r.status().is_success()) {
        bail!(
            "no gateway answers at {} (start the stack with `apex up`, or pass --gateway / APEX_GATEWAY_URL)",
            opts.gateway
        );
    }
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(inputs.len() as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:30.green/white}] {pos}/{len} documents  {msg}",
        )?
        .progress_chars("=> "),
    );
    overall.set_prefix("overall");
    let file_style = ProgressStyle::with_template("{prefix:>40.dim} [{bar:12.cyan/blue}] {msg}")?
        .progress_chars("=> ");
    let opts = Arc::new(opts);
    let mut outcomes = Vec::with_capacity(inputs.len());
    let (mut chunks, mut entities, mut failures) = (0u64, 0u64, 0u64);
    let mut running = futures::stream::iter(inputs.into_iter().map(|input| {
        let bar = multi.insert_before(&overall, ProgressBar::new(STEPS.len() as u64 + 1));
        bar.set_style(file_style.clone());
        let name = Path::new(&input)
            .file_name()
            .map_or_else(|| input.clone(), |n| n.to_string_lossy().into_owned());
        bar.set_prefix(truncate(&name, 40));
        ingest_one(http.clone(), Arc::clone(&opts), input, bar)
    }))
    .buffer_unordered(opts.concurrency.max(1));
    while let Some(outcome) = running.next().await {
        chunks += outcome.chunks;
        entities += outcome.entities;
        if outcome.failed() {
            failures += 1;
        }
        overall.inc(1);
        overall.set_message(format!(
            "{chunks} chunks, {entities} entities, {failures} failures"
        ));
        outcomes.push(outcome);
    }
    overall.finish();
    outcomes.sort_by(|a, b| a.input.cmp(&b.input));
    Ok(outcomes)
}

/// The summary table after `apex ingest`.
pub fn print_summary(outcomes: &[Outcome], waited: bool) {
    println!();
    println!(
        "{:<34} {:<36} {:<9} {:<10} {:>3} {:>7} {:>8} {:>7} {:>7}",
        "input", "document", "path", "status", "ver", "chunks", "entities", "vectors", "secs"
    );
    for o in outcomes {
        let name = Path::new(&o.input)
            .file_name()
            .map_or_else(|| o.input.clone(), |n| n.to_string_lossy().into_owned());
        let path = if o.fallback {
            format!("{}*", o.path)
        } else {
            o.path.clone()
        };
        println!(
            "{:<34} {:<36} {:<9} {:<10} {:>3} {:>7} {:>8} {:>7} {:>7.1}",
            truncate(&name, 34),
            o.document_id,
            path,
            o.status,
            o.version,
            o.chunks,
            o.entities,
            o.vectors,
            o.seconds
        );
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failed()).collect();
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    println!(
        "\n{} documents: {} {}, {} failed; {} chunks, {} entities, {} vectors",
        outcomes.len(),
        outcomes.len() - failed.len(),
        if waited { "ingested" } else { "accepted" },
        failed.len(),
        sum(|o| o.chunks),
        sum(|o| o.entities),
        sum(|o| o.vectors),
    );
    if outcomes.iter().any(|o| o.fallback) {
        println!("* Temporal was unreachable: these took the legacy path (fallback).");
    }
    for f in failed {
        println!(
            "  failed: {}: {}",
            f.input,
            f.error.as_deref().unwrap_or("failed")
        );
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(max - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}
