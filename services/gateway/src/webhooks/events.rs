//! The durable record of delivered webhook events, and the outbox their ingestions start
//! from: PostgreSQL's `webhook_events` (created by the writer's migrations), one row per
//! source and event id. Redis answers most replays; this table answers the rest (a replay
//! after the Redis key expired or Redis was emptied), so an event is ingested once whatever
//! Redis remembers.

use std::time::Duration;

use sqlx::PgPool;

/// Stored, its ingestion not started yet.
pub const RECEIVED: &str = "received";
/// Its ingestion started (the document's status says how it went).
pub const ACCEPTED: &str = "accepted";
/// Its ingestion was refused for good (the reason is in `last_error`).
pub const FAILED: &str = "failed";

/// How long a claimed event is left to its dispatcher before another replica may take it.
pub const LEASE: Duration = Duration::from_secs(60);

/// A received event as the dispatcher takes it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub blob_key: Option<String>,
    pub payload_sha256: String,
    pub attempts: i32,
}

/// `webhook_events`, through a lazily connected pool.
#[derive(Debug, Clone)]
pub struct EventLog {
    pool: PgPool,
}

impl EventLog {
    /// A pool that connects on first use (PostgreSQL may start after the gateway).
    pub fn lazy(url: &str) -> anyhow::Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(url)?;
        Ok(Self { pool })
    }

    /// Records the event as received, its body at `blob_key`: `true` the first time,
    /// `false` when it was delivered before.
    pub async fn record(
        &self,
        source: &str,
        event_id: &str,
        event_type: &str,
        payload_sha256: &str,
        document_id: &str,
        blob_key: &str,
    ) -> Result<bool, sqlx::Error> {
        let document = uuid::Uuid::parse_str(document_id).ok();
        let inserted = sqlx::query(
            "INSERT INTO webhook_events \
             (source, event_id, event_type, payload_sha256, document_id, blob_key, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source, event_id) DO NOTHING",
        )
        .bind(source)
        .bind(event_id)
        .bind(event_type)
        .bind(payload_sha256)
        .bind(document)
        .bind(blob_key)
        .bind(RECEIVED)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Claims up to `limit` received events of `sources` that are due, leasing each for
    /// [`LEASE`].
    pub async fn claim(&self, limit: i64, sources: &[String]) -> Result<Vec<Due>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE webhook_events SET next_at = now() + make_interval(secs => $2), \
             attempts = attempts + 1 \
             WHERE (source, event_id) IN ( \
               SELECT source, event_id FROM webhook_events \
               WHERE status = 'received' AND next_at <= now() AND source = ANY($3) \
               ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING source, event_id, event_type, blob_key, payload_sha256, attempts",
        )
        .bind(limit)
        .bind(LEASE.as_secs_f64())
        .bind(sources)
        .fetch_all(&self.pool)
        .await
    }

    /// Sets the event's status (and the reason, for a failure).
    pub async fn finish(
        &self,
        source: &str,
        event_id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_events SET status = $3, last_error = $4 \
             WHERE source = $1 AND event_id = $2",
        )
        .bind(source)
        .bind(event_id)
        .bind(status)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Leaves the event received, to be tried again after `delay`, with the reason.
    pub async fn retry_later(
        &self,
        source: &str,
        event_id: &str,
        delay: Duration,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_events SET next_at = now() + make_interval(secs => $3), \
             last_error = $4 WHERE source = $1 AND event_id = $2 AND status = 'received'",
        )
        .bind(source)
        .bind(event_id)
        .bind(delay.as_secs_f64())
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Received events not dispatched yet (for the backlog gauge).
    pub async fn backlog(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM webhook_events WHERE status = 'received'")
            .fetch_one(&self.pool)
            .await
    }
}
