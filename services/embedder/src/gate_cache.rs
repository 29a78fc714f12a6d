//! The fidelity gate's verdict, remembered beside the graph it judged
//! (`model.int8.onnx.gate.json`; OpenVINO's in `model.onnx.openvino-<precision>.gate.json`):
//! embedding the gate set twice takes seconds, and the answer only changes with the graphs,
//! the runtime library, the gate set or its bounds, which the cache key covers (files by size
//! and modification time). A model directory that cannot be written (a
//! read-only image) just runs the gate at every start.

use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::EmbedderSettings;
use crate::engine::{Int8Encoder, fp32_graph, run_gate};
use crate::gate::{self, Verdict};
use crate::model::MiniLm;
use crate::onnx::OnnxEncoder;
use apex_openvino::OpenVinoEncoder;

/// What the embedder needs from the gate.
#[derive(Debug, Clone)]
pub struct GateOutcome {
    pub verdict: Verdict,
    /// The fp32 vector of the empty text (the int8 encoder answers it).
    pub empty_vector: Vec<f32>,
    pub took_ms: u64,
    /// The verdict came from the file, not from running the gate now.
    pub cached: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    key: String,
    min_cosine: f32,
    worst_text: usize,
    same_top10: f64,
    texts: usize,
    empty_vector: Vec<f32>,
}

/// Where the verdict for `int8` is kept.
pub fn cache_path(int8: &Path) -> PathBuf {
    let mut name = int8.as_os_str().to_owned();
    name.push(".gate.json");
    PathBuf::from(name)
}

fn stamp(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}@{modified}", meta.len()))
}

fn key(fp32: &Path, candidate: &str) -> anyhow::Result<String> {
    let set = hex::encode(&Sha256::digest(gate::SET.as_bytes())[..8]);
    Ok(format!(
        "fp32={};{candidate};set={set};cosine={};top10={}/{}",
        stamp(fp32)?,
        gate::MIN_COSINE,
        gate::KEEP_OF_TOP10,
        gate::MIN_SAME_TOP10
    ))
}

fn read(path: &Path, key: &str) -> Option<Cached> {
    let cached: Cached = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    (cached.key == key && !cached.empty_vector.is_empty()).then_some(cached)
}

fn write(path: &Path, cached: &Cached) {
    // A private temporary file renamed into place: replicas starting together each write a
    // whole file, and a reader sees an old one or a new one.
    let written = (|| -> anyhow::Result<()> {
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &serde_json::to_vec(cached)?)?;
        tmp.persist(path)?;
        Ok(())
    })();
    if let Err(e) = written {
        tracing::debug!(path = %path.display(), error = %e, "gate verdict not kept; the gate runs at every start");
    }
}

/// The verdict kept at `path` under `key`, or `run`'s (verdict, empty text's fp32 vector),
/// then kept.
fn cached_verdict(
    path: &Path,
    key: String,
    run: impl FnOnce() -> anyhow::Result<(Verdict, Vec<f32>)>,
) -> anyhow::Result<GateOutcome> {
    let started = Instant::now();
    if let Some(c) = read(path, &key) {
        return Ok(GateOutcome {
            verdict: Verdict {
                min_cosine: c.min_cosine,
                worst_text: c.worst_text,
                same_top10: c.same_top10,
                texts: c.texts,
            },
            empty_vector: c.empty_vector,
            took_ms: started.elapsed().as_millis() as u64,
            cached: true,
        });
    }
    let (verdict, empty_vector) = run()?;
    write(
        path,
        &Cached {
            key,
            min_cosine: verdict.min_cosine,
            worst_text: verdict.worst_text,
            same_top10: verdict.same_top10,
            texts: verdict.texts,
            empty_vector: empty_vector.clone(),
        },
    );
    Ok(GateOutcome {
        verdict,
        empty_vector,
        took_ms: started.elapsed().as_millis() as u64,
        cached: false,
    })
}

/// The gate's verdict on `int8`: from the cache when its key still holds, else by running
/// the gate (both graphs on every core) and keeping the answer.
pub fn gate_verdict(
    settings: &EmbedderSettings,
    model: &MiniLm,
    int8: &Path,
) -> anyhow::Result<GateOutcome> {
    let fp32 = fp32_graph(&settings.model_dir);
    let key = key(&fp32, &format!("int8={}", stamp(int8)?))?;
    cached_verdict(&cache_path(int8), key, || {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let mut reference = OnnxEncoder::load(&settings.onnxruntime_library, &fp32, threads)?;
        let session = OnnxEncoder::load(&settings.onnxruntime_library, int8, threads)?;
        let mut candidate = Int8Encoder::new(session, model, &mut reference)?;
        let verdict = run_gate(model, &mut reference, &mut candidate)?;
        Ok((verdict, candidate.empty_vector().to_vec()))
    })
}

/// Where the verdict on OpenVINO at `precision` is kept.
pub fn openvino_cache_path(model_dir: &Path, precision: &str) -> PathBuf {
    model_dir.join(format!("model.onnx.openvino-{precision}.gate.json"))
}

/// The gate's verdict on `candidate` (OpenVINO running `model.onnx` at its precision)
/// against ONNX Runtime's fp32, kept like the int8 verdict; the library counts in the key.
pub fn openvino_verdict(
    settings: &EmbedderSettings,
    model: &MiniLm,
    candidate: &mut OpenVinoEncoder,
) -> anyhow::Result<GateOutcome> {
    let fp32 = fp32_graph(&settings.model_dir);
    let library = std::fs::canonicalize(&settings.openvino_library).map_err(|e| {
        anyhow::anyhow!(
            "OpenVINO library {}: {e}",
            settings.openvino_library.display()
        )
    })?;
    let precision = candidate.precision().to_owned();
    let key = key(
        &fp32,
        &format!(
            "openvino={}@{};precision={precision}",
            library.display(),
            stamp(&library)?
        ),
    )?;
    let path = openvino_cache_path(&settings.model_dir, &precision);
    cached_verdict(&path, key, || {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let mut reference = OnnxEncoder::load(&settings.onnxruntime_library, &fp32, threads)?;
        let empty = model.tokenize("")?.0;
        let empty_vector = reference
            .embed_ids(std::slice::from_ref(&empty))?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no vector for the empty text"))?;
        let verdict = run_gate(model, &mut reference, candidate)?;
        Ok((verdict, empty_vector))
    })
}
