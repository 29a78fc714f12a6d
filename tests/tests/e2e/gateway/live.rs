//! Status reads of Temporal-path ingestions from the worker's live status in Redis
//! (`apex_ingestion::live`): answered without asking Temporal while the live status is the
//! run's, fresh or final; from the workflow's description when it is stale, another run's,
//! or says a step waits on the server.

use apex_ingestion::live::{LiveStatus, live_status_key};
use redis::AsyncCommands as _;

use super::*;

/// The gateway's count of status reads answered by `source` (`live`, `temporal`).
async fn reads(g: &Gateway, source: &str) -> u64 {
    let metrics = g.get("/metrics").await.text().await.expect("text");
    let line = format!("apex_gateway_status_reads_total{{source=\"{source}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

async fn status_of(g: &Gateway, id: &str) -> Value {
    let response = g.get(&format!("/v1/documents/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporal_status_is_read_from_the_live_status_of_its_run_and_a_stale_one_is_not_trusted()
{
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |_| {}).await;
    g.set_rollout(100).await;
    let id = uuid::Uuid::new_v4().to_string();
    let accepted = g
        .accept(
            g.form("live.txt", "text/plain", NOTE.as_bytes().to_vec())
                .text("document_id", id.clone()),
        )
        .await;
    assert_eq!(accepted["path"], "temporal");
    let done = g.wait_done(&id).await;
    assert_eq!(done["status"], "completed", "{done}");

    // The worker wrote the run's final status; the gateway recorded the run it started.
    let mut redis = redis::Client::open(stack.redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let raw: String = redis
        .get(live_status_key(&id))
        .await
        .expect("a live status");
    let live: LiveStatus = serde_json::from_str(&raw).expect("decodes");
    let record = g.shared.record(&id).await.expect("redis").expect("record");
    assert_eq!(record.run_id.as_deref(), Some(live.run_id.as_str()));
    assert_eq!(live.status.status, "completed");
    assert!(!live.on_server);
    assert_eq!(
        done["steps"],
        serde_json::to_value(&live.status.steps).expect("json")
    );

    // A final live status answers without asking Temporal.
    let (live_before, temporal_before) = (reads(&g, "live").await, reads(&g, "temporal").await);
    assert_eq!(status_of(&g, &id).await["status"], "completed");
    assert_eq!(reads(&g, "live").await, live_before + 1);
    assert_eq!(reads(&g, "temporal").await, temporal_before);

    // A live status that is stale, another run's, or waiting on the server is not
    // believed: the workflow's description answers (completed), not what Redis says.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let forged = [
        ("stale", live.run_id.clone(), now - 60_000, false),
        ("another run", "some-other-run".to_owned(), now, false),
        ("on the server", live.run_id.clone(), now, true),
    ];
    for (what, run_id, at_ms, on_server) in forged {
        let mut lie = live.clone();
        lie.run_id = run_id;
        lie.at_ms = at_ms;
        lie.on_server = on_server;
        lie.status.status = "parsed".to_owned();
        let () = redis
            .set(
                live_status_key(&id),
                serde_json::to_string(&lie).expect("json"),
            )
            .await
            .expect("set");
        let temporal_before = reads(&g, "temporal").await;
        let body = status_of(&g, &id).await;
        assert_eq!(body["status"], "completed", "{what}: {body}");
        assert_eq!(reads(&g, "temporal").await, temporal_before + 1, "{what}");
    }
    let _: i64 = redis.del(live_status_key(&id)).await.expect("del");
    g.stop().await;
}
