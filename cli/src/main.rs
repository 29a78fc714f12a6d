//! `apex`: the command line of Apex Ingest. It runs the local stack (`up`, `down`, `status`,
//! `logs`, `doctor`), ingests through the gateway (`ingest`, `document`, `search`), moves the
//! rollout (`rollout get|set`), manages the gateway's API keys (`keys`) and runs the
//! hello-world workflow (`hello`).

// A binary crate: `pub` items in its modules are crate-visible by construction.
#![allow(unreachable_pub)]

mod alerts;
mod doctor;
mod gateway;
mod hello;
mod keys;
mod probe;
mod process;
mod settings;
mod sources;
mod stack;
mod top;
mod trace;
mod workers;

use std::process::ExitCode;
use std::time::Duration;

use apex_common::settings::load_or_exit;
use apex_ingestion::workflows::GreetingInput;
use clap::{Parser, Subcommand};

use crate::{settings::StackSettings, stack::Component};

#[derive(Debug, Parser)]
#[command(
    name = "apex",
    version,
    about = "Apex Ingest: local stack and workflows"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the local stack (or the named components); safe to run twice.
    Up {
        components: Vec<String>,
        /// Replicas per stage, e.g. `embedder=3,parser=2,worker=2` (remembered until the
        /// next --scale; replicas past it are stopped). Stages: parser, extractor,
        /// embedder, writer, worker.
        #[arg(long)]
        scale: Option<String>,
        /// Run the mesh's gRPC over mutual TLS with a local CA made in `.apex/tls`
        /// (remembered until --no-tls; a running mesh is restarted to switch).
        #[arg(long, conflicts_with = "no_tls")]
        tls: bool,
        /// Back to plaintext gRPC on loopback (the default).
        #[arg(long)]
        no_tls: bool,
    },
    /// Stop what `up` started (or the named components).
    Down { components: Vec<String> },
    /// Health of every component; with a document id, that document's ingestion status.
    Status {
        /// A document id (as `apex ingest` prints it).
        document: Option<String>,
        #[arg(long, env = "APEX_GATEWAY_URL")]
        gateway: Option<String>,
    },
    /// Upload files, directories (walked) or http(s) URLs through the gateway.
    Ingest {
        #[arg(required = true)]
        inputs: Vec<String>,
        #[arg(long, default_value = "upload")]
        source: String,
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// Metadata attached to every document: `--metadata key=value`, repeatable.
        #[arg(long = "metadata", value_parser = parse_key_value)]
        metadata: Vec<(String, String)>,
        /// Follow each document until it is completed, unchanged or failed.
        #[arg(long)]
        wait: bool,
        /// Uploads at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Longest wait per document, in seconds: for the gateway to accept it (a busy gateway
        /// or a dependency away is waited out) and, with --wait, for its ingestion.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[arg(long, env = "APEX_GATEWAY_URL")]
        gateway: Option<String>,
    },
    /// Search what was ingested.
    Search {
        query: String,
        #[arg(long, default_value_t = 5)]
        limit: u32,
        #[arg(long)]
        source: Option<String>,
        #[arg(long, env = "APEX_GATEWAY_URL")]
        gateway: Option<String>,
    },
    /// The share of documents that go through Temporal (the rest take the legacy path).
    Rollout {
        #[command(subcommand)]
        action: RolloutCmd,
        /// The Redis every gateway reads the percentage from (default: the local stack's).
        #[arg(long, env = "APEX_ROLLOUT_REDIS_URL")]
        redis_url: Option<String>,
        #[arg(long, default_value = apex_ingestion::rollout::ROLLOUT_KEY)]
        key: String,
        #[arg(long, env = "APEX_GATEWAY_URL")]
        gateway: Option<String>,
    },
    /// Print a component's log.
    Logs {
        component: String,
        /// Lines from the end.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
    },
    /// A document's ingestion as a span tree with timings, from the local trace viewer.
    Trace {
        /// A document id (as `apex ingest` prints it) or a trace id.
        id: Option<String>,
        /// Without an id: the newest document from this source.
        #[arg(long)]
        source: Option<String>,
        /// Every trace of the document (each ingestion, the deletion), not only the newest.
        #[arg(long)]
        all: bool,
        /// Seconds to wait for the trace to reach the viewer.
        #[arg(long, default_value_t = 15)]
        wait_secs: u64,
        /// The viewer's base URL (default: the local stack's).
        #[arg(long, env = "APEX_TRACES_URL")]
        traces: Option<String>,
    },
    /// The alert notifications Alertmanager sent to the stack's receiver, and the ones
    /// active now.
    Alerts {
        /// How many of the newest notifications to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        last: usize,
    },
    /// The stack's webhook receiver for Alertmanager (`apex up` runs it).
    #[command(hide = true)]
    AlertReceiver {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// A live view of the mesh: documents in flight and waiting, rates, backlog, each
    /// service's calls, errors and latency, the stores, the alerts firing.
    Top {
        /// Seconds between frames.
        #[arg(long, default_value_t = 2)]
        interval_secs: u64,
        /// Print one frame and exit.
        #[arg(long)]
        once: bool,
        /// The Prometheus to read (default: the local stack's).
        #[arg(long, env = "APEX_PROMETHEUS_URL")]
        prometheus: Option<String>,
    },
    /// The worker's Worker Deployment versions: status, promote a new one, roll back.
    Worker {
        #[command(subcommand)]
        action: workers::WorkerCmd,
        /// The Temporal frontend (default: the local stack's).
        #[arg(long, global = true, env = "APEX_TEMPORAL_ADDRESS")]
        temporal: Option<String>,
        #[arg(long, global = true, default_value = "default")]
        namespace: String,
        #[arg(long, global = true, default_value = "apex-ingest")]
        deployment: String,
    },
    /// The gateway's API keys: create (shown once), list, revoke.
    Keys {
        #[command(subcommand)]
        action: keys::KeysCmd,
        /// The PostgreSQL holding the keys (default: the local stack's).
        #[arg(long, global = true, env = "APEX_KEYS_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Webhook sources and polling accounts: list, add, pause, resume, poll, stats,
    /// remove, and their secrets.
    Sources {
        #[command(subcommand)]
        action: sources::SourcesCmd,
        /// The PostgreSQL holding the accounts (default: the local stack's).
        #[arg(long, global = true, env = "APEX_SOURCES_DATABASE_URL")]
        database_url: Option<String>,
        /// The Temporal frontend (default: the local stack's).
        #[arg(long, global = true, env = "APEX_TEMPORAL_ADDRESS")]
        temporal: Option<String>,
        #[arg(long, global = true, default_value = "default")]
        namespace: String,
        #[arg(long, global = true, default_value = apex_common::temporal::TASK_QUEUE)]
        task_queue: String,
    },
    /// Pre-flight: is everything installed and reachable?
    Doctor,
    /// Exits 0 when a gRPC server reports `--service` SERVING on the standard health
    /// service (or, with `--http`, when the URL answers 2xx): for container health checks.
    Health {
        /// `http://127.0.0.1:50051`, or with `--http` a full URL.
        url: String,
        /// The gRPC health name; empty asks for the server as a whole.
        #[arg(long, default_value = "")]
        service: String,
        #[arg(long)]
        http: bool,
    },
    /// Run the hello-world workflow through Temporal.
    Hello {
        #[arg(default_value = "Apex")]
        name: String,
        /// Fail the activity on its first N attempts to show retries.
        #[arg(long, default_value_t = 0)]
        fail_first: u32,
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

#[derive(Debug, Subcommand)]
enum RolloutCmd {
    /// Print the percentage.
    Get,
    /// Set the percentage (0–100); every gateway uses it from its next document. 0 is the
    /// emergency rollback.
    Set {
        #[arg(allow_hyphen_values = true)]
        percent: String,
    },
    /// The graceful rollback: steps the share down (100 → 50 → 10 → 0, to `--to`) and after
    /// each step waits until the running workflows of the documents it moved to the legacy
    /// path have finished, reporting how many are left.
    Drain {
        #[arg(long)]
        to: String,
        /// Give up (leaving the share where it got to) after this long.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
        /// How often the running workflows are counted.
        #[arg(long, default_value_t = 2000)]
        poll_ms: u64,
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{raw}` is not key=value"))
}

fn components(names: &[String]) -> Result<Vec<Component>, String> {
    names
        .iter()
        .map(|n| {
            Component::parse(n).ok_or_else(|| {
                let known: Vec<&str> = Component::ALL.iter().map(|c| c.name()).collect();
                format!("unknown component `{n}` (known: {})", known.join(", "))
            })
        })
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = stack::remembered_tls(load_or_exit::<StackSettings>());
    gateway::set_api_key(apex_common::api_key::find(&settings));
    match run(cli.command, &settings).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command: `Ok(false)` when it ran and found something wrong.
async fn run(command: Cmd, settings: &StackSettings) -> anyhow::Result<bool> {
    match command {
        Cmd::Up {
            components: names,
            scale,
            tls,
            no_tls,
        } => {
            let only = components(&names).map_err(anyhow::Error::msg)?;
            let switch = match (tls, no_tls) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            stack::up(settings, &only, scale.as_deref(), switch).await?;
            println!("Temporal UI: {}", settings.temporal_ui());
            println!("Trace viewer: {}", settings.traces_url());
            Ok(true)
        }
        Cmd::Down { components: names } => {
            let only = components(&names).map_err(anyhow::Error::msg)?;
            stack::down(settings, &only).map(|()| true)
        }
        Cmd::Status { document: None, .. } => stack::status(settings).await,
        Cmd::Status {
            document: Some(id),
            gateway,
        } => gateway::status(&gateway.unwrap_or_else(|| settings.gateway_url()), &id).await,
        Cmd::Ingest {
            inputs,
            source,
            priority,
            metadata,
            wait,
            concurrency,
            timeout_secs,
            gateway,
        } => {
            let opts = gateway::IngestOptions {
                gateway: gateway.unwrap_or_else(|| settings.gateway_url()),
                source,
                priority,
                metadata: metadata.into_iter().collect(),
                wait,
                concurrency,
                timeout: std::time::Duration::from_secs(timeout_secs),
            };
            // The uploads' client spans go to the stack's trace viewer, and their context
            // to the gateway as `traceparent`: each document's trace starts here. Without a
            // viewer listening, nothing is set up and the gateway starts the trace.
            let endpoint = std::env::var("APEX_CLI_OTLP_ENDPOINT")
                .unwrap_or_else(|_| settings.otlp_endpoint());
            let _telemetry = if listening(&endpoint).await {
                Some(apex_common::telemetry::init_export_only(
                    "apex-cli", &endpoint,
                )?)
            } else {
                None
            };
            ingest(&inputs, opts).await
        }
        Cmd::Search {
            query,
            limit,
            source,
            gateway,
        } => {
            let gateway = gateway.unwrap_or_else(|| settings.gateway_url());
            gateway::search(&gateway, &query, limit, source.as_deref()).await
        }
        Cmd::Rollout {
            action,
            redis_url,
            key,
            gateway,
        } => {
            let url = redis_url.unwrap_or_else(|| settings.redis_url());
            let gateway = gateway.unwrap_or_else(|| settings.gateway_url());
            match action {
                RolloutCmd::Get => gateway::rollout_get(&url, &key, &gateway).await,
                RolloutCmd::Set { percent } => gateway::rollout_set(&url, &key, &percent).await,
                RolloutCmd::Drain {
                    to,
                    timeout_secs,
                    poll_ms,
                    namespace,
                } => {
                    gateway::rollout_drain(&gateway::Drain {
                        redis_url: &url,
                        key: &key,
                        temporal: &settings.temporal_address(),
                        namespace: &namespace,
                        to: &to,
                        timeout: Duration::from_secs(timeout_secs),
                        poll: Duration::from_millis(poll_ms),
                    })
                    .await
                }
            }
        }
        Cmd::Logs { component, lines } => logs(settings, component, lines),
        Cmd::Trace {
            id,
            source,
            all,
            wait_secs,
            traces,
        } => {
            let base = traces.unwrap_or_else(|| settings.traces_url());
            let query = trace::TraceQuery {
                id,
                source,
                all,
                wait: std::time::Duration::from_secs(wait_secs),
            };
            trace::run(&base, query).await
        }
        Cmd::Alerts { last } => {
            let dir = stack::receiver_dir(&stack::state_dir(settings)?);
            let files = alerts::ReceiverFiles::in_dir(&dir);
            alerts::list(&files.log, &settings.alertmanager_url(), last).await
        }
        Cmd::AlertReceiver { listen, dir } => alerts::serve(&listen, &dir).await,
        Cmd::Top {
            interval_secs,
            once,
            prometheus,
        } => {
            let url = prometheus
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", settings.prometheus_port));
            top::run(
                &url,
                std::time::Duration::from_secs(interval_secs.max(1)),
                once,
            )
            .await
        }
        Cmd::Worker {
            action,
            temporal,
            namespace,
            deployment,
        } => {
            let temporal = temporal.unwrap_or_else(|| settings.temporal_address());
            let target = workers::Target {
                temporal: &temporal,
                namespace: &namespace,
                deployment: &deployment,
            };
            workers::run(&action, &target).await
        }
        Cmd::Keys {
            action,
            database_url,
        } => {
            keys::run(
                &action,
                &database_url.unwrap_or_else(|| settings.postgres_url()),
            )
            .await
        }
        Cmd::Sources {
            action,
            database_url,
            temporal,
            namespace,
            task_queue,
        } => {
            let database_url = database_url.unwrap_or_else(|| settings.postgres_url());
            let temporal = temporal.unwrap_or_else(|| settings.temporal_address());
            let secrets_dir = settings.secrets_dir();
            let gateway_url = settings.gateway_url();
            let target = sources::Target {
                database_url: &database_url,
                temporal: &temporal,
                namespace: &namespace,
                task_queue: &task_queue,
                gateway_url: &gateway_url,
                secrets_dir: &secrets_dir,
            };
            sources::run(&action, &target).await
        }
        Cmd::Doctor => Ok(doctor::print(&doctor::run(settings).await)),
        Cmd::Health { url, service, http } => {
            let answer = if http {
                probe::http(&url).await
            } else {
                let tls = stack::tls_material(settings).map_err(anyhow::Error::msg)?;
                probe::grpc_health(&url, &service, tls.as_ref()).await
            };
            match answer {
                Ok(detail) => {
                    println!("{url}: {detail}");
                    Ok(true)
                }
                Err(e) => {
                    eprintln!("{url}: {e}");
                    Ok(false)
                }
            }
        }
        Cmd::Hello {
            name,
            fail_first,
            namespace,
        } => {
            let input = GreetingInput {
                name,
                fail_first_attempts: fail_first,
                delay_ms: 0,
            };
            hello::run(settings, input, &namespace).await
        }
    }
}

/// `apex ingest`: every file under `inputs`, then the summary; `Ok(false)` when one failed.
async fn ingest(inputs: &[String], opts: gateway::IngestOptions) -> anyhow::Result<bool> {
    let wait = opts.wait;
    let files = gateway::expand(inputs)?;
    let outcomes = gateway::ingest(files, opts).await?;
    gateway::print_summary(&outcomes, wait);
    Ok(outcomes.iter().all(|o| !o.failed()))
}

/// Whether something accepts connections at `endpoint` (`http://host:port`) within 300 ms.
async fn listening(endpoint: &str) -> bool {
    let Some(addr) = url::Url::parse(endpoint)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
    else {
        return false;
    };
    matches!(
        tokio::time::timeout(
            std::time::Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

/// `apex logs <component>`: the end of its log.
fn logs(settings: &StackSettings, component: String, lines: usize) -> anyhow::Result<bool> {
    let c = components(&[component]).map_err(anyhow::Error::msg)?;
    let path = stack::log_path(settings, c[0])?;
    println!("==> {} <==", path.display());
    println!("{}", process::tail(&path, lines));
    Ok(true)
}
