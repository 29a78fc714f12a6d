//! `apex ingest`, `apex status`, `apex search` and `apex rollout`: the gateway's HTTP API
//! (and, for the rollout, the Redis key every gateway reads) from the command line.
//!
//! - `ingest`: the uploads (each through `upload`, which decides from the gateway's error
//!   body whether to send it again), the progress bars and the summary.
//! - `search` and `rollout`: one command each.
//! - here: what they share (reading the gateway's answers) and `apex status`.

mod drain;
mod ingest;
mod rollout;
mod search;
mod upload;

use anyhow::{Context as _, bail};
use serde_json::Value;

pub use self::drain::{Drain, rollout_drain};
pub use self::ingest::{IngestOptions, expand, ingest, print_summary};
pub use self::rollout::{rollout_get, rollout_set};
pub use self::search::search;

/// The API key every request to the gateway carries (set once, from `APEX_API_KEY` or the
/// local stack's admin key).
static API_KEY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

pub fn set_api_key(key: Option<String>) {
    let _ = API_KEY.set(key);
}

/// A client builder whose requests carry the API key.
pub fn http() -> reqwest::ClientBuilder {
    apex_common::api_key::authorized(
        reqwest::Client::builder(),
        API_KEY.get().and_then(Option::as_deref),
    )
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

/// `apex status <id>`.
pub async fn status(gateway: &str, id: &str) -> anyhow::Result<bool> {
    let http = http().build()?;
    let s = fetch_status(&http, gateway, id).await?;
    // A step being retried first, in one line each: what the document is waiting for.
    for w in s
        .get("waiting")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!("{}", field_str(w, "message"));
    }
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(field_str(&s, "status") != "failed")
}
