//! Two agents wired through an in-memory network with a fake clock, like quinn-proto's
//! `Pair`: transmits are routed by destination address, after an optional latency,
//! loss rule, rewrite hook and 1:1 NAT.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::ice::{Agent, Candidate, IceConfig, IceEvent};
use crate::stun::{Class, Message, TransactionId};
use crate::Transmit;

/// Which side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// One agent and what happened to it.
pub struct Peer {
    pub agent: Agent,
    /// Addresses this peer receives on (host bases, relayed addresses).
    pub addrs: Vec<SocketAddr>,
    pub events: Vec<(Duration, IceEvent)>,
    /// The same events with their data stream.
    pub stream_events: Vec<(Duration, usize, IceEvent)>,
    pub received: Vec<(Duration, Bytes)>,
    /// The same data with its stream and component.
    pub received_on: Vec<(usize, u16, Bytes)>,
    /// Every datagram it sent, with the time.
    pub sent: Vec<(Duration, Transmit)>,
}

impl Peer {
    fn new(config: IceConfig, seed: u64) -> Self {
        Peer {
            agent: Agent::new(config, StdRng::seed_from_u64(seed)),
            addrs: Vec::new(),
            events: Vec::new(),
            stream_events: Vec::new(),
            received: Vec::new(),
            received_on: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Adds host candidates on these addresses.
    pub fn hosts(&mut self, addrs: &[&str]) -> Vec<Candidate> {
        addrs
            .iter()
            .filter_map(|a| {
                let addr: SocketAddr = a.parse().unwrap();
                self.addrs.push(addr);
                self.agent.add_local_candidate(Candidate::host(addr))
            })
            .collect()
    }

    /// Adds host candidates of `component` of `stream` on these addresses.
    pub fn hosts_in(&mut self, stream: usize, component: u16, addrs: &[&str]) -> Vec<Candidate> {
        addrs
            .iter()
            .filter_map(|a| {
                let addr: SocketAddr = a.parse().unwrap();
                self.addrs.push(addr);
                let c = Candidate::host(addr).with_component(component);
                self.agent.add_local_candidate_to(stream, c)
            })
            .collect()
    }

    /// The first time an event matching `f` happened.
    pub fn first(&self, f: impl Fn(&IceEvent) -> bool) -> Option<Duration> {
        self.events.iter().find(|(_, e)| f(e)).map(|(t, _)| *t)
    }

    pub fn count(&self, f: impl Fn(&IceEvent) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
    }

    /// The nominated pairs, in order.
    pub fn nominated(&self) -> Vec<(Candidate, Candidate)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                IceEvent::PairNominated { local, remote } => Some((local.clone(), remote.clone())),
                _ => None,
            })
            .collect()
    }

    /// The Binding requests it sent: time, transaction id, decoded message, transmit.
    pub fn requests(&self) -> Vec<(Duration, TransactionId, Message, Transmit)> {
        self.sent
            .iter()
            .filter_map(|(t, tx)| {
                let m = Message::decode(tx.payload.clone()).ok()?;
                (m.class() == Class::Request).then(|| (*t, m.transaction_id(), m, tx.clone()))
            })
            .collect()
    }

    /// First transmissions of its checks (retransmissions left out): the checks the
    /// pacer let through.
    pub fn new_checks(&self) -> Vec<(Duration, Message, Transmit)> {
        let mut seen = std::collections::HashSet::new();
        self.requests()
            .into_iter()
            .filter(|(_, tid, _, _)| seen.insert(*tid))
            .map(|(t, _, m, tx)| (t, m, tx))
            .collect()
    }
}

type Rule = Box<dyn FnMut(Duration, Side, &Transmit) -> bool>;
type Rewrite = Box<dyn FnMut(Side, &mut Transmit)>;

pub struct Harness {
    pub t0: Instant,
    pub now: Instant,
    pub a: Peer,
    pub b: Peer,
    /// One-way latency.
    pub latency: Duration,
    /// Returns true to drop a datagram (sent by `Side` at the given time).
    pub drop: Option<Rule>,
    /// Rewrites a datagram in flight.
    pub rewrite: Option<Rewrite>,
    /// 1:1 NAT of side B: (internal, external). B's datagrams from `internal` leave as
    /// from `external`; datagrams to `external` reach `internal`; `internal` cannot be
    /// reached from outside.
    pub nat_b: Vec<(SocketAddr, SocketAddr)>,
    in_flight: Vec<(Instant, Side, Transmit)>,
}

impl Harness {
    pub fn new(config_a: IceConfig, config_b: IceConfig, seed: u64) -> Self {
        let t0 = Instant::now();
        Harness {
            t0,
            now: t0,
            a: Peer::new(config_a, seed.wrapping_mul(2).wrapping_add(1)),
            b: Peer::new(config_b, seed.wrapping_mul(2).wrapping_add(2)),
            latency: Duration::from_millis(1),
            drop: None,
            rewrite: None,
            nat_b: Vec::new(),
            in_flight: Vec::new(),
        }
    }

    pub fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Signals `from`'s credentials to `to`, each stream's to the same stream.
    pub fn give_credentials(&mut self, from: Side, to: Side) {
        for stream in 0..self.peer(from).agent.stream_count() {
            let (u, p) = {
                let (u, p) = self.peer(from).agent.local_credentials_of(stream);
                (u.to_owned(), p.to_owned())
            };
            self.peer(to).agent.set_remote_credentials_of(stream, u, p);
        }
    }

    /// Signals `from`'s local candidates to `to` through their SDP lines, each stream's
    /// to the same stream.
    pub fn give_candidates(&mut self, from: Side, to: Side) {
        for stream in 0..self.peer(from).agent.stream_count() {
            let lines: Vec<String> = self
                .peer(from)
                .agent
                .local_candidates_of(stream)
                .iter()
                .map(|c| c.to_sdp_line())
                .collect();
            for l in lines {
                let c: Candidate = l.parse().unwrap();
                self.peer(to).agent.add_remote_candidate_to(stream, c);
            }
        }
    }

    /// Full signalling both ways, with end-of-candidates.
    pub fn signal(&mut self) {
        for (f, t) in [(Side::A, Side::B), (Side::B, Side::A)] {
            self.give_credentials(f, t);
            self.give_candidates(f, t);
            self.peer(f).agent.end_of_local_candidates();
            for stream in 0..self.peer(t).agent.stream_count() {
                self.peer(t).agent.end_of_remote_candidates_of(stream);
            }
        }
    }

    pub fn start(&mut self) {
        let now = self.now;
        self.a.agent.start(now);
        self.b.agent.start(now);
        self.collect();
    }

    /// Moves transmits and events out of both agents.
    pub fn collect(&mut self) {
        let now = self.now;
        let at = now - self.t0;
        for side in [Side::A, Side::B] {
            let latency = self.latency;
            let mut out = Vec::new();
            {
                let p = self.peer(side);
                while let Some(t) = p.agent.poll_transmit() {
                    p.sent.push((at, t.clone()));
                    out.push(t);
                }
                while let Some((stream, e)) = p.agent.poll_stream_event() {
                    p.stream_events.push((at, stream, e.clone()));
                    p.events.push((at, e));
                }
            }
            for mut t in out {
                if let Some(d) = &mut self.drop {
                    if d(at, side, &t) {
                        continue;
                    }
                }
                if let Some(r) = &mut self.rewrite {
                    r(side, &mut t);
                }
                if side == Side::B {
                    if let Some((_, ext)) = self.nat_b.iter().find(|(i, _)| *i == t.source) {
                        t.source = *ext;
                    }
                }
                self.in_flight.push((now + latency, side, t));
            }
        }
    }

    fn deliver(&mut self, from_side: Side, mut t: Transmit) {
        let to_side = match from_side {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        if to_side == Side::B {
            if self.nat_b.iter().any(|(i, _)| *i == t.destination) {
                return; // internal addresses are unreachable from outside
            }
            if let Some((int, _)) = self.nat_b.iter().find(|(_, e)| *e == t.destination) {
                t.destination = *int;
            }
        }
        let now = self.now;
        let at = now - self.t0;
        let p = self.peer(to_side);
        if !p.addrs.contains(&t.destination) {
            return;
        }
        if let Some(r) = p.agent.receive(now, t.source, t.destination, t.payload) {
            p.received.push((at, r.data.clone()));
            p.received_on.push((r.stream, r.component, r.data));
        }
    }

    /// Advances to the next thing that happens, but not past `limit`; false when
    /// nothing ever will.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.collect();
        let mut next: Option<Instant> = None;
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                next = Some(next.map_or(x, |n: Instant| n.min(x)));
            }
        };
        min(self.a.agent.poll_timeout());
        min(self.b.agent.poll_timeout());
        min(self.in_flight.iter().map(|(t, _, _)| *t).min());
        let Some(next) = next else {
            return false;
        };
        if next > limit {
            self.now = self.now.max(limit);
            return true;
        }
        if next > self.now {
            self.now = next;
        }
        let now = self.now;
        let mut due = Vec::new();
        let mut k = 0;
        while k < self.in_flight.len() {
            if self.in_flight[k].0 <= now {
                due.push(self.in_flight.remove(k));
            } else {
                k += 1;
            }
        }
        for (_, side, t) in due {
            self.deliver(side, t);
        }
        if self.a.agent.poll_timeout().is_some_and(|t| t <= now) {
            self.a.agent.handle_timeout(now);
        }
        if self.b.agent.poll_timeout().is_some_and(|t| t <= now) {
            self.b.agent.handle_timeout(now);
        }
        self.collect();
        true
    }

    /// Steps until `done` or `limit` of simulated time; returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Harness) -> bool) -> bool {
        let mut guard = 0u32;
        let mut last = self.now;
        while self.elapsed() < limit {
            if done(self) {
                return true;
            }
            if !self.step(self.t0 + limit) {
                return done(self);
            }
            if self.now == last {
                guard += 1;
                assert!(
                    guard < 10_000,
                    "no progress at {:?}: busy loop",
                    self.elapsed()
                );
            } else {
                guard = 0;
                last = self.now;
            }
        }
        done(self)
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.elapsed() + d;
        self.run_until(end, |_| false);
    }

    /// Runs until both sides are connected.
    pub fn connect(&mut self, limit: Duration) -> bool {
        self.run_until(limit, |h| {
            h.a.first(|e| *e == IceEvent::Connected).is_some()
                && h.b.first(|e| *e == IceEvent::Connected).is_some()
        })
    }
}
