//! The documents of a chaos round, through the gateway's HTTP API as a client sends them:
//! uploads that wait out a refusal (`429`, `503`, a gateway not answering) the way `apex
//! ingest` does, and the statuses they reach.

use std::time::{Duration, Instant};

use serde_json::Value;

/// One uploaded document: its id and the status it reached (empty until known).
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub external_id: String,
    pub document_id: String,
    pub status: String,
    pub error: String,
    pub vector_count: u64,
    pub entity_count: u64,
    pub chunk_count: u64,
    /// When this run first saw the document final.
    pub ended: Option<Instant>,
}

/// A text no other document of any run has: its bytes decide its content hash.
fn text(external_id: &str) -> String {
    format!(
        "Chaos document {external_id}.\n\nAcme Corporation shipped order {external_id} from \
         Rotterdam to Chicago on 2026-03-14. Jane Doe (jane.doe@example.com) signed for it; \
         the invoice total was 1,250.00 EUR. The carrier reported the delivery on time.\n"
    )
}

/// Uploads `external_id` until the gateway accepts it or `give_up` passes. A busy gateway, a
/// dependency away or a gateway that does not answer is waited out (its `Retry-After`, at
/// most 5 s); any other refusal is final.
pub async fn upload(
    http: &reqwest::Client,
    gateway: &str,
    source: &str,
    external_id: &str,
    give_up: Instant,
) -> Result<Doc, String> {
    let body = text(external_id);
    let mut last = String::new();
    while Instant::now() < give_up {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::text(body.clone())
                    .file_name(format!("{external_id}.txt"))
                    .mime_str("text/plain")
                    .map_err(|e| e.to_string())?,
            )
            .text("source", source.to_owned())
            .text("external_id", external_id.to_owned());
        let wait = match http
            .post(format!("{gateway}/v1/documents"))
            .multipart(form)
            .send()
            .await
        {
            Err(e) => {
                last = format!("gateway not answering: {e}");
                Duration::from_secs(1)
            }
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.map_err(|e| e.to_string())?;
                return Ok(Doc {
                    external_id: external_id.to_owned(),
                    document_id: field(&v, "document_id"),
                    ..Doc::default()
                });
            }
            Ok(r) => {
                let status = r.status();
                let after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1);
                let text = r.text().await.unwrap_or_default();
                if !matches!(status.as_u16(), 429 | 503) {
                    return Err(format!("upload refused: {status}: {text}"));
                }
                last = format!("{status}: {text}");
                Duration::from_secs(after.clamp(1, 5))
            }
        };
        tokio::time::sleep(wait).await;
    }
    Err(format!("upload not accepted in time; last answer: {last}"))
}

fn field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or_default()
}

use apex_ingestion::status::is_final;

/// Polls each document's status until all are final or `give_up` passes; a gateway that
/// does not answer (it may be the one taken away) is asked again.
/// A document's end time is when a poll first saw it final: the polls go round every half
/// second plus the time they take.
pub async fn settle(http: &reqwest::Client, gateway: &str, docs: &mut [Doc], give_up: Instant) {
    loop {
        for d in docs.iter_mut().filter(|d| !is_final(&d.status)) {
            let url = format!("{gateway}/v1/documents/{}", d.document_id);
            let Ok(r) = http.get(url).send().await else {
                continue;
            };
            let Ok(v) = r.json::<Value>().await else {
                continue;
            };
            if let Some(status) = v.get("status").and_then(Value::as_str) {
                d.status = status.to_owned();
                if is_final(status) {
                    d.ended = Some(Instant::now());
                }
                d.error = v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                d.vector_count = count(&v, "vector_count");
                d.entity_count = count(&v, "entity_count");
                d.chunk_count = count(&v, "chunk_count");
            }
        }
        if docs.iter().all(|d| is_final(&d.status)) || Instant::now() >= give_up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
