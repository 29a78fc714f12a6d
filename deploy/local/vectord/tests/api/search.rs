//! Search: exactly the brute-force top k for every distance, filtered and not, through the
//! search and query APIs, with offset and score threshold.

use super::*;

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

const N: u64 = 3000;
const DIMS: usize = 24;
const K: usize = 10;

fn group(id: u64) -> String {
    format!("g{}", id % 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_search_is_exactly_the_brute_force_top_k_for_every_distance() {
    let h = start().await;
    let c = &h.client;
    let mut rng = Rng::new(2026);
    let points: Vec<(u64, Vec<f32>)> = (0..N).map(|i| (i, rng.vector(DIMS))).collect();
    let excluded: HashSet<u64> = (0..N).filter(|i| i % 7 == 0).collect();

    for distance in [
        Distance::Cosine,
        Distance::Dot,
        Distance::Euclid,
        Distance::Manhattan,
    ] {
        let name = format!("exact_{}", distance.as_str_name().to_lowercase());
        fill(c, &name, distance, &points).await;
        for q in 0..12 {
            let query = rng.vector(DIMS);
            search_matches_brute_force(c, &name, distance, &points, &query, q, &excluded).await;
        }
        let query = rng.vector(DIMS);
        offset_and_threshold(c, &name, distance, &points, &query).await;
    }
    h.server.stop().await.expect("stop");
}

/// A collection of `points` with keyword and integer payload indexes.
async fn fill(c: &Qdrant, name: &str, distance: Distance, points: &[(u64, Vec<f32>)]) {
    create(c, name, DIMS as u64, distance).await;
    c.create_field_index(
        CreateFieldIndexCollectionBuilder::new(name, "group", FieldType::Keyword).wait(true),
    )
    .await
    .expect("keyword index");
    c.create_field_index(
        CreateFieldIndexCollectionBuilder::new(name, "n", FieldType::Integer).wait(true),
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
        c.upsert_points(UpsertPointsBuilder::new(name, batch).wait(true))
            .await
            .expect("upsert");
    }
    let info = c
        .collection_info(name)
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
}

/// One query, unfiltered and filtered, through the search and the query API.
async fn search_matches_brute_force(
    c: &Qdrant,
    name: &str,
    distance: Distance,
    points: &[(u64, Vec<f32>)],
    query: &[f32],
    q: u64,
    excluded: &HashSet<u64>,
) {
    // Unfiltered.
    let got = c
        .search_points(SearchPointsBuilder::new(name, query.to_vec(), K as u64))
        .await
        .expect("search")
        .result;
    assert_same(
        distance,
        &got,
        &brute_force(distance, points, query, |_| true, K),
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
        group(id) == group(q) && !excluded.contains(&id) && (!id.is_multiple_of(3) || id < 300)
    };
    let want = brute_force(distance, points, query, keep, K);
    let got = c
        .search_points(
            SearchPointsBuilder::new(name, query.to_vec(), K as u64).filter(filter.clone()),
        )
        .await
        .expect("filtered search")
        .result;
    assert_same(distance, &got, &want, "filtered");

    // The Query API gives the same answer, with payload on request.
    let got = c
        .query(
            QueryPointsBuilder::new(name)
                .query(query.to_vec())
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

/// `offset` and `score_threshold` against the brute-force top 30.
async fn offset_and_threshold(
    c: &Qdrant,
    name: &str,
    distance: Distance,
    points: &[(u64, Vec<f32>)],
    query: &[f32],
) {
    let all = brute_force(distance, points, query, |_| true, 30);
    let got = c
        .search_points(SearchPointsBuilder::new(name, query.to_vec(), 10).offset(20))
        .await
        .expect("offset search")
        .result;
    assert_same(distance, &got, &all[20..30], "offset");
    // Halfway between the 5th and 6th best scores: exactly five pass.
    let threshold = (all[4].1 + all[5].1) / 2.0;
    let got = c
        .search_points(
            SearchPointsBuilder::new(name, query.to_vec(), 30).score_threshold(threshold),
        )
        .await
        .expect("threshold search")
        .result;
    assert_same(distance, &got, &all[..5], "score_threshold");
}
