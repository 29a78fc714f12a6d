//! One upload to `POST /v1/documents`: a file as multipart, a URL as JSON, sent again while
//! the gateway is busy.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::error_message;
use super::ingest::IngestOptions;

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

/// Uploads one input; on 429 or 409 waits what `Retry-After` says and tries again.
pub(super) async fn upload(
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
