//! Replicas of a stage on the real stack (`apex up --scale`): three embedders each serve a
//! share of a 200-document run and one of them is SIGKILLed mid-run without a document lost
//! or written twice; a fourth added while clients run starts taking calls with no client
//! restarted; two workers on one task queue, one SIGKILLed mid-run, and every workflow
//! completes. Each test puts the scale back to one replica per stage.

use std::time::Duration;

use apex_e2e::scale::{self, apex};

const EMBEDDER: &str = "apex.embedder.v1.EmbedderService";

/// Puts the stack back to one replica per stage, even when the test failed.
struct Rescale;

impl Drop for Rescale {
    fn drop(&mut self) {
        if let Err(e) = apex(&["up", "--scale", "embedder=1,worker=1"]) {
            eprintln!("could not put the scale back: {e}");
        }
    }
}

async fn served_by(stack: &apex_e2e::Stack, replicas: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for r in 1..=replicas {
        let port = scale::metrics_port(&stack.settings, "embedder", r);
        out.push(scale::served(port, EMBEDDER).await.unwrap_or(0));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_embedders_share_a_run_one_killed_mid_run_loses_nothing_and_a_fourth_joins() {
    let Some(stack) = apex_e2e::stack_exclusive() else {
        return;
    };
    let _rescale = Rescale;
    let status = apex(&["up", "--scale", "embedder=3"]).expect("scale to 3");
    let listed = apex(&["status"]).expect("status");
    for name in ["embedder ", "embedder-2 ", "embedder-3 "] {
        assert!(
            listed
                .lines()
                .any(|l| l.trim_start().starts_with(name) && l.contains("healthy")),
            "{name}: {status}\n{listed}"
        );
    }
    let clients = ["worker", "gateway"].map(|c| scale::pid(&stack.settings, c));
    let before = served_by(&stack, 3).await;
    let mut killed_share = 0;
    let run = scale::ingest(
        &stack.settings,
        &apex_e2e::Names::new().source("replicas"),
        200,
        70,
        || {
            // embedder-3's calls so far, then SIGKILL while the rest are under way.
            let port = scale::metrics_port(&stack.settings, "embedder", 3);
            killed_share = futures_block(scale::served(port, EMBEDDER))? - before[2];
            scale::kill(&stack.settings, "embedder-3").map(|_| ())
        },
        Duration::from_secs(600),
    )
    .await
    .expect("the run");
    assert!(
        run.verdict.clean() && run.verdict.completed == 200,
        "{:?}",
        run.verdict
    );
    let after = served_by(&stack, 2).await;
    let shares = [after[0] - before[0], after[1] - before[1], killed_share];
    eprintln!("embedder calls served per replica: {shares:?}");
    assert!(shares.iter().all(|n| *n > 0), "{shares:?}");

    // A fourth replica (and the killed third back): no client restarts, and the new one
    // takes calls.
    apex(&["up", "--scale", "embedder=4"]).expect("scale to 4");
    let port4 = scale::metrics_port(&stack.settings, "embedder", 4);
    let before4 = scale::served(port4, EMBEDDER)
        .await
        .expect("embedder-4 metrics");
    let run = scale::ingest(
        &stack.settings,
        &apex_e2e::Names::new().source("replicas-joined"),
        40,
        0,
        || Ok(()),
        Duration::from_secs(300),
    )
    .await
    .expect("the second run");
    assert!(run.verdict.clean(), "{:?}", run.verdict);
    let joined = scale::served(port4, EMBEDDER)
        .await
        .expect("embedder-4 metrics")
        - before4;
    assert!(joined > 0, "embedder-4 took no calls");
    assert_eq!(
        ["worker", "gateway"].map(|c| scale::pid(&stack.settings, c)),
        clients,
        "no client was restarted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_killed_mid_run_every_workflow_completes() {
    let Some(stack) = apex_e2e::stack_exclusive() else {
        return;
    };
    let _rescale = Rescale;
    apex(&["up", "--scale", "worker=2"]).expect("scale to 2 workers");
    assert!(scale::pid(&stack.settings, "worker-2").is_some());
    let mut second_did = 0;
    let run = scale::ingest(
        &stack.settings,
        &apex_e2e::Names::new().source("workers"),
        40,
        5,
        || {
            // What the second worker ran before it was killed.
            let port = scale::metrics_port(&stack.settings, "worker", 2);
            second_did = futures_block(scale::metric(port, "apex_activity_attempts_total", ""))?;
            scale::kill(&stack.settings, "worker-2").map(|_| ())
        },
        Duration::from_secs(600),
    )
    .await
    .expect("the run");
    assert!(second_did > 0, "the second worker took no activity");
    assert!(
        run.verdict.clean() && run.verdict.completed == 40,
        "{:?}",
        run.verdict
    );
}

/// Reads a future to its end from inside the synchronous mid-run hook.
fn futures_block<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
