//! all-MiniLM-L6-v2 in process: WordPiece tokenisation (the model's `tokenizer.json`,
//! truncation at `max_tokens`), a BERT encoder on candle tensors, mean pooling over the
//! attention mask and L2 normalisation — the steps sentence-transformers runs, so the vectors
//! agree with it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use candle_core::{D, DType, Device, Module as _, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;
use tokenizers::Tokenizer;

/// The parts of `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-12
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

fn linear(
    vb: &VarBuilder<'_>,
    name: &str,
    input: usize,
    output: usize,
) -> candle_core::Result<Linear> {
    candle_nn::linear(input, output, vb.pp(name))
}

fn norm(vb: &VarBuilder<'_>, name: &str, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(size, eps, vb.pp(name))
}

/// The BERT encoder (embeddings and layers; no pooler: sentence-transformers pools itself).
#[derive(Debug)]
struct Bert {
    words: Embedding,
    positions: Embedding,
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
}

impl Bert {
    fn load(vb: VarBuilder<'_>, c: &BertConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let e = vb.pp("embeddings");
        let words = candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?;
        let positions =
            candle_nn::embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?;
        // Every input is segment 0: its embedding is one row added to every token.
        let token_type = e
            .pp("token_type_embeddings")
            .get((2, h), "weight")?
            .get(0)?;
        let embedding_norm = norm(&e, "LayerNorm", h, c.layer_norm_eps)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            layers.push(Layer {
                query: linear(&a.pp("self"), "query", h, h)?,
                key: linear(&a.pp("self"), "key", h, h)?,
                value: linear(&a.pp("self"), "value", h, h)?,
                attention_out: linear(&a.pp("output"), "dense", h, h)?,
                attention_norm: norm(&a.pp("output"), "LayerNorm", h, c.layer_norm_eps)?,
                intermediate: linear(&l.pp("intermediate"), "dense", h, c.intermediate_size)?,
                output: linear(&l.pp("output"), "dense", c.intermediate_size, h)?,
                output_norm: norm(&l.pp("output"), "LayerNorm", h, c.layer_norm_eps)?,
            });
        }
        Ok(Self {
            words,
            positions,
            token_type,
            embedding_norm,
            layers,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
        })
    }

    /// `ids` and `mask` are (batch, seq); returns the last hidden states (batch, seq, hidden).
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?;
        let mut x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?
            .broadcast_add(&self.token_type)?;
        x = self.embedding_norm.forward(&x)?;
        // Additive mask (batch, 1, 1, seq): 0 where attended, very negative on padding.
        let additive = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((batch, 1, 1, seq))?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, seq, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        for layer in &self.layers {
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&additive)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((
                batch,
                seq,
                self.heads * self.head_dim,
            ))?;
            let attended = layer.attention_out.forward(&context)?;
            x = layer.attention_norm.forward(&(attended + &x)?)?;
            let hidden = layer.intermediate.forward(&x)?.gelu_erf()?;
            let out = layer.output.forward(&hidden)?;
            x = layer.output_norm.forward(&(out + &x)?)?;
        }
        Ok(x)
    }
}

/// One text's embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub values: Vec<f32>,
    /// The text had more tokens than the model takes and was cut.
    pub truncated: bool,
    /// Tokens the model saw, [CLS] and [SEP] included.
    pub tokens: usize,
}

/// The local sentence-embedding model.
#[derive(Debug)]
pub struct MiniLm {
    tokenizer: Tokenizer,
    bert: Bert,
    dimension: usize,
    max_tokens: usize,
    model_id: String,
}

/// Where bootstrap installs the model.
pub fn default_model_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/apex/tools/models/all-MiniLM-L6-v2")
}

impl MiniLm {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, max_tokens: usize) -> anyhow::Result<Self> {
        let config: BertConfig = serde_json::from_slice(
            &std::fs::read(dir.join("config.json"))
                .with_context(|| format!("model config {}", dir.join("config.json").display()))?,
        )
        .context("model config.json")?;
        if !config.hidden_act.is_empty() && config.hidden_act != "gelu" {
            bail!(
                "hidden_act {:?} is not supported (gelu only)",
                config.hidden_act
            );
        }
        if max_tokens < 3 || max_tokens > config.max_position_embeddings {
            bail!(
                "max_tokens {max_tokens} must be between 3 and the model's {}",
                config.max_position_embeddings
            );
        }
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
            anyhow::anyhow!("tokenizer {}: {e}", dir.join("tokenizer.json").display())
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        let device = Device::Cpu;
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &device)
            .with_context(|| {
                format!("model weights {}", dir.join("model.safetensors").display())
            })?;
        let weights = weights
            .into_iter()
            .filter(|(_, t)| t.dtype() == DType::F32)
            .collect();
        let vb = VarBuilder::from_tensors(weights, DType::F32, &device);
        let bert = Bert::load(vb, &config).context("model weights do not match config.json")?;
        Ok(Self {
            tokenizer,
            bert,
            dimension: config.hidden_size,
            max_tokens,
            model_id: "sentence-transformers/all-MiniLM-L6-v2".to_owned(),
        })
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Every token id of `text`, [CLS] … [SEP], uncut.
    pub fn tokenize_full(&self, text: &str) -> anyhow::Result<(Vec<u32>, usize)> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        let ids = encoding.get_ids().to_vec();
        let n = ids.len();
        Ok((ids, n))
    }

    /// Token ids of `text`, [CLS] … [SEP], cut to `max_tokens` (and whether it was cut).
    pub fn tokenize(&self, text: &str) -> anyhow::Result<(Vec<u32>, bool)> {
        let (ids, _) = self.tokenize_full(text)?;
        if ids.len() <= self.max_tokens {
            return Ok((ids.to_vec(), false));
        }
        // Keep [CLS] and the first max_tokens - 2 word pieces, then [SEP].
        let mut cut = ids[..self.max_tokens - 1].to_vec();
        cut.push(ids[ids.len() - 1]);
        Ok((cut, true))
    }

    /// Embeds token windows (each from [`tokenize`](Self::tokenize)) as one padded batch.
    pub fn embed_ids(&self, windows: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let batch = windows.len();
        let seq = windows.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; batch * seq];
        let mut mask = vec![0u32; batch * seq];
        for (row, w) in windows.iter().enumerate() {
            ids[row * seq..row * seq + w.len()].copy_from_slice(w);
            mask[row * seq..row * seq + w.len()].fill(1);
        }
        let device = Device::Cpu;
        let ids = Tensor::from_vec(ids, (batch, seq), &device)?;
        let mask = Tensor::from_vec(mask, (batch, seq), &device)?;
        let hidden = self.bert.forward(&ids, &mask)?;
        // Mean over the attended tokens, then unit length.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }

    /// Embeds texts: tokenises, batches them as given, and reports truncation.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Embedded>> {
        let mut windows = Vec::with_capacity(texts.len());
        let mut truncated = Vec::with_capacity(texts.len());
        for t in texts {
            let (w, cut) = self.tokenize(t)?;
            windows.push(w);
            truncated.push(cut);
        }
        let vectors = self.embed_ids(&windows)?;
        Ok(vectors
            .into_iter()
            .zip(windows.iter().zip(truncated))
            .map(|(values, (w, truncated))| Embedded {
                values,
                truncated,
                tokens: w.len(),
            })
            .collect())
    }
}
