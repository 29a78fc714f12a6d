//! The rollout percentage every gateway replica reads from Redis before routing a document:
//! that share of documents goes through Temporal, the rest down the legacy path. The gateway
//! reads it, `apex rollout set` and the load test write it.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The default key of the rollout percentage.
pub const ROLLOUT_KEY: &str = "apex:rollout:temporal_percent";

/// Parses a stored percentage; anything but an integer in 0..=100 is refused.
pub fn parse_percent(raw: &str) -> Result<u8, String> {
    raw.trim()
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("`{}` is not a percentage between 0 and 100", raw.trim()))
}

/// The document's bucket, 0–99: the first 8 bytes of SHA-256(document id), big-endian,
/// modulo 100. A document goes through Temporal when its bucket is below the percentage.
/// Independent of the platform, the process and the Rust version.
pub fn bucket(document_id: &str) -> u8 {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(document_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// The stored percentage under one key.
#[derive(Clone)]
pub struct Rollout {
    conn: ConnectionManager,
    key: String,
}

impl std::fmt::Debug for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollout")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Rollout {
    /// Connects (lazily reconnecting afterwards); fails when Redis is not there now.
    pub async fn connect(url: &str, key: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        Ok(Self::over(
            ConnectionManager::new_with_config(client, config).await?,
            key,
        ))
    }

    /// Over a connection the caller already has.
    pub fn over(conn: ConnectionManager, key: &str) -> Self {
        Self {
            conn,
            key: key.to_owned(),
        }
    }

    /// The stored percentage; `None` when none was set.
    pub async fn get(&self) -> anyhow::Result<Option<u8>> {
        let raw: Option<String> = self.conn.clone().get(&self.key).await?;
        raw.map(|r| parse_percent(&r).map_err(anyhow::Error::msg))
            .transpose()
    }

    /// Stores the percentage for every replica.
    pub async fn set(&self, percent: u8) -> anyhow::Result<()> {
        if percent > 100 {
            anyhow::bail!("the rollout percentage must be between 0 and 100, not {percent}");
        }
        let () = self
            .conn
            .clone()
            .set(&self.key, percent.to_string())
            .await?;
        Ok(())
    }

    /// Removes the stored percentage: gateways go back to their `temporal.rollout`.
    pub async fn clear(&self) -> anyhow::Result<()> {
        let _: i64 = self.conn.clone().del(&self.key).await?;
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
