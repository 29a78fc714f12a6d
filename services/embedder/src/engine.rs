//! Which encoder the workers run, by the `engine` and `precision` settings: OpenVINO where
//! the CPU computes in bf16 and its vectors pass the fidelity gate, else ONNX Runtime (the
//! int8 graph when it passes the gate, else fp32), else candle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batcher::Encoder;
use crate::gate::{self, Verdict};
use crate::gate_cache::{gate_verdict, openvino_verdict};
use crate::model::MiniLm;
use crate::onnx::OnnxEncoder;
use crate::{EmbedderSettings, EngineChoice, Precision};
use apex_openvino::OpenVinoEncoder;

impl Encoder for OnnxEncoder {
    fn encode(&mut self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
        self.embed_ids(windows)
    }
}

impl Encoder for OpenVinoEncoder {
    fn encode(&mut self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
        let (mut ids, mut mask, batch, seq) = crate::onnx::padded(windows);
        self.infer(&mut ids, &mut mask, batch, seq)
    }
}

/// candle on a private rayon pool of `threads`.
struct CandleEncoder {
    model: Arc<MiniLm>,
    pool: rayon::ThreadPool,
}

impl Encoder for CandleEncoder {
    fn encode(&mut self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
        let model = &self.model;
        self.pool.install(|| model.embed_ids(windows))
    }
}

/// The int8 graph, except for the empty text ([CLS] [SEP] and nothing between): with no
/// content its activations quantize badly (cosine 0.987 against fp32), so its fp32 vector,
/// computed once at start, is answered instead.
#[derive(Debug)]
pub struct Int8Encoder {
    session: OnnxEncoder,
    empty_window: Vec<u32>,
    empty_vector: Vec<f32>,
}

impl Int8Encoder {
    /// With the empty text's fp32 vector already known.
    pub fn with_empty_vector(
        session: OnnxEncoder,
        model: &MiniLm,
        empty_vector: Vec<f32>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            session,
            empty_window: model.tokenize("")?.0,
            empty_vector,
        })
    }

    /// The fp32 vector it answers for the empty text.
    pub fn empty_vector(&self) -> &[f32] {
        &self.empty_vector
    }

    /// The empty text's vector computed by `fp32`.
    pub fn new(
        session: OnnxEncoder,
        model: &MiniLm,
        fp32: &mut dyn Encoder,
    ) -> anyhow::Result<Self> {
        let empty_window = model.tokenize("")?.0;
        let empty_vector = fp32
            .encode(std::slice::from_ref(&empty_window))?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no vector for the empty text"))?;
        Ok(Self {
            session,
            empty_window,
            empty_vector,
        })
    }
}

impl Encoder for Int8Encoder {
    fn encode(&mut self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
        if !windows.contains(&self.empty_window) {
            return self.session.embed_ids(windows);
        }
        let rest: Vec<Vec<u32>> = windows
            .iter()
            .filter(|w| **w != self.empty_window)
            .cloned()
            .collect();
        let mut computed = self.session.embed_ids(&rest)?.into_iter();
        windows
            .iter()
            .map(|w| {
                if *w == self.empty_window {
                    Ok(self.empty_vector.clone())
                } else {
                    computed
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("fewer vectors than texts"))
                }
            })
            .collect()
    }
}

/// The fp32 graph, and the int8 one `deploy/local/minilm_variants.py` derives from it.
pub fn fp32_graph(model_dir: &Path) -> PathBuf {
    model_dir.join("model.onnx")
}

pub fn int8_graph(model_dir: &Path) -> PathBuf {
    model_dir.join("model.int8.onnx")
}

/// The gate set as token windows (documents, then queries) and the number of documents.
/// The empty text is one of the documents.
pub fn gate_windows(model: &MiniLm) -> anyhow::Result<(Vec<Vec<u32>>, usize)> {
    let set = gate::gate_set()?;
    let windows = std::iter::once("")
        .chain(set.documents.iter().map(String::as_str))
        .chain(set.queries.iter().map(String::as_str))
        .map(|t| model.tokenize(t).map(|(w, _)| w))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((windows, set.documents.len() + 1))
}

/// Runs the gate: `candidate` against `reference` on the built-in set.
pub fn run_gate(
    model: &MiniLm,
    reference: &mut dyn Encoder,
    candidate: &mut dyn Encoder,
) -> anyhow::Result<Verdict> {
    let (windows, documents) = gate_windows(model)?;
    gate::check(reference, candidate, &windows, documents)
}

/// The ONNX Runtime workers at the configured precision, and the engine's name.
fn onnx_encoders(
    settings: &EmbedderSettings,
    model: &MiniLm,
) -> anyhow::Result<(Vec<Box<dyn Encoder>>, &'static str)> {
    let load = |graph: &Path| {
        OnnxEncoder::load(
            &settings.onnxruntime_library,
            graph,
            settings.threads_per_worker,
        )
    };
    let fp32 = || -> anyhow::Result<Vec<Box<dyn Encoder>>> {
        let graph = fp32_graph(&settings.model_dir);
        (0..settings.workers)
            .map(|_| Ok(Box::new(load(&graph)?) as Box<dyn Encoder>))
            .collect()
    };
    if settings.precision == Precision::Fp32 {
        return Ok((fp32()?, "onnxruntime-fp32"));
    }
    let int8 = int8_graph(&settings.model_dir);
    if !int8.is_file() {
        anyhow::ensure!(
            settings.precision == Precision::Auto,
            "precision is int8 but {} is missing (run deploy/local/bootstrap)",
            int8.display()
        );
        tracing::info!(graph = %int8.display(), "no int8 graph; the embedder runs fp32");
        return Ok((fp32()?, "onnxruntime-fp32"));
    }
    let gate = gate_verdict(settings, model, &int8)?;
    let verdict = &gate.verdict;
    match verdict.failure() {
        None => {
            tracing::info!(
                min_cosine = verdict.min_cosine,
                same_top10 = verdict.same_top10,
                texts = verdict.texts,
                took_ms = gate.took_ms,
                cached = gate.cached,
                "int8 graph passed the fidelity gate; the embedder runs int8"
            );
            let out = (0..settings.workers)
                .map(|_| {
                    Ok(Box::new(Int8Encoder::with_empty_vector(
                        load(&int8)?,
                        model,
                        gate.empty_vector.clone(),
                    )?) as Box<dyn Encoder>)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((out, "onnxruntime-int8"))
        }
        Some(why) if settings.precision == Precision::Auto => {
            tracing::warn!(
                reason = %why,
                took_ms = gate.took_ms,
                cached = gate.cached,
                "int8 graph failed the fidelity gate; the embedder runs fp32"
            );
            Ok((fp32()?, "onnxruntime-fp32"))
        }
        Some(why) => {
            anyhow::bail!("precision is int8 but the int8 graph failed the fidelity gate: {why}")
        }
    }
}

fn openvino_name(precision: &str) -> &'static str {
    match precision {
        "bf16" => "openvino-bf16",
        "f16" => "openvino-f16",
        "f32" => "openvino-f32",
        _ => "openvino",
    }
}

/// OpenVINO's workers over `model.onnx`. `precision = fp32` asks it for f32; otherwise the
/// CPU plugin's default (bf16 where the CPU has it), used only when it passes the fidelity
/// gate against ONNX Runtime's fp32. With `reduced_only`, a CPU that would compute in f32
/// anyway is refused (ONNX Runtime's int8 is faster there).
fn openvino_encoders(
    settings: &EmbedderSettings,
    model: &MiniLm,
    reduced_only: bool,
) -> anyhow::Result<(Vec<Box<dyn Encoder>>, &'static str)> {
    let graph = fp32_graph(&settings.model_dir);
    let hint = (settings.precision == Precision::Fp32).then_some("f32");
    let load = || {
        OpenVinoEncoder::load(
            &settings.openvino_library,
            &graph,
            settings.threads_per_worker,
            hint,
        )
    };
    let mut first = load()?;
    let precision = first.precision().to_owned();
    if precision != "f32" {
        let gate = openvino_verdict(settings, model, &mut first)?;
        if let Some(why) = gate.verdict.failure() {
            anyhow::bail!("OpenVINO at {precision} failed the fidelity gate: {why}");
        }
        tracing::info!(
            precision = %precision,
            min_cosine = gate.verdict.min_cosine,
            same_top10 = gate.verdict.same_top10,
            took_ms = gate.took_ms,
            cached = gate.cached,
            "OpenVINO passed the fidelity gate"
        );
    } else if reduced_only {
        anyhow::bail!("OpenVINO computes in f32 on this CPU (no bf16): no faster than int8");
    }
    let mut workers: Vec<Box<dyn Encoder>> = vec![Box::new(first)];
    for _ in 1..settings.workers {
        workers.push(Box::new(load()?));
    }
    Ok((workers, openvino_name(&precision)))
}

/// The workers' encoders by the settings, and the engine's name.
pub fn encoders(
    settings: &EmbedderSettings,
    model: &Arc<MiniLm>,
) -> anyhow::Result<(Vec<Box<dyn Encoder>>, &'static str)> {
    let candle = || -> anyhow::Result<Vec<Box<dyn Encoder>>> {
        (0..settings.workers)
            .map(|_| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(settings.threads_per_worker)
                    .build()?;
                Ok(Box::new(CandleEncoder {
                    model: model.clone(),
                    pool,
                }) as Box<dyn Encoder>)
            })
            .collect()
    };
    match settings.engine {
        EngineChoice::Openvino => openvino_encoders(settings, model, false),
        EngineChoice::Onnx => onnx_encoders(settings, model),
        EngineChoice::Candle => Ok((candle()?, "candle")),
        EngineChoice::Auto => {
            if settings.precision == Precision::Auto && settings.openvino_library.exists() {
                match openvino_encoders(settings, model, true) {
                    Ok(e) => return Ok(e),
                    Err(e) => tracing::info!(
                        reason = format!("{e:#}"),
                        "OpenVINO not used; trying ONNX Runtime"
                    ),
                }
            }
            match onnx_encoders(settings, model) {
                Ok(e) => Ok(e),
                // int8 asked for: candle has no int8, so that is a refusal too.
                Err(e) if settings.precision == Precision::Int8 => Err(e),
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "ONNX Runtime unavailable; using candle (slower)"
                    );
                    Ok((candle()?, "candle"))
                }
            }
        }
    }
}
