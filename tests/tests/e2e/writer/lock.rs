//! The per-document lock against the local stack's Redis:
//! exclusive, extended while held, released only by its holder.

use std::time::Duration;

use apex_writer::redis_store::{RedisStore, lock_key};
use redis::AsyncCommands as _;
use uuid::Uuid;

use apex_e2e::Stack;

async fn store(stack: &Stack) -> RedisStore {
    RedisStore::connect(
        &stack.redis_url(),
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await
    .expect("redis")
}

#[tokio::test]
async fn a_held_lock_outlives_its_ttl_while_extended_and_excludes_others() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let redis = store(&stack).await;
    let id = Uuid::new_v4();
    let ttl = Duration::from_millis(900);
    let lock = redis
        .lock(id, ttl, Duration::ZERO)
        .await
        .expect("lock")
        .expect("free");
    // Three TTLs pass; the extender keeps the lock alive the whole time.
    tokio::time::sleep(ttl * 3).await;
    assert!(!lock.lost(), "the extender found the lock gone");
    let other = redis
        .lock(id, ttl, Duration::ZERO)
        .await
        .expect("lock call");
    assert!(other.is_none(), "a second holder got an extended lock");
    let mut conn = redis::Client::open(stack.redis_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let pttl: i64 = conn.pttl(lock_key(id)).await.expect("pttl");
    assert!(pttl > 0, "the lock key has a TTL ({pttl} ms)");
    redis.unlock(lock).await.expect("unlock");
    let exists: bool = conn.exists(lock_key(id)).await.expect("exists");
    assert!(!exists, "released");
    let again = redis
        .lock(id, ttl, Duration::ZERO)
        .await
        .expect("lock call");
    assert!(again.is_some(), "free again after release");
}

#[tokio::test]
async fn a_release_never_deletes_someone_elses_lock() {
    let Some(stack) = apex_e2e::stack() else {
        return;
    };
    let redis = store(&stack).await;
    let id = Uuid::new_v4();
    let ttl = Duration::from_millis(300);
    let first = redis
        .lock(id, ttl, Duration::ZERO)
        .await
        .expect("lock")
        .expect("free");
    // The first holder stalls past its TTL (its extender is stopped); another takes over.
    first.stop_extending();
    let second = redis
        .lock(id, ttl, Duration::from_secs(5))
        .await
        .expect("lock")
        .expect("taken over after expiry");
    redis.unlock(first).await.expect("stale unlock is a no-op");
    let mut conn = redis::Client::open(stack.redis_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let exists: bool = conn.exists(lock_key(id)).await.expect("exists");
    assert!(
        exists,
        "the stale holder's release left the new holder's lock alone"
    );
    redis.unlock(second).await.expect("unlock");
}
