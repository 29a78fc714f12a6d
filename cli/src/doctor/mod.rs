//! `apex doctor`: the pre-flight check. Every tool the stack needs is installed and every
//! component answers, or the line says what is missing and how to fix it. The first lines are
//! what the build itself needs ([`build`]), so a machine that cannot build says so here too.

mod build;

use std::{path::Path, process::Command};

use crate::{
    probe,
    settings::StackSettings,
    stack::{Component, SEARCH_ATTRIBUTES, postgres_bin},
};

/// One line of the report.
#[derive(Debug)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub fix: &'static str,
}

fn version_of(program: &Path, arg: &str) -> Result<String, String> {
    let out = Command::new(program)
        .arg(arg)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .lines()
    .next()
    .unwrap_or_default()
    .trim()
    .to_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn check(name: &str, result: Result<String, String>, fix: &'static str) -> Check {
    match result {
        Ok(detail) => Check {
            name: name.to_owned(),
            ok: true,
            detail,
            fix,
        },
        Err(detail) => Check {
            name: name.to_owned(),
            ok: false,
            detail,
            fix,
        },
    }
}

const BOOTSTRAP: &str = "run `deploy/local/bootstrap` (or `make bootstrap`)";
const UP: &str = "run `apex up` (see `apex logs <component>` if it fails)";

/// Runs every check: what the build needs, the tools and files of the stack, then whether
/// each component answers.
pub async fn run(s: &StackSettings) -> Vec<Check> {
    let mut checks = build_checks();
    checks.extend(tool_checks(s));
    checks.extend(component_checks(s).await);
    checks
}

/// What `cargo build` needs from the machine.
fn build_checks() -> Vec<Check> {
    vec![
        check(
            "protoc + well-known types",
            build::protoc_well_known_types(Path::new(&build::protoc_program())),
            build::BOOTSTRAP_BUILD,
        ),
        check("C compiler", build::c_compiler(), build::BOOTSTRAP_BUILD),
        check(
            "C++ compiler",
            build::cxx_compiler(),
            build::BOOTSTRAP_BUILD,
        ),
    ]
}

/// The servers, tools, model files and binaries the stack runs.
fn tool_checks(s: &StackSettings) -> Vec<Check> {
    let mut checks = vec![postgres_check()];
    checks.extend(server_checks(s));
    checks.extend(model_checks(s));
    checks.extend(binary_checks());
    checks
}

/// A PostgreSQL server of version 12 or later.
fn postgres_check() -> Check {
    check(
        "postgresql server >= 12",
        match postgres_bin() {
            Some(bin) => version_of(&bin.join("postgres"), "--version").and_then(|v| {
                let major = v
                    .rsplit(' ')
                    .next()
                    .and_then(probe::postgres_major)
                    .unwrap_or(0);
                if major >= 12 {
                    Ok(v)
                } else {
                    Err(format!("{v} is older than 12"))
                }
            }),
            None => Err("no server under /usr/lib/postgresql".to_owned()),
        },
        BOOTSTRAP,
    )
}

/// Redis, FalkorDB, the Temporal CLI and Prometheus.
fn server_checks(s: &StackSettings) -> Vec<Check> {
    vec![
        check(
            "redis-server",
            version_of(Path::new("redis-server"), "--version"),
            BOOTSTRAP,
        ),
        check(
            "falkordb",
            version_of(&s.falkordb_dir().join("redis-server"), "--version").and_then(|v| {
                if s.falkordb_dir().join("falkordb.so").exists() {
                    Ok(v)
                } else {
                    Err("falkordb.so missing".to_owned())
                }
            }),
            BOOTSTRAP,
        ),
        check(
            "temporal cli",
            version_of(&s.venv_bin("temporal"), "--version"),
            BOOTSTRAP,
        ),
        check(
            "prometheus",
            version_of(Path::new("prometheus"), "--version"),
            BOOTSTRAP,
        ),
        check(
            "promtool",
            version_of(Path::new("promtool"), "--version"),
            BOOTSTRAP,
        ),
    ]
}

/// The embedding model, and the ONNX runtime and graph that make the embedder fast.
fn model_checks(s: &StackSettings) -> Vec<Check> {
    let model = s.model_dir();
    let runtime = s.tools().join("lib/libonnxruntime.so");
    vec![
        check(
            "embedding model",
            if model.join("model.safetensors").exists() && model.join("tokenizer.json").exists() {
                Ok(model.display().to_string())
            } else {
                Err(format!(
                    "model.safetensors or tokenizer.json missing in {}",
                    model.display()
                ))
            },
            BOOTSTRAP,
        ),
        check(
            "onnx runtime and graph",
            if !model.join("model.onnx").exists() {
                Err(format!(
                    "model.onnx missing in {} (the embedder falls back to the slower candle encoder)",
                    model.display()
                ))
            } else if !runtime.exists() {
                Err(format!(
                    "{} missing (the embedder falls back to the slower candle encoder)",
                    runtime.display()
                ))
            } else {
                Ok(runtime.display().to_string())
            },
            BOOTSTRAP,
        ),
    ]
}

/// The binaries `apex up` starts next to this one.
fn binary_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    for binary in ["apex-worker", "apex-vectord"] {
        let path = std::env::current_exe()
            .map(|p| p.with_file_name(binary))
            .map_err(|e| e.to_string());
        checks.push(check(
            &format!("{binary} binary"),
            path.and_then(|p| {
                if p.exists() {
                    Ok(p.display().to_string())
                } else {
                    Err(format!("{} not built", p.display()))
                }
            }),
            "run `cargo build --workspace`",
        ));
    }
    checks
}

/// Each component answers, and Temporal has the search attributes.
async fn component_checks(s: &StackSettings) -> Vec<Check> {
    let mut checks = Vec::new();
    for c in Component::ALL {
        let mut result = c.probe(s).await;
        if c == Component::Postgres
            && let Ok(v) = &result
            && probe::postgres_major(v).unwrap_or(0) < 12
        {
            result = Err(format!("server {v} is older than 12"));
        }
        let mut line = check(&format!("{} reachable", c.name()), result, UP);
        line.detail = format!("{}  {}", c.endpoint(s), line.detail);
        checks.push(line);
    }
    checks.push(check(
        "temporal search attributes",
        search_attributes(s),
        UP,
    ));
    checks.push(webhook_sources(s).await);
    checks
}

/// Which webhook sources the running gateway verifies, and which refuse every delivery for
/// want of a secret (a report, not a failure: a stack without webhooks is a working stack).
async fn webhook_sources(s: &StackSettings) -> Check {
    let url = format!("{}/readyz", s.gateway_url());
    let ready = async {
        let body: serde_json::Value = reqwest::Client::new()
            .get(&url)
            .timeout(std::time::Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(body)
    };
    let detail = match ready.await {
        Err(e) => format!("the gateway's /readyz did not answer ({e}); nothing to report"),
        Ok(body) => {
            let hooks = &body["webhooks"];
            let configured: Vec<&str> = hooks["configured"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let refusing: Vec<String> = hooks["unconfigured"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            format!(
                "verified: {}; refusing every delivery (no secret): {}",
                if configured.is_empty() {
                    "none".to_owned()
                } else {
                    configured.join(", ")
                },
                if refusing.is_empty() {
                    "none".to_owned()
                } else {
                    refusing.join(", ")
                },
            )
        }
    };
    Check {
        name: "webhook sources".to_owned(),
        ok: true,
        detail,
        fix: "set APEX_WEBHOOK_SECRETS_<SOURCE> (or webhooks.secrets_dir) for the gateway; docs/security.md#webhooks",
    }
}

fn search_attributes(s: &StackSettings) -> Result<String, String> {
    let out = Command::new(s.venv_bin("temporal"))
        .args(["operator", "search-attribute", "list", "--address"])
        .arg(format!("127.0.0.1:{}", s.temporal_port))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = SEARCH_ATTRIBUTES
        .iter()
        .map(|a| a.split('=').next().unwrap_or(a))
        .filter(|name| {
            !text
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name))
        })
        .collect();
    if missing.is_empty() {
        Ok("Source, Priority, DocumentId, Status".to_owned())
    } else {
        Err(format!("not registered: {}", missing.join(", ")))
    }
}

/// Prints the report; returns whether everything is green.
pub fn print(checks: &[Check]) -> bool {
    for c in checks {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        println!("  [{mark}] {:<28} {}", c.name, c.detail);
        if !c.ok {
            println!("         fix: {}", c.fix);
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        println!("all {} checks passed", checks.len());
    } else {
        println!("{failed} of {} checks failed", checks.len());
    }
    failed == 0
}
