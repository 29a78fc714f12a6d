//! `apex search "<query>"`: the nearest chunks, with their document and entities.

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{error_message, field_str, field_u64};

/// `apex search "<query>"`.
pub async fn search(
    gateway: &str,
    query: &str,
    limit: u32,
    source: Option<&str>,
) -> anyhow::Result<bool> {
    let http = super::http().build()?;
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
