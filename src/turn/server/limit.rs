//! Token buckets of the server core: relayed bytes per allocation (`max_bps`), and error
//! responses to unauthenticated requests per source IP (`unauth_rate`). Both take `now`;
//! neither reads a clock.

use std::net::IpAddr;
use std::time::Instant;

const NANOS: u128 = 1_000_000_000;

/// Bytes per second with a burst of one second's worth; rate 0 lets everything through.
#[derive(Clone, Copy, Debug)]
pub(super) struct ByteBucket {
    rate: u64,
    /// Tokens in bytes × 10⁹ (a nanosecond adds `rate` of them), so no fraction is lost.
    tokens: u128,
    last: Instant,
}

impl ByteBucket {
    pub(super) fn new(rate: u64, now: Instant) -> Self {
        ByteBucket {
            rate,
            tokens: u128::from(rate) * NANOS,
            last: now,
        }
    }

    /// Takes `len` bytes if the bucket holds them; false (and nothing taken) if not.
    #[inline]
    pub(super) fn take(&mut self, now: Instant, len: usize) -> bool {
        if self.rate == 0 {
            return true;
        }
        let rate = u128::from(self.rate);
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.min(NANOS) * rate).min(rate * NANOS);
        let cost = len as u128 * NANOS;
        if self.tokens < cost {
            return false;
        }
        self.tokens -= cost;
        true
    }
}

/// Buckets in the table of [`UnauthLimiter`]: 64 KiB, whatever the number of sources.
pub(super) const UNAUTH_BUCKETS: usize = 4096;
/// Seconds' worth of responses a quiet source may get at once.
pub(super) const UNAUTH_BURST_SECONDS: u64 = 2;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Milliseconds since the limiter's epoch at the last refill, plus one.
    last_ms: u64,
    /// Tokens × 1000 (a millisecond adds `rate` of them).
    milli_tokens: u64,
}

/// RFC 8656 §21.3 (amplification): error responses to requests that did not
/// authenticate, per source IP, `rate` a second with a burst of
/// [`UNAUTH_BURST_SECONDS`]. Sources hash into a fixed table, so a flood from spoofed
/// addresses costs no memory; sources sharing a bucket share its rate. The hash is keyed
/// per server for spread, not for secrecy: an attacker who wants to drain a victim's
/// bucket can spoof the victim's address outright.
pub(super) struct UnauthLimiter {
    rate: u64,
    key: u64,
    epoch: Instant,
    /// Made at the first error response, so that a server with the limit off, or one
    /// nobody probes, holds nothing.
    slots: Vec<Slot>,
}

impl UnauthLimiter {
    pub(super) fn new(rate: u32, key: u64, epoch: Instant) -> Self {
        UnauthLimiter {
            rate: u64::from(rate),
            key,
            epoch,
            slots: Vec::new(),
        }
    }

    fn index(&self, ip: IpAddr) -> usize {
        let v6 = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        let bits = u128::from(v6);
        let mut h = self.key;
        for half in [(bits >> 64) as u64, bits as u64] {
            h = mix(h ^ half);
        }
        (h as usize) % UNAUTH_BUCKETS
    }

    /// Changes the rate; the buckets keep what they hold, up to the new burst.
    pub(super) fn set_rate(&mut self, rate: u32) {
        self.rate = u64::from(rate);
        let capacity = self.rate * UNAUTH_BURST_SECONDS * 1000;
        for slot in &mut self.slots {
            slot.milli_tokens = slot.milli_tokens.min(capacity);
        }
    }

    /// Whether `source` may get one more error response now.
    pub(super) fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        if self.rate == 0 {
            return true;
        }
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); UNAUTH_BUCKETS];
        }
        let ms = now
            .saturating_duration_since(self.epoch)
            .as_millis()
            .min(u128::from(u64::MAX)) as u64;
        let capacity = self.rate * UNAUTH_BURST_SECONDS * 1000;
        let i = self.index(source);
        let slot = &mut self.slots[i];
        // `last_ms` is stored plus one: 0 marks a bucket never used, which counts as full.
        let refill = match slot.last_ms {
            0 => capacity,
            last => {
                (ms + 1)
                    .saturating_sub(last)
                    .min(UNAUTH_BURST_SECONDS * 1000)
                    * self.rate
            }
        };
        slot.milli_tokens = (slot.milli_tokens + refill).min(capacity);
        slot.last_ms = ms + 1;
        if slot.milli_tokens < 1000 {
            return false;
        }
        slot.milli_tokens -= 1000;
        true
    }

    /// Buckets held (0 until the first error response).
    #[cfg(test)]
    pub(super) fn slots_len(&self) -> usize {
        self.slots.len()
    }

    /// How long an empty bucket takes to give one response.
    #[cfg(test)]
    pub(super) fn period(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1000 / self.rate.max(1))
    }
}

/// The splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn byte_bucket_holds_a_second_and_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = ByteBucket::new(1000, t0);
        assert!(b.take(t0, 600));
        assert!(!b.take(t0, 600), "only 400 left");
        assert!(b.take(t0, 400));
        assert!(!b.take(t0, 1));
        assert!(b.take(t0 + Duration::from_millis(100), 100));
        assert!(!b.take(t0 + Duration::from_millis(100), 1));
        // Idle for long: the burst stays one second's worth.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later, 1000));
        assert!(!b.take(later, 1));
        // Many small steps lose nothing to rounding.
        let mut b = ByteBucket::new(3, t0);
        assert!(b.take(t0, 3));
        let mut t = t0;
        for _ in 0..1000 {
            t += Duration::from_millis(1);
            b.take(t, 0);
        }
        assert!(b.take(t, 3));
        let mut off = ByteBucket::new(0, t0);
        assert!(off.take(t0, usize::MAX));
    }

    #[test]
    fn unauth_limiter_is_per_source_and_refills() {
        let t0 = Instant::now();
        let mut l = UnauthLimiter::new(10, 7, t0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert_ne!(l.index(a), l.index(b));
        let burst = (0..100).take_while(|_| l.allow(t0, a)).count();
        assert_eq!(burst as u64, 10 * UNAUTH_BURST_SECONDS);
        assert!(l.allow(t0, b), "another source has its own bucket");
        assert!(!l.allow(t0 + l.period() / 2, a));
        assert!(l.allow(t0 + l.period(), a));
        let mut off = UnauthLimiter::new(0, 7, t0);
        assert!((0..10_000).all(|_| off.allow(t0, a)));
        assert!(off.slots.is_empty(), "no table when off");
    }
}
