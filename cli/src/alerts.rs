//! Where the local Alertmanager's notifications land, and `apex alerts`, which lists them.
//!
//! `apex up` runs `apex alert-receiver` (the stack's `alert-receiver` component): an HTTP
//! endpoint on loopback that takes Alertmanager's webhook (`POST /alerts`, the webhook
//! format version 4) with a bearer token that `apex up` writes into the state directory
//! (Alertmanager reads it from its `credentials_file`), and appends each alert to a JSON
//! lines file. `apex alerts` prints that file's newest notifications and what Alertmanager
//! holds active now.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The receiver's files in its state directory.
pub struct ReceiverFiles {
    pub token: PathBuf,
    pub log: PathBuf,
}

impl ReceiverFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            token: dir.join("receiver.token"),
            log: dir.join("alerts.jsonl"),
        }
    }
}

/// The receiver's token, made (random, owner-only) on first use.
pub fn token(files: &ReceiverFiles) -> anyhow::Result<String> {
    if let Ok(t) = std::fs::read_to_string(&files.token)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    if let Some(dir) = files.token.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let t = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode_owner_only()
        .open(&files.token)?;
    f.write_all(t.as_bytes())?;
    Ok(t)
}

trait OwnerOnly {
    fn mode_owner_only(&mut self) -> &mut Self;
}

impl OwnerOnly for std::fs::OpenOptions {
    fn mode_owner_only(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.mode(0o600)
    }
}

struct Receiver {
    token: String,
    log: PathBuf,
    write: tokio::sync::Mutex<()>,
}

/// One line per alert of a notification: when it came, its status and the alert.
fn lines(notification: &Value, received_at: &str) -> Vec<String> {
    notification["alerts"]
        .as_array()
        .map(|alerts| {
            alerts
                .iter()
                .map(|a| {
                    json!({
                        "received_at": received_at,
                        "status": a["status"],
                        "labels": a["labels"],
                        "annotations": a["annotations"],
                        "starts_at": a["startsAt"],
                        "ends_at": a["endsAt"],
                    })
                    .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(r.token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            "a bearer token is required".into(),
        );
    }
    let notification: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a webhook body: {e}")),
    };
    if notification["alerts"].as_array().is_none() {
        return (StatusCode::BAD_REQUEST, "no `alerts` array".into());
    }
    let received_at = httpdate::fmt_http_date(std::time::SystemTime::now());
    let text: String = lines(&notification, &received_at)
        .into_iter()
        .map(|l| l + "\n")
        .collect();
    let _guard = r.write.lock().await;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&r.log)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    match appended {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot record: {e}"),
        ),
    }
}

/// `apex alert-receiver`: serves until SIGTERM/SIGINT.
pub async fn serve(addr: &str, dir: &Path) -> anyhow::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let files = ReceiverFiles::in_dir(dir);
    let receiver = Arc::new(Receiver {
        token: token(&files)?,
        log: files.log,
        write: tokio::sync::Mutex::new(()),
    });
    let app = axum::Router::new()
        .route("/alerts", post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let shutdown = apex_common::Shutdown::on_signals();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(true)
}

fn label(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// `apex alerts`: the newest `last` notifications, then what Alertmanager holds active.
pub async fn list(log: &Path, alertmanager: &str, last: usize) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    println!(
        "notifications received ({} in all, newest last):",
        all.len()
    );
    for a in &all[all.len().saturating_sub(last)..] {
        println!(
            "  {}  {:<8} {:<30} {:<9} {}",
            label(a, "received_at"),
            label(a, "status"),
            label(&a["labels"], "alertname"),
            label(&a["labels"], "severity"),
            label(&a["annotations"], "summary"),
        );
    }
    let active: Value = reqwest::Client::new()
        .get(format!("{alertmanager}/api/v2/alerts?active=true"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .with_context(|| format!("cannot reach Alertmanager at {alertmanager}"))?
        .json()
        .await?;
    let active = active.as_array().cloned().unwrap_or_default();
    println!("active in Alertmanager now: {}", active.len());
    for a in &active {
        println!(
            "  since {}  {:<30} {:<9} {}",
            label(a, "startsAt"),
            label(&a["labels"], "alertname"),
            label(&a["labels"], "severity"),
            label(&a["annotations"], "summary"),
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_alert_of_a_notification_becomes_a_line() {
        let notification = json!({
            "version": "4",
            "status": "firing",
            "alerts": [
                {"status": "firing", "labels": {"alertname": "ApexServiceDown", "severity": "critical"},
                 "annotations": {"summary": "down"}, "startsAt": "2026-12-02T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z"},
                {"status": "resolved", "labels": {"alertname": "ApexBreakerOpen"}, "annotations": {},
                 "startsAt": "2026-12-02T07:00:00Z", "endsAt": "2026-12-02T07:05:00Z"}
            ]
        });
        let out = lines(&notification, "now");
        assert_eq!(out.len(), 2);
        let first: Value = serde_json::from_str(&out[0]).expect("json");
        assert_eq!(first["labels"]["alertname"], "ApexServiceDown");
        assert_eq!(first["status"], "firing");
        let second: Value = serde_json::from_str(&out[1]).expect("json");
        assert_eq!(second["status"], "resolved");
        assert!(lines(&json!({"no": "alerts"}), "now").is_empty());
    }

    #[test]
    fn the_token_is_made_once_and_kept_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let files = ReceiverFiles::in_dir(dir.path());
        let first = token(&files).expect("token");
        assert_eq!(first.len(), 64);
        assert_eq!(token(&files).expect("again"), first);
        let mode = std::fs::metadata(&files.token)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
