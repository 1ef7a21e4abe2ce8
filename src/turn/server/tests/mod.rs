//! The server core with a fake clock: every test drives `Server` directly, with a fake
//! driver in the place of the actors.

mod allocate;
mod external;
mod fuzz;
mod limits;
mod operator;
mod reconfigure;
mod requests;

use std::collections::{HashMap, HashSet};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::stun::attribute::*;
use crate::stun::credentials::{userhash, IntegrityKey, SecurityFeatures};
use crate::stun::PasswordAlgorithm as Algorithm;
use crate::stun::{MessageEncoder, TransactionId};
use crate::transmit::Transport;
use crate::turn::{ChannelData, ChannelNumber};
use std::net::IpAddr;

const USER: &str = "bob";
const PASS: &str = "secret";

/// The driver's part, as the actors do it: quotas, bound ports, sockets parked for a
/// token (shared by every thread of a server, so a test can hand them to another core).
#[derive(Default)]
struct FakeDriver {
    /// Ports bound for relays.
    bound: HashSet<SocketAddr>,
    /// Ports the OS refuses (another process has them).
    taken: HashSet<SocketAddr>,
    /// Ports parked for a reservation token.
    parked: HashMap<[u8; 8], SocketAddr>,
    user_quota: u32,
    total_quota: u32,
    per_user: HashMap<String, u32>,
    total: u32,
    users: HashMap<AllocationId, String>,
}

impl FakeDriver {
    fn is_parked(&self, addr: SocketAddr) -> bool {
        self.parked.values().any(|a| *a == addr)
    }

    fn in_use(&self, addr: SocketAddr) -> bool {
        self.bound.contains(&addr) || self.is_parked(addr)
    }

    fn bind(&mut self, addr: SocketAddr) -> bool {
        !self.taken.contains(&addr) && !self.is_parked(addr) && self.bound.insert(addr)
    }

    fn bind_one(
        &mut self,
        candidates: &mut PortCandidates,
        token: Option<[u8; 8]>,
    ) -> Option<(SocketAddr, Option<SocketAddr>)> {
        loop {
            let c = candidates.next_free(|a| self.in_use(a))?;
            if !self.bind(c.relay) {
                continue;
            }
            match (c.reserved, token) {
                (Some(next), Some(token)) => {
                    if self.taken.contains(&next) || self.in_use(next) {
                        self.bound.remove(&c.relay);
                        continue;
                    }
                    self.parked.insert(token, next);
                    return Some((c.relay, Some(next)));
                }
                _ => return Some((c.relay, None)),
            }
        }
    }

    fn fulfil(&mut self, req: RelayRequest) -> Result<RelayGrant, RelayRefusal> {
        let n = self.per_user.get(&req.username).copied().unwrap_or(0);
        if self.user_quota > 0 && n >= self.user_quota {
            return Err(RelayRefusal::QuotaReached);
        }
        if self.total_quota > 0 && self.total >= self.total_quota {
            return Err(RelayRefusal::ServerFull);
        }
        let grant = match req.relays {
            RelayAsk::Redeem { token } => match self.parked.remove(&token) {
                Some(addr) => {
                    self.bound.insert(addr);
                    Ok(RelayGrant {
                        relayed: addr,
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
            } => match self.bind_one(&mut primary, reservation) {
                Some((relayed, reserved)) => {
                    let additional = additional
                        .and_then(|mut c| self.bind_one(&mut c, None))
                        .map(|(a, _)| a);
                    Ok(RelayGrant {
                        relayed,
                        reserved,
                        additional,
                    })
                }
                None => Err(RelayRefusal::PortsExhausted),
            },
        };
        if grant.is_ok() {
            *self.per_user.entry(req.username).or_default() += 1;
            self.total += 1;
        }
        grant
    }

    /// What the actors do with the core's events.
    fn on_event(&mut self, e: &ServerEvent) {
        match e {
            ServerEvent::AllocationCreated { id, username, .. } => {
                self.users.insert(*id, username.clone());
            }
            ServerEvent::AllocationDeleted { id, .. }
            | ServerEvent::AllocationExpired { id, .. } => {
                if let Some(u) = self.users.remove(id) {
                    *self.per_user.get_mut(&u).unwrap() -= 1;
                    self.total -= 1;
                }
            }
            ServerEvent::RelayReleased(addr) => {
                self.bound.remove(addr);
            }
            ServerEvent::ReservationExpired { token, .. } => {
                self.parked.remove(token);
            }
            _ => {}
        }
    }
}

/// One server core driven by scripted client requests, with its fake driver and a fake
/// clock.
struct ScriptedClient {
    server: Server,
    driver: FakeDriver,
    now: Instant,
    ft: FiveTuple,
    nonce: String,
    tid: u32,
    /// The credentials `build` signs with (USER and PASS unless a test changes them).
    username: String,
    password: String,
}

fn config(t0: Instant) -> ServerConfig {
    let mut c = ServerConfig::new("198.51.100.1".parse().unwrap(), t0, 1_700_000_000);
    c.nonce_secret = [5; 32];
    c.credentials.users.insert(USER, PASS);
    c.password_algorithms = false;
    // Off here: these tests send many unauthenticated requests from one client;
    // `limits` turns it on.
    c.unauth_rate = 0;
    c.policy.add_own("198.51.100.1:3478".parse().unwrap());
    // TEST-NET-1 (denied by default) stands in for the public Internet's peers.
    c.policy.allow("192.0.2.0/24".parse().unwrap());
    c
}

/// CHANNEL-NUMBER with any 16-bit value, in range or not (the typed attribute only holds
/// valid numbers).
fn channel_number(n: u16) -> Attribute {
    let [hi, lo] = n.to_be_bytes();
    Attribute::Unknown {
        typ: ChannelNumber::TYPE,
        value: Bytes::copy_from_slice(&[hi, lo, 0, 0]),
    }
}

fn five_tuple(client: &str) -> FiveTuple {
    FiveTuple {
        client: client.parse().unwrap(),
        server: "198.51.100.1:3478".parse().unwrap(),
        transport: Transport::Udp,
    }
}

impl ScriptedClient {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut ServerConfig)) -> Self {
        let now = Instant::now();
        let mut c = config(now);
        f(&mut c);
        ScriptedClient {
            server: Server::new(c, StdRng::seed_from_u64(7)),
            driver: FakeDriver::default(),
            now,
            ft: five_tuple("203.0.113.9:40000"),
            nonce: String::new(),
            tid: 0,
            username: USER.to_owned(),
            password: PASS.to_owned(),
        }
    }

    fn key(&self) -> IntegrityKey {
        IntegrityKey::long_term(Algorithm::Md5, &self.username, "floe", &self.password).unwrap()
    }

    /// Builds a request; `auth` signs it with USERNAME/REALM/NONCE and MD5 integrity.
    fn build(&mut self, method: Method, auth: bool, attrs: &[Attribute]) -> Bytes {
        self.tid += 1;
        let mut buf = BytesMut::new();
        let mut e = MessageEncoder::new(&mut buf, method.request(), tid(self.tid));
        for a in attrs {
            e.add_attribute(a);
        }
        if auth {
            e.add(&Username::new(self.username.clone()))
                .add(&Realm::new("floe"))
                .add(&Nonce::new(self.nonce.clone()))
                .message_integrity(self.key().as_bytes());
        }
        e.fingerprint();
        e.finish().unwrap();
        buf.freeze()
    }

    fn send(&mut self, data: &[u8]) -> Option<Message> {
        let ft = self.ft;
        let out = self.server.handle_client(self.now, &ft, data);
        assert_eq!(out, ClientOutput::None);
        self.drive();
        let t = self.server.poll_transmit()?;
        assert_eq!((t.source, t.destination), (ft.server, ft.client));
        assert!(self.server.poll_transmit().is_none());
        let m = Message::decode(t.payload).unwrap();
        if let Some(Ok(n)) = m.get::<Nonce>() {
            self.nonce = n.as_str().to_owned();
        }
        Some(m)
    }

    fn request(&mut self, method: Method, auth: bool, attrs: &[Attribute]) -> Message {
        let data = self.build(method, auth, attrs);
        self.send(&data).expect("a response")
    }

    fn code(m: &Message) -> Option<u16> {
        m.get::<ErrorCode>().map(|e| e.unwrap().code)
    }

    /// 401 then an authenticated Allocate; returns the relayed address.
    fn allocate(&mut self) -> SocketAddr {
        let r = self.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
        assert_eq!(Self::code(&r), Some(401));
        let r = self.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
        assert_eq!(r.class(), Class::Success, "{:?}", Self::code(&r));
        r.verify_integrity(self.key().as_bytes()).unwrap();
        r.get::<XorRelayedAddress>().unwrap().unwrap().0
    }

    /// Answers the core's relay requests, as the actors do within the same pass.
    fn drive(&mut self) {
        while let Some(req) = self.server.poll_relay_request() {
            let id = req.id;
            let result = self.driver.fulfil(req);
            if let (None, Ok(g)) = (self.server.relay_ready(self.now, id, result), result) {
                // No allocation came of it: close what was bound.
                self.driver.bound.remove(&g.relayed);
            }
        }
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        let events: Vec<ServerEvent> = std::iter::from_fn(|| self.server.poll_event()).collect();
        for e in &events {
            self.driver.on_event(e);
        }
        events
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now);
    }

    fn peer_data(&mut self, relay: SocketAddr, peer: &str, payload: &[u8]) -> PeerOutput {
        let mut buf = vec![0u8; PEER_HEADROOM + payload.len() + 3];
        buf[PEER_HEADROOM..PEER_HEADROOM + payload.len()].copy_from_slice(payload);
        let out = self.server.handle_peer(
            self.now,
            relay,
            peer.parse().unwrap(),
            &mut buf,
            payload.len(),
        );
        if let PeerOutput::ChannelData { len, .. } = out {
            let (ch, data) = ChannelData::decode_slice(&buf[..len]).unwrap();
            assert_eq!(data, payload);
            assert!(ch.get() >= 0x4000);
        }
        out
    }
}

fn tid(n: u32) -> TransactionId {
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(&n.to_be_bytes());
    TransactionId(t)
}

fn peer_attr(s: &str) -> Attribute {
    XorPeerAddress(s.parse().unwrap()).into()
}
