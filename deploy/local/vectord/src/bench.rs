//! `apex-vectord bench`: upsert throughput and search latency, measured through
//! `qdrant-client` exactly as the product's writer will call it.
//!
//! Without `--url` it starts its own server on 127.0.0.1 with a temporary data directory and
//! removes it afterwards; with `--url` it benchmarks a running server (its `bench_*`
//! collections are created and deleted). Bounded by `--points`, `--upsert-points` and
//! `--queries`; it stops by itself.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, Distance, PointStruct, SearchPointsBuilder, UpsertPointsBuilder,
    VectorParamsBuilder,
};

use crate::{Server, VectordSettings};

/// Options of `apex-vectord bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A running server to measure (`http://127.0.0.1:6334`); default: start one here.
    #[arg(long)]
    pub url: Option<String>,
    /// Vector dimension.
    #[arg(long, default_value_t = 384)]
    pub dims: usize,
    /// Points upserted for each batch size of the throughput run.
    #[arg(long, default_value_t = 20_000)]
    pub upsert_points: usize,
    /// Batch sizes of the throughput run.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 256])]
    pub batches: Vec<usize>,
    /// Points in the collection searched by the latency run.
    #[arg(long, default_value_t = 100_000)]
    pub points: usize,
    /// Searches in the latency run (top-`limit`, one at a time).
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// Results per search.
    #[arg(long, default_value_t = 10)]
    pub limit: u64,
    /// Seed of the random vectors.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// The random vectors of the benchmark and the tests (SplitMix64, so runs repeat).
pub use apex_common::rng::SplitMix64 as Rng;

fn point(id: u64, vector: Vec<f32>) -> PointStruct {
    let payload: qdrant_client::Payload = serde_json::json!({
        "document_id": format!("doc-{}", id / 16),
        "chunk": id % 16,
        "source": if id.is_multiple_of(2) { "upload" } else { "webhook" },
    })
    .try_into()
    .unwrap_or_default();
    PointStruct::new(id, vector, payload)
}

async fn fresh_collection(client: &Qdrant, name: &str, dims: usize) -> anyhow::Result<()> {
    if client.collection_exists(name).await? {
        client.delete_collection(name).await?;
    }
    client
        .create_collection(
            CreateCollectionBuilder::new(name)
                .vectors_config(VectorParamsBuilder::new(dims as u64, Distance::Cosine)),
        )
        .await
        .with_context(|| format!("create collection {name}"))?;
    Ok(())
}

/// Upserts `count` points in batches of `batch`, waiting for each; returns the elapsed time.
async fn load(
    client: &Qdrant,
    name: &str,
    rng: &mut Rng,
    dims: usize,
    count: usize,
    batch: usize,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut next = 0u64;
    while (next as usize) < count {
        let n = batch.min(count - next as usize);
        let points: Vec<_> = (0..n as u64)
            .map(|i| point(next + i, rng.vector(dims)))
            .collect();
        client
            .upsert_points(UpsertPointsBuilder::new(name, points).wait(true))
            .await
            .with_context(|| format!("upsert into {name}"))?;
        next += n as u64;
    }
    Ok(start.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.dims > 0, "--dims must be at least 1");
    anyhow::ensure!(
        args.batches.iter().all(|b| *b > 0),
        "--batches must be positive"
    );
    anyhow::ensure!(
        args.points > 0 && args.queries > 0,
        "--points and --queries must be positive"
    );
    let target = Target::connect(&args).await?;
    let mut rng = Rng::new(args.seed);
    upsert_throughput(&target.client, &args, &mut rng).await?;
    search_latency(&target.client, &args, &mut rng).await?;
    target.stop().await
}

/// The server measured: the one at `--url`, or one started in this process over a
/// temporary directory.
struct Target {
    client: Qdrant,
    own: Option<Server>,
    _data_dir: Option<tempfile::TempDir>,
}

impl Target {
    async fn connect(args: &BenchArgs) -> anyhow::Result<Self> {
        let (url, own, data_dir) = match &args.url {
            Some(url) => (url.clone(), None, None),
            None => {
                let dir = tempfile::tempdir()?;
                let settings = VectordSettings {
                    data_dir: dir.path().to_path_buf(),
                    ..VectordSettings::default()
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let server = Server::start(settings, listener)?;
                (server.url(), Some(server), Some(dir))
            }
        };
        let client = Qdrant::from_url(&url)
            .skip_compatibility_check()
            .build()
            .context("qdrant client")?;
        let version = client.health_check().await.context("health check")?;
        println!(
            "apex-vectord bench: {url} ({} {}), {} dims, Cosine, seed {}",
            version.title, version.version, args.dims, args.seed
        );
        println!(
            "machine: {} logical CPUs; client and server share them{}",
            std::thread::available_parallelism().map_or(0, usize::from),
            if own.is_some() {
                " (server in-process)"
            } else {
                ""
            }
        );
        Ok(Self {
            client,
            own,
            _data_dir: data_dir,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        if let Some(server) = self.own {
            server.stop().await?;
        }
        Ok(())
    }
}

/// Points/s of one client upserting `--upsert-points` at each batch size.
async fn upsert_throughput(client: &Qdrant, args: &BenchArgs, rng: &mut Rng) -> anyhow::Result<()> {
    println!();
    println!(
        "upsert throughput (1 client, wait=true, {} points per run)",
        args.upsert_points
    );
    println!("| batch | points | seconds | points/s |");
    println!("|------:|-------:|--------:|---------:|");
    for &batch in &args.batches {
        let name = format!("bench_upsert_{batch}");
        fresh_collection(client, &name, args.dims).await?;
        let elapsed = load(client, &name, rng, args.dims, args.upsert_points, batch).await?;
        println!(
            "| {batch} | {} | {:.2} | {:.0} |",
            args.upsert_points,
            elapsed.as_secs_f64(),
            args.upsert_points as f64 / elapsed.as_secs_f64()
        );
        client.delete_collection(&name).await?;
    }
    Ok(())
}

/// Latency percentiles of `--queries` top-k searches over `--points` loaded points.
async fn search_latency(client: &Qdrant, args: &BenchArgs, rng: &mut Rng) -> anyhow::Result<()> {
    let name = "bench_search";
    fresh_collection(client, name, args.dims).await?;
    let loaded = load(client, name, rng, args.dims, args.points, 256).await?;
    let count = client
        .count(qdrant_client::qdrant::CountPointsBuilder::new(name).exact(true))
        .await?
        .result
        .map_or(0, |r| r.count);
    anyhow::ensure!(
        count == args.points as u64,
        "loaded {count} points, expected {}",
        args.points
    );
    println!();
    println!(
        "search latency: {} points loaded in {:.1} s ({:.0} points/s, batch 256); {} top-{} searches, 1 client",
        args.points,
        loaded.as_secs_f64(),
        args.points as f64 / loaded.as_secs_f64(),
        args.queries,
        args.limit
    );
    // A few unmeasured searches first, so the figures do not include connection setup.
    for _ in 0..10 {
        client
            .search_points(SearchPointsBuilder::new(
                name,
                rng.vector(args.dims),
                args.limit,
            ))
            .await?;
    }
    let mut latencies = Vec::with_capacity(args.queries);
    let start = Instant::now();
    for _ in 0..args.queries {
        let query = rng.vector(args.dims);
        let t = Instant::now();
        let found = client
            .search_points(SearchPointsBuilder::new(name, query, args.limit))
            .await?;
        latencies.push(t.elapsed());
        anyhow::ensure!(
            found.result.len() as u64 == args.limit.min(args.points as u64),
            "a search returned {} points, expected {}",
            found.result.len(),
            args.limit
        );
    }
    let total = start.elapsed();
    latencies.sort();
    println!("| points | queries | p50 ms | p90 ms | p99 ms | max ms | searches/s |");
    println!("|-------:|--------:|-------:|-------:|-------:|-------:|-----------:|");
    println!(
        "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
        args.points,
        args.queries,
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
        args.queries as f64 / total.as_secs_f64()
    );
    client.delete_collection(name).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_the_nearest_rank() {
        let d: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&d, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&d, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
