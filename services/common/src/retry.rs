//! Retry timing shared by the HTTP clients of third-party APIs: `Retry-After` (seconds or an
//! HTTP date) and exponential backoff with jitter.

use std::time::{Duration, SystemTime};

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before retry `attempt` (0-based): `initial · 2^attempt`, capped at `max`, then
/// scaled into [½, 1] by `jitter` (a number in [0, 1)) so that concurrent callers spread out.
pub fn backoff(initial: Duration, max: Duration, attempt: u32, jitter: f32) -> Duration {
    let base = initial.saturating_mul(1u32 << attempt.min(20)).min(max);
    base.mul_f64(0.5 + 0.5 * f64::from(jitter.clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_as_seconds_or_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_784_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(
            backoff(i, m, 0, 0.999_999),
            Duration::from_millis(100).mul_f64(0.5 + 0.5 * 0.999_999_f32 as f64)
        );
        assert_eq!(backoff(i, m, 2, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(i, m, 10, 0.0), Duration::from_millis(500));
        assert!(backoff(i, m, 3, 0.5) <= Duration::from_millis(800));
    }
}
