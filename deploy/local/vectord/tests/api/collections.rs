//! Collections: their lifecycle, and bad input refused with the reason and nothing applied.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_lifecycle() {
    let h = start().await;
    let c = &h.client;

    let health = c.health_check().await.expect("health");
    assert_eq!(health.title, "qdrant - vector search engine");
    assert!(!c.collection_exists("docs").await.expect("exists"));

    create(c, "docs", 4, Distance::Dot).await;
    assert!(c.collection_exists("docs").await.expect("exists"));
    let names: Vec<String> = c
        .list_collections()
        .await
        .expect("list")
        .collections
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["docs"]);

    let info = c
        .collection_info("docs")
        .await
        .expect("info")
        .result
        .expect("info result");
    assert_eq!(info.points_count, Some(0));
    assert_eq!(info.status, qdrant::CollectionStatus::Green as i32);
    let params = info.config.and_then(|c| c.params).expect("params");
    match params.vectors_config.and_then(|v| v.config) {
        Some(qdrant::vectors_config::Config::Params(p)) => {
            assert_eq!(p.size, 4);
            assert_eq!(p.distance, Distance::Dot as i32);
        }
        other => panic!("expected single vector params, got {other:?}"),
    }

    // Creating it again is refused, as Qdrant refuses it.
    let (status, message) = code(
        c.create_collection(
            CreateCollectionBuilder::new("docs")
                .vectors_config(VectorParamsBuilder::new(4, Distance::Dot)),
        )
        .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.contains("already exists"), "{message}");

    // Bad definitions are refused with the reason.
    let (status, message) = code(
        c.create_collection(
            CreateCollectionBuilder::new("zero")
                .vectors_config(VectorParamsBuilder::new(0, Distance::Dot)),
        )
        .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.contains("size"), "{message}");
    let (status, _) = code(
        c.create_collection(
            CreateCollectionBuilder::new("a/b")
                .vectors_config(VectorParamsBuilder::new(4, Distance::Dot)),
        )
        .await,
    );
    assert_eq!(status, Code::InvalidArgument);

    assert!(c.delete_collection("docs").await.expect("delete").result);
    assert!(
        !c.delete_collection("docs")
            .await
            .expect("delete again")
            .result
    );
    assert!(!c.collection_exists("docs").await.expect("exists"));
    let (status, message) = code(c.collection_info("docs").await);
    assert_eq!(status, Code::NotFound);
    assert_eq!(message, "Not found: Collection `docs` doesn't exist!");

    // A deleted name can be reused, empty.
    create(c, "docs", 8, Distance::Cosine).await;
    assert_eq!(count(c, "docs", None).await, 0);
    h.server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_reason_and_applies_nothing() {
    let h = start().await;
    let c = &h.client;
    create(c, "v", 4, Distance::Cosine).await;

    // One wrong-dimension point fails the whole batch; nothing of it is written.
    let batch = vec![
        PointStruct::new(1_u64, vec![1.0, 0.0, 0.0, 0.0], Payload::new()),
        PointStruct::new(2_u64, vec![1.0, 0.0, 0.0], Payload::new()),
    ];
    let (status, message) = code(
        c.upsert_points(UpsertPointsBuilder::new("v", batch).wait(true))
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(
        message.contains("Vector dimension error: expected dim: 4, got 3"),
        "{message}"
    );
    assert_eq!(count(c, "v", None).await, 0);

    let (status, message) = code(
        c.search_points(SearchPointsBuilder::new("v", vec![1.0, 2.0], 3))
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.contains("expected dim: 4, got 2"), "{message}");
    let (status, _) = code(
        c.search_points(SearchPointsBuilder::new("v", vec![1.0; 4], 0))
            .await,
    );
    assert_eq!(status, Code::InvalidArgument, "limit 0");
    let (status, message) = code(
        c.search_points(SearchPointsBuilder::new("v", vec![1.0; 4], 3).vector_name("nope"))
            .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.contains("Not existing vector name"), "{message}");
    let (status, message) = code(
        c.upsert_points(UpsertPointsBuilder::new(
            "v",
            vec![PointStruct::new("not-a-uuid", vec![1.0; 4], Payload::new())],
        ))
        .await,
    );
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.contains("UUID"), "{message}");

    // Missing collection: NOT_FOUND everywhere, with Qdrant's wording.
    for (status, message) in [
        code(
            c.upsert_points(UpsertPointsBuilder::new(
                "ghost",
                vec![PointStruct::new(1_u64, vec![1.0; 4], Payload::new())],
            ))
            .await,
        ),
        code(
            c.search_points(SearchPointsBuilder::new("ghost", vec![1.0; 4], 3))
                .await,
        ),
        code(c.count(CountPointsBuilder::new("ghost")).await),
        code(
            c.get_points(GetPointsBuilder::new("ghost", vec![PointId::from(1_u64)]))
                .await,
        ),
        code(c.scroll(ScrollPointsBuilder::new("ghost")).await),
        code(c.collection_info("ghost").await),
        code(
            c.delete_points(DeletePointsBuilder::new("ghost").points(PointsIdsList {
                ids: vec![1_u64.into()],
            }))
            .await,
        ),
    ] {
        assert_eq!(status, Code::NotFound, "{message}");
        assert_eq!(message, "Not found: Collection `ghost` doesn't exist!");
    }

    // What is not implemented says so, with the method's name; never a silent success.
    let (status, message) = code(
        c.recommend(RecommendPointsBuilder::new("v", 3).add_positive(1_u64))
            .await,
    );
    assert_eq!(status, Code::Unimplemented);
    assert!(message.contains("qdrant.Points/Recommend"), "{message}");
    let (status, message) = code(
        c.search_points(
            SearchPointsBuilder::new("v", vec![1.0; 4], 3)
                .filter(Filter::must([Condition::matches_text("body", "x")])),
        )
        .await,
    );
    assert_eq!(status, Code::Unimplemented);
    assert!(message.contains("full-text"), "{message}");
    h.server.stop().await.expect("stop");
}
