//! `apex rollout drain --to N`: the graceful rollback. The share of documents that go through
//! Temporal steps down the ladder (100 → 50 → 10 → 0, the points between the current share
//! and N, then N); after each step it waits until no ingestion workflow of a document that the
//! step moved to the legacy path is still running, saying how many are left, before taking
//! the next step. New documents of the moved share take the legacy path from the step on;
//! the ones already in Temporal finish there.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apex_ingestion::rollout::{Rollout, bucket, parse_percent};
use futures::TryStreamExt as _;
use temporalio_client::WorkflowListOptions;

/// An ingestion workflow's id is this prefix and the document id.
static PREFIX: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| apex_ingestion::ingestion_workflow_id(""));

/// The ladder's points.
const LADDER: [u8; 3] = [50, 10, 0];

/// The steps from `current` down to `target`: the ladder's points in between, then `target`.
pub fn steps(current: u8, target: u8) -> Vec<u8> {
    let mut out: Vec<u8> = LADDER
        .iter()
        .copied()
        .filter(|p| *p < current && *p > target)
        .collect();
    if target < current {
        out.push(target);
    }
    out
}

/// Where to drain and how long to wait.
pub struct Drain<'a> {
    pub redis_url: &'a str,
    pub key: &'a str,
    pub temporal: &'a str,
    pub namespace: &'a str,
    pub to: &'a str,
    pub timeout: Duration,
    pub poll: Duration,
}

/// Runs the drain; `Ok(false)` when it gave up waiting (the share stays where it got to).
pub async fn rollout_drain(d: &Drain<'_>) -> anyhow::Result<bool> {
    let target = parse_percent(d.to).map_err(anyhow::Error::msg)?;
    let rollout = Rollout::connect(d.redis_url, d.key)
        .await
        .with_context(|| format!("cannot reach redis at {}", d.redis_url))?;
    let current = rollout.get().await?.unwrap_or(100);
    let steps = steps(current, target);
    if steps.is_empty() {
        println!("temporal rollout is {current}%: nothing to drain down to {target}%");
        return Ok(true);
    }
    let client = apex_ingestion::workflows::client(d.temporal, d.namespace)
        .await
        .with_context(|| format!("cannot reach Temporal at {}", d.temporal))?;
    let deadline = Instant::now() + d.timeout;
    let started = Instant::now();
    for step in steps {
        rollout.set(step).await?;
        println!(
            "[{:>5.1}s] temporal rollout {step}%: new documents in buckets {step}-99 take the legacy path",
            started.elapsed().as_secs_f64()
        );
        let mut last = None;
        loop {
            let running = running_in_share(&client, step).await?;
            if running.is_empty() {
                println!(
                    "[{:>5.1}s]   {step}%: no workflow of the moved share is running",
                    started.elapsed().as_secs_f64()
                );
                break;
            }
            if last != Some(running.len()) {
                let first = running.iter().next().map(String::as_str).unwrap_or("");
                println!(
                    "[{:>5.1}s]   {step}%: waiting for {} running workflow(s) of the moved share ({first}{})",
                    started.elapsed().as_secs_f64(),
                    running.len(),
                    if running.len() > 1 { ", …" } else { "" }
                );
                last = Some(running.len());
            }
            if Instant::now() >= deadline {
                println!(
                    "gave up after {} s with {} still running; the rollout stays at {step}% (run the drain again to go on)",
                    d.timeout.as_secs(),
                    running.len()
                );
                return Ok(false);
            }
            tokio::time::sleep(d.poll).await;
        }
    }
    println!(
        "drained to {target}% in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// The running ingestion workflows of documents whose bucket is `share` or above.
async fn running_in_share(
    client: &temporalio_client::Client,
    share: u8,
) -> anyhow::Result<BTreeSet<String>> {
    let query = r#"WorkflowType="DocumentIngestionWorkflow" AND ExecutionStatus="Running""#;
    let listed: Vec<temporalio_client::WorkflowExecution> = client
        .list_workflows(query, WorkflowListOptions::default())
        .try_collect()
        .await
        .context("listing the running ingestion workflows")?;
    Ok(listed
        .iter()
        .filter_map(|w| {
            let doc = w.id().strip_prefix(PREFIX.as_str())?;
            (bucket(doc) >= share).then(|| w.id().to_owned())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_steps_down_to_the_target() {
        assert_eq!(steps(100, 0), vec![50, 10, 0]);
        assert_eq!(steps(100, 50), vec![50]);
        assert_eq!(steps(100, 10), vec![50, 10]);
        assert_eq!(steps(50, 0), vec![10, 0]);
        assert_eq!(steps(30, 0), vec![10, 0]);
        assert_eq!(steps(75, 20), vec![50, 20]);
        assert!(steps(10, 10).is_empty());
        assert!(steps(0, 50).is_empty(), "draining never raises the share");
    }
}
