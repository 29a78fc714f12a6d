//! A store failing mid-saga: nothing touched when the first step fails, every earlier step
//! compensated otherwise (the previous version put back), and the breaker.

use super::*;

#[tokio::test]
async fn postgres_down_fails_the_first_step_and_touches_nothing() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |_| {}).await;
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
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut h = Harness::start(&stack, |s| {
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
