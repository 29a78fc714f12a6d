//! State every gateway replica sees, in Redis: the rollout percentage (written by
//! `apex rollout set`) and, per document, which path the gateway sent it down and how a
//! legacy ingestion is doing.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use apex_ingestion::live::{LiveStatus, live_status_key};
use apex_ingestion::status::IngestStatus;

pub use apex_ingestion::rollout::ROLLOUT_KEY;
use apex_ingestion::rollout::Rollout;

use crate::rollout::Path;

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
    /// SHA-256 of the bytes being ingested (empty when not known yet: a URL or key, and
    /// for a deletion).
    pub sha256: String,
    pub holder: Holder,
    pub at_ms: u64,
}

/// What holds a document's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// An ingestion on this path.
    Ingestion(Path),
    /// A deletion.
    Deletion,
}

impl Holder {
    /// The name stored in the claim (and shown in a 409's details).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingestion(path) => path.as_str(),
            Self::Deletion => "delete",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "temporal" => Some(Self::Ingestion(Path::Temporal)),
            "legacy" => Some(Self::Ingestion(Path::Legacy)),
            "delete" => Some(Self::Deletion),
            _ => None,
        }
    }
}

impl Claim {
    fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.token,
            self.holder.as_str(),
            self.at_ms,
            self.sha256
        )
    }

    fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(4, ' ');
        let token = parts.next()?.to_owned();
        let holder = Holder::parse(parts.next()?)?;
        let at_ms = parts.next()?.parse().ok()?;
        let sha256 = parts.next().unwrap_or_default();
        Some(Self {
            token,
            holder,
            at_ms,
            // Gateways before the holder enum wrote a deletion's hash as "delete".
            sha256: if holder == Holder::Deletion {
                String::new()
            } else {
                sha256.to_owned()
            },
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
    /// The run the start began (or attached to), when the start answered: the run whose
    /// live status may answer a status read ([`apex_ingestion::live`]).
    pub run_id: Option<String>,
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
    rollout: Rollout,
    ttl: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("rollout", &self.rollout)
            .finish_non_exhaustive()
    }
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
            rollout: Rollout::over(conn.clone(), rollout_key),
            conn,
            ttl,
        })
    }

    /// The stored rollout percentage; `None` when none was set.
    pub async fn rollout(&self) -> anyhow::Result<Option<u8>> {
        self.rollout.get().await
    }

    /// Stores the rollout percentage for every replica.
    pub async fn set_rollout(&self, percent: u8) -> anyhow::Result<()> {
        self.rollout.set(percent).await
    }

    /// Removes the stored percentage: gateways go back to their `temporal.rollout`.
    pub async fn clear_rollout(&self) -> anyhow::Result<()> {
        self.rollout.clear().await
    }

    /// The connection (for the per-key rate limit).
    pub(crate) fn redis(&self) -> ConnectionManager {
        self.conn.clone()
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

    /// The first live status of a run the gateway started (`pending`), unless the worker
    /// (or an earlier run) wrote one already: the status reads before the workflow's first
    /// task then need not ask Temporal.
    pub async fn put_first_live(&self, document_id: &str, live: &LiveStatus) -> anyhow::Result<()> {
        let _: Option<String> = redis::cmd("SET")
            .arg(live_status_key(document_id))
            .arg(serde_json::to_string(live)?)
            .arg("PX")
            .arg(apex_ingestion::live::LIVE_STATUS_TTL.as_millis() as u64)
            .arg("NX")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The document's record and the live status the worker wrote for it, in one round
    /// trip. A live status that does not decode is treated as absent (Temporal answers).
    pub async fn record_and_live(
        &self,
        document_id: &str,
    ) -> anyhow::Result<(Option<DocumentRecord>, Option<LiveStatus>)> {
        let (record, live): (Option<String>, Option<String>) = redis::pipe()
            .get(document_key(document_id))
            .get(live_status_key(document_id))
            .query_async(&mut self.conn.clone())
            .await?;
        let record = record.map(|r| serde_json::from_str(&r)).transpose()?;
        let live = live.and_then(|l| serde_json::from_str(&l).ok());
        Ok((record, live))
    }

    /// Sets `key` unless it is set: `true` the first time within `ttl` (webhook replay
    /// protection: an event id delivered before is not ingested again).
    pub async fn remember_once(&self, key: &str, ttl: Duration) -> anyhow::Result<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(crate::state::now_ms())
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set.is_some())
    }

    /// Removes `key` (an event remembered, then not ingested).
    pub async fn forget(&self, key: &str) -> anyhow::Result<()> {
        let _: i64 = self.conn.clone().del(key).await?;
        Ok(())
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
            holder: Holder::Ingestion(Path::Legacy),
            at_ms: 42,
        };
        assert_eq!(Claim::decode(&c.encode()), Some(c.clone()));
        let unknown = Claim {
            sha256: String::new(),
            ..c
        };
        assert_eq!(Claim::decode(&unknown.encode()), Some(unknown));
        assert_eq!(Claim::decode("garbage"), None);
        let deletion = Claim {
            token: "t-2".into(),
            sha256: String::new(),
            holder: Holder::Deletion,
            at_ms: 7,
        };
        assert_eq!(Claim::decode(&deletion.encode()), Some(deletion.clone()));
        assert_eq!(Claim::decode("t-2 delete 7 delete"), Some(deletion));
        assert_eq!(
            Claim::decode("t-3 archived 7 ab"),
            None,
            "an unknown holder"
        );
    }
}
