//! The Apex Ingest embedder: texts in, unit-length all-MiniLM-L6-v2 vectors out
//! (`apex.embedder.v1`), inline or from a parsed-document artifact to a vectors artifact.
//! Concurrent requests share dynamic batches run by a pool of workers; the encoder is ONNX
//! Runtime when its library and graph are installed (measured fastest), else candle.

pub mod batcher;
#[cfg(feature = "devtools")]
pub mod bench;
pub mod cache;
pub mod engine;
pub mod gate;
pub mod gate_cache;
pub mod model;
pub mod onnx;
pub mod remote;
mod service;

use std::path::PathBuf;

use apex_common::{Settings, Shutdown, service::ServiceSettings};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

pub use service::{ARTIFACT_CONTENT_TYPE, EmbedderGrpc};

/// Which encoder runs the model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// OpenVINO when its library loads, the CPU computes in bf16 and the vectors pass the
    /// fidelity gate; else ONNX Runtime when its library and `model.onnx` load; else candle.
    Auto,
    /// OpenVINO (`openvino_library`), gated unless it computes in f32; refuses to start
    /// when it cannot load or fails the gate.
    Openvino,
    Onnx,
    Candle,
}

/// The numeric precision the model runs at.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// A reduced precision that passes the fidelity gate against fp32 at start: OpenVINO's
    /// bf16 where the CPU has it, else ONNX Runtime's int8 (`model.int8.onnx`); else fp32.
    Auto,
    /// ONNX Runtime's int8, or refuse to start when it is missing or fails the gate.
    Int8,
    /// Full precision (ONNX Runtime fp32, or OpenVINO asked for f32).
    Fp32,
}

/// Settings of the embedder (`APEX_EMBEDDER__…`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct EmbedderSettings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// Directory with `config.json`, `tokenizer.json`, `model.safetensors`, `model.onnx` and
    /// `model.int8.onnx`.
    pub model_dir: PathBuf,
    /// ONNX Runtime shared library.
    pub onnxruntime_library: PathBuf,
    /// OpenVINO's C library (`libopenvino_c.so`; its runtime and CPU plugin beside it).
    pub openvino_library: PathBuf,
    pub engine: EngineChoice,
    /// Reduced precision when it passes the gate, int8 or fp32 (see [`Precision`]).
    pub precision: Precision,
    /// Tokens per text, [CLS] and [SEP] included; longer texts are cut and flagged.
    pub max_tokens: usize,
    /// Worker threads (each with its own encoder) and threads per worker.
    pub workers: usize,
    pub threads_per_worker: usize,
    /// Dynamic batching: most texts per batch, longest wait for a fuller batch, and the
    /// most texts waiting (beyond it requests get `RESOURCE_EXHAUSTED`).
    pub max_batch: usize,
    pub max_wait_ms: u64,
    pub queue_capacity: usize,
    /// Most texts in one request, and the longest text in characters.
    pub max_texts: usize,
    pub max_text_chars: usize,
    /// Redis URL of the embedding cache (keyed by model and text hash); empty = off.
    pub cache_url: String,
    pub cache_ttl_secs: u64,
    /// An OpenAI-compatible embeddings API instead of the local model.
    pub remote: remote::RemoteSettings,
}

fn tools_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/apex/tools")
}

impl Default for EmbedderSettings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::with_ports(apex_common::ports::EMBEDDER),
            model_dir: tools_dir().join("models/all-MiniLM-L6-v2"),
            onnxruntime_library: tools_dir().join("lib/libonnxruntime.so"),
            openvino_library: tools_dir().join("lib/libopenvino_c.so"),
            engine: EngineChoice::Auto,
            precision: Precision::Auto,
            max_tokens: 256,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            threads_per_worker: 1,
            max_batch: 8,
            max_wait_ms: 2,
            queue_capacity: 4096,
            max_texts: 2048,
            max_text_chars: 200_000,
            cache_url: "redis://127.0.0.1:6379".to_owned(),
            cache_ttl_secs: 30 * 24 * 3600,
            remote: remote::RemoteSettings::default(),
        }
    }
}

impl Settings for EmbedderSettings {
    const ENV_PREFIX: &'static str = "APEX_EMBEDDER";

    fn validate(&self) -> Vec<String> {
        let mut p = self.service.validate();
        if !(3..=512).contains(&self.max_tokens) {
            p.push(format!(
                "max_tokens must be between 3 and 512, not {}",
                self.max_tokens
            ));
        }
        if self.workers == 0 || self.threads_per_worker == 0 {
            p.push("workers and threads_per_worker must be at least 1".to_owned());
        }
        if self.engine == EngineChoice::Openvino && self.precision == Precision::Int8 {
            p.push(
                "precision int8 is ONNX Runtime's graph: with engine openvino use auto or fp32"
                    .to_owned(),
            );
        }
        if self.max_batch == 0 {
            p.push("max_batch must be at least 1".to_owned());
        }
        if self.queue_capacity < self.max_batch {
            p.push("queue_capacity must be at least max_batch".to_owned());
        }
        if self.max_texts == 0 || self.max_texts > self.queue_capacity {
            p.push(format!(
                "max_texts must be between 1 and queue_capacity ({})",
                self.queue_capacity
            ));
        }
        p.extend(self.remote.validate());
        if !self.cache_url.is_empty() && !self.cache_url.starts_with("redis") {
            p.push("cache_url must be a redis:// URL or empty".to_owned());
        }
        p
    }
}

/// Runs the embedder on `listener` until `shutdown`.
pub async fn run(
    settings: EmbedderSettings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    service::serve(settings, listener, metrics, shutdown).await
}
