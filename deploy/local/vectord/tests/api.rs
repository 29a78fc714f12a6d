//! apex-vectord driven only through `qdrant-client`, as the product drives Qdrant.
//!
//! Each test starts its own server on 127.0.0.1 (port 0) over a temporary data directory;
//! the restart test runs the real binary and stops it with SIGTERM.

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
async fn upsert_then_count_get_and_scroll() {
    let h = start().await;
    let c = &h.client;
    create(c, "chunks", 3, Distance::Cosine).await;

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
    let uuid = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26";
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

    // Get by ids: order of the request, missing ids left out, payload by default.
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

    // Upserting an existing id replaces it.
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

    // Scroll every page of 30, with a filter, and without.
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
    h.server.stop().await.expect("stop");
}

fn score(distance: Distance, a: &[f32], b: &[f32]) -> f32 {
    match distance {
        Distance::Cosine => {
            let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            a.iter().zip(b).map(|(x, y)| (x / na) * (y / nb)).sum()
        }
        Distance::Dot => a.iter().zip(b).map(|(x, y)| x * y).sum(),
        Distance::Euclid => a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt(),
        Distance::Manhattan => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
        Distance::UnknownDistance => unreachable!(),
    }
}

fn larger_is_better(distance: Distance) -> bool {
    matches!(distance, Distance::Cosine | Distance::Dot)
}

/// Brute force: the top `limit` of `points` (id, vector, group) that pass `keep`.
fn brute_force(
    distance: Distance,
    points: &[(u64, Vec<f32>)],
    query: &[f32],
    keep: impl Fn(u64) -> bool,
    limit: usize,
) -> Vec<(u64, f32)> {
    let mut scored: Vec<(u64, f32)> = points
        .iter()
        .filter(|(id, _)| keep(*id))
        .map(|(id, v)| (*id, score(distance, query, v)))
        .collect();
    scored.sort_by(|a, b| {
        let ord = a.1.total_cmp(&b.1);
        if larger_is_better(distance) {
            ord.reverse()
        } else {
            ord
        }
    });
    scored.truncate(limit);
    scored
}

fn assert_same(distance: Distance, got: &[qdrant::ScoredPoint], want: &[(u64, f32)], what: &str) {
    let got_ids: Vec<u64> = got
        .iter()
        .map(|p| num(p.id.as_ref().expect("id")))
        .collect();
    let want_ids: Vec<u64> = want.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        got_ids, want_ids,
        "{distance:?} {what}: ids differ from brute force"
    );
    for (p, (_, s)) in got.iter().zip(want) {
        assert!(
            (p.score - s).abs() <= 1e-4 * s.abs().max(1.0),
            "{distance:?} {what}: score {} vs brute force {s}",
            p.score
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_search_is_exactly_the_brute_force_top_k_for_every_distance() {
    const N: u64 = 3000;
    const DIMS: usize = 24;
    const K: usize = 10;
    let h = start().await;
    let c = &h.client;
    let mut rng = Rng::new(2026);
    let points: Vec<(u64, Vec<f32>)> = (0..N).map(|i| (i, rng.vector(DIMS))).collect();
    let group = |id: u64| format!("g{}", id % 5);
    let excluded: HashSet<u64> = (0..N).filter(|i| i % 7 == 0).collect();

    for distance in [
        Distance::Cosine,
        Distance::Dot,
        Distance::Euclid,
        Distance::Manhattan,
    ] {
        let name = format!("exact_{}", distance.as_str_name().to_lowercase());
        create(c, &name, DIMS as u64, distance).await;
        c.create_field_index(
            CreateFieldIndexCollectionBuilder::new(&name, "group", FieldType::Keyword).wait(true),
        )
        .await
        .expect("keyword index");
        c.create_field_index(
            CreateFieldIndexCollectionBuilder::new(&name, "n", FieldType::Integer).wait(true),
        )
        .await
        .expect("integer index");
        for batch in points.chunks(500) {
            let batch: Vec<PointStruct> = batch
                .iter()
                .map(|(id, v)| {
                    PointStruct::new(
                        *id,
                        v.clone(),
                        payload(json!({"group": group(*id), "n": id})),
                    )
                })
                .collect();
            c.upsert_points(UpsertPointsBuilder::new(&name, batch).wait(true))
                .await
                .expect("upsert");
        }
        let info = c
            .collection_info(&name)
            .await
            .expect("info")
            .result
            .expect("info");
        assert_eq!(info.points_count, Some(N));
        assert_eq!(
            info.payload_schema["group"].data_type,
            qdrant::PayloadSchemaType::Keyword as i32
        );
        assert_eq!(
            info.payload_schema["n"].data_type,
            qdrant::PayloadSchemaType::Integer as i32
        );

        for q in 0..12 {
            let query = rng.vector(DIMS);
            // Unfiltered.
            let got = c
                .search_points(SearchPointsBuilder::new(&name, query.clone(), K as u64))
                .await
                .expect("search")
                .result;
            assert_same(
                distance,
                &got,
                &brute_force(distance, &points, &query, |_| true, K),
                "plain",
            );

            // must (keyword) + must_not (has_id) + should (integers).
            let filter = Filter {
                must: vec![Condition::matches("group", group(q))],
                must_not: vec![Condition::has_id(excluded.iter().copied())],
                should: vec![
                    Condition::matches(
                        "n",
                        (0..N as i64).filter(|n| n % 3 != 0).collect::<Vec<i64>>(),
                    ),
                    Condition::range(
                        "n",
                        Range {
                            lt: Some(300.0),
                            ..Default::default()
                        },
                    ),
                ],
                min_should: None,
            };
            let keep = |id: u64| {
                group(id) == group(q)
                    && !excluded.contains(&id)
                    && (!id.is_multiple_of(3) || id < 300)
            };
            let want = brute_force(distance, &points, &query, keep, K);
            let got = c
                .search_points(
                    SearchPointsBuilder::new(&name, query.clone(), K as u64).filter(filter.clone()),
                )
                .await
                .expect("filtered search")
                .result;
            assert_same(distance, &got, &want, "filtered");

            // The Query API gives the same answer, with payload on request.
            let got = c
                .query(
                    QueryPointsBuilder::new(&name)
                        .query(query.clone())
                        .filter(filter)
                        .limit(K as u64)
                        .with_payload(true),
                )
                .await
                .expect("query")
                .result;
            assert_same(distance, &got, &want, "query");
            assert!(got.iter().all(|p| p.payload["group"] == group(q).into()));
        }

        // offset and score_threshold.
        let query = rng.vector(DIMS);
        let all = brute_force(distance, &points, &query, |_| true, 30);
        let got = c
            .search_points(SearchPointsBuilder::new(&name, query.clone(), 10).offset(20))
            .await
            .expect("offset search")
            .result;
        assert_same(distance, &got, &all[20..30], "offset");
        // Halfway between the 5th and 6th best scores: exactly five pass.
        let threshold = (all[4].1 + all[5].1) / 2.0;
        let got = c
            .search_points(
                SearchPointsBuilder::new(&name, query.clone(), 30).score_threshold(threshold),
            )
            .await
            .expect("threshold search")
            .result;
        assert_same(distance, &got, &all[..5], "score_threshold");
    }
    h.server.stop().await.expect("stop");
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

/// The real binary, stopped with SIGTERM and started again on the same data directory.
mod restart {
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
            .get_points(
                GetPointsBuilder::new("kept", vec![PointId::from(42_u64)]).with_vectors(true),
            )
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
}
