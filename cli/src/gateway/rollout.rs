//! `apex rollout get|set`: the share of documents every gateway sends through Temporal (a
//! Redis key), and a gateway's decisions and outcomes so far.

use std::time::Duration;

use anyhow::Context as _;
use apex_ingestion::rollout::{Rollout, parse_percent};
use serde_json::Value;

use super::field_u64;

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
    let view = super::http()
        .build()?
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
