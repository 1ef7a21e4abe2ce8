//! A fixed-size log-linear latency histogram: recording is an index computation and an
//! increment, with no allocation; values keep about 3% precision from 64 ns to 18 minutes.

/// Values below this are counted exactly.
const LINEAR: u64 = 64;
/// Sub-buckets per power of two above [`LINEAR`] (5 bits: about 3% wide).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered above [`LINEAR`] (2^6 to 2^40 ns).
const OCTAVES: usize = 35;
const BUCKETS: usize = LINEAR as usize + OCTAVES * SUB;

/// Round-trip times in nanoseconds.
pub(crate) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    #[inline]
    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let octave = 63 - v.leading_zeros(); // >= 6
        let sub = (v >> (octave - SUB_BITS)) as usize & (SUB - 1);
        let i = LINEAR as usize + (octave as usize - 6) * SUB + sub;
        i.min(BUCKETS - 1)
    }

    /// The smallest value of bucket `i`.
    fn low(i: usize) -> u64 {
        if i < LINEAR as usize {
            return i as u64;
        }
        let octave = (i - LINEAR as usize) / SUB + 6;
        let sub = ((i - LINEAR as usize) % SUB) as u64;
        (1u64 << octave) + (sub << (octave as u32 - SUB_BITS))
    }

    #[inline]
    pub(crate) fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the middle of the bucket holding it, or `None`
    /// when nothing was recorded.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = (Self::low(i), Self::low(i + 1));
                return Some(((lo + hi) / 2).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_contiguous() {
        for i in 0..BUCKETS - 1 {
            assert!(Histogram::low(i) < Histogram::low(i + 1), "bucket {i}");
            assert_eq!(Histogram::index(Histogram::low(i)), i);
            assert_eq!(Histogram::index(Histogram::low(i + 1) - 1), i);
        }
    }

    #[test]
    fn quantiles_are_within_three_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.001, 1_000.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - want).abs() / want < 0.03, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(Histogram::new().quantile(0.5), None);
        let mut one = Histogram::new();
        one.record(42);
        assert_eq!(one.quantile(0.99), Some(42));
        one.record(u64::MAX);
        assert!(one.quantile(1.0).unwrap() > 1 << 40);
    }
}
