//! Receive coalescing: after a wake-up that brought a few datagrams, an Arbiter's thread
//! pauses for a moment, so that the next wake-up finds a batch waiting.
//!
//! Without it a busy Arbiter wakes for nearly every datagram: one `epoll_wait`, one
//! receive and one send per packet. With a pause of 200 µs its batches grow, and each
//! system call carries many datagrams (`recvmmsg`, `sendmmsg`): `bench/compare.sh` shows
//! about 1.6× the relayed packets per CPU-second on the 50-allocation workload. It is
//! what network cards do with interrupt moderation, and it costs at most the pause in
//! latency.
//!
//! The pause is taken only when it pays: when a round of wake-ups brought at least
//! [`MIN_DATAGRAMS`] datagrams and at least [`MIN_PER_RECEIVE`] per receive (light
//! traffic, or thousands of quiet sockets with one datagram each, go straight back to
//! `epoll_wait`: a pause would save nothing there), and fewer than [`MAX_DATAGRAMS`] (an
//! overloaded Arbiter already gets full batches and must not lose time sleeping). It is
//! a blocking sleep of the Arbiter's own thread: nothing else is waiting on that thread
//! when it is taken, since the other tasks woken in the same round run first. The pause
//! is `floe serve --rx-coalesce-us` (0 turns it off).

use std::cell::Cell;
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

/// Datagrams a round of wake-ups must bring for a pause (at least the start, less than
/// the end).
const DATAGRAMS: Range<usize> = MIN_DATAGRAMS..MAX_DATAGRAMS;
/// See the module doc.
const MIN_DATAGRAMS: usize = 4;
/// See the module doc.
const MAX_DATAGRAMS: usize = 64;
/// See the module doc.
const MIN_PER_RECEIVE: usize = 2;

/// The counts of one round of wake-ups, kept by the receive loops of one Arbiter.
#[derive(Clone)]
pub(crate) struct Coalescer(Rc<State>);

struct State {
    pause: Cell<Duration>,
    datagrams: Cell<usize>,
    receives: Cell<usize>,
    scheduled: Cell<bool>,
    wanted: Notify,
}

impl Coalescer {
    /// A coalescer that pauses for `pause` (zero: never).
    pub(crate) fn new(pause: Duration) -> Self {
        Coalescer(Rc::new(State {
            pause: Cell::new(pause),
            datagrams: Cell::new(0),
            receives: Cell::new(0),
            scheduled: Cell::new(false),
            wanted: Notify::new(),
        }))
    }

    /// Sets the pause (zero: never).
    pub(crate) fn set_pause(&self, pause: Duration) {
        self.0.pause.set(pause);
    }

    /// A receive brought `datagrams`.
    pub(crate) fn received(&self, datagrams: usize) {
        let s = &self.0;
        if s.pause.get().is_zero() || datagrams == 0 {
            return;
        }
        s.datagrams.set(s.datagrams.get() + datagrams);
        s.receives.set(s.receives.get() + 1);
        if !s.scheduled.replace(true) {
            s.wanted.notify_one();
        }
    }

    /// Runs on the Arbiter for as long as it serves: after each round of wake-ups that
    /// brought data, lets the other tasks woken with it run (relays, the flusher of
    /// datagrams for clients), then pauses if the round's counts say it pays.
    pub(crate) async fn run(self) {
        let s = &self.0;
        loop {
            s.wanted.notified().await;
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            s.scheduled.set(false);
            let datagrams = s.datagrams.replace(0);
            let receives = s.receives.replace(0);
            if pays(datagrams, receives) {
                std::thread::sleep(s.pause.get());
            }
        }
    }
}

/// Whether a round of `datagrams` in `receives` receive calls is worth a pause.
fn pays(datagrams: usize, receives: usize) -> bool {
    DATAGRAMS.contains(&datagrams) && datagrams >= MIN_PER_RECEIVE * receives
}

#[cfg(test)]
mod tests {
    use super::pays;

    #[test]
    fn pauses_only_for_a_few_datagrams_per_receive() {
        assert!(!pays(1, 1), "light traffic goes back to epoll_wait");
        assert!(!pays(40, 40), "one datagram per socket: nothing to gain");
        assert!(pays(8, 2));
        assert!(pays(40, 10));
        assert!(!pays(64, 4), "a full batch is not held back");
    }
}
