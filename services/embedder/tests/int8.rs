//! The int8 graph and its fidelity gate, on the real model: the int8 graph bootstrap builds
//! passes (cosine ≥ 0.99 on every gate text and the same top-10 documents for ≥ 90 % of the
//! queries) and stays close to sentence-transformers itself; a graph quantized carelessly
//! (every MatMul in 8 bits, a real int8 model that drifts) fails, and the embedder then runs
//! fp32 and says so, or refuses to start when int8 was asked for.

mod common;

use std::path::Path;
use std::sync::Arc;

use apex_common::blob::BlobStore;
use apex_embedder::engine::{Int8Encoder, fp32_graph, int8_graph, run_gate};
use apex_embedder::gate_cache::cache_path;
use apex_embedder::model::{MiniLm, default_model_dir};
use apex_embedder::onnx::{OnnxEncoder, default_library};
use apex_embedder::{EmbedderGrpc, EmbedderSettings, Precision};

/// OpenVINO out of the way: these tests are about ONNX Runtime's int8 graph, which `auto`
/// runs where OpenVINO is not installed or cannot compute in bf16.
fn without_openvino() -> std::path::PathBuf {
    "/nonexistent/libopenvino_c.so".into()
}

fn load(graph: &Path) -> OnnxEncoder {
    OnnxEncoder::load(&default_library(), graph, 1)
        .unwrap_or_else(|e| panic!("{}: {e:#} (run deploy/local/bootstrap)", graph.display()))
}

#[test]
fn the_int8_graph_passes_the_fidelity_gate() {
    let dir = default_model_dir();
    let model = MiniLm::load(&dir, 256).expect("model");
    let mut fp32 = load(&fp32_graph(&dir));
    let mut int8 = Int8Encoder::new(load(&int8_graph(&dir)), &model, &mut fp32).expect("int8");
    let verdict = run_gate(&model, &mut fp32, &mut int8).expect("gate");
    println!("int8 gate: {verdict:?}");
    assert!(verdict.passed(), "{:?}", verdict.failure());
    assert!(verdict.texts >= 150);

    // And against sentence-transformers' own vectors.
    let low = common::below_reference(&model, &mut int8);
    assert!(low.is_empty(), "{low:?}");
}

/// A directory with links to these files of the installed model.
fn linked_model_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = default_model_dir();
    let out = tempfile::tempdir().expect("dir");
    for name in names {
        std::os::unix::fs::symlink(dir.join(name), out.path().join(name)).expect("link");
    }
    out
}

const MODEL_FILES: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "model.onnx",
];

/// A model directory whose int8 graph has every MatMul quantized, the down-projections too:
/// built by the same quantizer from the same fused graph.
fn drifting_model_dir() -> tempfile::TempDir {
    let dir = default_model_dir();
    let out = linked_model_dir(&MODEL_FILES);
    let python = dir
        .ancestors()
        .nth(2)
        .expect("tools dir")
        .join("venv/bin/python");
    let script = format!(
        "import onnx\nfrom onnxruntime.quantization import QuantType, quantize_dynamic\n\
         quantize_dynamic({src:?}, {dst:?}, weight_type=QuantType.QInt8, per_channel=True, \
         op_types_to_quantize=['MatMul', 'Attention'], \
         extra_options={{'DefaultTensorType': onnx.TensorProto.FLOAT}})\n",
        src = dir.join("model.fused.onnx").display().to_string(),
        dst = out.path().join("model.int8.onnx").display().to_string(),
    );
    let status = std::process::Command::new(&python)
        .args(["-c", &script])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (run deploy/local/bootstrap)", python.display()));
    assert!(status.success(), "quantizing the drifting graph failed");
    out
}

#[test]
fn a_drifting_int8_graph_fails_the_gate_and_the_embedder_falls_back_to_fp32() {
    let dir = drifting_model_dir();
    let model = MiniLm::load(dir.path(), 256).expect("model");
    let verdict = run_gate(
        &model,
        &mut load(&fp32_graph(dir.path())),
        &mut load(&int8_graph(dir.path())),
    )
    .expect("gate");
    println!("drifting graph: {verdict:?}");
    let why = verdict.failure().expect("the drifting graph must fail");
    assert!(why.contains("cosine against fp32 fell to"), "{why}");

    let blobs = tempfile::tempdir().expect("blobs");
    let store = Arc::new(BlobStore::open(&blobs.path().display().to_string()).expect("blobs"));
    let settings = |precision| EmbedderSettings {
        model_dir: dir.path().to_owned(),
        openvino_library: without_openvino(),
        precision,
        workers: 1,
        cache_url: String::new(),
        ..EmbedderSettings::default()
    };
    let auto = EmbedderGrpc::from_settings(settings(Precision::Auto), store.clone())
        .expect("auto falls back");
    assert_eq!(auto.engine(), "onnxruntime-fp32");
    let err = EmbedderGrpc::from_settings(settings(Precision::Int8), store)
        .expect_err("int8 asked for, and it fails the gate");
    let err = format!("{err:#}");
    println!("precision int8: {err}");
    assert!(err.contains("failed the fidelity gate: cosine"), "{err}");
}

#[test]
fn without_openvino_the_default_embedder_runs_int8_and_fp32_when_asked() {
    let blobs = tempfile::tempdir().expect("blobs");
    let store = Arc::new(BlobStore::open(&blobs.path().display().to_string()).expect("blobs"));
    let settings = |precision| EmbedderSettings {
        openvino_library: without_openvino(),
        precision,
        workers: 1,
        cache_url: String::new(),
        ..EmbedderSettings::default()
    };
    let auto = EmbedderGrpc::from_settings(settings(Precision::Auto), store.clone()).expect("auto");
    assert_eq!(auto.engine(), "onnxruntime-int8");
    let fp32 = EmbedderGrpc::from_settings(settings(Precision::Fp32), store).expect("fp32");
    assert_eq!(fp32.engine(), "onnxruntime-fp32");
}

#[test]
fn the_gate_verdict_is_kept_beside_the_graph_and_redone_when_the_graph_changes() {
    let mut names = MODEL_FILES.to_vec();
    names.push("model.int8.onnx");
    let dir = linked_model_dir(&names);
    let blobs = tempfile::tempdir().expect("blobs");
    let store = Arc::new(BlobStore::open(&blobs.path().display().to_string()).expect("blobs"));
    let start = || {
        EmbedderGrpc::from_settings(
            EmbedderSettings {
                model_dir: dir.path().to_owned(),
                openvino_library: without_openvino(),
                workers: 1,
                cache_url: String::new(),
                ..EmbedderSettings::default()
            },
            store.clone(),
        )
        .expect("start")
        .engine()
    };
    let kept = cache_path(&int8_graph(dir.path()));
    assert!(!kept.exists());
    assert_eq!(start(), "onnxruntime-int8");
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&kept).expect("verdict kept")).expect("json");
    assert!(verdict["min_cosine"].as_f64().expect("cosine") >= 0.99);

    // The kept verdict is what the next start believes: marked as failed, it runs fp32.
    let mut failed = verdict.clone();
    failed["min_cosine"] = serde_json::json!(0.5);
    std::fs::write(&kept, serde_json::to_vec(&failed).expect("json")).expect("write");
    assert_eq!(start(), "onnxruntime-fp32");

    // Another int8 graph (the drifting one) is judged afresh, whatever the file says.
    std::fs::write(&kept, serde_json::to_vec(&verdict).expect("json")).expect("write");
    let drifting = drifting_model_dir();
    std::fs::remove_file(int8_graph(dir.path())).expect("unlink");
    std::fs::copy(int8_graph(drifting.path()), int8_graph(dir.path())).expect("copy");
    assert_eq!(start(), "onnxruntime-fp32");
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&kept).expect("verdict")).expect("json");
    assert!(
        again["min_cosine"].as_f64().expect("cosine") < 0.99,
        "{again}"
    );
    assert_ne!(again["key"], verdict["key"]);
}
