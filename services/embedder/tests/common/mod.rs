//! What several of the embedder's test binaries share: sentence-transformers' own vectors
//! of the reference texts (`fixtures/minilm-reference.json`).

#![allow(dead_code)] // each test binary uses what it needs

use apex_embedder::batcher::Encoder;
use apex_embedder::gate;
use apex_embedder::model::MiniLm;

/// The reference texts and sentence-transformers' vector of each.
pub(crate) fn reference() -> Vec<(String, Vec<f32>)> {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/minilm-reference.json")).expect("fixture");
    fixture["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let text = item["text"].as_str().expect("text").to_owned();
            let vector = item["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect();
            (text, vector)
        })
        .collect()
}

/// The vector sentence-transformers gave `text` (a reference text).
pub(crate) fn reference_of(text: &str) -> Vec<f32> {
    reference()
        .into_iter()
        .find(|(t, _)| t == text)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{text:?} not in the fixture"))
}

/// Cosine similarity, in f64.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// The reference texts whose vector from `encoder` (one text at a time) has a cosine below
/// the fidelity gate's bound with sentence-transformers', each with its cosine.
pub(crate) fn below_reference(model: &MiniLm, encoder: &mut dyn Encoder) -> Vec<String> {
    let mut low = Vec::new();
    for (text, want) in reference() {
        let got = encoder
            .encode(&[model.tokenize(&text).expect("tokens").0])
            .expect("embed");
        let c: f32 = got[0].iter().zip(&want).map(|(a, b)| a * b).sum();
        println!("{c:.4} {text:?}");
        low.extend((c < gate::MIN_COSINE).then(|| format!("{text:?}: cosine {c}")));
    }
    low
}
