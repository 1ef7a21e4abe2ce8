//! Consent freshness (RFC 7675) and keepalives (RFC 8445 §11) of a selected pair.

use std::time::{Duration, Instant};

use rand::Rng;

/// RFC 7675 §5.1: the consent state of one selected pair.
///
/// A consent check (an ordinary ICE check without USE-CANDIDATE) goes out every
/// `interval` randomised by 0.8..1.2; each authenticated, symmetric response renews
/// consent; consent is lost `timeout` (30 s) after the last renewal. A check that times
/// out marks the pair disconnected until a response comes back. Consent checks count
/// as keepalive traffic (RFC 8445 §11).
#[derive(Clone, Debug)]
pub(crate) struct Consent {
    interval: Option<Duration>,
    timeout: Duration,
    last_fresh: Instant,
    next_check: Option<Instant>,
    disconnected: bool,
}

impl Consent {
    /// Consent granted at `now` (the check that selected the pair just succeeded).
    pub(crate) fn new<R: Rng + ?Sized>(
        now: Instant,
        interval: Option<Duration>,
        timeout: Duration,
        rng: &mut R,
    ) -> Self {
        let mut c = Consent {
            interval,
            timeout,
            last_fresh: now,
            next_check: None,
            disconnected: false,
        };
        c.schedule(now, rng);
        c
    }

    fn schedule<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) {
        // RFC 7675 §5.1: "randomized by a factor of 0.8 to 1.2".
        self.next_check = self
            .interval
            .map(|i| now + i.mul_f64(rng.gen_range(0.8..=1.2)));
    }

    /// When the next consent check is due, if consent checks are on.
    pub(crate) fn next_check(&self) -> Option<Instant> {
        self.next_check
    }

    /// Whether a consent check is due at `now`.
    pub(crate) fn check_due(&self, now: Instant) -> bool {
        self.next_check.is_some_and(|t| now >= t)
    }

    /// A consent check was sent at `now`; schedules the next.
    pub(crate) fn sent<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) {
        self.schedule(now, rng);
    }

    /// An authenticated response arrived; returns true if the pair was disconnected.
    pub(crate) fn refreshed(&mut self, now: Instant) -> bool {
        self.last_fresh = self.last_fresh.max(now);
        std::mem::replace(&mut self.disconnected, false)
    }

    /// A consent check got no response; returns true if this newly disconnects.
    pub(crate) fn check_timed_out(&mut self) -> bool {
        !std::mem::replace(&mut self.disconnected, true)
    }

    /// When consent expires without a renewal, if consent checks are on.
    pub(crate) fn expires_at(&self) -> Option<Instant> {
        self.interval.map(|_| self.last_fresh + self.timeout)
    }

    /// Whether consent has expired at `now`.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|t| now >= t)
    }
}
