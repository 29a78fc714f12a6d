//! Deletes, refusals of bad input and of mixed models, search, and what reflection lists.

use super::*;

#[tokio::test]
async fn delete_removes_the_document_everywhere_and_is_idempotent() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
    let f = Fixture::new(Uuid::new_v4(), 1);
    h.write(f.request(&h.blobs, "").await).await.expect("write");
    // The embedder cached a vector of the first chunk's text.
    let text = &f.parsed().chunks[0].text;
    let cache_key = format!(
        "apex:embedder:{}:256:{}",
        f.model,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
    );
    let redis = redis::Client::open(stack.redis_url()).expect("redis");
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
    // A collection of the name the writer would use, made with another dimension.
    let mut f = Fixture::new(Uuid::new_v4(), 1);
    f.model = format!("model-{}", Uuid::new_v4().simple());
    let name =
        apex_writer::vectors::collection_name(&h.settings.vectors.collection_prefix, &f.model, 384);
    let qdrant = qdrant_client::Qdrant::from_url(&stack.vectors_url())
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    use apex_proto::writer::v1::SearchChunksRequest;
    let mut h = Harness::start(&stack, |_| {}).await;
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let h = Harness::start(&stack, |_| {}).await;
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
