//! The deployment manifests, checked as far as this machine can without Docker or a
//! cluster: `kubectl kustomize` renders the production overlay and `kubernetes-validate`
//! checks every object against the Kubernetes schemas (offline, strict); `docker-compose
//! config` renders the compose stack. Then, for every binary of the mesh, in both: it is
//! deployed, with probes on the right ports, replicas, (on Kubernetes) a Service, an HPA and
//! a PDB, and every `APEX_…` variable it is given names a setting the binary reads and
//! loads into valid settings whose listen ports are the ports declared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use apex_common::settings::{Settings, Source, load};
use serde::Serialize;
use serde_json::Value;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Checks a binary's environment against its settings; the loaded settings as JSON.
type Check = fn(&[(String, String)]) -> Result<Value, String>;

/// A binary of the mesh: its deployment name, env prefix, and the settings it reads.
struct Binary {
    stage: &'static str,
    prefix: &'static str,
    /// The port name → setting that holds its address.
    ports: &'static [(&'static str, &'static str)],
    /// The gRPC health name its readiness asks for (none: HTTP probes).
    health: Option<&'static str>,
    check: Check,
}

fn check<S: Settings + Serialize + Default>(env: &[(String, String)]) -> Result<Value, String> {
    let defaults = serde_json::to_value(S::default()).map_err(|e| e.to_string())?;
    for (name, _) in env {
        let Some(key) = name.strip_prefix(&format!("{}__", S::ENV_PREFIX)) else {
            continue;
        };
        let mut at = &defaults;
        for part in key.to_ascii_lowercase().split("__") {
            at = at
                .get(part)
                .ok_or_else(|| format!("{name}: no setting `{part}` in {}", S::ENV_PREFIX))?;
        }
    }
    let source = Source {
        file: None,
        env: env.to_vec(),
    };
    let loaded: S = load(&source).map_err(|e| e.to_string())?;
    serde_json::to_value(loaded).map_err(|e| e.to_string())
}

const BINARIES: [Binary; 6] = [
    Binary {
        stage: "parser",
        prefix: "APEX_PARSER",
        ports: &[("grpc", "listen_addr"), ("metrics", "metrics_addr")],
        health: Some("apex.parser.v1.ParserService"),
        check: check::<apex_parser::ParserSettings>,
    },
    Binary {
        stage: "extractor",
        prefix: "APEX_EXTRACTOR",
        ports: &[("grpc", "listen_addr"), ("metrics", "metrics_addr")],
        health: Some("apex.extractor.v1.ExtractorService"),
        check: check::<apex_extractor::ExtractorSettings>,
    },
    Binary {
        stage: "embedder",
        prefix: "APEX_EMBEDDER",
        ports: &[("grpc", "listen_addr"), ("metrics", "metrics_addr")],
        health: Some("apex.embedder.v1.EmbedderService"),
        check: check::<apex_embedder::EmbedderSettings>,
    },
    Binary {
        stage: "writer",
        prefix: "APEX_WRITER",
        ports: &[("grpc", "listen_addr"), ("metrics", "metrics_addr")],
        health: Some("apex.writer.v1.WriterService"),
        check: check::<apex_writer::WriterSettings>,
    },
    Binary {
        stage: "worker",
        prefix: "APEX_WORKER",
        ports: &[("metrics", "metrics_addr")],
        health: None,
        check: check::<apex_worker::WorkerSettings>,
    },
    Binary {
        stage: "gateway",
        prefix: "APEX_GATEWAY",
        ports: &[("http", "listen_addr"), ("metrics", "metrics_addr")],
        health: None,
        check: check::<apex_gateway::GatewaySettings>,
    },
];

/// Variables of the environment that are not the binary's settings but are read (S3).
const OTHER_ENV: [&str; 3] = ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// YAML documents as JSON values, through the tools venv's PyYAML.
fn yaml_docs(tools: &Path, yaml: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.yaml");
    std::fs::write(&file, yaml).expect("write");
    let json = run(Command::new(tools.join("venv/bin/python")).args([
        "-c",
        "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        &file.to_string_lossy(),
    ]));
    serde_json::from_str(&json).expect("json")
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr}"))
}

#[test]
fn kubernetes_manifests_render_validate_and_match_every_binarys_settings() {
    let Some(stack) = apex_e2e::tools() else {
        return;
    };
    let tools = stack.tools();
    let overlay = Path::new(REPO).join("deploy/k8s/overlays/production");
    let rendered = run(Command::new(tools.join("venv/bin/kubectl"))
        .arg("kustomize")
        .arg(&overlay));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).expect("write");
    let validated = run(Command::new(tools.join("venv/bin/kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .arg(&file));
    // An unknown kind only warns; every object here must have a schema.
    assert!(!validated.contains("Couldn't find schema"), "{validated}");
    let docs = yaml_docs(&tools, &rendered);
    assert!(
        validated.matches("passed").count() == docs.len(),
        "{validated}"
    );

    let find = |kind: &str, name: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let config: BTreeMap<String, String> =
        serde_json::from_value(find("ConfigMap", "apex-config")["data"].clone()).expect("data");
    for b in &BINARIES {
        let name = format!("apex-{}", b.stage);
        let deployment = find("Deployment", &name);
        assert_eq!(deployment["metadata"]["namespace"], "apex");
        let pod = &deployment["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["command"][0], name.as_str(), "{name} runs its binary");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert!(c["resources"]["requests"]["cpu"].is_string(), "{name}");
        let ports: BTreeMap<String, u16> = c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().expect("named").to_owned(),
                    p["containerPort"].as_u64().expect("port") as u16,
                )
            })
            .collect();
        // The environment as the pod gets it: ConfigMap values resolved, secrets as
        // stand-ins of the right shape.
        let mut env = Vec::new();
        for e in c["env"].as_array().expect("env") {
            let key = e["name"].as_str().expect("name").to_owned();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_owned()
            } else if let Some(k) = e["valueFrom"]["configMapKeyRef"]["key"].as_str() {
                config
                    .get(k)
                    .unwrap_or_else(|| panic!("{name}: no config key {k}"))
                    .clone()
            } else {
                let k = e["valueFrom"]["secretKeyRef"]["key"]
                    .as_str()
                    .expect("secret key");
                match k {
                    "postgres_url" => "postgres://apex:secret@postgres:5432/apex".to_owned(),
                    "redis_url" => "redis://:secret@redis:6379".to_owned(),
                    _ => "secret".to_owned(),
                }
            };
            assert!(
                key.starts_with(&format!("{}__", b.prefix)) || OTHER_ENV.contains(&key.as_str()),
                "{name}: {key} is not one of its settings"
            );
            env.push((key, value));
        }
        let settings = (b.check)(&env).unwrap_or_else(|e| panic!("{name}: {e}"));
        if b.stage == "worker" {
            assert_eq!(
                settings["versioning"], "pinned",
                "{name} is a versioned worker"
            );
        }
        for (port, setting) in b.ports {
            let declared = ports
                .get(*port)
                .unwrap_or_else(|| panic!("{name}: no {port} port"));
            let addr = settings[setting].as_str().expect("address");
            assert_eq!(port_of(addr), *declared, "{name}: {setting} {addr}");
        }
        // Probes: gRPC health of its own service for the stages, HTTP for the others.
        let ready = &c["readinessProbe"];
        assert!(!c["livenessProbe"].is_null(), "{name} has a liveness probe");
        match b.health {
            Some(health) => {
                assert_eq!(ready["grpc"]["service"], health, "{name}");
                assert_eq!(ready["grpc"]["port"], ports["grpc"], "{name}");
                assert_eq!(c["livenessProbe"]["grpc"]["port"], ports["grpc"], "{name}");
            }
            None => assert!(ready["httpGet"]["path"].is_string(), "{name}"),
        }
        // Longer than the binary's own drain.
        let grace = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("grace");
        let drain = [
            "request_timeout_secs",
            "graceful_shutdown_secs",
            "shutdown_grace_secs",
        ]
        .iter()
        .find_map(|k| settings[*k].as_u64())
        .expect("a drain setting");
        assert!(grace > drain, "{name}: grace {grace} s, drain {drain} s");

        let service = find("Service", &name);
        for p in service["spec"]["ports"].as_array().expect("ports") {
            let target = p["targetPort"].as_str().expect("named target");
            assert_eq!(p["port"], ports[target], "{name}: Service port {target}");
        }
        if b.health.is_some() {
            assert_eq!(service["spec"]["clusterIP"], "None", "{name}: headless");
            let addr = &config[&format!("{}_addr", b.stage)];
            assert_eq!(addr, &format!("http://{name}:{}", ports["grpc"]));
        }
        let hpa = find("HorizontalPodAutoscaler", &name);
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name.as_str());
        let metrics = hpa["spec"]["metrics"].to_string();
        assert!(metrics.contains("\"cpu\""), "{name}: {metrics}");
        match b.stage {
            "embedder" => assert!(metrics.contains("apex_embedder_queue_depth"), "{metrics}"),
            "worker" => assert!(metrics.contains("approximate_backlog_count"), "{metrics}"),
            _ => {}
        }
        let pdb = find("PodDisruptionBudget", &name);
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"],
            deployment["spec"]["selector"]["matchLabels"]
        );
    }
    assert!(
        docs.iter().filter(|d| d["kind"] == "NetworkPolicy").count() >= 5,
        "network policies"
    );
}

#[test]
fn the_compose_stack_renders_and_runs_every_binary_with_its_settings() {
    let Some(stack) = apex_e2e::tools() else {
        return;
    };
    let dir = Path::new(REPO).join("deploy/compose");
    let compose = |extra: &[&str]| {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(&dir)
            .args(["-f", "compose.yaml", "config"])
            .args(extra)
            .env("APEX_POSTGRES_PASSWORD", "pg-secret")
            .env("APEX_NEO4J_PASSWORD", "neo4j-secret")
            .env("APEX_GRAFANA_PASSWORD", "grafana-secret");
        cmd
    };
    let rendered = run(&mut compose(&[]));
    let doc = yaml_docs(&stack.tools(), &rendered).remove(0);
    let services = &doc["services"];
    for want in [
        "postgres",
        "temporal",
        "temporal-ui",
        "redis",
        "neo4j",
        "qdrant",
        "jaeger",
        "prometheus",
        "grafana",
    ] {
        assert!(services[want].is_object(), "compose has {want}");
    }
    for b in &BINARIES {
        let s = &services[b.stage];
        assert_eq!(s["command"][0], format!("apex-{}", b.stage), "{}", b.stage);
        assert!(
            s["deploy"]["replicas"].as_u64().unwrap_or(0) >= 1,
            "{}",
            b.stage
        );
        assert!(s["healthcheck"]["test"].is_array(), "{}", b.stage);
        let env: Vec<(String, String)> = s["environment"]
            .as_object()
            .expect("environment")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        for (k, _) in &env {
            assert!(
                k.starts_with(&format!("{}__", b.prefix)),
                "{}: {k}",
                b.stage
            );
        }
        let settings = (b.check)(&env).unwrap_or_else(|e| panic!("{}: {e}", b.stage));
        if b.stage == "worker" {
            assert_eq!(settings["versioning"], "pinned", "a versioned worker");
        }
        let health = s["healthcheck"]["test"].to_string();
        let (_, listen) = b.ports[0];
        let port = port_of(settings[listen].as_str().expect("address"));
        assert!(
            health.contains(&format!(":{port}")),
            "{}: {health}",
            b.stage
        );
        if let Some(name) = b.health {
            assert!(health.contains(name), "{}: {health}", b.stage);
        }
    }
    // Passwords come from the environment; without them compose refuses to render.
    let out = Command::new("docker-compose")
        .current_dir(&dir)
        .args(["-f", "compose.yaml", "config", "-q"])
        .env_remove("APEX_POSTGRES_PASSWORD")
        .output()
        .expect("docker-compose runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("APEX_POSTGRES_PASSWORD"));

    // Prometheus's configuration there loads the same alert rules.
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = std::fs::read_to_string(dir.join("prometheus.yml")).expect("read");
    let rules = PathBuf::from(REPO).join("deploy/prometheus/alerts.yml");
    let local = config.replace("/etc/prometheus/alerts.yml", &rules.to_string_lossy());
    std::fs::write(tmp.path().join("prometheus.yml"), local).expect("write");
    let text = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(tmp.path().join("prometheus.yml")));
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_image_holds_every_binary_the_manifests_run() {
    let dockerfile =
        std::fs::read_to_string(Path::new(REPO).join("deploy/docker/Dockerfile")).expect("read");
    for b in &BINARIES {
        let bin = format!("apex-{}", b.stage);
        assert!(dockerfile.contains(&format!("-p {bin}")), "{bin} is built");
        assert!(
            dockerfile.contains(&format!("target/release/{bin}")),
            "{bin} is copied"
        );
    }
    assert!(dockerfile.contains("USER 10001"), "runs as a non-root user");
    assert!(dockerfile.contains("libonnxruntime.so") && dockerfile.contains("model.onnx"));
    // The parser's PDF engine and OCR.
    assert!(dockerfile.contains("APEX_PARSER__PDF__PDFIUM_LIBRARY=/opt/apex/lib/libpdfium.so"));
    assert!(dockerfile.contains("tesseract-ocr tesseract-ocr-eng"));
}
