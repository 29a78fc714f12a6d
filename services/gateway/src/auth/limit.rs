//! The per-key rate limit: a token bucket per API key in Redis, so every gateway replica
//! draws on the same bucket. A key holds up to `burst` tokens, gains `rate` a second, and
//! spends one per request; an empty bucket answers how long until the next token. Redis's
//! own clock is used, so replicas with drifting clocks agree.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Refill, then take a token if there is one. Returns {1, 0} when taken, {0, wait_ms}
/// otherwise. Tokens are kept as a decimal string (a Lua number would be truncated).
const TAKE: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local taken = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {taken, wait}
";

/// How fast each key may call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_sec: f64,
    pub burst: u32,
}

impl Limit {
    /// The limit the settings ask for; `None` when `per_sec` is 0.
    pub fn of(per_sec: f64, burst: u32) -> Option<Self> {
        (per_sec > 0.0).then(|| Self {
            per_sec,
            burst: if burst == 0 {
                (per_sec.ceil() as u32).max(1)
            } else {
                burst
            },
        })
    }

    /// Takes a token from `key_id`'s bucket: `None` when the request may go, else how long
    /// until it could.
    pub async fn take(
        &self,
        mut redis: ConnectionManager,
        prefix: &str,
        key_id: &str,
    ) -> redis::RedisResult<Option<Duration>> {
        let (taken, wait_ms): (i64, i64) = redis::cmd("EVAL")
            .arg(TAKE)
            .arg(1)
            .arg(format!("{prefix}:ratelimit:{key_id}"))
            .arg(self.per_sec)
            .arg(self.burst)
            .query_async(&mut redis)
            .await?;
        Ok((taken != 1).then(|| Duration::from_millis(wait_ms.max(1) as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_is_no_limit_and_the_burst_defaults_to_a_seconds_worth() {
        assert_eq!(Limit::of(0.0, 5), None);
        assert_eq!(
            Limit::of(2.5, 0),
            Some(Limit {
                per_sec: 2.5,
                burst: 3
            })
        );
        assert_eq!(Limit::of(0.2, 0).map(|l| l.burst), Some(1));
        assert_eq!(Limit::of(10.0, 40).map(|l| l.burst), Some(40));
    }
}
