//! The in-process model against vectors computed by sentence-transformers itself
//! (`tests/fixtures/minilm-reference.json`): cosine ≥ 0.999 for every sentence, alone and
//! in a padded batch.

mod common;

use apex_embedder::model::{MiniLm, default_model_dir};
use common::cosine;

#[test]
fn vectors_match_sentence_transformers() {
    let items = common::reference();
    let model =
        MiniLm::load(&default_model_dir(), 256).expect("model (run deploy/local/bootstrap)");
    assert_eq!(model.dimension(), 384);
    assert!(items.len() >= 10);
    let texts: Vec<&str> = items.iter().map(|(t, _)| t.as_str()).collect();
    // All at once (padded to the longest) and one by one must both agree.
    let batched = model.embed(&texts).expect("embed batch");
    for (i, (_, want)) in items.iter().enumerate() {
        let alone = model.embed(&[texts[i]]).expect("embed one");
        for (how, got) in [("batched", &batched[i]), ("alone", &alone[0])] {
            let c = cosine(&got.values, want);
            assert!(c >= 0.999, "{how} {:?}: cosine {c}", texts[i]);
            let norm: f32 = got.values.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "unit length, not {norm}");
        }
    }
}

#[test]
fn the_onnx_runtime_encoder_matches_sentence_transformers_too() {
    let items = common::reference();
    let dir = default_model_dir();
    let tokens = MiniLm::load(&dir, 256).expect("model");
    let mut encoder = apex_embedder::onnx::OnnxEncoder::load(
        &apex_embedder::onnx::default_library(),
        &dir.join("model.onnx"),
        1,
    )
    .expect("ONNX Runtime and model.onnx (run deploy/local/bootstrap)");
    let windows: Vec<Vec<u32>> = items
        .iter()
        .map(|(text, _)| tokens.tokenize(text).expect("tokens").0)
        .collect();
    let got = encoder.embed_ids(&windows).expect("embed");
    for ((text, want), got) in items.iter().zip(&got) {
        let c = cosine(got, want);
        assert!(c >= 0.999, "{text:?}: cosine {c}");
    }
}
