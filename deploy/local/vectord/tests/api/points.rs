//! Points: upsert, count, get, scroll, replace, delete by filter and by ids, and concurrent
//! upserts from eight clients.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_then_count_get_and_scroll() {
    let h = start().await;
    let c = &h.client;
    create(c, "chunks", 3, Distance::Cosine).await;
    let uuid = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26";
    upsert_a_hundred_and_a_uuid(c, uuid).await;
    counts_with_and_without_filters(c).await;
    get_by_ids_in_request_order(c, uuid).await;
    upsert_replaces_the_point(c).await;
    scroll_every_page(c).await;
    h.server.stop().await.expect("stop");
}

/// 100 numbered points in ten documents, and one with a UUID id.
async fn upsert_a_hundred_and_a_uuid(c: &Qdrant, uuid: &str) {
    let points: Vec<PointStruct> = (0..100_u64)
        .map(|i| {
            PointStruct::new(
                i,
                vec![1.0 + i as f32, 2.0, 3.0],
                payload(json!({"doc": format!("d{}", i % 10), "n": i, "tags": ["a", "b"]})),
            )
        })
        .collect();
    let reply = c
        .upsert_points(UpsertPointsBuilder::new("chunks", points).wait(true))
        .await
        .expect("upsert");
    assert_eq!(
        reply.result.expect("result").status,
        qdrant::UpdateStatus::Completed as i32
    );
    // A UUID id, too.
    c.upsert_points(
        UpsertPointsBuilder::new(
            "chunks",
            vec![PointStruct::new(
                uuid,
                vec![0.0, 1.0, 0.0],
                payload(json!({"doc": "u"})),
            )],
        )
        .wait(true),
    )
    .await
    .expect("upsert uuid");
}

async fn counts_with_and_without_filters(c: &Qdrant) {
    assert_eq!(count(c, "chunks", None).await, 101);
    assert_eq!(
        count(
            c,
            "chunks",
            Some(Filter::must([Condition::matches("doc", "d3".to_owned())]))
        )
        .await,
        10
    );
    assert_eq!(
        count(
            c,
            "chunks",
            Some(Filter::must([Condition::range(
                "n",
                Range {
                    gte: Some(90.0),
                    ..Default::default()
                }
            )]))
        )
        .await,
        10
    );
    let info = c
        .collection_info("chunks")
        .await
        .expect("info")
        .result
        .expect("info");
    assert_eq!(info.points_count, Some(101));
}

/// Get by ids: order of the request, missing ids left out, payload by default.
async fn get_by_ids_in_request_order(c: &Qdrant, uuid: &str) {
    let got = c
        .get_points(
            GetPointsBuilder::new(
                "chunks",
                vec![
                    PointId::from(7_u64),
                    PointId::from(1000_u64),
                    PointId::from(uuid.to_owned()),
                ],
            )
            .with_vectors(true),
        )
        .await
        .expect("get")
        .result;
    assert_eq!(got.len(), 2);
    assert_eq!(num(got[0].id.as_ref().expect("id")), 7);
    assert_eq!(got[0].payload["doc"], "d7".to_owned().into());
    assert_eq!(got[0].payload["n"], 7_i64.into());
    let vector = got[0]
        .vectors
        .clone()
        .and_then(|v| match v.vectors_options {
            Some(qdrant::vectors_output::VectorsOptions::Vector(v)) => match v.into_vector() {
                qdrant::vector_output::Vector::Dense(d) => Some(d.data),
                _ => None,
            },
            _ => None,
        })
        .expect("dense vector");
    // Cosine collections store normalised vectors, as Qdrant does.
    let norm = (8.0_f32 * 8.0 + 4.0 + 9.0).sqrt();
    for (got, want) in vector.iter().zip([8.0 / norm, 2.0 / norm, 3.0 / norm]) {
        assert!((got - want).abs() < 1e-6, "{vector:?}");
    }
    assert_eq!(
        got[1].id,
        Some(PointId::from(uuid.to_owned())),
        "uuid ids come back hyphenated"
    );
}

/// Upserting an existing id replaces it, payload and all.
async fn upsert_replaces_the_point(c: &Qdrant) {
    c.upsert_points(
        UpsertPointsBuilder::new(
            "chunks",
            vec![PointStruct::new(
                7_u64,
                vec![1.0, 0.0, 0.0],
                payload(json!({"doc": "replaced"})),
            )],
        )
        .wait(true),
    )
    .await
    .expect("replace");
    assert_eq!(count(c, "chunks", None).await, 101);
    let got = c
        .get_points(GetPointsBuilder::new("chunks", vec![PointId::from(7_u64)]))
        .await
        .expect("get")
        .result;
    assert_eq!(got[0].payload["doc"], "replaced".to_owned().into());
    assert!(
        !got[0].payload.contains_key("n"),
        "upsert replaces the whole payload"
    );
}

/// Scroll every page of 30, with a filter, and without.
async fn scroll_every_page(c: &Qdrant) {
    let mut seen = Vec::new();
    let mut offset: Option<PointId> = None;
    let mut pages = 0;
    loop {
        let mut request = ScrollPointsBuilder::new("chunks")
            .limit(30)
            .filter(Filter::must_not([Condition::matches(
                "doc",
                "u".to_owned(),
            )]));
        if let Some(o) = offset.take() {
            request = request.offset(o);
        }
        let page = c.scroll(request).await.expect("scroll");
        pages += 1;
        assert!(page.result.len() <= 30);
        seen.extend(page.result.iter().map(|p| num(p.id.as_ref().expect("id"))));
        match page.next_page_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(
        seen,
        (0..100).collect::<Vec<u64>>(),
        "ordered by id, each once"
    );
    let page = c
        .scroll(ScrollPointsBuilder::new("chunks"))
        .await
        .expect("scroll");
    assert_eq!(page.result.len(), 10, "default page size is 10");
    assert!(
        !page.result[0].payload.is_empty(),
        "scroll returns payload by default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_filter_and_by_ids() {
    let h = start().await;
    let c = &h.client;
    create(c, "d", 2, Distance::Euclid).await;
    let points: Vec<PointStruct> = (0..60_u64)
        .map(|i| {
            PointStruct::new(
                i,
                vec![i as f32, 0.0],
                payload(json!({"source": if i % 3 == 0 { "legacy" } else { "new" }})),
            )
        })
        .collect();
    c.upsert_points(UpsertPointsBuilder::new("d", points).wait(true))
        .await
        .expect("upsert");

    c.delete_points(
        DeletePointsBuilder::new("d")
            .points(Filter::must([Condition::matches(
                "source",
                "legacy".to_owned(),
            )]))
            .wait(true),
    )
    .await
    .expect("delete by filter");
    assert_eq!(count(c, "d", None).await, 40);
    assert_eq!(
        count(
            c,
            "d",
            Some(Filter::must([Condition::matches(
                "source",
                "legacy".to_owned()
            )]))
        )
        .await,
        0
    );
    // The nearest points to 0 are now 1 and 2 (0 and 3 were legacy).
    let got = c
        .search_points(SearchPointsBuilder::new("d", vec![0.0, 0.0], 2))
        .await
        .expect("search")
        .result;
    let ids: Vec<u64> = got
        .iter()
        .map(|p| num(p.id.as_ref().expect("id")))
        .collect();
    assert_eq!(ids, [1, 2]);
    assert!(
        (got[0].score - 1.0).abs() < 1e-6,
        "Euclid scores are distances"
    );

    c.delete_points(
        DeletePointsBuilder::new("d")
            .points(PointsIdsList {
                ids: vec![1_u64.into(), 2_u64.into(), 999_u64.into()],
            })
            .wait(true),
    )
    .await
    .expect("delete by ids");
    assert_eq!(count(c, "d", None).await, 38);

    // Deleting with no selector is refused.
    let (status, _) = code(c.delete_points(DeletePointsBuilder::new("d")).await);
    assert_eq!(status, Code::InvalidArgument);
    assert_eq!(count(c, "d", None).await, 38);
    h.server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_from_eight_clients_lose_nothing() {
    const CLIENTS: u64 = 8;
    const BATCHES: u64 = 25;
    const PER_BATCH: u64 = 40;
    let h = start().await;
    create(&h.client, "busy", 16, Distance::Cosine).await;
    let url = h.server.url();
    let mut tasks = Vec::new();
    for client_no in 0..CLIENTS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let c = client(&url);
            let mut rng = Rng::new(client_no);
            for b in 0..BATCHES {
                let points: Vec<PointStruct> = (0..PER_BATCH)
                    .map(|i| {
                        let id = client_no * 1_000_000 + b * PER_BATCH + i;
                        PointStruct::new(id, rng.vector(16), payload(json!({"client": client_no})))
                    })
                    .collect();
                c.upsert_points(UpsertPointsBuilder::new("busy", points).wait(b % 2 == 0))
                    .await
                    .expect("upsert");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let c = &h.client;
    assert_eq!(count(c, "busy", None).await, CLIENTS * BATCHES * PER_BATCH);
    for client_no in 0..CLIENTS {
        assert_eq!(
            count(
                c,
                "busy",
                Some(Filter::must([Condition::matches(
                    "client",
                    client_no as i64
                )]))
            )
            .await,
            BATCHES * PER_BATCH
        );
        let ids: Vec<PointId> = (0..BATCHES * PER_BATCH)
            .map(|i| PointId::from(client_no * 1_000_000 + i))
            .collect();
        let got = c
            .get_points(GetPointsBuilder::new("busy", ids))
            .await
            .expect("get")
            .result;
        assert_eq!(got.len() as u64, BATCHES * PER_BATCH);
    }
    h.server.stop().await.expect("stop");
}
