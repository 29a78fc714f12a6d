//! A circuit breaker per store: after `threshold` consecutive failures it opens and calls
//! fail fast; once `open_for` has passed, one call is let through as a probe (half-open);
//! its success closes the breaker, its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The value of the `apex_writer_breaker_state` gauge.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

/// Why a call was refused: the breaker is open and reopens for probing in `retry_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub failures: u32,
    pub retry_in: Duration,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            inner: Mutex::new(Inner {
                consecutive_failures: 0,
                opened_at: None,
                probing: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state at `now`.
    pub fn state_at(&self, now: Instant) -> BreakerState {
        let inner = self.lock();
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(at) if inner.probing || now.duration_since(at) >= self.open_for => {
                BreakerState::HalfOpen
            }
            Some(_) => BreakerState::Open,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    /// Asks to make a call at `now`. Closed: yes. Open: no, until `open_for` has passed;
    /// then exactly one caller gets through as the probe until it reports.
    pub fn try_acquire_at(&self, now: Instant) -> Result<(), Refused> {
        let mut inner = self.lock();
        let Some(at) = inner.opened_at else {
            return Ok(());
        };
        let waited = now.duration_since(at);
        if waited >= self.open_for && !inner.probing {
            inner.probing = true;
            return Ok(());
        }
        Err(Refused {
            failures: inner.consecutive_failures,
            retry_in: self.open_for.saturating_sub(waited),
        })
    }

    pub fn try_acquire(&self) -> Result<(), Refused> {
        self.try_acquire_at(Instant::now())
    }

    /// Whether a call at `now` would be let through, without taking the probe slot.
    pub fn would_allow_at(&self, now: Instant) -> Result<(), Refused> {
        let inner = self.lock();
        match inner.opened_at {
            None => Ok(()),
            Some(at) if now.duration_since(at) >= self.open_for && !inner.probing => Ok(()),
            Some(at) => Err(Refused {
                failures: inner.consecutive_failures,
                retry_in: self.open_for.saturating_sub(now.duration_since(at)),
            }),
        }
    }

    pub fn on_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.opened_at = None;
        inner.probing = false;
    }

    pub fn on_failure_at(&self, now: Instant) {
        let mut inner = self.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        if inner.probing || inner.consecutive_failures >= self.threshold {
            inner.opened_at = Some(now);
        }
        inner.probing = false;
    }

    pub fn on_failure(&self) {
        self.on_failure_at(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_fails_fast() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            b.try_acquire_at(t0).expect("closed");
            b.on_failure_at(t0);
        }
        assert_eq!(b.state_at(t0), BreakerState::Closed);
        b.on_failure_at(t0);
        assert_eq!(b.state_at(t0), BreakerState::Open);
        let refused = b
            .try_acquire_at(t0 + Duration::from_secs(4))
            .expect_err("refused");
        assert_eq!(refused.failures, 3);
        assert_eq!(refused.retry_in, Duration::from_secs(6));
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        b.on_failure_at(t0);
        b.on_success();
        b.on_failure_at(t0);
        assert_eq!(b.state_at(t0), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_result_decides() {
        let b = Breaker::new(1, Duration::from_secs(5));
        let t0 = Instant::now();
        b.on_failure_at(t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(b.state_at(later), BreakerState::HalfOpen);
        b.would_allow_at(later).expect("a probe would be allowed");
        b.try_acquire_at(later).expect("the probe");
        assert!(b.try_acquire_at(later).is_err(), "only one probe at a time");
        // The probe fails: open again for a full period.
        b.on_failure_at(later);
        assert!(b.try_acquire_at(later + Duration::from_secs(1)).is_err());
        let again = later + Duration::from_secs(5);
        b.try_acquire_at(again).expect("next probe");
        b.on_success();
        assert_eq!(b.state_at(again), BreakerState::Closed);
        b.try_acquire_at(again).expect("closed");
    }
}
