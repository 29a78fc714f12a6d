//! Secrets never leak: a gateway process runs with known secret values (the key database's
//! password, API keys, a password and a token inside an upload's URL) and is made to fail
//! on each of them: a key that is not known, a URL refused by the fetch guard, a URL whose
//! fetch fails. None of the values appears in its log lines, its answers, its metrics or the
//! spans it exported.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apex_gateway::auth::Scope;
use apex_gateway::auth::keys::KeyStore;
use reqwest::StatusCode;
use serde_json::Value;

struct GatewayProc {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_secrets_appear_in_no_log_line_answer_metric_or_span() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let url_password = format!("urlpw{marker}");
    let url_token = format!("tok{marker}");
    let unknown_key = format!(
        "apex_{}_{}{}",
        &marker[..12],
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let keys = KeyStore::connect(&stack.postgres_url())
        .await
        .expect("keys");
    let key = keys
        .create("e2e-secrets", &[Scope::Admin], None)
        .await
        .expect("key")
        .key;
    let db_password = stack.settings.postgres_password.clone();
    let secrets = [
        ("the database password", db_password.as_str()),
        ("the API key's secret", &key[18..]),
        ("an unknown key's secret", &unknown_key[18..]),
        ("a URL's password", url_password.as_str()),
        ("a URL's token", url_token.as_str()),
    ];

    let port = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("gateway.log");
    let service = |p: u16| format!("http://127.0.0.1:{p}");
    let s = &stack.settings;
    let child = Command::new(apex_e2e::bins::bin("apex-gateway"))
        .env("APEX_GATEWAY__LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("APEX_GATEWAY__METRICS_ADDR", "")
        .env("APEX_GATEWAY__REDIS_URL", stack.redis_url())
        .env(
            "APEX_GATEWAY__ROLLOUT_KEY",
            format!("apex:test:rollout:{marker}"),
        )
        // The legacy path, so the fetch runs in this process and its errors are in its log.
        .env("APEX_GATEWAY__TEMPORAL__ROLLOUT", "0")
        .env("APEX_GATEWAY__TEMPORAL__ADDRESS", stack.temporal_address())
        .env("APEX_GATEWAY__AUTH__DATABASE_URL", stack.postgres_url())
        .env("APEX_GATEWAY__AUTH__CACHE_SECS", "0")
        .env("APEX_GATEWAY__INGEST__PARSER_ADDR", service(s.parser_port))
        .env(
            "APEX_GATEWAY__INGEST__EXTRACTOR_ADDR",
            service(s.extractor_port),
        )
        .env(
            "APEX_GATEWAY__INGEST__EMBEDDER_ADDR",
            service(s.embedder_port),
        )
        .env("APEX_GATEWAY__INGEST__WRITER_ADDR", service(s.writer_port))
        .env("APEX_GATEWAY__INGEST__BLOB_URL", stack.blob_dir())
        .env("APEX_GATEWAY__INGEST__FETCH_ALLOW", "127.0.0.1/32")
        .env("APEX_GATEWAY__LEGACY_MAX_ATTEMPTS", "1")
        .env("APEX_GATEWAY__TELEMETRY__LOG_FORMAT", "json")
        .env("APEX_GATEWAY__TELEMETRY__OTLP_ENDPOINT", s.otlp_endpoint())
        .env("RUST_LOG", "debug,h2=info,hyper=info,tower=info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(
            std::fs::File::options()
                .append(true)
                .open(&log)
                .expect("log"),
        )
        .spawn()
        .expect("start apex-gateway");
    let gateway = GatewayProc { child, log };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/livez")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let traceparent = format!("00-{trace_id}-{:016x}-01", 0x5ec2e7u64);
    let mut answers = String::new();
    let send = |request: reqwest::RequestBuilder| {
        let request = request.header("traceparent", traceparent.clone());
        async move {
            let r = request.send().await.expect("request");
            (r.status(), r.text().await.unwrap_or_default())
        }
    };
    // An unknown key.
    let (status, body) = send(
        http.get(format!("{base}/v1/search?q=x"))
            .bearer_auth(&unknown_key),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    answers.push_str(&body);
    // A URL to the metadata address, refused before anything starts.
    let refused = format!("http://bob:{url_password}@169.254.169.254/latest/?token={url_token}");
    let (status, body) = send(
        http.post(format!("{base}/v1/documents"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"url": refused, "source": "secrets"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    answers.push_str(&body);
    // An allowed URL whose fetch fails: the ingestion fails with the reason.
    let failing = format!("http://bob:{url_password}@127.0.0.1:1/report.txt?token={url_token}");
    let (status, body) = send(
        http.post(format!("{base}/v1/documents"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"url": failing, "source": "secrets"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    answers.push_str(&body);
    let accepted: Value = serde_json::from_str(&body).expect("json");
    let id = accepted["document_id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = send(
            http.get(format!("{base}/v1/documents/{id}"))
                .bearer_auth(&key),
        )
        .await;
        let status: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status["status"] == "failed" {
            assert!(
                status["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("fetch failed")),
                "{status}"
            );
            answers.push_str(&body);
            break;
        }
        assert!(Instant::now() < deadline, "not failed in time: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, metrics) = send(http.get(format!("{base}/metrics"))).await;

    // The spans this gateway exported for the trace, once they reach the viewer.
    let mut spans = String::new();
    if s.export_traces {
        let viewer = apex_common::viewer::Viewer::new(&stack.traces_url()).expect("viewer");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let found = viewer.trace(&trace_id).await.unwrap_or_default();
            if found.len() >= 3 {
                spans = format!("{found:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the spans did not reach the viewer: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drop(http);
    let log_path = gateway.log.clone();
    // Stopped first, so that its log is complete.
    drop(gateway);
    let mut logs = String::new();
    std::fs::File::open(&log_path)
        .and_then(|mut f| f.read_to_string(&mut logs))
        .expect("the gateway's log");
    drop(dir);
    assert!(logs.lines().count() > 3, "the gateway logged: {logs}");

    for (what, secret) in secrets {
        for (place, text) in [
            ("log", &logs),
            ("answers", &answers),
            ("metrics", &metrics),
            ("spans", &spans),
        ] {
            assert!(
                !text.contains(secret),
                "{what} appears in the gateway's {place}"
            );
        }
    }
}
