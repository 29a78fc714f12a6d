//! The guard's decisions. Every refusal here is decided before a connection is opened, and
//! the only servers are on 127.0.0.1.

use std::net::IpAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::*;

fn rule_of(host: &str) -> Option<Rule> {
    let url = Url::parse(&format!("http://{host}/latest/meta-data/")).expect("url");
    FetchPolicy::default().check_url(&url).err().map(|r| r.rule)
}

#[test]
fn every_inward_range_is_refused_in_every_spelling() {
    let table: &[(&str, Rule)] = &[
        ("127.0.0.1", Rule::Loopback),
        ("127.1.2.3", Rule::Loopback),
        ("2130706433", Rule::Loopback), // decimal
        ("0177.0.0.1", Rule::Loopback), // octal
        ("0x7f.0.0.1", Rule::Loopback), // hex
        ("0x7f000001", Rule::Loopback), // one hex number
        ("127.1", Rule::Loopback),      // short form
        ("[::1]", Rule::Loopback),
        ("[::ffff:127.0.0.1]", Rule::Loopback), // IPv4-mapped
        ("[::ffff:7f00:1]", Rule::Loopback),
        ("[::127.0.0.1]", Rule::Loopback),     // IPv4-compatible
        ("[64:ff9b::7f00:1]", Rule::Loopback), // NAT64
        ("[2002:7f00:1::]", Rule::Loopback),   // 6to4
        ("169.254.169.254", Rule::Metadata),
        ("2852039166", Rule::Metadata), // 169.254.169.254 in decimal
        ("[::ffff:169.254.169.254]", Rule::Metadata),
        ("169.254.170.2", Rule::Metadata),
        ("100.100.100.200", Rule::Metadata),
        ("[fd00:ec2::254]", Rule::Metadata),
        ("10.0.0.1", Rule::Private),
        ("172.16.5.4", Rule::Private),
        ("172.31.255.255", Rule::Private),
        ("192.168.1.1", Rule::Private),
        ("[::ffff:10.1.2.3]", Rule::Private),
        ("[fec0::1]", Rule::Private),
        ("100.64.0.1", Rule::SharedAddress),
        ("169.254.1.1", Rule::LinkLocal),
        ("[fe80::1]", Rule::LinkLocal),
        ("[fd12:3456::1]", Rule::UniqueLocal),
        ("[fc00::1]", Rule::UniqueLocal),
        ("224.0.0.1", Rule::Multicast),
        ("239.255.255.250", Rule::Multicast),
        ("[ff02::1]", Rule::Multicast),
        ("255.255.255.255", Rule::Broadcast),
        ("0.0.0.0", Rule::Unspecified),
        ("0", Rule::Unspecified),
        ("[::]", Rule::Unspecified),
        ("192.0.2.1", Rule::Documentation),
        ("[2001:db8::1]", Rule::Documentation),
        ("198.18.0.1", Rule::Reserved),
        ("240.0.0.1", Rule::Reserved),
        ("[2001::1]", Rule::Reserved), // Teredo
        ("[100::1]", Rule::Reserved),
    ];
    for (host, rule) in table {
        assert_eq!(rule_of(host), Some(*rule), "{host}");
    }
}

#[test]
fn public_addresses_and_names_pass_the_check_without_a_lookup() {
    for host in [
        "93.184.215.14",
        "[2606:4700::1111]",
        "172.32.0.1",
        "100.128.0.1",
        "example.com",
    ] {
        assert_eq!(rule_of(host), None, "{host}");
    }
}

#[test]
fn only_http_and_https_are_fetched() {
    for url in [
        "ftp://example.com/a.pdf",
        "file:///etc/passwd",
        "gopher://example.com/",
        "data:text/plain,hi",
    ] {
        let refused = FetchPolicy::default()
            .check_url(&Url::parse(url).expect("url"))
            .expect_err(url);
        assert_eq!(refused.rule, Rule::Scheme, "{url}");
    }
}

#[test]
fn the_allow_list_opens_exactly_what_it_names() {
    let policy = FetchPolicy::new(
        &[
            "127.0.0.1/32".into(),
            "10.20.0.0/16".into(),
            "fd00::7".into(),
            "*.corp.example".into(),
        ],
        3,
    )
    .expect("policy");
    let ok = |ip: &str| policy.check_ip("h", ip.parse::<IpAddr>().expect("ip"));
    assert!(ok("127.0.0.1").is_ok());
    assert!(
        ok("::ffff:127.0.0.1").is_ok(),
        "mapped form of an allowed address"
    );
    assert!(ok("10.20.9.9").is_ok());
    assert!(ok("fd00::7").is_ok());
    assert_eq!(ok("127.0.0.2").map_err(|r| r.rule), Err(Rule::Loopback));
    assert_eq!(ok("10.21.0.1").map_err(|r| r.rule), Err(Rule::Private));
    assert_eq!(
        ok("169.254.169.254").map_err(|r| r.rule),
        Err(Rule::Metadata)
    );
    assert!(policy.host_allowed("files.corp.example"));
    assert!(policy.host_allowed("FILES.corp.example."));
    assert!(!policy.host_allowed("corp.example.evil.com"));
    assert!(!policy.host_allowed("evilcorp.example"));
}

#[test]
fn a_bad_allow_entry_is_an_error_naming_it() {
    let e = FetchPolicy::new(&["10.0.0.0/33".into()], 3).expect_err("bad cidr");
    assert!(e.contains("10.0.0.0/33"), "{e}");
    let e = FetchPolicy::new(&["http://x".into()], 3).expect_err("a URL");
    assert!(e.contains("http://x"), "{e}");
}

#[test]
fn a_refusal_names_the_host_and_rule_but_never_the_path_or_query() {
    let url = Url::parse("http://169.254.169.254/latest/meta-data/iam?token=s3cr3t").expect("url");
    let refused = FetchPolicy::default()
        .check_url(&url)
        .expect_err("metadata");
    let text = refused.to_string();
    assert!(text.contains("169.254.169.254"), "{text}");
    assert!(text.contains("`metadata`"), "{text}");
    assert!(
        !text.contains("s3cr3t") && !text.contains("meta-data"),
        "{text}"
    );
}

#[test]
fn a_url_is_shown_without_its_password_or_query() {
    let url =
        Url::parse("https://bob:hunter2@files.example/a.pdf?X-Amz-Signature=abc#p2").expect("url");
    assert_eq!(shown(&url), "https://bob@files.example/a.pdf?redacted");
}

#[test]
fn a_url_identity_keeps_distinct_queries_apart_without_storing_them() {
    let a = Url::parse("https://bob:hunter2@files.example/a.pdf?X-Amz-Signature=abc").expect("url");
    let b = Url::parse("https://files.example/a.pdf?X-Amz-Signature=abd").expect("url");
    let (ia, ib) = (identity(&a), identity(&b));
    assert!(
        ia.starts_with("https://bob@files.example/a.pdf?sha256="),
        "{ia}"
    );
    assert!(!ia.contains("hunter2") && !ia.contains("abc"), "{ia}");
    assert_ne!(ia, ib);
    assert_eq!(
        identity(&Url::parse("https://x.example/a").expect("url")),
        "https://x.example/a"
    );
}

/// A server on 127.0.0.1: `/ok` answers, `/to?u=` redirects to `u`, `/loop` redirects to
/// itself.
async fn server() -> String {
    let app = Router::new()
        .route("/ok", get(|| async { "fetched" }))
        .route(
            "/to",
            get(
                |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| async move {
                    (StatusCode::FOUND, [(header::LOCATION, q["u"].clone())]).into_response()
                },
            ),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn loopback_allowed() -> reqwest::Client {
    FetchPolicy::new(&["127.0.0.1/32".into()], 3)
        .expect("policy")
        .client(reqwest::Client::builder())
        .expect("client")
}

async fn refused(client: &reqwest::Client, url: &str) -> Refusal {
    let e = client.get(url).send().await.expect_err(url);
    refusal_of(&e).unwrap_or_else(|| panic!("{url}: not a refusal: {e:?}"))
}

#[tokio::test]
async fn an_allowed_address_is_fetched() {
    let base = server().await;
    let body = loopback_allowed()
        .get(format!("{base}/ok"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "fetched");
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_by_default() {
    let base = server().await;
    let port = base.rsplit(':').next().expect("port");
    let client = FetchPolicy::default()
        .client(reqwest::Client::builder())
        .expect("client");
    let r = refused(&client, &format!("http://localhost:{port}/ok")).await;
    assert_eq!(r.rule, Rule::Loopback, "{r}");
    assert_eq!(r.host, "localhost");
}

#[tokio::test]
async fn every_redirect_is_judged_before_it_is_followed() {
    let base = server().await;
    let client = loopback_allowed();
    for (target, rule) in [
        ("http://169.254.169.254/latest/meta-data/", Rule::Metadata),
        ("http://10.0.0.7/admin", Rule::Private),
        ("http://[::1]/", Rule::Loopback),
        ("http://127.0.0.2/", Rule::Loopback),
        ("gopher://127.0.0.1:70/", Rule::Scheme),
    ] {
        let url = Url::parse_with_params(&format!("{base}/to"), [("u", target)]).expect("url");
        let r = refused(&client, url.as_str()).await;
        assert_eq!(r.rule, rule, "{target}: {r}");
    }
    // A redirect to a scheme the client does not speak is not followed: the 302 itself is
    // the answer, and the fetch step treats an unfollowed redirect as a refusal.
    let url =
        Url::parse_with_params(&format!("{base}/to"), [("u", "file:///etc/passwd")]).expect("url");
    let stopped = client.get(url).send().await.expect("GET");
    assert_eq!(stopped.status(), StatusCode::FOUND);
    // An allowed hop is followed.
    let url =
        Url::parse_with_params(&format!("{base}/to"), [("u", format!("{base}/ok"))]).expect("url");
    let ok = client.get(url).send().await.expect("GET");
    assert_eq!(ok.text().await.expect("body"), "fetched");
    // A loop stops after the limit.
    let r = refused(&client, &format!("{base}/loop")).await;
    assert_eq!(r.rule, Rule::Redirects, "{r}");
}

#[tokio::test]
async fn refusals_are_counted_by_rule() {
    let before = REFUSALS
        .with_label_values(&[crate::metrics::process::service(), "link-local"])
        .get();
    let _ = FetchPolicy::default().check_url(&Url::parse("http://169.254.3.3/").expect("url"));
    let after = REFUSALS
        .with_label_values(&[crate::metrics::process::service(), "link-local"])
        .get();
    assert_eq!(after, before + 1);
}
