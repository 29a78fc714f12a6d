//! The fetch step cannot be turned inward: a workflow started by any Temporal client with a
//! URL that reaches loopback, a private range or the metadata address fails at once with
//! the rule, and nothing is stored; an address the worker's allow-list names is fetched,
//! and a redirect from it to the metadata address is not followed.

use super::*;

/// A server on 127.0.0.1: `/note.txt` answers a text, `/to-metadata` redirects to the
/// metadata address (which the guard refuses before any connection).
async fn fixture() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..n]);
                let body = "Lone Star Grocers moved dock 4 to the Dallas yard on May 2, 2026.";
                let response = if head.starts_with("GET /to-metadata ") {
                    "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, task)
}

/// Starts an ingestion of `location`, expects it to fail after one fetch attempt with
/// `rule` named, and nothing stored.
async fn refused(env: &Env, location: &str, rule: &str) {
    let mut input = env.input("probe.txt", b"unused");
    input.location = location.to_owned();
    input.mime_type = "text/plain".into();
    let id = input.resolved_document_id();
    let handle = env.start(input).await;
    let err = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err(location);
    let text = apex_worker::error_chain(&err);
    assert!(
        text.contains("fetch failed") && text.contains(&format!("rule `{rule}`")),
        "{location}: {text}"
    );
    assert!(!text.contains("meta-data"), "no path in the reason: {text}");
    let events: Vec<Attributes> = history(&handle).await;
    assert_eq!(
        scheduled(&events, "fetch_document"),
        1,
        "{location}: not retried"
    );
    let r = env.inspect(&id).await;
    assert!(r.stores.iter().all(|v| !v.present), "{location}: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_turned_inward_fails_at_once_with_the_rule_and_stores_nothing() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let prometheus = stack.settings.prometheus_port;
    let env = env(&stack).await;
    for (location, rule) in [
        (
            format!("http://127.0.0.1:{prometheus}/api/v1/status/config"),
            "loopback",
        ),
        (
            format!("http://localhost:{prometheus}/api/v1/status/config"),
            "loopback",
        ),
        (
            format!("http://2130706433:{prometheus}/api/v1/status/config"),
            "loopback",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{prometheus}/"),
            "loopback",
        ),
        (
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
            "metadata",
        ),
        ("http://10.0.0.1/".to_owned(), "private"),
        ("http://[fd00:ec2::254]/".to_owned(), "metadata"),
    ] {
        refused(&env, &location, rule).await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_address_is_fetched_and_its_redirect_inward_is_not_followed() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let (base, server) = fixture().await;
    let env = env_with(
        &stack,
        &[("APEX_WORKER__INGEST__FETCH_ALLOW", "127.0.0.1/32")],
    )
    .await;
    let mut input = env.input("note.txt", b"unused");
    input.location = format!("{base}/note.txt");
    let s = env.ingest(input).await;
    assert_eq!(s.status, COMPLETED, "{s:?}");
    assert!(s.chunk_count >= 1, "{s:?}");
    refused(&env, &format!("{base}/to-metadata"), "metadata").await;
    // The allow-list names 127.0.0.1 only: another loopback address stays refused.
    refused(&env, "http://127.0.0.2:9/", "loopback").await;
    env.stop().await;
    server.abort();
}
