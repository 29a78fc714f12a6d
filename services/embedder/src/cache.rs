//! The embedding cache in Redis: key `apex:embedder:<model>:<max tokens>:<sha256(text)>`,
//! value the vector as little-endian f32 followed by one truncation byte. Re-ingesting an
//! unchanged chunk costs a lookup. A cache that is down or slow is skipped (logged and
//! counted), never an error for the caller.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// Bound on one cache round trip.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A cached vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub values: Vec<f32>,
    pub truncated: bool,
}

/// The Redis embedding cache.
#[derive(Debug)]
pub struct Cache {
    client: redis::Client,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    prefix: String,
    ttl_secs: u64,
    dimension: usize,
}

fn encode(c: &Cached) -> Vec<u8> {
    let mut out = Vec::with_capacity(c.values.len() * 4 + 1);
    for v in &c.values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.push(u8::from(c.truncated));
    out
}

fn decode(bytes: &[u8], dimension: usize) -> Option<Cached> {
    if bytes.len() != dimension * 4 + 1 {
        return None;
    }
    let values = bytes[..dimension * 4]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some(Cached {
        values,
        truncated: bytes[dimension * 4] == 1,
    })
}

impl Cache {
    pub fn new(
        url: &str,
        model_id: &str,
        max_tokens: usize,
        dimension: usize,
        ttl_secs: u64,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            connection: Mutex::new(None),
            prefix: format!("apex:embedder:{model_id}:{max_tokens}:"),
            ttl_secs: ttl_secs.max(1),
            dimension,
        })
    }

    /// The key of one text.
    pub fn key(&self, text: &str) -> String {
        format!(
            "{}{}",
            self.prefix,
            hex::encode(Sha256::digest(text.as_bytes()))
        )
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let mut slot = self.connection.lock().await;
        if slot.is_none() {
            match tokio::time::timeout(TIMEOUT, self.client.get_multiplexed_async_connection())
                .await
            {
                Ok(Ok(c)) => *slot = Some(c),
                Ok(Err(e)) => tracing::warn!(error = %e, "embedding cache unreachable"),
                Err(_) => tracing::warn!("embedding cache connection timed out"),
            }
        }
        slot.clone()
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    /// Looks every key up at once; `None` where absent or when the cache is unreachable.
    pub async fn get_many(&self, keys: &[String]) -> Vec<Option<Cached>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let Some(mut conn) = self.connection().await else {
            return vec![None; keys.len()];
        };
        let got: Result<Result<Vec<Option<Vec<u8>>>, redis::RedisError>, _> =
            tokio::time::timeout(TIMEOUT, redis::cmd("MGET").arg(keys).query_async(&mut conn))
                .await;
        match got {
            Ok(Ok(values)) => values
                .into_iter()
                .map(|v| v.and_then(|b| decode(&b, self.dimension)))
                .collect(),
            other => {
                if let Ok(Err(e)) = other {
                    tracing::warn!(error = %e, "embedding cache read failed");
                }
                self.forget_connection().await;
                vec![None; keys.len()]
            }
        }
    }

    /// Stores vectors (best effort).
    pub async fn put_many(&self, entries: &[(String, Cached)]) {
        if entries.is_empty() {
            return;
        }
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(key)
                .arg(encode(value))
                .arg("EX")
                .arg(self.ttl_secs)
                .ignore();
        }
        let set: Result<Result<(), redis::RedisError>, _> =
            tokio::time::timeout(TIMEOUT, pipe.query_async(&mut conn)).await;
        if !matches!(set, Ok(Ok(()))) {
            tracing::warn!("embedding cache write failed");
            self.forget_connection().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bad_lengths_are_misses() {
        let c = Cached {
            values: vec![0.25, -1.5, 3.0],
            truncated: true,
        };
        assert_eq!(decode(&encode(&c), 3), Some(c.clone()));
        assert_eq!(decode(&encode(&c), 4), None, "another dimension is a miss");
        assert_eq!(decode(&[], 3), None);
    }
}
