//! The LLM engine against a local server speaking the OpenAI chat-completions wire format:
//! the request it sends, answers merged over the exact layer, the Redis cache (the local
//! stack's Redis; skipped without a running stack), retries honouring `Retry-After`, and
//! per-chunk fallback to the default engine.

mod support;

use std::time::Duration;

use apex_extractor::ExtractorSettings;
use apex_proto::extractor::v1::{ExtractRequest, ExtractionResult};
use support::openai::{FakeOpenAi, Reply};
use support::{Server, chunk, start_with};

/// A marker no earlier run used, so cached answers from other runs cannot interfere.
fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    format!("ref-{}-{}", t.as_nanos(), std::process::id())
}

struct Llm {
    server: Server,
    fake: FakeOpenAi,
    _key: tempfile::NamedTempFile,
}

async fn start_llm(configure: impl FnOnce(&mut ExtractorSettings)) -> Llm {
    let fake = FakeOpenAi::start(vec![
        ("ORGANIZATION", "Lone Star Grocers"),
        ("PERSON", "Ana Ruiz"),
        ("LOCATION", "Laredo"),
    ])
    .await;
    let key = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key.path(), "sk-test-apex\n").expect("write key");
    let base_url = fake.base_url.clone();
    let key_path = key.path().display().to_string();
    let server = start_with(
        move |s| {
            s.llm.enabled = true;
            s.llm.base_url = base_url;
            s.llm.model = "gpt-test".to_owned();
            s.llm.api_key_file = key_path;
            s.llm.initial_backoff_ms = 10;
            s.llm.max_backoff_ms = 50;
            s.llm.cache_url = String::new();
            s.llm.concurrency = 1;
            configure(s);
        },
        None,
    )
    .await;
    Llm {
        server,
        fake,
        _key: key,
    }
}

async fn extract(server: &mut Server, texts: &[&str]) -> ExtractionResult {
    server
        .client
        .extract(ExtractRequest {
            chunks: texts
                .iter()
                .enumerate()
                .map(|(i, t)| chunk(&format!("c{i}"), t))
                .collect(),
            ..ExtractRequest::default()
        })
        .await
        .expect("extract")
        .into_inner()
        .result
        .expect("result")
}

fn keys(result: &ExtractionResult) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = result
        .entities
        .iter()
        .map(|e| (e.entity_type.clone(), e.canonical_key.clone()))
        .collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_answers_replace_the_named_layer_and_are_cached_in_redis() {
    // The cache is the local stack's Redis: without a running stack this test is skipped.
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let redis = stack.redis_url();
    let mut llm = start_llm(|s| s.llm.cache_url = redis).await;
    let text = format!(
        "Driver Ana Ruiz of Lone Star Grocers picked up PO 4500012345 in Laredo ({}).",
        nonce()
    );
    llm.fake.script([Reply::Content(
        serde_json::json!({
            "entities": [
                {"type": "PERSON", "text": "Ana Ruiz"},
                {"type": "ORGANIZATION", "text": "Lone Star Grocers"},
                {"type": "LOCATION", "text": "Laredo"},
                {"type": "ORGANIZATION", "text": "Invented Holdings"}
            ],
            "relations": [{"from": "Ana Ruiz", "type": "WORKS_FOR", "to": "Lone Star Grocers"}]
        })
        .to_string(),
    )]);
    let first = extract(&mut llm.server, &[&text]).await;
    assert_eq!((first.llm_chunks, first.fallback_chunks), (1, 0));
    let found = keys(&first);
    assert_eq!(
        found,
        [
            ("LOCATION".to_owned(), "city:laredo-us".to_owned()),
            // No legal suffix: the rule layer would not have found it.
            ("ORGANIZATION".to_owned(), "lone star grocers".to_owned()),
            ("PERSON".to_owned(), "ana ruiz".to_owned()),
            ("PO_NUMBER".to_owned(), "4500012345".to_owned()),
        ],
        "the invented organisation is dropped"
    );
    let person = first
        .entities
        .iter()
        .position(|e| e.entity_type == "PERSON")
        .expect("person") as u32;
    assert!(first.relations.iter().any(|r| r.from_entity_index == person
        && r.relation_type == "WORKS_FOR"
        && first.entities[r.to_entity_index as usize].canonical_key == "lone star grocers"));

    // The request is a chat completion asking for strict JSON of the schema.
    let received = llm.fake.received();
    assert_eq!(received.len(), 1);
    let body = &received[0].body;
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(received[0].user_text(), text);
    assert_eq!(
        received[0].authorization.as_deref(),
        Some("Bearer sk-test-apex")
    );

    // The same chunk again: answered from Redis, no second API call, same entities.
    let second = extract(&mut llm.server, &[&text]).await;
    assert_eq!(llm.fake.received().len(), 1, "served from the cache");
    assert_eq!(keys(&second), found);
    assert_eq!(second.llm_chunks, 1);
    llm.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let mut llm = start_llm(|_| {}).await;
    llm.fake
        .script([Reply::rate_limited("1"), Reply::server_error(503)]);
    let result = extract(&mut llm.server, &["Ana Ruiz reached Laredo."]).await;
    assert_eq!((result.llm_chunks, result.fallback_chunks), (1, 0));
    let received = llm.fake.received();
    assert_eq!(received.len(), 3, "429, 503, then the answer");
    assert!(
        received[1].at.duration_since(received[0].at) >= Duration::from_secs(1),
        "the second call waited for Retry-After: 1"
    );
    // An HTTP-date Retry-After works as well.
    let soon = httpdate_in(1);
    llm.fake.script([Reply::rate_limited(&soon)]);
    let result = extract(&mut llm.server, &["Lone Star Grocers in Laredo."]).await;
    assert_eq!(result.llm_chunks, 1);
    assert_eq!(llm.fake.received().len(), 5);
    llm.server.stop().await;
}

fn httpdate_in(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(secs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_answers_fall_back_to_the_default_engine_per_chunk() {
    let mut llm = start_llm(|s| s.llm.max_attempts = 2).await;
    llm.fake.script([
        // Chunk 0: a bad key is not retried.
        Reply::bad_key(),
        // Chunk 1: not JSON of the schema.
        Reply::Content("Sure! Here are the entities: Acme".to_owned()),
        // Chunk 2: cut off.
        Reply::CutOff,
        // Chunk 3: refused.
        Reply::Refusal,
        // Chunk 4: server errors until the attempts run out.
        Reply::server_error(500),
        Reply::server_error(502),
        // Chunk 5: asked to wait longer than max_retry_after_secs.
        Reply::rate_limited("3600"),
        // Chunk 6: answered.
    ]);
    let texts = [
        "Acme Freight Inc. booked the load.",
        "Beta Logistics LLC confirmed.",
        "Gamma Carriers Corp. is late.",
        "Delta Cold Chain Ltd. rejected it.",
        "Epsilon Trucking Co. will call.",
        "Zeta Freight GmbH paid.",
        "Ana Ruiz arrived.",
    ];
    let result = extract(&mut llm.server, &texts).await;
    assert_eq!((result.llm_chunks, result.fallback_chunks), (1, 6));
    assert_eq!(
        llm.fake.received().len(),
        8,
        "one call each, two for the 5xx chunk, none retried after a 3600 s Retry-After"
    );
    // The fallback chunks still have the rule layer's organisations.
    let found = keys(&result);
    for org in [
        "acme freight",
        "beta logistics",
        "gamma carriers",
        "delta cold chain",
        "epsilon trucking",
        "zeta freight",
    ] {
        assert!(
            found.contains(&("ORGANIZATION".to_owned(), org.to_owned())),
            "{org}: {found:?}"
        );
    }
    assert!(found.contains(&("PERSON".to_owned(), "ana ruiz".to_owned())));
    llm.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_that_never_answers_is_cut_off_at_the_deadline() {
    let mut llm = start_llm(|s| {
        s.extract_timeout_secs = 1;
        s.llm.call_timeout_secs = 30;
    })
    .await;
    llm.fake.script([Reply::Hang]);
    let started = std::time::Instant::now();
    let result = extract(&mut llm.server, &["Acme Freight Inc. in Laredo."]).await;
    assert_eq!((result.llm_chunks, result.fallback_chunks), (0, 1));
    assert!(
        keys(&result).contains(&("ORGANIZATION".to_owned(), "acme freight".to_owned())),
        "the default engine answered"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not wait for the call timeout"
    );
    llm.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_key_file_or_bad_llm_settings_stop_the_start() {
    let mut settings = ExtractorSettings::default();
    settings.llm.enabled = true;
    settings.llm.api_key_file = "/nonexistent/openai.key".to_owned();
    let dir = tempfile::tempdir().expect("dir");
    settings.service.blob_url = dir.path().display().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = apex_extractor::run(settings, listener, None, apex_common::Shutdown::new())
        .await
        .expect_err("unreadable key");
    assert!(format!("{err:#}").contains("api_key_file"), "{err:#}");

    use apex_common::Settings as _;
    let mut bad = ExtractorSettings::default();
    bad.llm.enabled = true;
    bad.llm.base_url = "not a url".to_owned();
    bad.llm.max_attempts = 0;
    let problems = bad.validate();
    assert!(
        problems.iter().any(|p| p.contains("llm.base_url")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("llm.max_attempts")),
        "{problems:?}"
    );
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

/// Every log line of this test binary from the first call on (the extraction logs from a
/// blocking thread, so a subscriber for one thread would miss it). The other tests' lines
/// land here too; none may hold the key either.
fn captured_logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_provider_echoes_back_appears_in_no_log_line() {
    let captured = captured_logs();
    let mut llm = start_llm(|_| {}).await;
    llm.fake.script([Reply::bad_key()]);
    let result = extract(&mut llm.server, &["Acme Freight Inc. booked the load."]).await;
    assert_eq!(result.fallback_chunks, 1);
    llm.server.stop().await;
    let logs = captured.text();
    assert!(
        logs.contains("LLM failed") && logs.contains("<redacted>"),
        "the failure is logged, with the echoed key replaced: {logs}"
    );
    assert!(!logs.contains("sk-test-apex"), "{logs}");
}
