//! What a run measured: each path's report (success, throughput, latency percentiles),
//! the table printed at the end, the plan's gates comparing the two paths, and the JSON
//! report file.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::IngestArgs;
use crate::phase::Sample;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PathReport {
    path: String,
    documents: usize,
    succeeded: usize,
    failed: usize,
    success_rate: f64,
    error_rate: f64,
    wall_seconds: f64,
    throughput_docs_per_sec: f64,
    latency_ms: Percentiles,
    accept_ms: Percentiles,
    busy_retries: u64,
    /// Chunks of the documents that succeeded, and per second of the run.
    chunks: u64,
    chunks_per_sec: f64,
    errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl PathReport {
    /// The report of `path` from its documents' samples and the phase's wall time.
    pub(crate) fn new(path: &str, samples: &[Sample], wall: f64) -> Self {
        let succeeded = samples.iter().filter(|s| s.ok).count();
        let n = samples.len().max(1);
        let mut errors: Vec<String> = samples.iter().filter_map(|s| s.error.clone()).collect();
        errors.sort();
        errors.dedup();
        errors.truncate(10);
        Self {
            path: path.to_owned(),
            documents: samples.len(),
            succeeded,
            failed: samples.len() - succeeded,
            success_rate: succeeded as f64 / n as f64,
            error_rate: (samples.len() - succeeded) as f64 / n as f64,
            wall_seconds: wall,
            throughput_docs_per_sec: succeeded as f64 / wall.max(1e-9),
            latency_ms: percentiles(samples.iter().filter(|s| s.ok).map(|s| s.latency).collect()),
            accept_ms: percentiles(samples.iter().map(|s| s.accept).collect()),
            busy_retries: samples.iter().map(|s| u64::from(s.busy_retries)).sum(),
            chunks: samples.iter().map(|s| s.chunks).sum(),
            chunks_per_sec: samples.iter().map(|s| s.chunks).sum::<u64>() as f64 / wall.max(1e-9),
            errors,
        }
    }
}

pub(crate) fn percentiles(mut xs: Vec<Duration>) -> Percentiles {
    xs.sort();
    let at = |q: f64| {
        if xs.is_empty() {
            return 0.0;
        }
        let i = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1;
        xs[i].as_secs_f64() * 1000.0
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn print(reports: &[PathReport]) {
    println!(
        "\n{:<9} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
        "path",
        "docs",
        "success",
        "docs/s",
        "chunks/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "accept p99",
        "429s"
    );
    for r in reports {
        println!(
            "{:<9} {:>6} {:>7.1}% {:>8.2} {:>9.1} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>10.0} {:>8}",
            r.path,
            r.documents,
            r.success_rate * 100.0,
            r.throughput_docs_per_sec,
            r.chunks_per_sec,
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.latency_ms.p99,
            r.latency_ms.max,
            r.accept_ms.p99,
            r.busy_retries
        );
        for e in &r.errors {
            println!("    error: {e}");
        }
    }
}

/// The plan's gates, comparing the Temporal path with the legacy path of the same run.
fn gates(temporal: &PathReport, legacy: &PathReport) -> Value {
    let error_ratio = if legacy.error_rate > 0.0 {
        temporal.error_rate / legacy.error_rate
    } else if temporal.error_rate == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    let p99_ratio = temporal.latency_ms.p99 / legacy.latency_ms.p99.max(1e-9);
    let throughput_ratio =
        temporal.throughput_docs_per_sec / legacy.throughput_docs_per_sec.max(1e-9);
    let errors_pass = temporal.error_rate == 0.0 || error_ratio < 2.0;
    // A p99 over a handful of successes says nothing: at least half must succeed.
    let p99_pass = p99_ratio < 5.0 && temporal.success_rate >= 0.5 && legacy.success_rate >= 0.5;
    println!(
        "\ntemporal/legacy: error rate {:.2}% vs {:.2}% (ratio {}), p99 ratio {p99_ratio:.2}, p50 ratio {:.2}, throughput ratio {throughput_ratio:.2}",
        temporal.error_rate * 100.0,
        legacy.error_rate * 100.0,
        if error_ratio.is_finite() {
            format!("{error_ratio:.2}")
        } else {
            "inf".to_owned()
        },
        temporal.latency_ms.p50 / legacy.latency_ms.p50.max(1e-9),
    );
    println!(
        "gate: temporal error rate < 2x legacy: {}; temporal p99 < 5x legacy: {}",
        if errors_pass { "PASS" } else { "FAIL" },
        if p99_pass { "PASS" } else { "FAIL" }
    );
    json!({
        "error_rate_ratio": if error_ratio.is_finite() { json!(error_ratio) } else { json!("inf") },
        "p99_ratio": p99_ratio,
        "p50_ratio": temporal.latency_ms.p50 / legacy.latency_ms.p50.max(1e-9),
        "throughput_ratio": throughput_ratio,
        "error_rate_gate_pass": errors_pass,
        "p99_gate_pass": p99_pass,
    })
}

/// Prints the table (and, when both paths ran, the gates) and writes the JSON report;
/// returns whether the gates passed (a run of one path has none).
pub(crate) fn finish(args: &IngestArgs, reports: &[PathReport]) -> anyhow::Result<bool> {
    print(reports);
    let gate = match (
        reports.iter().find(|r| r.path == "temporal"),
        reports.iter().find(|r| r.path == "legacy"),
    ) {
        (Some(t), Some(l)) => Some(gates(t, l)),
        _ => None,
    };
    let report = json!({
        "concurrency": args.concurrency,
        "documents_per_path": args.documents,
        "files": args.files,
        "paragraphs": args.paragraphs,
        "poll_ms": args.poll_ms,
        "paths": reports,
        "comparison": gate,
    });
    let path = std::path::Path::new(&args.report);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", path.display());
    Ok(gate.is_none_or(|g| g["error_rate_gate_pass"] == true && g["p99_gate_pass"] == true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let xs: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(xs);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(percentiles(Vec::new()).p99, 0.0);
    }
}
