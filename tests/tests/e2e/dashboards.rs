//! The Grafana dashboards (`deploy/grafana/*.json`) without a Grafana: after an ingestion
//! through the stack's gateway, every panel's query (its variables set to "all") runs
//! against the stack's Prometheus; each must answer without error and with data. A panel
//! that shows an event-only counter (compensations, store errors, …) may fall back to
//! `or vector(0)`; so that such a fallback cannot hide a misspelt metric, every metric a
//! query names must exist in Prometheus or be one of [`EVENT_ONLY`], each of which is
//! checked to be defined in the code.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use apex_common::metrics::query::Prometheus;
use apex_e2e::{Names, Stack};
use serde_json::Value;

/// Metrics with no series until their event happens, and the file that defines each (for
/// the Temporal SDK's, the runbook that documents them).
const EVENT_ONLY: [(&str, &str); 7] = [
    (
        "temporal_workflow_task_queue_poll_empty_total",
        "docs/operations.md",
    ),
    ("temporal_activity_poll_no_task_total", "docs/operations.md"),
    (
        "apex_writer_store_errors_total",
        "services/writer/src/metrics.rs",
    ),
    (
        "apex_writer_compensations_total",
        "services/writer/src/metrics.rs",
    ),
    (
        "apex_parser_warnings_total",
        "services/parser/src/metrics.rs",
    ),
    (
        "apex_parser_empty_documents_total",
        "services/parser/src/metrics.rs",
    ),
    (
        "apex_log_lines_total",
        "services/common/src/metrics/process.rs",
    ),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every panel of every dashboard: `(dashboard, panel title, queries)`.
fn panels() -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/grafana"))
        .expect("deploy/grafana")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read"))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        let name = d["uid"].as_str().expect("uid").to_owned();
        for p in d["panels"].as_array().expect("panels") {
            if p["type"] == "row" {
                continue;
            }
            let queries: Vec<String> = p["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(|t| t["expr"].as_str().expect("expr").to_owned())
                .collect();
            assert!(!queries.is_empty(), "{name}: a panel without a query");
            out.push((
                name.clone(),
                p["title"].as_str().expect("title").to_owned(),
                queries,
            ));
        }
    }
    out
}

/// The query as Grafana would send it with every variable at "All".
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$source", ".*")
        .replace("$service", ".*")
}

/// The metric names a query reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const PREFIXES: [&str; 6] = [
        "apex_",
        "temporal_",
        "approximate_backlog",
        "task_latency_queue",
        "service_requests",
        "persistence_latency",
    ];
    let mut names = BTreeSet::new();
    let mut rest = expr;
    // Skip label matchers' values (quoted) so a value is never taken for a name.
    while let Some((before, after)) = rest.split_once('"') {
        names.extend(
            before
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|t| PREFIXES.iter().any(|p| t.starts_with(p)))
                .map(str::to_owned),
        );
        rest = after.split_once('"').map_or("", |(_, r)| r);
    }
    names.extend(
        rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|t| PREFIXES.iter().any(|p| t.starts_with(p)))
            .map(str::to_owned),
    );
    names
}

/// The query's result series, or the error Prometheus gave.
async fn query(prometheus: &Prometheus, expr: &str) -> Result<usize, String> {
    prometheus
        .query(expr)
        .await
        .map(|series| series.len())
        .map_err(|e| format!("{e:#}"))
}

async fn has_series(prometheus: &Prometheus, name: &str) -> bool {
    query(prometheus, &format!("count({name})"))
        .await
        .is_ok_and(|n| n > 0)
}

/// One document through the stack's gateway, to its end.
async fn ingest_one(stack: &Stack) {
    let names = Names::new();
    let (_, _, traceparent) = crate::traces::caller_trace();
    let accepted =
        crate::traces::upload(stack, &names, &names.source("dashboards"), &traceparent).await;
    let id = accepted["document_id"].as_str().expect("id");
    let done = crate::traces::wait_done(stack, id).await;
    assert_eq!(done["status"], "completed", "{done}");
}

#[test]
fn the_dashboards_have_enough_panels_and_every_event_only_metric_is_defined() {
    let panels = panels();
    assert!(panels.len() >= 33, "{} panels; at least 33", panels.len());
    let titles: BTreeSet<(&str, &str)> = panels
        .iter()
        .map(|(d, t, _)| (d.as_str(), t.as_str()))
        .collect();
    assert_eq!(titles.len(), panels.len(), "two panels share a title");
    for (name, file) in EVENT_ONLY {
        let code = std::fs::read_to_string(repo().join(file)).expect(file);
        assert!(code.contains(name), "{name} is not defined in {file}");
    }
    assert_eq!(
        metric_names(r#"sum(rate(apex_a_total{kind="apex_not_a_name"}[5m])) / up"#),
        BTreeSet::from(["apex_a_total".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_returns_data() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let prometheus = Prometheus::new(&format!(
        "http://127.0.0.1:{}",
        stack.settings.prometheus_port
    ))
    .expect("client");
    ingest_one(&stack).await;
    let panels = panels();
    // Rates need two scrapes after the ingestion: poll (bounded) until every panel has
    // data, then report the ones that never did.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<(String, String, Vec<String>)> = panels.clone();
    let mut why: Vec<String> = Vec::new();
    while !pending.is_empty() {
        why.clear();
        let mut still = Vec::new();
        for (dashboard, title, queries) in pending {
            let mut empty = None;
            for q in &queries {
                match query(&prometheus, &substitute(q)).await {
                    Ok(0) => empty = Some(format!("{dashboard} / {title}: no data from {q}")),
                    Ok(_) => {}
                    Err(e) => panic!("{dashboard} / {title}: {q} failed: {e}"),
                }
            }
            if let Some(reason) = empty {
                why.push(reason);
                still.push((dashboard, title, queries));
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "panels without data:\n{}",
                why.join("\n")
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    // A series appears at the first scrape after its first observation (every 5 s), which
    // for the ingestion lag is when a status poll first saw the document final: ask again
    // until the same deadline rather than once.
    let mut missing: Vec<String> = panels
        .iter()
        .flat_map(|(_, _, qs)| qs.iter().flat_map(|q| metric_names(q)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|name| !EVENT_ONLY.iter().any(|(e, _)| name.starts_with(e)))
        .collect();
    loop {
        let mut still = Vec::new();
        for name in missing {
            if !has_series(&prometheus, &name).await {
                still.push(name);
            }
        }
        missing = still;
        if missing.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        missing.is_empty(),
        "metrics the dashboards read that Prometheus does not have: {missing:?}"
    );
}
