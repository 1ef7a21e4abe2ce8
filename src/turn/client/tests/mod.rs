//! Fake-clock tests of the client core against a tiny in-test TURN server that answers as
//! coturn does, or misbehaves on purpose. The client↔server tests through the public API
//! only, against floe's own server core, are in `tests/core_pair.rs`.

mod allocate;
mod bad_servers;
mod data;
mod fuzz;
mod lifetimes;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::stun::attribute::*;
use crate::stun::attribute::{
    ErrorCode, MessageIntegritySha256, Nonce, PasswordAlgorithms, Realm, Userhash, Username,
};
use crate::stun::credentials::{userhash, SecurityFeatures};
use crate::stun::{Attribute, AttributeType, IntegrityKey, MessageType, PasswordAlgorithm};
use crate::stun::{Class, Message, MessageEncoder, Method, TransactionId};
use crate::transmit::{Transmit, Transport};
use crate::turn::ChannelNumber;

const USER: &str = "alice";
const PASS: &str = "secret";
const REALM: &str = "floe.test";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A TURN server that answers like coturn: 401 with REALM and NONCE, integrity-checked
/// requests, signed responses.
struct FakeServer {
    addr: SocketAddr,
    nonce: String,
    nonce_counter: u32,
    relayed: Vec<SocketAddr>,
    mapped: SocketAddr,
    max_lifetime: u32,
    /// PASSWORD-ALGORITHMS to offer (RFC 8489 §9.2); the nonce cookie announces them.
    algorithms: Option<Vec<u16>>,
    /// Announce username anonymity (USERHASH) in the nonce cookie.
    anonymity: bool,
    /// Answer this many authenticated requests with 438 and a new nonce.
    stale: u32,
    /// Answer Allocate with 300 Try Alternate to this address.
    redirect: Option<SocketAddr>,
    /// Answer nothing.
    silent: bool,
    /// Answer every authenticated request with this error.
    fail_with: Option<(Method, u16)>,
    /// Whether responses carry MESSAGE-INTEGRITY (coturn signs them).
    sign: bool,
    /// Decoded requests, in order.
    requests: Vec<Message>,
    /// Indications (Send) and ChannelData received.
    data: Vec<Bytes>,
}

impl FakeServer {
    fn new(addr: SocketAddr) -> Self {
        FakeServer {
            addr,
            nonce: "nonce-0".into(),
            nonce_counter: 0,
            relayed: vec![self::addr("198.51.100.7:50000")],
            mapped: self::addr("203.0.113.9:61000"),
            max_lifetime: 3600,
            algorithms: None,
            anonymity: false,
            stale: 0,
            redirect: None,
            silent: false,
            fail_with: None,
            sign: true,
            requests: Vec::new(),
            data: Vec::new(),
        }
    }

    fn new_nonce(&mut self) {
        self.nonce_counter += 1;
        let prefix = if self.algorithms.is_some() || self.anonymity {
            SecurityFeatures {
                password_algorithms: self.algorithms.is_some(),
                username_anonymity: self.anonymity,
            }
            .nonce_prefix()
        } else {
            String::new()
        };
        self.nonce = format!("{prefix}nonce-{}", self.nonce_counter);
    }

    fn requests_of(&self, method: Method) -> Vec<&Message> {
        self.requests
            .iter()
            .filter(|m| m.method() == method)
            .collect()
    }

    fn error(&self, req: &Message, code: u16, key: Option<&(IntegrityKey, bool)>) -> Bytes {
        let mut buf = BytesMut::new();
        let mut enc = MessageEncoder::new(&mut buf, req.method().error(), req.transaction_id());
        enc.add(&ErrorCode::new(code));
        if matches!(code, 401 | 438) {
            enc.add(&Realm::new(REALM))
                .add(&Nonce::new(self.nonce.as_str()));
            if let Some(list) = &self.algorithms {
                let entries = list
                    .iter()
                    .map(
                        |&algorithm| crate::stun::attribute::PasswordAlgorithmEntry {
                            algorithm,
                            params: Bytes::new(),
                        },
                    )
                    .collect();
                enc.add(&PasswordAlgorithms(entries));
            }
        }
        if code == 300 {
            enc.add(&AlternateServer(self.redirect.unwrap()));
        }
        if let Some((key, sha256)) = key.filter(|_| self.sign) {
            sign(&mut enc, key, *sha256);
        }
        enc.fingerprint();
        enc.finish().unwrap();
        buf.freeze()
    }

    fn handle(&mut self, payload: Bytes) -> Option<Bytes> {
        if payload.first().is_some_and(|b| (0x40..0x50).contains(b)) {
            self.data.push(payload);
            return None;
        }
        let req = Message::decode(payload).expect("the client sent a malformed message");
        if req.class() == Class::Indication {
            self.data.push(req.as_bytes().clone());
            return None;
        }
        assert_eq!(req.class(), Class::Request);
        self.requests.push(req.clone());
        if self.silent {
            return None;
        }
        if req.method() == Method::BINDING {
            return Some(success(&req, |enc| {
                enc.add(&XorMappedAddress(self.mapped));
            }));
        }
        if req.method() == Method::ALLOCATE && self.redirect.is_some() {
            return Some(self.error(&req, 300, None));
        }
        // RFC 8489 §9.2.4: the long-term credential mechanism.
        let has_mac = req.has_integrity() || req.has_integrity_sha256();
        let nonce = req.get::<Nonce>().and_then(Result::ok);
        if !has_mac || nonce.is_none() || !req.contains(Realm::TYPE) {
            return Some(self.error(&req, 401, None));
        }
        let algorithm = match req.get::<PasswordAlgorithm>() {
            Some(Ok(a)) => a,
            _ => PasswordAlgorithm::Md5,
        };
        let user_ok = match (req.get::<Username>(), req.get::<Userhash>()) {
            (Some(Ok(u)), None) => u.as_str() == USER && !self.anonymity,
            (None, Some(Ok(h))) => h.0 == userhash(USER, REALM).unwrap(),
            _ => false,
        };
        let key = IntegrityKey::long_term(algorithm, USER, REALM, PASS).unwrap();
        let mac_ok = if req.has_integrity_sha256() {
            req.verify_integrity_sha256(key.as_bytes()).is_ok()
        } else {
            req.verify_integrity(key.as_bytes()).is_ok()
        };
        if !user_ok || !mac_ok {
            return Some(self.error(&req, 401, None));
        }
        let signing = (key, req.has_integrity_sha256());
        if nonce.unwrap().as_str() != self.nonce {
            return Some(self.error(&req, 438, None));
        }
        if self.stale > 0 {
            self.stale -= 1;
            self.new_nonce();
            return Some(self.error(&req, 438, None));
        }
        if let Some((method, code)) = self.fail_with {
            if method == req.method() {
                return Some(self.error(&req, code, Some(&signing)));
            }
        }
        let lifetime = req
            .get::<Lifetime>()
            .and_then(Result::ok)
            .map_or(600, |l| l.0.min(self.max_lifetime));
        let sign_it = self.sign;
        let respond = |f: &dyn Fn(&mut MessageEncoder<'_>)| {
            let mut buf = BytesMut::new();
            let mut enc =
                MessageEncoder::new(&mut buf, req.method().success(), req.transaction_id());
            f(&mut enc);
            if sign_it {
                sign(&mut enc, &signing.0, signing.1);
            }
            enc.fingerprint();
            enc.finish().unwrap();
            buf.freeze()
        };
        Some(match req.method() {
            Method::ALLOCATE => respond(&|enc| {
                for r in &self.relayed {
                    enc.add(&XorRelayedAddress(*r));
                }
                enc.add(&XorMappedAddress(self.mapped))
                    .add(&Lifetime(lifetime));
            }),
            Method::REFRESH => respond(&|enc| {
                enc.add(&Lifetime(lifetime));
            }),
            _ => respond(&|_| {}),
        })
    }
}

fn sign(enc: &mut MessageEncoder<'_>, key: &IntegrityKey, sha256: bool) {
    if sha256 {
        enc.message_integrity_sha256(key.as_bytes(), 32);
    } else {
        enc.message_integrity(key.as_bytes());
    }
}

/// An unsigned success response to `req`.
fn success(req: &Message, f: impl FnOnce(&mut MessageEncoder<'_>)) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, req.method().success(), req.transaction_id());
    f(&mut enc);
    enc.finish().unwrap();
    buf.freeze()
}

/// One client core against scripted server answers, on a fake clock.
struct ScriptedServer {
    t0: Instant,
    now: Instant,
    client: Client,
    servers: Vec<FakeServer>,
    /// Every transmit, with its time since t0.
    sent: Vec<(Duration, Transmit)>,
    /// Every event, with its time since t0.
    events: Vec<(Duration, ClientEvent)>,
}

const SERVER: &str = "192.0.2.1:3478";
const LOCAL: &str = "10.0.0.2:40000";

impl ScriptedServer {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut ClientConfig)) -> Self {
        let mut config = ClientConfig::new(addr(SERVER), addr(LOCAL), USER, PASS);
        config.software = Some("floe test".into());
        f(&mut config);
        let t0 = Instant::now();
        ScriptedServer {
            t0,
            now: t0,
            client: Client::new(config, StdRng::seed_from_u64(7)),
            servers: vec![FakeServer::new(addr(SERVER))],
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn server(&mut self) -> &mut FakeServer {
        &mut self.servers[0]
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Carries the client's transmits to the servers and their answers back, until quiet.
    fn pump(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            assert_eq!(t.source, addr(LOCAL));
            self.sent.push((self.elapsed(), t.clone()));
            let Some(server) = self.servers.iter_mut().find(|s| s.addr == t.destination) else {
                continue;
            };
            let from = server.addr;
            if let Some(answer) = server.handle(t.payload) {
                self.client.handle_input(self.now, from, answer);
            }
        }
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.events.push((self.elapsed(), e));
        }
    }

    /// Moves the fake clock forward by `d`, firing every timer on its exact instant.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        self.pump();
        for _ in 0..100_000 {
            match self.client.poll_timeout() {
                Some(t) if t <= target => {
                    assert!(t >= self.now, "a deadline in the past");
                    self.now = t;
                    self.client.handle_timeout(t);
                    self.pump();
                }
                _ => {
                    self.now = target;
                    self.pump();
                    return;
                }
            }
        }
        panic!("timers do not progress");
    }

    fn input(&mut self, data: Bytes) {
        let from = self.servers[0].addr;
        self.client.handle_input(self.now, from, data);
        self.pump();
    }

    fn take_events(&mut self) -> Vec<ClientEvent> {
        self.drain_events();
        std::mem::take(&mut self.events)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    /// Times (since t0) at which the client sent requests of `method`.
    fn request_times(&self, method: Method) -> Vec<Duration> {
        self.sent
            .iter()
            .filter(|(_, t)| {
                Message::decode(t.payload.clone())
                    .is_ok_and(|m| m.method() == method && m.class() == Class::Request)
            })
            .map(|(at, _)| *at)
            .collect()
    }

    /// Allocates and checks it worked; clears events and the record of transmits.
    fn allocated() -> Self {
        let mut h = ScriptedServer::new();
        h.client.allocate(h.now).unwrap();
        h.pump();
        assert_eq!(h.client.state(), ClientState::Allocated);
        h.take_events();
        h.sent.clear();
        h
    }

    /// The last request the server received.
    fn last_request(&self) -> &Message {
        self.servers[0].requests.last().unwrap()
    }

    /// The payloads of the client's transmits that are not requests (data).
    fn data_sent(&self) -> Vec<Bytes> {
        self.servers[0].data.clone()
    }
}

fn has(msg: &Message, typ: AttributeType) -> bool {
    msg.contains(typ)
}
