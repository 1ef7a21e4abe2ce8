//! Whatever arrives, `handle_input` never panics: random bytes, random STUN messages
//! (signed with the right keys, with transaction ids of real checks) and mutated real
//! traffic, into agents mid-negotiation and connected.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::pairs::agents::AgentPair;
use crate::ice::{IceConfig, IceRole};
use crate::stun::{AttributeType, Class, MessageEncoder, MessageType, Method, TransactionId};

/// A harness connected, or mid-checks when `connected` is false.
fn pair(connected: bool) -> AgentPair {
    let mut h = AgentPair::new(
        IceConfig::new(IceRole::Controlling),
        IceConfig::new(IceRole::Controlled),
        77,
    );
    h.a.hosts(&["10.0.0.1:5000", "10.0.1.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.signal();
    h.start();
    if connected {
        assert!(h.connect(Duration::from_secs(5)));
    }
    h
}

#[derive(Debug, Clone)]
enum Attr {
    Username(bool),
    Priority(Vec<u8>),
    Controlling(Vec<u8>),
    Controlled(Vec<u8>),
    UseCandidate(Vec<u8>),
    Mapped(Vec<u8>),
    ErrorCode(Vec<u8>),
    Raw(u16, Vec<u8>),
}

fn attr() -> impl Strategy<Value = Attr> {
    let bytes = |n| proptest::collection::vec(any::<u8>(), 0..n);
    prop_oneof![
        any::<bool>().prop_map(Attr::Username),
        bytes(9).prop_map(Attr::Priority),
        bytes(10).prop_map(Attr::Controlling),
        bytes(10).prop_map(Attr::Controlled),
        bytes(2).prop_map(Attr::UseCandidate),
        bytes(24).prop_map(Attr::Mapped),
        bytes(12).prop_map(Attr::ErrorCode),
        (any::<u16>(), bytes(16)).prop_map(|(t, v)| Attr::Raw(t, v)),
    ]
}

#[derive(Debug, Clone)]
struct Stun {
    class: u8,
    method: u16,
    tid: Option<usize>,
    attrs: Vec<Attr>,
    integrity: u8,
    fingerprint: bool,
}

fn stun() -> impl Strategy<Value = Stun> {
    (
        0u8..4,
        prop_oneof![Just(1u16), any::<u16>().prop_map(|m| m & 0x0FFF)],
        proptest::option::of(0usize..64),
        proptest::collection::vec(attr(), 0..7),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(class, method, tid, attrs, integrity, fingerprint)| Stun {
            class,
            method,
            tid,
            attrs,
            integrity,
            fingerprint,
        })
}

/// Encodes `s` as if sent to `h.b` by `h.a`, with real credentials and transaction ids.
fn encode(h: &AgentPair, s: &Stun) -> Bytes {
    let class = [
        Class::Request,
        Class::Indication,
        Class::Success,
        Class::Error,
    ][s.class as usize];
    let checks = h.b.requests();
    let tid = match s.tid {
        Some(i) if !checks.is_empty() => checks[i % checks.len()].1,
        _ => TransactionId([0x5a; 12]),
    };
    let (b_ufrag, b_pwd) = h.b.agent.local_credentials();
    let (a_ufrag, a_pwd) = h.a.agent.local_credentials();
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, MessageType::new(Method(s.method), class), tid);
    for a in &s.attrs {
        match a {
            Attr::Username(good) => {
                let u = if *good {
                    format!("{b_ufrag}:{a_ufrag}")
                } else {
                    "x:y".into()
                };
                enc.add_raw(AttributeType(0x0006), u.as_bytes())
            }
            Attr::Priority(v) => enc.add_raw(AttributeType(0x0024), v),
            Attr::Controlling(v) => enc.add_raw(AttributeType(0x802A), v),
            Attr::Controlled(v) => enc.add_raw(AttributeType(0x8029), v),
            Attr::UseCandidate(v) => enc.add_raw(AttributeType(0x0025), v),
            Attr::Mapped(v) => enc.add_raw(AttributeType(0x0020), v),
            Attr::ErrorCode(v) => enc.add_raw(AttributeType(0x0009), v),
            Attr::Raw(t, v) => enc.add_raw(AttributeType(*t), v),
        };
    }
    match s.integrity {
        1 => {
            enc.message_integrity(b_pwd.as_bytes());
        }
        2 => {
            enc.message_integrity(a_pwd.as_bytes());
        }
        _ => {}
    }
    if s.fingerprint {
        enc.fingerprint();
    }
    let _ = enc.finish();
    buf.freeze()
}

fn feed(h: &mut AgentPair, datagrams: Vec<Bytes>) {
    let from = "10.0.0.1:5000".parse().unwrap();
    let to = "10.0.0.2:6000".parse().unwrap();
    for d in datagrams {
        let now = h.now;
        let _ = h.b.agent.handle_input(now, from, to, d.clone());
        let _ = h.a.agent.handle_input(now, to, from, d);
        h.now += Duration::from_millis(3);
        let now = h.now;
        h.a.agent.handle_timeout(now);
        h.b.agent.handle_timeout(now);
        h.collect();
    }
    // And the agents still run afterwards.
    h.run_for(Duration::from_secs(2));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(connected: bool, datagrams in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..200), 1..8)) {
        let mut h = pair(connected);
        feed(&mut h, datagrams.into_iter().map(Bytes::from).collect());
    }

    #[test]
    fn random_stun_never_panics(connected: bool, messages in proptest::collection::vec(stun(), 1..8)) {
        let mut h = pair(connected);
        let datagrams: Vec<Bytes> = messages.iter().map(|m| encode(&h, m)).collect();
        feed(&mut h, datagrams);
    }

    #[test]
    fn mutated_traffic_never_panics(connected: bool, flips in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..8)) {
        let mut h = pair(connected);
        let sent: Vec<Bytes> = h.a.sent.iter().chain(h.b.sent.iter()).map(|(_, t)| t.payload.clone()).collect();
        let datagrams = flips
            .into_iter()
            .map(|(which, at, byte)| {
                let mut d = sent[which % sent.len()].to_vec();
                let i = at % d.len();
                d[i] ^= byte | 1;
                Bytes::from(d)
            })
            .collect();
        feed(&mut h, datagrams);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The short run of the cargo-fuzz target `ice_agent` (`fuzz/`): the same driver
    /// (`crate::fuzzing`), on random programs.
    #[test]
    fn agents_keep_their_invariants(program in proptest::collection::vec(any::<u8>(), 0..3000)) {
        crate::fuzzing::ice_agent(&program);
    }
}

/// Random programs connect the agents and carry data.
#[test]
fn random_programs_connect() {
    let r = crate::fuzzing::reached_by_random_programs(crate::fuzzing::ice_agent, 64, 3000);
    eprintln!("{r:?}");
    assert!(r.allocations > 0 && r.data > 0, "{r:?}");
}
