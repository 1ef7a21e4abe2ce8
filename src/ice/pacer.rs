//! Ta pacing (RFC 8445 §6.1.4.2, §14.2): one new check per Ta across all checklists;
//! a nomination check waits only for the 5 ms floor.

use std::time::{Duration, Instant};

use super::config::MIN_TA;

/// RFC 8445 §14.2: hands out one check slot per Ta, shared by every checklist of an
/// agent, and picks the checklists round-robin (RFC 8445 §6.1.4.2: "a single timer ...
/// the checklists are traversed in order").
///
/// Ordinary and triggered checks take a slot Ta after the previous one. A nomination
/// check (RFC 8445 §8.1.1: the repeat, with USE-CANDIDATE, of a check that already
/// succeeded) takes a slot as soon as the 5 ms floor of RFC 8445 §14.2 allows
/// ([`Pacer::take_nomination_slot`]): it adds one transaction per component on a path
/// just shown to work, and waiting a whole Ta for it would double the time to connect.
/// Retransmissions (which follow their RTO) and consent checks (RFC 7675) take no slot.
///
/// An [`Agent`](super::Agent) owns one and offers each slot to its checklists;
/// [`Checklist::wants_check`](super::Checklist::wants_check) says whether a checklist
/// has a check to start:
///
/// ```
/// use std::time::{Duration, Instant};
/// use floe::ice::Pacer;
/// let mut pacer = Pacer::new(Duration::from_millis(1)); // raised to the 5 ms floor
/// let t0 = Instant::now();
/// let wants = [false, true, true];
/// assert_eq!(pacer.take_slot(t0, wants.len(), |i| wants[i]), Some(1));
/// assert_eq!(pacer.take_slot(t0, wants.len(), |i| wants[i]), None); // too early
/// let t1 = pacer.next_slot().unwrap();
/// assert_eq!(t1 - t0, Duration::from_millis(5));
/// assert_eq!(pacer.take_slot(t1, wants.len(), |i| wants[i]), Some(2));
///
/// let mut pacer = Pacer::new(Duration::from_millis(50));
/// pacer.record(t0);
/// assert_eq!(pacer.next_nomination_slot().unwrap() - t0, Duration::from_millis(5));
/// let t2 = t0 + Duration::from_millis(5);
/// assert_eq!(pacer.take_slot(t2, 1, |_| true), None); // Ta not yet over
/// assert_eq!(pacer.take_nomination_slot(t2, 1, |_| true), Some(0));
/// assert_eq!(pacer.next_slot().unwrap() - t2, Duration::from_millis(50));
/// ```
#[derive(Clone, Debug)]
pub struct Pacer {
    ta: Duration,
    last: Option<Instant>,
    next_index: usize,
}

impl Pacer {
    /// A pacer with period `ta`, raised to the 5 ms floor of RFC 8445 §14.2.
    pub fn new(ta: Duration) -> Self {
        Pacer {
            ta: ta.max(MIN_TA),
            last: None,
            next_index: 0,
        }
    }

    /// Ta.
    pub fn ta(&self) -> Duration {
        self.ta
    }

    /// Changes Ta (still at least 5 ms); the next slot moves with it.
    pub fn set_ta(&mut self, ta: Duration) {
        self.ta = ta.max(MIN_TA);
    }

    /// The earliest instant of the next slot; `None` when no check was sent yet (a slot
    /// is free at once).
    pub fn next_slot(&self) -> Option<Instant> {
        self.last.map(|t| t + self.ta)
    }

    /// The earliest instant of the next slot for a nomination check: the 5 ms floor
    /// after the last check; `None` when no check was sent yet.
    pub fn next_nomination_slot(&self) -> Option<Instant> {
        self.last.map(|t| t + MIN_TA)
    }

    /// Whether a slot is free at `now`.
    pub fn is_ready(&self, now: Instant) -> bool {
        self.next_slot().is_none_or(|t| now >= t)
    }

    /// Whether a slot for a nomination check is free at `now`.
    pub fn is_ready_for_nomination(&self, now: Instant) -> bool {
        self.next_nomination_slot().is_none_or(|t| now >= t)
    }

    /// Records that a check was sent at `now`, using the slot.
    pub fn record(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// If a slot is free at `now`, offers it to checklists `0..n` round-robin, starting
    /// after the one served last; `start` tries to start a check on checklist `i` and
    /// says whether it did. Returns the checklist that used the slot.
    pub fn take_slot(
        &mut self,
        now: Instant,
        n: usize,
        start: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        if !self.is_ready(now) {
            return None;
        }
        self.offer(now, n, start)
    }

    /// Like [`Pacer::take_slot`], for nomination checks only: a slot is free once the
    /// 5 ms floor has passed since the last check. `start` tries to start a nomination
    /// check on checklist `i` ([`Checklist::start_nomination_check`](super::Checklist::start_nomination_check)).
    pub fn take_nomination_slot(
        &mut self,
        now: Instant,
        n: usize,
        start: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        if !self.is_ready_for_nomination(now) {
            return None;
        }
        self.offer(now, n, start)
    }

    fn offer(
        &mut self,
        now: Instant,
        n: usize,
        mut start: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        for k in 0..n {
            let i = (self.next_index + k) % n;
            if start(i) {
                self.record(now);
                self.next_index = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }
}
