//! `apex-tools embedder bench`: chunks per second of the in-process encoders (candle, ONNX
//! Runtime fp32 and int8, OpenVINO at the CPU plugin's default precision) on 256- and
//! 32-token windows at batch 1, 8 and 32, with one core and
//! with every core, and in the same run ONNX Runtime (the `onnxruntime` Python package) on the
//! same fp32 graph, the same token windows and the same cores as the baseline, and
//! sentence-transformers on PyTorch from the same weights (when the peer venv is there), with
//! the ratios and the int8 and OpenVINO vectors' lowest cosine against fp32.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::model::MiniLm;

/// Options of `apex-tools embedder bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Text to cut into windows (default: the extractor's labelled documents).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Measuring time per configuration.
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub batches: Vec<usize>,
    /// Python with onnx and onnxruntime (`deploy/local/bootstrap --bench`); `none` skips
    /// the baseline.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Python with PyTorch and sentence-transformers (`deploy/local/bootstrap --peer`:
    /// `peer-venv`); `none` skips that baseline.
    #[arg(long)]
    pub torch_python: Option<PathBuf>,
}

fn texts(dir: &Path) -> anyhow::Result<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("bench text {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    let mut all = String::new();
    for p in paths {
        // Labels ([[TYPE|text]]) are markup, not text.
        let raw = std::fs::read_to_string(&p)?;
        let mut rest = raw.as_str();
        while let Some(open) = rest.find("[[") {
            all.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let Some(close) = after.find("]]") else { break };
            all.push_str(after[..close].split_once('|').map_or("", |(_, t)| t));
            rest = &after[close + 2..];
        }
        all.push_str(rest);
        all.push('\n');
    }
    Ok(all)
}

/// Token windows of exactly `max_tokens` ([CLS] + pieces + [SEP]) over `text`.
pub fn windows(model: &MiniLm, text: &str) -> anyhow::Result<Vec<Vec<u32>>> {
    windows_of(model, text, model.max_tokens())
}

/// Token windows of exactly `tokens` over `text`.
pub fn windows_of(model: &MiniLm, text: &str, tokens: usize) -> anyhow::Result<Vec<Vec<u32>>> {
    let (all, _) = model.tokenize_full(text)?;
    let (cls, sep) = (all[0], all[all.len() - 1]);
    let pieces = &all[1..all.len() - 1];
    let per = tokens.max(3) - 2;
    Ok(pieces
        .chunks_exact(per)
        .map(|c| {
            let mut w = Vec::with_capacity(per + 2);
            w.push(cls);
            w.extend_from_slice(c);
            w.push(sep);
            w
        })
        .collect())
}

fn measure(
    model: &MiniLm,
    windows: &[Vec<u32>],
    batch: usize,
    threads: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| {
        let run = |i: usize| -> anyhow::Result<()> {
            let rows: Vec<Vec<u32>> = (0..batch)
                .map(|j| windows[(i + j) % windows.len()].clone())
                .collect();
            model.embed_ids(&rows).map(|_| ())
        };
        run(0)?;
        let started = Instant::now();
        let (mut done, mut i) = (0usize, 0usize);
        while started.elapsed() < Duration::from_secs_f64(seconds) {
            run(i)?;
            i += batch;
            done += batch;
        }
        Ok(done as f64 / started.elapsed().as_secs_f64())
    })
}

fn measure_onnx(
    encoder: &mut dyn crate::batcher::Encoder,
    windows: &[Vec<u32>],
    batch: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let mut run = |i: usize| -> anyhow::Result<()> {
        let rows: Vec<Vec<u32>> = (0..batch)
            .map(|j| windows[(i + j) % windows.len()].clone())
            .collect();
        encoder.encode(&rows).map(|_| ())
    };
    run(0)?;
    let started = Instant::now();
    let (mut done, mut i) = (0usize, 0usize);
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        run(i)?;
        i += batch;
        done += batch;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// Lowest cosine between the two encoders' vectors of the same windows.
fn min_cosine(
    a: &mut dyn crate::batcher::Encoder,
    b: &mut dyn crate::batcher::Encoder,
    windows: &[Vec<u32>],
) -> anyhow::Result<f32> {
    let mut low = f32::INFINITY;
    for chunk in windows.chunks(8) {
        for (x, y) in a.encode(chunk)?.iter().zip(b.encode(chunk)?) {
            low = low.min(x.iter().zip(&y).map(|(p, q)| p * q).sum());
        }
    }
    Ok(low)
}

/// A Python baseline's figures (one JSON object per batch size); `graph` is the ONNX graph
/// (ONNX Runtime) or the model directory (PyTorch).
fn baseline(
    python: &Path,
    script: &Path,
    graph: &Path,
    windows: &Path,
    threads: usize,
    args: &BenchArgs,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(graph)
        .arg(windows)
        .arg(threads.to_string())
        .arg(
            args.batches
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .arg(args.seconds.to_string())
        .output()
        .with_context(|| format!("running the baseline {}", script.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Prints the bench table.
pub fn run(model: &MiniLm, args: &BenchArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../extractor/eval"));
    let text = texts(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut threads = vec![1];
    if cores > 1 {
        threads.push(cores);
    }
    let python = args.python.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".cache/apex/tools/venv/bin/python")
    });
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local");
    let model_dir = crate::model::default_model_dir();
    let fp32_graph = crate::engine::fp32_graph(&model_dir);
    let int8_graph = crate::engine::int8_graph(&model_dir);
    let library = crate::onnx::default_library();
    let baseline_ok = python.as_os_str() != "none" && python.is_file();
    if !baseline_ok {
        println!("(no ONNX Runtime baseline: run deploy/local/bootstrap --bench)");
    }
    let torch_python = args.torch_python.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".cache/apex/tools/peer-venv/bin/python")
    });
    let torch_ok = torch_python.as_os_str() != "none" && torch_python.is_file();
    if !torch_ok {
        println!("(no PyTorch baseline: run deploy/local/bootstrap --peer)");
    }
    let openvino_library = apex_openvino::default_library();
    println!(
        "| tokens | threads | batch | candle | ORT fp32 | ORT int8 | OpenVINO | Python ORT fp32 | PyTorch (sentence-transformers) | int8 / fp32 | int8 / PyTorch | OpenVINO / fp32 | OpenVINO / PyTorch | int8 min cosine | OpenVINO min cosine |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let work = tempfile::tempdir()?;
    for tokens in [model.max_tokens(), 32] {
        let windows = windows_of(model, &text, tokens)?;
        anyhow::ensure!(!windows.is_empty(), "not enough text for one window");
        let windows_json = work.path().join(format!("windows-{tokens}.json"));
        std::fs::write(&windows_json, serde_json::to_vec(&windows)?)?;
        for &t in &threads {
            let theirs = if baseline_ok {
                let script = scripts.join("bench_minilm_ort.py");
                baseline(&python, &script, &fp32_graph, &windows_json, t, args)?
            } else {
                Vec::new()
            };
            let torch = if torch_ok {
                let script = scripts.join("bench_minilm_torch.py");
                baseline(&torch_python, &script, &model_dir, &windows_json, t, args)?
            } else {
                Vec::new()
            };
            let mut fp32 = crate::onnx::OnnxEncoder::load(&library, &fp32_graph, t).ok();
            let mut int8 = match crate::onnx::OnnxEncoder::load(&library, &int8_graph, t) {
                Ok(session) => match fp32.as_mut() {
                    Some(reference) => {
                        Some(crate::engine::Int8Encoder::new(session, model, reference)?)
                    }
                    None => None,
                },
                Err(_) => None,
            };
            let cosine = match (fp32.as_mut(), int8.as_mut()) {
                (Some(a), Some(b)) => Some(min_cosine(a, b, &windows)?),
                _ => None,
            };
            let mut openvino =
                match apex_openvino::OpenVinoEncoder::load(&openvino_library, &fp32_graph, t, None)
                {
                    Ok(e) => Some(e),
                    Err(e) => {
                        println!("(no OpenVINO: {e:#})");
                        None
                    }
                };
            let ov_cosine = match (fp32.as_mut(), openvino.as_mut()) {
                (Some(a), Some(b)) => Some(min_cosine(a, b, &windows)?),
                _ => None,
            };
            let ov_name = openvino
                .as_ref()
                .map_or("-".to_owned(), |e| format!("({})", e.precision()));
            for &b in &args.batches {
                let candle = measure(model, &windows, b, t, args.seconds)?;
                let ours = match fp32.as_mut() {
                    Some(e) => Some(measure_onnx(e, &windows, b, args.seconds)?),
                    None => None,
                };
                let quick = match int8.as_mut() {
                    Some(e) => Some(measure_onnx(e, &windows, b, args.seconds)?),
                    None => None,
                };
                let ov = match openvino.as_mut() {
                    Some(e) => Some(measure_onnx(e, &windows, b, args.seconds)?),
                    None => None,
                };
                let at_batch = |rows: &[serde_json::Value]| {
                    rows.iter()
                        .find(|v| v["batch"].as_u64() == Some(b as u64))
                        .and_then(|v| v["chunks_per_sec"].as_f64())
                };
                let python = at_batch(&theirs);
                let pytorch = at_batch(&torch);
                let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
                let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => format!("{:.2}", a / b.max(1e-9)),
                    _ => "-".to_owned(),
                };
                let low = |c: Option<f32>| c.map_or("-".to_owned(), |c| format!("{c:.4}"));
                println!(
                    "| {tokens} | {t} | {b} | {candle:.1} | {} | {} | {} {ov_name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    cell(ours),
                    cell(quick),
                    cell(ov),
                    cell(python),
                    cell(pytorch),
                    ratio(quick, ours),
                    ratio(quick, pytorch),
                    ratio(ov, ours),
                    ratio(ov, pytorch),
                    low(cosine),
                    low(ov_cosine),
                );
            }
        }
    }
    Ok(())
}

/// Options of `apex-tools embedder load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Concurrent clients, each sending one text per request.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds per configuration.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// `max_batch` values to compare (1 = no batching).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batches: Vec<usize>,
}

/// Texts of about `max_tokens` tokens cut from the labelled documents.
fn load_texts(model: &MiniLm) -> anyhow::Result<Vec<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../extractor/eval");
    let all = texts(&dir)?;
    let words: Vec<&str> = all.split_whitespace().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for w in words {
        current.push_str(w);
        current.push(' ');
        if current.len() > 900 {
            let (ids, _) = model.tokenize_full(&current)?;
            if ids.len() >= model.max_tokens() - 16 {
                out.push(std::mem::take(&mut current));
            }
        }
    }
    Ok(out)
}

/// Runs the whole service on 127.0.0.1 (cache off) and measures chunks/s and latency with
/// `clients` concurrent single-text requests, once per `max_batch`.
pub async fn load(args: &LoadArgs) -> anyhow::Result<()> {
    use apex_proto::embedder::v1::EmbedRequest;
    use apex_proto::embedder::v1::embedder_service_client::EmbedderServiceClient;
    let model = MiniLm::load(&crate::model::default_model_dir(), 256)?;
    let corpus = std::sync::Arc::new(load_texts(&model)?);
    anyhow::ensure!(!corpus.is_empty(), "no texts");
    let mean_tokens = corpus
        .iter()
        .map(|t| model.tokenize(t).map(|(w, _)| w.len()).unwrap_or(0))
        .sum::<usize>()
        / corpus.len();
    println!(
        "{} texts of ~{mean_tokens} tokens; {} concurrent clients, one text per request, {} s each",
        corpus.len(),
        args.clients,
        args.seconds
    );
    println!(
        "{:>9} {:>10} {:>9} {:>9}",
        "max_batch", "chunks/s", "p50 ms", "p99 ms"
    );
    for &max_batch in &args.batches {
        let dir = tempfile::tempdir()?;
        let mut settings = crate::EmbedderSettings {
            cache_url: String::new(),
            max_batch,
            ..crate::EmbedderSettings::default()
        };
        settings.service.metrics_addr = String::new();
        settings.service.blob_url = dir.path().display().to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = apex_common::Shutdown::new();
        let server = tokio::spawn(crate::run(settings, listener, None, shutdown.clone()));
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let stop = Instant::now() + Duration::from_secs_f64(args.seconds);
        let mut tasks = Vec::new();
        for c in 0..args.clients {
            let mut client = EmbedderServiceClient::new(channel.clone());
            let corpus = corpus.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = c;
                while Instant::now() < stop {
                    let started = Instant::now();
                    let text = corpus[i % corpus.len()].clone();
                    client
                        .embed(EmbedRequest { texts: vec![text] })
                        .await
                        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
                    latencies.push(started.elapsed());
                    i += 7;
                }
                anyhow::Ok(latencies)
            }));
        }
        let began = Instant::now();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        let elapsed = began.elapsed().as_secs_f64();
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        shutdown.trigger();
        server.await??;
        println!(
            "{max_batch:>9} {:>10.1} {:>9.0} {:>9.0}",
            latencies.len() as f64 / elapsed,
            pct(0.5),
            pct(0.99)
        );
    }
    Ok(())
}
