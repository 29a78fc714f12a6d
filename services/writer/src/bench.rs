//! `apex-tools writer bench`: documents/s and chunks/s through the whole saga against the real
//! local stores, batched (the default) and row by row (one statement, one `UNWIND` row and
//! one point per call) as the baseline, serial and concurrent, in one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apex_common::blob::BlobStore;
use futures::StreamExt as _;
use uuid::Uuid;

use crate::fixture::Fixture;
use crate::{GraphBackend, WriterSettings};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Documents written per run (each run writes fresh ones).
    #[arg(long, default_value_t = 200)]
    pub docs: usize,
    /// Concurrent writes in the concurrent runs.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 20)]
    pub chunks: usize,
    #[arg(long, default_value_t = 10)]
    pub entities: usize,
    #[arg(long, default_value_t = 384)]
    pub dimension: u32,
}

struct Run {
    /// Mean milliseconds per store call, by store and operation.
    steps: Vec<(String, f64, u64)>,
    mode: &'static str,
    concurrency: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn one_run(
    settings: &WriterSettings,
    blobs: &BlobStore,
    args: &BenchArgs,
    mode: &'static str,
    concurrency: usize,
) -> anyhow::Result<(Run, Vec<Uuid>)> {
    let writer = Arc::new(crate::connect(settings).await?);
    let mut requests = Vec::with_capacity(args.docs);
    let mut ids = Vec::with_capacity(args.docs);
    for _ in 0..args.docs {
        let mut f = Fixture::new(Uuid::new_v4(), 1);
        f.chunks = args.chunks;
        f.entities = args.entities;
        f.dimension = args.dimension;
        f.source = "bench".into();
        ids.push(f.id);
        requests.push(f.request(blobs, &format!("bench-{}", f.id)).await);
    }
    // One write outside the timing creates the collection and warms the connections.
    let mut warm = Fixture::new(Uuid::new_v4(), 1);
    warm.dimension = args.dimension;
    warm.source = "bench".into();
    ids.push(warm.id);
    writer
        .write(warm.request(blobs, "").await)
        .await
        .map_err(|e| anyhow::anyhow!("warm-up write: {}", e.error))?;

    let start = Instant::now();
    let results: Vec<Result<Duration, String>> = futures::stream::iter(requests)
        .map(|req| {
            let writer = Arc::clone(&writer);
            async move {
                let t = Instant::now();
                writer
                    .write(req)
                    .await
                    .map(|_| t.elapsed())
                    .map_err(|e| e.error.to_string())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let elapsed = start.elapsed();
    let mut latencies = Vec::with_capacity(results.len());
    for r in results {
        latencies.push(r.map_err(|e| anyhow::anyhow!("{mode} write failed: {e}"))?);
    }
    latencies.sort_unstable();
    let mut steps = Vec::new();
    for family in writer.metrics.registry.gather() {
        if family.name() != "apex_writer_step_seconds" {
            continue;
        }
        for m in family.get_metric() {
            let labels: Vec<String> = m.get_label().iter().map(|l| l.value().to_owned()).collect();
            let h = m.get_histogram();
            if h.get_sample_count() > 0 {
                steps.push((
                    labels.join(" "),
                    h.get_sample_sum() / h.get_sample_count() as f64 * 1e3,
                    h.get_sample_count(),
                ));
            }
        }
    }
    steps.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok((
        Run {
            steps,
            mode,
            concurrency,
            elapsed,
            latencies,
        },
        ids,
    ))
}

/// Drops what the benchmark wrote: its graph, its collections, its rows and Redis keys.
async fn clean(settings: &WriterSettings, ids: &[Uuid]) -> anyhow::Result<()> {
    let writer = crate::connect(settings).await?;
    sqlx::query("DELETE FROM saga_log WHERE document_id = ANY($1)")
        .bind(ids)
        .execute(writer.pg.pool())
        .await?;
    sqlx::query("DELETE FROM documents WHERE document_id = ANY($1)")
        .bind(ids)
        .execute(writer.pg.pool())
        .await?;
    for id in ids {
        writer.redis.delete_state(*id).await?;
    }
    for c in writer.vectors.collections().await? {
        let qdrant = qdrant_client::Qdrant::from_url(&settings.vectors.url)
            .skip_compatibility_check()
            .build()?;
        qdrant.delete_collection(c).await?;
    }
    if settings.graph.backend == GraphBackend::Falkordb {
        let client = redis::Client::open(settings.graph.url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("GRAPH.DELETE")
            .arg(&settings.graph.graph)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}

pub async fn run(base: WriterSettings, args: BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let blobs = BlobStore::open(&dir.path().display().to_string())?;
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let mut settings = base;
    settings.service.blob_url = dir.path().display().to_string();
    settings.vectors.collection_prefix = format!("bench{tag}");
    if settings.graph.backend == GraphBackend::Falkordb {
        settings.graph.graph = format!("apex_bench_{tag}");
    }
    settings.redis.lock_wait_ms = 120_000;
    let batched = settings.clone();
    let mut row_by_row = settings.clone();
    row_by_row.batch_rows = 1;
    row_by_row.vectors.batch_size = 1;

    println!(
        "writer benchmark: {} documents per run, each {} chunks, {} entities, {}-d vectors; \
         graph {} ({}), vectors {}, PostgreSQL and Redis on this machine",
        args.docs,
        args.chunks,
        args.entities,
        args.dimension,
        settings.graph.url,
        match settings.graph.backend {
            GraphBackend::Falkordb => "FalkorDB",
            GraphBackend::Neo4j => "Neo4j",
        },
        settings.vectors.url
    );
    let mut runs = Vec::new();
    let mut ids = Vec::new();
    let plan = [
        ("batched", &batched, 1),
        ("batched", &batched, args.concurrency),
        ("row by row", &row_by_row, 1),
        ("row by row", &row_by_row, args.concurrency),
    ];
    let mut outcome = Ok(());
    for (mode, s, concurrency) in plan {
        match one_run(s, &blobs, &args, mode, concurrency).await {
            Ok((run, written)) => {
                ids.extend(written);
                runs.push(run);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    clean(&settings, &ids)
        .await
        .context("cleaning up the benchmark's data")?;
    outcome?;
    report(&runs, &args);
    Ok(())
}

/// The table of the runs, the slowest calls of each, and batched against row by row.
fn report(runs: &[Run], args: &BenchArgs) {
    println!(
        "\n| writes | concurrency | docs/s | chunks/s | p50 ms | p95 ms |\n|---|---:|---:|---:|---:|---:|"
    );
    for r in runs {
        let docs_s = r.latencies.len() as f64 / r.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {:.1} |",
            r.mode,
            r.concurrency,
            docs_s,
            docs_s * args.chunks as f64,
            percentile(&r.latencies, 50.0).as_secs_f64() * 1e3,
            percentile(&r.latencies, 95.0).as_secs_f64() * 1e3,
        );
    }
    for r in runs {
        let top: Vec<String> = r
            .steps
            .iter()
            .take(6)
            .map(|(name, ms, _)| format!("{name} {ms:.1} ms"))
            .collect();
        println!(
            "mean per call, {} at {}: {}",
            r.mode,
            r.concurrency,
            top.join(", ")
        );
    }
    let rate = |mode: &str, c: usize| {
        runs.iter()
            .find(|r| r.mode == mode && r.concurrency == c)
            .map_or(0.0, |r| r.latencies.len() as f64 / r.elapsed.as_secs_f64())
    };
    for c in [1, args.concurrency] {
        let base = rate("row by row", c);
        if base > 0.0 {
            println!(
                "batched vs row by row at concurrency {c}: {:.1}x",
                rate("batched", c) / base
            );
        }
    }
}
