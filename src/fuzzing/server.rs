//! The TURN server core's whole input → output step, over UDP or over a TCP stream cut
//! into frames by [`StreamFramer`]: clients on several 5-tuples, peers, a driver that
//! binds relays, and time.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Input, Reached};
use crate::framing::StreamFramer;
use crate::stun::attribute::{Nonce, XorPeerAddress, XorRelayedAddress};
use crate::stun::credentials::IntegrityKey;
use crate::stun::{AttributeType, Class, Message, MessageEncoder, MessageType, Method};
use crate::stun::{PasswordAlgorithm, TransactionId};
use crate::transmit::Transport;
use crate::turn::server::{
    ClientOutput, FiveTuple, PeerOutput, RelayAsk, RelayGrant, RelayRefusal, RelayRequest, Server,
    ServerConfig, ServerEvent, PEER_HEADROOM,
};
use crate::turn::ChannelData;

const USER: &str = "bob";
const PASS: &str = "secret";
const REALM: &str = "floe";
const SERVER: &str = "198.51.100.1:3478";
const CLIENTS: [&str; 4] = [
    "203.0.113.9:40000",
    "203.0.113.9:40001",
    "203.0.113.10:5000",
    "[2001:db8::9]:40000",
];
/// Peers: allowed ones (TEST-NET-1 stands in for the Internet), and ones the policy
/// denies (private, loopback, the server itself, IPv4-mapped loopback).
const PEERS: [&str; 8] = [
    "192.0.2.1:9",
    "192.0.2.1:10",
    "192.0.2.77:5000",
    "[2001:db8:1::1]:9",
    "10.0.0.1:9",
    "127.0.0.1:9",
    "198.51.100.1:9",
    "[::ffff:127.0.0.1]:9",
];
const CHANNELS: [u16; 7] = [0x4000, 0x4001, 0x7FFE, 0x3FFF, 0x7FFF, 0x8000, 0xFFFF];

// Attribute types written raw, so their values can be anything.
const USERNAME: u16 = 0x0006;
const REALM_T: u16 = 0x0014;
const NONCE_T: u16 = 0x0015;
const CHANNEL_NUMBER: u16 = 0x000C;
const LIFETIME: u16 = 0x000D;
const DATA: u16 = 0x0013;
const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
const EVEN_PORT: u16 = 0x0018;
const REQUESTED_TRANSPORT: u16 = 0x0019;
const DONT_FRAGMENT: u16 = 0x001A;
const RESERVATION_TOKEN: u16 = 0x0022;
const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;

/// Runs the server core over UDP on the program `data`.
pub fn turn_server_udp(data: &[u8]) -> Reached {
    let mut input = Input::new(data);
    ServerRun::new(Transport::Udp, &mut input).run(&mut input)
}

/// Runs the server core over TCP, each client's messages a byte stream cut at
/// arbitrary points and framed by [`StreamFramer`], on the program `data`.
pub fn turn_server_tcp(data: &[u8]) -> Reached {
    let mut input = Input::new(data);
    ServerRun::new(Transport::Tcp, &mut input).run(&mut input)
}

/// One client 5-tuple and what it learnt.
struct Client {
    ft: FiveTuple,
    nonce: String,
    /// TCP: the stream from this client, as the server's connection reads it.
    framer: StreamFramer,
}

/// The driver's part: relay ports bound, ports parked for a reservation token.
#[derive(Default)]
struct Driver {
    bound: HashSet<SocketAddr>,
    parked: HashMap<[u8; 8], SocketAddr>,
}

struct ServerRun {
    server: Server,
    driver: Driver,
    clients: Vec<Client>,
    now: Instant,
    tid: u32,
    key: IntegrityKey,
    /// Allocations alive by the events, and their relays.
    live: HashMap<crate::turn::server::AllocationId, Vec<SocketAddr>>,
    reached: Reached,
}

impl ServerRun {
    fn new(transport: Transport, input: &mut Input) -> Self {
        let now = Instant::now();
        let mut c = ServerConfig::new(
            SERVER.parse::<SocketAddr>().unwrap().ip(),
            now,
            1_700_000_000,
        );
        c.nonce_secret = [5; 32];
        c.credentials.users.insert(USER, PASS);
        c.password_algorithms = false;
        c.relay_ipv6 = Some("2001:db8::1".parse().unwrap());
        // Few ports, so that exhaustion is reachable; some ranges at the top edge.
        (c.min_port, c.max_port) = input.pick(&[
            (50000, 50009),
            (50000, 50009),
            (50001, 50010),
            (65530, 65535),
            (65535, 65535),
            (65534, 65535),
            (1, 2),
            (50009, 50000),
        ]);
        c.max_permissions = 4;
        c.max_channels = 4;
        c.policy.add_own(SERVER.parse().unwrap());
        c.policy.allow("192.0.2.0/24".parse().unwrap());
        c.policy.allow("2001:db8:1::/48".parse().unwrap());
        let server_addr: SocketAddr = SERVER.parse().unwrap();
        let clients = CLIENTS
            .iter()
            .map(|a| {
                let client: SocketAddr = a.parse().unwrap();
                let server = if client.is_ipv6() {
                    "[2001:db8::1]:3478".parse().unwrap()
                } else {
                    server_addr
                };
                Client {
                    ft: FiveTuple {
                        client,
                        server,
                        transport,
                    },
                    nonce: String::new(),
                    framer: StreamFramer::new(),
                }
            })
            .collect();
        ServerRun {
            server: Server::new(c, StdRng::seed_from_u64(7)),
            driver: Driver::default(),
            clients,
            now,
            tid: 0,
            key: IntegrityKey::long_term(PasswordAlgorithm::Md5, USER, REALM, PASS).unwrap(),
            live: HashMap::new(),
            reached: Reached::default(),
        }
    }

    fn run(mut self, input: &mut Input) -> Reached {
        while !input.is_empty() {
            // Mostly the first client, so that its allocation sees many requests.
            let k = match input.below(8) {
                i if i < self.clients.len() => i,
                _ => 0,
            };
            match input.below(14) {
                0 => {
                    let raw = input.bytes().to_vec();
                    self.send(input, k, &raw);
                }
                1 => {
                    let m = self.request(input, k, Method::ALLOCATE, false);
                    self.send(input, k, &m);
                }
                2 | 3 => {
                    let m = self.request(input, k, Method::ALLOCATE, true);
                    self.send(input, k, &m);
                }
                4 => {
                    let m = self.request(input, k, Method::REFRESH, true);
                    self.send(input, k, &m);
                }
                5 => {
                    let m = self.request(input, k, Method::CREATE_PERMISSION, true);
                    self.send(input, k, &m);
                }
                6 => {
                    let m = self.request(input, k, Method::CHANNEL_BIND, true);
                    self.send(input, k, &m);
                }
                7 => {
                    let m = self.send_indication(input);
                    self.send(input, k, &m);
                }
                8 => {
                    let channel = CHANNELS[input.below(8) % CHANNELS.len()];
                    let data = input.bytes();
                    // Written by hand: any channel number, in range or not.
                    let mut m = channel.to_be_bytes().to_vec();
                    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    m.extend_from_slice(data);
                    if self.clients[k].ft.transport.is_reliable() {
                        m.resize(m.len() + ChannelData::padding_len(m.len()), 0);
                    }
                    self.send(input, k, &m);
                }
                9 => self.peer(input),
                10 => {
                    // Mostly short steps; now and then past every lifetime.
                    let step = match input.below(8) {
                        0..=4 => Duration::from_millis(u64::from(input.u16())),
                        5 | 6 => Duration::from_secs(u64::from(input.u8())),
                        _ => Duration::from_secs(u64::from(input.u16())),
                    };
                    self.advance(step);
                }
                11 => {
                    // A valid request, then a byte changed.
                    let method = input.pick(&[
                        Method::ALLOCATE,
                        Method::REFRESH,
                        Method::CREATE_PERMISSION,
                        Method::CHANNEL_BIND,
                    ]);
                    let mut m = self.request(input, k, method, true).to_vec();
                    let at = usize::from(input.u16()) % m.len();
                    m[at] ^= input.u8() | 1;
                    self.send(input, k, &m);
                }
                12 => {
                    // Any method and class, authenticated.
                    let method = Method(input.u16() & 0x0FFF);
                    let m = self.request(input, k, method, true);
                    self.send(input, k, &m);
                }
                _ => {
                    let auth = input.bool();
                    let m = self.request(input, k, Method::BINDING, auth);
                    self.send(input, k, &m);
                }
            }
            self.check();
        }
        // Whatever happened, deleting everything releases every relay.
        self.server.delete_all();
        self.check();
        assert_eq!(self.server.allocation_count(), 0);
        assert!(self.live.is_empty(), "allocations without a deletion event");
        assert!(
            self.driver.bound.is_empty(),
            "relays never released: {:?}",
            self.driver.bound
        );
        self.reached
    }

    /// A request from client `k` with attributes the program chooses, signed with the
    /// right credentials when `auth`.
    fn request(&mut self, input: &mut Input, k: usize, method: Method, auth: bool) -> Bytes {
        self.tid += 1;
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&self.tid.to_be_bytes());
        let tid = TransactionId(t);
        let class = if method == Method::BINDING || input.below(8) != 0 {
            Class::Request
        } else {
            input.pick(&[Class::Indication, Class::Success, Class::Error])
        };
        let mut buf = BytesMut::new();
        let mut e = MessageEncoder::new(&mut buf, MessageType::new(method, class), tid);
        // The method's usual attributes, unless the program leaves them out.
        if input.below(16) != 0 {
            match method {
                Method::ALLOCATE => {
                    e.add_raw(AttributeType(REQUESTED_TRANSPORT), &[17, 0, 0, 0]);
                }
                Method::REFRESH => {
                    let lifetime = match input.below(4) {
                        0 => 0,
                        1 => input.u32(),
                        _ => 600,
                    };
                    e.add_raw(AttributeType(LIFETIME), &lifetime.to_be_bytes());
                }
                Method::CREATE_PERMISSION => {
                    for _ in 0..=input.below(2) {
                        e.add(&XorPeerAddress(self.peer_addr(input)));
                    }
                }
                Method::CHANNEL_BIND => {
                    e.add(&XorPeerAddress(self.peer_addr(input)));
                    let [a, b] = input.pick(&CHANNELS[..4]).to_be_bytes();
                    e.add_raw(AttributeType(CHANNEL_NUMBER), &[a, b, 0, 0]);
                }
                _ => {}
            }
        }
        // Now and then more, any of them.
        let extra = if input.below(4) == 0 {
            input.below(4)
        } else {
            0
        };
        for _ in 0..extra {
            match input.below(12) {
                0 => e.add_raw(
                    AttributeType(REQUESTED_TRANSPORT),
                    &[input.pick(&[17, 6, 0]), 0, 0, 0],
                ),
                1 => e.add_raw(AttributeType(LIFETIME), &input.u32().to_be_bytes()),
                2 => e.add_raw(AttributeType(EVEN_PORT), &[input.pick(&[0x80, 0])]),
                3 => e.add_raw(AttributeType(RESERVATION_TOKEN), &self.token(input)),
                4 => e.add_raw(AttributeType(DONT_FRAGMENT), &[]),
                5 => e.add_raw(
                    AttributeType(REQUESTED_ADDRESS_FAMILY),
                    &[input.pick(&[1, 2, 3]), 0, 0, 0],
                ),
                6 => e.add_raw(
                    AttributeType(ADDITIONAL_ADDRESS_FAMILY),
                    &[input.pick(&[2, 1]), 0, 0, 0],
                ),
                7 | 8 => e.add(&XorPeerAddress(input.pick(&PEERS).parse().unwrap())),
                9 => e.add_raw(AttributeType(CHANNEL_NUMBER), &{
                    let [a, b] = input.pick(&CHANNELS).to_be_bytes();
                    [a, b, 0, 0]
                }),
                10 => e.add_raw(AttributeType(DATA), input.bytes()),
                _ => e.add_raw(AttributeType(input.u16()), input.bytes()),
            };
        }
        if auth {
            e.add_raw(AttributeType(USERNAME), USER.as_bytes())
                .add_raw(AttributeType(REALM_T), REALM.as_bytes())
                .add_raw(AttributeType(NONCE_T), self.clients[k].nonce.as_bytes())
                .message_integrity(self.key.as_bytes());
        }
        if input.below(4) != 0 {
            e.fingerprint();
        }
        let _ = e.finish(); // too large: sent as far as it got
        buf.freeze()
    }

    /// A peer: mostly one the policy allows.
    fn peer_addr(&self, input: &mut Input) -> SocketAddr {
        let i = input.below(16);
        PEERS[if i < PEERS.len() { i } else { i % 3 }]
            .parse()
            .unwrap()
    }

    /// A token the driver parked, or any.
    fn token(&self, input: &mut Input) -> [u8; 8] {
        let parked: Vec<[u8; 8]> = self.driver.parked.keys().copied().collect();
        if !parked.is_empty() && input.bool() {
            parked[input.below(parked.len())]
        } else {
            input.u32().to_be_bytes().repeat(2).try_into().unwrap()
        }
    }

    fn send_indication(&mut self, input: &mut Input) -> Bytes {
        self.tid += 1;
        let mut buf = BytesMut::new();
        let mut e =
            MessageEncoder::new(&mut buf, Method::SEND.indication(), TransactionId([9; 12]));
        e.add(&XorPeerAddress(self.peer_addr(input)));
        if input.below(4) != 0 {
            e.add_raw(AttributeType(DATA), input.bytes());
        }
        if input.bool() {
            e.add_raw(AttributeType(DONT_FRAGMENT), &[]);
        }
        let _ = e.finish();
        buf.freeze()
    }

    /// Delivers `bytes` from client `k`: as one datagram over UDP; over TCP, pushed
    /// into the connection's stream in up to three pieces, each followed by the frames
    /// it completes.
    fn send(&mut self, input: &mut Input, k: usize, bytes: &[u8]) {
        let ft = self.clients[k].ft;
        if ft.transport == Transport::Udp {
            self.deliver(k, bytes);
            return;
        }
        let mut rest = bytes;
        for _ in 0..3 {
            if rest.is_empty() {
                break;
            }
            let cut = if input.bool() {
                rest.len()
            } else {
                usize::from(input.u16()) % (rest.len() + 1)
            };
            let (piece, tail) = rest.split_at(cut);
            rest = tail;
            if self.clients[k].framer.push(piece).is_err() {
                return self.close(k);
            }
            loop {
                match self.clients[k].framer.next_frame() {
                    Ok(Some(frame)) => self.deliver(k, &frame.into_bytes()),
                    Ok(None) => break,
                    Err(_) => return self.close(k),
                }
            }
        }
        if !rest.is_empty() && self.clients[k].framer.push(rest).is_err() {
            self.close(k);
        }
    }

    /// A TCP connection the framer gave up on: the driver closes it, and the
    /// allocation on it goes (RFC 8656 §3.7: a TCP allocation lives as long as its
    /// connection).
    fn close(&mut self, k: usize) {
        let ft = self.clients[k].ft;
        self.clients[k].framer = StreamFramer::new();
        if let Some(id) = self.server.allocation_of(&ft) {
            assert!(self.server.delete(id));
        }
    }

    /// One message into the server core, and its relayed data checked.
    fn deliver(&mut self, k: usize, bytes: &[u8]) {
        let ft = self.clients[k].ft;
        let now = self.now;
        let out = self.server.handle_client(now, &ft, bytes);
        let (relay, peer) = match out {
            ClientOutput::None => return self.drive(),
            ClientOutput::Relay {
                relay,
                peer,
                payload,
                ..
            } => {
                let start = payload.as_ptr() as usize - bytes.as_ptr() as usize;
                assert!(
                    start + payload.len() <= bytes.len(),
                    "payload borrowed from the input"
                );
                (relay, peer)
            }
            ClientOutput::RelayOwned { relay, peer, .. } => (relay, peer),
        };
        let id = self
            .server
            .allocation_of(&ft)
            .expect("data relayed for an allocation");
        let alloc = self.server.allocation(id).unwrap();
        assert!(
            alloc.relayed.contains(&relay),
            "relayed from the 5-tuple's own relay"
        );
        assert_eq!(
            relay.is_ipv4(),
            peer.is_ipv4(),
            "relay and peer of one family"
        );
        assert!(
            alloc.has_permission(now, peer.ip()),
            "relayed to a permitted peer"
        );
        assert!(
            self.server.config().policy.permits(peer.ip()),
            "relayed to a denied peer"
        );
        self.reached.data += 1;
        self.drive();
    }

    /// Data from a peer to one of the relays (or to an address no allocation has).
    fn peer(&mut self, input: &mut Input) {
        let mut relays: Vec<SocketAddr> = self.live.values().flatten().copied().collect();
        relays.sort();
        relays.push("198.51.100.1:50001".parse().unwrap());
        let relay = relays[input.below(relays.len())];
        let peer = self.peer_addr(input);
        let payload = input.bytes();
        let mut buf = vec![0u8; PEER_HEADROOM + payload.len() + 3];
        buf[PEER_HEADROOM..PEER_HEADROOM + payload.len()].copy_from_slice(payload);
        let out = self
            .server
            .handle_peer(self.now, relay, peer, &mut buf, payload.len());
        let client = match out {
            PeerOutput::Drop => return,
            PeerOutput::ChannelData { client, len } => {
                let (ch, data) =
                    ChannelData::decode_slice(&buf[..len]).expect("ChannelData decodes");
                assert!((0x4000..=0x7FFF).contains(&ch.get()));
                assert_eq!(data, payload);
                if client.transport.is_reliable() {
                    assert_eq!(len % 4, 0, "RFC 8656 §12.5: padded over TCP");
                }
                client
            }
            PeerOutput::DataIndication { client, message } => {
                let m = Message::decode(message).expect("a Data indication decodes");
                assert_eq!(m.typ(), Method::DATA.indication());
                assert_eq!(m.raw(AttributeType(DATA)).as_deref(), Some(payload));
                let from = m.get::<XorPeerAddress>().unwrap().unwrap().0;
                assert_eq!(
                    crate::turn::server::policy::canonical_peer(from),
                    crate::turn::server::policy::canonical_peer(peer)
                );
                client
            }
        };
        let id = self
            .server
            .allocation_by_relay(relay)
            .expect("data for an allocation");
        let alloc = self.server.allocation(id).unwrap();
        assert_eq!(alloc.five_tuple, client);
        assert!(alloc.has_permission(self.now, peer.ip()));
        self.reached.data += 1;
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now);
        if let Some(t) = self.server.poll_timeout() {
            assert!(t > self.now, "a deadline left in the past");
        }
        self.drive();
    }

    /// Answers relay requests as the actors do, in the same pass.
    fn drive(&mut self) {
        while let Some(req) = self.server.poll_relay_request() {
            let id = req.id;
            let result = self.fulfil(req);
            if let (None, Ok(g)) = (self.server.relay_ready(self.now, id, result), result) {
                // No allocation came of it: close what was bound.
                self.driver.bound.remove(&g.relayed);
                if let Some(a) = g.additional {
                    self.driver.bound.remove(&a);
                }
            }
        }
    }

    fn fulfil(&mut self, req: RelayRequest) -> Result<RelayGrant, RelayRefusal> {
        let d = &mut self.driver;
        match req.relays {
            RelayAsk::Redeem { token } => match d.parked.remove(&token) {
                Some(relayed) => {
                    d.bound.insert(relayed);
                    Ok(RelayGrant {
                        relayed,
                        reserved: None,
                        additional: None,
                    })
                }
                None => Err(RelayRefusal::InsufficientCapacity),
            },
            RelayAsk::Bind {
                mut primary,
                reservation,
                additional,
            } => {
                let in_use = |d: &Driver, a: SocketAddr| {
                    d.bound.contains(&a) || d.parked.values().any(|p| *p == a)
                };
                let c = primary
                    .next_free(|a| in_use(d, a))
                    .ok_or(RelayRefusal::PortsExhausted)?;
                let ip = primary.ip();
                assert_eq!(c.relay.ip(), ip);
                let (min, max) = (self.server.config().min_port, self.server.config().max_port);
                let max = max.max(min); // an inverted range is the single port `min`
                assert!(
                    (min..=max).contains(&c.relay.port()),
                    "relay port in the range"
                );
                d.bound.insert(c.relay);
                if let (Some(next), Some(token)) = (c.reserved, reservation) {
                    assert!(
                        (min..=max).contains(&next.port()),
                        "reserved port in the range"
                    );
                    assert_eq!(c.relay.port() % 2, 0, "EVEN-PORT");
                    d.parked.insert(token, next);
                }
                let additional = additional
                    .and_then(|mut c| c.next_free(|a| in_use(d, a)))
                    .map(|c| {
                        d.bound.insert(c.relay);
                        c.relay
                    });
                Ok(RelayGrant {
                    relayed: c.relay,
                    reserved: c.reserved,
                    additional,
                })
            }
        }
    }

    /// Responses go back where requests came from and decode; events add up.
    fn check(&mut self) {
        while let Some(t) = self.server.poll_transmit() {
            let client = self
                .clients
                .iter_mut()
                .find(|c| c.ft.client == t.destination)
                .expect("a response goes to a client");
            assert_eq!(t.source, client.ft.server);
            assert_eq!(t.transport, client.ft.transport);
            match Message::decode(t.payload.clone()) {
                Ok(m) => {
                    assert!(matches!(m.class(), Class::Success | Class::Error));
                    if let Some(Ok(n)) = m.get::<Nonce>() {
                        client.nonce = n.as_str().to_owned();
                    }
                    if m.class() == Class::Success && m.method() != Method::BINDING {
                        m.verify_integrity(self.key.as_bytes())
                            .expect("success responses are signed");
                    }
                    if m.class() == Class::Success && m.method() == Method::ALLOCATE {
                        let relayed = m.get::<XorRelayedAddress>().expect("XOR-RELAYED-ADDRESS");
                        let (min, max) =
                            (self.server.config().min_port, self.server.config().max_port);
                        let port = relayed.expect("decodes").0.port();
                        assert!(
                            (min..=max.max(min)).contains(&port),
                            "relayed port {port} in the range"
                        );
                    }
                }
                // RFC 3489 Binding: no magic cookie.
                Err(_) => assert_ne!(&t.payload[4..8], &[0x21, 0x12, 0xA4, 0x42]),
            }
        }
        while let Some(e) = self.server.poll_event() {
            match e {
                ServerEvent::AllocationCreated { id, relayed, .. } => {
                    for r in &relayed {
                        assert!(self.driver.bound.contains(r), "relay the driver bound");
                    }
                    assert!(self.live.insert(id, relayed).is_none());
                    self.reached.allocations += 1;
                }
                ServerEvent::AllocationDeleted { id, .. }
                | ServerEvent::AllocationExpired { id, .. } => {
                    assert!(self.live.remove(&id).is_some(), "an allocation that lived");
                }
                ServerEvent::RelayReleased(r) => {
                    assert!(self.driver.bound.remove(&r), "a relay that was bound");
                }
                ServerEvent::PermissionCreated { .. } => self.reached.permissions += 1,
                ServerEvent::ChannelBound { .. } => self.reached.channels += 1,
                ServerEvent::ReservationExpired { token, .. } => {
                    self.driver.parked.remove(&token);
                }
                _ => {}
            }
        }
        assert_eq!(self.server.allocation_count(), self.live.len());
        let config = self.server.config();
        for id in self.live.keys() {
            let a = self.server.allocation(*id).expect("a live allocation");
            assert!(a.permission_count(self.now) <= config.max_permissions);
            assert!(a.channel_count(self.now) <= config.max_channels);
        }
        assert!(
            self.live.len() <= self.clients.len(),
            "one allocation per 5-tuple"
        );
    }
}
