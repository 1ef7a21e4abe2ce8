//! The TURN server core's data path, the work of a relay per datagram outside the
//! kernel: `Server::handle_client` on a ChannelData message (5-tuple → allocation,
//! channel → peer, permission check) and `Server::handle_peer` on a peer's datagram
//! (relayed address → allocation, permission, channel, the ChannelData header written in
//! place). Both over 2000 allocations with one channel each, taken in turn, as in
//! `floe-bench hold` (each datagram is for another allocation than the one before).
//!
//! Run: `cargo bench -p floe-benches --bench turn_data -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;

use floe::stun::attribute::{
    ChannelNumber, Nonce, Realm, RequestedTransport, Username, XorPeerAddress, XorRelayedAddress,
};
use floe::stun::{IntegrityKey, Message, MessageEncoder, Method, PasswordAlgorithm, TransactionId};
use floe::transmit::Transport;
use floe::turn::server::{
    ClientOutput, FiveTuple, PeerOutput, RelayAsk, RelayGrant, Server, ServerConfig, PEER_HEADROOM,
};
use floe::turn::ChannelData;

const ALLOCATIONS: u16 = 2000;
const PAYLOAD: usize = 100;
const CHANNEL: u16 = 0x4000;
const SERVER: &str = "198.51.100.1:3478";
const PEER: &str = "192.0.2.10:5000";

struct Setup {
    server: Server,
    now: Instant,
    clients: Vec<FiveTuple>,
    relays: Vec<SocketAddr>,
}

fn key() -> IntegrityKey {
    IntegrityKey::long_term(PasswordAlgorithm::Md5, "bob", "floe", "secret").unwrap()
}

fn request(method: Method, n: u32, nonce: Option<&str>, attrs: &[floe::stun::Attribute]) -> Bytes {
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(&n.to_be_bytes());
    let mut buf = BytesMut::new();
    let mut e = MessageEncoder::new(&mut buf, method.request(), TransactionId(t));
    for a in attrs {
        e.add_attribute(a);
    }
    if let Some(nonce) = nonce {
        e.add(&Username::new("bob".to_owned()))
            .add(&Realm::new("floe"))
            .add(&Nonce::new(nonce.to_owned()))
            .message_integrity(key().as_bytes());
    }
    e.fingerprint();
    e.finish().unwrap();
    buf.freeze()
}

/// Sends `data` from `ft` and returns the response, answering relay requests as the
/// actors do (every port binds).
fn exchange(s: &mut Server, now: Instant, ft: &FiveTuple, data: &[u8], next: &mut u16) -> Message {
    assert!(matches!(s.handle_client(now, ft, data), ClientOutput::None));
    while let Some(req) = s.poll_relay_request() {
        let id = req.id;
        let ip = match &req.relays {
            RelayAsk::Bind { primary, .. } => primary.ip(),
            RelayAsk::Redeem { .. } => unreachable!(),
        };
        *next += 1;
        let grant = RelayGrant {
            relayed: SocketAddr::new(ip, *next),
            reserved: None,
            additional: None,
        };
        s.relay_ready(now, id, Ok(grant));
    }
    while s.poll_event().is_some() {}
    let t = s.poll_transmit().expect("a response");
    Message::decode(t.payload).unwrap()
}

fn setup() -> Setup {
    let now = Instant::now();
    let mut c = ServerConfig::new("198.51.100.1".parse().unwrap(), now, 1_700_000_000);
    c.credentials.users.insert("bob", "secret");
    c.password_algorithms = false;
    c.unauth_rate = 0;
    c.min_port = 10_000;
    c.max_port = 19_999;
    c.policy.allow("192.0.2.0/24".parse().unwrap());
    let mut server = Server::new(c, StdRng::seed_from_u64(7));
    let (mut clients, mut relays) = (Vec::new(), Vec::new());
    let mut port = 10_000;
    let mut tid = 0;
    let next = |tid: &mut u32| {
        *tid += 1;
        *tid
    };
    for i in 0..ALLOCATIONS {
        let ft = FiveTuple {
            client: SocketAddr::new("203.0.113.9".parse().unwrap(), 20_000 + i),
            server: SERVER.parse().unwrap(),
            transport: Transport::Udp,
        };
        let udp = [RequestedTransport(17).into()];
        let r = exchange(
            &mut server,
            now,
            &ft,
            &request(Method::ALLOCATE, next(&mut tid), None, &udp),
            &mut port,
        );
        let nonce = r.get::<Nonce>().unwrap().unwrap().as_str().to_owned();
        let r = exchange(
            &mut server,
            now,
            &ft,
            &request(Method::ALLOCATE, next(&mut tid), Some(&nonce), &udp),
            &mut port,
        );
        let relay = r.get::<XorRelayedAddress>().expect("allocated").unwrap().0;
        let bind = [
            ChannelNumber::new(CHANNEL).unwrap().into(),
            XorPeerAddress(PEER.parse().unwrap()).into(),
        ];
        let r = exchange(
            &mut server,
            now,
            &ft,
            &request(Method::CHANNEL_BIND, next(&mut tid), Some(&nonce), &bind),
            &mut port,
        );
        assert!(
            r.get::<floe::stun::attribute::ErrorCode>().is_none(),
            "channel bound"
        );
        clients.push(ft);
        relays.push(relay);
    }
    Setup {
        server,
        now,
        clients,
        relays,
    }
}

fn bench(c: &mut Criterion) {
    let mut s = setup();
    let mut g = c.benchmark_group("turn_data");
    g.throughput(Throughput::Elements(1));

    let mut packet = BytesMut::new();
    ChannelData::new(
        floe::turn::ChannelNumber::new(CHANNEL).unwrap(),
        Bytes::from(vec![7u8; PAYLOAD]),
    )
    .unwrap()
    .encode(&mut packet, false);
    let packet = packet.freeze();
    let mut i = 0;
    g.bench_function("channel_data_to_peer", |b| {
        b.iter(|| {
            i = (i + 1) % s.clients.len();
            match s.server.handle_client(s.now, &s.clients[i], &packet) {
                ClientOutput::Relay { peer, payload, .. } => {
                    black_box((peer, payload.len()));
                }
                _ => panic!("relayed"),
            }
        })
    });

    let peer: SocketAddr = PEER.parse().unwrap();
    let mut buf = vec![7u8; PEER_HEADROOM + PAYLOAD + 4];
    let mut i = 0;
    g.bench_function("peer_to_channel_data", |b| {
        b.iter(|| {
            i = (i + 1) % s.relays.len();
            match s
                .server
                .handle_peer(s.now, s.relays[i], peer, &mut buf, PAYLOAD)
            {
                PeerOutput::ChannelData { client, len } => {
                    black_box((client, len));
                }
                _ => panic!("relayed"),
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
