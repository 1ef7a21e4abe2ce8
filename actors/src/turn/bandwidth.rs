//! `total-bps`: relayed payload bytes a second for the whole server, each way. Each
//! Arbiter holds an even share (total / threads) in a token bucket of its own, so the
//! data path takes no lock; an Arbiter whose clients are quiet does not lend its share.
//! The per-allocation limit (`max-bps`) is the core's, which sees each allocation.

use std::time::Instant;

const NANOS: u128 = 1_000_000_000;

/// Bytes a second with a burst of one second's worth; rate 0 lets everything through.
#[derive(Debug)]
pub(crate) struct BandwidthCap {
    rate: u64,
    /// Tokens in bytes × 10⁹ (a nanosecond adds `rate` of them).
    tokens: u128,
    last: Option<Instant>,
}

impl BandwidthCap {
    pub(crate) fn new(rate: u64) -> Self {
        BandwidthCap {
            rate,
            tokens: u128::from(rate) * NANOS,
            last: None,
        }
    }

    /// The rate in bytes a second; 0 is no limit.
    pub(crate) fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes `len` bytes if the share holds them; false (nothing taken) if not.
    #[inline]
    pub(crate) fn take(&mut self, now: Instant, len: usize) -> bool {
        if self.rate == 0 {
            return true;
        }
        let rate = u128::from(self.rate);
        let last = *self.last.get_or_insert(now);
        let elapsed = now.saturating_duration_since(last).as_nanos().min(NANOS);
        self.last = Some(last.max(now));
        self.tokens = (self.tokens + elapsed * rate).min(rate * NANOS);
        let cost = len as u128 * NANOS;
        if self.tokens < cost {
            return false;
        }
        self.tokens -= cost;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_share_holds_a_second_and_refills() {
        let t0 = Instant::now();
        let mut cap = BandwidthCap::new(10_000);
        assert!(cap.take(t0, 6_000));
        assert!(!cap.take(t0, 6_000));
        assert!(cap.take(t0, 4_000));
        assert!(cap.take(t0 + Duration::from_millis(500), 5_000));
        assert!(!cap.take(t0 + Duration::from_millis(500), 1));
        let mut off = BandwidthCap::new(0);
        assert!(off.take(t0, usize::MAX));
    }
}
