//! The webhook outbox's dispatcher: every gateway replica runs one. It claims received
//! events from `webhook_events` (a batch at a time, `FOR UPDATE SKIP LOCKED`, each leased
//! for [`events::LEASE`] so a replica that dies mid-batch only delays its events) and
//! starts each one's ingestion the way an upload's starts ([`crate::upload::accept`]: the
//! rollout's path, the document's claim, the legacy fallback). What cannot start now (429,
//! Temporal away with no fallback, Redis away) is tried again with backoff; what is refused
//! for good is marked failed with the reason. A delivery wakes its replica's dispatcher at
//! once; the others find due events within [`POLL`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apex_common::Shutdown;
use apex_ingestion::IngestInput;

use super::events::{self, Due};
use crate::state::Gateway;

/// How often a dispatcher looks for due events when nothing woke it.
pub const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two tries of one event.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs until `shutdown`. It takes the events of the sources this replica knows (every
/// replica of a deployment has the same sources).
pub async fn run(g: Arc<Gateway>, shutdown: Shutdown) {
    let sources: Vec<String> = g.webhooks.current().names().map(str::to_owned).collect();
    let batch_size = i64::from(g.settings.webhooks.dispatch_parallel.max(1));
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let due = match g.webhook_log.claim(batch_size, &sources).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim webhook events; trying again");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::select! {
                () = g.webhook_wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.wait() => return,
            }
            continue;
        }
        let mut batch = tokio::task::JoinSet::new();
        for event in due {
            let g = Arc::clone(&g);
            batch.spawn(async move { dispatch(&g, event).await });
        }
        while batch.join_next().await.is_some() {}
    }
}

/// The wait before the next try of an event tried `attempts` times.
fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 7) - 1).unwrap_or(0);
    (Duration::from_secs(1) * 2u32.pow(exp)).min(MAX_BACKOFF)
}

async fn dispatch(g: &Arc<Gateway>, event: Due) {
    let Some(key) = event.blob_key.clone() else {
        finish(
            g,
            &event,
            events::FAILED,
            Some("the event's body was not stored"),
        )
        .await;
        return;
    };
    let kind = if event.event_type.is_empty() {
        "event".to_owned()
    } else {
        event.event_type.clone()
    };
    let input = IngestInput {
        source: format!("webhook:{}", event.source),
        external_id: event.event_id.clone(),
        location: format!("blob:{key}"),
        file_name: format!("{}-{kind}.json", event.source),
        mime_type: "application/json".to_owned(),
        metadata: BTreeMap::from([
            ("webhook_source".to_owned(), event.source.clone()),
            ("webhook_event_id".to_owned(), event.event_id.clone()),
            ("webhook_event_type".to_owned(), kind),
        ]),
        deadline_secs: g.settings.ingest_deadline_secs,
        local_attempt_secs: 0,
        ..IngestInput::default()
    };
    let started = match crate::upload::admit(g) {
        Ok(slot) => {
            crate::upload::accept(g, slot, input, None, Some(event.payload_sha256.clone())).await
        }
        Err(e) => Err(e),
    };
    match started {
        Ok(_) => {
            finish(g, &event, events::ACCEPTED, None).await;
            g.metrics
                .webhook_deliveries
                .with_label_values(&[&event.source, "dispatched"])
                .inc();
        }
        Err(e) if e.retryable() => {
            let wait = e
                .retry_after_secs
                .map_or_else(|| backoff(event.attempts), Duration::from_secs)
                .max(backoff(event.attempts));
            tracing::info!(source = %event.source, event = %event.event_id, attempts = event.attempts, wait_secs = wait.as_secs(), error = %e.message, "webhook event not started yet; trying again");
            if let Err(db) = g
                .webhook_log
                .retry_later(&event.source, &event.event_id, wait, &e.message)
                .await
            {
                // The lease runs out and the event is taken again: nothing is lost.
                tracing::warn!(source = %event.source, error = %db, "cannot reschedule a webhook event");
            }
        }
        Err(e) => {
            tracing::warn!(source = %event.source, event = %event.event_id, error = %e.message, "webhook event refused by the ingestion");
            finish(g, &event, events::FAILED, Some(&e.message)).await;
            g.metrics
                .webhook_deliveries
                .with_label_values(&[&event.source, "failed"])
                .inc();
        }
    }
}

async fn finish(g: &Gateway, event: &Due, status: &str, error: Option<&str>) {
    if let Err(e) = g
        .webhook_log
        .finish(&event.source, &event.event_id, status, error)
        .await
    {
        // Left received: taken again after its lease; the document id makes a second
        // start attach to the first ingestion instead of running another.
        tracing::warn!(source = %event.source, error = %e, "cannot record a dispatched webhook event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0).as_secs(), 1);
    }
}
