//! ICE-TCP on the fake network (RFC 6544): passive listeners, the connections the agents
//! ask for with `poll_tcp_connect` (opened one round trip later, or refused), and RFC 4571
//! framing of every packet on them, unframed on arrival in two pushes so the framer sees
//! partial frames.
//!
//! Each side names a connection as its agent does: the active side by (its candidate's
//! base, port 9, and the passive address), the passive side by (its listener, the active
//! side's ephemeral address). Packets are rewritten between the two views on the way.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use floe::ice::{Candidate, TcpConnect, TcpType};
use floe::rfc4571::{encode, Rfc4571Framer};
use floe::{Transmit, Transport};

use super::agents::{AgentPair, Side};

/// One connection between the agents.
pub struct Conn {
    /// The side that opened it.
    pub active: Side,
    /// What the active side calls its end: its candidate's base (port 9).
    pub active_local: SocketAddr,
    /// The active end's real address, an ephemeral port, which the passive side sees.
    pub active_addr: SocketAddr,
    /// The passive side's listener.
    pub passive_addr: SocketAddr,
    /// The framers of what each side receives: [active side's, passive side's].
    framers: [Rfc4571Framer; 2],
    /// Closed by the test: nothing more goes through.
    pub closed: bool,
}

enum Due {
    Connected(TcpConnect),
    Failed(TcpConnect),
    Accepted(SocketAddr, SocketAddr),
}

/// The TCP half of the fake network.
#[derive(Default)]
pub struct TcpNet {
    /// Passive listeners, by side.
    pub listeners: Vec<(Side, SocketAddr)>,
    pub conns: Vec<Conn>,
    /// Every connection an agent asked for, in order.
    pub requests: Vec<(Side, TcpConnect)>,
    /// Refuse every connection (a firewall in between).
    pub refuse: bool,
    /// Packets sent on a TCP pair without a connection (a bug in the agent).
    pub unconnected: usize,
    /// Packets delivered framed and unframed.
    pub framed: usize,
    due: Vec<(Instant, Side, Due)>,
    next_port: u16,
}

fn other(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

impl TcpNet {
    /// An agent asked for a connection: it opens one round trip later if the other side
    /// listens on `c.remote`.
    pub fn connect(&mut self, now: Instant, latency: Duration, side: Side, c: TcpConnect) {
        self.requests.push((side, c));
        let listening = self.listeners.contains(&(other(side), c.remote));
        if self.refuse || !listening {
            self.due.push((now + 2 * latency, side, Due::Failed(c)));
            return;
        }
        self.next_port += 1;
        let active_addr = SocketAddr::new(c.local.ip(), 40_000 + self.next_port);
        self.conns.push(Conn {
            active: side,
            active_local: c.local,
            active_addr,
            passive_addr: c.remote,
            framers: Default::default(),
            closed: false,
        });
        self.due.push((
            now + latency,
            other(side),
            Due::Accepted(c.remote, active_addr),
        ));
        self.due.push((now + 2 * latency, side, Due::Connected(c)));
    }

    /// A TCP transmit of `side`: framed and rewritten to the addresses the other side
    /// sees, or `false` (dropped) when no connection carries it.
    pub fn outgoing(&mut self, side: Side, t: &mut Transmit) -> bool {
        let found = self.conns.iter().find(|c| {
            !c.closed
                && if c.active == side {
                    t.source == c.active_local && t.destination == c.passive_addr
                } else {
                    t.source == c.passive_addr && t.destination == c.active_addr
                }
        });
        let Some(c) = found else {
            self.unconnected += 1;
            return false;
        };
        if c.active == side {
            t.source = c.active_addr;
        } else {
            t.destination = c.active_local;
        }
        t.payload = encode(&t.payload).expect("a packet fits an RFC 4571 frame");
        true
    }

    /// What arrives from `from_side`: a UDP datagram as it is, a TCP segment unframed.
    pub fn unframe(&mut self, from_side: Side, t: Transmit) -> Vec<Transmit> {
        if t.transport != Transport::Tcp {
            return vec![t];
        }
        let Some(c) = self.conns.iter_mut().find(|c| {
            !c.closed
                && if c.active == from_side {
                    t.source == c.active_addr && t.destination == c.passive_addr
                } else {
                    t.source == c.passive_addr && t.destination == c.active_local
                }
        }) else {
            return Vec::new();
        };
        let framer = &mut c.framers[usize::from(c.active == from_side)];
        let half = t.payload.len() / 2;
        let mut out = Vec::new();
        for part in [&t.payload[..half], &t.payload[half..]] {
            framer.push(part);
            while let Some(p) = framer.next_frame() {
                out.push(Transmit {
                    payload: p,
                    ..t.clone()
                });
            }
        }
        self.framed += out.len();
        out
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.due.iter().map(|(at, _, _)| *at).min()
    }
}

impl AgentPair {
    /// Adds TCP host candidates of `tcp_type` on these addresses to `side`; passive ones
    /// listen.
    pub fn tcp_hosts(&mut self, side: Side, addrs: &[&str], tcp_type: TcpType) -> Vec<Candidate> {
        let mut out = Vec::new();
        for a in addrs {
            let addr: SocketAddr = a.parse().unwrap();
            let c = Candidate::tcp_host(addr, tcp_type);
            let Some(c) = self.peer(side).agent.add_local_candidate(c) else {
                continue;
            };
            self.peer(side).addrs.push(c.addr());
            if tcp_type == TcpType::Passive {
                self.tcp.listeners.push((side, c.addr()));
            }
            out.push(c);
        }
        out
    }

    /// Delivers the connection outcomes that are due; returns whether any was.
    pub(super) fn tcp_step(&mut self) -> bool {
        let now = self.now;
        let (due, later) = std::mem::take(&mut self.tcp.due)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.tcp.due = later;
        let due: Vec<(Instant, Side, Due)> = due;
        let moved = !due.is_empty();
        for (_, side, d) in due {
            let agent = &mut self.peer(side).agent;
            match d {
                Due::Connected(c) => agent.handle_tcp_connected(now, c.local, c.remote),
                Due::Failed(c) => agent.handle_tcp_connect_failed(now, c.local, c.remote),
                Due::Accepted(l, r) => agent.handle_tcp_accepted(now, l, r),
            }
        }
        moved
    }

    /// Asks `side`'s agent for the connections it wants.
    pub(super) fn tcp_collect(&mut self, side: Side) {
        let now = self.now;
        let latency = self.net.latency;
        while let Some(c) = self.peer(side).agent.poll_tcp_connect() {
            self.tcp.connect(now, latency, side, c);
        }
    }

    /// Closes connection `i`, telling both agents.
    pub fn close_tcp(&mut self, i: usize) {
        let now = self.now;
        let c = &mut self.tcp.conns[i];
        c.closed = true;
        let (active, al, aa, pa) = (c.active, c.active_local, c.active_addr, c.passive_addr);
        self.peer(active).agent.handle_tcp_closed(now, al, pa);
        self.peer(other(active))
            .agent
            .handle_tcp_closed(now, pa, aa);
        self.collect();
    }
}

/// The payloads `side` sent over TCP, as the agent gave them (before framing).
pub fn tcp_payloads(sent: &[(Duration, Transmit)]) -> Vec<Bytes> {
    sent.iter()
        .filter(|(_, t)| t.transport == Transport::Tcp)
        .map(|(_, t)| t.payload.clone())
        .collect()
}
