//! The rollbacks on the real stack. Graceful: `apex rollout drain --to 0` steps the share
//! down and, at each step, waits for the running workflows of the documents it moved to the
//! legacy path (held back here by a stopped embedder), saying how many are left; it ends
//! only once they completed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use apex_e2e::chaos::docs;
use apex_e2e::scale::apex;
use apex_ingestion::rollout::{ROLLOUT_KEY, Rollout, bucket};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Puts the embedder and the rollout back, even when the test failed.
struct Restore {
    percent: u8,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let percent = self.percent.to_string();
        for args in [vec!["up", "embedder"], vec!["rollout", "set", &percent]] {
            if let Err(e) = apex(&args) {
                eprintln!("could not restore the stack: {e}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_drain_steps_down_and_waits_for_the_workflows_it_moved() {
    let Some(stack) = apex_e2e::stack_exclusive() else {
        return;
    };
    let rollout = Rollout::connect(&stack.redis_url(), ROLLOUT_KEY)
        .await
        .expect("redis");
    let _restore = Restore {
        percent: rollout.get().await.expect("get").unwrap_or(100),
    };
    rollout.set(100).await.expect("set");
    apex(&["down", "embedder"]).expect("embedder stopped");

    // Six documents into Temporal; each waits for the embedder.
    let http = stack.gateway_http().build().expect("client");
    let source = apex_e2e::Names::new().source("drain");
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut accepted = Vec::new();
    for i in 0..6 {
        let id = format!("{source}-{i}");
        let doc = docs::upload(&http, &stack.gateway_url(), &source, &id, give_up)
            .await
            .expect("accepted");
        accepted.push(doc);
    }
    let buckets: Vec<u8> = accepted.iter().map(|d| bucket(&d.document_id)).collect();
    // The first step that has one of them to wait for: 50 if one is in buckets 50-99, …
    let first = [50u8, 10, 0]
        .into_iter()
        .find(|s| buckets.iter().any(|b| b >= s))
        .expect("0 holds them all");
    let expected = buckets.iter().filter(|b| **b >= first).count();

    let mut child = tokio::process::Command::new(apex_e2e::bins::bin("apex"))
        .args(["rollout", "drain", "--to", "0", "--poll-ms", "300"])
        .args(["--timeout-secs", "600"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("apex rollout drain");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let waiting = format!("{first}%: waiting for {expected} running workflow(s)");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !seen.iter().any(|l: &String| l.contains(&waiting)) {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no `{waiting}` line: {seen:#?}"))
            .expect("read")
            .unwrap_or_else(|| panic!("the drain ended early: {seen:#?}"));
        seen.push(line);
    }
    // It holds there: the share is at that step, the drain has not ended.
    assert_eq!(rollout.get().await.expect("get"), Some(first), "{seen:#?}");
    assert!(child.try_wait().expect("try_wait").is_none(), "{seen:#?}");

    // The embedder back: the workflows complete, and the drain goes on to 0.
    apex(&["up", "embedder"]).expect("embedder back");
    while let Some(line) = tokio::time::timeout_at(deadline.into(), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("the drain did not end: {seen:#?}"))
        .expect("read")
    {
        seen.push(line);
    }
    let status = child.wait().await.expect("wait");
    assert!(status.success(), "{seen:#?}");
    let text = seen.join("\n");
    let order: Vec<usize> = ["rollout 50%", "rollout 10%", "rollout 0%", "drained to 0%"]
        .iter()
        .map(|s| text.find(s).unwrap_or_else(|| panic!("no `{s}`: {text}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(rollout.get().await.expect("get"), Some(0));

    // Every document finished on the Temporal path it started on.
    docs::settle(&http, &stack.gateway_url(), &mut accepted, deadline).await;
    for d in &accepted {
        assert_eq!(d.status, "completed", "{d:?}");
    }
}
