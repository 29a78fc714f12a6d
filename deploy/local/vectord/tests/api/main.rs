//! apex-vectord driven only through `qdrant-client`, as the product drives Qdrant.
//!
//! Each test starts its own server on 127.0.0.1 (port 0) over a temporary data directory;
//! the restart test runs the real binary and stops it with SIGTERM.

mod collections;
mod points;
mod restart;
mod search;

use std::collections::{HashMap, HashSet};

use apex_vectord::bench::Rng;
use apex_vectord::{Server, VectordSettings};
use qdrant_client::qdrant::{
    self, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    GetPointsBuilder, PointId, PointStruct, PointsIdsList, QueryPointsBuilder, Range,
    RecommendPointsBuilder, ScrollPointsBuilder, SearchPointsBuilder, UpsertPointsBuilder,
    VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::json;
use tonic::Code;

struct Harness {
    server: Server,
    client: Qdrant,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = VectordSettings {
        data_dir: dir.path().to_path_buf(),
        ..VectordSettings::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::start(settings, listener).expect("start server");
    let client = client(&server.url());
    Harness {
        server,
        client,
        _dir: dir,
    }
}

fn client(url: &str) -> Qdrant {
    Qdrant::from_url(url)
        .skip_compatibility_check()
        .build()
        .expect("client")
}

/// The gRPC code of a failed call (panics if the call succeeded).
fn code<T: std::fmt::Debug>(result: Result<T, QdrantError>) -> (Code, String) {
    match result {
        Err(QdrantError::ResponseError { status }) => (status.code(), status.message().to_owned()),
        other => panic!("expected a gRPC error status, got {other:?}"),
    }
}

async fn create(client: &Qdrant, name: &str, dims: u64, distance: Distance) {
    client
        .create_collection(
            CreateCollectionBuilder::new(name)
                .vectors_config(VectorParamsBuilder::new(dims, distance)),
        )
        .await
        .expect("create collection");
}

fn payload(value: serde_json::Value) -> Payload {
    Payload::try_from(value).expect("payload object")
}

fn num(id: &PointId) -> u64 {
    match id.point_id_options {
        Some(qdrant::point_id::PointIdOptions::Num(n)) => n,
        ref other => panic!("expected a numeric id, got {other:?}"),
    }
}

async fn count(client: &Qdrant, name: &str, filter: Option<Filter>) -> u64 {
    let mut request = CountPointsBuilder::new(name).exact(true);
    if let Some(f) = filter {
        request = request.filter(f);
    }
    client
        .count(request)
        .await
        .expect("count")
        .result
        .expect("count result")
        .count
}
