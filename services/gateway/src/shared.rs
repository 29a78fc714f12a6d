//! State every gateway replica sees, in Redis: the rollout percentage (written by
//! `apex rollout set`) and, per document, which path the gateway sent it down and how a
//! legacy ingestion is doing.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use apex_worker::ingest::status::IngestStatus;

/// The default key of the rollout percentage.
pub const ROLLOUT_KEY: &str = "apex:rollout:temporal_percent";

/// The key of a document's gateway record.
fn document_key(document_id: &str) -> String {
    format!("apex:gateway:document:{document_id}")
}

/// What the gateway remembers of the last ingestion it accepted for a document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DocumentRecord {
    /// `temporal` or `legacy`.
    pub path: String,
    /// Why a document meant for Temporal went down the legacy path.
    pub fallback: Option<String>,
    /// The workflow id on the Temporal path.
    pub workflow_id: Option<String>,
    /// The legacy path's status (the Temporal path's lives in the workflow).
    pub status: Option<IngestStatus>,
    /// Unix milliseconds of acceptance.
    pub accepted_at_ms: u64,
}

/// A connection to the shared Redis.
#[derive(Clone)]
pub struct Shared {
    conn: ConnectionManager,
    rollout_key: String,
    ttl: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("rollout_key", &self.rollout_key)
            .finish_non_exhaustive()
    }
}

/// Parses a stored percentage; anything but an integer in 0..=100 is refused.
pub fn parse_percent(raw: &str) -> Result<u8, String> {
    raw.trim()
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("`{}` is not a percentage between 0 and 100", raw.trim()))
}

impl Shared {
    /// Connects (lazily reconnecting afterwards); fails when Redis is not there now.
    pub async fn connect(url: &str, rollout_key: &str, ttl: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            rollout_key: rollout_key.to_owned(),
            ttl,
        })
    }

    /// The stored rollout percentage; `None` when none was set.
    pub async fn rollout(&self) -> anyhow::Result<Option<u8>> {
        let raw: Option<String> = self.conn.clone().get(&self.rollout_key).await?;
        raw.map(|r| parse_percent(&r).map_err(anyhow::Error::msg))
            .transpose()
    }

    /// Stores the rollout percentage for every replica.
    pub async fn set_rollout(&self, percent: u8) -> anyhow::Result<()> {
        if percent > 100 {
            anyhow::bail!("the rollout percentage must be between 0 and 100, not {percent}");
        }
        let () = self
            .conn
            .clone()
            .set(&self.rollout_key, percent.to_string())
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let pong: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await?;
        anyhow::ensure!(pong == "PONG", "unexpected answer to PING: {pong}");
        Ok(())
    }

    pub async fn record(&self, document_id: &str) -> anyhow::Result<Option<DocumentRecord>> {
        let raw: Option<String> = self.conn.clone().get(document_key(document_id)).await?;
        Ok(raw.map(|r| serde_json::from_str(&r)).transpose()?)
    }

    pub async fn put_record(
        &self,
        document_id: &str,
        record: &DocumentRecord,
    ) -> anyhow::Result<()> {
        let () = self
            .conn
            .clone()
            .set_ex(
                document_key(document_id),
                serde_json::to_string(record)?,
                self.ttl.as_secs().max(1),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_outside_0_to_100_are_refused() {
        assert_eq!(parse_percent(" 10\n"), Ok(10));
        assert_eq!(parse_percent("0"), Ok(0));
        assert_eq!(parse_percent("100"), Ok(100));
        for bad in ["101", "-1", "ten", "", "5.5"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }
}
