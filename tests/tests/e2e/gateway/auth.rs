//! Who may call the API, against a real gateway and the stack's PostgreSQL: the matrix of
//! keys (none, malformed, unknown, expired, revoked, wrong scope, right scope) on every
//! route that needs one; the probes, metrics and API description open; every refusal
//! counted; a key database that cannot be asked is a 503, never a pass.

use super::*;

/// Each route that needs a key, with its scope, and a request that does nothing harmful
/// when let through.
fn routes() -> Vec<(reqwest::Method, String, &'static str)> {
    let absent = uuid::Uuid::new_v4();
    vec![
        (reqwest::Method::POST, "/v1/documents".into(), "ingest"),
        (
            reqwest::Method::GET,
            format!("/v1/documents/{absent}"),
            "read",
        ),
        (reqwest::Method::GET, "/v1/search?q=dock".into(), "read"),
        (
            reqwest::Method::DELETE,
            format!("/v1/documents/{absent}"),
            "delete",
        ),
        (reqwest::Method::GET, "/v1/rollout".into(), "admin"),
        (reqwest::Method::GET, "/v1/no-such-route".into(), "admin"),
    ]
}

async fn call(
    g: &Gateway,
    method: &reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method.clone(), format!("{}{path}", g.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if *method == reqwest::Method::POST {
        // Not a valid upload: let through, it is a 400, and nothing starts.
        request = request.json(&serde_json::json!({}));
    }
    request.send().await.expect("request")
}

fn refusals(metrics: &str, reason: &str) -> u64 {
    let needle = format!("apex_gateway_auth_refusals_total{{reason=\"{reason}\"}}");
    metrics
        .lines()
        .find(|l| l.starts_with(&needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_key_with_its_scope() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |_| {}).await;
    let keys = KeyStore::connect(&stack.postgres_url())
        .await
        .expect("keys");
    let make = |scopes: &'static [Scope], ttl: Option<Duration>| {
        let keys = keys.clone();
        async move { keys.create("e2e-auth", scopes, ttl).await.expect("create") }
    };
    let ingest = make(&[Scope::Ingest], None).await.key;
    let read = make(&[Scope::Read], None).await.key;
    let delete = make(&[Scope::Delete], None).await.key;
    let admin = make(&[Scope::Admin], None).await.key;
    let expired = make(&[Scope::Admin], Some(Duration::ZERO)).await.key;
    let revoked = make(&[Scope::Admin], None).await;
    assert!(keys.revoke(&revoked.info.id).await.expect("revoke"));
    // The right form, an id nobody issued.
    let unknown = format!("apex_{}_{}", "0".repeat(12), "1".repeat(64));
    // A known id with another secret.
    let forged = format!("{}{}", &admin[..admin.len() - 64], "2".repeat(64));
    let before = g.get("/metrics").await.text().await.expect("metrics");

    for (method, path, scope) in routes() {
        let label = format!("{method} {path}");
        for (key, reason) in [
            (None, "missing"),
            (Some("not-a-key"), "malformed"),
            (Some(unknown.as_str()), "unknown"),
            (Some(forged.as_str()), "unknown"),
            (Some(expired.as_str()), "expired"),
            (Some(revoked.key.as_str()), "revoked"),
        ] {
            let r = call(&g, &method, &path, key).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{label} {reason}");
            let challenge = r
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(
                challenge.starts_with("Bearer realm="),
                "{label} {reason}: {challenge}"
            );
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["error"]["code"], "unauthenticated", "{label}: {body}");
            assert_eq!(
                body["error"]["details"]["reason"], reason,
                "{label}: {body}"
            );
        }
        for (name, key) in [
            ("ingest", &ingest),
            ("read", &read),
            ("delete", &delete),
            ("admin", &admin),
        ] {
            let r = call(&g, &method, &path, Some(key.as_str())).await;
            let status = r.status();
            if name == scope || name == "admin" {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{label} with a `{name}` key: {status}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{label} with a `{name}` key");
                let challenge = r.headers()[reqwest::header::WWW_AUTHENTICATE]
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                assert!(
                    challenge.contains("insufficient_scope")
                        && challenge.contains(&format!("scope=\"{scope}\"")),
                    "{challenge}"
                );
                let body: Value = r.json().await.expect("json");
                assert_eq!(body["error"]["code"], "permission_denied", "{body}");
                // The refusal names the key's id, never the key.
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(!message.contains(&key[key.len() - 64..]), "{message}");
            }
        }
    }
    // A key that was let through is marked used; `list` shows it and never the secret.
    let listed = keys.list().await.expect("list");
    let admin_id = &admin[5..17];
    let row = listed.iter().find(|k| k.id == admin_id).expect("listed");
    assert!(row.revoked_at.is_none());
    // Open without a key.
    for open in ["/livez", "/metrics", "/openapi.json"] {
        let r = call(&g, &reqwest::Method::GET, open, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{open}");
    }
    let readyz = call(&g, &reqwest::Method::GET, "/readyz", None)
        .await
        .status();
    assert!(readyz != StatusCode::UNAUTHORIZED, "{readyz}");
    let api: Value = call(&g, &reqwest::Method::GET, "/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        api["components"]["securitySchemes"]["apiKey"]["scheme"],
        "bearer"
    );
    assert_eq!(
        api["paths"]["/livez"]["get"]["security"],
        serde_json::json!([])
    );
    // Every refusal counted by its reason.
    let after = g.get("/metrics").await.text().await.expect("metrics");
    let n = routes().len() as u64;
    for (reason, per_route) in [
        ("missing", 1),
        ("malformed", 1),
        ("unknown", 2),
        ("expired", 1),
        ("revoked", 1),
        ("scope", 0),
    ] {
        assert!(
            refusals(&after, reason) >= refusals(&before, reason) + per_route * n,
            "{reason}: {} → {}",
            refusals(&before, reason),
            refusals(&after, reason)
        );
    }
    assert!(refusals(&after, "scope") > refusals(&before, "scope"));
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_from_the_next_request_without_a_cache() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |s| s.auth.cache_secs = 0).await;
    let keys = KeyStore::connect(&stack.postgres_url())
        .await
        .expect("keys");
    let key = keys
        .create("e2e-revoke", &[Scope::Read], None)
        .await
        .expect("create");
    let search = format!("/v1/search?q=dock&source={}", g.source);
    let r = call(&g, &reqwest::Method::GET, &search, Some(&key.key)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(keys.revoke(&key.info.id).await.expect("revoke"));
    let r = call(&g, &reqwest::Method::GET, &search, Some(&key.key)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let listed = keys.list().await.expect("list");
    let row = listed.iter().find(|k| k.id == key.info.id).expect("listed");
    assert!(
        row.revoked_at.is_some() && row.last_used_at.is_some(),
        "{row:?}"
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_database_that_cannot_be_asked_is_a_503_never_a_pass() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |s| {
        s.auth.database_url = "postgres://apex:apex-dev@127.0.0.1:1/apex".into();
    })
    .await;
    let key = format!("apex_{}_{}", "0".repeat(12), "1".repeat(64));
    let r = call(&g, &reqwest::Method::GET, "/v1/search?q=dock", Some(&key)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.text().await.expect("body");
    assert!(
        !body.contains("apex-dev"),
        "no password in the answer: {body}"
    );
    // Without a key it is still a 401: nothing to look up.
    let r = call(&g, &reqwest::Method::GET, "/v1/search?q=dock", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_another_key_keeps_its_own() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let g = Gateway::start(&stack, |s| {
        s.auth.rate_per_sec = 0.5;
        s.auth.rate_burst = 2;
    })
    .await;
    let keys = KeyStore::connect(&stack.postgres_url())
        .await
        .expect("keys");
    let busy = keys
        .create("e2e-rate-busy", &[Scope::Read], None)
        .await
        .expect("key")
        .key;
    let other = keys
        .create("e2e-rate-other", &[Scope::Read], None)
        .await
        .expect("key")
        .key;
    let before = g.get("/metrics").await.text().await.expect("metrics");
    let path = format!("/v1/documents/{}", uuid::Uuid::new_v4());
    let get = reqwest::Method::GET;
    for n in 1..=2 {
        let r = call(&g, &get, &path, Some(&busy)).await;
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "request {n} of the burst"
        );
    }
    let limited = call(&g, &get, &path, Some(&busy)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    // One token every 2 s.
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["error"]["details"]["reason"], "rate_limited");
    assert_eq!(body["error"]["retryable"], true);

    // Another key has a bucket of its own; the probes and metrics are never limited.
    let r = call(&g, &get, &path, Some(&other)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    for _ in 0..3 {
        let live = call(&g, &get, "/livez", None).await;
        assert_eq!(live.status(), StatusCode::OK);
    }
    let after = g.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        refusals(&after, "rate_limited"),
        refusals(&before, "rate_limited") + 1
    );
    g.stop().await;
}
