//! Signed webhooks through a real gateway into the running stack: every scheme's valid
//! delivery becomes a completed document; forged, stale, future, unsigned, oversized,
//! unknown and unconfigured deliveries are refused with their status and store nothing; a
//! replayed event and 100 simultaneous deliveries of one event are one document.

use apex_gateway::webhooks::verify::{Scheme, sign};
use futures::future::join_all;
use sha2::Digest as _;

use super::*;

const STRIPE_OLD: &str = "whsec_rotated_out_but_still_active";
const STRIPE_NEW: &str = "whsec_current_stripe_secret";
const SAMSARA: &str = "c2Ftc2FyYS13ZWJob29rLXNlY3JldC1mb3ItdGVzdHM=";
const FRONT: &str = "front-application-secret-for-tests";
const STANDARD: &str = "whsec_c3RhbmRhcmQtd2ViaG9va3Mtc2VjcmV0";

/// A gateway whose webhook secrets are files in a directory of the test (Sonar has none).
async fn hooked(stack: &Stack, max_body_bytes: u64) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    for (name, text) in [
        ("stripe", format!("{STRIPE_OLD}\n{STRIPE_NEW}\n")),
        ("samsara", SAMSARA.to_owned()),
        ("front", FRONT.to_owned()),
        ("standard", STANDARD.to_owned()),
    ] {
        std::fs::write(dir.path().join(name), text).expect("write a secret");
    }
    let secrets_dir = dir.path().display().to_string();
    let g = Gateway::start(stack, move |s| {
        s.webhooks.secrets_dir = secrets_dir;
        s.webhooks.max_body_bytes = max_body_bytes;
        s.webhooks.dispatch = true;
    })
    .await;
    (g, dir)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A delivery: where it goes, its headers and its body.
#[derive(Clone)]
struct Delivery {
    source: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn signed(
    source: &'static str,
    scheme: Scheme,
    secret: &str,
    at: i64,
    id: &str,
    body: &str,
) -> Delivery {
    let key = scheme.key(secret).expect("a test secret");
    Delivery {
        source,
        headers: sign(scheme, &key, at, id, body.as_bytes()),
        body: body.as_bytes().to_vec(),
    }
}

/// An event of each scheme with a fresh id, and the id the source gives it.
fn events(tag: &str) -> Vec<(Delivery, String)> {
    let t = now();
    let stripe_id = format!("evt_{tag}_stripe");
    let stripe_body = format!(
        r#"{{"id":"{stripe_id}","object":"event","type":"invoice.paid","data":{{"object":{{"object":"invoice","id":"in_{tag}","number":"INV-{tag}","customer_name":"Harbor Point Beverages","amount_paid":245000,"currency":"usd","description":"Linehaul Toledo to Nashville, load L-558201"}}}}}}"#
    );
    let samsara_id = format!("{tag}-samsara");
    let samsara_body = format!(
        r#"{{"eventId":"{samsara_id}","eventTime":"2026-12-03T10:00:00Z","eventType":"AlertIncident","orgId":20936,"webhookId":"1411751028848270","data":{{"vehicle":{{"id":"212014918732717","name":"Truck 42"}},"driver":{{"name":"Dana Reyes"}},"alert":"Harsh braking near Toledo, Ohio"}}}}"#
    );
    let front_id = format!("evt_{tag}_front");
    let front_body = format!(
        r#"{{"type":"inbound","authorization":{{"id":"cmp_abc"}},"payload":{{"id":"{front_id}","type":"inbound","emitted_at":1701600000,"conversation":{{"id":"cnv_{tag}","subject":"Rate confirmation for load L-558201","status":"assigned"}}}}}}"#
    );
    let standard_id = format!("msg_{tag}_standard");
    let standard_body = format!(
        r#"{{"type":"shipment.updated","data":{{"shipment":"SHP-{tag}","carrier":"Keystone Interstate Freight","status":"delivered"}}}}"#
    );
    vec![
        (
            signed("stripe", Scheme::Stripe, STRIPE_NEW, t, "", &stripe_body),
            stripe_id.clone(),
        ),
        (
            signed(
                "stripe",
                Scheme::Stripe,
                STRIPE_OLD,
                t,
                "",
                &stripe_body.replace(&stripe_id, &format!("{stripe_id}_old")),
            ),
            format!("{stripe_id}_old"),
        ),
        (
            signed("samsara", Scheme::Samsara, SAMSARA, t, "", &samsara_body),
            samsara_id,
        ),
        (
            signed("front", Scheme::FrontApp, FRONT, t, "", &front_body),
            front_id,
        ),
        (
            signed(
                "standard",
                Scheme::StandardWebhooks,
                STANDARD,
                t,
                &standard_id,
                &standard_body,
            ),
            standard_id,
        ),
    ]
}

/// The sum of a counter's series that carry every one of `labels`.
async fn counter(g: &Gateway, name: &str, labels: &[impl AsRef<str>]) -> f64 {
    let text = g.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x.as_ref())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends a delivery without an API key (webhooks authenticate by signature).
async fn send(g: &Gateway, d: &Delivery) -> (StatusCode, Value, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/{}", g.url, d.source))
        .header("content-type", "application/json")
        .body(d.body.clone());
    for (k, v) in &d.headers {
        request = request.header(*k, v);
    }
    let response = request.send().await.expect("POST a webhook");
    let status = response.status();
    let retry = retry_after(&response).map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_become_documents_and_forgeries_store_nothing() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let (g, _secrets) = hooked(&stack, 64 * 1024).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut accepted = Vec::new();
    for (delivery, event_id) in events(&tag) {
        let (status, body, _) = send(&g, &delivery).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", delivery.source);
        assert_eq!(body["accepted"], true, "{body}");
        assert_eq!(body["event_id"], event_id.as_str());
        let id = apex_ingestion::document_id(&format!("webhook:{}", delivery.source), &event_id);
        assert_eq!(body["document_id"], id.as_str(), "{body}");
        accepted.push((delivery, id));
    }
    for (delivery, id) in &accepted {
        let done = g.wait_done(id).await;
        assert_eq!(done["status"], "completed", "{}: {done}", delivery.source);
        let view = writer(&stack)
            .await
            .inspect_document(InspectDocumentRequest {
                document_id: id.clone(),
            })
            .await
            .expect("inspect")
            .into_inner();
        assert!(
            view.consistent && view.stores.iter().all(|s| s.present),
            "{view:?}"
        );
    }
    // The events' parties and identifiers are entities of their documents.
    let stripe_entities = entities(&stack, &accepted[0].1).await;
    for (kind, key) in [
        (
            "INVOICE_NUMBER",
            format!("INV-{}", tag.to_ascii_uppercase()),
        ),
        ("ORGANIZATION", "harbor point beverages".to_owned()),
    ] {
        assert!(
            stripe_entities.contains(&(kind.to_owned(), key.clone())),
            "{kind} {key}: {stripe_entities:?}"
        );
    }
    assert!(
        stripe_entities.iter().any(|(k, _)| k == "MONEY"),
        "{stripe_entities:?}"
    );
    let samsara_entities = entities(&stack, &accepted[2].1).await;
    for (kind, key) in [("VEHICLE", "TRUCK 42"), ("PERSON", "dana reyes")] {
        assert!(
            samsara_entities.contains(&(kind.to_owned(), key.to_owned())),
            "{kind} {key}: {samsara_entities:?}"
        );
    }
    // The same delivery again (a provider's retry, or a replay): answered, not ingested.
    let (status, body, _) = send(&g, &accepted[0].0).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["duplicate"], true, "{body}");
    assert_eq!(
        counter(
            &g,
            "apex_gateway_webhook_deliveries_total",
            &["source=\"stripe\"", "outcome=\"duplicate\""]
        )
        .await,
        1.0
    );
    // Redis forgot it (expired, flushed): PostgreSQL's webhook_events still knows it.
    let (_, event_id) = &events(&tag)[0];
    g.shared
        .forget(&apex_gateway::webhooks::replay_key("stripe", event_id))
        .await
        .expect("redis");
    let (status, body, _) = send(&g, &accepted[0].0).await;
    assert_eq!(
        (status, &body["duplicate"]),
        (StatusCode::OK, &Value::Bool(true)),
        "{body}"
    );
    refusals(&g, &tag).await;
    g.stop().await;
}

/// Each refused delivery: its status and reason, and no document.
async fn refusals(g: &Gateway, tag: &str) {
    let t = now();
    let event = |n: &str| format!(r#"{{"id":"evt_{tag}_{n}","type":"invoice.paid"}}"#);
    let stripe = |n: &str, secret: &str, at: i64| {
        signed("stripe", Scheme::Stripe, secret, at, "", &event(n))
    };
    let mut changed = stripe("changed", STRIPE_NEW, t);
    changed.body = event("changed")
        .replace("invoice.paid", "invoice.voided")
        .into_bytes();
    let mut unsigned = stripe("unsigned", STRIPE_NEW, t);
    unsigned.headers.clear();
    let mut not_json = signed("stripe", Scheme::Stripe, STRIPE_NEW, t, "", "not json");
    not_json.source = "stripe";
    let sonar = signed(
        "sonar",
        Scheme::StandardWebhooks,
        STANDARD,
        t,
        &format!("msg_{tag}_sonar"),
        r#"{"event":"account.updated","object_id":1,"current":{}}"#,
    );
    let mut unknown = stripe("unknown", STRIPE_NEW, t);
    unknown.source = "nobody";
    let big = format!(
        r#"{{"id":"evt_{tag}_big","pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let oversized = signed("stripe", Scheme::Stripe, STRIPE_NEW, t, "", &big);
    let cases: Vec<(&str, Delivery, StatusCode, &str)> = vec![
        (
            "changed",
            changed,
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "wrong secret",
            stripe("wrong", "whsec_someone_else", t),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "stale",
            stripe("stale", STRIPE_NEW, t - 600),
            StatusCode::UNAUTHORIZED,
            "stale",
        ),
        (
            "future",
            stripe("future", STRIPE_NEW, t + 600),
            StatusCode::UNAUTHORIZED,
            "future",
        ),
        (
            "unsigned",
            unsigned,
            StatusCode::BAD_REQUEST,
            "missing_header",
        ),
        ("not json", not_json, StatusCode::BAD_REQUEST, "malformed"),
        (
            "unconfigured",
            sonar,
            StatusCode::SERVICE_UNAVAILABLE,
            "unconfigured",
        ),
        (
            "unknown source",
            unknown,
            StatusCode::NOT_FOUND,
            "unknown_source",
        ),
        (
            "oversized",
            oversized,
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversized",
        ),
    ];
    for (what, delivery, expected, reason) in cases {
        let (status, body, retry) = send(g, &delivery).await;
        assert_eq!(status, expected, "{what}: {body}");
        assert_eq!(body["error"]["details"]["reason"], reason, "{what}: {body}");
        assert_eq!(
            retry.is_some(),
            status == StatusCode::SERVICE_UNAVAILABLE,
            "{what}: Retry-After only when a retry can succeed"
        );
    }
    for n in [
        "changed", "wrong", "stale", "future", "unsigned", "unknown", "big",
    ] {
        let id = apex_ingestion::document_id("webhook:stripe", &format!("evt_{tag}_{n}"));
        assert_eq!(
            g.get(&format!("/v1/documents/{id}")).await.status(),
            StatusCode::NOT_FOUND,
            "{n} was stored"
        );
    }
    let counted = g.metric("apex_gateway_webhook_refusals_total").await;
    assert_eq!(counted, 9.0, "every refusal is counted once");
    // Front's setup handshake is answered (signed), and ingests nothing.
    let mut challenge = signed(
        "front",
        Scheme::FrontApp,
        FRONT,
        t,
        "",
        r#"{"type":"sync","authorization":{"id":"cmp_abc"}}"#,
    );
    challenge
        .headers
        .push(("x-front-challenge", format!("ch-{tag}")));
    let (status, body, _) = send(g, &challenge).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["challenge"], format!("ch-{tag}").as_str());
    // Sonar checks its endpoint with HEAD; an unknown source is not there.
    let head = |source: &str| {
        reqwest::Client::new()
            .head(format!("{}/v1/webhooks/{source}", g.url))
            .send()
    };
    assert_eq!(head("sonar").await.expect("HEAD").status(), StatusCode::OK);
    assert_eq!(
        head("nobody").await.expect("HEAD").status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_delivered_a_hundred_times_at_once_is_one_document() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let (g, _secrets) = hooked(&stack, 64 * 1024).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (delivery, event_id) = events(&tag).swap_remove(2);
    assert_eq!(delivery.source, "samsara");
    let answers = join_all((0..100).map(|_| send(&g, &delivery))).await;
    let accepted = answers
        .iter()
        .filter(|(_, b, _)| b["accepted"] == true)
        .count();
    let duplicates = answers
        .iter()
        .filter(|(_, b, _)| b["duplicate"] == true)
        .count();
    assert!(
        answers.iter().all(|(s, _, _)| *s == StatusCode::OK),
        "{:?}",
        answers.iter().map(|(s, b, _)| (s, b)).collect::<Vec<_>>()
    );
    assert_eq!((accepted, duplicates), (1, 99));
    let id = apex_ingestion::document_id("webhook:samsara", &event_id);
    let done = g.wait_done(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["version"], 1, "{done}");
    g.stop().await;
}

/// A gateway that fetches Plaid's keys from `plaid_url` (loopback allowed for the fake).
async fn plaid_gateway(stack: &Stack, plaid_url: &str, dir: &std::path::Path) -> Gateway {
    use apex_e2e::fakes::plaid::{CLIENT_ID, SECRET};
    std::fs::write(dir.join("plaid-client-id"), CLIENT_ID).expect("write");
    std::fs::write(dir.join("plaid-secret"), SECRET).expect("write");
    let (url, secrets_dir) = (plaid_url.to_owned(), dir.display().to_string());
    Gateway::start(stack, move |s| {
        s.webhooks.plaid_url = url;
        s.webhooks.secrets_dir = secrets_dir;
        s.webhooks.dispatch = true;
        s.ingest.fetch_allow = "127.0.0.1".to_owned();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaid_deliveries_verify_with_keys_fetched_by_kid() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let plaid = apex_e2e::fakes::plaid::FakePlaid::start()
        .await
        .expect("the fake Plaid");
    let dir = tempfile::tempdir().expect("dir");
    let g = plaid_gateway(&stack, &plaid.url, dir.path()).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let body = |n: u32| {
        format!(
            "{{\n  \"environment\": \"sandbox\",\n  \"item_id\": \"item-{tag}-{n}\",\n  \"webhook_code\": \"SYNC_UPDATES_AVAILABLE\",\n  \"webhook_type\": \"TRANSACTIONS\"\n}}"
        )
    };
    let delivery = |body: &str, iat: i64, kid: &str| Delivery {
        source: "plaid",
        headers: vec![("plaid-verification", plaid.sign(body.as_bytes(), iat, kid))],
        body: body.as_bytes().to_vec(),
    };
    let mut ids = Vec::new();
    for n in 0..2 {
        let b = body(n);
        let (status, answer, _) = send(&g, &delivery(&b, now(), plaid.kid())).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["event_type"], "TRANSACTIONS.SYNC_UPDATES_AVAILABLE");
        // Plaid sends no event id: the body's digest is one.
        let id = apex_ingestion::document_id(
            "webhook:plaid",
            &hex::encode(sha2::Sha256::digest(b.as_bytes())),
        );
        assert_eq!(answer["document_id"], id.as_str(), "{answer}");
        ids.push(id);
    }
    assert_eq!(
        plaid.key_requests(),
        1,
        "the key is fetched once, then kept by kid"
    );
    for id in &ids {
        assert_eq!(g.wait_done(id).await["status"], "completed");
    }
    let b = body(9);
    let mut changed = delivery(&b, now(), plaid.kid());
    changed.body = body(8).into_bytes();
    let cases = [
        (
            "unknown kid",
            delivery(&b, now(), "6c5516e1-0000-4000-8000-000000000000"),
            StatusCode::UNAUTHORIZED,
            "unknown_key",
        ),
        (
            "stale",
            delivery(&b, now() - 301, plaid.kid()),
            StatusCode::UNAUTHORIZED,
            "stale",
        ),
        (
            "body changed",
            changed,
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
    ];
    for (what, d, expected, reason) in cases {
        let (status, answer, _) = send(&g, &d).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert_eq!(
            answer["error"]["details"]["reason"], reason,
            "{what}: {answer}"
        );
    }
    g.stop().await;
    // Plaid away: the sender is asked to come back, nothing is ingested.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let g = plaid_gateway(&stack, &dead, dir.path()).await;
    let (status, answer, retry) = send(&g, &delivery(&b, now(), plaid.kid())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["details"]["reason"], "key_unavailable");
    assert!(retry.is_some());
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_during_a_temporal_outage_is_answered_and_ingested_once_temporal_is_back() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    // A source only this test's gateways know, so no other gateway starts its events.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let source: &'static str = Box::leak(format!("partner-{}", &tag[..12]).into_boxed_str());
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join(source), STANDARD).expect("write a secret");
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let gateway = |temporal: Option<String>| {
        let secrets_dir = dir.path().display().to_string();
        Gateway::start(&stack, move |s| {
            s.webhooks.secrets_dir = secrets_dir;
            s.webhooks.dispatch = true;
            s.webhooks
                .schemes
                .insert(source.to_owned(), "standard-webhooks".to_owned());
            s.temporal.rollout = 100;
            if let Some(address) = temporal {
                s.temporal.address = address;
                s.fallback_to_legacy = false;
            }
        })
    };
    let away = gateway(Some(dead)).await;
    let id = format!("msg_{tag}_outage");
    let delivery = signed(
        source,
        Scheme::StandardWebhooks,
        STANDARD,
        now(),
        &id,
        r#"{"type":"load.tendered","load":"L-77120","carrier":"Keystone Interstate Freight"}"#,
    );
    let (status, body, _) = send(&away, &delivery).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "answered although Temporal is away: {body}"
    );
    let document = apex_ingestion::document_id(&format!("webhook:{source}"), &id);
    assert_eq!(body["document_id"], document.as_str());
    // Its dispatcher tried, failed for Temporal's absence, and kept the event.
    let pool = sqlx::PgPool::connect(&stack.postgres_url())
        .await
        .expect("postgres");
    let row = || async {
        sqlx::query_as::<_, (String, i32, Option<String>)>(
            "SELECT status, attempts, last_error FROM webhook_events WHERE source = $1 AND event_id = $2",
        )
        .bind(source)
        .bind(&id)
        .fetch_one(&pool)
        .await
        .expect("the stored event")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, attempts, error) = loop {
        let r = row().await;
        if r.2.is_some() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, "received");
    assert!(attempts >= 1);
    assert!(
        error.as_deref().unwrap_or_default().contains("temporal"),
        "{error:?}"
    );
    away.stop().await;
    // A replica with Temporal takes it from the outbox; the document completes once.
    let back = gateway(None).await;
    let done = back.wait_done(&document).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(row().await.0, "accepted");
    let (status, body, _) = send(&back, &delivery).await;
    assert_eq!(
        (status, &body["duplicate"]),
        (StatusCode::OK, &Value::Bool(true))
    );
    back.stop().await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_while_deliveries_arrive_loses_none() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const OLD: &str = "whsec_b2xkLXNlY3JldC1iZWZvcmUtcm90YXRpb24=";
    const NEW: &str = "whsec_bmV3LXNlY3JldC1hZnRlci1yb3RhdGlvbg==";
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let source: &'static str = Box::leak(format!("rotating-{}", &tag[..12]).into_boxed_str());
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(source);
    std::fs::write(&file, OLD).expect("write the secret");
    let secrets_dir = dir.path().display().to_string();
    let g = Arc::new(
        Gateway::start(&stack, move |s| {
            s.webhooks.secrets_dir = secrets_dir;
            s.webhooks.reload_secs = 1;
            s.webhooks
                .schemes
                .insert(source.to_owned(), "standard-webhooks".to_owned());
        })
        .await,
    );
    let gauge = [format!("source=\"{source}\"")];
    let secrets_now = || counter(&g, "apex_gateway_webhook_secrets", &gauge);
    assert_eq!(secrets_now().await, 1.0);
    // The sender delivers every 20 ms, with the secret it was told to use.
    let use_new = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (g, use_new, stop, tag) = (
            Arc::clone(&g),
            Arc::clone(&use_new),
            Arc::clone(&stop),
            tag.clone(),
        );
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let secret = if use_new.load(Ordering::SeqCst) {
                    NEW
                } else {
                    OLD
                };
                let body = format!(r#"{{"type":"load.tendered","load":"L-{n}"}}"#);
                let d = signed(
                    source,
                    Scheme::StandardWebhooks,
                    secret,
                    now(),
                    &format!("msg_{tag}_{n}"),
                    &body,
                );
                answers.push(send(&g, &d).await.0);
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    };
    let wait_for = |want: f64| async move {
        let deadline = Instant::now() + Duration::from_secs(15);
        while secrets_now().await != want {
            assert!(
                Instant::now() < deadline,
                "the gateway did not reload to {want} secrets"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // 1. The new secret beside the old one; 2. the provider switches; 3. the old one goes.
    std::fs::write(&file, format!("{OLD}\n{NEW}\n")).expect("write");
    wait_for(2.0).await;
    use_new.store(true, Ordering::SeqCst);
    std::fs::write(&file, NEW).expect("write");
    wait_for(1.0).await;
    stop.store(true, Ordering::SeqCst);
    let answers = sender.await.expect("the sender");
    assert!(answers.len() >= 20, "{} deliveries", answers.len());
    assert!(
        answers.iter().all(|s| *s == StatusCode::OK),
        "a delivery was refused during the rotation: {answers:?}"
    );
    // The old secret no longer verifies.
    let late = signed(
        source,
        Scheme::StandardWebhooks,
        OLD,
        now(),
        &format!("msg_{tag}_late"),
        "{}",
    );
    assert_eq!(send(&g, &late).await.0, StatusCode::UNAUTHORIZED);
    // Every delivery is in the outbox once (this test's gateway does not dispatch).
    let pool = sqlx::PgPool::connect(&stack.postgres_url())
        .await
        .expect("postgres");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events WHERE source = $1")
        .bind(source)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored as usize, answers.len());
    sqlx::query("DELETE FROM webhook_events WHERE source = $1")
        .bind(source)
        .execute(&pool)
        .await
        .expect("clean up");
    pool.close().await;
    Arc::into_inner(g).expect("the only holder").stop().await;
}
