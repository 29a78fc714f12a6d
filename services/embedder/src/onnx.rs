//! The ONNX Runtime encoder: the same all-MiniLM-L6-v2 graph the bench's baseline runs
//! (`deploy/local/minilm_onnx.py`, pooling and normalisation inside the graph), driven from
//! Rust through the `onnxruntime` shared library bootstrap installs. One session per worker:
//! a session runs one batch at a time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

/// Where bootstrap links the ONNX Runtime library and writes the graph.
pub fn default_library() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/apex/tools/lib/libonnxruntime.so")
}

static RUNTIME: OnceLock<Result<(), String>> = OnceLock::new();

/// Loads the ONNX Runtime library once per process.
fn init(library: &Path) -> anyhow::Result<()> {
    RUNTIME
        .get_or_init(|| {
            ort::init_from(library)
                .map(|b| {
                    b.with_name("apex-embedder").commit();
                })
                .map_err(|e| format!("ONNX Runtime library {}: {e}", library.display()))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Token windows as one batch padded to the longest: the ids, the attention mask (1 for a
/// token, 0 for padding), the rows and the columns. What both runtimes' graphs take.
pub fn padded(windows: &[Vec<u32>]) -> (Vec<i64>, Vec<i64>, usize, usize) {
    let batch = windows.len();
    let seq = windows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = vec![0i64; batch * seq];
    let mut mask = vec![0i64; batch * seq];
    for (row, w) in windows.iter().enumerate() {
        for (col, id) in w.iter().enumerate() {
            ids[row * seq + col] = i64::from(*id);
            mask[row * seq + col] = 1;
        }
    }
    (ids, mask, batch, seq)
}

/// One ONNX Runtime session over the MiniLM graph.
#[derive(Debug)]
pub struct OnnxEncoder {
    session: Session,
}

impl OnnxEncoder {
    /// `threads` is the session's intra-op thread count.
    pub fn load(library: &Path, graph: &Path, threads: usize) -> anyhow::Result<Self> {
        init(library)?;
        let err = |e: ort::Error<ort::session::builder::SessionBuilder>| anyhow::anyhow!("{e}");
        let session = Session::builder()?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(err)?
            .with_intra_threads(threads.max(1))
            .map_err(err)?
            .with_inter_threads(1)
            .map_err(err)?
            .commit_from_file(graph)
            .with_context(|| format!("ONNX graph {}", graph.display()))?;
        Ok(Self { session })
    }

    /// Embeds token windows as one padded batch (vectors are pooled and unit length).
    pub fn embed_ids(&mut self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, mask, batch, seq) = padded(windows);
        let shape = [batch as i64, seq as i64];
        let outputs = self.session.run(ort::inputs![
            "input_ids" => Tensor::from_array((shape, ids))?,
            "attention_mask" => Tensor::from_array((shape, mask))?,
        ])?;
        let (out_shape, values) = outputs["sentence_embedding"].try_extract_tensor::<f32>()?;
        let dim = out_shape.get(1).copied().unwrap_or(0) as usize;
        anyhow::ensure!(
            dim > 0 && values.len() == batch * dim,
            "unexpected output shape {out_shape:?}"
        );
        Ok(values.chunks_exact(dim).map(<[f32]>::to_vec).collect())
    }
}
