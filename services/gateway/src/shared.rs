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

/// The key of a document's ingestion claim.
fn claim_key(document_id: &str) -> String {
    format!("apex:gateway:active:{document_id}")
}

/// An ingestion in progress, claimed in Redis so that one document has at most one
/// ingestion at a time across paths and gateway replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Unique per ingestion; only its holder may release or change the claim.
    pub token: String,
    /// SHA-256 of the bytes being ingested (empty when not known yet: a URL or key).
    pub sha256: String,
    /// `temporal` or `legacy`.
    pub path: String,
    pub at_ms: u64,
}

impl Claim {
    fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.token, self.path, self.at_ms, self.sha256
        )
    }

    fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(4, ' ');
        Some(Self {
            token: parts.next()?.to_owned(),
            path: parts.next()?.to_owned(),
            at_ms: parts.next()?.parse().ok()?,
            sha256: parts.next().unwrap_or_default().to_owned(),
        })
    }
}

/// Deletes or replaces the claim only while it is still the caller's (its token first).
const RELEASE: &str = r"
if string.find(redis.call('GET', KEYS[1]) or '', ARGV[1] .. ' ', 1, true) == 1 then
  if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

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
    /// Unix milliseconds of the last write of this record.
    pub updated_at_ms: u64,
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

    /// Removes the stored percentage: gateways go back to their `temporal.rollout`.
    pub async fn clear_rollout(&self) -> anyhow::Result<()> {
        let _: i64 = self.conn.clone().del(&self.rollout_key).await?;
        Ok(())
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let pong: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await?;
        anyhow::ensure!(pong == "PONG", "unexpected answer to PING: {pong}");
        Ok(())
    }

    /// Claims the document for `claim`; `Ok(None)` when claimed, else the claim held now.
    pub async fn claim(
        &self,
        document_id: &str,
        claim: &Claim,
        ttl: Duration,
    ) -> anyhow::Result<Option<Claim>> {
        let key = claim_key(document_id);
        for _ in 0..3 {
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(claim.encode())
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async(&mut self.conn.clone())
                .await?;
            if set.is_some() {
                return Ok(None);
            }
            let held: Option<String> = self.conn.clone().get(&key).await?;
            // Released between the two calls: try again.
            if let Some(raw) = held {
                return Ok(Some(Claim::decode(&raw).ok_or_else(|| {
                    anyhow::anyhow!("unreadable claim `{raw}` at {key}")
                })?));
            }
        }
        anyhow::bail!("the claim on {document_id} changed hands three times in a row")
    }

    /// Replaces the claim `held` (a stale one) by `claim`; false when it changed meanwhile.
    pub async fn take_over(
        &self,
        document_id: &str,
        held: &Claim,
        claim: &Claim,
        ttl: Duration,
    ) -> anyhow::Result<bool> {
        let done: i64 = redis::Script::new(RELEASE)
            .key(claim_key(document_id))
            .arg(&held.token)
            .arg(claim.encode())
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(done == 1)
    }

    /// Changes the caller's own claim (its path, after a fallback).
    pub async fn update_claim(
        &self,
        document_id: &str,
        claim: &Claim,
        ttl: Duration,
    ) -> anyhow::Result<bool> {
        self.take_over(document_id, claim, claim, ttl).await
    }

    /// Ends the caller's claim; a claim someone else holds now is left alone.
    pub async fn release(&self, document_id: &str, claim: &Claim) -> anyhow::Result<()> {
        let _: i64 = redis::Script::new(RELEASE)
            .key(claim_key(document_id))
            .arg(&claim.token)
            .arg("")
            .arg(0)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The claim on a document, if any.
    pub async fn claimed(&self, document_id: &str) -> anyhow::Result<Option<Claim>> {
        let raw: Option<String> = self.conn.clone().get(claim_key(document_id)).await?;
        Ok(raw.as_deref().and_then(Claim::decode))
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
        let mut record = record.clone();
        record.updated_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let () = self
            .conn
            .clone()
            .set_ex(
                document_key(document_id),
                serde_json::to_string(&record)?,
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
    fn claims_round_trip_through_their_encoding() {
        let c = Claim {
            token: "t-1".into(),
            sha256: "ab".repeat(32),
            path: "legacy".into(),
            at_ms: 42,
        };
        assert_eq!(Claim::decode(&c.encode()), Some(c.clone()));
        let unknown = Claim {
            sha256: String::new(),
            ..c
        };
        assert_eq!(Claim::decode(&unknown.encode()), Some(unknown));
        assert_eq!(Claim::decode("garbage"), None);
    }

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
