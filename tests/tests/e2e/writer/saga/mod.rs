//! The writer's saga against the local stack's real PostgreSQL, FalkorDB (or Neo4j when
//! `APEX_NEO4J_URI` is set), vector server and Redis: consistency, idempotency,
//! concurrency, versions, each store failing mid-saga, the breaker, deletes, bad input.

use super::{Fixture, Harness, failed_outcomes, outcome, view};
use apex_proto::writer::v1::{DeleteDocumentRequest, StepState, Store};
use sqlx::Row as _;
use tonic::Code;
use uuid::Uuid;

mod failures;
mod requests;

async fn saga_rows(h: &Harness, id: Uuid, state: &str) -> i64 {
    sqlx::query(
        "SELECT count(*) FROM saga_log WHERE document_id = $1 AND step = 'saga' AND state = $2",
    )
    .bind(id)
    .bind(state)
    .fetch_one(h.observer.pg.pool())
    .await
    .expect("saga log")
    .get(0)
}

/// Rows of `table` for the document.
async fn rows(h: &Harness, table: &str, id: Uuid) -> i64 {
    sqlx::query(&format!(
        "SELECT count(*) FROM {table} WHERE document_id = $1"
    ))
    .bind(id)
    .fetch_one(h.observer.pg.pool())
    .await
    .expect("count")
    .get(0)
}

fn assert_absent_everywhere(r: &apex_proto::writer::v1::InspectDocumentResponse) {
    for v in &r.stores {
        assert!(
            !v.present,
            "store {} still holds the document: {v:?}",
            v.store
        );
    }
    assert!(r.consistent);
}

#[tokio::test]
async fn a_write_reaches_all_four_stores_and_they_agree() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    let reply = h
        .write(f.request(&h.blobs, &format!("first-{}", f.id)).await)
        .await
        .expect("write");
    assert!(!reply.replayed);
    for store in [Store::Postgres, Store::Graph, Store::Vectors, Store::Redis] {
        assert_eq!(
            outcome(&reply.outcomes, store),
            StepState::Written,
            "{store:?}"
        );
    }
    let r = h.inspect(f.id).await;
    assert!(r.consistent, "{r:?}");
    assert_eq!(
        (r.version, r.content_sha256.as_str()),
        (1, "b".repeat(64).as_str())
    );
    let pg = view(&r, Store::Postgres);
    assert_eq!(
        (pg.version, pg.chunk_count, pg.entity_count, pg.vector_count),
        (1, 20, 10, 20)
    );
    let graph = view(&r, Store::Graph);
    assert_eq!(
        (graph.version, graph.chunk_count, graph.entity_count),
        (1, 20, 10)
    );
    let vectors = view(&r, Store::Vectors);
    assert_eq!((vectors.version, vectors.vector_count), (1, 20));
    let redis = view(&r, Store::Redis);
    assert_eq!((redis.version, redis.chunk_count), (1, 20));
    // The relation chain is in the graph, one edge per pair.
    let g = h
        .observer
        .graph
        .inspect(f.id)
        .await
        .expect("graph")
        .expect("present");
    assert_eq!(g.relations, 9);
    assert_eq!(saga_rows(&h, f.id, "completed").await, 1);
    h.stop().await;
}

#[tokio::test]
async fn the_same_write_twice_is_answered_from_the_idempotency_record() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    let req = f.request(&h.blobs, &format!("idem-{}", f.id)).await;
    let first = h.write(req.clone()).await.expect("first");
    let before = h.inspect(f.id).await;
    let second = h.write(req.clone()).await.expect("second");
    assert!(!first.replayed);
    assert!(second.replayed, "the retry is answered from the record");
    assert_eq!(first.outcomes, second.outcomes);
    assert_eq!(before, h.inspect(f.id).await, "identical state");
    assert_eq!(
        saga_rows(&h, f.id, "started").await,
        1,
        "the second call ran no saga"
    );

    // The same key for a different request is refused, not silently replayed.
    let mut other = req.clone();
    other.document.as_mut().expect("doc").version = 2;
    let err = h.write(other).await.expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("already used"), "{}", err.message());

    // Without a key the same write is simply rewritten to the same state.
    let mut keyless = req;
    keyless.idempotency_key.clear();
    let again = h.write(keyless).await.expect("rewrite");
    assert!(!again.replayed);
    assert_eq!(before, h.inspect(f.id).await);
    h.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_writes_of_one_document_leave_one_of_everything() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let h = Harness::start(&stack, |_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    let req = f.request(&h.blobs, "").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut client = h.client.clone();
        let mut req = req.clone();
        req.idempotency_key = format!("{}-{i}", f.id);
        tasks.push(tokio::spawn(
            async move { client.write_document(req).await },
        ));
    }
    for t in tasks {
        t.await.expect("join").expect("every write succeeds");
    }
    let mut h = h;
    let r = h.inspect(f.id).await;
    assert!(r.consistent, "{r:?}");
    assert_eq!(view(&r, Store::Postgres).chunk_count, 20);
    assert_eq!(view(&r, Store::Graph).chunk_count, 20);
    assert_eq!(
        view(&r, Store::Vectors).vector_count,
        20,
        "one point per chunk"
    );
    let nodes = h
        .observer
        .graph
        .entity_node_counts(&f.entity_ids())
        .await
        .expect("graph");
    assert!(
        nodes.values().all(|&n| n == 1),
        "one node per entity: {nodes:?}"
    );
    let docs = rows(&h, "documents", f.id).await;
    assert_eq!(docs, 1);
    h.stop().await;
}

#[tokio::test]
async fn a_newer_version_replaces_the_older_and_an_older_one_is_refused() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
    let id = Uuid::new_v4();
    let v1 = Fixture::new(id, 1);
    h.write(v1.request(&h.blobs, "").await).await.expect("v1");
    let mut v2 = Fixture::new(id, 2);
    v2.chunks = 12;
    v2.entities = 4;
    v2.tag = format!("{}-v2", id.simple());
    h.write(v2.request(&h.blobs, "").await).await.expect("v2");

    let r = h.inspect(id).await;
    assert!(r.consistent, "{r:?}");
    let pg = view(&r, Store::Postgres);
    assert_eq!((pg.version, pg.chunk_count, pg.entity_count), (2, 12, 4));
    assert_eq!(view(&r, Store::Graph).chunk_count, 12);
    let vectors = view(&r, Store::Vectors);
    assert_eq!(
        (vectors.version, vectors.vector_count),
        (2, 12),
        "v1's points are gone"
    );
    // Entities only v1 named are gone from the graph; v2's are there once.
    let old = h
        .observer
        .graph
        .entity_node_counts(&v1.entity_ids())
        .await
        .expect("graph");
    assert!(old.values().all(|&n| n == 0), "{old:?}");
    let new = h
        .observer
        .graph
        .entity_node_counts(&v2.entity_ids())
        .await
        .expect("graph");
    assert!(new.values().all(|&n| n == 1), "{new:?}");

    let err = h
        .write(v1.request(&h.blobs, "").await)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("version 2"), "{}", err.message());
    assert_eq!(r, h.inspect(id).await, "the refused write changed nothing");
    h.stop().await;
}
