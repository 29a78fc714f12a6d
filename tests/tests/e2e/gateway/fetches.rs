//! Uploads by URL cannot be turned inward: the gateway refuses, before anything starts, a URL
//! whose address (in any spelling) or whose name's addresses lie inside, naming the rule;
//! a redirect inward from an allowed address fails the ingestion on the legacy path (which
//! fetches in the gateway) without following it. Every refusal is counted.

use super::*;

fn refusals(metrics: &str, rule: &str) -> u64 {
    let needle = format!("rule=\"{rule}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("apex_fetch_refusals_total{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_reaches_inside_is_refused_with_the_rule_and_nothing_starts() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let prometheus = stack.settings.prometheus_port;
    let g = Gateway::start(&stack, |_| {}).await;
    let before = g.get("/metrics").await.text().await.expect("metrics");
    let table = [
        // The probe that was seen: Prometheus's configuration, read through the worker.
        (
            format!("http://127.0.0.1:{prometheus}/api/v1/status/config"),
            "loopback",
        ),
        (
            format!("http://localhost:{prometheus}/api/v1/status/config"),
            "loopback",
        ),
        (format!("http://0x7f.1:{prometheus}/"), "loopback"),
        (format!("http://[::1]:{prometheus}/"), "loopback"),
        (format!("http://[::ffff:7f00:1]:{prometheus}/"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "metadata",
        ),
        ("http://2852039166/latest/meta-data/".to_owned(), "metadata"),
        (
            "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
            "metadata",
        ),
        ("http://192.168.1.1/admin".to_owned(), "private"),
        ("http://[fe80::1]/".to_owned(), "link-local"),
        ("http://0.0.0.0:8080/".to_owned(), "unspecified"),
    ];
    for (url, rule) in &table {
        let id = uuid::Uuid::new_v4().to_string();
        let response = g
            .http
            .post(format!("{}/v1/documents", g.url))
            .json(&serde_json::json!({"url": url, "source": g.source, "document_id": id}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["details"]["rule"], *rule, "{url}: {body}");
        assert_eq!(body["error"]["details"]["field"], "url", "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("rule `{rule}`")), "{url}: {body}");
        // Nothing was started for it.
        assert_eq!(
            g.get(&format!("/v1/documents/{id}")).await.status(),
            StatusCode::NOT_FOUND,
            "{url}"
        );
    }
    let after = g.get("/metrics").await.text().await.expect("metrics");
    for rule in [
        "loopback",
        "metadata",
        "private",
        "link-local",
        "unspecified",
    ] {
        let expected = table.iter().filter(|(_, r)| *r == rule).count() as u64;
        assert!(
            refusals(&after, rule) >= refusals(&before, rule) + expected,
            "{rule} counted"
        );
    }
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_inward_from_an_allowed_address_is_not_followed() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/report.txt", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://169.254.169.254/latest/meta-data/iam/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
        }
    });
    let g = Gateway::start(&stack, |s| s.ingest.fetch_allow = "127.0.0.1/32".into()).await;
    g.set_rollout(0).await;
    let response = g
        .http
        .post(format!("{}/v1/documents", g.url))
        .json(&serde_json::json!({"url": url, "source": g.source}))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the first hop is allowed"
    );
    let accepted: Value = response.json().await.expect("json");
    let id = accepted["document_id"].as_str().expect("id").to_owned();
    let done = g.wait_done(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("fetch failed") && error.contains("rule `metadata`"),
        "{done}"
    );
    let mut writer = WriterServiceClient::connect(stack.writer_url())
        .await
        .expect("writer");
    let stored = writer
        .inspect_document(InspectDocumentRequest { document_id: id })
        .await
        .expect("inspect")
        .into_inner();
    assert!(stored.stores.iter().all(|s| !s.present), "{stored:?}");
    g.stop().await;
    server.abort();
}
