//! Fake-clock tests of the client core against a tiny in-test TURN server.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::stun::attribute::{
    ErrorCode, MessageIntegritySha256, Nonce, PasswordAlgorithms, Realm, Userhash, Username,
};
use crate::stun::credentials::{userhash, SecurityFeatures};
use crate::stun::{Attribute, AttributeType, IntegrityKey, MessageType, PasswordAlgorithm};

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

/// The client, its servers, and a fake clock.
struct Harness {
    t0: Instant,
    now: Instant,
    client: TurnClient,
    servers: Vec<FakeServer>,
    /// Every transmit, with its time since t0.
    sent: Vec<(Duration, Transmit)>,
    /// Every event, with its time since t0.
    events: Vec<(Duration, ClientEvent)>,
}

const SERVER: &str = "192.0.2.1:3478";
const LOCAL: &str = "10.0.0.2:40000";

impl Harness {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut ClientConfig)) -> Self {
        let mut config = ClientConfig::new(addr(SERVER), addr(LOCAL), USER, PASS);
        config.software = Some("floe test".into());
        f(&mut config);
        let t0 = Instant::now();
        Harness {
            t0,
            now: t0,
            client: TurnClient::new(config, StdRng::seed_from_u64(7)),
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
        let mut h = Harness::new();
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

// ---- Allocate ----------------------------------------------------------------------------

#[test]
fn allocate_answers_the_401_challenge_with_md5_credentials() {
    let mut h = Harness::new();
    h.client.allocate(h.now).unwrap();
    assert_eq!(h.client.state(), ClientState::Allocating);
    h.pump();

    let reqs = h.server().requests_of(Method::ALLOCATE);
    assert_eq!(
        reqs.len(),
        2,
        "one unauthenticated request, one answering the 401"
    );
    let (first, second) = (reqs[0].clone(), reqs[1].clone());
    assert!(!has(&first, Username::TYPE) && !first.has_integrity());
    assert_eq!(
        first.get::<RequestedTransport>().unwrap().unwrap(),
        RequestedTransport(17)
    );
    assert_eq!(first.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
    assert!(first.has_fingerprint());
    assert_ne!(first.transaction_id(), second.transaction_id());
    assert_eq!(second.get::<Username>().unwrap().unwrap().as_str(), USER);
    assert_eq!(second.get::<Realm>().unwrap().unwrap().as_str(), REALM);
    assert_eq!(second.get::<Nonce>().unwrap().unwrap().as_str(), "nonce-0");
    assert_eq!(
        second.get::<Software>().unwrap().unwrap().as_str(),
        "floe test"
    );
    assert!(second.has_integrity() && !second.has_integrity_sha256());
    assert!(!has(&second, PasswordAlgorithm::TYPE));
    let md5 = IntegrityKey::long_term(PasswordAlgorithm::Md5, USER, REALM, PASS).unwrap();
    second.verify_integrity(md5.as_bytes()).unwrap();

    assert_eq!(
        h.take_events(),
        [ClientEvent::Allocated {
            relayed: vec![addr("198.51.100.7:50000")],
            mapped: Some(addr("203.0.113.9:61000")),
            lifetime: secs(600),
        }]
    );
    assert_eq!(h.client.state(), ClientState::Allocated);
    assert_eq!(h.client.relayed_addresses(), [addr("198.51.100.7:50000")]);
    assert_eq!(h.client.mapped_address(), Some(addr("203.0.113.9:61000")));
    assert_eq!(h.client.allocation_expires(), Some(h.t0 + secs(600)));
    assert_eq!(h.client.allocate(h.now), Err(ClientError::AllocationExists));
}

#[test]
fn dual_stack_allocation_reports_both_relayed_addresses() {
    let mut h = Harness::with(|c| c.additional_family = Some(AddressFamily::V6));
    let v6 = addr("[2001:db8::7]:50001");
    h.server().relayed.push(v6);
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.last_request().clone();
    assert_eq!(
        req.get::<AdditionalAddressFamily>().unwrap().unwrap(),
        AdditionalAddressFamily(AddressFamily::V6)
    );
    assert_eq!(
        h.client.relayed_addresses(),
        [addr("198.51.100.7:50000"), v6]
    );
}

#[test]
fn stale_nonce_on_allocate_retries_with_the_new_nonce() {
    let mut h = Harness::new();
    h.server().stale = 1;
    h.client.allocate(h.now).unwrap();
    h.pump();
    let reqs = h.server().requests_of(Method::ALLOCATE);
    assert_eq!(reqs.len(), 3, "unauthenticated, 438, retry");
    assert_eq!(reqs[1].get::<Nonce>().unwrap().unwrap().as_str(), "nonce-0");
    assert_eq!(reqs[2].get::<Nonce>().unwrap().unwrap().as_str(), "nonce-1");
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn stale_nonce_retries_are_bounded() {
    let mut h = Harness::new();
    h.server().stale = 100;
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert_eq!(h.server().requests_of(Method::ALLOCATE).len(), 3);
    assert_eq!(
        h.take_events(),
        [ClientEvent::Error {
            request: Method::ALLOCATE,
            code: Some(438),
            reason: "Stale Nonce".into()
        }]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn stale_nonce_on_later_requests_updates_the_nonce_and_resends_once() {
    let mut h = Harness::allocated();
    h.server().stale = 1;
    let peer: IpAddr = "198.51.100.20".parse().unwrap();
    h.client.create_permission(h.now, &[peer]).unwrap();
    h.pump();
    let reqs = h.server().requests_of(Method::CREATE_PERMISSION);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].get::<Nonce>().unwrap().unwrap().as_str(), "nonce-1");
    assert_eq!(
        h.take_events(),
        [ClientEvent::PermissionCreated { peers: vec![peer] }]
    );
    // Later requests use the new nonce from the start.
    h.client.refresh(h.now, secs(300)).unwrap();
    h.pump();
    let refresh = h.last_request();
    assert_eq!(refresh.get::<Nonce>().unwrap().unwrap().as_str(), "nonce-1");
    assert_eq!(
        h.take_events(),
        [ClientEvent::Refreshed {
            lifetime: secs(300)
        }]
    );
}

#[test]
fn wrong_password_fails_after_one_authenticated_attempt() {
    let mut h = Harness::with(|c| c.password = "wrong".into());
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert_eq!(h.server().requests_of(Method::ALLOCATE).len(), 2);
    assert_eq!(
        h.take_events(),
        [ClientEvent::Error {
            request: Method::ALLOCATE,
            code: Some(401),
            reason: "Unauthorized".into()
        }]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn redirect_follows_alternate_server() {
    let mut h = Harness::new();
    let alternate = addr("192.0.2.2:3478");
    h.server().redirect = Some(alternate);
    h.servers.push(FakeServer::new(alternate));
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert_eq!(h.servers[0].requests.len(), 1);
    assert_eq!(h.servers[1].requests_of(Method::ALLOCATE).len(), 2);
    let events = h.take_events();
    assert_eq!(
        events[0],
        ClientEvent::Redirected {
            to: alternate,
            domain: None
        }
    );
    assert!(matches!(events[1], ClientEvent::Allocated { .. }));
    assert_eq!(h.client.server(), alternate);
    assert!(h
        .sent
        .iter()
        .skip(1)
        .all(|(_, t)| t.destination == alternate));
    // Answers from the old server are no longer taken.
    let stray = success(&h.servers[1].requests[1], |enc| {
        enc.add(&XorRelayedAddress(addr("192.0.2.99:1")));
    });
    h.client.handle_input(h.now, addr(SERVER), stray);
    assert!(h.take_events().is_empty());
}

#[test]
fn redirects_are_bounded() {
    let mut h = Harness::with(|c| c.max_redirects = 2);
    let chain = ["192.0.2.2:3478", "192.0.2.3:3478", "192.0.2.4:3478"].map(addr);
    h.server().redirect = Some(chain[0]);
    for (i, a) in chain.iter().enumerate() {
        let mut s = FakeServer::new(*a);
        s.redirect = chain.get(i + 1).copied();
        h.servers.push(s);
    }
    h.client.allocate(h.now).unwrap();
    h.pump();
    let events = h.take_events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(
        events[2],
        ClientEvent::Error {
            request: Method::ALLOCATE,
            code: Some(300),
            ..
        }
    ));
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn redirect_to_a_visited_server_is_a_loop() {
    let mut h = Harness::new();
    let b = addr("192.0.2.2:3478");
    h.server().redirect = Some(b);
    let mut s = FakeServer::new(b);
    s.redirect = Some(addr(SERVER));
    h.servers.push(s);
    h.client.allocate(h.now).unwrap();
    h.pump();
    let events = h.take_events();
    assert!(
        matches!(&events[..], [ClientEvent::Redirected { .. }, ClientEvent::Error { code: Some(300), reason, .. }] if reason.contains("loop"))
    );
}

#[test]
fn sha256_and_message_integrity_sha256_when_password_algorithms_are_offered() {
    let mut h = Harness::new();
    h.server().algorithms = Some(vec![0x0002, 0x0001]);
    h.server().new_nonce();
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests_of(Method::ALLOCATE)[1].clone();
    assert_eq!(
        req.get::<PasswordAlgorithm>().unwrap().unwrap(),
        PasswordAlgorithm::Sha256
    );
    let echoed = req.get::<PasswordAlgorithms>().unwrap().unwrap();
    let codes: Vec<u16> = echoed.0.iter().map(|e| e.algorithm).collect();
    assert_eq!(codes, [2, 1]);
    assert!(req.has_integrity_sha256() && !req.has_integrity());
    assert_eq!(
        req.get::<MessageIntegritySha256>()
            .unwrap()
            .unwrap()
            .0
            .len(),
        32
    );
    let key = IntegrityKey::long_term(PasswordAlgorithm::Sha256, USER, REALM, PASS).unwrap();
    req.verify_integrity_sha256(key.as_bytes()).unwrap();
    assert!(has(&req, Username::TYPE));
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn first_supported_password_algorithm_is_used() {
    // RFC 8489 §9.2.5: the first algorithm of the server's list that the client supports.
    let mut h = Harness::new();
    h.server().algorithms = Some(vec![0x7777, 0x0001, 0x0002]);
    h.server().new_nonce();
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests_of(Method::ALLOCATE)[1].clone();
    assert_eq!(
        req.get::<PasswordAlgorithm>().unwrap().unwrap(),
        PasswordAlgorithm::Md5
    );
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn userhash_replaces_username_when_the_nonce_announces_anonymity() {
    let mut h = Harness::new();
    h.server().anonymity = true;
    h.server().algorithms = Some(vec![0x0002]);
    h.server().new_nonce();
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests_of(Method::ALLOCATE)[1].clone();
    assert!(!has(&req, Username::TYPE));
    assert_eq!(
        req.get::<Userhash>().unwrap().unwrap().0,
        userhash(USER, REALM).unwrap()
    );
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn bid_down_is_refused() {
    // RFC 8489 §9.2.5: the nonce announces PASSWORD-ALGORITHMS, the 401 lacks them.
    let mut h = Harness::new();
    let req = {
        h.client.allocate(h.now).unwrap();
        let t = h.client.poll_transmit().unwrap();
        Message::decode(t.payload).unwrap()
    };
    let features = SecurityFeatures {
        password_algorithms: true,
        username_anonymity: false,
    };
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE.error(), req.transaction_id());
    enc.add(&ErrorCode::new(401))
        .add(&Realm::new(REALM))
        .add(&Nonce::new(format!("{}abc", features.nonce_prefix())));
    enc.finish().unwrap();
    h.input(buf.freeze());
    assert!(h.client.poll_transmit().is_none(), "no retry");
    assert!(
        matches!(&h.take_events()[..], [ClientEvent::Error { code: Some(401), reason, .. }] if reason.contains("PASSWORD-ALGORITHMS"))
    );
}

#[test]
fn other_errors_become_error_events() {
    let mut h = Harness::new();
    h.server().fail_with = Some((Method::ALLOCATE, 486));
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert_eq!(
        h.take_events(),
        [ClientEvent::Error {
            request: Method::ALLOCATE,
            code: Some(486),
            reason: "Allocation Quota Reached".into()
        }]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn a_response_failing_integrity_is_dropped_over_udp() {
    let mut h = Harness::new();
    h.client.allocate(h.now).unwrap();
    h.pump();
    h.take_events();
    h.client.refresh(h.now, secs(600)).unwrap();
    let t = h.client.poll_transmit().unwrap();
    let req = Message::decode(t.payload).unwrap();
    let wrong = IntegrityKey::from_bytes(vec![0u8; 16]);
    let forged = {
        let mut buf = BytesMut::new();
        let mut enc =
            MessageEncoder::new(&mut buf, Method::REFRESH.success(), req.transaction_id());
        enc.add(&Lifetime(5)).message_integrity(wrong.as_bytes());
        enc.finish().unwrap();
        buf.freeze()
    };
    h.input(forged);
    assert!(h.take_events().is_empty(), "forged response dropped");
    // The retransmission gets a genuine answer.
    h.advance(secs(1));
    assert_eq!(
        h.take_events(),
        [ClientEvent::Refreshed {
            lifetime: secs(600)
        }]
    );
}

#[test]
fn a_response_failing_integrity_fails_the_transaction_over_tcp() {
    let mut h = Harness::with(|c| c.transport = Transport::Tcp);
    h.client.allocate(h.now).unwrap();
    h.pump();
    h.take_events();
    h.client.refresh(h.now, secs(600)).unwrap();
    let req = Message::decode(h.client.poll_transmit().unwrap().payload).unwrap();
    let forged = {
        let mut buf = BytesMut::new();
        let mut enc =
            MessageEncoder::new(&mut buf, Method::REFRESH.success(), req.transaction_id());
        enc.add(&Lifetime(5)).message_integrity(&[1; 16]);
        enc.finish().unwrap();
        buf.freeze()
    };
    h.input(forged);
    assert!(
        matches!(&h.take_events()[..], [ClientEvent::Error { request: Method::REFRESH, code: None, reason }] if reason.contains("integrity"))
    );
    assert_eq!(h.client.state(), ClientState::Allocated);
}

#[test]
fn unknown_comprehension_required_attributes_fail_the_transaction() {
    let mut h = Harness::new();
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests[0].clone();
    h.input(success(&req, |enc| {
        enc.add(&XorRelayedAddress(addr("198.51.100.7:50000")))
            .add_raw(AttributeType(0x7F01), b"??");
    }));
    assert!(
        matches!(&h.take_events()[..], [ClientEvent::Error { request: Method::ALLOCATE, code: None, reason }] if reason.contains("comprehension-required"))
    );
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn config_debug_hides_the_password() {
    let config = ClientConfig::new(addr(SERVER), addr(LOCAL), USER, "hunter2");
    let text = format!("{config:?}");
    assert!(text.contains(USER) && !text.contains("hunter2"));
}

#[test]
fn a_peer_keeps_its_channel_number_after_the_binding_lapses() {
    // RFC 8656 §12: no re-binding of a peer to another number within 5 minutes of expiry.
    let mut h = Harness::allocated();
    let peer = addr("198.51.100.20:7000");
    assert_eq!(h.client.channel_bind(h.now, peer), Ok(0x4000));
    h.pump();
    h.client.remove_permission(peer.ip());
    h.advance(secs(900));
    assert_eq!(h.client.channel(h.now, peer), None);
    assert_eq!(h.request_times(Method::CHANNEL_BIND), [secs(0)]);
    assert_eq!(h.client.channel_bind(h.now, peer), Ok(0x4000));
}

#[test]
fn unsigned_success_responses_are_accepted() {
    let mut h = Harness::new();
    h.server().sign = false;
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

// ---- Binding -------------------------------------------------------------------------------

#[test]
fn binding_reports_the_reflexive_address_and_rtt() {
    let mut h = Harness::new();
    h.client.binding(h.now);
    let t = h.client.poll_transmit().unwrap();
    let req = Message::decode(t.payload.clone()).unwrap();
    assert_eq!(req.typ(), MessageType::new(Method::BINDING, Class::Request));
    assert!(!req.has_integrity());
    h.now += ms(42);
    let answer = h.server().handle(t.payload).unwrap();
    h.input(answer);
    assert_eq!(
        h.take_events(),
        [ClientEvent::BindingSucceeded {
            mapped: addr("203.0.113.9:61000"),
            rtt: Some(ms(42))
        }]
    );
    assert_eq!(h.client.mapped_address(), Some(addr("203.0.113.9:61000")));
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn binding_rtt_is_unknown_after_a_retransmission() {
    let mut h = Harness::new();
    h.server().silent = true;
    h.client.binding(h.now);
    h.advance(ms(600));
    assert_eq!(h.request_times(Method::BINDING), [ms(0), ms(500)]);
    h.server().silent = false;
    let last = h.sent.last().unwrap().1.payload.clone();
    let answer = h.server().handle(last).unwrap();
    h.input(answer);
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::BindingSucceeded { rtt: None, .. }]
    ));
}

// ---- Refresh and delete ----------------------------------------------------------------------

#[test]
fn refresh_happens_60_s_before_expiry_exactly() {
    let mut h = Harness::allocated();
    h.advance(secs(540) - ms(1));
    assert!(h.request_times(Method::REFRESH).is_empty());
    h.advance(ms(1));
    assert_eq!(h.request_times(Method::REFRESH), [secs(540)]);
    assert_eq!(
        h.last_request().get::<Lifetime>().unwrap().unwrap(),
        Lifetime(600)
    );
    assert_eq!(
        h.take_events(),
        [ClientEvent::Refreshed {
            lifetime: secs(600)
        }]
    );
    assert_eq!(h.client.allocation_expires(), Some(h.t0 + secs(1140)));
    h.advance(secs(1200));
    assert_eq!(
        h.request_times(Method::REFRESH),
        [secs(540), secs(1080), secs(1620)]
    );
}

#[test]
fn short_lifetimes_refresh_at_half() {
    let mut h = Harness::new();
    h.server().max_lifetime = 60;
    h.client.allocate(h.now).unwrap();
    h.advance(secs(100));
    assert_eq!(
        h.request_times(Method::REFRESH),
        [secs(30), secs(60), secs(90)]
    );
    let events = h.take_events();
    assert!(matches!(events[0], ClientEvent::Allocated { lifetime, .. } if lifetime == secs(60)));
    assert!(events[1..]
        .iter()
        .all(|e| *e == ClientEvent::Refreshed { lifetime: secs(60) }));
}

#[test]
fn explicit_refresh_sets_the_lifetime_of_later_refreshes() {
    let mut h = Harness::allocated();
    h.advance(secs(10));
    h.client.refresh(h.now, secs(1200)).unwrap();
    h.pump();
    assert_eq!(
        h.last_request().get::<Lifetime>().unwrap().unwrap(),
        Lifetime(1200)
    );
    assert_eq!(
        h.take_events(),
        [ClientEvent::Refreshed {
            lifetime: secs(1200)
        }]
    );
    h.advance(secs(1140));
    assert_eq!(h.request_times(Method::REFRESH), [secs(10), secs(1150)]);
    assert_eq!(
        h.last_request().get::<Lifetime>().unwrap().unwrap(),
        Lifetime(1200)
    );
}

#[test]
fn delete_sends_lifetime_zero_and_clears_the_session() {
    let mut h = Harness::allocated();
    let peer = addr("198.51.100.20:7000");
    h.client.channel_bind(h.now, peer).unwrap();
    h.pump();
    h.take_events();
    h.client.delete(h.now).unwrap();
    assert_eq!(h.client.state(), ClientState::Deleting);
    h.pump();
    assert_eq!(
        h.last_request().get::<Lifetime>().unwrap().unwrap(),
        Lifetime(0)
    );
    assert_eq!(h.take_events(), [ClientEvent::Deleted]);
    assert_eq!(h.client.state(), ClientState::Idle);
    assert!(h.client.relayed_addresses().is_empty());
    assert_eq!(h.client.channel(h.now, peer), None);
    assert_eq!(h.client.poll_timeout(), None);
    assert_eq!(
        h.client.send_to(h.now, peer, b"x"),
        Err(ClientError::NoAllocation)
    );
    // The session can allocate again, with the credentials it has.
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert!(h.last_request().has_integrity());
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn refresh_with_zero_lifetime_is_delete() {
    let mut h = Harness::allocated();
    h.client.refresh(h.now, Duration::ZERO).unwrap();
    h.pump();
    assert_eq!(h.take_events(), [ClientEvent::Deleted]);
    assert_eq!(
        h.client.refresh(h.now, secs(60)),
        Err(ClientError::NoAllocation)
    );
}

#[test]
fn allocation_mismatch_on_delete_counts_as_deleted() {
    let mut h = Harness::allocated();
    h.server().fail_with = Some((Method::REFRESH, 437));
    h.client.delete(h.now).unwrap();
    h.pump();
    let events = h.take_events();
    assert!(matches!(
        events[..],
        [
            ClientEvent::Error {
                code: Some(437),
                ..
            },
            ClientEvent::Deleted
        ]
    ));
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn allocation_mismatch_on_refresh_means_the_allocation_is_gone() {
    let mut h = Harness::allocated();
    h.server().fail_with = Some((Method::REFRESH, 437));
    h.advance(secs(540));
    let events = h.take_events();
    assert!(matches!(
        events[..],
        [
            ClientEvent::Error {
                request: Method::REFRESH,
                code: Some(437),
                ..
            },
            ClientEvent::AllocationExpired
        ]
    ));
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn failed_refreshes_are_retried_then_the_allocation_expires() {
    let mut h = Harness::allocated();
    h.server().silent = true;
    h.advance(secs(600));
    let times = h.request_times(Method::REFRESH);
    assert_eq!(times[0], secs(540));
    assert!(times.iter().all(|t| *t < secs(600)));
    let events = h.take_events();
    assert!(events.len() >= 2);
    assert!(events[..events.len() - 1].iter().all(|e| matches!(
        e,
        ClientEvent::Error {
            request: Method::REFRESH,
            code: None,
            ..
        }
    )));
    assert_eq!(events.last(), Some(&ClientEvent::AllocationExpired));
    assert_eq!(h.client.state(), ClientState::Idle);
    assert_eq!(h.client.poll_timeout(), None);
}

// ---- Permissions and channels -------------------------------------------------------------

#[test]
fn permissions_go_in_one_request_and_are_recreated_every_4_minutes() {
    let mut h = Harness::allocated();
    let peers: [IpAddr; 2] = [
        "198.51.100.20".parse().unwrap(),
        "198.51.100.21".parse().unwrap(),
    ];
    h.advance(secs(10));
    h.client.create_permission(h.now, &peers).unwrap();
    h.pump();
    let req = h.last_request().clone();
    let listed: Vec<IpAddr> = req
        .attributes()
        .filter_map(|a| match a {
            Ok(Attribute::XorPeerAddress(p)) => Some(p.0.ip()),
            _ => None,
        })
        .collect();
    assert_eq!(listed, peers);
    assert_eq!(
        h.take_events(),
        [ClientEvent::PermissionCreated {
            peers: peers.to_vec()
        }]
    );
    assert!(h.client.has_permission(h.now, peers[1]));
    h.advance(secs(1000));
    assert_eq!(
        h.request_times(Method::CREATE_PERMISSION),
        [secs(10), secs(250), secs(490), secs(730), secs(970)]
    );
    assert!(h
        .take_events()
        .iter()
        .all(|e| matches!(e, ClientEvent::Refreshed { .. })));
    // Once removed, it is no longer refreshed and lapses after 5 minutes.
    h.client.remove_permission(peers[0]);
    h.client.remove_permission(peers[1]);
    h.advance(secs(600));
    assert_eq!(h.request_times(Method::CREATE_PERMISSION).len(), 5);
    assert!(!h.client.has_permission(h.now, peers[0]));
}

#[test]
fn channels_are_rebound_every_9_minutes_and_refresh_the_permission() {
    let mut h = Harness::allocated();
    let peer = addr("198.51.100.20:7000");
    h.advance(secs(10));
    assert_eq!(h.client.channel_bind(h.now, peer), Ok(0x4000));
    h.pump();
    let req = h.last_request().clone();
    assert_eq!(
        req.get::<ChannelNumber>().unwrap().unwrap(),
        ChannelNumber::MIN
    );
    assert_eq!(
        req.get::<XorPeerAddress>().unwrap().unwrap(),
        XorPeerAddress(peer)
    );
    assert_eq!(
        h.take_events(),
        [ClientEvent::ChannelBound {
            peer,
            channel: 0x4000
        }]
    );
    assert_eq!(h.client.channel(h.now, peer), Some(0x4000));
    assert!(h.client.has_permission(h.now, peer.ip()));
    h.advance(secs(1400));
    assert_eq!(
        h.request_times(Method::CHANNEL_BIND),
        [secs(10), secs(550), secs(1090)]
    );
    // CreatePermission every 4 minutes, except that each ChannelBind counts as one.
    assert_eq!(
        h.request_times(Method::CREATE_PERMISSION),
        [secs(250), secs(490), secs(790), secs(1030), secs(1330)]
    );
    // A second peer gets the next number; the first keeps its own.
    let other = addr("198.51.100.21:7000");
    assert_eq!(h.client.channel_bind(h.now, other), Ok(0x4001));
    assert_eq!(h.client.channel_bind(h.now, peer), Ok(0x4000));
}

#[test]
fn commands_without_allocation_are_refused() {
    let mut h = Harness::new();
    let peer = addr("198.51.100.20:7000");
    assert_eq!(
        h.client.create_permission(h.now, &[peer.ip()]),
        Err(ClientError::NoAllocation)
    );
    assert_eq!(
        h.client.channel_bind(h.now, peer),
        Err(ClientError::NoAllocation)
    );
    assert_eq!(
        h.client.send_to(h.now, peer, b"x"),
        Err(ClientError::NoAllocation)
    );
    assert_eq!(h.client.delete(h.now), Err(ClientError::NoAllocation));
    assert!(h.client.poll_transmit().is_none());
}

#[test]
fn failed_permission_is_reported_and_not_refreshed() {
    let mut h = Harness::allocated();
    h.server().fail_with = Some((Method::CREATE_PERMISSION, 403));
    let peer: IpAddr = "198.51.100.20".parse().unwrap();
    h.client.create_permission(h.now, &[peer]).unwrap();
    h.pump();
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Error {
            request: Method::CREATE_PERMISSION,
            code: Some(403),
            ..
        }]
    ));
    assert!(!h.client.has_permission(h.now, peer));
    h.advance(secs(600));
    assert_eq!(h.request_times(Method::CREATE_PERMISSION), [secs(0)]);
}

#[test]
fn peer_of_the_wrong_family_is_refused() {
    let mut h = Harness::allocated();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(
        h.client.create_permission(h.now, &[v6]),
        Err(ClientError::PeerAddressFamilyMismatch(v6))
    );
}

// ---- Data ------------------------------------------------------------------------------------

#[test]
fn send_uses_a_send_indication_until_a_channel_is_bound() {
    let mut h = Harness::allocated();
    let peer = addr("198.51.100.20:7000");
    assert_eq!(
        h.client.send_to(h.now, peer, b"hello"),
        Err(ClientError::NoPermission(peer.ip()))
    );
    h.client.create_permission(h.now, &[peer.ip()]).unwrap();
    h.pump();
    h.client.send_to(h.now, peer, b"hello").unwrap();
    h.pump();
    let ind = Message::decode(h.data_sent()[0].clone()).unwrap();
    assert_eq!(ind.typ(), Method::SEND.indication());
    assert_eq!(
        ind.get::<XorPeerAddress>().unwrap().unwrap(),
        XorPeerAddress(peer)
    );
    assert_eq!(&ind.get::<Data>().unwrap().unwrap().0[..], b"hello");
    assert!(!ind.has_integrity());

    // While the ChannelBind is in flight, data still goes as Send indications.
    h.client.channel_bind(h.now, peer).unwrap();
    let bind = h.client.poll_transmit().unwrap();
    h.client.send_to(h.now, peer, b"again").unwrap();
    let t = h.client.poll_transmit().unwrap();
    assert_eq!(Message::decode(t.payload).unwrap().method(), Method::SEND);
    let answer = h.server().handle(bind.payload).unwrap();
    h.input(answer);

    h.client.send_to(h.now, peer, b"hello").unwrap();
    h.pump();
    let last = h.data_sent().last().unwrap().clone();
    assert_eq!(
        &last[..],
        b"\x40\x00\x00\x05hello",
        "UDP ChannelData is not padded"
    );
}

#[test]
fn channel_data_is_padded_over_tcp() {
    let mut h = Harness::with(|c| c.transport = Transport::Tcp);
    h.client.allocate(h.now).unwrap();
    h.pump();
    let peer = addr("198.51.100.20:7000");
    h.client.channel_bind(h.now, peer).unwrap();
    h.pump();
    h.client.send_to(h.now, peer, b"hello").unwrap();
    h.pump();
    let last = h.data_sent().last().unwrap().clone();
    assert_eq!(&last[..], b"\x40\x00\x00\x05hello\0\0\0");
    assert!(h.sent.iter().all(|(_, t)| t.transport == Transport::Tcp));
}

#[test]
fn oversized_data_is_refused() {
    let mut h = Harness::allocated();
    let peer = addr("198.51.100.20:7000");
    h.client.create_permission(h.now, &[peer.ip()]).unwrap();
    h.pump();
    let big = vec![0u8; 70_000];
    assert_eq!(
        h.client.send_to(h.now, peer, &big),
        Err(ClientError::TooLarge(70_000))
    );
}

fn data_indication(peer: SocketAddr, data: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::DATA.indication(), TransactionId([9; 12]));
    enc.add(&XorPeerAddress(peer))
        .add(&Data(Bytes::copy_from_slice(data)));
    enc.finish().unwrap();
    buf.freeze()
}

#[test]
fn data_indications_and_channel_data_become_data_events() {
    let mut h = Harness::allocated();
    let peer = addr("198.51.100.20:7000");
    h.input(data_indication(peer, b"ind"));
    assert_eq!(
        h.take_events(),
        [ClientEvent::Data {
            peer,
            data: Bytes::from_static(b"ind")
        }]
    );
    h.client.channel_bind(h.now, peer).unwrap();
    h.pump();
    h.take_events();
    h.input(Bytes::from_static(b"\x40\x00\x00\x02hi\0\0"));
    h.input(Bytes::from_static(b"\x40\x00\x00\x03abc"));
    assert_eq!(
        h.take_events(),
        [
            ClientEvent::Data {
                peer,
                data: Bytes::from_static(b"hi")
            },
            ClientEvent::Data {
                peer,
                data: Bytes::from_static(b"abc")
            }
        ]
    );
    // Unknown channel, or data not from the server: dropped.
    h.input(Bytes::from_static(b"\x40\x01\x00\x02hi"));
    h.client
        .handle_input(h.now, addr("192.0.2.66:3478"), data_indication(peer, b"x"));
    h.client.handle_input(
        h.now,
        addr("192.0.2.66:3478"),
        Bytes::from_static(b"\x40\x00\x00\x02hi"),
    );
    assert!(h.take_events().is_empty());
}

#[test]
fn data_before_allocation_is_dropped() {
    let mut h = Harness::new();
    h.input(data_indication(addr("198.51.100.20:7000"), b"x"));
    assert!(h.take_events().is_empty());
}

// ---- Bad servers ------------------------------------------------------------------------------

#[test]
fn a_response_with_an_unknown_transaction_id_is_ignored() {
    let mut h = Harness::new();
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests[0].clone();
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(
        &mut buf,
        Method::ALLOCATE.success(),
        TransactionId([0xEE; 12]),
    );
    enc.add(&XorRelayedAddress(addr("192.0.2.99:1")));
    enc.finish().unwrap();
    h.input(buf.freeze());
    // Right id, wrong method: ignored too.
    let wrong_method = {
        let mut buf = BytesMut::new();
        let mut enc =
            MessageEncoder::new(&mut buf, Method::REFRESH.success(), req.transaction_id());
        enc.add(&Lifetime(1));
        enc.finish().unwrap();
        buf.freeze()
    };
    h.input(wrong_method);
    assert_eq!(h.client.state(), ClientState::Allocating);
    let events = h.take_events();
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, ClientEvent::Allocated { .. })),
        "{events:?}"
    );
}

#[test]
fn success_without_xor_relayed_address_is_an_error() {
    let mut h = Harness::new();
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests[0].clone();
    h.input(success(&req, |enc| {
        enc.add(&XorMappedAddress(addr("203.0.113.9:61000")))
            .add(&Lifetime(600));
    }));
    assert_eq!(
        h.take_events(),
        [ClientEvent::Error {
            request: Method::ALLOCATE,
            code: None,
            reason: "Allocate success without XOR-RELAYED-ADDRESS".into()
        }]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
    assert_eq!(h.client.poll_timeout(), None, "the transaction is over");
}

#[test]
fn garbage_is_dropped() {
    let mut h = Harness::allocated();
    let before = h.client.poll_timeout();
    for junk in [
        &b""[..],
        b"\x00",
        b"\x00\x01\x00\x00\x21\x12\xa4\x42",
        b"\x01\x01\x00\x04\x21\x12\xa4\x42abcdefghijkl\x00\x20\x00\x08",
        b"\x40",
        b"\x4f\xff\xff\xff",
        b"\x80hello rtp",
        b"\x16\x03\x01 tls",
        &[0xff; 1500],
    ] {
        h.input(Bytes::copy_from_slice(junk));
    }
    assert!(h.take_events().is_empty());
    assert_eq!(h.client.state(), ClientState::Allocated);
    assert_eq!(h.client.poll_timeout(), before);
}

#[test]
fn silence_over_udp_times_out_after_7_sends_and_39_5_s() {
    let mut h = Harness::new();
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.advance(secs(60));
    assert_eq!(
        h.request_times(Method::ALLOCATE),
        [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms)
    );
    assert_eq!(
        h.events,
        [(
            ms(39_500),
            ClientEvent::Error {
                request: Method::ALLOCATE,
                code: None,
                reason: "timed out".into()
            }
        )]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn silence_over_tcp_times_out_after_1_send_and_39_5_s() {
    let mut h = Harness::with(|c| c.transport = Transport::Tcp);
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.advance(secs(60));
    assert_eq!(h.request_times(Method::ALLOCATE), [ms(0)]);
    assert_eq!(
        h.events,
        [(
            ms(39_500),
            ClientEvent::Error {
                request: Method::ALLOCATE,
                code: None,
                reason: "timed out".into()
            }
        )]
    );
}

#[test]
fn later_requests_use_the_measured_rto() {
    // RFC 8489 §6.2.1: the RTO measured on this server is reused for 10 minutes.
    let mut h = Harness::new();
    h.client.binding(h.now);
    let t = h.client.poll_transmit().unwrap();
    h.now += ms(20);
    let answer = h.server().handle(t.payload).unwrap();
    h.input(answer);
    h.server().silent = true;
    let start = h.elapsed();
    h.client.binding(h.now);
    h.advance(ms(200));
    let times: Vec<Duration> = h
        .request_times(Method::BINDING)
        .iter()
        .map(|t| *t - start)
        .collect();
    assert_eq!(
        times,
        [ms(0), ms(100)],
        "RTO = 20 ms + 4 * 10 ms, clamped to 100 ms"
    );
}

// ---- Properties ------------------------------------------------------------------------------

/// A message of `class` for a pending transaction of `h`, with arbitrary attributes.
fn response_with(h: &Harness, method: Method, class: Class, attrs: &[(u16, Vec<u8>)]) -> Bytes {
    let tid = h.servers[0]
        .requests
        .last()
        .map_or(TransactionId([0; 12]), |m| m.transaction_id());
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, MessageType::new(method, class), tid);
    for (t, v) in attrs {
        enc.add_raw(AttributeType(*t), v);
    }
    let _ = enc.finish();
    buf.freeze()
}

const INTERESTING: [u16; 14] = [
    0x0001, 0x0006, 0x0008, 0x0009, 0x000C, 0x000D, 0x0012, 0x0013, 0x0014, 0x0015, 0x0016, 0x001C,
    0x8002, 0x8023,
];

fn state_for(phase: u8) -> Harness {
    match phase % 3 {
        0 => Harness::new(),
        1 => {
            let mut h = Harness::new();
            h.server().silent = true;
            h.client.allocate(h.now).unwrap();
            h.pump();
            h
        }
        _ => {
            let mut h = Harness::allocated();
            h.client
                .channel_bind(h.now, addr("198.51.100.20:7000"))
                .unwrap();
            h.pump();
            h.server().silent = true;
            h.client.refresh(h.now, secs(100)).unwrap();
            h.pump();
            h
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(phase in 0u8..3, packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..8)) {
        let mut h = state_for(phase);
        for p in packets {
            h.input(Bytes::from(p));
        }
        h.advance(secs(700));
    }

    #[test]
    fn random_responses_never_panic(
        phase in 0u8..3,
        method in prop::sample::select(vec![Method::ALLOCATE, Method::REFRESH, Method::BINDING, Method::CHANNEL_BIND, Method::DATA]),
        class in prop::sample::select(vec![Class::Success, Class::Error, Class::Indication]),
        attrs in prop::collection::vec((prop::sample::select(INTERESTING.to_vec()), prop::collection::vec(any::<u8>(), 0..40)), 0..6),
    ) {
        let mut h = state_for(phase);
        let msg = response_with(&h, method, class, &attrs);
        h.input(msg);
        h.advance(secs(700));
    }
}

#[test]
fn channel_numbers_come_from_rfc_8656s_range_and_run_out_after_0x4fff() {
    let mut h = Harness::allocated();
    for i in 0..ChannelNumber::COUNT as u32 {
        let ip = std::net::Ipv4Addr::from(0xC633_6400u32 + i / 64);
        let peer = SocketAddr::new(IpAddr::V4(ip), 7000 + (i % 64) as u16);
        let n = h.client.channel_bind(h.now, peer).unwrap();
        assert_eq!(n, 0x4000 + i as u16);
        while h.client.poll_transmit().is_some() {}
    }
    assert_eq!(
        h.client.channel_bind(h.now, addr("198.51.100.250:9")),
        Err(ClientError::NoChannelNumber)
    );
}

#[test]
fn channel_data_in_rfc_5766s_wider_range_is_decoded_and_dropped_as_unknown() {
    let mut h = Harness::allocated();
    h.take_events();
    // 0x5000..=0x7FFE decode (the shared codec is liberal) but this client never binds them.
    h.input(Bytes::from_static(b"\x50\x00\x00\x02hi"));
    h.input(Bytes::from_static(b"\x7f\xfe\x00\x00"));
    h.input(Bytes::from_static(b"\x7f\xff\x00\x00"));
    assert!(h.take_events().is_empty());
}
