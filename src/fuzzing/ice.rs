//! Two ICE agents on a network the program controls: each datagram is delivered, lost,
//! corrupted, replayed or arrives from an unknown address; forged STUN (signed with the
//! right or a wrong password, on the transaction ids of real checks) and raw bytes reach
//! the agents' candidates; the application sends; time passes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Input, Reached};
use crate::ice::{Agent, Candidate, IceConfig, IceConnectionState, IceEvent, IceRole, Nomination};
use crate::stun::attribute::XorMappedAddress;
use crate::stun::TransactionId;
use crate::stun::{AttributeType, Class, Message, MessageEncoder, MessageType, Method};
use crate::transmit::Transmit;

const HOSTS: [&[&str]; 2] = [
    &["10.0.0.1:5000", "10.0.1.1:5000", "[fd00::1]:5000"],
    &["10.0.0.2:6000", "[fd00::2]:6000"],
];
const STRANGERS: [&str; 2] = ["10.9.9.9:7000", "[fd00::9]:7000"];

/// Runs two agents on the program `data`.
pub fn ice_agent(data: &[u8]) -> Reached {
    let mut input = Input::new(data);
    IceRun::new(&mut input).run(&mut input)
}

struct Side {
    agent: Agent,
    addrs: Vec<SocketAddr>,
    /// Datagrams it sent, still in flight.
    flight: VecDeque<Transmit>,
    /// Every datagram it sent (for replays), and the ids of its requests.
    sent: Vec<Transmit>,
    requests: Vec<TransactionId>,
}

struct IceRun {
    sides: [Side; 2],
    now: Instant,
    reached: Reached,
}

impl IceRun {
    fn new(input: &mut Input) -> Self {
        let now = Instant::now();
        let flags = input.u8();
        let sides = [0, 1].map(|i| {
            let role = match (i, flags & 1) {
                (0, _) => IceRole::Controlling,
                // A role conflict (RFC 8445 §7.3.1.1) when both say controlling.
                (_, 1) => IceRole::Controlling,
                _ => IceRole::Controlled,
            };
            let mut c = IceConfig::new(role);
            if flags & 2 != 0 {
                c.nomination = Nomination::Aggressive;
            }
            if i == 1 && flags & 4 != 0 {
                c.lite = true;
            }
            let mut agent = Agent::new(c, StdRng::seed_from_u64(11 + i as u64));
            let mut addrs = Vec::new();
            for a in HOSTS[i] {
                let addr: SocketAddr = a.parse().unwrap();
                addrs.push(addr);
                agent.add_local_candidate(Candidate::host(addr));
            }
            Side {
                agent,
                addrs,
                flight: VecDeque::new(),
                sent: Vec::new(),
                requests: Vec::new(),
            }
        });
        let mut run = IceRun {
            sides,
            now,
            reached: Reached::default(),
        };
        if flags & 4 != 0 {
            run.sides[0].agent.set_remote_lite(true);
        }
        // Signalling, with candidates left out when the program says (peer-reflexive
        // discovery then finds them).
        for (f, t) in [(0, 1), (1, 0)] {
            let (u, p) = run.sides[f].agent.local_credentials();
            let (u, p) = (u.to_owned(), p.to_owned());
            run.sides[t].agent.set_remote_credentials(u, p);
            let lines: Vec<String> = run.sides[f]
                .agent
                .local_candidates()
                .iter()
                .map(|c| c.to_sdp_line())
                .collect();
            for l in lines {
                if input.below(8) != 0 {
                    run.sides[t].agent.add_remote_candidate(l.parse().unwrap());
                }
            }
            run.sides[f].agent.end_of_local_candidates();
            run.sides[t].agent.end_of_remote_candidates();
        }
        for s in &mut run.sides {
            s.agent.start(now);
        }
        run.collect();
        run
    }

    fn run(mut self, input: &mut Input) -> Reached {
        while !input.is_empty() {
            let s = input.below(2);
            let now = self.now;
            match input.below(14) {
                0..=3 => {
                    if let Some(t) = self.sides[s].flight.pop_front() {
                        self.deliver(t.source, t.destination, t.payload);
                    }
                }
                4 => {
                    self.sides[s].flight.pop_front();
                }
                5 => {
                    if let Some(t) = self.sides[s].flight.pop_front() {
                        let mut m = t.payload.to_vec();
                        if !m.is_empty() {
                            let at = usize::from(input.u16()) % m.len();
                            m[at] ^= input.u8() | 1;
                        }
                        self.deliver(t.source, t.destination, Bytes::from(m));
                    }
                }
                6 => {
                    // From an address the peer never signalled (a NAT's rebinding).
                    if let Some(t) = self.sides[s].flight.pop_front() {
                        let from = STRANGERS[usize::from(t.destination.is_ipv6())];
                        self.deliver(from.parse().unwrap(), t.destination, t.payload);
                    }
                }
                7 => {
                    let sent = &self.sides[s].sent;
                    if !sent.is_empty() {
                        let t = sent[input.below(sent.len())].clone();
                        self.deliver(t.source, t.destination, t.payload);
                    }
                }
                8 | 9 => self.forge(input, s),
                10 => {
                    let to = self.sides[s].addrs[input.below(self.sides[s].addrs.len())];
                    let from = self.from(input, s, to);
                    let raw = Bytes::copy_from_slice(input.bytes());
                    self.deliver(from, to, raw);
                }
                11 => {
                    // RTP-like (RFC 7983): application data is never STUN.
                    let mut data = vec![0x80];
                    data.extend_from_slice(input.bytes());
                    let _ = self.sides[s].agent.send(Bytes::from(data));
                }
                _ => {
                    let step = match input.below(3) {
                        0 => Duration::from_millis(u64::from(input.u8())),
                        1 => Duration::from_millis(u64::from(input.u16())),
                        _ => Duration::from_secs(u64::from(input.u8())),
                    };
                    self.now += step;
                    for side in &mut self.sides {
                        side.agent.handle_timeout(now + step);
                    }
                }
            }
            self.collect();
        }
        self.reached
    }

    /// A remote address of `to`'s family for side `s`'s input: one of the other
    /// side's, or a stranger.
    fn from(&self, input: &mut Input, s: usize, to: SocketAddr) -> SocketAddr {
        let mut from: Vec<SocketAddr> = self.sides[1 - s].addrs.clone();
        from.extend(STRANGERS.iter().map(|a| a.parse::<SocketAddr>().unwrap()));
        from.retain(|a| a.is_ipv4() == to.is_ipv4());
        from[input.below(from.len())]
    }

    fn deliver(&mut self, from: SocketAddr, to: SocketAddr, data: Bytes) {
        let Some(side) = self.sides.iter_mut().find(|s| s.addrs.contains(&to)) else {
            return; // nobody there
        };
        if side.agent.receive(self.now, from, to, data).is_some() {
            self.reached.data += 1;
        }
    }

    /// A STUN message to side `s`, as if from the other side.
    fn forge(&mut self, input: &mut Input, s: usize) {
        let o = 1 - s;
        let class = input.pick(&[
            Class::Request,
            Class::Success,
            Class::Error,
            Class::Indication,
        ]);
        let method = if input.below(8) == 0 {
            Method(input.u16() & 0xFFF)
        } else {
            Method::BINDING
        };
        // Responses on the transaction ids of side `s`'s own checks.
        let reqs = &self.sides[s].requests;
        let tid = if class != Class::Request && !reqs.is_empty() {
            reqs[reqs.len() - 1 - input.below(reqs.len().min(8))]
        } else {
            TransactionId([input.u8(); 12])
        };
        let (su, sp) = self.sides[s].agent.local_credentials();
        let (ou, op) = self.sides[o].agent.local_credentials();
        let username = format!("{su}:{ou}");
        let (sp, op) = (sp.to_owned(), op.to_owned());
        let mut buf = BytesMut::new();
        let mut e = MessageEncoder::new(&mut buf, MessageType::new(method, class), tid);
        for _ in 0..input.below(6) {
            match input.below(8) {
                0 => e.add_raw(
                    AttributeType(0x0006),
                    if input.below(4) != 0 {
                        username.as_bytes()
                    } else {
                        b"x:y"
                    },
                ),
                1 => e.add_raw(AttributeType(0x0024), &input.u32().to_be_bytes()), // PRIORITY
                2 => e.add_raw(
                    AttributeType(0x802A),
                    &[input.u32().to_be_bytes(), input.u32().to_be_bytes()].concat(),
                ),
                3 => e.add_raw(
                    AttributeType(0x8029),
                    &[input.u32().to_be_bytes(), input.u32().to_be_bytes()].concat(),
                ),
                4 => e.add_raw(AttributeType(0x0025), &[]), // USE-CANDIDATE
                5 => {
                    let a = self.sides[o].addrs[input.below(self.sides[o].addrs.len())];
                    e.add(&XorMappedAddress(a))
                }
                6 => e.add_raw(
                    AttributeType(0x0009),
                    &[0, 0, 4, input.pick(&[87, 0, 1, 20])],
                ), // ERROR-CODE
                _ => e.add_raw(AttributeType(input.u16()), input.bytes()),
            };
        }
        // Requests are signed with the receiver's password, responses with the sender's.
        match input.below(3) {
            0 => {
                let key = if class == Class::Request { &sp } else { &op };
                e.message_integrity(key.as_bytes());
            }
            1 => {
                e.message_integrity(b"wrong");
            }
            _ => {}
        }
        if input.below(4) != 0 {
            e.fingerprint();
        }
        let _ = e.finish();
        let to = self.sides[s].addrs[input.below(self.sides[s].addrs.len())];
        let from = self.from(input, s, to);
        self.deliver(from, to, buf.freeze());
    }

    /// Puts what the agents sent in flight, checking it.
    fn collect(&mut self) {
        for side in &mut self.sides {
            let mut n = 0;
            while let Some(t) = side.agent.poll_transmit() {
                n += 1;
                assert!(n < 1000, "the agent sends without end");
                assert!(
                    side.addrs.contains(&t.source),
                    "sent from one of its own bases"
                );
                assert_eq!(t.source.is_ipv4(), t.destination.is_ipv4(), "one family");
                if t.payload.first().is_some_and(|b| *b < 4) {
                    let m = Message::decode(t.payload.clone()).expect("the agent's STUN decodes");
                    assert!(m.has_fingerprint(), "RFC 8445 §7.2.2: FINGERPRINT");
                    if m.class() == Class::Request {
                        side.requests.push(m.transaction_id());
                    }
                }
                side.sent.push(t.clone());
                side.flight.push_back(t);
            }
            while let Some((_, e)) = side.agent.poll_stream_event() {
                if matches!(e, IceEvent::Connected) {
                    self.reached.allocations += 1;
                }
            }
            if side.agent.state() == IceConnectionState::Connected {
                let (local, _) = side.agent.selected_pair().expect("connected on a pair");
                let base = local.base().unwrap_or(local.addr());
                assert!(
                    side.addrs.contains(&base),
                    "selected on one of its own bases"
                );
            }
            // Bounded memory for the run's own bookkeeping.
            if side.sent.len() > 4096 {
                side.sent.drain(..2048);
            }
            if side.requests.len() > 64 {
                side.requests.drain(..32);
            }
        }
    }
}
