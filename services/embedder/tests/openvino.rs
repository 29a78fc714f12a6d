//! OpenVINO on the real model: where the CPU computes in bf16 (AMX or AVX-512 BF16) its
//! vectors pass the fidelity gate against ONNX Runtime's fp32 and stay close to
//! sentence-transformers' own, and the default embedder runs it; asked for f32 it computes
//! in f32; a missing library is refused by name when OpenVINO was asked for and passed over
//! otherwise.

mod common;

use std::sync::Arc;

use apex_common::Settings as _;
use apex_common::blob::BlobStore;
use apex_embedder::batcher::Encoder as _;
use apex_embedder::engine::{fp32_graph, run_gate};
use apex_embedder::gate_cache::openvino_cache_path;
use apex_embedder::model::{MiniLm, default_model_dir};
use apex_embedder::onnx::{self, OnnxEncoder};
use apex_embedder::{EmbedderGrpc, EmbedderSettings, EngineChoice, Precision};
use apex_openvino::{OpenVinoEncoder, cpu_has_bf16, default_library};

fn openvino(precision: Option<&str>) -> OpenVinoEncoder {
    OpenVinoEncoder::load(
        &default_library(),
        &fp32_graph(&default_model_dir()),
        1,
        precision,
    )
    .unwrap_or_else(|e| panic!("{e:#} (run deploy/local/bootstrap)"))
}

fn store() -> (tempfile::TempDir, Arc<BlobStore>) {
    let blobs = tempfile::tempdir().expect("blobs");
    let store = Arc::new(BlobStore::open(&blobs.path().display().to_string()).expect("blobs"));
    (blobs, store)
}

#[test]
fn openvino_passes_the_fidelity_gate_and_stays_close_to_sentence_transformers() {
    let dir = default_model_dir();
    let model = MiniLm::load(&dir, 256).expect("model");
    let mut fp32 = OnnxEncoder::load(&onnx::default_library(), &fp32_graph(&dir), 1)
        .expect("ONNX Runtime fp32");
    let mut candidate = openvino(None);
    let expected = if cpu_has_bf16() { "bf16" } else { "f32" };
    assert_eq!(candidate.precision(), expected);
    let verdict = run_gate(&model, &mut fp32, &mut candidate).expect("gate");
    println!("OpenVINO {} gate: {verdict:?}", candidate.precision());
    assert!(verdict.passed(), "{:?}", verdict.failure());
    assert!(verdict.texts >= 150);

    let low = common::below_reference(&model, &mut candidate);
    assert!(low.is_empty(), "{low:?}");

    // A batch of texts of different lengths gives each text its own vector: the same as
    // embedding it alone, padding notwithstanding.
    let windows: Vec<Vec<u32>> = [
        "short",
        "a somewhat longer text about a container at a port",
    ]
    .iter()
    .map(|t| model.tokenize(t).expect("tokens").0)
    .collect();
    let batch = candidate.encode(&windows).expect("batch");
    for (w, v) in windows.iter().zip(&batch) {
        let alone = candidate.encode(std::slice::from_ref(w)).expect("alone");
        let c: f32 = alone[0].iter().zip(v).map(|(a, b)| a * b).sum();
        assert!(c > 0.999, "cosine {c} between batched and alone");
    }
    assert!(candidate.encode(&[]).expect("nothing").is_empty());
}

#[test]
fn asked_for_f32_openvino_computes_in_f32() {
    assert_eq!(openvino(Some("f32")).precision(), "f32");
    let err = OpenVinoEncoder::load(
        &default_library(),
        &default_model_dir().join("no-such-graph.onnx"),
        1,
        None,
    )
    .expect_err("no graph");
    let err = format!("{err:#}");
    assert!(err.contains("no-such-graph.onnx"), "{err}");
}

#[test]
fn the_default_embedder_runs_openvino_where_the_cpu_computes_in_bf16() {
    let (_blobs, store) = store();
    let model_dir = tempfile::tempdir().expect("dir");
    for name in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "model.onnx",
        "model.int8.onnx",
    ] {
        std::os::unix::fs::symlink(default_model_dir().join(name), model_dir.path().join(name))
            .expect("link");
    }
    let settings = |engine, precision| EmbedderSettings {
        model_dir: model_dir.path().to_owned(),
        engine,
        precision,
        workers: 1,
        cache_url: String::new(),
        ..EmbedderSettings::default()
    };
    let auto =
        EmbedderGrpc::from_settings(settings(EngineChoice::Auto, Precision::Auto), store.clone())
            .expect("auto");
    if cpu_has_bf16() {
        assert_eq!(auto.engine(), "openvino-bf16");
        // The verdict is kept beside the model for the next start.
        assert!(openvino_cache_path(model_dir.path(), "bf16").is_file());
    } else {
        assert_eq!(auto.engine(), "onnxruntime-int8");
    }
    let f32 = EmbedderGrpc::from_settings(
        settings(EngineChoice::Openvino, Precision::Fp32),
        store.clone(),
    )
    .expect("openvino f32");
    assert_eq!(f32.engine(), "openvino-f32");
    // Full precision asked for with the engine left to choose: ONNX Runtime's fp32.
    let fp32 =
        EmbedderGrpc::from_settings(settings(EngineChoice::Auto, Precision::Fp32), store.clone())
            .expect("fp32");
    assert_eq!(fp32.engine(), "onnxruntime-fp32");

    // OpenVINO asked for and missing: refused, naming the library; left to choose: passed over.
    let missing = |engine| EmbedderSettings {
        openvino_library: "/nonexistent/libopenvino_c.so".into(),
        ..settings(engine, Precision::Auto)
    };
    let err = EmbedderGrpc::from_settings(missing(EngineChoice::Openvino), store.clone())
        .expect_err("no library");
    let err = format!("{err:#}");
    assert!(err.contains("/nonexistent/libopenvino_c.so"), "{err}");
    let auto = EmbedderGrpc::from_settings(missing(EngineChoice::Auto), store).expect("auto");
    assert_eq!(auto.engine(), "onnxruntime-int8");

    // int8 is ONNX Runtime's graph: with engine openvino the settings say so.
    let problems = settings(EngineChoice::Openvino, Precision::Int8).validate();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("precision int8 is ONNX Runtime's graph")),
        "{problems:?}"
    );
}
