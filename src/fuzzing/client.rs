//! The TURN client core against floe's own server core, on a network the program
//! controls: it delivers, drops, replays or corrupts each message, forges responses to
//! the client's real transactions (signed or not), sends raw bytes and lets time pass.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Input, Reached};
use crate::stun::attribute::{
    AlternateServer, ErrorCode, Lifetime, Nonce, Realm, XorMappedAddress, XorPeerAddress,
    XorRelayedAddress,
};
use crate::stun::credentials::IntegrityKey;
use crate::stun::{AttributeType, Class, Message, MessageEncoder, MessageType, Method};
use crate::stun::{PasswordAlgorithm, TransactionId};
use crate::transmit::Transport;
use crate::turn::client::{Client, ClientConfig, ClientEvent, ClientState};
use crate::turn::server::{
    ClientOutput, FiveTuple, PeerOutput, RelayAsk, RelayGrant, RelayRefusal, Server, ServerConfig,
    PEER_HEADROOM,
};
use crate::turn::ChannelData;

const SERVER: &str = "198.51.100.1:3478";
const LOCAL: &str = "203.0.113.9:40000";
/// Mostly peers the server allows; the last it denies.
const PEERS: [&str; 8] = [
    "192.0.2.1:9",
    "192.0.2.1:10",
    "192.0.2.77:5000",
    "192.0.2.1:9",
    "192.0.2.1:10",
    "192.0.2.77:5000",
    "192.0.2.1:9",
    "10.0.0.1:9",
];
const ALTERNATES: [&str; 2] = ["198.51.100.2:3478", "[2001:db8::2]:3478"];
const CODES: [u16; 12] = [300, 400, 401, 403, 420, 437, 438, 440, 441, 486, 508, 599];

/// Runs the client core on the program `data`.
pub fn turn_client(data: &[u8]) -> Reached {
    let mut input = Input::new(data);
    let transport = if input.bool() {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    ClientRun::new(transport).run(&mut input)
}

struct ClientRun {
    client: Client,
    server: Server,
    ft: FiveTuple,
    now: Instant,
    /// Client → server and server → client, in flight.
    up: VecDeque<Bytes>,
    down: VecDeque<Bytes>,
    /// Everything the server sent, for replays.
    sent_down: Vec<Bytes>,
    /// The client's requests seen on the wire (for forged responses).
    requests: Vec<(TransactionId, Method)>,
    bound: HashSet<SocketAddr>,
    next_port: u16,
    reached: Reached,
}

impl ClientRun {
    fn new(transport: Transport) -> Self {
        let now = Instant::now();
        let server: SocketAddr = SERVER.parse().unwrap();
        let local: SocketAddr = LOCAL.parse().unwrap();
        let mut config = ClientConfig::new(server, local, "bob", "secret");
        config.transport = transport;
        let mut c = ServerConfig::new(server.ip(), now, 1_700_000_000);
        c.nonce_secret = [5; 32];
        c.credentials.users.insert("bob", "secret");
        c.policy.add_own(server);
        c.policy.allow("192.0.2.0/24".parse().unwrap());
        ClientRun {
            client: Client::new(config, StdRng::seed_from_u64(3)),
            server: Server::new(c, StdRng::seed_from_u64(4)),
            ft: FiveTuple {
                client: local,
                server,
                transport,
            },
            now,
            up: VecDeque::new(),
            down: VecDeque::new(),
            sent_down: Vec::new(),
            requests: Vec::new(),
            bound: HashSet::new(),
            next_port: 50000,
            reached: Reached::default(),
        }
    }

    fn run(mut self, input: &mut Input) -> Reached {
        while !input.is_empty() {
            let now = self.now;
            match input.below(16) {
                0 | 1 => {
                    let _ = self.client.allocate(now);
                }
                2 => {
                    let lifetime = Duration::from_secs(u64::from(input.u16()));
                    let _ = self.client.refresh(now, lifetime);
                }
                3 => {
                    let _ = self.client.delete(now);
                }
                4 => {
                    let peers: Vec<IpAddr> = (0..input.below(3))
                        .map(|_| input.pick(&PEERS).parse::<SocketAddr>().unwrap().ip())
                        .collect();
                    let _ = self.client.create_permission(now, &peers);
                }
                5 => {
                    let _ = self
                        .client
                        .channel_bind(now, input.pick(&PEERS).parse().unwrap());
                }
                6 => {
                    let peer = input.pick(&PEERS).parse().unwrap();
                    let _ = self.client.send_to(now, peer, input.bytes());
                }
                7 => self.client.binding(now),
                8 => self.up(input),
                9 => {
                    for _ in 0..self.up.len() {
                        self.up(input);
                    }
                }
                10 => self.down(input),
                11 => {
                    for _ in 0..self.down.len() {
                        self.down(input);
                    }
                }
                12 => self.forge(input),
                13 => {
                    let raw = Bytes::copy_from_slice(input.bytes());
                    let from = if input.bool() {
                        self.client.server()
                    } else {
                        input.pick(&ALTERNATES).parse().unwrap()
                    };
                    self.client.handle_input(now, from, raw);
                }
                14 => self.peer(input),
                _ => {
                    // Mostly short steps; now and then past every lifetime.
                    let step = match input.below(8) {
                        0..=4 => Duration::from_millis(u64::from(input.u16())),
                        5 | 6 => Duration::from_secs(u64::from(input.u8())),
                        _ => Duration::from_secs(u64::from(input.u16())),
                    };
                    self.now += step;
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                    if let Some(t) = self.client.poll_timeout() {
                        assert!(t > self.now, "a deadline left in the past");
                    }
                    if self.client.state() == ClientState::Allocated {
                        let expires = self.client.allocation_expires().expect("allocated");
                        assert!(expires > self.now, "allocated past its lifetime");
                    }
                }
            }
            self.collect();
        }
        self.reached
    }

    /// The next client message to the server: delivered, corrupted, or lost.
    fn up(&mut self, input: &mut Input) {
        let Some(msg) = self.up.pop_front() else {
            return;
        };
        let msg = match input.below(16) {
            0 => return, // lost
            1 => corrupt(input, &msg),
            _ => msg,
        };
        let out = self.server.handle_client(self.now, &self.ft, &msg);
        if let ClientOutput::Relay { peer, .. } | ClientOutput::RelayOwned { peer, .. } = out {
            assert!(self.server.config().policy.permits(peer.ip()));
        }
        while let Some(req) = self.server.poll_relay_request() {
            let result = match req.relays {
                RelayAsk::Bind { .. } if self.next_port < 50010 && input.below(8) != 0 => {
                    let relayed =
                        SocketAddr::new(SERVER.parse::<SocketAddr>().unwrap().ip(), self.next_port);
                    self.next_port += 1;
                    self.bound.insert(relayed);
                    Ok(RelayGrant {
                        relayed,
                        reserved: None,
                        additional: None,
                    })
                }
                RelayAsk::Bind { .. } => Err(RelayRefusal::QuotaReached),
                RelayAsk::Redeem { .. } => Err(RelayRefusal::InsufficientCapacity),
            };
            let _ = self.server.relay_ready(self.now, req.id, result);
        }
    }

    /// The next server message to the client: delivered, corrupted, lost or replayed.
    fn down(&mut self, input: &mut Input) {
        let msg = match input.below(16) {
            0 if !self.sent_down.is_empty() => {
                self.sent_down[input.below(self.sent_down.len())].clone()
            }
            _ => {
                let Some(msg) = self.down.pop_front() else {
                    return;
                };
                match input.below(16) {
                    0 => return,
                    1 => corrupt(input, &msg),
                    _ => msg,
                }
            }
        };
        self.client
            .handle_input(self.now, self.client.server(), msg);
    }

    /// A response to one of the client's transactions, built from the program.
    fn forge(&mut self, input: &mut Input) {
        let (tid, method) = match self.requests.len() {
            0 => (TransactionId([1; 12]), Method::ALLOCATE),
            n => self.requests[n - 1 - input.below(n.min(8))],
        };
        let class = if input.bool() {
            Class::Error
        } else {
            Class::Success
        };
        let mut buf = BytesMut::new();
        let mut e = MessageEncoder::new(&mut buf, MessageType::new(method, class), tid);
        if class == Class::Error {
            e.add(&ErrorCode::new(input.pick(&CODES)));
        }
        for _ in 0..input.below(6) {
            match input.below(9) {
                0 => e.add(&Realm::new(input.pick(&["floe", "other"]))),
                1 => e.add(&Nonce::new(input.pick(&[
                    "n1",
                    "n2",
                    "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA",
                ]))),
                2 => e.add(&AlternateServer(input.pick(&ALTERNATES).parse().unwrap())),
                3 => e.add(&XorRelayedAddress(
                    input
                        .pick(&["198.51.100.1:50100", "[2001:db8::1]:50100", "0.0.0.0:0"])
                        .parse()
                        .unwrap(),
                )),
                4 => e.add(&XorMappedAddress(LOCAL.parse().unwrap())),
                5 => e.add(&Lifetime(input.u32())),
                6 => e.add(&XorPeerAddress(input.pick(&PEERS).parse().unwrap())),
                7 => e.add_raw(AttributeType(0x8002), input.bytes()), // PASSWORD-ALGORITHMS
                _ => e.add_raw(AttributeType(input.u16()), input.bytes()),
            };
        }
        if input.bool() {
            let realm = if input.bool() { "floe" } else { "other" };
            let key =
                IntegrityKey::long_term(PasswordAlgorithm::Md5, "bob", realm, "secret").unwrap();
            e.message_integrity(key.as_bytes());
        }
        if input.bool() {
            e.fingerprint();
        }
        let _ = e.finish();
        let from = if input.below(4) == 0 {
            input.pick(&ALTERNATES).parse().unwrap()
        } else {
            self.client.server()
        };
        self.client.handle_input(self.now, from, buf.freeze());
    }

    /// A peer sends to one of the relays; what the server makes of it goes down.
    fn peer(&mut self, input: &mut Input) {
        let mut relays: Vec<SocketAddr> = self.bound.iter().copied().collect();
        relays.sort();
        if relays.is_empty() {
            return;
        }
        let relay = relays[input.below(relays.len())];
        let payload = input.bytes();
        let mut buf = vec![0u8; PEER_HEADROOM + payload.len() + 3];
        buf[PEER_HEADROOM..PEER_HEADROOM + payload.len()].copy_from_slice(payload);
        let peer = input.pick(&PEERS).parse().unwrap();
        match self
            .server
            .handle_peer(self.now, relay, peer, &mut buf, payload.len())
        {
            PeerOutput::Drop => {}
            PeerOutput::ChannelData { len, .. } => {
                self.down.push_back(Bytes::copy_from_slice(&buf[..len]))
            }
            PeerOutput::DataIndication { message, .. } => self.down.push_back(message),
        }
    }

    /// Moves what the two cores sent into flight, checking the client's.
    fn collect(&mut self) {
        let mut n = 0;
        while let Some(t) = self.client.poll_transmit() {
            n += 1;
            assert!(n < 1000, "the client sends without end");
            assert_eq!(t.source, self.client.config().local);
            assert_eq!(t.destination, self.client.server());
            assert_eq!(t.transport, self.ft.transport);
            match t.payload.first() {
                Some(0..=3) => {
                    let m = Message::decode(t.payload.clone()).expect("the client's STUN decodes");
                    if m.class() == Class::Request {
                        assert!(m.has_fingerprint());
                        self.requests.push((m.transaction_id(), m.method()));
                    }
                }
                _ => {
                    let (ch, _) =
                        ChannelData::decode_slice(&t.payload).expect("ChannelData decodes");
                    assert!(
                        (0x4000..=0x4FFF).contains(&ch.get()),
                        "RFC 8656 §12: the client's channels"
                    );
                    if self.ft.transport.is_reliable() {
                        assert_eq!(t.payload.len() % 4, 0, "padded over TCP");
                    }
                }
            }
            self.up.push_back(t.payload);
        }
        while let Some(e) = self.client.poll_event() {
            match e {
                ClientEvent::Allocated { .. } => self.reached.allocations += 1,
                ClientEvent::PermissionCreated { .. } => self.reached.permissions += 1,
                ClientEvent::ChannelBound { .. } => self.reached.channels += 1,
                ClientEvent::Data { .. } => self.reached.data += 1,
                _ => {}
            }
        }
        while let Some(t) = self.server.poll_transmit() {
            self.sent_down.push(t.payload.clone());
            self.down.push_back(t.payload);
        }
        while self.server.poll_event().is_some() {}
        if self.client.state() == ClientState::Allocated {
            assert!(!self.client.relayed_addresses().is_empty());
        }
    }
}

/// `msg` with one byte changed.
fn corrupt(input: &mut Input, msg: &Bytes) -> Bytes {
    let mut m = msg.to_vec();
    if !m.is_empty() {
        let at = usize::from(input.u16()) % m.len();
        m[at] ^= input.u8() | 1;
    }
    Bytes::from(m)
}
