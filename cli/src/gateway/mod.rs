//! `apex ingest`, `apex status`, `apex search` and `apex rollout`: the gateway's HTTP API
//! (and, for the rollout, the Redis key every gateway reads) from the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use apex_ingestion::rollout::{Rollout, parse_percent};
use futures::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

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

fn media_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "html" | "htm" => "text/html",
        "md" | "markdown" => "text/markdown",
        "txt" | "text" | "log" => "text/plain",
        "json" => "application/json",
        "eml" => "message/rfc822",
        "edi" | "x12" => "application/edi-x12",
        _ => "application/octet-stream",
    }
}

/// The error message of a gateway error body, or the raw text.
fn error_message(status: reqwest::StatusCode, body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            Some(format!(
                "{} ({}): {}",
                status.as_u16(),
                e.get("code")?.as_str()?,
                e.get("message")?.as_str()?
            ))
        })
        .unwrap_or_else(|| format!("{}: {}", status.as_u16(), body.trim()))
}

/// Uploads one input; on 429 or 409 waits what `Retry-After` says and tries again.
async fn upload(
    http: &reqwest::Client,
    opts: &IngestOptions,
    input: &str,
) -> anyhow::Result<Value> {
    let url = format!("{}/v1/documents", opts.gateway);
    let metadata = serde_json::to_string(&opts.metadata)?;
    for attempt in 0..30u32 {
        let request = if input.starts_with("http://") || input.starts_with("https://") {
            http.post(&url).json(&serde_json::json!({
                "url": input,
                "source": opts.source,
                "priority": opts.priority,
                "metadata": opts.metadata,
            }))
        } else {
            let bytes = tokio::fs::read(input)
                .await
                .with_context(|| format!("cannot read {input}"))?;
            let name = Path::new(input)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let part = reqwest::multipart::Part::bytes(bytes)
                .file_name(name)
                .mime_str(media_type(input))?;
            let external_id = std::fs::canonicalize(input)
                .map_or_else(|_| input.to_owned(), |p| p.display().to_string());
            let form = reqwest::multipart::Form::new()
                .part("file", part)
                .text("source", opts.source.clone())
                .text("priority", opts.priority.to_string())
                .text("metadata", metadata.clone())
                .text("external_id", external_id);
            http.post(&url).multipart(form)
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", opts.gateway))?;
        let status = response.status();
        // Busy gateway (429), or this document being ingested with other bytes (409):
        // wait what the gateway asks and try again.
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::CONFLICT
        {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 30);
            tokio::time::sleep(
                Duration::from_secs(wait) + Duration::from_millis(100 * u64::from(attempt.min(10))),
            )
            .await;
            continue;
        }
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{}", error_message(status, &body));
        }
        return Ok(serde_json::from_str(&body)?);
    }
    bail!("the gateway stayed busy (429/409) through 30 attempts")
}

/// `GET /v1/documents/{id}`.
pub async fn fetch_status(
    http: &reqwest::Client,
    gateway: &str,
    id: &str,
) -> anyhow::Result<Value> {
    let response = http
        .get(format!("{gateway}/v1/documents/{id}"))
        .send()
        .await
        .with_context(|| format!("cannot reach the gateway at {gateway}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{}", error_message(status, &body));
    }
    Ok(serde_json::from_str(&body)?)
}

fn field_u64(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or_default()
}

fn field_str(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
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
    let accepted = match upload(&http, &opts, &input).await {
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
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

/// `apex status <id>`.
pub async fn status(gateway: &str, id: &str) -> anyhow::Result<bool> {
    let http = reqwest::Client::new();
    let s = fetch_status(&http, gateway, id).await?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(field_str(&s, "status") != "failed")
}

/// `apex search "<query>"`.
pub async fn search(
    gateway: &str,
    query: &str,
    limit: u32,
    source: Option<&str>,
) -> anyhow::Result<bool> {
    let http = reqwest::Client::new();
    let mut params = vec![("q", query.to_owned()), ("limit", limit.to_string())];
    if let Some(s) = source {
        params.push(("source", s.to_owned()));
    }
    let response = http
        .get(format!("{gateway}/v1/search"))
        .query(&params)
        .send()
        .await
        .with_context(|| format!("cannot reach the gateway at {gateway}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{}", error_message(status, &body));
    }
    let found: Value = serde_json::from_str(&body)?;
    let hits = found
        .get("hits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    println!("search \"{query}\": {} hits", hits.len());
    for (i, h) in hits.iter().enumerate() {
        let text: String = field_str(h, "text")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let entities: Vec<String> = h
            .get("entities")
            .and_then(Value::as_array)
            .map(|es| {
                es.iter()
                    .map(|e| format!("{} ({})", field_str(e, "name"), field_str(e, "type")))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:>2}. {:.3}  document {} chunk {}  [{}]",
            i + 1,
            h.get("score").and_then(Value::as_f64).unwrap_or_default(),
            field_str(h, "document_id"),
            field_u64(h, "ordinal"),
            field_str(h, "source"),
        );
        println!("    {}", truncate_end(&text, 200));
        if !entities.is_empty() {
            println!("    entities: {}", truncate_end(&entities.join(", "), 200));
        }
    }
    Ok(true)
}

fn truncate_end(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// `apex rollout get`: the percentage every gateway reads, and, when the gateway answers,
/// its decisions and each path's outcomes so far (to compare error rates).
pub async fn rollout_get(redis_url: &str, key: &str, gateway: &str) -> anyhow::Result<bool> {
    let rollout = Rollout::connect(redis_url, key)
        .await
        .with_context(|| format!("cannot reach redis at {redis_url}"))?;
    match rollout.get().await? {
        Some(p) => println!("temporal rollout: {p}% (the rest takes the legacy path)"),
        None => println!(
            "temporal rollout: not set; gateways use their TEMPORAL_ROLLOUT setting (default 100)"
        ),
    }
    let view = reqwest::Client::new()
        .get(format!("{gateway}/v1/rollout"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    if let Ok(r) = view
        && r.status().is_success()
        && let Ok(v) = r.json::<Value>().await
    {
        println!(
            "gateway {gateway} (since its start): {} fallbacks to legacy",
            field_u64(&v, "fallbacks")
        );
        for path in ["temporal", "legacy"] {
            let o = &v["outcomes"][path];
            let rate = o["error_rate"]
                .as_f64()
                .map_or_else(|| "-".to_owned(), |r| format!("{:.2}%", r * 100.0));
            println!(
                "  {path:<8} routed {:>6}  completed {:>6}  unchanged {:>6}  failed {:>5}  error rate {rate}",
                field_u64(&v["decisions"], path),
                field_u64(o, "completed"),
                field_u64(o, "unchanged"),
                field_u64(o, "failed"),
            );
        }
    }
    Ok(true)
}

/// `apex rollout set <percent>`: every gateway uses it from its next document on.
pub async fn rollout_set(redis_url: &str, key: &str, percent: &str) -> anyhow::Result<bool> {
    let p = parse_percent(percent).map_err(anyhow::Error::msg)?;
    let rollout = Rollout::connect(redis_url, key)
        .await
        .with_context(|| format!("cannot reach redis at {redis_url}"))?;
    let before = rollout.get().await?;
    rollout.set(p).await?;
    println!(
        "temporal rollout: {} -> {p}%{}",
        before.map_or_else(|| "unset".to_owned(), |b| format!("{b}%")),
        if p == 0 {
            " (emergency rollback: every document takes the legacy path)"
        } else {
            ""
        }
    );
    Ok(true)
}
