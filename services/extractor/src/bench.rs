//! `apex-tools extractor bench`: chunks per second of the default engine over 256-token chunks
//! (MiniLM tokens, cut by the parser as the pipeline cuts them: `apex-tools` does the cutting,
//! so the extractor never links the parser) of the evaluation documents, with one thread and
//! with every core. Bounded by `--seconds` per configuration.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apex_proto::common::v1::Chunk;

use crate::engine::Engine;

/// Options of `apex-tools extractor bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Documents to chunk (default: the evaluation set).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The embedding model's tokenizer.json (chunks are sized in its tokens).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Tokens per chunk, [CLS] and [SEP] included.
    #[arg(long, default_value_t = 256)]
    pub chunk_tokens: u32,
    /// Measuring time per configuration.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Threads of the multi-threaded run (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The tokenizer `apex up` uses, where bootstrap installs it.
pub fn default_tokenizer() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/apex/tools/models/all-MiniLM-L6-v2/tokenizer.json")
}

/// One measured configuration.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    pub threads: usize,
    pub chunks: usize,
    pub bytes: usize,
    pub mentions: usize,
    pub elapsed: Duration,
}

impl Figure {
    pub fn chunks_per_sec(&self) -> f64 {
        self.chunks as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs the engine over `chunks` round-robin on `threads` threads for about `seconds`.
pub fn measure(engine: &Engine, chunks: &[Chunk], threads: usize, seconds: f64) -> Figure {
    let next = AtomicUsize::new(0);
    let stop = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let totals: Vec<(usize, usize, usize)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (mut n, mut bytes, mut mentions) = (0, 0, 0);
                    while Instant::now() < stop {
                        let i = next.fetch_add(1, Ordering::Relaxed) % chunks.len();
                        let r = engine.extract(std::slice::from_ref(&chunks[i]));
                        n += 1;
                        bytes += chunks[i].text.len();
                        mentions += r.mentions.len();
                    }
                    (n, bytes, mentions)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or((0, 0, 0)))
            .collect()
    });
    Figure {
        threads,
        chunks: totals.iter().map(|t| t.0).sum(),
        bytes: totals.iter().map(|t| t.1).sum(),
        mentions: totals.iter().map(|t| t.2).sum(),
        elapsed: started.elapsed(),
    }
}

/// Prints the bench table over `chunks` (cut by the caller from the documents).
pub fn run(engine: &Engine, chunks: &[Chunk], args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!chunks.is_empty(), "no chunks to measure");
    table(engine, chunks, args);
    per_finder(engine, chunks);
    Ok(())
}

/// Chunks/s, MB/s and mentions per chunk with one thread and with `--threads`.
fn table(engine: &Engine, chunks: &[Chunk], args: &BenchArgs) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let multi = args.threads.unwrap_or(cores).max(1);
    // Warm the lazily built patterns and caches before measuring.
    let _ = measure(engine, chunks, 1, 0.2);
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>14}",
        "threads", "chunks", "chunks/s", "MB/s", "mentions/chunk"
    );
    let mut configs = vec![1];
    if multi > 1 {
        configs.push(multi);
    }
    for threads in configs {
        let f = measure(engine, chunks, threads, args.seconds);
        println!(
            "{:>7} {:>10} {:>10.0} {:>10.2} {:>14.1}",
            f.threads,
            f.chunks,
            f.chunks_per_sec(),
            f.bytes as f64 / f.elapsed.as_secs_f64() / 1e6,
            f.mentions as f64 / f.chunks.max(1) as f64
        );
    }
    println!("({cores} cores available)");
}

/// Where one thread's time goes, per finder, over 20 passes of the chunks.
fn per_finder(engine: &Engine, chunks: &[Chunk]) {
    let passes = 20;
    let stage = |name: &str, f: &dyn Fn(&str) -> usize| {
        let started = Instant::now();
        let mut n = 0;
        for _ in 0..passes {
            for c in chunks {
                n += f(&c.text);
            }
        }
        let per_chunk = started.elapsed().as_secs_f64() * 1e6 / (passes * chunks.len()) as f64;
        println!(
            "  {name:<22} {per_chunk:>8.1} µs/chunk {:>8} hits",
            n / passes
        );
    };
    println!("per finder (one thread):");
    stage("patterns", &|t| crate::patterns::find(t).len());
    stage("edi", &|t| crate::edi::find(t).len());
    stage("tables + json", &|t| crate::tables::find(t).len());
    stage("named rules", &|t| crate::named::find(t).len());
    stage("whole engine", &|t| engine.find(t).len());
}
