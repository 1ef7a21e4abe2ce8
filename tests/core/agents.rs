//! The agent↔agent pair: two ICE agents on the fake network. Transmits are routed by
//! destination address, after an optional loss rule, rewrite hook and 1:1 NAT.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

use floe::ice::{Agent, Candidate, IceConfig, IceEvent};
use floe::stun::{Class, Message, TransactionId};
use floe::Transmit;

use super::network::{Network, Sim};
use super::tcp_net::TcpNet;

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

/// Two agents, A and B, on one fake network and one fake clock.
pub struct AgentPair {
    pub t0: Instant,
    pub now: Instant,
    pub a: Peer,
    pub b: Peer,
    pub net: Network<(Side, Transmit)>,
    /// Returns true to drop a datagram (sent by `Side` at the given time).
    pub drop: Option<Rule>,
    /// Rewrites a datagram in flight.
    pub rewrite: Option<Rewrite>,
    /// 1:1 NAT of side B: (internal, external). B's datagrams from `internal` leave as
    /// from `external`; datagrams to `external` reach `internal`; `internal` cannot be
    /// reached from outside.
    pub nat_b: Vec<(SocketAddr, SocketAddr)>,
    /// ICE-TCP: listeners, connections and RFC 4571 framing (`tcp_net.rs`).
    pub tcp: TcpNet,
}

impl AgentPair {
    pub fn new(config_a: IceConfig, config_b: IceConfig, seed: u64) -> Self {
        let t0 = Instant::now();
        AgentPair {
            t0,
            now: t0,
            a: Peer::new(config_a, seed.wrapping_mul(2).wrapping_add(1)),
            b: Peer::new(config_b, seed.wrapping_mul(2).wrapping_add(2)),
            net: Network::new(Duration::from_millis(1)),
            drop: None,
            rewrite: None,
            nat_b: Vec::new(),
            tcp: TcpNet::default(),
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
            self.tcp_collect(side);
            for mut t in out {
                if let Some(d) = &mut self.drop {
                    if d(at, side, &t) {
                        continue;
                    }
                }
                if let Some(r) = &mut self.rewrite {
                    r(side, &mut t);
                }
                if t.transport == floe::Transport::Tcp && !self.tcp.outgoing(side, &mut t) {
                    continue;
                }
                if side == Side::B {
                    if let Some((_, ext)) = self.nat_b.iter().find(|(i, _)| *i == t.source) {
                        t.source = *ext;
                    }
                }
                self.net.send(now, (side, t));
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

    /// Runs until `done` holds or `limit` of fake time has passed; see [`Sim::drive`].
    pub fn run_until(&mut self, limit: Duration, done: impl FnMut(&mut AgentPair) -> bool) -> bool {
        self.drive(limit, done)
    }

    /// Runs for `d` of fake time.
    pub fn run_for(&mut self, d: Duration) {
        self.drive(d, |_| false);
    }

    /// Runs until both sides are connected, for at most `limit` of fake time.
    pub fn connect(&mut self, limit: Duration) -> bool {
        self.run_until(limit, |h| {
            h.a.first(|e| *e == IceEvent::Connected).is_some()
                && h.b.first(|e| *e == IceEvent::Connected).is_some()
        })
    }
}

impl Sim for AgentPair {
    fn clock(&mut self) -> &mut Instant {
        &mut self.now
    }

    fn step(&mut self) -> bool {
        let now = self.now;
        let arrived = self.net.arrived(now);
        let mut moved = !arrived.is_empty();
        for (side, t) in arrived {
            for t in self.tcp.unframe(side, t) {
                self.deliver(side, t);
            }
        }
        moved |= self.tcp_step();
        for p in [&mut self.a, &mut self.b] {
            if p.agent.poll_timeout().is_some_and(|t| t <= now) {
                p.agent.handle_timeout(now);
            }
        }
        let sent = self.a.sent.len() + self.b.sent.len();
        let events = self.a.events.len() + self.b.events.len();
        self.collect();
        moved |= self.a.sent.len() + self.b.sent.len() > sent;
        moved |= self.a.events.len() + self.b.events.len() > events;
        moved
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.net.next_arrival(),
            self.tcp.next_due(),
            self.a.agent.poll_timeout(),
            self.b.agent.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
