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
//! [`MIN_DATAGRAMS`] datagrams, fewer than [`MAX_DATAGRAMS`] (an overloaded Arbiter
//! already gets full batches and must not lose time sleeping), and at least
//! [`MIN_PER_RECEIVE`] per receive on the relay sockets (on the listeners when no relay
//! had data lately: a round with listener data only is judged by the last round with
//! relay data, if it is recent). Thousands of quiet allocations, each relay socket with one datagram per
//! wake-up, go straight back to `epoll_wait`: a pause would batch only the listener's
//! side and cost CPU and latency (`bench/compare.sh` hold workloads: +15% CPU per round
//! trip with the pause when the listener alone was counted). It is
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
    /// Datagrams and receive calls of the round: listeners, relays.
    listener: Cell<(usize, usize)>,
    relay: Cell<(usize, usize)>,
    /// Whether the last round with relay data had enough per receive, and how many
    /// rounds ago it was.
    relay_batched: Cell<bool>,
    since_relay: Cell<u32>,
    scheduled: Cell<bool>,
    wanted: Notify,
}

impl Coalescer {
    /// A coalescer that pauses for `pause` (zero: never).
    pub(crate) fn new(pause: Duration) -> Self {
        Coalescer(Rc::new(State {
            pause: Cell::new(pause),
            listener: Cell::new((0, 0)),
            relay: Cell::new((0, 0)),
            relay_batched: Cell::new(false),
            since_relay: Cell::new(RECENT),
            scheduled: Cell::new(false),
            wanted: Notify::new(),
        }))
    }

    /// Sets the pause (zero: never).
    pub(crate) fn set_pause(&self, pause: Duration) {
        self.0.pause.set(pause);
    }

    /// A receive brought `datagrams`, on a relay socket or a listener.
    pub(crate) fn received(&self, datagrams: usize, relay: bool) {
        self.received_many(datagrams, 1, relay);
    }

    /// `receives` receive calls brought `datagrams` in all, on relay sockets or listeners.
    pub(crate) fn received_many(&self, datagrams: usize, receives: usize, relay: bool) {
        let s = &self.0;
        if s.pause.get().is_zero() || datagrams == 0 {
            return;
        }
        let cell = if relay { &s.relay } else { &s.listener };
        let (d, r) = cell.get();
        cell.set((d + datagrams, r + receives));
        if !s.scheduled.replace(true) {
            s.wanted.notify_one();
        }
    }

    /// Runs on the Arbiter for as long as it serves: after each round of wake-ups that
    /// brought data, lets the other tasks woken with it run (the relay drain, whose pass
    /// sends the datagrams for clients), then pauses if the round's counts say it pays.
    pub(crate) async fn run(self) {
        let s = &self.0;
        loop {
            s.wanted.notified().await;
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            s.scheduled.set(false);
            let listener = s.listener.replace((0, 0));
            let relay = s.relay.replace((0, 0));
            let recent = if relay.1 > 0 {
                s.relay_batched.set(batched(relay));
                s.since_relay.set(0);
                None
            } else {
                let since = s.since_relay.get();
                s.since_relay.set(since.saturating_add(1));
                (since < RECENT).then(|| s.relay_batched.get())
            };
            if pays(listener, relay, recent) {
                std::thread::sleep(s.pause.get());
            }
        }
    }
}

/// Rounds after one with relay data during which it still judges listener-only rounds.
const RECENT: u32 = 64;

/// Whether `(datagrams, receive calls)` came in batches worth waiting for.
fn batched((datagrams, receives): (usize, usize)) -> bool {
    datagrams >= MIN_PER_RECEIVE * receives
}

/// Whether a round that brought `(datagrams, receive calls)` on the listeners and on the
/// relays is worth a pause; `recent_relay` says whether the relays batched in the last
/// round that had relay data, when that round is recent and this one has none.
fn pays(listener: (usize, usize), relay: (usize, usize), recent_relay: Option<bool>) -> bool {
    if !DATAGRAMS.contains(&(listener.0 + relay.0)) {
        return false;
    }
    if relay.1 > 0 {
        return batched(relay);
    }
    recent_relay.unwrap_or_else(|| batched(listener))
}

#[cfg(test)]
mod tests {
    use super::pays;

    #[test]
    fn pauses_only_for_a_few_datagrams_per_receive() {
        let none = (0, 0);
        assert!(
            !pays((1, 1), none, None),
            "light traffic goes back to epoll_wait"
        );
        assert!(
            !pays(none, (40, 40), None),
            "one datagram per relay: nothing to gain"
        );
        assert!(
            !pays((12, 1), (10, 10), None),
            "a batching listener does not count when each relay has one datagram"
        );
        assert!(
            !pays((12, 1), none, Some(false)),
            "nor in a listener-only round while the relays lately had one each"
        );
        assert!(pays((12, 1), none, Some(true)));
        assert!(
            pays((8, 2), none, None),
            "Bindings only: the listener decides"
        );
        assert!(pays((10, 1), (30, 10), None));
        assert!(
            !pays((32, 1), (32, 4), None),
            "a full batch is not held back"
        );
    }
}
