//! Failures an ingestion rides out or reports: a stopped embedder waited for, a failing store
//! named, fetches that fail at once, a long parse heartbeating.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_waits_for_a_stopped_embedder_and_completes_when_it_is_back() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut env = env(&stack).await;
    let addr = env.stop_embedder().await;
    let input = env.input("note.txt", TEXT.as_bytes());
    let id = input.resolved_document_id();
    let handle = env.start(input).await;
    // Parsing is done and the embedding is being retried: the status says so, and the
    // server shows the embedding activity past its first attempt.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&handle).await;
        let described = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe");
        let pending = &described.raw().pending_activities;
        let retrying = pending.iter().any(|p| {
            p.attempt > 1
                && p.activity_type
                    .as_ref()
                    .is_some_and(|t| t.name.ends_with("generate_embeddings"))
        });
        if retrying {
            assert_eq!(s.status, PARSED, "{s:?}");
            // What the gateway's status says of it: the embedder, since the step began.
            let waiting =
                apex_gateway::waiting::waiting(pending, s.step_started_ms, SystemTime::now());
            let embed = waiting
                .iter()
                .find(|w| w["step"] == "embed")
                .unwrap_or_else(|| panic!("the embedding waits: {waiting:?}"));
            assert_eq!(embed["dependency"], "embedder", "{embed}");
            assert_eq!(embed["since_ms"], s.step_started_ms, "{embed}");
            let message = embed["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("waiting for the embedder since ")
                    && message.contains(" failed (embedder: "),
                "{message}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the embedding was never retried: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.restart_embedder(addr).await;
    let s = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("completes once the embedder is back");
    assert_eq!(s.status, COMPLETED);
    record_history(&handle, "ingestion-embedder-retried").await;
    let embed = s
        .steps
        .iter()
        .find(|r| r.step == "embed")
        .expect("embed step");
    assert!(embed.attempts > 1, "the embedding was retried: {embed:?}");
    assert_stored(&env.inspect(&id).await, &s);
    env.stop().await;
}

/// Each document's pending embedding: its attempt and when that attempt is due (0 and the
/// epoch when none is pending).
async fn pending_embeds(handles: &[IngestHandle]) -> Vec<(i32, SystemTime)> {
    let mut out = Vec::new();
    for h in handles {
        let described = h
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe");
        let pending = described.raw().pending_activities.iter().find(|p| {
            p.activity_type
                .as_ref()
                .is_some_and(|t| t.name.ends_with("generate_embeddings"))
        });
        out.push(pending.map_or((0, SystemTime::UNIX_EPOCH), |p| {
            let due = p
                .next_attempt_schedule_time
                .as_ref()
                .map_or(SystemTime::UNIX_EPOCH, |t| {
                    SystemTime::UNIX_EPOCH
                        + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32)
                });
            (p.attempt, due)
        }));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_waiting_for_the_embedder_are_woken_when_one_of_them_gets_through() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let mut env = env(&stack).await;
    let addr = env.stop_embedder().await;
    let mut handles = Vec::new();
    for i in 0..5 {
        let input = env.input(
            &format!("wake-{i}.txt"),
            format!("{TEXT}\nCopy {i}.").as_bytes(),
        );
        handles.push(env.start(input).await);
    }
    // Every embedding has failed at least four times: its next attempt is 4-8 s away
    // (jittered), so without a wake the documents would come back one by one over that
    // window.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = pending_embeds(&handles).await;
        if pending.iter().all(|(attempt, _)| *attempt >= 5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the embeddings were not retried: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.restart_embedder(addr).await;
    let sixth = env
        .start(env.input("wake-6.txt", format!("{TEXT}\nCopy 6.").as_bytes()))
        .await;
    // The first embedding through (the sixth document's, started at once, unless a retry
    // comes first) wakes the others the worker saw waiting.
    let line = env
        .worker
        .as_ref()
        .expect("worker")
        .wait_for_line("woke the steps waiting for it", Duration::from_secs(120));
    assert!(
        line.contains(r#""dependency":"embedder""#) && !line.contains(r#""woken":0"#),
        "{line}"
    );
    handles.push(sixth);
    for h in &handles {
        let s = h
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect("completes once the embedder is back");
        assert_eq!(s.status, COMPLETED, "{s:?}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failing_in_the_writer_fails_the_workflow_naming_it_and_a_rerun_succeeds() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let env = env(&stack).await;
    let mut input = env.input("note.txt", TEXT.as_bytes());
    input.max_write_attempts = 2;
    let id = input.resolved_document_id();
    // The writer connects to the graph as it starts: cut the graph only once it serves.
    let _ = env.inspect(&id).await;
    env.services.graph_proxy.refuse();
    let err = env.ingest_err(input.clone()).await;
    assert!(
        err.contains("write failed") && err.contains("store graph failed"),
        "{err}"
    );
    let r = env.inspect(&id).await;
    assert!(
        r.stores.iter().all(|v| !v.present),
        "compensated everywhere: {r:?}"
    );
    env.services.graph_proxy.restore();
    let s = env.ingest(input).await;
    assert_eq!((s.status.as_str(), s.version), (COMPLETED, 1));
    assert_stored(&env.inspect(&id).await, &s);
    env.stop().await;
}

/// A one-route HTTP/1.1 server on 127.0.0.1: `GET /doc.txt` answers `body`, anything else
/// 404. Serves until the test ends.
async fn http_server(body: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let found = request.starts_with(b"GET /doc.txt ");
                let (status, body): (&str, &[u8]) = if found {
                    ("200 OK", body)
                } else {
                    ("404 Not Found", b"no such document")
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_fetched_over_http_and_oversized_or_missing_ones_fail_at_once() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    // The fixture server is on 127.0.0.1, which fetches refuse unless allowed.
    let env = env_with(
        &stack,
        &[
            ("APEX_WORKER__INGEST__FETCH_MAX_BYTES", "2000"),
            ("APEX_WORKER__INGEST__FETCH_ALLOW", "127.0.0.1/32"),
        ],
    )
    .await;
    let server = http_server(TEXT.as_bytes()).await;

    let mut input = env.input("unused.txt", b"");
    input.location = format!("http://{server}/doc.txt");
    let id = input.resolved_document_id();
    let s = env.ingest(input).await;
    assert_eq!(s.status, COMPLETED, "{s:?}");
    assert_stored(&env.inspect(&id).await, &s);

    for (location, reason) in [
        (format!("http://{server}/missing.txt"), "HTTP 404"),
        (
            env.input("big.txt", &[b'a'; 5000]).location,
            "over the fetch limit of 2000 bytes",
        ),
        (
            env.files.path().join("absent.txt").display().to_string(),
            "not found",
        ),
    ] {
        let mut input = env.input("x.txt", b"x");
        input.location = location.clone();
        let handle = env.start(input).await;
        let err = handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect_err("the fetch fails");
        let text = apex_worker::error_chain(&err);
        assert!(
            text.contains("fetch failed") && text.contains(reason),
            "{location}: {text}"
        );
        let events = handle
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .into_events()
            .await
            .expect("history")
            .into_iter()
            .filter_map(|e| e.attributes)
            .collect::<Vec<_>>();
        let started = events
            .iter()
            .filter(
                |a| matches!(a, Attributes::ActivityTaskStartedEventAttributes(s) if s.attempt > 1),
            )
            .count();
        assert_eq!(started, 0, "{location}: not retried");
        assert_eq!(
            scheduled(&events, "parse_document"),
            0,
            "{location}: nothing parsed"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_parse_heartbeats_while_it_waits_for_the_parser() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    // A parser that accepts connections and never answers: the parse's first attempt, in the
    // worker, gives up after `local_attempt_secs` and the step goes on as a server-side
    // activity, which heartbeats while it waits (every third of its 30 s heartbeat timeout,
    // the first after 10 s; the SDK forwards them to the server at most every 24 s), so the
    // server sees a live activity rather than waiting out the 10 min start-to-close timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = format!("http://{}", silent.local_addr().expect("addr"));
    let env = env_with(
        &stack,
        &[("APEX_WORKER__INGEST__PARSER_ADDR", silent_addr.as_str())],
    )
    .await;
    let mut input = env.input("note.txt", TEXT.as_bytes());
    input.local_attempt_secs = 2;
    let handle = env.start(input).await;
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let description = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe");
        let heartbeat = description.raw().pending_activities.iter().find_map(|p| {
            p.activity_type
                .as_ref()
                .filter(|t| t.name.ends_with("parse_document"))
                .and(p.last_heartbeat_time.as_ref())
        });
        if heartbeat.is_some() {
            assert_eq!(status(&handle).await.status, "fetched");
            // The memo, which the gateway reads, says the same without asking the worker,
            // and when the waiting step began.
            let memo = description
                .memo()
                .get::<IngestStatus>(apex_ingestion::workflows::STATUS_MEMO)
                .expect("memo decodes")
                .expect("memo present");
            assert_eq!(memo.status, "fetched");
            assert!(memo.step_started_ms > 0, "{memo:?}");
            let steps: Vec<&str> = memo.steps.iter().map(|r| r.step.as_str()).collect();
            assert_eq!(steps, ["fetch", "check"]);
            break;
        }
        assert!(Instant::now() < deadline, "the parse never heartbeated");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    handle
        .terminate(temporalio_client::WorkflowTerminateOptions::default())
        .await
        .expect("terminate");
    drop(silent);
    env.stop().await;
}
