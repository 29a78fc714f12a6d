//! What the polled fakes can be told to do wrong: answer the next requests with 429, or
//! hold requests after some until released (to kill a worker while its page is in flight).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Faults shared by a fake's handlers.
#[derive(Debug)]
pub struct Faults {
    rate_limited: AtomicUsize,
    /// Requests answered 429 so far.
    throttled: AtomicUsize,
    /// Requests served (answered with data).
    served: AtomicUsize,
    /// Requests after this many served wait until [`Faults::release`].
    hold_after: AtomicUsize,
    released: watch::Sender<u64>,
    arrived: Notify,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rate_limited: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            hold_after: AtomicUsize::new(usize::MAX),
            released: watch::channel(0).0,
            arrived: Notify::new(),
        }
    }
}

/// What a handler does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Serve,
    RateLimit,
}

impl Faults {
    /// The next `n` requests are answered 429.
    pub fn rate_limit_next(&self, n: usize) {
        self.rate_limited.store(n, Ordering::SeqCst);
    }

    pub fn throttled(&self) -> usize {
        self.throttled.load(Ordering::SeqCst)
    }

    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Requests after the first `n` served wait until [`Faults::release`].
    pub fn hold_after(&self, n: usize) {
        self.hold_after.store(n, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.hold_after.store(usize::MAX, Ordering::SeqCst);
        self.released.send_modify(|n| *n += 1);
    }

    /// Returns once a request is held (or at once if one was held before the call).
    pub async fn arrival(&self) {
        self.arrived.notified().await;
    }

    /// Called first by every handler: waits while held, then says how to answer.
    pub async fn admit(&self) -> Admit {
        let mut released = self.released.subscribe();
        if self.served() >= self.hold_after.load(Ordering::SeqCst) {
            released.mark_unchanged();
            self.arrived.notify_one();
            let _ = released.changed().await;
        }
        let throttle = self
            .rate_limited
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if throttle {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            Admit::RateLimit
        } else {
            self.served.fetch_add(1, Ordering::SeqCst);
            Admit::Serve
        }
    }
}
