//! Redis: the per-document lock, idempotency records and the document state the readers
//! use (`apex:doc:<id>`). Every key has a TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apex_common::ServiceError;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

fn unavailable(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable(format!("redis: {what}: {e}"))
}

pub fn lock_key(document_id: Uuid) -> String {
    format!("apex:lock:doc:{document_id}")
}

pub fn idempotency_key(key: &str) -> String {
    format!("apex:idem:{key}")
}

pub fn state_key(document_id: Uuid) -> String {
    format!("apex:doc:{document_id}")
}

/// Releases the lock only if it still holds our token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Extends the lock only if it still holds our token.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// The document state kept in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedisView {
    pub version: u64,
    pub chunks: u32,
    pub entities: u32,
    pub vectors: u32,
}

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    release: Arc<redis::Script>,
    extend: Arc<redis::Script>,
    state_ttl: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// A held lock; extended in the background until released or dropped.
#[derive(Debug)]
pub struct Lock {
    key: String,
    token: String,
    extender: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl Lock {
    /// Whether an extension found the lock gone (expired and maybe taken by another).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stops extending (the lock then expires after its TTL unless released).
    pub fn stop_extending(&self) {
        self.extender.abort();
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.extender.abort();
    }
}

impl RedisStore {
    pub async fn connect(
        url: &str,
        timeout: Duration,
        state_ttl: Duration,
    ) -> Result<Self, ServiceError> {
        let client = redis::Client::open(url)
            .map_err(|e| ServiceError::invalid_field("redis.url", format!("{url}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| unavailable("connect", e))?;
        Ok(Self {
            conn,
            release: Arc::new(redis::Script::new(RELEASE)),
            extend: Arc::new(redis::Script::new(EXTEND)),
            state_ttl,
        })
    }

    /// Takes the document's lock, waiting up to `wait` for another holder (polling with
    /// backoff); `None` when it stayed taken. `ttl` bounds how long a crashed holder
    /// blocks others.
    pub async fn lock(
        &self,
        document_id: Uuid,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<Lock>, ServiceError> {
        let key = lock_key(document_id);
        let token = Uuid::new_v4().to_string();
        let deadline = tokio::time::Instant::now() + wait;
        let mut attempt = 0u32;
        loop {
            let mut conn = self.conn.clone();
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable("lock", e))?;
            if taken.is_some() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            let pause = apex_common::retry::backoff(
                Duration::from_millis(5),
                Duration::from_millis(100),
                attempt,
                (Uuid::new_v4().as_u128() % 1_000) as f32 / 1_000.0,
            );
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(pause.min(deadline - tokio::time::Instant::now())).await;
        }
        let lost = Arc::new(AtomicBool::new(false));
        let extender = {
            let (conn, script) = (self.conn.clone(), Arc::clone(&self.extend));
            let (key, token, lost) = (key.clone(), token.clone(), Arc::clone(&lost));
            tokio::spawn(async move {
                let mut every = tokio::time::interval(ttl / 3);
                every.tick().await;
                loop {
                    every.tick().await;
                    let mut conn = conn.clone();
                    let kept: Result<i64, _> = script
                        .key(&key)
                        .arg(&token)
                        .arg(ttl.as_millis() as u64)
                        .invoke_async(&mut conn)
                        .await;
                    match kept {
                        Ok(1) => {}
                        Ok(_) => {
                            tracing::warn!(%key, "document lock expired while the write ran");
                            lost.store(true, Ordering::Relaxed);
                            return;
                        }
                        Err(e) => tracing::warn!(%key, error = %e, "extending the document lock"),
                    }
                }
            })
        };
        Ok(Some(Lock {
            key,
            token,
            extender,
            lost,
        }))
    }

    /// Releases `lock` if we still hold it.
    pub async fn unlock(&self, lock: Lock) -> Result<(), ServiceError> {
        lock.extender.abort();
        let mut conn = self.conn.clone();
        let _: i64 = self
            .release
            .key(&lock.key)
            .arg(&lock.token)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable("unlock", e))?;
        Ok(())
    }

    /// The stored answer for an idempotency key.
    pub async fn idempotency_record(&self, key: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        let mut conn = self.conn.clone();
        conn.get(idempotency_key(key))
            .await
            .map_err(|e| unavailable("read idempotency record", e))
    }

    pub async fn put_idempotency_record(
        &self,
        key: &str,
        record: &[u8],
        ttl: Duration,
    ) -> Result<(), ServiceError> {
        let mut conn = self.conn.clone();
        conn.pset_ex::<_, _, ()>(idempotency_key(key), record, ttl.as_millis() as u64)
            .await
            .map_err(|e| unavailable("write idempotency record", e))
    }

    /// Sets the document's state (replacing any other version's).
    pub async fn put_state(
        &self,
        document_id: Uuid,
        source: &str,
        view: &RedisView,
        collection: Option<&str>,
    ) -> Result<(), ServiceError> {
        let key = state_key(document_id);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .del(&key)
            .hset_multiple(
                &key,
                &[
                    ("version", view.version.to_string()),
                    ("source", source.to_owned()),
                    ("chunks", view.chunks.to_string()),
                    ("entities", view.entities.to_string()),
                    ("vectors", view.vectors.to_string()),
                    ("collection", collection.unwrap_or_default().to_owned()),
                ],
            )
            .pexpire(&key, self.state_ttl.as_millis() as i64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| unavailable("write document state", e))
    }

    /// Deletes the embedder's cached vectors of `texts` (keys
    /// `apex:embedder:<model>:<max tokens>:<sha256 of the text>`, one per token limit).
    pub async fn delete_cached_embeddings(
        &self,
        model_id: &str,
        token_limits: &[u32],
        texts: &[String],
    ) -> Result<(), ServiceError> {
        use sha2::{Digest as _, Sha256};
        let keys: Vec<String> = texts
            .iter()
            .flat_map(|t| {
                let sha = hex::encode(Sha256::digest(t.as_bytes()));
                token_limits
                    .iter()
                    .map(move |n| format!("apex:embedder:{model_id}:{n}:{sha}"))
            })
            .collect();
        for batch in keys.chunks(500) {
            let mut conn = self.conn.clone();
            conn.del::<_, ()>(batch)
                .await
                .map_err(|e| unavailable("delete cached embeddings", e))?;
        }
        Ok(())
    }

    pub async fn delete_state(&self, document_id: Uuid) -> Result<(), ServiceError> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(state_key(document_id))
            .await
            .map_err(|e| unavailable("delete document state", e))
    }

    pub async fn state(&self, document_id: Uuid) -> Result<Option<RedisView>, ServiceError> {
        let mut conn = self.conn.clone();
        let map: std::collections::HashMap<String, String> = conn
            .hgetall(state_key(document_id))
            .await
            .map_err(|e| unavailable("read document state", e))?;
        if map.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| map.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(Some(RedisView {
            version: num("version"),
            chunks: num("chunks") as u32,
            entities: num("entities") as u32,
            vectors: num("vectors") as u32,
        }))
    }
}
