//! The worker's side of [`apex_ingestion::live`]: the ingestion workflow hands each move of
//! its status to [`publish`], which queues it without waiting; one task writes the queue to
//! Redis, the newest status of each document only, in one pipeline per batch.
//!
//! Nothing here is workflow state: a workflow replaying history publishes nothing (its moves
//! were published when they happened), a status that cannot be queued or written is
//! dropped with a count, and the gateway then asks Temporal instead.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use apex_ingestion::IngestStatus;
use apex_ingestion::live::{LIVE_STATUS_TTL, LiveStatus, live_status_key};
use tokio::sync::mpsc;

/// Statuses waiting for the writer task; beyond this they are dropped (a status read then
/// costs a describe).
const QUEUE: usize = 4_096;
/// The most statuses written in one pipeline.
const BATCH: usize = 256;

static SINK: OnceLock<mpsc::Sender<(String, LiveStatus)>> = OnceLock::new();

/// Starts the writer task on Redis at `url` (the runtime's current one). Without it,
/// [`publish`] does nothing.
pub fn start(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    if SINK.set(tx).is_err() {
        anyhow::bail!("the live status writer is already running");
    }
    tokio::spawn(write_loop(client, rx));
    Ok(())
}

/// Queues `status` of run `run_id` (`on_server`: a step waits on a server-side activity).
pub fn publish(run_id: &str, status: &IngestStatus, on_server: bool) {
    // A run whose input could not be read has no document to key it by.
    let (Some(tx), false) = (SINK.get(), status.document_id.is_empty()) else {
        return;
    };
    let at_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let live = LiveStatus {
        run_id: run_id.to_owned(),
        at_ms,
        on_server,
        status: status.clone(),
    };
    if tx.try_send((status.document_id.clone(), live)).is_err() {
        crate::metrics::live_status_dropped();
    }
}

async fn write_loop(client: redis::Client, mut rx: mpsc::Receiver<(String, LiveStatus)>) {
    let mut conn = None;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // The newest status of each document.
        let newest: HashMap<String, LiveStatus> = batch.drain(..).collect();
        if conn.is_none() {
            conn = client.get_multiplexed_async_connection().await.ok();
        }
        let Some(c) = conn.as_mut() else {
            crate::metrics::live_status_dropped_many(newest.len());
            continue;
        };
        let mut pipe = redis::pipe();
        for (document, live) in &newest {
            let Ok(json) = serde_json::to_string(live) else {
                continue;
            };
            pipe.pset_ex(
                live_status_key(document),
                json,
                LIVE_STATUS_TTL.as_millis() as u64,
            )
            .ignore();
        }
        let written: redis::RedisResult<()> =
            tokio::time::timeout(Duration::from_secs(5), pipe.query_async(c))
                .await
                .unwrap_or_else(|_| Err((redis::ErrorKind::IoError, "timed out").into()));
        if let Err(e) = written {
            tracing::warn!(error = %e, statuses = newest.len(), "cannot write live statuses to redis");
            crate::metrics::live_status_dropped_many(newest.len());
            conn = None;
        }
    }
}
