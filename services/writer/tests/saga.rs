//! The writer's saga against the local stack's real PostgreSQL, FalkorDB (or Neo4j when
//! `APEX_NEO4J_URI` is set), vector server and Redis: consistency, idempotency,
//! concurrency, versions, each store failing mid-saga, the breaker, deletes, bad input.

mod common;

use apex_proto::writer::v1::{DeleteDocumentRequest, StepState, Store};
use common::{Fixture, Harness, failed_outcomes, outcome, view};
use sqlx::Row as _;
use tonic::Code;
use uuid::Uuid;

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
    let mut h = Harness::start(|_| {}).await;
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
    let mut h = Harness::start(|_| {}).await;
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
    let h = Harness::start(|_| {}).await;
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
    let mut h = Harness::start(|_| {}).await;
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

#[tokio::test]
async fn postgres_down_fails_the_first_step_and_touches_nothing() {
    let mut h = Harness::start(|_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    let req = f.request(&h.blobs, "").await;
    h.postgres.refuse();
    let err = h.write(req.clone()).await.expect_err("refused");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let outcomes = failed_outcomes(&err);
    assert_eq!(outcome(&outcomes, Store::Postgres), StepState::Failed);
    for store in [Store::Graph, Store::Vectors, Store::Redis] {
        assert_eq!(outcome(&outcomes, store), StepState::Skipped, "{store:?}");
    }
    h.postgres.restore();
    assert_absent_everywhere(&h.inspect(f.id).await);
    h.write_until_ok(req).await;
    assert!(h.inspect(f.id).await.consistent);
    h.stop().await;
}

#[tokio::test]
async fn graph_down_mid_saga_compensates_postgres_and_vectors() {
    let mut h = Harness::start(|_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    let req = f.request(&h.blobs, "").await;
    h.graph.refuse();
    let err = h.write(req.clone()).await.expect_err("refused");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("graph"), "{}", err.message());
    let outcomes = failed_outcomes(&err);
    assert_eq!(outcome(&outcomes, Store::Postgres), StepState::Compensated);
    assert_eq!(outcome(&outcomes, Store::Vectors), StepState::Compensated);
    assert_eq!(outcome(&outcomes, Store::Graph), StepState::Failed);
    assert_eq!(outcome(&outcomes, Store::Redis), StepState::Skipped);
    // With the graph away, Inspect still answers from the others and says why not.
    let partial = h.inspect(f.id).await;
    assert!(!partial.consistent);
    assert!(
        view(&partial, Store::Graph).error.contains("graph"),
        "{partial:?}"
    );
    assert!(view(&partial, Store::Postgres).error.is_empty());
    h.graph.restore();
    assert_absent_everywhere(&h.inspect(f.id).await);
    assert_eq!(saga_rows(&h, f.id, "compensated").await, 1);
    h.write_until_ok(req).await;
    assert!(h.inspect(f.id).await.consistent);
    h.stop().await;
}

#[tokio::test]
async fn a_failed_update_puts_the_previous_version_back_everywhere() {
    let mut h = Harness::start(|_| {}).await;
    let id = Uuid::new_v4();
    let v1 = Fixture::new(id, 1);
    h.write(v1.request(&h.blobs, "").await).await.expect("v1");
    let before = h.inspect(id).await;
    let mut v2 = Fixture::new(id, 2);
    v2.chunks = 7;
    let req = v2.request(&h.blobs, "").await;
    h.graph.refuse();
    let err = h.write(req.clone()).await.expect_err("refused");
    assert_eq!(
        outcome(&failed_outcomes(&err), Store::Postgres),
        StepState::Compensated
    );
    h.graph.restore();
    let after = h.inspect(id).await;
    assert!(after.consistent, "{after:?}");
    assert_eq!(
        view(&after, Store::Postgres),
        view(&before, Store::Postgres),
        "PostgreSQL holds version 1 again"
    );
    assert_eq!(view(&after, Store::Vectors), view(&before, Store::Vectors));
    assert_eq!(view(&after, Store::Redis), view(&before, Store::Redis));
    h.write_until_ok(req).await;
    assert_eq!(view(&h.inspect(id).await, Store::Graph).chunk_count, 7);
    h.stop().await;
}

#[tokio::test]
async fn vectors_down_mid_saga_compensates_postgres_and_the_graph() {
    let mut h = Harness::start(|_| {}).await;
    // A first document makes the collection, so the next write gets past the checks
    // made before anything is written.
    let warm = Fixture::new(Uuid::new_v4(), 1);
    h.write(warm.request(&h.blobs, "").await)
        .await
        .expect("warm-up");
    let f = Fixture::new(Uuid::new_v4(), 1);
    let req = f.request(&h.blobs, "").await;
    h.vectors.refuse();
    let err = h.write(req.clone()).await.expect_err("refused");
    assert!(
        matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{err:?}"
    );
    let outcomes = failed_outcomes(&err);
    assert_eq!(outcome(&outcomes, Store::Postgres), StepState::Compensated);
    assert_eq!(outcome(&outcomes, Store::Graph), StepState::Compensated);
    assert_eq!(outcome(&outcomes, Store::Vectors), StepState::Failed);
    h.vectors.restore();
    assert_absent_everywhere(&h.inspect(f.id).await);
    assert!(
        h.inspect(warm.id).await.consistent,
        "other documents are untouched"
    );
    h.write_until_ok(req).await;
    assert!(h.inspect(f.id).await.consistent);
    h.stop().await;
}

#[tokio::test]
async fn redis_lost_mid_saga_compensates_every_earlier_step() {
    let mut h = Harness::start(|_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    let req = f.request(&h.blobs, "").await;
    // Redis dies as the saga's last step sends the document state.
    h.redis.cut_on(&format!("apex:doc:{}", f.id));
    let err = h.write(req.clone()).await.expect_err("refused");
    let outcomes = failed_outcomes(&err);
    assert_eq!(
        outcome(&outcomes, Store::Redis),
        StepState::Failed,
        "{err:?}"
    );
    for store in [Store::Postgres, Store::Graph, Store::Vectors] {
        assert_eq!(
            outcome(&outcomes, store),
            StepState::Compensated,
            "{store:?}"
        );
    }
    h.redis.restore();
    assert_absent_everywhere(&h.inspect(f.id).await);
    // The lock the failed write could not release expires; then the write goes through.
    h.write_until_ok(req).await;
    assert!(h.inspect(f.id).await.consistent);
    h.stop().await;
}

#[tokio::test]
async fn an_open_breaker_fails_fast_and_a_probe_closes_it() {
    let mut h = Harness::start(|s| {
        s.breaker.failure_threshold = 2;
        s.breaker.open_ms = 300;
    })
    .await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    let req = f.request(&h.blobs, "").await;
    h.graph.refuse();
    for _ in 0..2 {
        let err = h.write(req.clone()).await.expect_err("refused");
        assert!(!failed_outcomes(&err).is_empty(), "the saga ran: {err:?}");
    }
    let started = saga_rows(&h, f.id, "started").await;
    let err = h.write(req.clone()).await.expect_err("refused");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("circuit open"), "{}", err.message());
    assert!(failed_outcomes(&err).is_empty(), "nothing was touched");
    assert_eq!(
        saga_rows(&h, f.id, "started").await,
        started,
        "no saga started"
    );
    h.graph.restore();
    // After the open period one probe goes through and closes the breaker.
    h.write_until_ok(req.clone()).await;
    h.write(req).await.expect("closed again");
    assert!(h.inspect(f.id).await.consistent);
    h.stop().await;
}

#[tokio::test]
async fn delete_removes_the_document_everywhere_and_is_idempotent() {
    let mut h = Harness::start(|_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    h.write(f.request(&h.blobs, "").await).await.expect("write");
    // The embedder cached a vector of the first chunk's text.
    let text = &f.parsed().chunks[0].text;
    let cache_key = format!(
        "apex:embedder:{}:256:{}",
        f.model,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
    );
    let redis = redis::Client::open(common::direct_settings().redis.url).expect("redis");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let _: () = redis::AsyncCommands::set_ex(&mut conn, &cache_key, "cached", 600)
        .await
        .expect("set");
    let delete = DeleteDocumentRequest {
        document_id: f.id.to_string(),
        idempotency_key: String::new(),
    };
    let first = h
        .client
        .delete_document(delete.clone())
        .await
        .expect("delete")
        .into_inner();
    assert!(first.existed);
    assert_absent_everywhere(&h.inspect(f.id).await);
    let cached: bool = redis::AsyncCommands::exists(&mut conn, &cache_key)
        .await
        .expect("exists");
    assert!(!cached, "the deleted text's cached embedding is gone");
    let nodes = h
        .observer
        .graph
        .entity_node_counts(&f.entity_ids())
        .await
        .expect("graph");
    assert!(
        nodes.values().all(|&n| n == 0),
        "no orphaned entities: {nodes:?}"
    );
    let chunks = rows(&h, "chunks", f.id).await;
    assert_eq!(chunks, 0);
    let again = h
        .client
        .delete_document(delete)
        .await
        .expect("second delete")
        .into_inner();
    assert!(!again.existed);
    assert!(
        again
            .outcomes
            .iter()
            .all(|o| o.state == StepState::Written as i32)
    );
    // A deleted document can be written again.
    h.write(f.request(&h.blobs, "").await)
        .await
        .expect("rewrite");
    assert!(h.inspect(f.id).await.consistent);
    h.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_the_reason_and_writes_nothing() {
    let mut h = Harness::start(|_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    let good = f.request(&h.blobs, "").await;

    let mut no_parsed = good.clone();
    no_parsed.parsed = None;
    let err = h.write(no_parsed).await.expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("parsed"), "{}", err.message());

    let mut missing = good.clone();
    missing.entities = Some(apex_proto::common::v1::BlobRef {
        key: format!("entities/{}", "0".repeat(64)),
        sha256: "0".repeat(64),
        ..Default::default()
    });
    assert_eq!(
        h.write(missing).await.expect_err("refused").code(),
        Code::NotFound
    );

    // Vectors of another document's chunks.
    let stranger = Fixture::new(Uuid::new_v4(), 1);
    let mut foreign = good.clone();
    foreign.vectors = stranger.request(&h.blobs, "").await.vectors;
    let err = h.write(foreign).await.expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("not a chunk"), "{}", err.message());

    let mut bad_id = good.clone();
    bad_id.document.as_mut().expect("doc").document_id = "not-a-uuid".into();
    assert_eq!(
        h.write(bad_id).await.expect_err("refused").code(),
        Code::InvalidArgument
    );

    let err = h
        .client
        .delete_document(DeleteDocumentRequest {
            document_id: "nope".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);

    assert_absent_everywhere(&h.inspect(f.id).await);
    h.stop().await;
}

#[tokio::test]
async fn mixing_models_or_dimensions_in_one_collection_is_refused() {
    let mut h = Harness::start(|_| {}).await;
    // A collection of the name the writer would use, made with another dimension.
    let mut f = Fixture::new(Uuid::new_v4(), 1);
    f.model = format!("model-{}", Uuid::new_v4().simple());
    let name =
        apex_writer::vectors::collection_name(&h.settings.vectors.collection_prefix, &f.model, 384);
    let qdrant = qdrant_client::Qdrant::from_url(&common::direct_settings().vectors.url)
        .skip_compatibility_check()
        .build()
        .expect("qdrant");
    qdrant
        .create_collection(
            qdrant_client::qdrant::CreateCollectionBuilder::new(&name).vectors_config(
                qdrant_client::qdrant::VectorParamsBuilder::new(
                    8,
                    qdrant_client::qdrant::Distance::Cosine,
                ),
            ),
        )
        .await
        .expect("create");
    let err = h
        .write(f.request(&h.blobs, "").await)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains(&name) && err.message().contains("dimension 8"),
        "{}",
        err.message()
    );
    assert_absent_everywhere(&h.inspect(f.id).await);

    // Two model ids that map to one collection name: the second is refused.
    let mut a = Fixture::new(Uuid::new_v4(), 1);
    a.model = format!("org/m-{}", Uuid::new_v4().simple());
    h.write(a.request(&h.blobs, "").await)
        .await
        .expect("first model");
    let mut b = Fixture::new(Uuid::new_v4(), 1);
    b.model = a.model.replace('/', "-");
    let err = h
        .write(b.request(&h.blobs, "").await)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("cannot be mixed"),
        "{}",
        err.message()
    );
    h.stop().await;
}

#[tokio::test]
async fn search_finds_the_nearest_chunks_with_text_and_entities() {
    use apex_proto::writer::v1::SearchChunksRequest;
    let mut h = Harness::start(|_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    h.write(f.request(&h.blobs, &format!("search-{}", f.id)).await)
        .await
        .expect("write");
    let mut query = vec![0.0f32; f.dimension as usize];
    query[3] = 1.0;
    let request = |source: &str, limit: u32, vector: Vec<f32>| SearchChunksRequest {
        vector,
        model_id: f.model.clone(),
        limit,
        source: source.to_owned(),
    };
    let found = h
        .client
        .search_chunks(request("", 3, query.clone()))
        .await
        .expect("search")
        .into_inner();
    assert_eq!(found.hits.len(), 3, "{found:?}");
    let best = &found.hits[0];
    assert_eq!(best.chunk_id, f.chunk_id(3).to_string());
    assert_eq!(best.document_id, f.id.to_string());
    assert_eq!((best.version, best.ordinal), (1, 3));
    assert!((best.score - 1.0).abs() < 1e-4, "{}", best.score);
    assert!(best.text.starts_with("Chunk 3 of"), "{}", best.text);
    // Entity 3 is mentioned in chunk 3 (mentions go round-robin over the chunks).
    let names: Vec<&str> = best.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, [format!("ORG-{}-3", f.tag).to_uppercase().as_str()]);
    assert_eq!(best.entities[0].entity_type, "ORGANIZATION");
    assert!(found.hits[1].score < best.score);

    // Another source's chunks only: none of this document's.
    let other = h
        .client
        .search_chunks(request("elsewhere", 3, query.clone()))
        .await
        .expect("search")
        .into_inner();
    assert!(
        other
            .hits
            .iter()
            .all(|hit| hit.document_id != f.id.to_string()),
        "{other:?}"
    );
    let same = h
        .client
        .search_chunks(request("test", 1, query.clone()))
        .await
        .expect("search")
        .into_inner();
    assert_eq!(same.hits[0].chunk_id, f.chunk_id(3).to_string());

    // Bad queries name the field.
    for (bad, field) in [
        (request("", 101, query.clone()), "at most 100"),
        (request("", 3, Vec::new()), "empty"),
        (request("", 3, vec![f32::NAN; 384]), "NaN"),
    ] {
        let status = h.client.search_chunks(bad).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(field), "{}", status.message());
    }
    // A model nothing was written with: no collection, no hits, no error.
    let none = h
        .client
        .search_chunks(SearchChunksRequest {
            model_id: "never/used".into(),
            ..request("", 3, query)
        })
        .await
        .expect("search")
        .into_inner();
    assert!(none.hits.is_empty());
    h.stop().await;
}

/// grpcurl against the writer lists the writer, health and reflection, over reflection v1 and
/// v1alpha, and none of the other services whose contracts share the descriptor set.
#[tokio::test]
async fn reflection_lists_only_the_writer() {
    let h = Harness::start(|_| {}).await;
    let (v1, v1alpha) = apex_common::grpc::reflected_services(h.channel.clone())
        .await
        .expect("reflection");
    assert_eq!(
        v1,
        apex_common::grpc::expected_reflection(apex_writer::SERVICES)
    );
    assert_eq!(v1alpha, v1);
    h.stop().await;
}
