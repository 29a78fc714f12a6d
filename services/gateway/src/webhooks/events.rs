//! The durable record of delivered webhook events: PostgreSQL's `webhook_events` (created
//! by the writer's migrations), one row per source and event id. Redis answers most
//! replays; this table answers the rest (a replay after the Redis key expired or Redis was
//! emptied), so an event is ingested once whatever Redis remembers.

use sqlx::PgPool;

/// What became of a delivered event.
pub const RECEIVED: &str = "received";
pub const ACCEPTED: &str = "accepted";

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
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect_lazy(url)?;
        Ok(Self { pool })
    }

    /// Records the event as received: `true` the first time, `false` when it was delivered
    /// before.
    pub async fn record(
        &self,
        source: &str,
        event_id: &str,
        payload_sha256: &str,
        document_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let document = uuid::Uuid::parse_str(document_id).ok();
        let inserted = sqlx::query(
            "INSERT INTO webhook_events (source, event_id, payload_sha256, document_id, status) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, event_id) DO NOTHING",
        )
        .bind(source)
        .bind(event_id)
        .bind(payload_sha256)
        .bind(document)
        .bind(RECEIVED)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Sets the event's status.
    pub async fn mark(
        &self,
        source: &str,
        event_id: &str,
        status: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE webhook_events SET status = $3 WHERE source = $1 AND event_id = $2")
            .bind(source)
            .bind(event_id)
            .bind(status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets an event that was not ingested, so its redelivery is.
    pub async fn remove(&self, source: &str, event_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM webhook_events WHERE source = $1 AND event_id = $2")
            .bind(source)
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
