//! Alerting on the stack: Prometheus has loaded every rule of `deploy/prometheus/alerts.yml`
//! and sends to the stack's Alertmanager, Alertmanager routes an alert to the webhook
//! receiver, `apex alerts` lists it, and the receiver refuses a caller without its token.

use std::time::{Duration, Instant};

use apex_e2e::Names;
use serde_json::Value;

use crate::cli::{apex, text};

/// The alert names the rule file defines.
fn rule_names() -> Vec<String> {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/alerts.yml"
    ))
    .expect("alerts.yml");
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_loads_every_rule_and_an_alert_reaches_apex_alerts_through_alertmanager() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let s = &stack.settings;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let names = rule_names();
    assert!(names.len() >= 12, "{} rules; at least 12", names.len());
    let prometheus = format!("http://127.0.0.1:{}", s.prometheus_port);
    let get = |url: String| {
        let http = http.clone();
        async move {
            http.get(&url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"))
                .json::<Value>()
                .await
                .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"))
        }
    };
    let loaded = get(format!("{prometheus}/api/v1/rules")).await;
    let loaded: Vec<&str> = loaded["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["name"].as_str())
        .collect();
    for name in &names {
        assert!(
            loaded.contains(&name.as_str()),
            "{name} is not loaded: {loaded:?}"
        );
    }
    let managers = get(format!("{prometheus}/api/v1/alertmanagers")).await;
    assert_eq!(
        managers["data"]["activeAlertmanagers"][0]["url"],
        format!("{}/api/v2/alerts", s.alertmanager_url()),
        "{managers}"
    );

    // An alert of this test's own, as Prometheus would send it.
    let alert = format!(
        "ApexRouteCheck{}",
        Names::new().source("t").replace('-', "")
    );
    let posted = http
        .post(format!("{}/api/v2/alerts", s.alertmanager_url()))
        .json(&serde_json::json!([{
            "labels": {"alertname": alert, "severity": "warning"},
            "annotations": {"summary": "the route from Alertmanager to apex alerts"},
        }]))
        .send()
        .await
        .expect("alertmanager");
    assert!(posted.status().is_success(), "{}", posted.status());
    // Alertmanager waits group_wait (5 s) before it notifies.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = apex(&["alerts", "-n", "1000"]);
        let printed = text(&out);
        assert!(out.status.success(), "apex alerts: {printed}");
        let received = printed
            .lines()
            .take_while(|l| !l.starts_with("active in Alertmanager"))
            .any(|l| l.contains(&alert) && l.contains("firing"));
        if received {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{alert} never reached the receiver:\n{printed}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The receiver takes notifications only with its token.
    let receiver = format!("http://127.0.0.1:{}/alerts", s.alert_receiver_port);
    let body = r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"Forged"}}]}"#;
    for auth in [None, Some("Bearer wrong")] {
        let mut request = http.post(&receiver).body(body);
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        let status = request.send().await.expect("receiver").status();
        assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    let printed = text(&apex(&["alerts", "-n", "1000"]));
    assert!(!printed.contains("Forged"), "{printed}");
}
