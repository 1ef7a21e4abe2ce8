//! The fake clock and the in-memory network that every pair runs on, and the one run loop
//! that moves the clock.

use std::time::{Duration, Instant};

/// Datagrams in flight, each arriving one latency after it was sent.
pub struct Network<D> {
    /// One-way delay.
    pub latency: Duration,
    in_flight: Vec<(Instant, D)>,
}

impl<D> Network<D> {
    pub fn new(latency: Duration) -> Self {
        Network {
            latency,
            in_flight: Vec::new(),
        }
    }

    /// Puts `datagram` on the wire at `now`.
    pub fn send(&mut self, now: Instant, datagram: D) {
        self.in_flight.push((now + self.latency, datagram));
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.iter().map(|(at, _)| *at).min()
    }

    /// Takes the datagrams that have arrived by `now`, in the order they were sent.
    pub fn arrived(&mut self, now: Instant) -> Vec<D> {
        let (due, later) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.in_flight = later;
        due.into_iter().map(|(_, d)| d).collect()
    }
}

/// Two cores on a [`Network`] with a fake clock: what the run loop needs of a pair.
pub trait Sim: Sized {
    /// The fake clock.
    fn clock(&mut self) -> &mut Instant;

    /// At the current instant: puts both cores' transmits on the network, delivers what
    /// has arrived, fires the timers that are due and collects events. Returns whether
    /// anything moved.
    fn step(&mut self) -> bool;

    /// The next instant anything is due: an arrival or a core's timer.
    fn next_deadline(&self) -> Option<Instant>;

    /// Steps until the pair is quiet, then jumps the clock to the next deadline, until
    /// `done` holds or `limit` of fake time has passed; the clock then stands at the
    /// instant `done` held, or at the limit. Returns whether `done` held. Nothing sleeps,
    /// so a test of a 10-minute lifetime runs in microseconds on any machine.
    fn drive(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let end = *self.clock() + limit;
        // Steps at one instant of the fake clock: a pair that never gets quiet is a bug.
        let mut spins = 0u32;
        let spin = |spins: &mut u32, at: Instant| {
            *spins += 1;
            assert!(*spins < 10_000, "no progress at {at:?}: busy loop");
        };
        loop {
            while self.step() {
                spin(&mut spins, *self.clock());
            }
            if done(self) {
                return true;
            }
            let now = *self.clock();
            match self.next_deadline() {
                Some(t) if t <= end => {
                    if t > now {
                        *self.clock() = t;
                        spins = 0;
                    } else {
                        spin(&mut spins, now);
                    }
                }
                _ => {
                    *self.clock() = now.max(end);
                    while self.step() {}
                    return done(self);
                }
            }
        }
    }
}
