//! The stack's observability components: the trace viewer (Arize Phoenix), Prometheus with
//! the alert rules, Alertmanager, and the webhook receiver Alertmanager notifies.

use std::{fs, path::Path, process::Command};

use anyhow::bail;

use crate::settings::StackSettings;

/// The launcher that keeps Phoenix's OTLP/gRPC receiver on loopback.
const PHOENIX_LAUNCHER: &str = include_str!("../../../deploy/local/phoenix_loopback.py");

/// Arize Phoenix: UI and REST API on `traces_port`, OTLP/gRPC on `otlp_port`, both on
/// loopback, its SQLite database in the state directory, nothing fetched from outside.
pub(super) fn traces_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let python = s.tools().join("phoenix-venv/bin/python");
    if !python.exists() {
        bail!(
            "{} is missing: run deploy/local/bootstrap (it installs Arize Phoenix)",
            python.display()
        );
    }
    let launcher = dir.join("phoenix_loopback.py");
    fs::write(&launcher, PHOENIX_LAUNCHER)?;
    let mut cmd = Command::new(python);
    cmd.arg(launcher)
        .env("PHOENIX_HOST", "127.0.0.1")
        .env("PHOENIX_PORT", s.traces_port.to_string())
        .env("PHOENIX_GRPC_PORT", s.otlp_port.to_string())
        .env("PHOENIX_WORKING_DIR", dir.join("data"))
        .env("PHOENIX_ALLOW_EXTERNAL_RESOURCES", "false")
        .env("PHOENIX_TELEMETRY_ENABLED", "false")
        .env("PHOENIX_DISABLE_AGENT_ASSISTANT", "true")
        .env("PHOENIX_ALLOWED_SANDBOX_PROVIDERS", "NONE")
        .env("PHOENIX_ENABLE_MCP_SERVER", "false")
        .env("PHOENIX_LOG_MIGRATIONS", "false");
    Ok(cmd)
}

/// The alert rules (`deploy/prometheus/alerts.yml`), written beside the configuration.
const ALERT_RULES: &str = include_str!("../../../deploy/prometheus/alerts.yml");

/// Prometheus's configuration: the stages' targets come from the replica lists `apex up`
/// keeps (`<state>/endpoints/<stage>.targets.json`, labelled with the replica's name), so
/// a replica added or removed is scraped or dropped without a restart.
fn prometheus_config(s: &StackSettings, state: &Path) -> String {
    let targets = |stage: &str| {
        format!(
            "'{}'",
            state
                .join("endpoints")
                .join(format!("{stage}.targets.json"))
                .display()
        )
    };
    let services = ["parser", "extractor", "embedder", "writer"]
        .map(targets)
        .join(", ");
    format!(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nrule_files:\n  - alerts.yml\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{}']\nscrape_configs:\n  - job_name: temporal-server\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n  - job_name: apex-worker\n    file_sd_configs:\n      - files: [{}]\n  - job_name: apex-services\n    file_sd_configs:\n      - files: [{services}]\n  - job_name: apex-gateway\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        s.alertmanager_port,
        s.temporal_metrics_port,
        targets("worker"),
        s.gateway_metrics_port,
    )
}

pub(super) fn prometheus_command(
    s: &StackSettings,
    state: &Path,
    dir: &Path,
) -> anyhow::Result<Command> {
    let config = dir.join("prometheus.yml");
    fs::write(&config, prometheus_config(s, state))?;
    fs::write(dir.join("alerts.yml"), ALERT_RULES)?;
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!(
            "--web.listen-address=127.0.0.1:{}",
            s.prometheus_port
        ));
    Ok(cmd)
}

/// Alertmanager's configuration: every alert to the local webhook receiver, grouped by
/// alert name, resolved ones too; the receiver's token from a file only the owner reads.
fn alertmanager_config(s: &StackSettings, token_file: &Path) -> String {
    format!(
        "route:\n  receiver: apex-webhook\n  group_by: ['alertname']\n  group_wait: 5s\n  group_interval: 1m\n  repeat_interval: 4h\nreceivers:\n  - name: apex-webhook\n    webhook_configs:\n      - url: 'http://127.0.0.1:{}/alerts'\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials_file: '{}'\n",
        s.alert_receiver_port,
        token_file.display()
    )
}

/// Where the receiver keeps its token and what it received.
pub fn receiver_dir(state: &Path) -> std::path::PathBuf {
    state.join("alert-receiver")
}

/// Alertmanager (Debian's `prometheus-alertmanager`) on loopback, without clustering.
pub(super) fn alertmanager_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let Some(state) = dir.parent() else {
        bail!("no state directory above {}", dir.display());
    };
    let files = crate::alerts::ReceiverFiles::in_dir(&receiver_dir(state));
    crate::alerts::token(&files)?;
    let config = dir.join("alertmanager.yml");
    fs::write(&config, alertmanager_config(s, &files.token))?;
    let mut cmd = Command::new("prometheus-alertmanager");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!(
            "--web.listen-address=127.0.0.1:{}",
            s.alertmanager_port
        ))
        .arg("--cluster.listen-address=");
    Ok(cmd)
}

/// `apex alert-receiver`, this binary, as the webhook receiver.
pub(super) fn receiver_command(s: &StackSettings, dir: &Path) -> anyhow::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("alert-receiver")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", s.alert_receiver_port))
        .arg("--dir")
        .arg(dir);
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promtool(args: &[&str]) -> String {
        let out = Command::new("promtool")
            .args(args)
            .output()
            .expect("promtool runs (deploy/local/bootstrap installs it with prometheus)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {}: {text}", args.join(" "));
        text
    }

    #[test]
    fn the_local_prometheus_configuration_loads_the_alert_rules() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let s = StackSettings::default();
        // The replicas' target files, as `apex up --scale embedder=2,worker=2` writes them.
        let scale = s.scale.with("embedder=2,worker=2").expect("scale");
        super::super::replicas::write_lists(&s, dir.path(), &scale).expect("lists");
        let config = dir.path().join("prometheus.yml");
        fs::write(&config, prometheus_config(&s, dir.path())).expect("written");
        fs::write(dir.path().join("alerts.yml"), ALERT_RULES).expect("written");
        let text = promtool(&["check", "config", &config.to_string_lossy()]);
        assert!(text.contains("SUCCESS: 19 rules found"), "{text}");
        let embedders =
            fs::read_to_string(dir.path().join("endpoints/embedder.targets.json")).expect("read");
        let groups: serde_json::Value = serde_json::from_str(&embedders).expect("json");
        assert_eq!(
            groups,
            serde_json::json!([
                {"targets": ["127.0.0.1:9103"], "labels": {"replica": "embedder"}},
                {"targets": ["127.0.0.1:9113"], "labels": {"replica": "embedder-2"}},
            ])
        );
        let clients = fs::read_to_string(dir.path().join("endpoints/embedder")).expect("read");
        assert!(
            clients.ends_with("http://127.0.0.1:50053\nhttp://127.0.0.1:50063\n"),
            "{clients}"
        );
    }

    #[test]
    fn the_local_alertmanager_configuration_is_valid() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let token = dir.path().join("receiver.token");
        fs::write(&token, "t").expect("written");
        let config = dir.path().join("alertmanager.yml");
        fs::write(
            &config,
            alertmanager_config(&StackSettings::default(), &token),
        )
        .expect("written");
        let out = Command::new("amtool")
            .args(["check-config", &config.to_string_lossy()])
            .output()
            .expect("amtool runs (deploy/local/bootstrap installs prometheus-alertmanager)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "amtool: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 receivers"), "{text}");
    }

    #[test]
    fn every_alert_has_a_runbook_entry_it_links_to() {
        let runbook = include_str!("../../../docs/operations.md");
        let names: Vec<&str> = ALERT_RULES
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- alert: "))
            .collect();
        assert!(names.len() >= 12, "{names:?}");
        for name in names {
            assert!(
                runbook.contains(&format!("\n#### {name}\n")),
                "docs/operations.md has no `#### {name}` entry"
            );
            let link = format!("runbook: docs/operations.md#{}", name.to_lowercase());
            assert!(ALERT_RULES.contains(&link), "{name} does not link {link}");
        }
    }

    #[test]
    fn the_alert_rules_pass_their_promtool_tests() {
        let tests = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/prometheus/alerts.test.yml"
        );
        let text = promtool(&["test", "rules", tests]);
        assert!(text.contains("SUCCESS"), "{text}");
    }
}
