//! One phase of a run: a path's documents uploaded at the set concurrency, each followed
//! until its status is final (or the phase's deadline passes), and what each one did.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::Value;

use crate::IngestArgs;
use crate::documents::document;
use crate::report::PathReport;

/// What one document did.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) ok: bool,
    /// The document id, once accepted.
    pub(crate) document_id: Option<String>,
    /// Upload to final status.
    pub(crate) latency: Duration,
    /// Upload to 202.
    pub(crate) accept: Duration,
    pub(crate) busy_retries: u32,
    pub(crate) error: Option<String>,
    /// Chunks the final status counts.
    pub(crate) chunks: u64,
}

/// What one upload sends: the bytes, the file name and type, and (for given files, which each
/// path uploads again) an external id of the run's own.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub(crate) body: Vec<u8>,
    pub(crate) name: String,
    pub(crate) mime: &'static str,
    pub(crate) external_id: Option<String>,
}

pub(crate) async fn one(
    http: reqwest::Client,
    args: IngestArgs,
    upload_of: Upload,
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
        chunks: 0,
    };
    let accepted = match upload(&http, &args, &upload_of, deadline, &mut busy_retries).await {
        Ok(v) => v,
        Err(error) => return fail(error, busy_retries, start.elapsed()),
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
    match follow(&http, &args, &id, deadline).await {
        Ok(chunks) => Sample {
            ok: true,
            document_id: Some(id.clone()),
            latency: start.elapsed(),
            accept,
            busy_retries,
            error: None,
            chunks,
        },
        Err(error) => with_id(fail(error, busy_retries, accept)),
    }
}

/// Uploads the document, waiting out `429`s and `503`s (a busy gateway, a dependency away;
/// counted in `busy_retries`) until the deadline; the gateway's `202` answer, or why there
/// was none.
async fn upload(
    http: &reqwest::Client,
    args: &IngestArgs,
    u: &Upload,
    deadline: Instant,
    busy_retries: &mut u32,
) -> Result<Value, String> {
    loop {
        let part = reqwest::multipart::Part::bytes(u.body.clone()).file_name(u.name.clone());
        let part = part
            .mime_str(u.mime)
            .map_err(|e| format!("type {}: {e}", u.mime))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("source", "loadtest");
        if let Some(id) = &u.external_id {
            form = form.text("external_id", id.clone());
        }
        let response = match http
            .post(format!("{}/v1/documents", args.gateway))
            .multipart(form)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Err(format!("upload: {e}")),
        };
        let status = response.status();
        let busy = status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
        if busy && Instant::now() < deadline {
            *busy_retries += 1;
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
            return Err(format!("upload: HTTP {status}: {body}"));
        }
        return serde_json::from_str(&body).map_err(|e| format!("upload answer: {e}"));
    }
}

/// Polls the document's status until it is final: `Ok` with its chunk count when completed
/// or unchanged, else why not (failed, or not final by the deadline). A status that cannot
/// be read is polled again.
async fn follow(
    http: &reqwest::Client,
    args: &IngestArgs,
    id: &str,
    deadline: Instant,
) -> Result<u64, String> {
    loop {
        if Instant::now() >= deadline {
            return Err("not finished before the phase deadline".into());
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
                return Ok(status["chunk_count"].as_u64().unwrap_or(0));
            }
            Some("failed") => return Err(format!("ingestion failed: {}", status["error"])),
            _ => {}
        }
    }
}

/// Runs `path`'s phase: sets the rollout to send every document there, then uploads and
/// follows `args.documents` documents; the ids of those accepted go to `ids`.
pub(crate) async fn phase(
    http: &reqwest::Client,
    shared: &apex_ingestion::rollout::Rollout,
    args: &IngestArgs,
    path: &'static str,
    ids: &mut Vec<String>,
) -> anyhow::Result<PathReport> {
    shared.set(if path == "temporal" { 100 } else { 0 }).await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let uploads: Vec<Upload> = match &args.files {
        Some(dir) => {
            // Every path computes every vector: no path reads what another cached.
            let emptied = crate::files::empty_embedding_cache(&args.redis_url).await?;
            eprintln!("{path}: emptied the embedder's cache ({emptied} vectors)");
            crate::files::uploads(dir, &run)?
        }
        None => (0..args.documents)
            .map(|n| Upload {
                body: document(&run, n, args.paragraphs).into_bytes(),
                name: format!("lt-{run}-{n}.txt"),
                mime: "text/plain",
                external_id: None,
            })
            .collect(),
    };
    let total = uploads.len();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    eprintln!(
        "{path}: {total} documents at concurrency {} (run {run})",
        args.concurrency
    );
    let started = Instant::now();
    let mut done = 0usize;
    let mut samples = Vec::with_capacity(total);
    let mut stream = futures::stream::iter(
        uploads
            .into_iter()
            .map(|u| one(http.clone(), args.clone(), u, path, deadline)),
    )
    .buffer_unordered(args.concurrency.max(1));
    while let Some(s) = stream.next().await {
        samples.push(s);
        done += 1;
        if done.is_multiple_of(50) || done == total {
            let failed = samples.iter().filter(|s| !s.ok).count();
            eprintln!(
                "  {path}: {done}/{total} done, {failed} failed, {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let wall = started.elapsed().as_secs_f64();
    ids.extend(samples.iter().filter_map(|s| s.document_id.clone()));
    Ok(PathReport::new(path, &samples, wall))
}
