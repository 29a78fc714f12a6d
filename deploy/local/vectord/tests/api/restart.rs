//! The real binary, stopped with SIGTERM and started again on the same data directory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::*;

struct Proc {
    child: Child,
    addr: String,
}

fn spawn(data_dir: &std::path::Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_apex-vectord"))
        .env("APEX_VECTORD__LISTEN_ADDR", "127.0.0.1:0")
        .env("APEX_VECTORD__DATA_DIR", data_dir)
        .env("APEX_VECTORD__TELEMETRY__LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn apex-vectord");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // The server logs its real address once it accepts calls.
    let addr = loop {
        let line = lines
            .next()
            .expect("apex-vectord exited before listening")
            .expect("read log");
        let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if log["message"] == "grpc server listening" {
            break log["addr"].as_str().expect("addr").to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Proc { child, addr }
}

fn stop(mut proc: Proc) {
    kill(Pid::from_raw(proc.child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = proc.child.wait().expect("wait");
    assert!(status.success(), "apex-vectord exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_server_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = spawn(dir.path());
    let c = client(&format!("http://{}", first.addr));
    create(&c, "kept", 8, Distance::Dot).await;
    c.create_field_index(
        CreateFieldIndexCollectionBuilder::new("kept", "doc", FieldType::Keyword).wait(true),
    )
    .await
    .expect("index");
    let mut rng = Rng::new(5);
    let vectors: HashMap<u64, Vec<f32>> = (0..500).map(|i| (i, rng.vector(8))).collect();
    let points: Vec<PointStruct> = vectors
        .iter()
        .map(|(id, v)| {
            PointStruct::new(
                *id,
                v.clone(),
                payload(json!({"doc": format!("d{}", id % 4)})),
            )
        })
        .collect();
    c.upsert_points(UpsertPointsBuilder::new("kept", points).wait(true))
        .await
        .expect("upsert");
    c.delete_points(
        DeletePointsBuilder::new("kept")
            .points(PointsIdsList {
                ids: vec![0_u64.into()],
            })
            .wait(true),
    )
    .await
    .expect("delete");
    create(&c, "dropped", 8, Distance::Dot).await;
    assert!(c.delete_collection("dropped").await.expect("drop").result);
    let query = rng.vector(8);
    let before = c
        .search_points(SearchPointsBuilder::new("kept", query.clone(), 5))
        .await
        .expect("search")
        .result;
    drop(c);
    stop(first);

    let second = spawn(dir.path());
    let c = client(&format!("http://{}", second.addr));
    let names: Vec<String> = c
        .list_collections()
        .await
        .expect("list")
        .collections
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(count(&c, "kept", None).await, 499);
    assert_eq!(
        count(
            &c,
            "kept",
            Some(Filter::must([Condition::matches("doc", "d1".to_owned())]))
        )
        .await,
        125
    );
    let info = c
        .collection_info("kept")
        .await
        .expect("info")
        .result
        .expect("info");
    assert!(info.payload_schema.contains_key("doc"), "index kept");
    let got = c
        .get_points(GetPointsBuilder::new("kept", vec![PointId::from(42_u64)]).with_vectors(true))
        .await
        .expect("get")
        .result;
    let stored = match got[0].vectors.clone().and_then(|v| v.vectors_options) {
        Some(qdrant::vectors_output::VectorsOptions::Vector(v)) => match v.into_vector() {
            qdrant::vector_output::Vector::Dense(d) => d.data,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert_eq!(stored, vectors[&42]);
    let after = c
        .search_points(SearchPointsBuilder::new("kept", query, 5))
        .await
        .expect("search")
        .result;
    assert_eq!(before, after);
    stop(second);
}
