//! One upload to `POST /v1/documents`: a file as multipart, a URL as JSON. A refused upload
//! is sent again when the gateway's error body says it may succeed later.

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

/// Uploads one input. A refused upload that may succeed later ([`may_retry`]: a busy
/// gateway, a dependency away, a conflict that will end) is sent again after the wait the
/// gateway asks for, until `opts.timeout` has passed.
pub(super) async fn upload(
    http: &reqwest::Client,
    opts: &IngestOptions,
    input: &str,
) -> anyhow::Result<Value> {
    let url = format!("{}/v1/documents", opts.gateway);
    let metadata = serde_json::to_string(&opts.metadata)?;
    let mut last = String::new();
    let give_up = std::time::Instant::now() + opts.timeout;
    let mut attempt = 0u32;
    while std::time::Instant::now() < give_up {
        attempt += 1;
        let mut traceparent = reqwest::header::HeaderMap::new();
        apex_common::telemetry::send_trace(&tracing::Span::current(), &mut traceparent);
        let response = request(http, &url, opts, input, &metadata)
            .await?
            .headers(traceparent)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", opts.gateway))?;
        let status = response.status();
        let wait = retry_after(&response);
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(serde_json::from_str(&body)?);
        }
        if !may_retry(status, &body) {
            bail!("{}", error_message(status, &body));
        }
        last = error_message(status, &body);
        tokio::time::sleep(
            Duration::from_secs(wait) + Duration::from_millis(100 * u64::from(attempt.min(10))),
        )
        .await;
    }
    bail!(
        "the gateway still refused after {attempt} attempts in {} s: {last}",
        opts.timeout.as_secs()
    )
}

/// One attempt's request: a URL as JSON, a file (read again each time) as multipart.
async fn request(
    http: &reqwest::Client,
    url: &str,
    opts: &IngestOptions,
    input: &str,
    metadata: &str,
) -> anyhow::Result<reqwest::RequestBuilder> {
    if input.starts_with("http://") || input.starts_with("https://") {
        return Ok(http.post(url).json(&serde_json::json!({
            "url": input,
            "source": opts.source,
            "priority": opts.priority,
            "metadata": opts.metadata,
        })));
    }
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
    let external_id =
        std::fs::canonicalize(input).map_or_else(|_| input.to_owned(), |p| p.display().to_string());
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("source", opts.source.clone())
        .text("priority", opts.priority.to_string())
        .text("metadata", metadata.to_owned())
        .text("external_id", external_id);
    Ok(http.post(url).multipart(form))
}

/// Whether a refused upload may succeed when sent again, from the gateway's error body
/// alone: its `error.retryable`. A gateway that does not say (an older one, or a proxy's
/// page instead of the gateway's JSON) is judged by the status: a busy gateway (429), a
/// dependency away (503) or the document being ingested with other bytes (409) is worth
/// waiting for, nothing else is.
fn may_retry(status: reqwest::StatusCode, body: &str) -> bool {
    let said = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.get("retryable")?.as_bool());
    said.unwrap_or(matches!(
        status,
        reqwest::StatusCode::TOO_MANY_REQUESTS
            | reqwest::StatusCode::CONFLICT
            | reqwest::StatusCode::SERVICE_UNAVAILABLE
    ))
}

/// The wait the gateway asks for (`Retry-After`, in seconds), kept within 1 to 30 s; 1 s
/// when it does not say.
fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, 30)
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use serde_json::json;

    use super::may_retry;

    /// A gateway error body, with `retryable` when given.
    fn body(retryable: Option<bool>) -> String {
        let mut error = json!({"code": "unavailable", "message": "writer: down", "details": {}});
        if let Some(r) = retryable {
            error["retryable"] = json!(r);
        }
        json!({ "error": error }).to_string()
    }

    #[test]
    fn the_body_decides_when_it_says_whether_to_retry() {
        assert!(may_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            &body(Some(true))
        ));
        assert!(may_retry(StatusCode::CONFLICT, &body(Some(true))));
        assert!(may_retry(StatusCode::TOO_MANY_REQUESTS, &body(Some(true))));
        assert!(!may_retry(StatusCode::BAD_REQUEST, &body(Some(false))));
        assert!(!may_retry(
            StatusCode::PAYLOAD_TOO_LARGE,
            &body(Some(false))
        ));
        // The body wins over the status: the gateway knows why it refused.
        assert!(!may_retry(
            StatusCode::TOO_MANY_REQUESTS,
            &body(Some(false))
        ));
    }

    #[test]
    fn without_the_field_409_429_and_503_are_retried() {
        assert!(may_retry(StatusCode::TOO_MANY_REQUESTS, &body(None)));
        assert!(may_retry(StatusCode::CONFLICT, &body(None)));
        assert!(may_retry(StatusCode::SERVICE_UNAVAILABLE, &body(None)));
        assert!(may_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "<html>down</html>"
        ));
        assert!(!may_retry(StatusCode::BAD_REQUEST, &body(None)));
        // Not the gateway's JSON at all.
        assert!(may_retry(
            StatusCode::TOO_MANY_REQUESTS,
            "<html>busy</html>"
        ));
        assert!(!may_retry(
            StatusCode::BAD_GATEWAY,
            "<html>bad gateway</html>"
        ));
        assert!(!may_retry(StatusCode::INTERNAL_SERVER_ERROR, ""));
    }
}
