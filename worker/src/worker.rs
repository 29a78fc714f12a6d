//! The worker process: connect with backoff, poll `apex-ingest`, drain on shutdown.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use apex_common::Shutdown;
use temporalio_client::{Client, Connection};
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_sdk::{
    Runtime, Worker, WorkerOptions,
    runtime::{
        RuntimeOptions,
        worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
    },
};

use crate::{
    greeting::{GreetingActivities, GreetingWorkflow},
    ingest::{DocumentDeletionWorkflow, DocumentIngestionWorkflow, IngestActivities},
    poll::{PollActivities, PollingWorkflow},
    settings::WorkerSettings,
};

/// Connects to Temporal, retrying with exponential backoff until it answers or shutdown.
/// Returns `None` when shutdown came first.
pub async fn connect(settings: &WorkerSettings, shutdown: &Shutdown) -> Option<Client> {
    let max = Duration::from_secs(settings.connect_max_backoff_secs);
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 1u32;
    loop {
        let identity = format!("apex-worker@{}", std::process::id());
        let result = async {
            let conn = Connection::connect(apex_ingestion::workflows::connection_options(
                &settings.temporal,
                &identity,
            )?)
            .await?;
            let client = Client::new(
                conn,
                apex_ingestion::workflows::client_options(&settings.temporal.namespace),
            )?;
            anyhow::Ok(client)
        }
        .await;
        match result {
            Ok(client) => {
                tracing::info!(address = %settings.temporal.address, attempt, "connected to temporal");
                return Some(client);
            }
            Err(e) => {
                tracing::warn!(address = %settings.temporal.address, attempt, retry_in_ms = backoff.as_millis() as u64, error = %e, "temporal unreachable");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait() => return None,
        }
        backoff = (backoff * 2).min(max);
        attempt += 1;
    }
}

type Meter = std::sync::Arc<dyn temporalio_common::telemetry::metrics::CoreMeter>;

/// The SDK runtime, and the Prometheus meter it exports (for the worker's own metrics).
fn runtime(
    settings: &WorkerSettings,
    shutdown: &Shutdown,
) -> anyhow::Result<(Runtime, Option<Meter>)> {
    let mut meter: Option<std::sync::Arc<dyn temporalio_common::telemetry::metrics::CoreMeter>> =
        None;
    if settings.temporal.metrics_enabled && !settings.metrics_addr.is_empty() {
        let addr: SocketAddr = settings.metrics_addr.parse()?;
        // The SDK's exporter on a loopback port of its own; `/metrics` on `addr` serves
        // its text followed by the worker's other metrics (workflows, activities, gRPC
        // calls, log lines), so Prometheus scrapes one target.
        let prom = start_prometheus_metric_exporter(
            PrometheusExporterOptions::builder()
                .socket_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
                .counters_total_suffix(true)
                .use_seconds_for_durations(true)
                .build(),
        )
        .context("cannot start the SDK's metrics exporter")?;
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(apex_common::metrics::serve_metrics_after(
            format!("http://{}/metrics", prom.bound_addr),
            crate::metrics::registry(),
            listener,
            shutdown.clone(),
        ));
        tracing::info!(%addr, "worker metrics at /metrics");
        meter = Some(prom.meter);
    }
    let telemetry = TelemetryOptions::builder()
        .metric_prefix("temporal_".to_owned())
        .maybe_metrics(meter.clone());
    let options = RuntimeOptions::builder()
        .telemetry_options(telemetry.build())
        .build()
        .map_err(anyhow::Error::msg)?;
    Ok((Runtime::from_current_tokio(options)?, meter))
}

fn worker_options(
    settings: &WorkerSettings,
    ingest: &IngestActivities,
    poll: &PollActivities,
) -> anyhow::Result<WorkerOptions> {
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(
            settings.max_concurrent_workflow_tasks,
        ))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(
            settings.max_concurrent_activities,
        ))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(
            settings.max_concurrent_activities,
        ))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    Ok(WorkerOptions::new(settings.temporal.task_queue.clone())
        .deployment_options(deployment_options(settings))
        .register_workflow::<GreetingWorkflow>()?
        .register_workflow::<DocumentIngestionWorkflow>()?
        .register_workflow::<DocumentDeletionWorkflow>()?
        .register_workflow::<PollingWorkflow>()?
        .register_activities(GreetingActivities)
        .register_activities(ingest.clone())
        .register_activities(poll.clone())
        .workflow_interceptor(crate::metrics::workflow_counter())
        .tuner(tuner)
        .graceful_shutdown_period(Duration::from_secs(settings.graceful_shutdown_secs))
        .build())
}

/// The worker's Worker Deployment version (only its build id when versioning is off).
fn deployment_options(
    settings: &WorkerSettings,
) -> temporalio_common::worker::WorkerDeploymentOptions {
    use temporalio_common::worker::{
        VersioningBehavior, WorkerDeploymentOptions, WorkerDeploymentVersion,
    };
    let behavior = match settings.versioning.as_str() {
        "pinned" => VersioningBehavior::Pinned,
        "auto-upgrade" => VersioningBehavior::AutoUpgrade,
        _ => return WorkerDeploymentOptions::from_build_id(settings.temporal.build_id.clone()),
    };
    WorkerDeploymentOptions::new(
        WorkerDeploymentVersion::builder()
            .deployment_name(settings.deployment_name.clone())
            .build_id(settings.temporal.build_id.clone())
            .build(),
    )
    .use_worker_versioning(true)
    .default_versioning_behavior(behavior)
    .build()
}

/// With versioning on: once this worker's version is known to the server (after its first
/// poll), says whether it is the current version, and makes it current when the deployment
/// has none (the first deployment) and `promote_if_none` allows.
async fn announce_version(client: Client, settings: WorkerSettings) {
    use apex_ingestion::deployment;
    let (ns, name, build) = (
        settings.temporal.namespace.as_str(),
        settings.deployment_name.as_str(),
        settings.temporal.build_id.as_str(),
    );
    for _ in 0..120 {
        match deployment::describe(&client, ns, name).await {
            Ok(Some(d)) if d.versions.iter().any(|v| v.build_id == build) => {
                match d.current.as_deref() {
                    Some(current) if current == build => {
                        tracing::info!(
                            deployment = name,
                            build_id = build,
                            "this worker is the current version"
                        );
                    }
                    Some(current) => tracing::info!(
                        deployment = name,
                        build_id = build,
                        current,
                        "this worker is not the current version: it runs only the workflows pinned to it until `apex worker promote {build}`"
                    ),
                    None if settings.promote_if_none => {
                        match deployment::set_current(
                            &client,
                            ns,
                            name,
                            build,
                            "apex-worker",
                            Duration::from_secs(10),
                        )
                        .await
                        {
                            Ok(()) => tracing::info!(
                                deployment = name,
                                build_id = build,
                                "the deployment had no current version: made it the current version"
                            ),
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), "cannot make this worker's version current")
                            }
                        }
                    }
                    None => tracing::warn!(
                        deployment = name,
                        build_id = build,
                        "the deployment has no current version: no workflow reaches this worker until `apex worker promote {build}`"
                    ),
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "worker deployment not described yet")
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::warn!(
        deployment = name,
        build_id = build,
        "the server never listed this worker's version"
    );
}

/// Runs the worker until `shutdown`: connects (with backoff), polls, and on shutdown lets
/// in-flight activities finish within the grace period. If the server goes away the worker
/// keeps trying to reconnect rather than exiting.
pub async fn run(settings: WorkerSettings, shutdown: Shutdown) -> anyhow::Result<()> {
    let (runtime, meter) = runtime(&settings, &shutdown)?;
    let ingest = IngestActivities::new(&settings.ingest)
        .context("ingestion activities")?
        .with_metrics(meter.clone());
    let _gauges = meter.map(|m| crate::ingest::waiting::export(ingest.waiting(), m));
    let poll = PollActivities::new(&settings.ingest).context("polling activities")?;
    if !settings.live_status_redis_url.is_empty() {
        crate::ingest::live::start(&settings.live_status_redis_url)
            .context("live_status_redis_url")?;
    }
    tracing::info!(
        task_queue = %settings.temporal.task_queue,
        namespace = %settings.temporal.namespace,
        build_id = %settings.temporal.build_id,
        "worker starting"
    );
    // A TLS file that cannot be read is a configuration error, not something to retry.
    apex_ingestion::workflows::connection_options(&settings.temporal, "apex-worker")
        .context("temporal")?;
    while !shutdown.is_triggered() {
        let Some(client) = connect(&settings, &shutdown).await else {
            break;
        };
        ingest
            .waker()
            .connect(client.clone(), settings.temporal.namespace.clone());
        let mut worker = Worker::new(
            &runtime,
            client.clone(),
            worker_options(&settings, &ingest, &poll)?,
        )?;
        let stop = worker.shutdown_handle();
        let watcher = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.wait().await;
                tracing::info!("worker draining: no new tasks, waiting for in-flight ones");
                stop();
            })
        };
        let announce = (settings.versioning != "off")
            .then(|| tokio::spawn(announce_version(client.clone(), settings.clone())));
        tracing::info!(task_queue = %settings.temporal.task_queue, versioning = %settings.versioning, "worker polling");
        let result = worker.run().await;
        watcher.abort();
        if let Some(a) = announce {
            a.abort();
        }
        match result {
            Ok(()) if shutdown.is_triggered() => break,
            Ok(()) => tracing::warn!("worker stopped unexpectedly; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "worker failed; reconnecting"),
        }
    }
    tracing::info!("worker stopped");
    Ok(())
}

pub use apex_ingestion::workflows::client;
