//! The published and computed vectors of `../shared/SOURCES.md`, and every way a delivery
//! is refused.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("well-formed in the test"),
            HeaderValue::from_str(v).expect("well-formed in the test"),
        );
    }
    h
}

fn at<'a>(h: &'a HeaderMap, body: &'a [u8], now_secs: i64) -> Delivery<'a> {
    Delivery {
        headers: h,
        body,
        now_secs,
        tolerance_secs: 300,
    }
}

fn key(scheme: Scheme, secret: &str) -> Secret {
    scheme.key(secret).expect("well-formed in the test")
}

const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STANDARD_BODY: &[u8] = br#"{"test": 2432232314}"#;

fn standard_headers(sig: &str) -> HeaderMap {
    headers(&[
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", sig),
    ])
}

#[test]
fn standard_webhooks_published_vector() {
    let h = standard_headers("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let k = key(Scheme::StandardWebhooks, STANDARD_SECRET);
    let v = verify(
        Scheme::StandardWebhooks,
        std::slice::from_ref(&k),
        &at(&h, STANDARD_BODY, 1614265330),
    )
    .expect("well-formed in the test");
    assert_eq!(v.timestamp, Some(1614265330));
    // What we would send is what the spec's vector says.
    let signed = sign(
        Scheme::StandardWebhooks,
        &k,
        1614265330,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        STANDARD_BODY,
    );
    assert!(signed.contains(&(
        "webhook-signature",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_owned()
    )));
}

#[test]
fn standard_webhooks_several_signatures_and_rotation() {
    let old = key(Scheme::StandardWebhooks, "whsec_c2VjcmV0LW9uZQ==");
    let current = key(Scheme::StandardWebhooks, STANDARD_SECRET);
    // The request carries an unknown version, a wrong v1 and the right one.
    let h = standard_headers(
        "v1a,AAAA v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
    let v = verify(
        Scheme::StandardWebhooks,
        &[old, current],
        &at(&h, STANDARD_BODY, 1614265330),
    )
    .expect("well-formed in the test");
    assert_eq!(v.secret_index, 1);
}

#[test]
fn standard_webhooks_refusals() {
    let k = [key(Scheme::StandardWebhooks, STANDARD_SECRET)];
    let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let h = standard_headers(good);
    let check = |h: &HeaderMap, body: &[u8], now: i64| {
        verify(Scheme::StandardWebhooks, &k, &at(h, body, now)).expect_err("refused")
    };
    // The body changed after signing.
    assert_eq!(
        check(&h, br#"{"test": 2432232315}"#, 1614265330),
        Refusal::BadSignature
    );
    // Stale and future, by more than five minutes.
    assert_eq!(check(&h, STANDARD_BODY, 1614265330 + 301).reason(), "stale");
    assert_eq!(
        check(&h, STANDARD_BODY, 1614265330 - 301).reason(),
        "future"
    );
    // Within the tolerance both ways.
    for now in [1614265330 + 300, 1614265330 - 300] {
        assert!(verify(Scheme::StandardWebhooks, &k, &at(&h, STANDARD_BODY, now)).is_ok());
    }
    // The wrong secret.
    let wrong = [key(Scheme::StandardWebhooks, "whsec_c2VjcmV0LW9uZQ==")];
    assert_eq!(
        verify(
            Scheme::StandardWebhooks,
            &wrong,
            &at(&h, STANDARD_BODY, 1614265330)
        )
        .expect_err("refused"),
        Refusal::BadSignature
    );
    // Each missing header is named.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut h = standard_headers(good);
        h.remove(missing);
        assert_eq!(
            check(&h, STANDARD_BODY, 1614265330),
            Refusal::MissingHeader(missing)
        );
    }
    // A signature under another message id does not match.
    let mut h = standard_headers(good);
    h.insert("webhook-id", HeaderValue::from_static("msg_other"));
    assert_eq!(check(&h, STANDARD_BODY, 1614265330), Refusal::BadSignature);
    // Malformed parts.
    let h = standard_headers("v1,not base64!");
    assert_eq!(check(&h, STANDARD_BODY, 1614265330).reason(), "malformed");
    let h = standard_headers("v2,abcd");
    assert_eq!(check(&h, STANDARD_BODY, 1614265330).reason(), "malformed");
    let mut h = standard_headers(good);
    h.insert("webhook-timestamp", HeaderValue::from_static("soon"));
    assert_eq!(check(&h, STANDARD_BODY, 1614265330).reason(), "malformed");
}

#[test]
fn front_application_and_rule_vectors() {
    let body = br#"{"type":"sync","authorization":{"id":"cmp_abc"}}"#;
    let secret = "front-application-test-secret";
    let app = headers(&[
        (
            "x-front-signature",
            "7UWcY7oa8pHAn+DlWw9W5MmNE2I0nem+WpQB5DAA10U=",
        ),
        ("x-front-request-timestamp", "1700000000000"),
    ]);
    let v = verify(
        Scheme::FrontApp,
        &[key(Scheme::FrontApp, secret)],
        &at(&app, body, 1700000000),
    )
    .expect("well-formed in the test");
    // Milliseconds are read as such.
    assert_eq!(v.timestamp, Some(1700000000));
    assert_eq!(
        verify(
            Scheme::FrontApp,
            &[key(Scheme::FrontApp, secret)],
            &at(&app, body, 1700000000 + 301)
        )
        .expect_err("refused")
        .reason(),
        "stale"
    );
    let rule = headers(&[("x-front-signature", "JgJATfvtKGWnoUNmxerTA2CzcJM=")]);
    let v = verify(
        Scheme::FrontRule,
        &[key(Scheme::FrontRule, secret)],
        &at(&rule, body, 0),
    )
    .expect("well-formed in the test");
    assert_eq!(v.timestamp, None);
    // The rule signature is not an application signature, nor the other way round.
    assert_eq!(
        verify(
            Scheme::FrontRule,
            &[key(Scheme::FrontRule, secret)],
            &at(&app, body, 1700000000)
        )
        .expect_err("refused"),
        Refusal::BadSignature
    );
    let signed = sign(
        Scheme::FrontApp,
        &key(Scheme::FrontApp, secret),
        1700000000,
        "",
        body,
    );
    assert!(signed.contains(&(
        "x-front-signature",
        "7UWcY7oa8pHAn+DlWw9W5MmNE2I0nem+WpQB5DAA10U=".to_owned()
    )));
}

#[test]
fn samsara_vector_uses_the_decoded_secret() {
    let body = br#"{"eventId":"abc","eventType":"Ping"}"#;
    let secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let h = headers(&[
        ("x-samsara-timestamp", "1700000000"),
        (
            "x-samsara-signature",
            "v1=2d36fcb9f2f6cfe973437392ef868a8cce2ec8b2648da4f6ea459e49d712000c",
        ),
    ]);
    assert!(
        verify(
            Scheme::Samsara,
            &[key(Scheme::Samsara, secret)],
            &at(&h, body, 1700000000)
        )
        .is_ok()
    );
    // The secret's text as the key (what a wrong helper does) does not verify.
    let undecoded = key(Scheme::FrontApp, secret);
    assert_eq!(
        verify(Scheme::Samsara, &[undecoded], &at(&h, body, 1700000000)).expect_err("refused"),
        Refusal::BadSignature
    );
    let bad = headers(&[
        ("x-samsara-timestamp", "1700000000"),
        ("x-samsara-signature", "2d36fcb9"),
    ]);
    assert_eq!(
        verify(
            Scheme::Samsara,
            &[key(Scheme::Samsara, secret)],
            &at(&bad, body, 1700000000)
        )
        .expect_err("refused")
        .reason(),
        "malformed"
    );
    assert!(Scheme::Samsara.key("not base64 at all!").is_err());
}

#[test]
fn stripe_vector_with_rotation_and_v0_ignored() {
    let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
    let good = "3c5817089d739023dd6190f70a3757e04f7a2fd8b5dab12c2e000f51970dccff";
    let k = [key(Scheme::Stripe, "whsec_test_secret")];
    let h = headers(&[(
        "stripe-signature",
        &format!("t=1614265330,v1={},v1={good},v0=abcdef", "00".repeat(32)),
    )]);
    assert!(verify(Scheme::Stripe, &k, &at(&h, body, 1614265330)).is_ok());
    let only_v0 = headers(&[("stripe-signature", &format!("t=1614265330,v0={good}"))]);
    assert_eq!(
        verify(Scheme::Stripe, &k, &at(&only_v0, body, 1614265330))
            .expect_err("refused")
            .reason(),
        "malformed"
    );
    let no_t = headers(&[("stripe-signature", &format!("v1={good}"))]);
    assert_eq!(
        verify(Scheme::Stripe, &k, &at(&no_t, body, 1614265330))
            .expect_err("refused")
            .reason(),
        "malformed"
    );
    // Signed for another time: the signature covers t.
    let moved = headers(&[("stripe-signature", &format!("t=1614265331,v1={good}"))]);
    assert_eq!(
        verify(Scheme::Stripe, &k, &at(&moved, body, 1614265330)).expect_err("refused"),
        Refusal::BadSignature
    );
}

#[test]
fn scheme_names_round_trip_and_secrets_are_not_printed() {
    for name in Scheme::NAMES {
        assert_eq!(
            Scheme::parse(name)
                .expect("well-formed in the test")
                .as_str(),
            name
        );
    }
    assert_eq!(Scheme::parse("hmac"), None);
    let s = key(Scheme::Stripe, "whsec_test_secret");
    assert_eq!(format!("{s:?}"), "Secret(17 bytes)");
    assert!(Scheme::Stripe.key("  ").is_err());
}
