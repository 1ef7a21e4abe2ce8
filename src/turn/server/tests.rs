//! The server core with a fake clock: every test drives `Server` directly.

use std::collections::HashSet;

use bytes::BytesMut;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

const USER: &str = "bob";
const PASS: &str = "secret";

#[derive(Default)]
struct FakeBinder {
    bound: HashSet<SocketAddr>,
    taken: HashSet<SocketAddr>,
    reserved: HashSet<SocketAddr>,
}

impl RelayBinder for FakeBinder {
    fn bind(&mut self, addr: SocketAddr) -> bool {
        !self.taken.contains(&addr) && !self.reserved.contains(&addr) && self.bound.insert(addr)
    }

    fn reserve(&mut self, addr: SocketAddr) -> bool {
        !self.taken.contains(&addr) && !self.bound.contains(&addr) && self.reserved.insert(addr)
    }

    fn redeem(&mut self, addr: SocketAddr) -> bool {
        self.reserved.remove(&addr) && self.bound.insert(addr)
    }
}

struct Harness {
    server: Server,
    binder: FakeBinder,
    now: Instant,
    ft: FiveTuple,
    nonce: String,
    tid: u32,
}

fn config(t0: Instant) -> ServerConfig {
    let mut c = ServerConfig::new("198.51.100.1".parse().unwrap(), t0, 1_700_000_000);
    c.nonce_secret = [5; 32];
    c.credentials.users.insert(USER, PASS);
    c.password_algorithms = false;
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

impl Harness {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut ServerConfig)) -> Self {
        let now = Instant::now();
        let mut c = config(now);
        f(&mut c);
        Harness {
            server: Server::new(c, StdRng::seed_from_u64(7)),
            binder: FakeBinder::default(),
            now,
            ft: five_tuple("203.0.113.9:40000"),
            nonce: String::new(),
            tid: 0,
        }
    }

    fn key(&self) -> IntegrityKey {
        IntegrityKey::long_term(Algorithm::Md5, USER, "floe", PASS).unwrap()
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
            e.add(&Username::new(USER))
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
        let out = self
            .server
            .handle_client(self.now, &ft, data, &mut self.binder);
        assert_eq!(out, ClientOutput::None);
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

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
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

#[test]
fn binding_answers_without_authentication() {
    let mut h = Harness::new();
    let r = h.request(Method::BINDING, false, &[]);
    assert_eq!(r.class(), Class::Success);
    assert_eq!(r.get::<XorMappedAddress>().unwrap().unwrap().0, h.ft.client);
    assert_eq!(r.get::<MappedAddress>().unwrap().unwrap().0, h.ft.client);
    assert!(r.has_fingerprint());
}

#[test]
fn allocate_without_credentials_gets_401_and_creates_nothing() {
    let mut h = Harness::new();
    let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    assert_eq!(Harness::code(&r), Some(401));
    assert!(r.get::<Realm>().is_some() && r.get::<Nonce>().is_some());
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.binder.bound.is_empty());
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn allocate_grants_a_relay_in_range_and_retransmissions_get_the_same_answer() {
    let mut h = Harness::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let req = h.build(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    let first = h.send(&req).unwrap();
    let relay = first.get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(relay.ip(), "198.51.100.1".parse::<IpAddr>().unwrap());
    assert!(relay.port() >= 49152);
    assert_eq!(first.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
    assert_eq!(
        first.get::<XorMappedAddress>().unwrap().unwrap().0,
        h.ft.client
    );
    let again = h.send(&req).unwrap();
    assert_eq!(again.as_bytes(), first.as_bytes());
    // Any other Allocate on this 5-tuple is a mismatch.
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(Harness::code(&r), Some(437));
    assert!(r.verify_integrity(h.key().as_bytes()).is_ok());
    let created: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::AllocationCreated { .. }))
        .collect();
    assert_eq!(created.len(), 1);
}

#[test]
fn wrong_password_and_unknown_user_get_401() {
    let mut h = Harness::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    h.tid += 1;
    let mut buf = BytesMut::new();
    let mut e = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), tid(h.tid));
    let wrong = IntegrityKey::long_term(Algorithm::Md5, USER, "floe", "nope").unwrap();
    e.add(&RequestedTransport(17))
        .add(&Username::new(USER))
        .add(&Realm::new("floe"))
        .add(&Nonce::new(h.nonce.clone()))
        .message_integrity(wrong.as_bytes());
    e.finish().unwrap();
    let r = h.send(&buf).unwrap();
    assert_eq!(Harness::code(&r), Some(401));
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, ServerEvent::AuthFailed { code: 401, .. })));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn stale_nonce_gets_438_and_the_client_recovers() {
    let mut h = Harness::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    h.advance(Duration::from_secs(601));
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(Harness::code(&r), Some(438));
    // The 438 carried a fresh nonce: retrying with it works.
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(r.class(), Class::Success);
}

#[test]
fn refresh_clamps_and_zero_deletes() {
    let mut h = Harness::new();
    let relay = h.allocate();
    let r = h.request(Method::REFRESH, true, &[Lifetime(100_000).into()]);
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(3600));
    h.events();
    let r = h.request(Method::REFRESH, true, &[Lifetime(0).into()]);
    assert_eq!(r.class(), Class::Success);
    assert_eq!(h.server.allocation_count(), 0);
    let ev = h.events();
    assert!(ev.contains(&ServerEvent::RelayReleased(relay)));
    assert!(ev
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationDeleted { .. })));
    let r = h.request(Method::REFRESH, true, &[Lifetime(600).into()]);
    assert_eq!(Harness::code(&r), Some(437));
}

#[test]
fn permissions_are_checked_against_the_peer_policy() {
    let mut h = Harness::new();
    h.allocate();
    for denied in [
        "127.0.0.1:1",
        "10.0.0.1:1",
        "169.254.169.254:80",
        "[::ffff:127.0.0.1]:1",
        "0.0.0.0:1",
        "198.51.100.1:9",
    ] {
        let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr(denied)]);
        assert_eq!(Harness::code(&r), Some(403), "{denied}");
    }
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("[2001:db8::1]:1")],
    );
    assert_eq!(Harness::code(&r), Some(443));
    let r = h.request(Method::CREATE_PERMISSION, true, &[]);
    assert_eq!(Harness::code(&r), Some(400));
    // Several peers in one request, all or nothing.
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[
            peer_attr("192.0.2.7:1"),
            peer_attr("192.0.2.8:1"),
            peer_attr("10.1.1.1:1"),
        ],
    );
    assert_eq!(Harness::code(&r), Some(403));
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("192.0.2.7:1"), peer_attr("192.0.2.8:1")],
    );
    assert_eq!(r.class(), Class::Success);
    let perms = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::PermissionCreated { .. }))
        .count();
    assert_eq!(perms, 2);
}

#[test]
fn send_indications_and_data_indications_need_a_permission() {
    let mut h = Harness::new();
    let relay = h.allocate();
    let send = |h: &mut Harness| {
        let d = h.build(Method::SEND, false, &[]);
        let mut buf = BytesMut::new();
        let mut e = MessageEncoder::new(
            &mut buf,
            Method::SEND.indication(),
            Message::decode(d).unwrap().transaction_id(),
        );
        e.add(&XorPeerAddress("192.0.2.7:5000".parse().unwrap()))
            .add(&Data(Bytes::from_static(b"hello")));
        e.finish().unwrap();
        let ft = h.ft;
        match h.server.handle_client(h.now, &ft, &buf, &mut h.binder) {
            ClientOutput::RelayOwned {
                relay,
                peer,
                payload,
                ..
            } => Some((relay, peer, payload)),
            ClientOutput::None => None,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(send(&mut h), None);
    assert_eq!(
        h.peer_data(relay, "192.0.2.7:5000", b"hi"),
        PeerOutput::Drop
    );
    h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.7:1")]);
    let (r, peer, payload) = send(&mut h).unwrap();
    assert_eq!(
        (r, peer, &payload[..]),
        (relay, "192.0.2.7:5000".parse().unwrap(), &b"hello"[..])
    );
    match h.peer_data(relay, "192.0.2.7:6000", b"back") {
        PeerOutput::DataIndication { client, message } => {
            assert_eq!(client, h.ft);
            let m = Message::decode(message).unwrap();
            assert_eq!(m.typ(), Method::DATA.indication());
            assert_eq!(
                m.get::<Data>().unwrap().unwrap().0,
                Bytes::from_static(b"back")
            );
            assert_eq!(
                m.get::<XorPeerAddress>().unwrap().unwrap().0,
                "192.0.2.7:6000".parse().unwrap()
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn channels_relay_both_ways_and_follow_the_rebinding_rules() {
    let mut h = Harness::new();
    let relay = h.allocate();
    let bind = |h: &mut Harness, ch: u16, peer: &str| {
        let r = h.request(
            Method::CHANNEL_BIND,
            true,
            &[channel_number(ch), peer_attr(peer)],
        );
        Harness::code(&r)
    };
    assert_eq!(bind(&mut h, 0x3FFF, "192.0.2.7:5000"), Some(400));
    assert_eq!(bind(&mut h, 0x7FFF, "192.0.2.7:5000"), Some(400));
    assert_eq!(bind(&mut h, 0x8000, "192.0.2.7:5000"), Some(400));
    assert_eq!(bind(&mut h, 0x4000, "10.0.0.1:5000"), Some(403));
    assert_eq!(bind(&mut h, 0x4000, "192.0.2.7:5000"), None);
    assert_eq!(bind(&mut h, 0x4000, "192.0.2.7:5000"), None, "refresh");
    assert_eq!(
        bind(&mut h, 0x4000, "192.0.2.8:5000"),
        Some(400),
        "number taken"
    );
    assert_eq!(
        bind(&mut h, 0x4001, "192.0.2.7:5000"),
        Some(400),
        "peer taken"
    );

    let mut cd = BytesMut::new();
    ChannelData::encode_into(ChannelNumber::new(0x4000).unwrap(), b"ping", &mut cd, false).unwrap();
    let ft = h.ft;
    assert_eq!(
        h.server.handle_client(h.now, &ft, &cd, &mut h.binder),
        ClientOutput::Relay {
            relay,
            peer: "192.0.2.7:5000".parse().unwrap(),
            payload: b"ping",
            dont_fragment: false
        }
    );
    // Unbound channel: dropped.
    let mut cd2 = BytesMut::new();
    ChannelData::encode_into(ChannelNumber::new(0x4002).unwrap(), b"x", &mut cd2, false).unwrap();
    assert_eq!(
        h.server.handle_client(h.now, &ft, &cd2, &mut h.binder),
        ClientOutput::None
    );
    assert_eq!(
        h.peer_data(relay, "192.0.2.7:5000", b"pong"),
        PeerOutput::ChannelData {
            client: h.ft,
            len: 8
        }
    );
}

#[test]
fn tcp_channel_data_to_the_client_is_padded() {
    let mut h = Harness::new();
    h.ft.transport = Transport::Tcp;
    let relay = h.allocate();
    h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.7:5000")],
    );
    assert!(matches!(
        h.peer_data(relay, "192.0.2.7:5000", b"abcde"),
        PeerOutput::ChannelData { len: 12, .. }
    ));
}

#[test]
fn lifetimes_expire_allocations_permissions_and_channels() {
    let mut h = Harness::with(|c| {
        c.default_lifetime = Duration::from_secs(30);
        c.permission_lifetime = Duration::from_secs(5);
        c.channel_lifetime = Duration::from_secs(10);
    });
    let relay = h.allocate();
    h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.7:5000")],
    );
    h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.9:1")]);
    assert!(matches!(
        h.peer_data(relay, "192.0.2.7:5000", b"a"),
        PeerOutput::ChannelData { .. }
    ));
    // Deadlines come from poll_timeout, not from polling.
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.now + Duration::from_secs(5))
    );
    h.advance(Duration::from_secs(5));
    assert_eq!(
        h.peer_data(relay, "192.0.2.9:1", b"a"),
        PeerOutput::Drop,
        "permission expired"
    );
    assert_eq!(
        h.peer_data(relay, "192.0.2.7:5000", b"a"),
        PeerOutput::Drop,
        "channel's permission expired"
    );
    let alloc = h.server.allocation_of(&h.ft).unwrap();
    assert_eq!(
        h.server.allocation(alloc).unwrap().permission_count(h.now),
        0
    );
    h.advance(Duration::from_secs(5));
    assert_eq!(h.server.allocation(alloc).unwrap().channel_count(h.now), 0);
    h.events();
    h.advance(Duration::from_secs(20));
    assert_eq!(h.server.allocation_count(), 0);
    let ev = h.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationExpired { .. })));
    assert!(ev.contains(&ServerEvent::RelayReleased(relay)));
}

#[test]
fn quotas_and_port_exhaustion() {
    let mut h = Harness::with(|c| {
        c.user_quota = 1;
        c.min_port = 50000;
        c.max_port = 50001;
    });
    h.allocate();
    h.ft = five_tuple("203.0.113.9:40001");
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(Harness::code(&r), Some(486));

    let mut h = Harness::with(|c| {
        c.min_port = 50000;
        c.max_port = 50001;
    });
    h.binder.taken.insert("198.51.100.1:50000".parse().unwrap());
    h.allocate();
    h.ft = five_tuple("203.0.113.9:40001");
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(Harness::code(&r), Some(508));
    // The failed Allocate gave its quota back.
    assert_eq!(h.server.config().quotas.total(), 1);
}

#[test]
fn even_port_reserves_the_next_one_for_a_token() {
    let mut h = Harness::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: true }.into(),
        ],
    );
    let relay = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(relay.port() % 2, 0);
    let token = r.get::<ReservationToken>().unwrap().unwrap();
    h.ft = five_tuple("203.0.113.9:40001");
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), token.into()],
    );
    assert_eq!(
        r.get::<XorRelayedAddress>().unwrap().unwrap().0.port(),
        relay.port() + 1
    );
    h.ft = five_tuple("203.0.113.9:40002");
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), token.into()],
    );
    assert_eq!(Harness::code(&r), Some(508), "token used up");
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            token.into(),
            EvenPort { reserve: false }.into(),
        ],
    );
    assert_eq!(Harness::code(&r), Some(400));
}

#[test]
fn reservations_expire() {
    let mut h = Harness::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: true }.into(),
        ],
    );
    let relay = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    h.events();
    h.advance(Duration::from_secs(31));
    let next = SocketAddr::new(relay.ip(), relay.port() + 1);
    assert!(h.events().contains(&ServerEvent::RelayReleased(next)));
}

#[test]
fn transport_and_family_checks() {
    let mut h = Harness::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(6).into()]);
    assert_eq!(Harness::code(&r), Some(442));
    let r = h.request(Method::ALLOCATE, true, &[]);
    assert_eq!(Harness::code(&r), Some(400));
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            RequestedAddressFamily(AddressFamily::V6).into(),
        ],
    );
    assert_eq!(Harness::code(&r), Some(440));
    // Dual-stack asked, only IPv4 here: success with ADDRESS-ERROR-CODE for IPv6.
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            AdditionalAddressFamily(AddressFamily::V6).into(),
        ],
    );
    assert_eq!(r.class(), Class::Success);
    assert_eq!(r.get::<AddressErrorCode>().unwrap().unwrap().code, 440);
}

#[test]
fn dual_stack_allocation_relays_both_families() {
    let mut h = Harness::with(|c| c.relay_ipv6 = Some("2001:db8::1".parse().unwrap()));
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            AdditionalAddressFamily(AddressFamily::V6).into(),
        ],
    );
    let relays: Vec<SocketAddr> = r
        .raw_attributes()
        .filter(|(t, _)| *t == XorRelayedAddress::TYPE)
        .map(|(_, v)| {
            XorRelayedAddress::decode(&v, &r.transaction_id())
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(relays.len(), 2);
    assert!(relays[0].is_ipv4() && relays[1].is_ipv6());
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("[2606:4700::1]:1")],
    );
    assert_eq!(r.class(), Class::Success);
}

#[test]
fn another_user_on_the_same_five_tuple_gets_441() {
    let mut h = Harness::with(|c| c.credentials.users.insert("eve", "other"));
    h.allocate();
    h.tid += 1;
    let mut buf = BytesMut::new();
    let mut e = MessageEncoder::new(&mut buf, Method::REFRESH.request(), tid(h.tid));
    let key = IntegrityKey::long_term(Algorithm::Md5, "eve", "floe", "other").unwrap();
    e.add(&Username::new("eve"))
        .add(&Realm::new("floe"))
        .add(&Nonce::new(h.nonce.clone()))
        .message_integrity(key.as_bytes());
    e.finish().unwrap();
    let r = h.send(&buf).unwrap();
    assert_eq!(Harness::code(&r), Some(441));
}

#[test]
fn rest_api_credentials() {
    let mut h = Harness::with(|c| {
        c.credentials.users = StaticUsers::new();
        c.credentials.rest_secrets = RestApiSecrets::new(["old", "current"]);
    });
    let user = "1700003600:alice";
    let pass = RestApiSecrets::password("current", user);
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let sign = |h: &mut Harness, user: &str, pass: &str| {
        h.tid += 1;
        let mut buf = BytesMut::new();
        let mut e = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), tid(h.tid));
        let key = IntegrityKey::long_term(Algorithm::Md5, user, "floe", pass).unwrap();
        e.add(&RequestedTransport(17))
            .add(&Username::new(user))
            .add(&Realm::new("floe"))
            .add(&Nonce::new(h.nonce.clone()))
            .message_integrity(key.as_bytes());
        e.finish().unwrap();
        h.send(&buf).unwrap()
    };
    assert_eq!(sign(&mut h, user, &pass).class(), Class::Success);
    // Expired usernames are refused.
    h.ft = five_tuple("203.0.113.9:40001");
    let old = "1699999999:alice";
    let r = sign(&mut h, old, &RestApiSecrets::password("current", old));
    assert_eq!(Harness::code(&r), Some(401));
}

#[test]
fn sha256_and_userhash_when_offered() {
    let mut h = Harness::with(|c| c.password_algorithms = true);
    let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let offered = r.get::<PasswordAlgorithms>().unwrap().unwrap();
    assert_eq!(offered.0[0].algorithm, Algorithm::Sha256.code());
    let features = SecurityFeatures::from_nonce(&h.nonce).unwrap();
    assert!(features.password_algorithms && features.username_anonymity);
    h.tid += 1;
    let key = IntegrityKey::long_term(Algorithm::Sha256, USER, "floe", PASS).unwrap();
    let mut buf = BytesMut::new();
    let mut e = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), tid(h.tid));
    e.add(&RequestedTransport(17))
        .add(&Userhash(userhash(USER, "floe").unwrap()))
        .add(&Realm::new("floe"))
        .add(&Nonce::new(h.nonce.clone()))
        .add(&offered)
        .add(&Algorithm::Sha256)
        .message_integrity_sha256(key.as_bytes(), 32);
    e.finish().unwrap();
    let r = h.send(&buf).unwrap();
    assert_eq!(r.class(), Class::Success, "{:?}", Harness::code(&r));
    r.verify_integrity_sha256(key.as_bytes()).unwrap();
}

#[test]
fn unknown_comprehension_required_attribute_gets_420() {
    let mut h = Harness::new();
    let r = h.request(
        Method::BINDING,
        false,
        &[Attribute::Unknown {
            typ: AttributeType(0x7777),
            value: Bytes::from_static(b"?"),
        }],
    );
    assert_eq!(Harness::code(&r), Some(420));
    assert_eq!(
        r.get::<UnknownAttributes>().unwrap().unwrap().0,
        vec![AttributeType(0x7777)]
    );
}

#[test]
fn many_unauthenticated_allocates_leave_no_state() {
    let mut h = Harness::new();
    for port in 0..2000u16 {
        h.ft = five_tuple(&format!("203.0.113.9:{}", 10000 + port));
        let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
        assert_eq!(Harness::code(&r), Some(401));
    }
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.server.poll_timeout(), None);
    assert!(h.binder.bound.is_empty());
}

proptest! {
    #[test]
    fn arbitrary_client_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut h = Harness::new();
        h.allocate();
        let ft = h.ft;
        let _ = h.server.handle_client(h.now, &ft, &data, &mut h.binder);
        let mut buf = data.clone();
        buf.extend_from_slice(&[0; 8]);
        let n = data.len();
        let _ = h.server.handle_peer(h.now, "198.51.100.1:50000".parse().unwrap(), "192.0.2.1:1".parse().unwrap(), &mut buf, n);
    }
}

#[test]
fn a_reservation_is_redeemed_on_another_thread() {
    let mut h = Harness::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: true }.into(),
        ],
    );
    let relay = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    let token = r.get::<ReservationToken>().unwrap().unwrap();
    // A second core with the same shared state, as another Arbiter has.
    let mut other = Harness::new();
    other.server = Server::new(h.server.config().clone(), StdRng::seed_from_u64(8));
    other.binder.reserved = std::mem::take(&mut h.binder.reserved);
    other.nonce = h.nonce.clone();
    other.ft = five_tuple("203.0.113.9:40001");
    let r = other.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), token.into()],
    );
    assert_eq!(r.class(), Class::Success, "{:?}", Harness::code(&r));
    assert_eq!(
        r.get::<XorRelayedAddress>().unwrap().unwrap().0.port(),
        relay.port() + 1
    );
}

#[test]
fn a_reserved_port_is_not_handed_to_another_allocation() {
    let mut h = Harness::with(|c| {
        c.min_port = 50001;
        c.max_port = 50004;
    });
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: true }.into(),
        ],
    );
    let relay = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(
        relay.port(),
        50002,
        "the only even port with a free neighbour"
    );
    let reserved = SocketAddr::new(relay.ip(), relay.port() + 1);
    for (i, client) in ["203.0.113.9:40001", "203.0.113.9:40002"]
        .iter()
        .enumerate()
    {
        h.ft = five_tuple(client);
        let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
        let got = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
        assert_ne!(got, reserved, "allocation {i} took the reserved port");
    }
    h.ft = five_tuple("203.0.113.9:40003");
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(
        Harness::code(&r),
        Some(508),
        "only the reserved port is left"
    );
}

#[test]
fn lifetimes_are_raised_to_the_default_and_capped() {
    let mut h = Harness::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), Lifetime(30).into()],
    );
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
    let r = h.request(Method::REFRESH, true, &[Lifetime(1200).into()]);
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(1200));
    let r = h.request(Method::REFRESH, true, &[Lifetime(60).into()]);
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
}

#[test]
fn rfc3489_binding_without_magic_cookie_gets_mapped_address() {
    let mut h = Harness::new();
    let mut req = vec![0x00, 0x01, 0x00, 0x00];
    req.extend_from_slice(&[0xA5; 16]); // a 128-bit transaction id, no cookie
    let ft = h.ft;
    assert_eq!(
        h.server.handle_client(h.now, &ft, &req, &mut h.binder),
        ClientOutput::None
    );
    let t = h.server.poll_transmit().expect("an answer");
    let r = &t.payload[..];
    assert_eq!(&r[..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&r[4..20], &[0xA5; 16], "the transaction id echoed");
    assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])), r.len() - 20);
    // MAPPED-ADDRESS, IPv4, the client's port and address in the clear.
    assert_eq!(&r[20..24], &[0x00, 0x01, 0x00, 0x08]);
    assert_eq!(u16::from_be_bytes([r[26], r[27]]), ft.client.port());
    assert_eq!(&r[28..32], &[203, 0, 113, 9]);
    // Anything else without a cookie is dropped.
    req[1] = 0x03;
    let _ = h.server.handle_client(h.now, &ft, &req, &mut h.binder);
    assert!(h.server.poll_transmit().is_none());
}
